"""Static contract of the Slicer modules (no Slicer needed): classes, parameter node <-> .ui bindings, widgets used
in Python exist in the .ui with a fitting class, CMakeLists lists exactly the files, heavy imports stay in functions,
Python 3.10 syntax, requirements in step with the engine's."""

from __future__ import annotations

import ast
import re
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("SSLPretrain", "SSLSegmentation")
HEAVY = ("torch", "monai")

#: Parameter type -> widget classes the parameter node wrapper can bind it to (Slicer's guiConnection).
BINDABLE = {
    "bool": {"QCheckBox", "QPushButton"},
    "int": {"QSpinBox", "QSlider"},
    "float": {"QDoubleSpinBox", "ctkSliderWidget"},
    "str": {"QLineEdit", "QTextEdit"},
    "choice": {"QComboBox"},
    "pathlib.Path": {"ctkPathLineEdit"},
    "node": {"qMRMLNodeComboBox"},
}
#: Widget name suffix -> classes a widget of that name may have (the convention the modules follow).
BY_SUFFIX = {
    "Button": {"QPushButton", "QToolButton", "ctkCollapsibleButton"}, "CheckBox": {"QCheckBox"},
    "ComboBox": {"QComboBox", "qMRMLNodeComboBox", "qMRMLCheckableNodeComboBox"}, "SpinBox": {"QSpinBox", "QDoubleSpinBox"},
    "PathLineEdit": {"ctkPathLineEdit"}, "ProgressBar": {"QProgressBar"}, "Label": {"QLabel"},
    "TextEdit": {"QPlainTextEdit", "QTextEdit"},
}


def python_files(module: str) -> list[Path]:
    return sorted((ROOT / module).rglob("*.py"))


def ui_widgets(module: str) -> dict[str, tuple[str, str | None]]:
    """Widget name -> (class, SlicerParameterName or None)."""
    tree = ET.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui")
    widgets = {}
    for element in tree.iter("widget"):
        parameter = None
        for prop in element.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                parameter = prop.find("string").text
        widgets[element.get("name")] = (element.get("class"), parameter)
    return widgets


def parameter_fields(module: str) -> dict[str, str]:
    """Field -> kind (bool, int, float, str, choice, pathlib.Path, node) of the @parameterNodeWrapper class."""
    tree = ast.parse((ROOT / module / f"{module}.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == f"{module}ParameterNode")
    assert any(ast.unparse(d) == "parameterNodeWrapper" for d in cls.decorator_list)
    fields = {}
    for statement in cls.body:
        if isinstance(statement, ast.AnnAssign):
            text = ast.unparse(statement.annotation)
            if "Choice(" in text:
                kind = "choice"
            elif text.startswith("Annotated["):
                kind = text[len("Annotated["):].split(",")[0]
            elif text.startswith("vtkMRML"):
                kind = "node"
            else:
                kind = text
            fields[statement.target.id] = kind
    return fields


@pytest.mark.parametrize("module", MODULES)
def test_four_classes_and_the_parameter_node(module):
    tree = ast.parse((ROOT / module / f"{module}.py").read_text())
    classes = {n.name: [ast.unparse(b) for b in n.bases] for n in tree.body if isinstance(n, ast.ClassDef)}
    assert classes[module] == ["ScriptedLoadableModule"]
    widget_bases = classes[f"{module}Widget"]  # the template's two, after the shared parameter-node lifecycle
    assert widget_bases == ["ParameterNodeWidgetMixin", "ScriptedLoadableModuleWidget", "VTKObservationMixin"]
    assert classes[f"{module}Logic"] == ["ScriptedLoadableModuleLogic"]
    assert classes[f"{module}Test"] == ["ScriptedLoadableModuleTest"]
    assert parameter_fields(module)
    test_methods = [n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
    assert test_methods, "the self-test must test something"


@pytest.mark.parametrize("module", MODULES)
def test_every_binding_matches_a_parameter_of_a_bindable_type(module):
    fields, widgets = parameter_fields(module), ui_widgets(module)
    bound = {parameter: (name, cls) for name, (cls, parameter) in widgets.items() if parameter}
    assert bound, "no SlicerParameterName in the .ui"
    for parameter, (name, cls) in bound.items():
        assert parameter in fields, f"{name} binds {parameter!r}, which {module}ParameterNode lacks"
        assert cls in BINDABLE[fields[parameter]], f"{name} ({cls}) cannot show {parameter}: {fields[parameter]}"
    assert len(bound) == sum(1 for _, p in widgets.values() if p), "two widgets bind one parameter"


@pytest.mark.parametrize("module", MODULES)
def test_every_ui_widget_used_in_python_exists_with_a_fitting_class(module):
    widgets = ui_widgets(module)
    used = set()
    for path in python_files(module):
        used |= set(re.findall(r"self\.ui\.(\w+)", path.read_text()))
    assert used
    for name in used:
        assert name in widgets, f"self.ui.{name} is not in {module}.ui"
        suffix = next((s for s in BY_SUFFIX if name.lower().endswith(s.lower())), None)
        assert suffix and widgets[name][0] in BY_SUFFIX[suffix], f"{name} is a {widgets[name][0]}"


def cmake_listed(module: str) -> set[Path]:
    text = (ROOT / module / "CMakeLists.txt").read_text().replace("${MODULE_NAME}", module)
    listed = set()
    for block in re.findall(r"set\(MODULE_PYTHON_(?:SCRIPTS|RESOURCES)(.*?)\)", text, re.S):
        listed |= {ROOT / module / word for word in block.split()}
    return listed


@pytest.mark.parametrize("module", MODULES)
def test_cmake_lists_every_file_and_only_existing_ones(module):
    listed = cmake_listed(module)
    present = {p for p in (ROOT / module).rglob("*") if p.is_file() and "__pycache__" not in p.parts
               and p.name != "CMakeLists.txt"}
    assert sorted(present - listed) == [], "files not installed by CMake"
    assert sorted(listed - present) == [], "CMake lists files that do not exist"
    text = (ROOT / module / "CMakeLists.txt").read_text()
    assert "WITH_GENERIC_TESTS" in text and "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text
    top = (ROOT / "CMakeLists.txt").read_text()
    assert f"add_subdirectory({module})" in top and 'EXTENSION_DEPENDS "PyTorch"' in top


@pytest.mark.parametrize("module", MODULES)
def test_python_310_and_heavy_imports_only_inside_functions(module):
    for path in python_files(module):
        tree = ast.parse(path.read_text(), filename=str(path), feature_version=(3, 10))
        for node in tree.body:  # module level only: imports inside functions are fine
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not [n for n in names if n.split(".")[0] in HEAVY], f"{path.name} imports {names} at import time"
        for node in ast.walk(tree):  # nothing installs at import: pip calls only inside functions
            if isinstance(node, ast.ClassDef):
                for statement in node.body:
                    assert not (isinstance(statement, ast.Expr) and "pip" in ast.unparse(statement))


def test_module_icons_and_requirements_in_step_with_the_engine():
    for module in MODULES:
        assert (ROOT / module / "Resources" / "Icons" / f"{module}.png").read_bytes()[:4] == b"\x89PNG"
    requirements = (ROOT / "SSLSegmentation" / "Resources" / "SSLSegmentation_requirements.txt").read_text()
    listed = {re.split(r"[<>=!~ ]", line)[0].lower() for line in requirements.splitlines()
              if line.strip() and not line.startswith("#")}
    engine = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = {re.split(r"[<>=!~ \[]", d)[0].lower() for d in engine} - {"torch", "numpy", "simpleitk", "requests"}
    assert listed == wanted


@pytest.mark.parametrize("module", MODULES)
def test_double_spin_boxes_can_show_their_range(module):
    """Qt rounds a QDoubleSpinBox's minimum to its ``decimals``, and the parameter node wrapper sets the minimum from
    ``WithinRange`` but not the decimals: with too few decimals the spin box offers 0, which the validator refuses."""
    tree = ET.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui")
    source = (ROOT / module / f"{module}.py").read_text()
    for element in tree.iter("widget"):
        if element.get("class") != "QDoubleSpinBox":
            continue
        props = {p.get("name"): p[0].text for p in element.findall("property") if len(p)}
        parameter = props.get("SlicerParameterName")
        match = re.search(rf"\b{parameter}: Annotated\[float, WithinRange\(([^,]+),", source) if parameter else None
        if match:
            minimum, decimals = float(match.group(1)), int(props.get("decimals", 2))
            assert round(minimum, decimals) == minimum, f"{element.get('name')}: {decimals} decimals round {minimum}"


def test_slicer_application_apis_are_the_current_ones():
    """``slicer.packaging`` is a submodule nothing imports at start-up (getattr(slicer, "packaging") is None until
    someone imports it); ``slicer.app.settings()`` is deprecated for ``userSettings()``."""
    for module in MODULES:
        for path in python_files(module):
            text = path.read_text()
            assert "slicer.app.settings()" not in text, f"{path.name}: use slicer.app.userSettings()"
            assert 'getattr(slicer, "packaging"' not in text, f"{path.name}: import slicer.packaging"
            if "pip_ensure" in text:
                assert "import slicer.packaging" in text, f"{path.name} uses pip_ensure without importing it"


def test_torch_requirement_covers_monai():
    """The PyTorch extension installs torch with our requirement; monai's own torch requirement must be within it
    (pip_ensure skips torch as monai's dependency, so nothing else would upgrade it)."""
    metadata = pytest.importorskip("importlib.metadata")
    from packaging.requirements import Requirement
    from packaging.version import Version

    try:
        requires = metadata.requires("monai") or []
    except metadata.PackageNotFoundError:
        pytest.skip("monai is not installed here")
    text = (ROOT / "SSLSegmentation" / "SSLSegmentationLib" / "Dependencies.py").read_text()
    ours = re.search(r'TORCH_REQUIREMENT = "([^"]+)"', text).group(1)
    ourFloor = max(Version(s.version) for s in Requirement("torch" + ours).specifier if s.operator in (">=", ">"))
    for line in requires:
        requirement = Requirement(line)
        if requirement.name == "torch" and requirement.marker is None:
            for specifier in requirement.specifier:
                if specifier.operator in (">=", ">"):
                    assert Version(specifier.version) <= ourFloor, f"monai needs {requirement}, we ask torch{ours}"
