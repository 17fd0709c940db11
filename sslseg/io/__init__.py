"""Volume input/output. ``read_volume`` / ``write_volume`` are the entry points; see ``sslseg.volume`` for axes."""

from sslseg.io.volume_io import read_volume, write_volume

__all__ = ["read_volume", "write_volume"]
