"""Issue 18 in the panels: SSLPretrain's optional labelled folder runs the live probes and plots them beside the loss;
SSLSegmentation shows a finished label-efficiency study as a table and a chart."""

from test_slicer_job_lifecycle import pretrain_parameters, stop, wait_until


def test_pretrain_panel_plots_the_live_probes_of_a_labelled_folder(slicer_runtime, tmp_path):
    from slicer_harness import build_widget, close_widget
    from sslseg.synth.cohort import write_labelled

    slicer = slicer_runtime
    slicer.mrmlScene.Clear()
    widget = build_widget("SSLPretrain")
    try:
        logic, ui = widget.logic, widget.ui
        p = pretrain_parameters(logic, tmp_path, epochs=2)
        write_labelled(tmp_path / "labelled", 3, size=(44, 40, 32), spacing=4.0, seed=4)
        p.probeFolder, p.probeEvery = tmp_path / "labelled", 1
        assert ui.probeFolderPathLineEdit.currentPath == str(tmp_path / "labelled")
        ui.startButton.click()
        job = logic.job
        wait_until(slicer, lambda: job.state.finished, 300)
        assert job.state.value == "done", job.log_text
        probed = [e for e in job.events_of("epoch") if "probe_knn_accuracy" in e]
        assert [e["epoch"] for e in probed] == [1, 2]
        assert "probe linear Dice" in logic.plot.columns and "probe random init: kNN accuracy" in logic.plot.columns
        assert logic.plot.values("probe kNN accuracy")[-1] == probed[-1]["probe_knn_accuracy"]
        assert (tmp_path / "run" / "loss_curve.png").is_file()
    finally:
        stop(widget.logic.job)
        close_widget(widget)


def test_segmentation_panel_shows_a_finished_study(slicer_runtime, tmp_path):
    from slicer_harness import build_widget, close_widget
    from sslseg.study.plan import StudyPlan, initialisations
    from sslseg.study.report import write_report

    cells = [{"id": f"n{n}-{init}-s0", "init": init, "cases": n, "seed": 0, "mean_dice": dice, "per_organ": {},
              "held_out": {"case_1": {"liver": {"dice": dice, "hd95_mm": 3.0}}}}
             for init, n, dice in (("random", 1, 0.4), ("random", 2, 0.6), ("ssl", 1, 0.5), ("ssl", 2, 0.62))]
    plan = StudyPlan("data", initialisations(["run/ssl"]), [1, 2], 1, 0, ["case_1"], ["case_2", "case_3"]).to_json()
    write_report(tmp_path / "study", plan, cells, {})

    slicer = slicer_runtime
    slicer.mrmlScene.Clear()
    widget = build_widget("SSLSegmentation")
    try:
        ui, p = widget.ui, widget._parameterNode
        assert not ui.showStudyButton.enabled
        p.studyFolder = tmp_path / "study"
        assert ui.showStudyButton.enabled
        ui.showStudyButton.click()
        table = slicer.mrmlScene.GetFirstNodeByName("Label efficiency")
        assert table is not None and table.GetNumberOfRows() == 4
        assert table.GetCellText(2, 0) == "ssl" and table.GetCellText(2, 7) == "+0.100 [+0.100, +0.100]"
        assert slicer.mrmlScene.GetFirstNodeByName("Label efficiency: mean Dice") is not None
        assert "4 of 4 cells" in ui.studySummaryLabel.text and "case_1" in ui.studySummaryLabel.text
    finally:
        close_widget(widget)
