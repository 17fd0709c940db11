"""Helpers of the SSLSegmentation module, also used by SSLPretrain (both install into one folder, hence the prefix).

Qt-free (MRML only, tested against slicer-core in CI): :mod:`.SceneData`, :mod:`.Plots`, :mod:`.Commands`.
Slicer application only (qt, slicer.util): :mod:`.Engine`, :mod:`.Dependencies`, :mod:`.JobDriver`,
:mod:`.ParameterNodeWidget`.
"""
