"""Self-supervised methods: each one a :class:`~sslseg.ssl.base.SSLMethod` registered by name (``--method``)."""

from sslseg.ssl.base import SSLMethod, available_methods, create_method, register_method

__all__ = ["SSLMethod", "available_methods", "create_method", "register_method"]
