"""The SSLSegmentation panel trains from partial drawings: the two checkboxes reach the worker, and the engine reads
the scene's cases as partial (slices drawn on; each segmentation's own segments, an empty one truly absent)."""

from test_slicer_job_lifecycle import stop, wait_until


def test_segmentation_panel_trains_from_organs_drawn_on_a_few_slices(slicer_runtime, tmp_path):
    import numpy as np
    import qt

    from slicer_harness import build_widget, close_widget
    from sslseg import mrml
    from sslseg.io.label_map_io import read_label_map
    from sslseg.io.volume_io import read_volume
    from sslseg.labels import LabelTable
    from sslseg.synth.cohort import write_labelled

    slicer = slicer_runtime
    slicer.mrmlScene.Clear()
    SceneData = __import__("SSLSegmentationLib.SceneData").SceneData
    drawings = []
    keep = (("liver", "spleen"), ("right_kidney", "left_kidney"))
    for index, image in enumerate(write_labelled(tmp_path / "cases", 2, size=(40, 36, 32), spacing=6.0, seed=1)):
        volume = mrml.volume_to_node(slicer.mrmlScene, read_volume(image), image.name.split(".")[0])
        labels, table = read_label_map(image.parent.parent / "labelsTr" / image.name,
                                       tmp_path / "cases" / "dataset.json")
        wanted = [table.value_of(name) for name in keep[index]]
        drawn = np.where(np.isin(labels.array, wanted), labels.array, 0)
        drawn[:, :, [k for k in range(drawn.shape[2]) if k % 4]] = 0  # every 4th axial slice
        names = LabelTable.from_names({v: table.name_of(v) for v in wanted})
        segmentation = mrml.labelmap_to_segmentation(slicer.mrmlScene, labels.with_array(drawn), names,
                                                     reference=volume, name=f"{volume.GetName()} drawn")
        segmentation.SetNodeReferenceID(SceneData.REFERENCE_ROLE, volume.GetID())
        drawings.append(segmentation)
    drawings[1].GetSegmentation().AddEmptySegment("gallbladder", "gallbladder")  # truly absent in case 2
    widget = build_widget("SSLSegmentation")
    try:
        logic, ui, p = widget.logic, widget.ui, widget._parameterNode
        for segmentation in drawings:
            ui.trainingSegmentationsComboBox.setCheckState(segmentation, qt.Qt.Checked)
        p.trainFromScene, p.modelOutputFolder = True, tmp_path / "model"
        p.preset, p.epochs, p.patchSize, p.valEvery, p.trainDevice, p.batchSize = "tiny", 1, 32, 0, "cpu", 2
        ui.undrawnSlicesUnknownCheckBox.checked = True
        ui.partialOrgansCheckBox.checked = True
        assert p.undrawnSlicesUnknown and p.partialOrgans  # the checkboxes are bound to the parameters
        ui.trainButton.click()
        train = logic.trainJob
        wait_until(slicer, lambda: train.state.finished, 300)
        assert train.state.value == "done", train.log_text
        assert train.argv[train.argv.index("--undrawn-slices") + 1] == "unknown" and "--partial-organs" in train.argv
        start = train.events_of("start")[-1]
        # every case is partial in slices: the scene's datalist lists each case's drawn axial slices, so the
        # validation case is scored on its drawn slices, not on organs left undrawn elsewhere
        partial = start["partial"]
        assert len(partial["partial_slices"]) == start["train_cases"] + start["val_cases"] == 2
        assert sorted(map(sorted, partial["partial_organs"].values())) == [
            ["gallbladder", "left_kidney", "right_kidney"], ["liver", "spleen"]]
    finally:
        stop(widget.logic.trainJob)
        close_widget(widget)
