"""SwAV's own parts (issue 16): unit-row prototypes after every step, frozen prototypes get an exactly zero gradient
and no weight decay, the queue holds the last global projections and joins the codes once full (and is in the state
dict), and every multi-crop view is a crop of the one region it was given."""

import numpy as np
import pytest
import torch

from sslseg.models.presets import get_preset
from sslseg.ssl import StepContext, create_method
from sslseg.ssl.swav import local_edge

PRESET = get_preset("tiny").with_img_size(32)


def batch_of(method, batch=2, seed=0):
    size = method.region_size(32)
    region = np.random.default_rng(seed).random((1, size, size, size), dtype=np.float32)
    samples = [method.make_views(region, np.random.RandomState(seed + s)) for s in range(batch)]
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


def test_prototypes_are_unit_rows_frozen_first_and_not_decayed():
    method = create_method("swav", freeze_prototypes_steps=2)
    torch.manual_seed(0)
    model = method.build_model(PRESET)
    prototypes = model.prototypes.weight
    torch.testing.assert_close(prototypes.norm(dim=1), torch.ones(128))
    groups = method.param_groups(model, 1e-3, 0.05)
    assert any(p is prototypes for p in groups[1]["params"]) and groups[1]["weight_decay"] == 0.0
    assert not any(p is prototypes for p in groups[0]["params"])
    optimizer = torch.optim.AdamW(groups, lr=0.1)
    batch = batch_of(method)
    for step in range(4):
        before = prototypes.detach().clone()
        optimizer.zero_grad()
        method.step_loss(model, batch, StepContext(step=step, total_steps=4)).total.backward()
        frozen = step < 2
        assert prototypes.grad is not None and (prototypes.grad.abs().max() == 0) == frozen
        optimizer.step()
        if frozen:
            assert torch.equal(prototypes, before)  # zero gradient, no decay: AdamW leaves them as they were
        else:
            assert not torch.allclose(prototypes.norm(dim=1), torch.ones(128), atol=1e-3)  # the step moved them off
        method.after_step(model, StepContext(step=step + 1, total_steps=4))
        torch.testing.assert_close(prototypes.norm(dim=1), torch.ones(128))


def test_the_queue_holds_the_last_global_projections_and_joins_the_codes_once_full():
    method = create_method("swav", queue_size=6, queue_start_step=1, n_local=1, freeze_prototypes_steps=0)
    torch.manual_seed(0)
    model = method.build_model(PRESET)
    assert {"queues.0.features", "queues.1.features", "queues.0.position", "queue_filled"} <= model.state_dict().keys()
    batches = [batch_of(method, seed=10 * i) for i in range(5)]
    in_use = []
    for step, batch in enumerate(batches):
        output = method.step_loss(model, batch, StepContext(step=step, total_steps=5))
        in_use.append(output.parts["queue_in_use"])
        with torch.no_grad():
            expected = [model.embed([batch["global1"], batch["global2"]])]
        method.after_step(model, StepContext(step=step + 1, total_steps=5))
        if step == 0:  # step 1 is not after queue_start_step 1: nothing enqueued
            assert int(model.queue_filled) == 0
    # steps 2..5 enqueued 2 projections each (8 > 6): the queue of each crop holds the last 6, i.e. those of the
    # steps 3, 4 and 5 (the parameters did not change: no optimiser step)
    assert int(model.queue_filled) == 6
    assert in_use == [0.0, 0.0, 0.0, 0.0, 1.0]  # full after step 4 (3 x 2 entries): used from step 5 on
    with torch.no_grad():
        for crop, queue in enumerate(model.queues):
            last = torch.cat([model.embed([b["global1"], b["global2"]])[crop] for b in batches[2:]])
            stored = torch.roll(queue.features, -int(queue.position), dims=0)  # oldest first
            torch.testing.assert_close(stored, last, rtol=1e-5, atol=1e-6)
    # validation does not enqueue
    model.eval()
    before = model.queues[0].features.clone()
    method.validation_loss(model, batches[0])
    method.after_step(model, StepContext(step=6, total_steps=6))
    assert torch.equal(model.queues[0].features, before)


def test_every_view_is_a_crop_of_its_region_and_local_views_are_smaller_crops():
    """A region whose values are the first axis's coordinate: a crop, resized, keeps a linear ramp along that axis,
    constant across the others, with values inside the region's; a local crop covers less of the region."""
    method = create_method("swav")
    method.intensity = None  # crops only
    size = method.region_size(32)
    assert size == 48 and local_edge(32, 0.5) == 16 and local_edge(96, 0.5) == 48 and local_edge(48, 0.5) == 32
    ramp = np.broadcast_to(np.arange(size, dtype=np.float32)[:, None, None] / (size - 1), (size,) * 3)
    region = np.ascontiguousarray(ramp)[None]
    extents = {"global": [], "local": []}
    for seed in range(8):
        views = method.make_views(region, np.random.RandomState(seed))
        assert sorted(views) == ["global1", "global2", "local1", "local2", "local3", "local4"]
        for name, view in views.items():
            v = view[0].numpy().astype(np.float64)
            assert 0 <= v.min() and v.max() <= 1
            assert np.allclose(v, v[:, :1, :1], atol=1e-6)  # constant across the other axes
            profile = v[:, 0, 0]
            assert np.all(np.diff(profile) > 0)  # a linear ramp, increasing: no flip
            np.testing.assert_allclose(np.diff(profile), np.diff(profile).mean(), rtol=1e-4, atol=1e-7)
            # the crop's extent along the axis, in region voxels (n samples spaced by the crop's step)
            extents[name[:-1] if name.startswith("global") else "local"].append(
                (profile[-1] - profile[0]) * (size - 1) * len(profile) / (len(profile) - 1))
    # volume fractions 0.25-1 and 0.05-0.25 of the region: edges about 0.63-1 and 0.37-0.63 of it (x the aspect
    # ratio factor <= (4/3)^(2/3) = 1.21)
    assert min(extents["global"]) > 0.63 * size / 1.22 - 1 and max(extents["global"]) <= size + 1e-6
    assert max(extents["local"]) < 0.63 * size * 1.22 + 1 and min(extents["local"]) > 0.37 * size / 1.22 - 1
    assert np.mean(extents["local"]) < np.mean(extents["global"])


@pytest.mark.parametrize("option", ["temperature=0", "n_prototypes=1", "local_fraction=0", "n_local=-1",
                                    "proj_norm=group"])
def test_bad_options_are_refused(option):
    from sslseg.errors import SSLSegError

    key, value = option.split("=")
    with pytest.raises(SSLSegError):
        create_method("swav", **{key: value})
