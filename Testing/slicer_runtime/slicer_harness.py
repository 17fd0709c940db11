"""Both Slicer modules under Slicer's own Python layer, in a test process.

Real: the MRML libraries (``slicer-core`` wheel), Slicer v5.12.3's pure-Python layer (``ScriptedLoadableModule``,
``parameterNodeWrapper``, ``util``, ``testing``, ``i18n``) imported from ``SSLSEG_SLICER_PYTHON`` (default
``<repo>/../shared/slicer-python``; never copied here), Qt (PySide6), the modules' ``.ui`` files, real worker
processes (``python -m sslseg``). Not real: the small, named stand-ins in :data:`STAND_INS` (listed in this folder's
README and printed at the start of a test session).

Use :func:`boot` (idempotent) and then :func:`load_module`.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import stat
import sys
import tempfile
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV_VAR = "SSLSEG_SLICER_PYTHON"

#: What is not real, by name: the harness prints this list, and the README lists the same.
STAND_INS = {
    "qt (PythonQt-style access)": "PySide6 is Qt itself; widget classes the .ui files and the GUI connectors use are "
                                  "thin subclasses that read/write Qt properties as attributes and accept "
                                  "connect('signal(args)', slot), as PythonQt does",
    "ctkCollapsibleButton": "a QWidget with text/collapsed properties",
    "ctkPathLineEdit": "a QLineEdit-backed widget with the currentPath property and currentPathChanged(QString)",
    "qMRMLWidget": "a QWidget whose setMRMLScene passes the scene to its descendants (the .ui connections)",
    "qMRMLNodeComboBox": "nodeTypes, currentNode()/setCurrentNode(), currentNodeChanged(vtkMRMLNode*) over the scene",
    "qMRMLCheckableNodeComboBox": "nodeTypes, setCheckState(node, state), checkedNodes(), checkedNodesChanged()",
    "other ctk/qMRML classes": "empty placeholders, only so the GUI connectors' type tuples resolve; never built",
    "slicer.app": "temporaryPath, aboutToQuit (a signal a test can emit), translate() (no translations), "
                  "userSettings() (an INI file in a temporary folder), testingEnabled(), processEvents(), "
                  "applicationLogic(), startupEnvironment(), moduleManager(), coreIOManager() (volume files only), "
                  "layoutManager() -> None, override cursor no-ops",
    "slicer.mrmlScene": "a real vtkMRMLScene with the logics Slicer registers (sslseg.mrml.setup_scene)",
    "slicer.modules.plots/tables": "the real vtkSlicerPlotsLogic/vtkSlicerTablesLogic behind a logic() accessor",
    "slicer.modules.<module>": "the module's path and its ScriptedLoadableModule instance (no module manager)",
    "PythonSlicer": "a launcher script on PATH that runs this interpreter (workers: PythonSlicer -m sslseg ...)",
}


def slicer_python_dir() -> Path | None:
    """Slicer's ``Base/Python`` folder (holding ``slicer/ScriptedLoadableModule.py``), or None if it is absent."""
    candidates = []
    if os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]))
    else:
        candidates.append(ROOT.parent / "shared" / "slicer-python")
        git = ROOT / ".git"  # a git worktree: the main checkout's sibling folder too
        if git.is_file() and git.read_text().startswith("gitdir:"):
            common = Path(git.read_text().split(":", 1)[1].strip()).parent.parent  # <main>/.git
            candidates.append(common.parent.parent / "shared" / "slicer-python")
    for folder in candidates:
        if (folder / "slicer" / "ScriptedLoadableModule.py").is_file():
            return folder.resolve()
    return None


def unavailable_reason() -> str | None:
    """Why the harness cannot run here (a test skips with it), or None."""
    if slicer_python_dir() is None:
        return (f"Slicer's Python layer not found: set {ENV_VAR} to a folder holding slicer/ScriptedLoadableModule.py "
                f"(default {ROOT.parent / 'shared' / 'slicer-python'})")
    for name in ("PySide6", "slicer"):
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed (requirements/ci.txt)"
    return None


_booted = None


def boot():
    """Set up ``qt``, ``ctk`` and ``slicer`` (real Python layer + stand-ins) once; returns the ``slicer`` module."""
    global _booted
    if _booted is not None:
        return _booted
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["slicer-runtime-harness"])
    work = Path(tempfile.mkdtemp(prefix="sslseg-slicer-runtime-"))

    qt = _qt_module()
    sys.modules["qt"] = qt
    ctk = _ctk_module(qt)
    sys.modules["ctk"] = ctk

    import slicer

    layer = str(slicer_python_dir() / "slicer")
    if layer not in slicer.__path__:
        slicer.__path__.append(layer)
    # The wheel imports its own slicer.util (a copy of Slicer's main branch) at `import slicer`: use v5.12.3's.
    spec = importlib.util.spec_from_file_location("slicer.util", os.path.join(layer, "util.py"))
    util = importlib.util.module_from_spec(spec)
    sys.modules["slicer.util"] = util
    spec.loader.exec_module(util)
    slicer.util = util
    for name in ("modules", "moduleNames"):
        module = types.ModuleType(f"slicer.{name}")
        sys.modules[f"slicer.{name}"] = module
        setattr(slicer, name, module)

    from sslseg import mrml

    slicer.mrmlScene = mrml.setup_scene()
    logics = slicer.mrmlScene._sslseg_logics  # Slicer registers the colours logic as a module logic too
    logics["Application"].SetModuleLogic("Colors", logics["Application"].GetColorLogic())
    for name, cls in _qmrml_classes(qt).items():
        setattr(slicer, name, cls)
    slicer.app = Application(app, work, slicer.mrmlScene)
    slicer.selfTests = {}
    _add_core_modules(slicer)
    _install_launcher(work)
    _booted = slicer
    return slicer


def load_module(name: str):
    """Import ``<repo>/<name>/<name>.py`` the way Slicer does (its folder on ``sys.path``), build its
    ``ScriptedLoadableModule`` and register it as ``slicer.modules.<name lower>``; returns the Python module."""
    slicer = boot()
    folder = ROOT / name
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    module = importlib.import_module(name)
    parent = ModuleDescription(name, folder / f"{name}.py")
    instance = getattr(module, name)(parent)
    setattr(slicer.modules, name.lower(), parent)
    setattr(slicer.modules, f"{name}Instance", instance)
    setattr(slicer.moduleNames, name, name)
    return module


def build_widget(name: str):
    """The module's ``<name>Widget`` built as Slicer's module panel builds it: constructed with a parent panel
    (``qMRMLWidget`` with a vertical layout and the scene), then ``setup()``, then ``enter()``."""
    import qt

    slicer = boot()
    module = sys.modules.get(name) or load_module(name)
    panel = slicer.qMRMLWidget()
    panel.setLayout(qt.QVBoxLayout())
    panel.setMRMLScene(slicer.mrmlScene)
    widget = getattr(module, f"{name}Widget")(panel)
    widget.setup()
    panel.isEntered = True
    widget.enter()
    return widget


def close_widget(widget) -> None:
    """What leaving the module and unloading it do: ``exit()`` (the GUI let go of the parameter node),
    ``cleanup()``, and the panel deleted. Without it a later scene change writes into deleted Qt widgets."""
    from PySide6 import QtCore

    widget.exit()
    widget.parent.isEntered = False
    widget.cleanup()
    widget.parent.deleteLater()
    # now, while the application lives: a panel left to interpreter shutdown is freed after Qt's objects and
    # aborted the test process (bool_dealloc refcount error) once a parentless panel was among them
    QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.DeferredDelete)


def banner() -> str:
    """The stand-in list, for the test session's header."""
    lines = [f"Slicer runtime harness: Slicer Python layer from {slicer_python_dir()}; stand-ins (not real):"]
    lines += [f"  - {name}: {what}" for name, what in STAND_INS.items()]
    return "\n".join(lines)


# --- qt ----------------------------------------------------------------------------------------------------------
class _PythonQtStyle:
    """PythonQt's access on a PySide6 object: Qt properties as attributes (read and write), ``name`` for
    ``objectName``, ``className()``, and ``connect("signal(args)", slot)``."""

    def __getattribute__(self, name):
        if name[0] != "_":
            from PySide6 import QtCore

            meta = QtCore.QObject.metaObject(self)
            index = meta.indexOfProperty(name)
            if index >= 0:
                return meta.property(index).read(self)
            if name == "name":
                return QtCore.QObject.objectName(self)
            if name in _PYTHONQT_METHODS:  # PySide6's attribute lookup prefers its own QObject.connect
                return types.MethodType(getattr(_PythonQtStyle, name), self)
        return super().__getattribute__(name)

    def __setattr__(self, name, value):
        if name[0] != "_":
            from PySide6 import QtCore

            meta = QtCore.QObject.metaObject(self)
            index = meta.indexOfProperty(name)
            if index >= 0:
                if isinstance(value, tuple):  # PythonQt takes a tuple for a QStringList
                    value = list(value)
                if not meta.property(index).write(self, value):
                    raise AttributeError(f"cannot set Qt property {name}={value!r} on {type(self).__name__}")
                return
        super().__setattr__(name, value)

    def className(self):
        from PySide6 import QtCore

        return QtCore.QObject.metaObject(self).className()

    def _signal(self, signature: str):
        name, _, args = signature.partition("(")
        signal = super().__getattribute__(name)
        args = args.rstrip(")")
        try:
            return signal[args] if args and "," not in args and "*" not in args else signal
        except (KeyError, IndexError, TypeError):
            return signal

    def connect(self, signature, slot=None, *rest):
        if not isinstance(signature, str):  # QObject.connect(sender, signal, receiver)
            from PySide6 import QtCore

            return QtCore.QObject.connect(self, signature, slot, *rest)
        return self._signal(signature).connect(slot)

    def disconnect(self, signature, slot=None):
        return self._signal(signature).disconnect(slot) if slot else self._signal(signature).disconnect()


_PYTHONQT_METHODS = ("connect", "disconnect", "className")

#: PySide6 classes given PythonQt-style access (the .ui files' classes and what the GUI connectors check).
_STYLED = ["QWidget", "QCheckBox", "QComboBox", "QDoubleSpinBox", "QLabel", "QPlainTextEdit", "QProgressBar",
           "QPushButton", "QSpinBox", "QLineEdit", "QTextEdit", "QSlider", "QDialog", "QFrame", "QGroupBox"]
_qt = None


def _qt_module():
    global _qt
    if _qt is not None:
        return _qt
    from PySide6 import QtCore, QtGui, QtUiTools, QtWidgets

    qt = types.ModuleType("qt", "PySide6 with PythonQt-style widget classes (the Slicer runtime harness)")
    for module in (QtCore, QtGui, QtWidgets):
        qt.__dict__.update({k: getattr(module, k) for k in dir(module) if not k.startswith("_")})  # lazy types
    styled = {name: type(name, (_PythonQtStyle, getattr(QtWidgets, name)), {}) for name in _STYLED}
    styled["QWidget"] = QtWidgets.QWidget  # kept plain: findChildren(qt.QWidget) must find every widget
    qt.__dict__.update(styled)
    qt.QObject = QtCore.QObject
    qt._styled = styled
    qt._custom = {}  # class name -> class, filled by the ctk and qMRML stand-ins

    class QUiLoader(QtUiTools.QUiLoader):
        """Builds the .ui's widgets from the PythonQt-style classes and the named stand-ins."""

        def createWidget(self, className, parent=None, name=""):
            cls = qt._custom.get(className) or styled.get(className)
            if cls is None or cls is QtWidgets.QWidget:
                return super().createWidget(className, parent, name)
            widget = cls(parent)
            widget.setObjectName(name)
            return widget

    qt.QUiLoader = QUiLoader
    _qt = qt
    return qt


def _ctk_module(qt):
    from PySide6 import QtCore, QtWidgets

    ctk = types.ModuleType("ctk", "CTK stand-ins (the Slicer runtime harness)")

    class ctkCollapsibleButton(_PythonQtStyle, QtWidgets.QWidget):
        def __init__(self, parent=None):
            super().__init__(parent)
            self._text, self._collapsed = "", False

        def _getText(self):
            return self._text

        def _setText(self, value):
            self._text = value

        def _getCollapsed(self):
            return self._collapsed

        def _setCollapsed(self, value):
            self._collapsed = bool(value)

        text = QtCore.Property(str, _getText, _setText)
        collapsed = QtCore.Property(bool, _getCollapsed, _setCollapsed)

    class ctkPathLineEdit(_PythonQtStyle, QtWidgets.QWidget):
        currentPathChanged = QtCore.Signal(str)
        Dirs, Files = 0x001, 0x002

        def __init__(self, parent=None):
            super().__init__(parent)
            self._path, self._filters = "", 0

        def _getPath(self):
            return self._path

        def setCurrentPath(self, value):
            value = str(value)
            if value != self._path:
                self._path = value
                self.currentPathChanged.emit(value)

        def _getFilters(self):
            return self._filters

        def _setFilters(self, value):
            self._filters = int(value)

        currentPath = QtCore.Property(str, _getPath, setCurrentPath, notify=currentPathChanged)
        filters = QtCore.Property(int, _getFilters, _setFilters)

    ctk.ctkCollapsibleButton = ctkCollapsibleButton
    ctk.ctkPathLineEdit = ctkPathLineEdit
    for name in ("ctkCheckBox", "ctkCheckablePushButton", "ctkSliderWidget", "ctkDoubleSlider", "ctkDoubleSpinBox",
                 "ctkComboBox", "ctkRangeWidget", "ctkDoubleRangeSlider", "ctkDirectoryButton",
                 "ctkColorPickerButton"):
        setattr(ctk, name, type(name, (_PythonQtStyle, QtWidgets.QWidget), {"__doc__": "placeholder"}))
    qt._custom.update({"ctkCollapsibleButton": ctkCollapsibleButton, "ctkPathLineEdit": ctkPathLineEdit})
    return ctk


def _qmrml_classes(qt):
    from PySide6 import QtCore, QtWidgets

    class qMRMLWidget(_PythonQtStyle, QtWidgets.QWidget):
        mrmlSceneChanged = QtCore.Signal(object)
        isEntered = False

        def __init__(self, parent=None):
            super().__init__(parent)
            self._scene = None

        def mrmlScene(self):
            return self._scene

        def setMRMLScene(self, scene):
            """Also the descendants' (what the .ui's mrmlSceneChanged -> setMRMLScene connections do in Slicer)."""
            self._scene = scene
            for child in QtCore.QObject.findChildren(self, QtWidgets.QWidget):
                if child is not self and hasattr(child, "setMRMLScene") and not isinstance(child, qMRMLWidget):
                    child.setMRMLScene(scene)
            self.mrmlSceneChanged.emit(scene)

    class _NodeList(_PythonQtStyle, QtWidgets.QWidget):
        def __init__(self, parent=None):
            super().__init__(parent)
            self._scene, self._types = None, []

        def _getTypes(self):
            return list(self._types)

        def _setTypes(self, value):
            self._types = list(value)

        nodeTypes = QtCore.Property("QStringList", _getTypes, _setTypes)

        def setMRMLScene(self, scene):
            self._scene = scene

        def mrmlScene(self):
            return self._scene

        def nodes(self):
            if self._scene is None:
                return []
            found = []
            for cls in self._types:
                found += [self._scene.GetNthNodeByClass(i, cls) for i in range(self._scene.GetNumberOfNodesByClass(cls))]
            return [n for n in found if not n.GetHideFromEditors()]

    class qMRMLNodeComboBox(_NodeList):
        currentNodeChanged = QtCore.Signal(object)

        def __init__(self, parent=None):
            super().__init__(parent)
            self._current = None

        def currentNode(self):
            return self._current

        def currentNodeID(self):
            return self._current.GetID() if self._current is not None else ""

        def setCurrentNode(self, node):
            if node is not self._current:
                self._current = node
                self.currentNodeChanged.emit(node)

    class qMRMLCheckableNodeComboBox(_NodeList):
        checkedNodesChanged = QtCore.Signal()

        def __init__(self, parent=None):
            super().__init__(parent)
            self._checked = []

        def setCheckState(self, node, state):
            checked = state in (QtCore.Qt.Checked, 2, True)
            if checked and node not in self._checked:
                self._checked.append(node)
            elif not checked and node in self._checked:
                self._checked.remove(node)
            self.checkedNodesChanged.emit()

        def checkedNodes(self):
            return [n for n in self._checked if self._scene is None or self._scene.IsNodePresent(n)]

    classes = {"qMRMLWidget": qMRMLWidget, "qMRMLNodeComboBox": qMRMLNodeComboBox,
               "qMRMLCheckableNodeComboBox": qMRMLCheckableNodeComboBox}
    qt._custom.update(classes)
    for name in ("qMRMLSliderWidget", "qMRMLSpinBox", "qMRMLRangeWidget"):
        classes[name] = type(name, (_PythonQtStyle, QtWidgets.QWidget), {"__doc__": "placeholder"})
    return classes


# --- slicer.app and the rest -------------------------------------------------------------------------------------
class ModuleDescription:
    """What Slicer's module manager keeps per module (``slicer.modules.<name>``): title, categories, ..., path."""

    def __init__(self, name: str, path: Path) -> None:
        self.name, self.path = name, str(path)

    def widgetRepresentation(self):
        return None


class _ModuleManager:
    def __init__(self):
        from PySide6 import QtCore

        class ModuleManager(_PythonQtStyle, QtCore.QObject):
            moduleAboutToBeUnloaded = QtCore.Signal(str)

        self.object = ModuleManager()


class _IOManager:
    """``coreIOManager()``: volume files, read by the real volumes logic."""

    def __init__(self, scene):
        self.scene = scene

    def fileType(self, filename):
        return "VolumeFile"

    def loadNodes(self, filetype, properties, loaded, messages=None):
        if filetype != "VolumeFile":
            return False
        logic = self.scene._sslseg_logics["Volumes"]
        path = str(properties["fileName"])
        name = properties.get("name") or Path(path).name.split(".")[0]
        node = logic.AddArchetypeVolume(path, name)
        if node is None:
            return False
        loaded.AddItem(node)
        return True


class Application:
    """``slicer.app``: what the modules and Slicer's Python layer ask of the application (see STAND_INS)."""

    applicationName = "Slicer (runtime harness)"

    def __init__(self, qapp, work: Path, scene) -> None:
        from PySide6 import QtCore

        self.qapp, self.scene = qapp, scene
        self.temporaryPath = str(work / "tmp")
        Path(self.temporaryPath).mkdir(parents=True, exist_ok=True)
        self._settingsFile = str(work / "settings.ini")
        self._settings = QtCore.QSettings(self._settingsFile, QtCore.QSettings.IniFormat)
        self._settings.setValue("Developer/SelfTestDisplayMessageDelay", 0)
        self._testing = True
        self._moduleManager = _ModuleManager().object
        self._io = _IOManager(scene)

        class Signals(QtCore.QObject):
            aboutToQuit = QtCore.Signal()  # QCoreApplication's is private: a test cannot emit it

        self._signals = Signals()
        self.aboutToQuit = self._signals.aboutToQuit

    def userSettings(self):
        return self._settings

    def translate(self, context, text):
        return text

    def testingEnabled(self):
        return self._testing

    def setTestingEnabled(self, value: bool):
        self._testing = bool(value)

    def processEvents(self, *args):
        self.qapp.processEvents()

    def applicationLogic(self):
        return self.scene._sslseg_logics["Application"]

    def mrmlScene(self):
        return self.scene

    def startupEnvironment(self):
        from PySide6 import QtCore

        return QtCore.QProcessEnvironment.systemEnvironment()

    def moduleManager(self):
        return self._moduleManager

    def coreIOManager(self):
        return self._io

    def ioManager(self):
        return self._io

    def layoutManager(self):
        return None

    def setOverrideCursor(self, *args):
        pass

    def restoreOverrideCursor(self):
        pass


class _LogicModule:
    def __init__(self, logic):
        self._logic = logic

    def logic(self):
        return self._logic


def _add_core_modules(slicer):
    scene = slicer.mrmlScene
    for name, cls in (("plots", slicer.vtkSlicerPlotsLogic), ("tables", slicer.vtkSlicerTablesLogic)):
        logic = cls()
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(scene._sslseg_logics["Application"])
        scene._sslseg_logics[name] = logic
        setattr(slicer.modules, name, _LogicModule(logic))


def _install_launcher(work: Path) -> None:
    """``PythonSlicer`` on PATH: this interpreter (Slicer's launcher runs its python-real the same way)."""
    folder = work / "bin"
    folder.mkdir(exist_ok=True)
    launcher = folder / "PythonSlicer"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"
