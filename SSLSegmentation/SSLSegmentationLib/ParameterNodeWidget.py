"""The parameter-node lifecycle both module widgets share (Slicer's scripted-module template, written once).

A widget using it sets ``self._parameterNode = self._parameterNodeGuiTag = None`` in ``__init__``, observes the
scene's StartClose/EndClose events with :meth:`onSceneStartClose` / :meth:`onSceneEndClose`, and defines
``initializeParameterNode()`` (which calls :meth:`setParameterNode`) and ``updateButtons(caller=None, event=None)``.
"""

import vtk


class ParameterNodeWidgetMixin:
    """Binds the widget's ``.ui`` to its parameter node (``connectGui``), keeps buttons current on every change, and
    lets go of the node when the module is left or the scene closes. Jobs live in the Logic, so they outlive this."""

    def cleanup(self) -> None:
        self.removeObservers()  # the jobs live in the Logic and keep running

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

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
