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


NORMALISATIONS = {"layer": (lambda t: torch.nn.functional.layer_norm(t, t.shape[-1:]), (-1,)),
                  "instance": (torch.nn.functional.instance_norm, (2, 3, 4)),
                  "group": (lambda t: torch.nn.functional.group_norm(t, 2), (1, 2, 3, 4))}


def naive_bf16_instance_norm(x):
    """Statistics summed in bf16 one voxel after the other: what 'statistics in bf16' would mean (the failing case)."""
    flat = x.flatten(2)
    total = torch.zeros(flat.shape[:2], dtype=torch.bfloat16)
    for i in range(flat.shape[2]):
        total = total + flat[:, :, i]
    mean = (total / flat.shape[2])[..., None, None, None]
    return (x - mean) / x.float().std(dim=(2, 3, 4), keepdim=True).bfloat16()


def lost_beyond_the_input(normalise, axes, x):
    """Largest error of ``normalise(x)`` (bf16 in, bf16 out) against float32 on the same bf16 ``x``, in units of what
    rounding the input to bf16 already cost (|x| / sigma * 2^-8 in output units)."""
    reference = normalise(x.float())
    input_rounding = x.float().abs() / x.float().std(dim=axes, keepdim=True) * 2**-8
    return float(((normalise(x).float() - reference).abs() / input_rounding).max())


@pytest.mark.parametrize("norm", sorted(NORMALISATIONS))
def test_torch_keeps_bf16_normalisation_statistics_in_float32(norm):
    """Why the engine does not cast normalisation inputs up (sslseg.training.fp32_islands): on bf16 input, torch's
    CPU kernels accumulate the statistics in float32 and round the output, so they lose no more than the input's own
    bf16 rounding (measured: 0.4-0.7 of it; statistics summed in bf16 lose thousands of times more)."""
    torch.manual_seed(0)
    x = (torch.randn(2, 8, 12, 12, 12) * 3 + 50).bfloat16()  # an offset of 16 sigma, as activations have
    normalise, axes = NORMALISATIONS[norm]
    assert lost_beyond_the_input(normalise, axes, x) <= 2
    if norm == "instance":  # the check catches statistics kept in bf16
        assert lost_beyond_the_input(naive_bf16_instance_norm, axes, x) > 100


def test_torch_keeps_the_bf16_softmax_sum_in_float32():
    torch.manual_seed(0)
    x = (torch.randn(4, 216, 216) * 4).bfloat16()
    lowered, reference = torch.softmax(x, dim=-1), torch.softmax(x.float(), dim=-1)
    assert lowered.dtype == torch.bfloat16
    assert float(((lowered.float() - reference).abs() / reference).max()) <= 2**-7  # output rounding only


def attention_blocks(model):
    return [m for m in model.modules() if type(m).__name__ == "SABlock"]


def test_mixed_precision_uses_fused_attention_and_float32_leaves_the_model_alone():
    assert all(m.use_flash_attention for m in attention_blocks(Precision("bf16", "cpu").prepare(tiny_unetr())))
    assert len(attention_blocks(tiny_unetr())) == 12
    assert not any(m.use_flash_attention for m in attention_blocks(Precision("off", "cpu").prepare(tiny_unetr())))


def test_fused_attention_computes_the_same_function():
    """The fused path is MONAI's attention: in float32 the output moves only by rounding."""
    x = torch.rand(1, 1, 32, 32, 32)
    with torch.no_grad():
        expected = tiny_unetr()(x)
        actual = Precision("bf16", "cpu").prepare(tiny_unetr())(x)
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


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
