"""Helpers of the SSLPretrain module (Qt-free): the ``sslseg pretrain`` / ``preview-views`` command lines."""
