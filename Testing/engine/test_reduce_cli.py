"""``sslseg reduce`` on the real scans: report files, totals that add up, refusal to overwrite."""

from __future__ import annotations

import json
import shutil

from sslseg.cli.main import main


def test_reduce_writes_the_report_and_refuses_to_overwrite(real_data, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(real_data / "mr_abdomen" / "mr.nii.gz", data / "mr.nii.gz")
    shutil.copy(real_data / "ct_thorax_cta" / "ct.nii.gz", data / "ct.nii.gz")
    out = tmp_path / "report"
    assert main(["reduce", str(data), "--threshold", "6", "--out", str(out)]) == 0
    report = json.loads((out / "reduction.json").read_text())
    assert report["threshold"] == 6 and report["scope"] == "volume"
    totals = report["totals"]
    assert totals["volumes"] == 2 and totals["slices"] == 164 + 20
    assert 0 < totals["kept"] < totals["slices"]
    for volume in report["volumes"]:
        assert sorted(volume["kept"] + volume["dropped"]) == list(range(volume["slices"]))
        assert len(volume["dropped_by"]) == len(volume["dropped"])
        assert all(d["distance"] <= 6 for d in volume["dropped_by"])
        assert volume["kept"][0] == volume["order"][0]  # the most inferior slice is always kept
    for name in ("hamming_histogram.png", "examples.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before = (out / "reduction.json").read_text()
    assert main(["reduce", str(data), "--threshold", "2", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "reduction.json").read_text() == before
    assert main(["reduce", str(data), "--threshold", "64", "--scope", "dataset", "--out", str(out),
                 "--overwrite"]) == 0
    report = json.loads((out / "reduction.json").read_text())
    assert report["totals"]["kept"] == 1 and report["scope"] == "dataset"
