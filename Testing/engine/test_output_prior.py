"""``--output-bias prior`` (the tiny recipe's): a new model's head starts at log(share of the training voxels) of each
class, so its untrained prediction is the class frequencies (``sslseg.finetune.output_prior``). The shares are
counted here from the cached label maps the run trained on, independently of the engine's counting."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from sslseg.io.pairing import find_labelled_cases

HEAD_BIAS = "out.conv.conv.bias"


def _shares_in_cache(model_dir, card: dict) -> np.ndarray:
    """(C,) share of each run class among the voxels of every cached case, background first."""
    value_of = {label["name"]: label["value"] for label in card["labels"]}
    counts = np.zeros(len(value_of) + 1)
    for record_path in (model_dir / "cache").glob("*.json"):
        record = json.loads(record_path.read_text())
        case_values = np.load(record_path.with_suffix(".labels.npy"))
        for label in [{"value": 0, "name": None}, *record["labels"]]:
            counts[value_of.get(label["name"], 0)] += np.count_nonzero(case_values == label["value"])
    return counts / counts.sum()


@pytest.mark.parametrize("output_bias", ["prior", "random"])
def test_the_head_starts_at_the_class_shares_of_the_training_voxels(labelled_dir, tmp_path, run_finetune,
                                                                    output_bias):
    names = tuple(case.name for case in find_labelled_cases(labelled_dir)[0])
    out = tmp_path / output_bias
    # one step at the warm-up's first rate (3e-3 / 50) moves the bias by about 6e-5
    run_finetune(labelled_dir, out, only_cases=names, max_steps=1, val_every=0, lr=3e-3, warmup_steps=50,
                 output_bias=output_bias)
    card = json.loads((out / "model.json").read_text())
    shares = _shares_in_cache(out, card)
    assert len(shares) >= 4 and shares[0] > 0.5 and shares.min() < 0.05  # a skewed, multi-organ case set
    starting = np.exp(load_file(out / "model.safetensors")[HEAD_BIAS].astype(np.float64))
    starting /= starting.sum()
    assert card["provenance"]["training"]["output_bias"] == output_bias
    if output_bias == "prior":
        np.testing.assert_allclose(starting, shares, rtol=1e-3)
    else:
        assert np.abs(starting - shares).max() > 0.1
