"""The MONAI recipe's loss: same values as MONAI where MONAI is finite, finite where MONAI overflows, and it
decreases when the tiny ViT trains."""

import math

import pytest
import torch
from monai.losses import ContrastiveLoss
from pretrain_support import run_tiny, step_losses

from sslseg.errors import SSLSegError
from sslseg.ssl import available_methods, create_method
from sslseg.ssl.contrastive import contrastive_loss


def reconstructions(batch=4, features=32**3, seed=0):
    """Two batches of reconstruction-like features: non-negative, highly similar to each other (as real ones are)."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.rand(batch, features, generator=generator)
    return base, base + 0.05 * torch.rand(batch, features, generator=generator)


@pytest.mark.parametrize("temperature", [0.5, 0.05])
def test_contrastive_loss_equals_monai(temperature):
    a, b = reconstructions()
    expected = ContrastiveLoss(temperature=temperature)(a, b)
    assert torch.isfinite(expected)
    torch.testing.assert_close(contrastive_loss(a, b, temperature), expected, rtol=1e-5, atol=1e-6)


def test_temperature_0005_overflows_in_monai_but_not_here():
    a, b = reconstructions()
    assert torch.isnan(ContrastiveLoss(temperature=0.005)(a, b))  # the reason for our own formulation
    a.requires_grad_(True)
    loss = contrastive_loss(a, b, 0.005)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(a.grad).all()


def test_temperature_0005_trains_without_nan(unlabelled_dir, pretrain_cache, tmp_path):
    run_tiny(unlabelled_dir, tmp_path / "run", pretrain_cache, temperature=0.005, epochs=1, max_steps=3)
    losses = step_losses(tmp_path / "run")
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)


def test_a_non_positive_temperature_is_refused():
    with pytest.raises(SSLSegError, match="temperature must be > 0"):
        create_method("inpaint-contrastive", temperature=0.0)


def test_methods_are_found_by_name_and_alias():
    assert "inpaint-contrastive" in available_methods()
    assert type(create_method("monai")) is type(create_method("inpaint-contrastive"))
    with pytest.raises(SSLSegError, match="unknown SSL method"):
        create_method("simclr-but-not-yet")


def test_loss_decreases_over_a_few_dozen_steps(unlabelled_dir, pretrain_cache, tmp_path):
    # 4 training volumes x 8 patches = 32 samples, batch 4: 8 steps per epoch, 40 steps in all
    run_tiny(unlabelled_dir, tmp_path / "run", pretrain_cache, batch_size=4, patches_per_volume=8, epochs=5,
             val_every=0)
    losses = step_losses(tmp_path / "run")
    assert len(losses) == 40
    first, last = sum(losses[:8]) / 8, sum(losses[-8:]) / 8
    assert last < 0.9 * first, (first, last)
