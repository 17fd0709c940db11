"""The contract every method of the table keeps (issue 16): reproducible views, a finite loss at batch 2 that falls
on the tiny cohort, target networks that get no gradient and follow the online one after each step, an encoder that
loads whole into UNETR, a bit-identical mid-epoch resume, and `sslseg pretrain --method M` then `sslseg finetune
--encoder RUN` end to end. Tiny preset, 32^3 patches, CPU, float32."""

import math

import numpy as np
import pytest
import torch
from pretrain_support import load_state, run_tiny, step_losses

from sslseg.cli.main import main
from sslseg.errors import SSLSegError
from sslseg.models.encoder_io import load_encoder_into
from sslseg.models.presets import get_preset
from sslseg.ssl import StepContext, create_method
from sslseg.ssl.queue import FeatureQueue
from sslseg.ssl.table import DEFAULT_METHOD, METHODS

#: The joint-embedding methods (the MONAI recipe has its own tests: test_pretrain_*.py).
JOINT = [name for name in METHODS if name != DEFAULT_METHOD]
PRESET = get_preset("tiny").with_img_size(32)
#: Methods with multi-crop: besides patch-sized views, smaller ``local*`` views (16^3 for a 32^3 patch).
MULTI_CROP = {"swav"}
#: Methods whose views are sub-cubes of a grid (16^3 for a 32^3 patch) instead of patch-sized views.
SUB_CUBES = {"relative-position", "rubiks-cube"}


def views_of(method, seed=0):
    size = method.region_size(32)
    region = np.random.default_rng(7).random((1, size, size, size), dtype=np.float32)
    return method.make_views(region, np.random.RandomState(seed))


def batch_of(method, batch=2):
    samples = [views_of(method, seed) for seed in range(batch)]
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


def targets(model):
    """The parameters of the model's target (momentum) networks: every frozen one outside the backbone's unused
    norm_cross_attn."""
    return {n: p for n, p in model.named_parameters() if not p.requires_grad and ".norm_cross_attn." not in n}


@pytest.mark.parametrize("name", list(METHODS))
def test_views_are_deterministic_for_a_seed_and_patch_sized(name):
    method = create_method(name)
    a, b, c = views_of(method, 0), views_of(method, 0), views_of(method, 1)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    local = [k for k in a if k.startswith("local")]
    labels = [k for k in a if a[k].dtype == torch.long]  # pretext-task targets (e.g. the rotation's index)
    boxes = [k for k in a if k.startswith("box")]  # where a view was cut (PGL)
    assert bool(local) == (name in MULTI_CROP)
    assert all(a[k].ndim <= 1 for k in labels) and all(a[k].shape == (2, 3) for k in boxes)
    edge = 16 if name in SUB_CUBES else 32
    images = [k for k in a if k not in local + labels + boxes]
    assert images and all(a[k].dtype == torch.float32 and a[k].shape[-4:] == (1, edge, edge, edge) for k in images)
    assert all(a[k].shape == (1, 16, 16, 16) for k in local)  # the multiple of 16 nearest half the patch


@pytest.mark.parametrize("name", JOINT)
def test_loss_is_finite_targets_get_no_gradient_and_follow_after_step(name):
    method = create_method(name)
    torch.manual_seed(0)
    model = method.build_model(PRESET)
    before = {n: p.detach().clone() for n, p in targets(model).items()}
    output = method.step_loss(model, batch_of(method), StepContext(total_steps=10))
    assert output.total.ndim == 0 and math.isfinite(float(output.total.detach()))
    assert {"embedding_std", "effective_rank"} <= output.parts.keys()
    output.total.backward()
    assert all(p.grad is None for p in targets(model).values())
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01)
    method.after_step(model, StepContext(step=1, total_steps=10))
    changed = [n for n, p in targets(model).items() if not torch.equal(p, before[n])]
    assert len(changed) == len(before), "every target parameter follows the online network"


@pytest.mark.parametrize("name", list(METHODS))
def test_the_encoder_loads_whole_into_unetr(name):
    from sslseg.models.unetr import build_unetr

    method = create_method(name)
    state = method.encoder_state(method.build_model(PRESET))
    unetr = build_unetr(PRESET, out_channels=3, feature_size=8)
    report = load_encoder_into(unetr, state)
    vit = [k for k in unetr.state_dict() if k.startswith("vit.")]
    assert report.complete and len(report.transferred) == len(state) == len(vit)


def test_options_are_typed_and_unknown_ones_refused():
    method = create_method("simclr", proj_dim="64", temperature="0.2")
    assert method.options["proj_dim"] == 64 and method.options["temperature"] == 0.2
    with pytest.raises(SSLSegError, match="simclr has no option momentum"):
        create_method("simclr", momentum="0.9")
    with pytest.raises(SSLSegError, match="temperature must be > 0"):
        create_method("simclr", temperature="0")


@pytest.mark.parametrize("name", JOINT)
def test_the_loss_falls_on_a_batch_of_the_tiny_cohort(name, unlabelled_dir, pretrain_cache):
    """Why not "the loss falls over a few dozen steps of the whole cohort" as for the MONAI recipe: the tiny ViT's
    mean-pooled features of different phantom patches are nearly equal at initialisation, and with 4 patches per batch
    SimCLR's loss stays at chance, log(2B - 1), for the first hundred-odd steps (measured: 30 steps at lr 1e-4..1e-3,
    with and without normalisation in the projector). The weaker property, which still fails when the gradient path
    is broken (no gradient to the backbone, a detached target, a wrong sign): on one fixed batch of 4 cohort patches
    the loss falls well below its start in 25 steps.

    Queues (MoCo v2) are held at their initial random keys: on one fixed batch the queue would fill with the batch's
    own keys, negatives equal to the positives, and the loss would rise by construction (measured 2.72 -> 4.66)."""
    from sslseg.data.cache import build_cache
    from sslseg.data.dataset import PatchViewsDataset
    from sslseg.data.preprocess import PreprocessSettings
    from sslseg.io.scan import find_volumes

    entries, _ = build_cache(find_volumes(unlabelled_dir), pretrain_cache, PreprocessSettings(spacing_mm=4.0))
    method = create_method(name)
    dataset = PatchViewsDataset(entries[:4], 32, 1, method, seed=0)
    samples = [dataset[(0, i)] for i in range(4)]
    batch = {k: torch.stack([s[k] for s in samples]) for k in samples[0]}
    torch.manual_seed(0)
    model = method.build_model(PRESET)
    queues = [(q, {k: v.clone() for k, v in q.state_dict().items()}) for q in model.modules()
              if isinstance(q, FeatureQueue)]
    optimizer = torch.optim.AdamW(method.param_groups(model, 1e-3, 1e-5), lr=1e-3)
    ctx, losses = StepContext(total_steps=25), []
    for step in range(25):
        loss = method.step_loss(model, batch, ctx).total
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        method.after_step(model, ctx.at(step + 1))
        for queue, initial in queues:  # negatives stay the initial ones (see the docstring)
            queue.load_state_dict(initial)
        ctx = ctx.at(step + 1)
        losses.append(float(loss.detach()))
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) / 5 < FALL.get(name, 0.5) * losses[0], losses


#: The mean loss of the last 5 of 25 steps on one batch, as a share of the first step's (default 0.5).
#: MoCo v3: its keys come from the momentum network, which barely moves in 25 steps (momentum 0.99 -> 1), so only the
#: query side learns: measured 1.12 -> 0.63 (0.56); a broken gradient path stays at chance (~1.0 of the start).
#: VICReg: the variance hinge (weight 25) dominates, and 4 nearly equal patches give their 1024 projection
#: dimensions almost no spread to start from: measured 23.07 -> 22.65 (0.982) in 25 steps with the views of
#: sslseg.ssl.views3d (0.966 in 50); a broken gradient path keeps the loss of this fixed batch exactly where it
#: started (1.0: VICReg has no momentum network).
#: MoCo v2: against the initial queue of 1024 random unit keys the loss is bounded below by about
#: log(1 + sum_j exp(q.n_j / T) / exp(1 / T)) = log(1 + 1024 * 1.10 / e^5) = 2.15 once q.k = 1 (q.n_j ~ N(0, 1/128));
#: measured 2.59 -> 2.15 (0.83, views3d views), at that bound; a broken gradient path stays at its start (1.0).
#: SwAV: on one batch of 4 nearly equal patches the Sinkhorn codes are almost uniform (entropy 4.70-4.78 of the
#: log(128) = 4.85 maximum: the equipartition spreads each sample over >= K / B = 32 prototypes, and the samples' scores
#: differ by about 0.06 against epsilon 0.05), so the swapped prediction is first pushed towards uniform predictions:
#: measured 5.32 -> 4.86 (0.91), i.e. down to log K, with the prototypes still frozen (100 steps). A broken gradient
#: path (or a wrong sign) keeps it at or above the start (>= 1.0).
#: Rotation: cross-entropy over 4 axial turns, chance log 4 = 1.39: measured 1.47 -> 0.88 (0.60) in 25 steps on the
#: fixed batch; a broken gradient path stays at its start (1.0).
#: Rubik's cube: the turns' cross-entropy, summed over the 8 cubes, is 11.1 of the 15.7 a fresh model starts at, and
#: 32 cube turns fall more slowly than one order (measured 17.4 -> 10.8 in 25 steps). That every parameter, the
#: backbone's included, gets a gradient is checked by ``test_loss_is_finite_targets_get_no_gradient_...`` above.
FALL = {"moco-v3": 0.8, "vicreg": 0.99, "moco-v2": 0.85, "swav": 0.95, "rotation": 0.7, "rubiks-cube": 0.7}


@pytest.mark.parametrize("name", JOINT)
def test_resume_mid_epoch_is_bit_identical(name, unlabelled_dir, pretrain_cache, tmp_path):
    settings = dict(method=name, epochs=2, val_every=1)
    run_tiny(unlabelled_dir, tmp_path / "whole", pretrain_cache, **settings)
    run_tiny(unlabelled_dir, tmp_path / "run", pretrain_cache, max_steps=5, **settings)  # 4 steps per epoch
    assert load_state(tmp_path / "run")["state"]["step_in_epoch"] == 1
    run_tiny(unlabelled_dir, tmp_path / "run", pretrain_cache, resume=True, **settings)
    a, b = load_state(tmp_path / "whole"), load_state(tmp_path / "run")
    different = [k for k in a["model"] if not torch.equal(a["model"][k], b["model"][k])]
    assert not different, different[:3]
    assert a["state"]["step_losses"] == b["state"]["step_losses"] and a["state"]["epochs"] == b["state"]["epochs"]


def test_resume_with_other_method_options_is_refused(unlabelled_dir, pretrain_cache, tmp_path):
    run_tiny(unlabelled_dir, tmp_path / "run", pretrain_cache, method="simclr", epochs=1, max_steps=1)
    with pytest.raises(SSLSegError, match="other settings.*method_options"):
        run_tiny(unlabelled_dir, tmp_path / "run", pretrain_cache, method="simclr", epochs=1, resume=True,
                 method_options={"proj_dim": "64"})


def test_the_temperature_is_identity_only_where_a_method_has_one(tmp_path):
    """``--temperature T`` and ``--method-option temperature=T`` train the same SimCLR, so a resume that says it the
    other way is the same run; BYOL has no temperature, so ``--temperature`` is refused instead of ignored."""
    from sslseg.pretrain.config import PretrainConfig
    from sslseg.pretrain.run import make_method, run_identity

    def identity(**settings):
        config = PretrainConfig(data_dir=str(tmp_path / "data"), out_dir=str(tmp_path / "run"), **settings)
        return run_identity(config, make_method(config))

    by_flag = identity(method="simclr", temperature=0.3)
    assert by_flag == identity(method="simclr", method_options={"temperature": "0.3"})
    assert by_flag != identity(method="simclr")
    assert "temperature" not in identity(method="byol")
    assert identity(method=DEFAULT_METHOD)["temperature"] == PretrainConfig.temperature
    with pytest.raises(SSLSegError, match="byol has no temperature"):
        identity(method="byol", temperature=0.3)


#: A non-default option each method records in its encoder card (default: the projector's width).
CARD_OPTION = {"rotation": ("rotations", "cube", "cube"), "relative-position": ("head_hidden", "64", 64),
               "rubiks-cube": ("permutations", "24", 24)}


@pytest.mark.parametrize("name", JOINT)
def test_pretrain_then_finetune_with_its_encoder(name, unlabelled_dir, pretrain_cache, labelled_dir, tmp_path,
                                                 capsys):
    run = tmp_path / "run"
    key, text, value = CARD_OPTION.get(name, ("proj_dim", "32", 32))
    assert main(["pretrain", str(unlabelled_dir), "--out", str(run), "--method", name, "--preset", "tiny",
                 "--patch-size", "32", "--spacing", "4", "--workers", "0", "--max-steps", "1", "--val-every", "0",
                 "--cache", str(pretrain_cache), "--events", "-", "--method-option", f"{key}={text}"]) == 0
    card = __import__("json").loads((run / "encoder.json").read_text())
    assert card["provenance"]["ssl_method"]["name"] == name
    assert card["provenance"]["ssl_method"]["options"][key] == value
    assert card["architecture"]["trained_in"] == "monai.networks.nets.ViT"
    assert main(["finetune", str(labelled_dir), "--out", str(tmp_path / "model"), "--encoder", str(run),
                 "--preset", "tiny", "--patch-size", "32", "--feature-size", "8", "--spacing", "6", "6", "6",
                 "--workers", "0", "--max-steps", "1", "--val-every", "0", "--events", "-"]) == 0
    events = [__import__("json").loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert any("embedding_std" in e and "effective_rank" in e for e in events if e["event"] == "progress")
    vit_tensors = len(create_method(name).encoder_state(create_method(name).build_model(PRESET)))
    assert [e["transferred"] for e in events if e["event"] == "encoder"] == [vit_tensors]


def _moco_v2(queue_size):
    method = create_method("moco-v2", queue_size=queue_size)
    torch.manual_seed(0)
    return method, method.build_model(PRESET)


def _keys(model, batch):
    """The normalised keys the momentum network gives the batch now: view1 rows, then view2 rows."""
    with torch.no_grad():
        views = torch.cat([batch["view1"], batch["view2"]])
        return torch.nn.functional.normalize(model.target_projector(model.target_backbone(views)), dim=1)


def test_moco_v2_enqueues_exactly_the_step_keys_in_order_and_wraps_around():
    method, model = _moco_v2(queue_size=6)
    batch = batch_of(method)  # 2 samples: 4 keys per step
    initial = model.queue.features.clone()
    keys = _keys(model, batch)
    method.step_loss(model, batch, StepContext(total_steps=10)).total.backward()
    method.after_step(model, StepContext(step=1, total_steps=10))
    torch.testing.assert_close(model.queue.features[:4], keys, rtol=0, atol=1e-6)
    assert torch.equal(model.queue.features[4:], initial[4:]) and int(model.queue.position) == 4
    second = _keys(model, batch)  # the key network has moved by EMA: other keys
    assert not torch.allclose(second, keys)
    method.step_loss(model, batch, StepContext(step=1, total_steps=10))
    method.after_step(model, StepContext(step=2, total_steps=10))
    torch.testing.assert_close(model.queue.features[[4, 5, 0, 1]], second, rtol=0, atol=1e-6)
    torch.testing.assert_close(model.queue.features[2:4], keys[2:], rtol=0, atol=1e-6)
    assert int(model.queue.position) == 2


def test_moco_v2_validation_leaves_the_queue_and_the_pending_keys_alone():
    method, model = _moco_v2(queue_size=16)
    train, val = batch_of(method), {k: v.flip(0) + 0.1 for k, v in batch_of(method).items()}
    keys = _keys(model, train)
    method.step_loss(model, train, StepContext(total_steps=10))
    before = {k: v.clone() for k, v in model.queue.state_dict().items()}
    losses = method.validation_loss(model, val)
    assert losses.shape == (2,) and torch.isfinite(losses).all()
    assert all(torch.equal(before[k], v) for k, v in model.queue.state_dict().items())
    method.after_step(model, StepContext(step=1, total_steps=10))
    torch.testing.assert_close(model.queue.features[:4], keys, rtol=0, atol=1e-6)  # the training keys, not val's


def test_moco_v2_queue_survives_a_state_dict_round_trip():
    method, model = _moco_v2(queue_size=8)
    batch = batch_of(method)
    for step in range(3):  # 12 keys into 8 slots: wrapped once
        method.step_loss(model, batch, StepContext(step=step, total_steps=10))
        method.after_step(model, StepContext(step=step + 1, total_steps=10))
    state = model.state_dict()
    assert {"queue.features", "queue.position"} <= state.keys() and int(state["queue.position"]) == 4
    torch.manual_seed(1)
    copy = method.build_model(PRESET)
    assert not torch.equal(copy.queue.features, model.queue.features)
    copy.load_state_dict(state)
    assert torch.equal(copy.queue.features, model.queue.features) and int(copy.queue.position) == 4
    a = method.step_loss(model, batch, StepContext(step=3, total_steps=10)).total
    b = method.step_loss(copy, batch, StepContext(step=3, total_steps=10)).total
    assert torch.equal(a, b)


def test_w_mse_views_extend_the_two_views_and_k_views_train():
    two, four = create_method("w-mse"), create_method("w-mse", views="4")
    size = two.region_size(32)
    region = np.random.default_rng(7).random((1, size, size, size), dtype=np.float32)
    pair = create_method("simclr").make_views(region, np.random.RandomState(3))
    assert all(torch.equal(pair[k], v) for k, v in two.make_views(region, np.random.RandomState(3)).items())
    views = four.make_views(region, np.random.RandomState(3))
    assert list(views) == ["view1", "view2", "view3", "view4"] and torch.equal(views["view2"], pair["view2"])
    torch.manual_seed(0)
    model = four.build_model(PRESET)
    output = four.step_loss(model, batch_of(four), StepContext())
    loss = float(output.total.detach())
    assert math.isfinite(loss) and 0 <= loss <= 4


def test_w_mse_whitens_the_global_batch_to_identity_covariance():
    """With eps 0 and more samples than dimensions, the embeddings the loss compares have identity covariance; with
    the default shrinkage a batch of 2 (rank 1 < D) still gives a loss, which eps 0 cannot."""
    from sslseg.ssl.losses import whiten

    method = create_method("w-mse", proj_dim="8", eps="0")
    torch.manual_seed(0)
    model = method.build_model(PRESET)
    batch = batch_of(method, batch=12)
    with torch.no_grad():
        z = model.projector(model.backbone(torch.cat([batch["view1"], batch["view2"]])))[:12].double()
        w = whiten(z, 0.0)
    torch.testing.assert_close(w.T @ w / 11, torch.eye(8, dtype=torch.float64), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="singular"):
        method.step_loss(model, batch_of(method), StepContext())
    default = create_method("w-mse", proj_dim="8")
    assert default.opts.eps > 0
    torch.manual_seed(0)
    output = default.step_loss(default.build_model(PRESET), batch_of(default), StepContext())
    assert math.isfinite(float(output.total.detach()))
