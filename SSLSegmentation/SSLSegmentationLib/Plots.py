"""A live training curve in Slicer: a table node fed row by row from worker events, one plot series per column,
and a plot chart node. MRML only (the caller shows the chart in the layout), so it runs against slicer-core too."""

from __future__ import annotations

import math

import slicer
import vtk


class TrainingPlot:
    """Table ``<name> table`` with an x column and y columns (added when a row first names them, earlier rows NaN),
    a scatter-with-lines series per y column, and chart ``<name>``.

    Args:
        scene: the vtkMRMLScene; name: chart title; xColumn/xTitle: the x column and its axis title;
        yTitle: the y axis title.
    """

    def __init__(self, scene, name: str, xColumn: str, xTitle: str, yTitle: str) -> None:
        self.scene, self.xColumn = scene, xColumn
        self.tableNode = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{name} table")
        self.chartNode = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", name)
        self.chartNode.SetTitle(name)
        self.chartNode.SetXAxisTitle(xTitle)
        self.chartNode.SetYAxisTitle(yTitle)
        self.seriesNodes: dict[str, object] = {}
        self._addColumn(xColumn)

    @property
    def columns(self) -> list[str]:
        table = self.tableNode.GetTable()
        return [table.GetColumnName(i) for i in range(table.GetNumberOfColumns())]

    @property
    def rowCount(self) -> int:
        return self.tableNode.GetTable().GetNumberOfRows()

    def addRow(self, x: float, values: dict) -> None:
        """One point per y column (missing or non-numeric values are NaN: a gap in that curve)."""
        for column in values:
            if column not in self.columns:
                self._addColumn(column)
                self._addSeries(column)
        table = self.tableNode.GetTable()
        for index, column in enumerate(self.columns):
            value = x if index == 0 else values.get(column)
            number = float(value) if isinstance(value, (int, float)) and value is not None else math.nan
            table.GetColumn(index).InsertNextValue(number)
        table.Modified()
        self.tableNode.Modified()

    def clear(self) -> None:
        """No rows and no y columns or series: as new, on the same table and chart nodes."""
        table = self.tableNode.GetTable()
        for column in self.columns[1:]:
            table.RemoveColumnByName(column)
        table.SetNumberOfRows(0)
        self.tableNode.Modified()
        self.chartNode.RemoveAllPlotSeriesNodeIDs()
        for series in self.seriesNodes.values():
            self.scene.RemoveNode(series)
        self.seriesNodes = {}

    def inScene(self, scene) -> bool:
        """Whether the chart and table nodes are still in ``scene`` (not removed by the user or a scene close)."""
        return bool(scene.IsNodePresent(self.chartNode) and scene.IsNodePresent(self.tableNode))

    def values(self, column: str) -> list[float]:
        array = self.tableNode.GetTable().GetColumnByName(column)
        return [array.GetValue(i) for i in range(array.GetNumberOfTuples())]

    def _addColumn(self, column: str) -> None:
        array = vtk.vtkDoubleArray()
        array.SetName(column)
        for _ in range(self.rowCount):
            array.InsertNextValue(math.nan)
        self.tableNode.GetTable().AddColumn(array)

    def _addSeries(self, column: str) -> None:
        series = self.scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", column)
        series.SetAndObserveTableNodeID(self.tableNode.GetID())
        series.SetXColumnName(self.xColumn)
        series.SetYColumnName(column)
        series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
        series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle)
        series.SetUniqueColor()
        self.chartNode.AddAndObservePlotSeriesNodeID(series.GetID())
        self.seriesNodes[column] = series


def reusedPlot(previous: TrainingPlot | None, scene, make, keepRows: bool) -> TrainingPlot:
    """The plot for a new Start: the previous Start's, while its nodes are in ``scene`` (its rows kept for a resume,
    which continues the curve, else cleared), or ``make(scene)``: one chart per module however often Start is
    pressed, also when runs fail at once."""
    if previous is not None and previous.inScene(scene):
        if not keepRows:
            previous.clear()
        return previous
    return make(scene)


def lossPlot(scene, name: str = "SSL pretraining loss") -> TrainingPlot:
    """Training loss per step (``progress`` events) and validation loss per epoch (``epoch`` events)."""
    return TrainingPlot(scene, name, "step", "step", "loss")


#: The series of a joint-embedding method's collapse measure (``embedding_std`` in its progress events): about 1
#: while the embeddings spread, falling to 0 when they collapse.
EMBEDDING_STD = "embedding std"


def addPretrainEvent(plot: TrainingPlot, event: dict) -> bool:
    """Add a pretraining event to the loss plot; True when it added a point. Progress events of a joint-embedding
    method add their ``embedding_std`` as a second series (the MONAI recipe's have none)."""
    if event.get("event") == "progress" and event.get("step") is not None:
        values = {"loss": event.get("loss")}
        if isinstance(event.get("embedding_std"), (int, float)):
            if EMBEDDING_STD not in plot.columns:
                plot.chartNode.SetYAxisTitle("loss / embedding std")
            values[EMBEDDING_STD] = event["embedding_std"]
        plot.addRow(event["step"], values)
        return True
    if event.get("event") != "epoch":
        return False
    values = {"validation loss": event.get("val_loss")} if event.get("val_loss") is not None else {}
    values.update(probeValues(event))
    if values:
        plot.addRow(event.get("step", 0), values)
    return bool(values)


def probeValues(event: dict) -> dict:
    """The live probes of an ``epoch`` event (``sslseg pretrain --probe``), one series each: the encoder's linear
    Dice and kNN accuracy, and the random initialisation's beside them (all in 0..1)."""
    if event.get("probe_linear_dice") is None and event.get("probe_knn_accuracy") is None:
        return {}
    values = {"probe linear Dice": event.get("probe_linear_dice")}
    values.update({f"probe {name}": value for name, value in (event.get("probe") or {}).items()})
    return {name: value for name, value in values.items() if isinstance(value, (int, float))}


def lastStep(plot: TrainingPlot) -> float:
    """The x of the plot's last row (0 without rows): where a continuing run's curve starts."""
    return max(plot.values(plot.xColumn), default=0)


def dicePlot(scene, name: str = "SSL segmentation training") -> TrainingPlot:
    """Fine-tuning by step: training loss (``progress`` events) and validation Dice, mean and per organ (``epoch``
    events); both lie in about 0..1, so one chart holds them."""
    return TrainingPlot(scene, name, "step", "step", "loss / Dice")


def addFinetuneEvent(plot: TrainingPlot, event: dict) -> bool:
    """Add a fine-tuning ``progress`` (training loss) or ``epoch`` event with validation Dice; True when it added a
    point."""
    if event.get("event") == "progress" and event.get("step") is not None:
        plot.addRow(event["step"], {"training loss": event.get("loss")})
        return True
    if event.get("event") != "epoch" or event.get("val_dice") is None:
        return False
    values = {"mean Dice": event["val_dice"]}
    values.update({organ: dice for organ, dice in (event.get("val_dice_per_organ") or {}).items()})
    plot.addRow(event.get("step", plot.rowCount + 1), values)
    return True
