"""SSLPretrain: self-supervised pretraining of a 3D ViT on unlabelled CT/MR volumes (a folder, or volumes loaded in
the scene), with a live loss curve, Cancel, Resume and a preview of the augmented views.

Thin: widget wiring and the Logic's job handle. The work runs in an engine worker (``PythonSlicer -m sslseg pretrain``)
through ``sslseg.jobs``; scene <-> files and plots come from ``SSLSegmentationLib``, shared with SSLSegmentation (the
module that uses the encoder). torch and monai are never imported here.
"""

import logging
import pathlib
import tempfile
from typing import Annotated

import qt
import slicer
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

from SSLPretrainLib import Commands
from SSLSegmentationLib import Commands as SegmentationCommands
from SSLSegmentationLib import Engine, Plots, SceneData
from SSLSegmentationLib.Commands import isActive
from SSLSegmentationLib.ParameterNodeWidget import ParameterNodeWidgetMixin

#: Settings key holding the last finished pretraining run, which SSLSegmentation offers as its encoder.
LAST_ENCODER_KEY = SegmentationCommands.LAST_ENCODER_KEY

# The method list is the engine's table (sslseg.ssl.table, torch-free), so the engine is found before the parameter
# node below is declared.
Engine.ensureEngineImportable()


class SSLPretrain(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SSL Pretrain")
        self.parent.categories = ["Segmentation.SSL Segmentation"]
        self.parent.dependencies = ["SSLSegmentation"]  # its helper package and the encoder's consumer
        self.parent.contributors = ["SSL Segmentation developers"]
        self.parent.helpText = _(
            "Self-supervised pretraining of a 3D vision transformer on unlabelled CT or MR volumes, by the method "
            "chosen in the panel (hover over a method for what it does; by default MONAI's recipe: in-painting, "
            "out-painting, local pixel shuffling; reconstruction + contrastive loss).")
        self.parent.acknowledgementText = _(
            "Method after MONAI's self-supervised pretraining tutorial (ViTAutoEnc) and Tang et al., CVPR 2022.")


@parameterNodeWrapper
class SSLPretrainParameterNode:
    """Data (a folder, or the scene's volumes checked in the list), method and settings, output folder."""

    dataFolder: pathlib.Path
    useSceneVolumes: bool = False
    reduceSlices: Annotated[int, WithinRange(0, 64)] = 0
    method: Annotated[str, Choice(Commands.methodNames())] = Commands.defaultMethod()
    methodOptions: str = ""
    preset: Annotated[str, Choice(["tiny", "vit-b"])] = "vit-b"
    epochs: Annotated[int, WithinRange(1, 100000)] = 100
    batchSize: Annotated[int, WithinRange(1, 1024)] = 4
    patchSize: Annotated[int, WithinRange(0, 512)] = 0
    learningRate: Annotated[float, WithinRange(1e-7, 1.0)] = 1e-4
    device: Annotated[str, Choice(["auto", "cuda", "cpu"])] = "auto"
    precision: Annotated[str, Choice(["auto", "bf16", "fp16", "off"])] = "auto"
    outputFolder: pathlib.Path
    resume: bool = False
    probeFolder: pathlib.Path
    probeEvery: Annotated[int, WithinRange(1, 1000)] = 5


class SSLPretrainWidget(ParameterNodeWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        # before the base __init__: without a parent it runs setup() itself; its super().__init__() is
        # VTKObservationMixin's (the next class in the MRO), so observers added by setup() are kept
        self.initPanelState()
        ScriptedLoadableModuleWidget.__init__(self, parent)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.loadPanel("SSLPretrain", SSLPretrainLogic())
        self.ui.startButton.connect("clicked(bool)", self.onStartButton)
        self.ui.previewButton.connect("clicked(bool)", self.onPreviewButton)
        self.ui.reducePreviewButton.connect("clicked(bool)", self.onReducePreviewButton)
        self.ui.useEncoderButton.connect("clicked(bool)", self.onUseEncoderButton)
        self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        self.describeMethods()

    def describeMethods(self) -> None:
        """Each method's one line from the table as its item's tooltip (binding the parameter node refills the
        combo box from the Choice, so this follows every binding)."""
        combo = self.ui.methodComboBox
        for index in range(combo.count):
            combo.setItemData(index, Commands.methodDescription(combo.itemText(index)), qt.Qt.ToolTipRole)

    def updateButtons(self, caller=None, event=None) -> None:
        p = self._parameterNode
        running, previewing = isActive(self.logic.job), isActive(self.logic.previewJob)
        hasData = bool(p and (p.useSceneVolumes or SegmentationCommands.pathOrNone(p.dataFolder)))
        self.ui.startButton.text = _("Cancel") if running else (_("Resume") if p and p.resume else _("Start"))
        self.ui.startButton.enabled = running or (not previewing and hasData
                                                  and bool(SegmentationCommands.pathOrNone(p.outputFolder)))
        self.ui.previewButton.enabled = hasData and not running and not previewing
        self.ui.reducePreviewButton.enabled = bool(hasData and p.reduceSlices and not isActive(self.logic.reductionJob))
        self.ui.sceneVolumesComboBox.enabled = bool(p and p.useSceneVolumes)
        self.ui.dataFolderPathLineEdit.enabled = bool(p and not p.useSceneVolumes)
        self.ui.useEncoderButton.enabled = bool(p and SegmentationCommands.isEncoderRun(p.outputFolder))
        self.ui.methodComboBox.toolTip = Commands.methodDescription(p.method) if p else ""

    def onStartButton(self) -> None:
        if isActive(self.logic.job):
            self.ui.progressLabel.text = _("Stopping after the current step (a checkpoint is written)...")
            self.logic.job.cancel()
            return
        self.ui.logTextEdit.clear()
        with slicer.util.tryWithErrorDisplay(_("Pretraining could not start.")):  # may ask: no wait cursor
            self.logic.ensureDependencies()
        with slicer.util.tryWithErrorDisplay(_("Pretraining could not start."), waitCursor=True):
            self.logic.startPretraining(self._parameterNode, self.ui.sceneVolumesComboBox.checkedNodes(),
                                        onEvent=self.onEvent, onLog=self.appendLog, onFinished=self.onFinished)
        self.updateButtons()

    def onEvent(self, event) -> None:
        from sslseg.jobs.events import describe_progress, progress_fraction

        if event.get("event") == "progress":
            self.ui.progressBar.value = int(100 * (progress_fraction(event) or 0))
            self.ui.progressLabel.text = describe_progress(event)
        elif event.get("event") == "stage":
            self.ui.progressLabel.text = _("Preprocessing the volumes (cached for later runs)...")
        elif event.get("event") == "warning":  # e.g. collapsed embeddings: the run goes on, the user decides
            text = _("Warning at step {step}: {message}. {hint}").format(
                step=event.get("step"), message=event.get("message", ""), hint=event.get("hint", ""))
            self.appendLog("warning", text)
            slicer.util.showStatusMessage(text, 30000)

    def appendLog(self, stream, line) -> None:
        self.ui.logTextEdit.appendPlainText(line)

    def onFinished(self, job) -> None:
        self.updateButtons()
        self.ui.progressLabel.text = job.state.value + (f": {job.message}" if job.message else "")
        if job.state.value == "failed":
            self.showFailure(job)
        elif job.state.value == "done" and self.confirm(
                _("Pretraining finished. Use this encoder in SSL Segmentation?"), yesNo=True):
            self.onUseEncoderButton()

    def onPreviewButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Preview failed.")):  # may ask: no wait cursor
            self.logic.ensureDependencies()
        with slicer.util.tryWithErrorDisplay(_("Preview failed."), waitCursor=True):
            self.logic.previewAugmentations(self._parameterNode, self.ui.sceneVolumesComboBox.checkedNodes(),
                                            onLog=self.appendLog, onFinished=self.onPreviewFinished)
        self.updateButtons()

    def onPreviewFinished(self, job) -> None:
        self.updateButtons()
        if job.state.value == "failed":
            self.showFailure(job)

    def onReducePreviewButton(self) -> None:
        self.ui.reduceSummaryLabel.text = _("Hashing the slices...")
        with slicer.util.tryWithErrorDisplay(_("Counting the kept slices failed.")):
            self.logic.previewReduction(self._parameterNode, self.ui.sceneVolumesComboBox.checkedNodes(),
                                        onFinished=self.onReductionPreviewed)
        self.updateButtons()

    def onReductionPreviewed(self, job) -> None:
        self.updateButtons()
        done = job.state.value == "done"
        self.ui.reduceSummaryLabel.text = Commands.describeReduction(job.imported) if done else job.state.value
        if job.state.value == "failed":
            self.showFailure(job)

    def onUseEncoderButton(self) -> None:
        self.logic.offerEncoder(self._parameterNode.outputFolder)
        if slicer.util.mainWindow() is not None:  # without one (a script, some ctest set-ups) selectModule raises
            slicer.util.selectModule("SSLSegmentation")


class SSLPretrainLogic(ScriptedLoadableModuleLogic):
    """The pretraining job handle (``job``) lives here, so a run survives leaving the module."""

    job = None
    previewJob = None
    reductionJob = None
    plot = None

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        Engine.ensureEngineImportable()
        self.confirmAnswers = []  # a script's or test's answers to the panel's questions (Widget.confirm)

    def getParameterNode(self):
        return SSLPretrainParameterNode(super().getParameterNode())

    def _segmentationLogic(self):
        from SSLSegmentation import SSLSegmentationLogic

        return SSLSegmentationLogic()

    def ensureDependencies(self) -> None:
        """torch and the engine's packages, asking before installing (SSLSegmentation's installer)."""
        self._segmentationLogic().ensureDependencies()

    def dataFolder(self, parameters, volumeNodes=()):
        """(The folder the worker reads: the chosen one, or the checked scene volumes written to a temporary one;
        the work folders to remove when the job ends: that temporary one, never a folder the user chose)."""
        if not parameters.useSceneVolumes:
            return SegmentationCommands.pathOrNone(parameters.dataFolder), []
        if not volumeNodes:
            raise ValueError(_("Check the volumes to pretrain on."))
        folder = self._segmentationLogic().workFolder("sslseg-pretrain-")
        SceneData.exportVolumes(volumeNodes, folder)
        return folder, [folder]

    def startPretraining(self, parameters, volumeNodes=(), onEvent=None, onLog=None, onFinished=None,
                         waitForCompletion=False, extraArgs=()):
        """Start (or resume) a pretraining; the loss curve is fed from the worker's events. ``extraArgs``: more
        ``sslseg pretrain`` options (scripts, self-test)."""
        segmentation = self._segmentationLogic()
        segmentation.ensureDependencies()
        outDir = SegmentationCommands.pathOrNone(parameters.outputFolder)
        if outDir is None:
            raise ValueError(_("Choose an output folder for the run."))
        reduceSupported = parameters.reduceSlices == 0 or Commands.engineHasOption("pretrain", "--reduce")
        probeDir = SegmentationCommands.pathOrNone(parameters.probeFolder)
        if probeDir is not None and not Commands.engineHasOption("pretrain", "--probe"):
            logging.warning("this engine has no `sslseg pretrain --probe`: pretraining without the live probes")
            probeDir = None
        dataDir, exported = self.dataFolder(parameters, volumeNodes)
        args = Commands.pretrainArgs(dataDir, outDir, parameters.method,
                                     parameters.preset, parameters.epochs, parameters.batchSize, parameters.patchSize,
                                     parameters.learningRate, parameters.device, parameters.precision,
                                     parameters.resume, parameters.reduceSlices, reduceSupported, list(extraArgs),
                                     methodOptions=parameters.methodOptions, probeDir=probeDir,
                                     probeEvery=parameters.probeEvery)
        self.plot = plot = Plots.reusedPlot(self.plot, slicer.mrmlScene, Plots.lossPlot, keepRows=parameters.resume)
        showChart(plot.chartNode)

        def handleEvent(event):
            Plots.addPretrainEvent(plot, event)
            if onEvent:
                onEvent(event)

        def rememberEncoder(job):
            slicer.app.userSettings().setValue(LAST_ENCODER_KEY, str(outDir))
            return outDir

        def finished(job):  # after a cancel the next Start continues from the checkpoint
            parameters.resume = SegmentationCommands.resumeAfter(job.state.value, outDir, parameters.resume)
            if onFinished:
                onFinished(job)

        self.job = segmentation.newJob("pretrain", args, handleEvent, onLog, rememberEncoder,
                                       workFolders=exported)
        return segmentation.run(self.job, finished, waitForCompletion)

    def previewAugmentations(self, parameters, volumeNodes=(), onLog=None, onFinished=None, waitForCompletion=False):
        """Load the first volume's centre patch and its two augmented views as volume nodes."""
        segmentation = self._segmentationLogic()
        segmentation.ensureDependencies()
        out = segmentation.workFolder("sslseg-preview-")
        dataDir, exported = self.dataFolder(parameters, volumeNodes)
        args = Commands.previewArgs(dataDir, out, parameters.method, parameters.preset, parameters.patchSize)

        def loadViews(job):
            nodes = [slicer.util.loadVolume(path) for path in Commands.previewFiles([l for _, l in job.log])]
            if nodes:
                slicer.util.setSliceViewerLayers(background=nodes[0], foreground=nodes[-1], foregroundOpacity=0.5)
            return nodes

        self.previewJob = segmentation.newJob("preview-views", args, onLog=onLog, importer=loadViews,
                                              workFolders=[out, *exported])
        return segmentation.run(self.previewJob, onFinished, waitForCompletion)

    def stopSceneJobs(self) -> None:
        """Cancel a running views preview: the scene it would load into is closing (pretraining goes on)."""
        if isActive(self.previewJob):
            self.previewJob.cancel(grace_s=2)

    def previewReduction(self, parameters, volumeNodes=(), onFinished=None, waitForCompletion=False):
        """How many axial slices ``--reduce k`` (the panel's k) keeps of the data: ``sslseg reduce`` in a worker;
        the job's ``imported`` is the report's totals and threshold (:func:`Commands.reductionSummary`)."""
        segmentation = self._segmentationLogic()
        segmentation.ensureDependencies()
        if not parameters.reduceSlices:
            raise ValueError(_("Set the reduction's k (0 is off)."))
        report = segmentation.workFolder("sslseg-reduce-")
        dataDir, exported = self.dataFolder(parameters, volumeNodes)
        self.reductionJob = segmentation.newJob(
            "reduce", Commands.reduceArgs(dataDir, parameters.reduceSlices, report),
            importer=lambda job: Commands.reductionSummary(report), workFolders=[report, *exported])
        return segmentation.run(self.reductionJob, onFinished, waitForCompletion)

    def offerEncoder(self, runFolder) -> None:
        """Make a finished run SSLSegmentation's encoder."""
        slicer.app.userSettings().setValue(LAST_ENCODER_KEY, str(runFolder))
        self._segmentationLogic().getParameterNode().encoderPath = pathlib.Path(runFolder)


def showChart(chartNode) -> None:
    """Show the chart in a layout with a plot view (vtkSlicerPlotsLogic), where the Plots module is loaded."""
    plots = getattr(getattr(slicer, "modules", None), "plots", None)
    if plots is not None:
        plots.logic().ShowChartInLayout(chartNode)


class SSLPretrainTest(ScriptedLoadableModuleTest):
    """Runs in Slicer on the CPU: synthetic volumes from the engine, a few tiny-preset steps, cancel + resume, the
    loss plot and the preview volumes."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_pretrain_cancel_resume_preview()

    def test_pretrain_cancel_resume_preview(self):
        from sslseg.synth.cohort import write_unlabelled

        self.delayDisplay("Synthetic volumes")
        work = pathlib.Path(tempfile.mkdtemp(prefix="SSLPretrainTest-", dir=slicer.app.temporaryPath))
        write_unlabelled(work / "volumes", 3, size=(44, 40, 32), spacing=4.0, seed=2)
        logic = SSLPretrainLogic()
        p = logic.getParameterNode()
        p.dataFolder, p.outputFolder = work / "volumes", work / "run"
        p.preset, p.epochs, p.batchSize, p.patchSize, p.device = "tiny", 2, 2, 32, "cpu"
        fast = ["--spacing", "4", "--workers", "0", "--checkpoint-every", "1"]

        self.delayDisplay("Start, and cancel after the first steps")
        p.epochs = 60
        job = logic.startPretraining(p, extraArgs=fast)
        self.waitFor(lambda: job.progress is not None, 180)
        job.cancel()
        self.waitFor(lambda: job.state.finished, 120)
        self.assertEqual(job.state.value, "cancelled")
        self.assertTrue(p.resume)  # ticked: the next Start continues from the checkpoint
        self.assertTrue((work / "run" / "checkpoint.pt").is_file())
        stoppedAt = job.events_of("stopped")[-1]["step"]

        self.delayDisplay("Resume to the end")
        p.epochs = stoppedAt // job.events_of("start")[-1]["steps_per_epoch"] + 2
        job = logic.startPretraining(p, waitForCompletion=True, extraArgs=fast)
        self.assertEqual(job.state.value, "done")
        self.assertEqual(job.events_of("start")[-1]["resumed_at_step"], stoppedAt)
        self.assertTrue((work / "run" / "encoder.safetensors").is_file())
        self.assertGreater(logic.plot.rowCount, 0)
        self.assertEqual(slicer.app.userSettings().value(LAST_ENCODER_KEY), str(work / "run"))

        self.delayDisplay("Preview augmentations")
        job = logic.previewAugmentations(p, waitForCompletion=True)
        self.assertEqual(len(job.imported), 3)
        self.assertEqual(job.imported[0].GetImageData().GetDimensions(), (32, 32, 32))
        self.delayDisplay("SSLPretrain self-test passed")

    @staticmethod
    def waitFor(condition, timeoutSeconds):
        """Let Slicer's event loop run (the job is polled from a Qt timer) until ``condition()`` holds."""
        import time

        deadline = time.monotonic() + timeoutSeconds
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"not done after {timeoutSeconds} s")
            slicer.app.processEvents()
            time.sleep(0.05)
