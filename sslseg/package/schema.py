"""A small declarative checker for JSON cards: every field known, every type right, nothing else accepted.

A spec is a dict ``{field: type_or_spec}``; a field written ``"name?"`` is optional. Types: ``str``, ``int``,
``float`` (ints accepted), ``bool``, ``dict`` (free-form), ``[spec]`` for a list of items, or a nested dict spec.
"""

from __future__ import annotations

from sslseg.errors import SSLSegError


class CardError(SSLSegError):
    """A model or encoder card that does not match its schema."""


def check(value, spec, where: str, source: str) -> None:
    if isinstance(spec, dict):
        _check_object(value, spec, where, source)
    elif isinstance(spec, list):
        if not isinstance(value, list):
            _fail(source, where, f"expected a list, got {type(value).__name__}")
        for index, item in enumerate(value):
            check(item, spec[0], f"{where}[{index}]", source)
    elif not _is_instance(value, spec):
        _fail(source, where, f"expected {spec.__name__}, got {type(value).__name__}")


def _check_object(value, spec: dict, where: str, source: str) -> None:
    if not isinstance(value, dict):
        _fail(source, where, f"expected an object, got {type(value).__name__}")
    fields = {key.rstrip("?"): (key.endswith("?"), sub) for key, sub in spec.items()}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        _fail(source, where, f"unexpected field(s) {', '.join(unknown)}")
    for name, (optional, sub) in fields.items():
        if name not in value:
            if not optional:
                _fail(source, where, f"missing field {name!r}")
            continue
        check(value[name], sub, f"{where}.{name}" if where else name, source)


def _is_instance(value, kind) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _fail(source: str, where: str, problem: str) -> None:
    raise CardError(f"{source} is not a valid card: {where or 'top level'}: {problem}",
                    "the file was edited or comes from another tool; re-export the model")
