"""SSLPretrain's method list is the engine's table (``sslseg.ssl.table``), never a copy: the parameter node's Choice
and default, the combo box (no items in the .ui: the Choice fills it), the tooltips, and the worker command line
with the chosen method and its options as the real ``sslseg pretrain`` parser reads them. No Slicer needed."""

from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sslseg.ssl import table
from sslseg.ssl.table import DEFAULT_METHOD, METHODS, MethodEntry

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "SSLPretrain"), str(ROOT / "SSLSegmentation")]  # Slicer puts every module folder on the path

from SSLPretrainLib import Commands  # noqa: E402


def parameter_annotation(field: str) -> tuple[ast.expr, ast.expr | None]:
    """The annotation and default of ``field`` in SSLPretrain.py's parameter node class."""
    tree = ast.parse((ROOT / "SSLPretrain" / "SSLPretrain.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "SSLPretrainParameterNode")
    statement = next(s for s in cls.body if isinstance(s, ast.AnnAssign) and s.target.id == field)
    return statement.annotation, statement.value


def panel_methods() -> tuple[list, str]:
    """The method parameter's choices and default, evaluated as Slicer evaluates them when it loads the module."""
    annotation, default = parameter_annotation("method")
    choice = next(n for n in ast.walk(annotation) if isinstance(n, ast.Call) and ast.unparse(n.func) == "Choice")
    names = {"Commands": Commands}
    evaluate = lambda node: eval(compile(ast.Expression(node), "SSLPretrain.py", "eval"), names)  # noqa: E731
    return list(evaluate(choice.args[0])), evaluate(default)


def test_the_panel_offers_exactly_the_tables_methods_default_first():
    choices, default = panel_methods()
    assert choices == list(METHODS)
    assert default == DEFAULT_METHOD == choices[0]
    for name, entry in METHODS.items():
        assert Commands.methodDescription(name) == entry.description  # the item's tooltip


def test_a_row_added_to_the_table_appears_in_the_panel(monkeypatch):
    """What fails when the panel keeps its own list: a new table row (as moco-v2, swav, ... are added) is missing."""
    rows = {**METHODS, "test-method": MethodEntry("sslseg.ssl.simclr:SimCLR", "a row only this test adds")}
    monkeypatch.setattr(table, "METHODS", rows)
    choices, _ = panel_methods()
    assert choices == list(rows) and "test-method" in choices
    assert Commands.methodDescription("test-method") == "a row only this test adds"


def test_the_ui_lists_no_methods_and_binds_the_options_field():
    tree = ET.parse(ROOT / "SSLPretrain" / "Resources" / "UI" / "SSLPretrain.ui")
    widgets = {w.get("name"): w for w in tree.iter("widget")}
    assert widgets["methodComboBox"].findall("item") == [], "the Choice fills the combo box from the table"
    bound = {w.get("name"): p.find("string").text for w in tree.iter("widget") for p in w.findall("property")
             if p.get("name") == "SlicerParameterName"}
    assert bound["methodComboBox"] == "method"
    assert bound["methodOptionsLineEdit"] == "methodOptions"
    annotation, default = parameter_annotation("methodOptions")
    assert ast.unparse(annotation) == "str" and ast.literal_eval(default) == ""


def test_the_worker_command_line_carries_the_method_and_its_options(tmp_path):
    from sslseg.cli.main import build_parser

    method = next(name for name in METHODS if name != DEFAULT_METHOD)
    args = Commands.pretrainArgs(tmp_path / "data", tmp_path / "run", method, "tiny",
                                 methodOptions=" temperature=0.2, crop-scales=0.3,1.0 ,")
    assert args[args.index("--method") + 1] == method
    assert [args[i + 1] for i, a in enumerate(args) if a == "--method-option"] == ["temperature=0.2",
                                                                                   "crop-scales=0.3,1.0"]
    parsed = build_parser().parse_args(["pretrain", *args])
    assert parsed.method == method
    assert dict(parsed.method_options) == {"temperature": "0.2", "crop_scales": "0.3,1.0"}

    plain = Commands.pretrainArgs(tmp_path / "data", tmp_path / "run")
    assert plain[plain.index("--method") + 1] == DEFAULT_METHOD and "--method-option" not in plain


@pytest.mark.parametrize("text", ["temperature", "=0.2", "0.2, temperature=0.3"])
def test_method_options_that_are_not_key_value_pairs_are_refused(text):
    with pytest.raises(ValueError, match="key=value"):
        Commands.methodOptionArgs(text)
