"""SSLSegmentation: fine-tune UNETR from a self-supervised ViT on segmentations drawn in Slicer, segment organs of a
volume into named, coloured, terminology-tagged segments, and compare two segmentations (Dice per organ).

Thin: widget wiring and the Logic's job handles. Files <-> scene goes through ``SSLSegmentationLib.SceneData`` (and
the engine's ``sslseg.mrml``); the work runs in engine workers (``PythonSlicer -m sslseg finetune|segment``) through
``sslseg.jobs``. torch and monai are never imported here.
"""

import logging
import pathlib
import tempfile
from typing import Annotated

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

from SSLSegmentationLib import Commands, Engine, Plots, SceneData
from SSLSegmentationLib.ParameterNodeWidget import ParameterNodeWidgetMixin

DEVICES = ["auto", "cuda", "cpu"]
PRECISIONS = ["auto", "bf16", "fp16", "off"]


class SSLSegmentation(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SSL Segmentation")
        self.parent.categories = ["Segmentation.SSL Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["SSL Segmentation developers"]
        self.parent.helpText = _(
            "Fine-tune UNETR, initialised from a self-supervised ViT (SSL Pretrain), on segmentations drawn in "
            "Slicer; segment organs of a volume into named, coloured segments; compare two segmentations.")
        self.parent.acknowledgementText = _("UNETR: Hatamizadeh et al., WACV 2022; implementation from MONAI.")


@parameterNodeWrapper
class SSLSegmentationParameterNode:
    """Train: cases from the scene (segmentations checked in the list) or a folder, encoder, settings, model folder.
    Segment: input volume, model, device, output segmentation (none: a new one). Compare: two segmentations."""

    trainFromScene: bool = True
    trainingFolder: pathlib.Path
    encoderPath: pathlib.Path
    modelOutputFolder: pathlib.Path
    preset: Annotated[str, Choice(["auto", "tiny", "vit-b"])] = "auto"
    epochs: Annotated[int, WithinRange(1, 100000)] = 100
    batchSize: Annotated[int, WithinRange(1, 256)] = 1
    patchSize: Annotated[int, WithinRange(0, 512)] = 0
    learningRate: Annotated[float, WithinRange(0.0, 1.0)] = 0.0  # 0: the preset's recipe (sslseg.finetune.recipes)
    valEvery: Annotated[int, WithinRange(0, 1000)] = 1
    trainDevice: Annotated[str, Choice(DEVICES)] = "auto"
    trainPrecision: Annotated[str, Choice(PRECISIONS)] = "auto"
    resumeTraining: bool = False
    undrawnSlicesUnknown: bool = False
    partialOrgans: bool = False
    inputVolume: vtkMRMLScalarVolumeNode
    modelFolder: pathlib.Path
    segmentDevice: Annotated[str, Choice(DEVICES)] = "auto"
    outputSegmentation: vtkMRMLSegmentationNode  # none selected: a new segmentation
    show3D: bool = False
    largestComponent: bool = False
    overlap: Annotated[float, WithinRange(0.0, 0.9)] = 0.25
    referenceSegmentation: vtkMRMLSegmentationNode
    predictedSegmentation: vtkMRMLSegmentationNode
    studyFolder: pathlib.Path


class SSLSegmentationWidget(ParameterNodeWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        # before the base __init__: without a parent it runs setup() itself; its super().__init__() is
        # VTKObservationMixin's (the next class in the MRO), so observers added by setup() are kept
        self.initPanelState()
        ScriptedLoadableModuleWidget.__init__(self, parent)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.loadPanel("SSLSegmentation", SSLSegmentationLogic())
        self.ui.trainingSegmentationsComboBox.connect("checkedNodesChanged()", self.updateLabelSet)
        self.ui.trainButton.connect("clicked(bool)", self.onTrainButton)
        self.ui.segmentButton.connect("clicked(bool)", self.onSegmentButton)
        self.ui.compareButton.connect("clicked(bool)", self.onCompareButton)
        self.ui.showStudyButton.connect("clicked(bool)", self.onShowStudyButton)
        self.ui.retrainButton.connect("clicked(bool)", self.onRetrainButton)
        self.initializeParameterNode()
        self.offerLastEncoder()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            self._parameterNode.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")

    def offerLastEncoder(self) -> None:
        """No encoder chosen: the last finished SSL Pretrain run (an application setting), if it is still there."""
        p = self._parameterNode
        lastRun = slicer.app.userSettings().value(Commands.LAST_ENCODER_KEY)
        if p and Commands.pathOrNone(p.encoderPath) is None and lastRun and Commands.isEncoderRun(lastRun):
            p.encoderPath = pathlib.Path(lastRun)

    def updateButtons(self, caller=None, event=None) -> None:
        p, logic = self._parameterNode, self.logic
        training, segmenting = Commands.isActive(logic.trainJob), Commands.isActive(logic.segmentJob)
        problem = Commands.trainingProblem(p.trainFromScene, p.trainingFolder, p.modelOutputFolder,
                                           len(self.checkedTrainingPairs())) if p else ""
        self.ui.trainButton.text = _("Cancel") if training else (
            _("Resume training") if p and p.resumeTraining else _("Start training"))
        self.ui.trainButton.enabled = training or bool(p and not problem)
        self.ui.trainButton.toolTip = "" if training else problem  # Commands: plain English, no Qt
        self.ui.segmentButton.text = _("Cancel") if segmenting else _("Segment")
        self.ui.segmentButton.enabled = segmenting or bool(p and p.inputVolume and Commands.isModelFolder(p.modelFolder))
        self.ui.compareButton.enabled = bool(p and p.referenceSegmentation and p.predictedSegmentation)
        self.ui.retrainButton.enabled = bool(p and p.predictedSegmentation and Commands.isModelFolder(p.modelFolder)
                                             and not training and not segmenting)
        self.ui.showStudyButton.enabled = bool(p and Commands.pathOrNone(p.studyFolder))

    def checkedTrainingPairs(self) -> list:
        return SceneData.trainingPairs(self.ui.trainingSegmentationsComboBox.checkedNodes())

    def updateLabelSet(self) -> None:
        self.updateButtons()
        pairs = self.checkedTrainingPairs()
        labels = SceneData.labelSet([s for _, s in pairs])
        described = ", ".join(f"{name} = {value}" for name, value in labels.items())
        self.ui.labelSetLabel.text = (f"{len(pairs)} case(s); labels: {described}" if pairs
                                      else _("Check segmentations drawn on a volume (their source volume)."))

    def onTrainButton(self) -> None:
        if Commands.isActive(self.logic.trainJob):
            self.logic.trainJob.cancel()
            return
        self.ui.trainLogTextEdit.clear()
        with slicer.util.tryWithErrorDisplay(_("Training could not start.")):  # may ask: no wait cursor
            self.logic.ensureDependencies()
        with slicer.util.tryWithErrorDisplay(_("Training could not start."), waitCursor=True):
            self.logic.startTraining(self._parameterNode, self.ui.trainingSegmentationsComboBox.checkedNodes(),
                                     onEvent=self.onTrainEvent, onLog=self.appendTrainLog,
                                     onFinished=self.onTrainFinished)
        self.updateButtons()

    def onTrainEvent(self, event) -> None:
        from sslseg.jobs.events import describe_progress, progress_fraction

        if event.get("event") == "progress":
            self.ui.trainProgressBar.value = int(100 * (progress_fraction(event) or 0))
            self.ui.trainProgressLabel.text = describe_progress(event)

    def appendTrainLog(self, stream, line) -> None:
        self.ui.trainLogTextEdit.appendPlainText(line)

    def onTrainFinished(self, job) -> None:
        self.updateButtons()
        self.ui.trainProgressLabel.text = job.state.value + (f": {job.message}" if job.message else "")
        if job.state.value == "failed":
            self.showFailure(job)

    def onSegmentButton(self) -> None:
        if Commands.isActive(self.logic.segmentJob):
            self.logic.segmentJob.cancel(grace_s=2)
            return
        p = self._parameterNode
        if p.outputSegmentation is not None and not self.confirm(
                _("Replace the segments of {name}?").format(name=p.outputSegmentation.GetName())):
            return
        with slicer.util.tryWithErrorDisplay(_("Segmentation could not start.")):  # may ask: no wait cursor
            self.logic.ensureDependencies()
        with slicer.util.tryWithErrorDisplay(_("Segmentation could not start."), waitCursor=True):
            self.logic.startSegmentation(p.inputVolume, p.modelFolder, p.segmentDevice, p.outputSegmentation,
                                         p.show3D, onFinished=self.onSegmentFinished, overlap=p.overlap,
                                         largestComponent=p.largestComponent)
        self.ui.segmentStatusLabel.text = _("Segmenting...")
        self.updateButtons()

    def onSegmentFinished(self, job) -> None:
        self.updateButtons()
        self.ui.segmentStatusLabel.text = job.state.value
        if job.state.value == "failed":
            self.showFailure(job)
        elif job.imported is not None:
            self._parameterNode.predictedSegmentation = job.imported

    def onCompareButton(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Comparison failed."), waitCursor=True):
            showTable(self.logic.compare(p.predictedSegmentation, p.referenceSegmentation))


    def onRetrainButton(self) -> None:
        """The segmentation Segment made (``predictedSegmentation``), corrected by hand, joins the checked training
        segmentations; training continues from the current model into a new model folder."""
        p = self._parameterNode
        self.ui.trainLogTextEdit.clear()
        with slicer.util.tryWithErrorDisplay(_("Retraining could not start.")):  # may ask: no wait cursor
            self.logic.ensureDependencies()
        with slicer.util.tryWithErrorDisplay(_("Retraining could not start."), waitCursor=True):
            self.logic.startRetraining(p, p.predictedSegmentation, self.ui.trainingSegmentationsComboBox.checkedNodes(),
                                       onEvent=self.onTrainEvent, onLog=self.appendTrainLog,
                                       onFinished=self.onTrainFinished)
        self.updateButtons()

    def onShowStudyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("The study could not be shown."), waitCursor=True):
            table, plot, report = self.logic.showStudy(self._parameterNode.studyFolder)
            showChart(plot.chartNode)
            showTable(table)
            self.ui.studySummaryLabel.text = report


class SSLSegmentationLogic(ScriptedLoadableModuleLogic):
    """Job handles (``trainJob``, ``segmentJob``) live here, so a job survives leaving the module."""

    trainJob = None
    trainPlot = None
    segmentJob = None
    _drivers: list = []

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        Engine.ensureEngineImportable()
        self.confirmAnswers = []  # a script's or test's answers to the panel's questions (Widget.confirm)

    def getParameterNode(self):
        return SSLSegmentationParameterNode(super().getParameterNode())

    def ensureDependencies(self) -> None:
        from SSLSegmentationLib import Dependencies

        Dependencies.ensureDependencies(ask=not slicer.app.testingEnabled(), requester="SSL Segmentation")

    def newJob(self, command, args, onEvent=None, onLog=None, importer=None, workFolders=()):
        """An engine job; ``workFolders`` (made by :meth:`workFolder`) are removed once it has ended."""
        from sslseg.jobs import Job

        job = Job(command, args, python=Engine.pythonExecutable(), env=Engine.workerEnvironment(),
                  on_event=onEvent, on_log=onLog, importer=importer)
        job.workFolders = [pathlib.Path(folder) for folder in workFolders]
        return job

    @staticmethod
    def workFolder(prefix):
        """A new folder under Slicer's temporary path for one job's files (scene exports, results to import)."""
        return pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir=slicer.app.temporaryPath))

    def run(self, job, onFinished=None, waitForCompletion=False):
        """Start ``job``: wait for it (scripts, tests; raises on failure) or poll it from a Qt timer. Its work
        folders are removed when it has ended, whatever the outcome (a resume exports the scene again)."""

        def finish(job):
            try:
                if onFinished:
                    onFinished(job)
            finally:
                removeWorkFolders(job)

        if waitForCompletion:
            try:
                job.start().wait()
            except Exception:
                removeWorkFolders(job)
                raise
            finish(job)
            return job
        from SSLSegmentationLib.JobDriver import JobDriver

        stopJobsWhenSlicerQuits()
        driver = JobDriver(job, finish)
        SSLSegmentationLogic._drivers = [d for d in SSLSegmentationLogic._drivers if not d.job.state.finished]
        SSLSegmentationLogic._drivers.append(driver)
        driver.start()
        return job

    def stopSceneJobs(self) -> None:
        """Cancel a running Segment: the scene it would import into is closing (training writes files: it goes on)."""
        if Commands.isActive(self.segmentJob):
            self.segmentJob.cancel(grace_s=2)

    @staticmethod
    def stopAllJobs():
        """Cancel every job still running and wait for its worker to stop (a training run writes its checkpoint
        first; a worker that does not stop within its grace time is killed): connected to Slicer's aboutToQuit, so
        no worker outlives the application holding memory (a GPU's too)."""
        active = [d.job for d in SSLSegmentationLogic._drivers if d.job.state.active]
        for job in active:
            job.cancel()
        for job in active:
            job.wait(timeout=job.grace_s + 30, raise_on_failure=False)
            removeWorkFolders(job)

    def startTraining(self, parameters, segmentationNodes=(), onEvent=None, onLog=None, onFinished=None,
                      waitForCompletion=False, extraArgs=()):
        """Fine-tune on the checked scene pairs (exported to a temporary folder) or on a folder; ``extraArgs``: more
        ``sslseg finetune`` options (scripts, self-test)."""
        self.ensureDependencies()
        pairs = SceneData.trainingPairs(segmentationNodes) if parameters.trainFromScene else None
        problem = Commands.trainingProblem(parameters.trainFromScene, parameters.trainingFolder,
                                           parameters.modelOutputFolder, len(pairs) if pairs is not None else None)
        if problem:
            raise ValueError(problem)
        outDir = Commands.pathOrNone(parameters.modelOutputFolder)
        workFolder = None
        if parameters.trainFromScene:
            workFolder = self.workFolder("sslseg-train-")
            SceneData.exportTrainingPairs(pairs, workFolder, listOrgans=parameters.partialOrgans,
                                          annotatedSlices=parameters.undrawnSlicesUnknown)
            # the organ lists and annotated slices are in the datalist
            dataDir = (workFolder / "datalist.json" if parameters.partialOrgans or parameters.undrawnSlicesUnknown
                       else workFolder)
        else:
            dataDir = Commands.pathOrNone(parameters.trainingFolder)
        return self._train(parameters, dataDir, outDir, workFolder, parameters.resumeTraining, None, onEvent, onLog,
                           onFinished, waitForCompletion, extraArgs)

    def startRetraining(self, parameters, correctedSegmentation, segmentationNodes=(), onEvent=None, onLog=None,
                        onFinished=None, waitForCompletion=False, extraArgs=()):
        """Segment -> correct -> retrain: the checked scene pairs plus ``correctedSegmentation`` (it replaces a checked
        segmentation of its own volume) train on from the current model (``--from-model``) into a new folder beside
        it (:func:`Commands.retrainedFolder`), which becomes the model Segment uses; the Dice chart continues."""
        self.ensureDependencies()
        current = Commands.pathOrNone(parameters.modelFolder)
        if current is None or not Commands.isModelFolder(current):
            raise ValueError(_("Choose the model folder to retrain (a finished training)."))
        volume = SceneData.referenceVolume(correctedSegmentation) if correctedSegmentation else None
        if volume is None:
            raise ValueError(_("The corrected segmentation has no source volume: segment a volume first."))
        others = [(v, s) for v, s in SceneData.trainingPairs(segmentationNodes) if v.GetID() != volume.GetID()]
        validation = others[-1:] if len(others) >= 2 else []  # the correction always trains
        folder = self.workFolder("sslseg-retrain-")
        SceneData.exportTrainingPairs([(volume, correctedSegmentation)] + others[:len(others) - len(validation)],
                                      folder, validationPairs=validation, listOrgans=parameters.partialOrgans,
                                      annotatedSlices=parameters.undrawnSlicesUnknown)
        if not validation:  # a datalist without validation cases would be split at random: keep every case training
            extraArgs = [*extraArgs, "--val-fraction", "0"]
        return self._train(parameters, folder / "datalist.json", Commands.retrainedFolder(current), folder, True,
                           current, onEvent, onLog, onFinished, waitForCompletion, extraArgs)

    def _train(self, parameters, dataDir, outDir, workFolder, continuePlot, fromModel, onEvent, onLog, onFinished,
               waitForCompletion, extraArgs):
        """Run ``sslseg finetune`` on ``dataDir`` into ``outDir`` (``fromModel``: continuing that model), feeding the
        module's one Dice chart (kept, not cleared, when ``continuePlot``; a continuing model's steps are drawn after
        the chart's last step); ``workFolder``: the scene export to remove when the job ends, or None."""
        plot = Plots.reusedPlot(self.trainPlot, slicer.mrmlScene, Plots.dicePlot, keepRows=continuePlot)
        showChart(plot.chartNode)
        offset = Plots.lastStep(plot) if fromModel else 0

        def handleEvent(event):
            shifted = offset and isinstance(event.get("step"), (int, float))
            Plots.addFinetuneEvent(plot, {**event, "step": event["step"] + offset} if shifted else event)
            if onEvent:
                onEvent(event)

        def registerModel(job):
            parameters.modelFolder = outDir  # the new model is the one Segment uses
            return outDir

        args = Commands.finetuneArgs(dataDir, outDir, Commands.pathOrNone(parameters.encoderPath), parameters.preset,
                                     parameters.epochs, parameters.batchSize, parameters.patchSize,
                                     parameters.learningRate, parameters.valEvery, parameters.trainDevice,
                                     parameters.trainPrecision, parameters.resumeTraining and not fromModel,
                                     list(extraArgs), fromModel=fromModel,
                                     undrawnSlicesUnknown=parameters.undrawnSlicesUnknown,
                                     partialOrgans=parameters.partialOrgans)
        self.trainJob = self.newJob("finetune", args, handleEvent, onLog, registerModel,
                                    workFolders=[workFolder] if workFolder else [])
        self.trainPlot = plot

        def finished(job):  # after a cancel the next Start continues from the checkpoint (a retraining starts anew)
            if not fromModel:
                parameters.resumeTraining = Commands.resumeAfter(job.state.value, outDir, parameters.resumeTraining)
            if onFinished:
                onFinished(job)

        return self.run(self.trainJob, finished, waitForCompletion)

    def startSegmentation(self, inputVolume, modelFolder, device="auto", outputSegmentation=None, show3D=False,
                          onFinished=None, waitForCompletion=False, overlap=0.25, largestComponent=False):
        """Segment ``inputVolume``; the result replaces ``outputSegmentation``'s segments, or is a new node.
        ``overlap``, ``largestComponent``: ``sslseg segment``'s ``--overlap`` and ``--largest-component``."""
        self.ensureDependencies()
        work = self.workFolder("sslseg-segment-")
        image = SceneData.exportVolume(inputVolume, work / "input.nii.gz")
        labels = work / "labels.nii.gz"

        def importResult(job):
            node = SceneData.importLabelMap(slicer.mrmlScene, labels, inputVolume,
                                            f"{inputVolume.GetName()} organs", replaceNode=outputSegmentation)
            if show3D:
                node.CreateClosedSurfaceRepresentation()
            slicer.util.setSliceViewerLayers(background=inputVolume, fit=False)
            return node

        args = Commands.segmentArgs(image, modelFolder, labels, device, overlap=overlap,
                                    largestComponent=largestComponent)
        self.segmentJob = self.newJob("segment", args, importer=importResult, workFolders=[work])
        return self.run(self.segmentJob, onFinished, waitForCompletion)

    def compare(self, predictedSegmentation, referenceSegmentation):
        """Dice per organ as a table node (the engine's evaluation, organs matched by name)."""
        volume = SceneData.referenceVolume(referenceSegmentation) or SceneData.referenceVolume(predictedSegmentation)
        if volume is None:
            raise ValueError(_("The reference segmentation has no source volume to compare on."))
        table, scores = SceneData.compareSegmentations(slicer.mrmlScene, predictedSegmentation,
                                                       referenceSegmentation, volume)
        logging.info("Dice per organ: %s", {s.organ: round(s.dice, 4) for s in scores})
        return table


    def showStudy(self, studyFolder):
        """A finished ``sslseg study`` (``study.json``) as a table node and a chart (mean Dice vs N per
        initialisation); returns ``(table node, plot, one line about it)``."""
        from SSLSegmentationLib import StudyView

        study = StudyView.readStudy(studyFolder)
        table = StudyView.studyTable(slicer.mrmlScene, study)
        plot = StudyView.studyPlot(slicer.mrmlScene, study)
        plan = study.get("plan", {})
        report = pathlib.Path(str(studyFolder)) / "report.md"
        return table, plot, _("{done} of {planned} cells, held out: {held}; full report: {report}").format(
            done=study.get("cells_done"), planned=study.get("cells_planned"),
            held=", ".join(plan.get("held_out", [])), report=report)


def removeWorkFolders(job) -> None:
    """Delete a finished job's work folders (never a folder the user chose: only those made by ``workFolder``)."""
    import shutil

    for folder in getattr(job, "workFolders", ()):
        shutil.rmtree(folder, ignore_errors=True)
    job.workFolders = []


_quitHooked = []


def stopJobsWhenSlicerQuits() -> None:
    """Connect :meth:`SSLSegmentationLogic.stopAllJobs` to ``slicer.app.aboutToQuit`` (once per session)."""
    if not _quitHooked:
        slicer.app.aboutToQuit.connect(SSLSegmentationLogic.stopAllJobs)
        _quitHooked.append(True)


def showChart(chartNode) -> None:
    """Show a plot chart in the layout (only in the application, not in a bare scene): vtkSlicerPlotsLogic switches
    to a layout with a plot view and makes the chart the active one."""
    plots = getattr(getattr(slicer, "modules", None), "plots", None)
    if plots is not None:
        plots.logic().ShowChartInLayout(chartNode)


def showTable(tableNode) -> None:
    """Switch to a layout with a table view and show ``tableNode`` there (as Segment Statistics does)."""
    layoutManager = slicer.app.layoutManager()
    tables = getattr(getattr(slicer, "modules", None), "tables", None)
    if layoutManager is not None and tables is not None:
        layoutManager.setLayout(tables.logic().GetLayoutWithTable(layoutManager.layout))
    slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(tableNode.GetID())
    slicer.app.applicationLogic().PropagateTableSelection()


class SSLSegmentationTest(ScriptedLoadableModuleTest):
    """Runs in Slicer on the CPU: synthetic labelled volumes from the engine, a few tiny fine-tuning steps, a
    segmentation, asserts on segment names, colours, terminology and geometry, and a comparison."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_train_segment_compare()

    def test_train_segment_compare(self):
        import numpy as np

        from sslseg import mrml
        from sslseg.io.label_map_io import read_label_map
        from sslseg.io.volume_io import read_volume
        from sslseg.synth.cohort import write_labelled
        from sslseg.terminology import load_terminology

        self.delayDisplay("Synthetic labelled cases")
        logic = SSLSegmentationLogic()
        work = pathlib.Path(tempfile.mkdtemp(prefix="SSLSegmentationTest-", dir=slicer.app.temporaryPath))
        images = write_labelled(work / "cases", 3, size=(40, 36, 32), spacing=6.0, seed=1)
        temporary = pathlib.Path(slicer.app.temporaryPath)
        jobFolders = set(temporary.glob("sslseg-*"))
        hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
        study = hierarchy.CreateStudyItem(hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "Phantom"), "CT")
        segmentations = []
        for image in images:
            volume = mrml.volume_to_node(slicer.mrmlScene, read_volume(image), image.name.split(".")[0])
            volumeItem = hierarchy.GetItemByDataNode(volume) or hierarchy.CreateItem(study, volume)
            hierarchy.SetItemParent(volumeItem, study)  # as a DICOM import places it: in a patient's study
            labels, table = read_label_map(image.parent.parent / "labelsTr" / image.name,
                                           work / "cases" / "dataset.json")  # the organ names
            segmentation = mrml.labelmap_to_segmentation(slicer.mrmlScene, labels, table, reference=volume,
                                                         name=f"{volume.GetName()} reference")
            segmentation.SetNodeReferenceID(SceneData.REFERENCE_ROLE, volume.GetID())
            segmentations.append(segmentation)

        self.delayDisplay("A few tiny fine-tuning steps")
        parameters = logic.getParameterNode()
        parameters.trainFromScene = True
        parameters.modelOutputFolder = work / "model"
        parameters.preset, parameters.epochs, parameters.patchSize, parameters.valEvery = "tiny", 2, 32, 1
        parameters.trainDevice = "cpu"
        fast = ["--spacing", "6", "6", "6", "--feature-size", "8", "--workers", "0", "--crops-per-volume", "2"]
        job = logic.startTraining(parameters, segmentations, waitForCompletion=True, extraArgs=fast)
        self.assertEqual(job.state.value, "done")
        self.assertTrue((work / "model" / "model.json").is_file())
        self.assertGreater(logic.trainPlot.rowCount, 0)

        self.delayDisplay("Segment")
        volume = SceneData.referenceVolume(segmentations[0])
        job = logic.startSegmentation(volume, parameters.modelFolder, "cpu", waitForCompletion=True)
        result = job.imported
        names = mrml.segment_names(result)
        self.assertTrue(set(names) <= set(SceneData.labelSet(segmentations)))
        self.assertIn("liver", names)  # organ names, not label_1 ... (a table lost on the way would fail here)
        labelMap = mrml.segmentation_to_labelmap(result, volume, names or ["none"])
        source = mrml.node_to_volume(volume)
        self.assertEqual(labelMap.shape, source.shape)
        np.testing.assert_allclose(labelMap.affine, source.affine, atol=1e-4)
        terminology = load_terminology()
        for name in names:  # each organ in its terminology colour
            segment = result.GetSegmentation().GetSegment(mrml.segment_id(result, name))
            np.testing.assert_allclose(segment.GetColor(), terminology.color_of(name), atol=1e-3)
        self.assertIsNotNone(terminology.lookup("liver"))
        resultItem = hierarchy.GetItemByDataNode(result)
        self.assertTrue(resultItem)  # an invalid item (0) would also "share" a parent with another invalid one
        self.assertEqual(hierarchy.GetItemParent(resultItem), study)
        self.assertEqual(set(temporary.glob("sslseg-*")), jobFolders)  # the jobs' scene exports are gone

        self.delayDisplay("Compare")
        table = logic.compare(result, segmentations[0])
        self.assertEqual(table.GetCellText(table.GetNumberOfRows() - 1, 0), "mean")
        self.delayDisplay("SSLSegmentation self-test passed")
