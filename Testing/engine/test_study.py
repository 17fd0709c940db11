"""``sslseg study`` (issue 18): the statistics on a hand-built study, nested subsets, and a two-cell micro-study end
to end (artefacts, resume skips finished cells, shards merge to the result of one run)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sslseg.errors import SSLSegError
from sslseg.study.plan import initialisations, parse_shard, shard_cells, split_for_study, StudyPlan
from sslseg.study.report import write_report
from sslseg.study.statistics import bootstrap_interval, paired_differences, summarise


def _cell(init: str, n: int, seed: int, case_dice: dict[str, list[float]]) -> dict:
    """A cell result whose held-out cases have the given organ Dice values."""
    held_out = {case: {f"organ{i}": {"dice": d, "hd95_mm": 1.0} for i, d in enumerate(values)}
                for case, values in case_dice.items()}
    means = [float(np.mean(v)) for v in case_dice.values()]
    return {"id": f"n{n}-{init}-s{seed}", "init": init, "cases": n, "seed": seed, "held_out": held_out,
            "mean_dice": float(np.mean(means)), "per_organ": {}, "mean_hd95_mm": 2.0 + seed}


def test_table_spreads_and_paired_differences_of_a_hand_built_study(tmp_path):
    # random: case means a = 0.5 + 0.1 s, b = 0.3 + 0.1 s -> cell means 0.4, 0.5, 0.6
    random = [_cell("random", 2, s, {"a": [0.5 + 0.1 * s], "b": [0.2 + 0.1 * s, 0.4 + 0.1 * s]}) for s in range(3)]
    # ssl: exactly 0.05 better on every (seed, case) pair
    ssl = [_cell("ssl", 2, s, {"a": [0.55 + 0.1 * s], "b": [0.25 + 0.1 * s, 0.45 + 0.1 * s]}) for s in range(3)]
    # worse: -0.1 on case a, +0.1 on case b of seed 0 only; others equal
    summary = summarise(random + ssl)
    row = summary["table"]["random"]["2"]
    assert row["mean"] == pytest.approx(0.5) and row["sd"] == pytest.approx(0.1)
    assert (row["min"], row["max"], row["n"]) == (pytest.approx(0.4), pytest.approx(0.6), 3)
    difference = summary["differences"]["ssl"]["2"]
    assert difference["pairs"] == 6 and difference["mean"] == pytest.approx(0.05)
    assert difference["ci_low"] == pytest.approx(0.05) and difference["ci_high"] == pytest.approx(0.05)
    assert "random" not in summary["differences"]

    plan = StudyPlan("data", initialisations(["runs/ssl"]), [2], 3, 0, ["a", "b"], ["c", "d"]).to_json()
    study = write_report(tmp_path, plan, random + ssl, {"cpu class": "TEST"})
    report = (tmp_path / "report.md").read_text(encoding="ascii")  # plain ASCII: any terminal prints it
    assert "| random | 0.500 +/- 0.100 (0.400..0.600) |" in report
    assert "| ssl | +0.050 [+0.050, +0.050] |" in report
    assert "| random | 3.0 +/- 1.0 |" in report  # HD95 2, 3, 4 mm over the seeds
    assert (tmp_path / "label_efficiency.png").stat().st_size > 1000
    assert json.loads((tmp_path / "study.json").read_text())["summary"] == json.loads(json.dumps(study["summary"]))


def test_pairs_match_seed_and_case_and_the_interval_covers_the_mean():
    random = [_cell("random", 1, s, {"a": [0.5], "b": [0.5]}) for s in range(2)]
    ssl = [_cell("ssl", 1, 0, {"a": [0.6], "b": [0.4]}), _cell("ssl", 1, 1, {"a": [0.9], "b": [0.5]})]
    assert paired_differences(ssl, random) == pytest.approx([0.1, -0.1, 0.4, 0.0])
    low, high = bootstrap_interval([0.1, -0.1, 0.4, 0.0])
    assert low < 0.1 < high and low >= -0.1 and high <= 0.4
    # a seed without a random partner is not paired
    assert len(paired_differences(ssl + [_cell("ssl", 1, 7, {"a": [1.0]})], random)) == 4


def test_subsets_are_nested_fixed_and_disjoint_from_the_held_out_cases():
    names = [f"case{i}" for i in range(9)]
    held_out, pool = split_for_study(names, 2, [1, 2, 4], subset_seed=3, data_dir="d")
    assert len(held_out) == 2 and not set(held_out) & set(pool) and sorted(held_out + pool) == names
    plan = StudyPlan("d", initialisations(["a/run", "b/run"]), [1, 2, 4], 2, 3, held_out, pool)
    subsets = {n: plan.pool[:n] for n in (1, 2, 4)}
    assert subsets[1] == subsets[2][:1] and subsets[2] == subsets[4][:2]
    assert [i.name for i in plan.inits] == ["random", "run", "run_2"]
    # the same seed draws the same split; another seed another
    assert split_for_study(names, 2, [1, 2, 4], 3, "d") == (held_out, pool)
    assert split_for_study(names, 2, [1, 2, 4], 4, "d") != (held_out, pool)
    with pytest.raises(SSLSegError, match="has 9 labelled cases; the study needs 10"):
        split_for_study(names, 2, [8], 0, "d")
    cells = plan.cells()
    assert len(cells) == 3 * 3 * 2 and len({c.id for c in cells}) == len(cells)
    shards = [shard_cells(cells, (i, 4)) for i in range(1, 5)]
    assert sorted(c.id for s in shards for c in s) == sorted(c.id for c in cells)
    assert parse_shard("2/4") == (2, 4)
    for bad in ("0/4", "5/4", "2-4"):
        with pytest.raises(SSLSegError, match="--shard"):
            parse_shard(bad)


MICRO = ["--cases", "1", "--seeds", "1", "--test-cases", "1", "--max-steps", "3",
         "--feature-size", "8", "--crops-per-volume", "1", "--spacing", "6", "6", "6", "--workers", "0", "--amp", "off",
         "--device", "cpu"]


def test_a_two_cell_micro_study_resumes_and_its_shards_merge_to_the_same_result(labelled_dir, tiny_encoder_run,
                                                                               tmp_path, capsys):
    from sslseg.cli.main import main

    def study(out, *extra):
        return main(["study", str(labelled_dir), "--out", str(out), "--encoder", str(tiny_encoder_run), *MICRO,
                     *extra])

    whole = tmp_path / "whole"
    assert study(whole) == 0
    data = json.loads((whole / "study.json").read_text())
    assert data["cells_done"] == data["cells_planned"] == 2
    ids = sorted(c["id"] for c in data["cells"])
    assert ids == ["n1-random-s0", f"n1-{tiny_encoder_run.name}-s0"]
    for cell in data["cells"]:
        assert cell["steps"] == 3 and list(cell["held_out"]) == data["plan"]["held_out"]
        assert 0.0 <= cell["mean_dice"] <= 1.0 and cell["training_cases"] == data["plan"]["pool"][:1]
    assert (whole / "report.md").is_file() and (whole / "label_efficiency.png").is_file()
    # random init gets the encoder's network (tiny at 32^3), not the vit-b default: else SSL - random would compare
    # two architectures
    for cell in ids:
        vit = json.loads((whole / "cells" / cell / "model.json").read_text())["architecture"]["config"]["vit"]
        assert (vit["name"], vit["img_size"]) == ("tiny", 32), cell
    assert data["plan"]["inits"][1]["weights"]  # the encoder's weights are part of the plan
    assert "cells done: 2 of 2" in capsys.readouterr().out

    finished = {p: p.stat().st_mtime_ns for p in whole.glob("cells/*/*") if p.is_file()}
    assert study(whole) == 0  # nothing to run: no cell file is rewritten
    assert {p: p.stat().st_mtime_ns for p in finished} == finished

    killed = whole / "cells" / "n1-random-s0" / "cell.json"  # trained and checkpointed, killed before its score
    before = json.loads(killed.read_text())
    killed.unlink()
    assert study(whole) == 0
    again = json.loads(killed.read_text())
    assert again["held_out"] == before["held_out"] and again["steps"] == 3  # resumed at its end, not retrained

    assert study(whole, "--seeds", "2") == 2  # another plan in the same folder is refused, the study kept
    assert "planned differently (seeds differ)" in capsys.readouterr().err

    first, second = tmp_path / "shard1", tmp_path / "shard2"
    assert study(first, "--shard", "1/2") == 0 and study(second, "--shard", "2/2") == 0
    assert json.loads((first / "study.json").read_text())["cells_done"] == 1
    assert main(["study", "--collect", "--out", str(first), "--from", str(second)]) == 0
    merged = json.loads((first / "study.json").read_text())
    assert merged["cells_done"] == 2
    assert merged["summary"] == data["summary"]
    for mine, theirs in zip(merged["cells"], data["cells"]):
        assert mine["held_out"] == theirs["held_out"]


def test_a_study_planned_before_a_setting_existed_continues_only_with_that_settings_old_value(tmp_path):
    """A plan.json written before ``output_bias`` existed ran every cell with PyTorch's random head: continuing it
    with the tiny recipe's prior would mix two trainings in one table, so it is refused, naming the setting; given
    its old value, it continues."""
    from sslseg.study.run import PLAN, checked_plan

    def plan(**finetune) -> StudyPlan:
        return StudyPlan(data_dir="d", inits=initialisations([]), case_counts=[1], seeds=1, subset_seed=0,
                         held_out=["a"], pool=["b"], finetune={"preset": "tiny", "lr": None, **finetune})

    old = plan().to_json()
    (tmp_path / PLAN).write_text(json.dumps(old))
    with pytest.raises(SSLSegError, match=r"planned differently \(finetune\.output_bias differ\)"):
        checked_plan(tmp_path, plan(output_bias=None))
    checked_plan(tmp_path, plan(output_bias="random", device="cuda"))  # the old value; the device may differ
    assert json.loads((tmp_path / PLAN).read_text()) == old  # the study's own plan is kept
