"""Self-supervised methods: each one a :class:`~sslseg.ssl.base.SSLMethod` named in :mod:`sslseg.ssl.table`."""

from sslseg.ssl.base import LossOutput, SSLMethod, StepContext, available_methods, create_method

__all__ = ["LossOutput", "SSLMethod", "StepContext", "available_methods", "create_method"]
