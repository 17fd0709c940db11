"""The precision policy: what ``--amp auto`` resolves to on each CPU class and task, the ``SSLSEG_AMP`` override, and
the parts that stay in float32 under bf16 (normalisation, attention softmax, losses)."""

import pytest
import torch

from sslseg.errors import SSLSegError
from sslseg.models.presets import get_preset
from sslseg.models.unetr import build_unetr
from sslseg.training import amp, compute
from sslseg.training.amp import Precision, resolve_amp

CPU = torch.device("cpu")
#: /proc/cpuinfo flag lines of the CPU classes met so far.
FLAGS = {"AVX2": "fpu sse2 avx avx2 fma", "AVX512-BF16": "fpu avx2 avx512f avx512_bf16",
         "AMX": "fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile", "AVX-512": "fpu avx2 avx512f"}


@pytest.fixture
def cpu_of_class(monkeypatch):
    """``cpu_of_class(name)``: make /proc/cpuinfo read as a CPU of that class; SSLSEG_AMP unset."""
    monkeypatch.delenv(amp.ENV, raising=False)

    def pretend(name):
        monkeypatch.setattr(compute, "_cpuinfo", lambda: f"model name\t: test CPU\nflags\t\t: {FLAGS[name]}\n")

    return pretend


@pytest.mark.parametrize("cpu_class", sorted(FLAGS))
def test_cpu_classes_are_read_from_the_flags(cpu_of_class, cpu_class):
    cpu_of_class(cpu_class)
    assert compute.cpu_class() == cpu_class
    assert compute.cpu_has_fast_bf16() == (cpu_class in ("AMX", "AVX512-BF16"))


@pytest.mark.parametrize("cpu_class", sorted(FLAGS))
def test_auto_trains_in_float32_on_every_cpu_class(cpu_of_class, cpu_class):
    cpu_of_class(cpu_class)
    assert resolve_amp("auto", CPU, "train") == "off"


@pytest.mark.parametrize("cpu_class", sorted(FLAGS))
def test_auto_segments_in_bf16_only_where_the_cpu_has_bf16_instructions(cpu_of_class, cpu_class):
    cpu_of_class(cpu_class)
    fast = cpu_class in ("AMX", "AVX512-BF16")
    assert resolve_amp("auto", CPU, "inference") == (amp.CPU_INFERENCE_WITH_BF16_INSTRUCTIONS if fast else "off")


def test_the_environment_replaces_auto_and_an_explicit_mode_wins(cpu_of_class, monkeypatch):
    cpu_of_class("AVX2")
    monkeypatch.setenv(amp.ENV, "bf16")
    assert resolve_amp("auto", CPU, "train") == "bf16"
    assert resolve_amp("off", CPU, "train") == "off"
    monkeypatch.setenv(amp.ENV, "auto")
    assert resolve_amp("auto", CPU, "train") == "off"
    monkeypatch.setenv(amp.ENV, "half")
    with pytest.raises(SSLSegError, match="SSLSEG_AMP='half'") as error:
        resolve_amp("auto", CPU)
    assert "off" in error.value.hint


def test_fp16_is_refused_on_a_cpu(cpu_of_class):
    cpu_of_class("AMX")
    with pytest.raises(SSLSegError, match="fp16 needs a CUDA GPU"):
        resolve_amp("fp16", CPU)


def tiny_unetr(seed=0):
    torch.manual_seed(seed)
    return build_unetr(get_preset("tiny").with_img_size(32), 9, 8).eval()


def test_float32_islands_keep_norms_and_attention_in_float32_under_bf16():
    model = Precision("bf16", "cpu").prepare(tiny_unetr())
    seen = {}

    def record(module, inputs, output):
        seen.setdefault(type(module).__name__, set()).add(output.dtype)

    norms = (torch.nn.LayerNorm, torch.nn.InstanceNorm3d)
    for module in model.modules():
        if isinstance(module, norms):
            module.register_forward_hook(record)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.rand(1, 1, 32, 32, 32))
    assert seen == {"LayerNorm": {torch.float32}, "InstanceNorm3d": {torch.float32}}
    assert logits.dtype == torch.bfloat16  # the convolutions do run in bf16
    attention = [m for m in model.modules() if type(m).__name__ == "SABlock"]
    assert len(attention) == 12 and all(m.use_flash_attention for m in attention)


def test_float32_islands_compute_the_same_function_in_float32():
    """Fused attention and float32 norms are the same function: the fp32 output moves only by rounding."""
    x = torch.rand(1, 1, 32, 32, 32)
    plain = tiny_unetr()
    with torch.no_grad():
        expected = plain(x)
        actual = Precision("bf16", "cpu").prepare(tiny_unetr())(x)
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


def test_float32_mode_leaves_the_model_untouched():
    model = Precision("off", "cpu").prepare(tiny_unetr())
    assert not any(getattr(m.forward, "sslseg_fp32", False) for m in model.modules())
    assert not any(m.use_flash_attention for m in model.modules() if type(m).__name__ == "SABlock")


def test_the_fine_tuning_loss_is_float32_under_bf16():
    """The DiceCE of bf16 logits equals the float32 DiceCE of the same logits: its softmax and sums are not lowered."""
    from monai.losses import DiceCELoss

    from sslseg.finetune.run import _dice_ce_loss

    torch.manual_seed(0)
    model = torch.nn.Conv3d(1, 9, 1)
    batch = {"image": torch.rand(1, 2, 1, 16, 16, 16), "label": torch.randint(0, 9, (1, 2, 1, 16, 16, 16))}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = _dice_ce_loss()(model, batch).total
        logits = model(batch["image"].flatten(0, 1))
    assert logits.dtype == torch.bfloat16
    expected = DiceCELoss(to_onehot_y=True, softmax=True)(logits.float(), batch["label"].flatten(0, 1).long())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)


def _start_event(folder):
    import json

    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    return next(e for e in events if e["event"] == "start")


def test_pretraining_reports_what_ran(unlabelled_dir, pretrain_cache, tmp_path):
    """The start event, the done summary and the encoder card name the CPU class, torch threads and precision."""
    import json

    from pretrain_support import run_tiny

    summary = run_tiny(unlabelled_dir, tmp_path / "run", pretrain_cache, epochs=1, max_steps=1, val_every=0)
    expected = {"device": "cpu", "cpu_class": compute.cpu_class(), "torch_threads": torch.get_num_threads(),
                "amp": "off"}
    start = _start_event(tmp_path / "run")
    card = json.loads((tmp_path / "run" / "encoder.json").read_text())
    for reported in (start, summary["compute"], card["provenance"]["training"]["compute"]):
        assert {k: reported[k] for k in expected} == expected
        assert reported["device_name"] == compute.cpu_model()


def test_fine_tuning_reports_what_ran(labelled_dir, tmp_path, run_finetune):
    import json

    summary = run_finetune(labelled_dir, tmp_path / "model", epochs=1, max_steps=1, val_every=0,
                           cache_dir=str(tmp_path / "cache"))
    card = json.loads((tmp_path / "model" / "model.json").read_text())
    for reported in (_start_event(tmp_path / "model"), summary["compute"], card["provenance"]["training"]["compute"]):
        assert (reported["cpu_class"], reported["amp"], reported["torch_threads"]) == \
            (compute.cpu_class(), "off", torch.get_num_threads())
