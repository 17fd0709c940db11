"""The Slicer modules' own files read as code (``ast``), for checks that need no Slicer: which functions a handler
calls, which parameters it sets."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def function(module: str, qualified: str) -> ast.FunctionDef:
    """``Class.method`` of ``<module>/<module>.py``, parsed."""
    class_name, name = qualified.split(".")
    tree = ast.parse((ROOT / module / f"{module}.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    return next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == name)


def calls(node: ast.AST) -> set[str]:
    """The callees of every call in ``node``, as written (``Commands.resumeAfter``)."""
    return {ast.unparse(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)}
