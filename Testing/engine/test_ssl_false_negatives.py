"""False-negative cancellation (issue 17), an option of SimCLR and MoCo v2: on a hand-built batch with known duplicates the
cancelled pairs are exactly the duplicates, elimination and attraction give the losses written out by hand, and a
batch without duplicates keeps plain NT-Xent. Float32, CPU."""

import math

import numpy as np
import pytest
import torch

from sslseg.errors import SSLSegError
from sslseg.ssl import StepContext, create_method
from sslseg.ssl.contrastive import contrastive_loss
from sslseg.ssl.false_negatives import false_negative_mask, queue_false_negatives
from sslseg.ssl.losses import infonce_queue_loss
from sslseg.models.presets import get_preset

N, D = 6, 32
#: Samples 1 and 4 show the same content (say two patches of one liver); every other sample its own.
CONTENT = [0, 1, 2, 3, 1, 5]


def batch(content, noise=0.05, support_views=2, seed=0):
    """(z1, z2, support (N, V, D)): each view is its content's direction plus a little noise."""
    generator = torch.Generator().manual_seed(seed)
    directions = torch.linalg.qr(torch.randn(D, D, generator=generator))[0][:, :max(content) + 1].T  # orthonormal
    base = directions[content]  # (N, D)

    def views(*shape):
        return base.expand(*shape, D) + noise * torch.randn(*shape, D, generator=generator)

    return views(N), views(N), views(support_views, N).transpose(0, 1)


def pairs(mask):
    """{(anchor sample, negative sample)} of a (2N, 2N) mask."""
    return {(int(i) % N, int(j) % N) for i, j in mask.nonzero()}


def test_the_cancelled_negatives_are_exactly_the_duplicates():
    z1, z2, support = batch(CONTENT)
    mask = false_negative_mask(z1, z2, support, threshold=0.8, top_k=2)
    # both views of the duplicate, for each of its 4 anchors (2 samples x 2 views), and nothing else
    assert pairs(mask) == {(1, 4), (4, 1)}
    assert int(mask.sum()) == 8 and torch.equal(mask.sum(dim=1)[[1, 4, 7, 10]], torch.full((4,), 2))
    # top_k caps it: one per anchor
    assert int(false_negative_mask(z1, z2, support, threshold=0.8, top_k=1).sum()) == 4
    # the check can fail: a threshold below the unrelated contents' similarity cancels them too
    assert pairs(false_negative_mask(z1, z2, support, threshold=-1.0, top_k=2)) != {(1, 4), (4, 1)}


def test_without_duplicates_nothing_is_cancelled_and_the_loss_is_nt_xent():
    z1, z2, support = batch(list(range(N)))
    mask = false_negative_mask(z1, z2, support, threshold=0.8, top_k=3)
    assert not mask.any()
    plain = contrastive_loss(z1, z2, 0.1)
    assert float(contrastive_loss(z1, z2, 0.1, mask)) == float(plain)
    assert float(contrastive_loss(z1, z2, 0.1, mask, attract=True)) == float(plain)


def by_hand(z1, z2, temperature, mask, attract):
    """The loss, one anchor at a time, in float64."""
    rows = torch.nn.functional.normalize(torch.cat([z1, z2]).double(), dim=1).numpy()
    s = rows @ rows.T / temperature
    total = 0.0
    for i in range(2 * N):
        positive = (i + N) % (2 * N)
        others = [k for k in range(2 * N) if k != i and not (mask[i, k] and not attract)]
        log_denominator = math.log(sum(math.exp(s[i, k]) for k in others))
        targets = [positive] + ([int(j) for j in mask[i].nonzero()] if attract else [])
        total += np.mean([log_denominator - s[i, t] for t in targets])
    return total / (2 * N)


@pytest.mark.parametrize("attract", [False, True])
def test_elimination_and_attraction_are_the_losses_written_out(attract):
    z1, z2, support = batch(CONTENT)
    mask = false_negative_mask(z1, z2, support, threshold=0.8, top_k=2)
    loss = float(contrastive_loss(z1, z2, 0.5, mask, attract=attract))  # T 0.5: a loss far from 0, so rel makes sense
    assert loss == pytest.approx(by_hand(z1, z2, 0.5, mask, attract), rel=1e-5)
    plain = float(contrastive_loss(z1, z2, 0.5))
    # eliminating a near-copy of the positive from the denominator lowers the loss; attracting it counts a second
    # nearly-as-similar row as a positive
    assert loss < plain


def test_simclr_with_cancellation_trains_on_its_support_views():
    method = create_method("simclr", false_negatives="attract", support_views=2, fn_threshold=-1.0)
    size = method.region_size(32)
    region = np.random.default_rng(7).random((1, size, size, size), dtype=np.float32)
    samples = [method.make_views(region, np.random.RandomState(seed)) for seed in range(3)]
    assert sorted(samples[0]) == ["view1", "view2", "view3", "view4"]
    views = {k: torch.stack([s[k] for s in samples]) for k in samples[0]}
    torch.manual_seed(0)
    model = method.build_model(get_preset("tiny").with_img_size(32))
    output = method.step_loss(model, views, StepContext())
    assert output.parts["false_negatives"] == 1.0  # threshold -1: top_k = 1 of every anchor's negatives
    output.total.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("option", [{"false_negatives": "drop"}, {"false_negatives": "eliminate", "support_views": 0},
                                    {"fn_threshold": 2.0}])
def test_bad_options_are_refused(option):
    with pytest.raises(SSLSegError):
        create_method("simclr", **option)


def test_moco_queue_entries_showing_a_sample_are_exactly_the_ones_cancelled():
    """MoCo's negatives are its queue: entries 2 and 5 hold keys of sample 1's content (an earlier batch's patch of
    the same organ), the rest other content."""
    z1, z2, support = batch(CONTENT)
    generator = torch.Generator().manual_seed(1)
    queue = torch.nn.functional.normalize(torch.randn(8, D, generator=generator), dim=1)
    queue[[2, 5]] = z1[1] + 0.05 * torch.randn(2, D, generator=generator)
    found = queue_false_negatives(support, queue, threshold=0.8, top_k=2)
    expected = {(1, 2), (1, 5), (4, 2), (4, 5)}  # samples 1 and 4 share that content
    assert {(int(n), int(m)) for n, m in found.nonzero()} == expected


@pytest.mark.parametrize("attract", [False, True])
def test_moco_elimination_and_attraction_are_the_losses_written_out(attract):
    z1, z2, support = batch(CONTENT)
    generator = torch.Generator().manual_seed(1)
    queue = torch.nn.functional.normalize(torch.randn(8, D, generator=generator), dim=1)
    queue[[2, 5]] = z1[1] + 0.05 * torch.randn(2, D, generator=generator)
    found = queue_false_negatives(support, queue, threshold=0.8, top_k=2)
    loss = float(infonce_queue_loss(z1, z2, queue, 0.5, found, attract))
    q, k = (torch.nn.functional.normalize(t.double(), dim=1) for t in (z1, z2))
    entries = torch.nn.functional.normalize(queue.double(), dim=1)
    expected = 0.0
    for n in range(N):
        s = torch.cat([(q[n] * k[n]).sum()[None], entries @ q[n]]).numpy() / 0.5
        cancelled = [1 + int(m) for m in found[n].nonzero()]
        kept = [i for i in range(len(s)) if attract or i not in cancelled]
        log_denominator = math.log(sum(math.exp(s[i]) for i in kept))
        targets = [0] + (cancelled if attract else [])
        expected += np.mean([log_denominator - s[t] for t in targets])
    assert loss == pytest.approx(expected / N, rel=1e-5)
    assert loss != pytest.approx(float(infonce_queue_loss(z1, z2, queue, 0.5)), rel=1e-3)  # it did change


def test_moco_v2_with_cancellation_trains_on_its_support_views():
    method = create_method("moco-v2", false_negatives="eliminate", fn_threshold=-1.0, queue_size=8)
    size = method.region_size(32)
    region = np.random.default_rng(7).random((1, size, size, size), dtype=np.float32)
    samples = [method.make_views(region, np.random.RandomState(seed)) for seed in range(2)]
    assert sorted(samples[0]) == ["view1", "view2", "view3"]
    views = {k: torch.stack([s[k] for s in samples]) for k in samples[0]}
    torch.manual_seed(0)
    model = method.build_model(get_preset("tiny").with_img_size(32))
    output = method.step_loss(model, views, StepContext())
    assert math.isfinite(float(output.total.detach()))
    output.total.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
