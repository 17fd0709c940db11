"""The main job (`make demo` runs `sslseg demo`) on small settings: artefacts, report, safe re-runs."""


from sslseg.cli.main import main


def test_demo_writes_data_and_report_and_reruns_in_place(tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--unlabelled-cases", "3", "--labelled-cases", "2", "--size", "32",
            "--spacing", "10", "--pretrain-epochs", "2"]
    assert main(args) == 0
    assert sorted(p.name for p in (out / "data" / "unlabelled").iterdir()) == [f"case_00{i}.nii.gz" for i in range(3)]
    assert (out / "data" / "labelled" / "dataset.json").is_file()
    report = (out / "report.md").read_text()
    assert "3 unlabelled volumes, 2 labelled cases" in report
    assert "| synthesise |" in report and "| pretrain |" in report
    assert (out / "pretrain" / "encoder.safetensors").is_file()
    assert main(args) == 0  # a second run replaces what the first wrote


def test_demo_never_replaces_a_folder_it_did_not_write(tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("user data")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "not written by the demo" in capsys.readouterr().err
    assert (tmp_path / "precious.txt").read_text() == "user data"
