"""Hash-based reduction of redundant slices ("Less is More", Wolf et al., Computers in Biology and Medicine 2024).

Each axial slice is scaled to 0..255 by its own min/max (:mod:`~sslseg.reduce.axial`), hashed with ``imagehash``'s
difference hash, bit for bit but vectorised over whole volumes (:mod:`~sslseg.reduce.lanczos`,
:mod:`~sslseg.reduce.dhash`); near-duplicates are dropped greedily (:mod:`~sslseg.reduce.greedy`). ``sslseg reduce``
writes a report (:mod:`~sslseg.reduce.folder`, :mod:`~sslseg.reduce.report`); ``sslseg pretrain --reduce K`` draws
patches only around kept slices (:mod:`~sslseg.reduce.sampling`).
"""
