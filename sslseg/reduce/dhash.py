"""``imagehash.dhash(image, hash_size=8)`` for whole stacks of 8-bit images at once, bit for bit.

imagehash converts to "L" (a no-op for 8-bit grey), resizes to 9 x 8 with LANCZOS (:mod:`~sslseg.reduce.lanczos`)
and sets bit (r, c) when pixel (r, c + 1) is brighter than pixel (r, c). A hash here is that 8 x 8 boolean array
read row by row into a uint64, first bit most significant: ``int(str(imagehash.dhash(...)), 16)``.

:func:`volume_hashes` streams a volume through the grey-level scaling and the horizontal pass in chunks of slices
(a few MB of float64), so no float copy of the whole volume is made and every chunk stays in cache.

Speed: the exact integer sums cost about as many multiply-adds as Pillow's own C loop (each voxel feeds ~6 of the 9
horizontal outputs); what is saved is the per-slice Python, PIL and copy overhead, and BLAS does the products.
"""

from __future__ import annotations

import numpy as np

from sslseg.reduce.axial import AxialStack, grey_level_coefficients, scale_into
from sslseg.reduce.lanczos import resize_stack

HASH_SIZE = 8
#: Voxels per chunk: 2**18 float64 = 2 MB, inside a typical L2/L3 cache.
CHUNK_VOXELS = 1 << 18


def bits_from_small(small: np.ndarray) -> np.ndarray:
    """(n,) uint64 hashes of resized images ``small`` (n, 8, 9)."""
    diff = small[:, :, 1:] > small[:, :, :-1]  # (n, 8, 8): brighter than the left neighbour
    packed = np.packbits(diff.reshape(len(diff), HASH_SIZE * HASH_SIZE), axis=1)  # (n, 8) bytes, MSB first
    return packed.view(">u8")[:, 0].astype(np.uint64)


def stack_hashes(images: np.ndarray, a: np.ndarray | None = None, b: np.ndarray | None = None) -> np.ndarray:
    """(n,) uint64 dhash of each image of ``images`` (n, H, W).

    Without ``a``/``b`` the images are already 8-bit grey levels (uint8 or integer-valued); with them (each (n,)),
    ``floor(v * a + b)`` turns raw voxels into grey levels first (:func:`~sslseg.reduce.axial.scale_into`).
    """
    n, height, width = images.shape
    step = max(1, CHUNK_VOXELS // max(1, height * width))
    buffer = np.empty((min(step, n), height, width), dtype=np.float64)
    small = np.empty((n, HASH_SIZE, HASH_SIZE + 1), dtype=np.float64)
    for start in range(0, n, step):
        stop = min(start + step, n)
        chunk = buffer[:stop - start]
        if a is None:
            chunk[...] = images[start:stop]
        else:
            scale_into(images[start:stop], a[start:stop], b[start:stop], chunk)
        small[start:stop] = resize_stack(chunk, HASH_SIZE + 1, HASH_SIZE)
    return bits_from_small(small)


def axial_hashes(stack: AxialStack) -> np.ndarray:
    """(N,) uint64 dhash of each axial slice of ``stack``, per :mod:`~sslseg.reduce.axial`'s definition."""
    a, b = grey_level_coefficients(stack)
    return stack_hashes(stack.images, a, b)


def hamming(hash_a: np.ndarray | int, hash_b: np.ndarray | int) -> np.ndarray:
    """Number of differing bits (broadcasting uint64 arrays)."""
    return np.bitwise_count(np.bitwise_xor(np.asarray(hash_a, dtype=np.uint64), np.asarray(hash_b, dtype=np.uint64)))


def to_hex(hashes: np.ndarray) -> list[str]:
    """16-digit hex strings, as ``str(imagehash.dhash(...))``."""
    return [f"{int(h):016x}" for h in hashes]
