"""The SSL losses (sslseg.ssl.losses) against references nobody here wrote: lightly 1.6's losses where it has them
(test-only dependency), the papers' pseudo-code on hand-computable cases where it has not; plus finiteness at batch 2,
gradient flow (and stop-gradients), float32 under bf16 autocast, and a 2-way split with a fake gather equal to one
process on the whole batch."""

import importlib.util
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sslseg.ssl.losses import (barlow_twins_loss, byol_loss, infonce_queue_loss, moco_v3_loss, negative_cosine_loss,
                               ntxent_loss, sinkhorn, swav_loss, vicreg_loss, whiten, wmse_loss)

_TORCHVISION_SCHEMAS = []  # kept alive: a torch.library.Library unregisters its definitions when collected


def _declare_torchvision_ops_if_unloadable():
    """CI's disk (and this venv) pairs the CPU build of torch 2.13 with the only torchvision 0.28 wheel there, a CUDA
    build whose compiled ops (``_C.so``) cannot load beside it; torchvision's import then fails registering fake
    kernels for ``nms`` and ``qnms``. lightly's losses never call torchvision's ops: declaring those two schemas lets
    torchvision (and so lightly) import, without its ops."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or _TORCHVISION_SCHEMAS:
        return
    library = next(Path(spec.submodule_search_locations[0]).glob("_C.*"), None)
    try:
        if library is not None:
            torch.ops.load_library(str(library))
            return
    except OSError:
        pass
    schemas = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):
        schemas.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TORCHVISION_SCHEMAS.append(schemas)


@pytest.fixture(scope="module")
def lightly_loss():
    """``lightly.loss`` (1.6.0, requirements/ci.txt), or a skip where lightly is not installed."""
    _declare_torchvision_ops_if_unloadable()
    module = pytest.importorskip("lightly.loss")
    import lightly

    assert lightly.__version__ == "1.6.0", lightly.__version__
    return module


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def close(actual, expected):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=torch.float32).reshape(()), rtol=1e-5, atol=1e-6)


# --- equal to lightly -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("temperature", [0.5, 0.1])
def test_ntxent_equals_lightly(lightly_loss, temperature):
    z1, z2 = randn(6, 16, seed=1), randn(6, 16, seed=2)
    close(ntxent_loss(z1, z2, temperature), lightly_loss.NTXentLoss(temperature=temperature)(z1, z2))


def test_infonce_queue_equals_lightly_memory_bank(lightly_loss):
    q, k, queue = randn(5, 16, seed=1), randn(5, 16, seed=2), F.normalize(randn(32, 16, seed=3), dim=1)
    reference = lightly_loss.NTXentLoss(temperature=0.2, memory_bank_size=(32, 16))
    reference.memory_bank.bank = queue.clone()
    close(infonce_queue_loss(q, k, queue, 0.2), reference(q, k))


def test_negative_cosine_and_byol_equal_lightly(lightly_loss):
    p, z = randn(6, 16, seed=1), randn(6, 16, seed=2)
    negative_cosine = lightly_loss.NegativeCosineSimilarity()(p, z)
    close(negative_cosine_loss(p, z), negative_cosine)
    close(byol_loss(p, z), 2 + 2 * negative_cosine)  # BYOL eq. 2: ||p/|p| - z/|z|||^2 = 2 - 2 cos
    close(byol_loss(p, z), ((F.normalize(p, dim=1) - F.normalize(z, dim=1)) ** 2).sum(dim=1).mean())


@pytest.mark.parametrize("lambda_offdiag", [5e-3, 0.05])
def test_barlow_twins_equals_lightly(lightly_loss, lambda_offdiag):
    z1, z2 = randn(8, 16, seed=1), randn(8, 16, seed=2)
    close(barlow_twins_loss(z1, z2, lambda_offdiag),
          lightly_loss.BarlowTwinsLoss(lambda_param=lambda_offdiag)(z1, z2))


@pytest.mark.parametrize("weights", [(25.0, 25.0, 1.0), (1.0, 3.0, 0.5)])
def test_vicreg_equals_lightly(lightly_loss, weights):
    z1, z2 = randn(8, 16, seed=1), 0.3 * randn(8, 16, seed=2)  # some std < 1, so the variance hinge is active
    sim, var, cov = weights
    expected = lightly_loss.VICRegLoss(lambda_param=sim, mu_param=var, nu_param=cov)(z1, z2)
    close(vicreg_loss(z1, z2, sim, var, cov), expected)


@pytest.mark.parametrize("views,whitening_size,eps", [(2, 16, 0.0), (3, 8, 0.0), (2, 8, 0.1)])
def test_wmse_equals_lightly(lightly_loss, views, whitening_size, eps):
    batch, dim = 16, 4
    z = [randn(batch, dim, seed=v) for v in range(views)]
    reference = lightly_loss.WMSELoss(embedding_dim=dim, w_size=whitening_size, eps=eps, num_samples=views)
    torch.manual_seed(7)
    expected = reference(torch.cat(z))
    # lightly whitens the sub-batches torch.randperm(B).view(-1, w) draws; ours are consecutive rows: same permutation.
    torch.manual_seed(7)
    order = torch.randperm(batch)
    close(wmse_loss([v[order] for v in z], whitening_size, eps), expected)


def test_whitening_gives_identity_covariance():
    white = whiten(randn(32, 4, seed=3) @ randn(4, 4, seed=4), eps=0.0)
    torch.testing.assert_close(white.T @ white / 31, torch.eye(4), rtol=0, atol=1e-4)


def test_sinkhorn_equals_lightly(lightly_loss):
    from lightly.loss.swav_loss import sinkhorn as reference

    scores = F.normalize(randn(12, 8, seed=1), dim=1) @ F.normalize(randn(10, 8, seed=2), dim=1).T  # (B, K)
    codes = sinkhorn(scores, epsilon=0.05, iterations=3)
    torch.testing.assert_close(codes, reference(scores, iterations=3, epsilon=0.05), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(codes.sum(dim=1), torch.ones(12))


def swav_scores(crops, batch=6, prototypes=10, seed=0):
    protos = F.normalize(randn(prototypes, 8, seed=seed + 100), dim=1)
    return [F.normalize(randn(batch, 8, seed=seed + c), dim=1) @ protos.T for c in range(crops)]


@pytest.mark.parametrize("with_queue", [False, True])
def test_swav_equals_lightly(lightly_loss, with_queue):
    scores = swav_scores(4)  # 2 global crops (codes) + 2 local crops
    queue = swav_scores(2, batch=9, seed=50) if with_queue else None
    expected = lightly_loss.SwaVLoss(temperature=0.1, sinkhorn_epsilon=0.05)(scores[:2], scores[2:], queue)
    close(swav_loss(scores, [0, 1], temperature=0.1, epsilon=0.05, queue_scores=queue), expected.squeeze())


# --- papers' pseudo-code, where lightly has no match ------------------------------------------------------------------

@pytest.mark.parametrize("temperature", [1.0, 0.2])
def test_infonce_queue_hand_computed(temperature):
    """MoCo Algorithm 1 for q = k = e1 and a queue {e2, -e1}: logits [1, 0, -1] / T with the positive first."""
    q, k, queue = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.5, 0.0]]), torch.tensor([[0.0, 2.0], [-1.0, 0.0]])
    t = temperature
    close(infonce_queue_loss(q, k, queue, t), math.log(math.exp(1 / t) + 1 + math.exp(-1 / t)) - 1 / t)


@pytest.mark.parametrize("temperature", [1.0, 0.2])
def test_moco_v3_hand_computed(temperature):
    """MoCo v3 Algorithm 1, ctr(q, k) = CE(q k^T / T, range(N)) * 2T, for q = k = [e1, e2]: each row's logits are
    [1, 0] / T (positive first) or [0, 1] / T, so the loss is 2T log(1 + exp(-1 / T))."""
    q, k = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.0, 5.0]])
    t = temperature
    close(moco_v3_loss(q, k, t), 2 * t * math.log(1 + math.exp(-1 / t)))


def test_moco_v3_equals_pseudocode():
    q, k, t = randn(6, 16, seed=1), randn(6, 16, seed=2), 0.2
    q_n, k_n = F.normalize(q, dim=1), F.normalize(k, dim=1)
    expected = torch.nn.CrossEntropyLoss()(q_n @ k_n.T / t, torch.arange(6)) * 2 * t
    close(moco_v3_loss(q, k, t), expected)


# --- every loss: batch 2, gradients, float32, gather ------------------------------------------------------------------

QUEUE = F.normalize(randn(16, 8, seed=99), dim=1)

#: name -> (number of (B, 8) inputs, which of them receive a gradient, loss(*inputs, gather)).
LOSSES = {
    "ntxent": (2, (True, True), lambda a, b, gather=None: ntxent_loss(a, b, 0.1, gather)),
    "infonce_queue": (2, (True, False), lambda q, k, gather=None: infonce_queue_loss(q, k, QUEUE, 0.2)),
    "moco_v3": (2, (True, False), lambda q, k, gather=None: moco_v3_loss(q, k, 0.2, gather)),
    "negative_cosine": (2, (True, False), lambda p, z, gather=None: negative_cosine_loss(p, z)),
    "byol": (2, (True, False), lambda p, z, gather=None: byol_loss(p, z)),
    "barlow_twins": (2, (True, True), lambda a, b, gather=None: barlow_twins_loss(a, b, gather=gather)),
    "vicreg": (2, (True, True), lambda a, b, gather=None: vicreg_loss(a, b, gather=gather)),
    "wmse": (3, (True, True, True), lambda *z, gather=None: wmse_loss(list(z), z[0].shape[0], eps=0.1)),
    "swav": (4, (True,) * 4, lambda *s, gather=None: swav_loss(list(s), [0, 1], gather=gather)),
}
GATHERED = ["ntxent", "moco_v3", "barlow_twins", "vicreg", "swav"]


def inputs(name, batch, seed=0):
    count = LOSSES[name][0]
    if name == "swav":  # scores of unit embeddings against unit prototypes
        return swav_scores(count, batch=batch, seed=seed)
    return [randn(batch, 8, seed=seed + i) for i in range(count)]


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_finite_at_batch_2_and_gradients_flow(name):
    _, grads, loss_fn = LOSSES[name]
    tensors = [t.requires_grad_() for t in inputs(name, batch=2)]
    loss = loss_fn(*tensors)
    assert loss.shape == () and loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    for tensor, expects_grad in zip(tensors, grads):
        if expects_grad:
            assert torch.isfinite(tensor.grad).all() and tensor.grad.abs().sum() > 0
        else:  # a stop-gradient target (SimSiam/BYOL's z, MoCo's keys)
            assert tensor.grad is None


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_float32_under_bf16_autocast(name):
    loss_fn = LOSSES[name][2]
    half = [t.bfloat16() for t in inputs(name, batch=8)]
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = loss_fn(*half)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, loss_fn(*[t.float() for t in half]), rtol=0, atol=0)


def fake_gather(rank, halves):
    """The gather of process ``rank`` of 2: the local tensor concatenated, in rank order, with the other process's
    fixed half of whichever input it is (found by value)."""

    def gather(tensor):
        for pair in halves:
            if tensor.shape == pair[rank].shape and torch.equal(tensor.detach(), pair[rank].detach()):
                return torch.cat([tensor if r == rank else pair[r] for r in range(2)])
        raise AssertionError("gather called on a tensor that is not an input")

    return gather


@pytest.mark.parametrize("name", GATHERED)
def test_two_process_split_equals_one_process(name):
    """2 processes of batch 3 (fake gather) hold the loss of 1 process of batch 6, and each local row's gradient is
    that row's gradient in the one-process run (DDP then averages the all-reduced gradients into the same)."""
    loss_fn = LOSSES[name][2]
    full = [t.requires_grad_() for t in inputs(name, batch=6, seed=3)]
    expected = loss_fn(*full)
    expected.backward()
    for rank in range(2):
        halves = [t.detach().split(3) for t in full]
        local = [pair[rank].clone().requires_grad_() for pair in halves]
        loss = loss_fn(*local, gather=fake_gather(rank, halves))
        torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
        loss.backward()
        for tensor, whole in zip(local, full):
            if whole.grad is None:  # MoCo v3's keys
                assert tensor.grad is None
            else:
                torch.testing.assert_close(tensor.grad, whole.grad.split(3)[rank], rtol=1e-4, atol=1e-6)


def test_sinkhorn_gathered_equals_one_process():
    scores = swav_scores(1, batch=6)[0]
    halves = [scores.split(3)]
    for rank in range(2):
        codes = sinkhorn(halves[0][rank], gather=fake_gather(rank, halves))
        torch.testing.assert_close(codes, sinkhorn(scores), rtol=1e-5, atol=1e-6)


def test_swav_queue_with_gather_equals_one_sinkhorn_over_all_queues():
    """With a queue, each process's (queue + batch) joins one global Sinkhorn (the authors' distributed version), whose
    batch rows are the targets: 2 processes of (queue 4, batch 3) equal one Sinkhorn over both chunks."""
    scores, queue = swav_scores(2, batch=6), swav_scores(1, batch=8, seed=40)[0]
    chunks = [torch.cat([queue.split(4)[r], scores[0].split(3)[r]]) for r in range(2)]  # (7, K) per process
    codes = sinkhorn(torch.cat(chunks))
    targets = torch.cat([codes[4:7], codes[11:14]])
    expected = -(targets * F.log_softmax(scores[1] / 0.1, dim=1)).sum(dim=1).mean()
    halves = [s.split(3) for s in scores] + [chunks]
    for rank in range(2):
        loss = swav_loss([s.split(3)[rank] for s in scores], [0], gather=fake_gather(rank, halves),
                         queue_scores=[queue.split(4)[rank]])
        close(loss, expected)
