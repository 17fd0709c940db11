"""The parameter-node lifecycle both module widgets share (Slicer's scripted-module template, written once).

A widget using it calls :meth:`initPanelState` in ``__init__`` and :meth:`loadPanel` in ``setup`` (the ``.ui``, the
logic, the scene-close observers), and defines ``initializeParameterNode()`` (which calls :meth:`setParameterNode`)
and ``updateButtons(caller=None, event=None)``.
"""

import vtk


class ParameterNodeWidgetMixin:
    """Binds the widget's ``.ui`` to its parameter node (``connectGui``), keeps buttons current on every change, and
    lets go of the node when the module is left or the scene closes. Jobs live in the Logic, so they outlive this."""

    def initPanelState(self) -> None:
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def loadPanel(self, moduleName: str, logic) -> None:
        """``Resources/UI/<moduleName>.ui`` into the panel as ``self.ui``, ``logic`` as ``self.logic``, and the
        parameter node let go of while the scene closes."""
        import slicer

        uiWidget = slicer.util.loadUI(self.resourcePath(f"UI/{moduleName}.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = logic
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

    def cleanup(self) -> None:
        self.removeObservers()  # the jobs live in the Logic and keep running

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)

    def confirm(self, question: str, yesNo: bool = False) -> bool:
        """The user's answer to ``question`` (OK/Cancel, or Yes/No). A script or test answers instead by putting
        booleans in the logic's ``confirmAnswers`` (used in order): with testing enabled Slicer answers every dialog
        False by itself, so no self-test could take the "yes" path."""
        import slicer

        answers = getattr(self.logic, "confirmAnswers", None)
        if answers:
            return bool(answers.pop(0))
        ask = slicer.util.confirmYesNoDisplay if yesNo else slicer.util.confirmOkCancelDisplay
        return ask(question)

    @staticmethod
    def showFailure(job) -> None:
        """A failed job's message, with its hint and log as the details."""
        import slicer

        slicer.util.errorDisplay(job.message, detailedText=(job.hint + "\n\n" + job.log_text).strip())

    def onSceneStartClose(self, caller, event) -> None:
        """The parameter node is let go of; jobs whose result goes into this scene stop (the logic's
        ``stopSceneJobs``: Segment, the views preview), jobs that write files go on (training)."""
        self.setParameterNode(None)
        if self.logic is not None:
            self.logic.stopSceneJobs()

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
            self.updateButtons()
