"""Each ``.ui`` file's ``SlicerParameterName`` properties against the module's parameter node, with Slicer's real
``parameterNodeWrapper``: every name is a parameter, Slicer's ``createGuiConnector`` accepts its type for that widget
class, and the module Widget's ``connectGui`` binds both ways."""

import pathlib

import pytest

from slicer_harness import ROOT, build_widget, close_widget

MODULES = ["SSLPretrain", "SSLSegmentation"]


def bound_widgets(slicer, module):
    """{parameter name: widget} of ``Resources/UI/<module>.ui`` loaded as Slicer loads it."""
    import qt

    panel = slicer.util.loadUI(str(ROOT / module / "Resources" / "UI" / f"{module}.ui"))
    widgets = {w.property("SlicerParameterName"): w for w in panel.findChildren(qt.QWidget)
               if w.property("SlicerParameterName")}
    return panel, widgets


@pytest.mark.parametrize("module", MODULES)
def test_every_parameter_name_has_a_connector(slicer_runtime, module):
    from slicer.parameterNodeWrapper import createGuiConnector

    slicer = slicer_runtime
    wrapper = getattr(__import__(module), f"{module}ParameterNode")
    panel, widgets = bound_widgets(slicer, module)
    assert widgets, f"{module}.ui binds no widget"
    unknown = sorted(set(widgets) - set(wrapper.allParameters))
    assert not unknown, f"{module}.ui names parameters the node does not have: {unknown}"
    for name, widget in widgets.items():
        createGuiConnector(widget, wrapper.allParameters[name].unalteredType)  # raises when no connector fits


def test_a_wrong_name_or_type_is_caught(slicer_runtime):
    """The checks above can fail: a name the node lacks, and a type the widget class cannot show."""
    from slicer.parameterNodeWrapper import createGuiConnector

    slicer = slicer_runtime
    wrapper = __import__("SSLPretrain").SSLPretrainParameterNode
    _, widgets = bound_widgets(slicer, "SSLPretrain")
    assert "noSuchParameter" not in wrapper.allParameters
    with pytest.raises(RuntimeError):
        createGuiConnector(widgets["epochs"], pathlib.Path)  # a QSpinBox cannot show a path


@pytest.mark.parametrize("module", MODULES)
def test_widget_binds_both_ways(slicer_runtime, module):
    """The module Widget built as Slicer builds it (``setup`` loads the .ui and calls ``connectGui``): a parameter
    change shows in its widget, and a widget edit changes the parameter."""
    slicer = slicer_runtime
    slicer.mrmlScene.Clear()
    widget = build_widget(module)
    try:
        p = widget._parameterNode
        p.epochs = 7
        assert widget.ui.epochsSpinBox.value == 7
        widget.ui.epochsSpinBox.value = 9
        assert p.epochs == 9
        p.preset = "tiny"
        assert widget.ui.presetComboBox.currentText == "tiny"
        path = "/tmp/sslseg-harness-binding"
        pathWidget, pathName = ((widget.ui.outputFolderPathLineEdit, "outputFolder") if module == "SSLPretrain"
                                else (widget.ui.modelOutputFolderPathLineEdit, "modelOutputFolder"))
        pathWidget.currentPath = path
        assert getattr(p, pathName) == pathlib.Path(path)
    finally:
        close_widget(widget)


@pytest.mark.parametrize("module", MODULES)
def test_widget_without_parent(slicer_runtime, module):
    """Slicer's documented script use: ``<Module>Widget()`` makes its own top-level panel and sets itself up. It
    failed (AttributeError) while ``setup()`` ran inside the base ``__init__`` before ``initPanelState()``."""
    slicer_runtime.mrmlScene.Clear()
    widget = getattr(__import__(module), f"{module}Widget")()
    try:
        assert widget._parameterNode is not None
        widget._parameterNode.epochs = 5
        assert widget.ui.epochsSpinBox.value == 5
    finally:
        close_widget(widget)
