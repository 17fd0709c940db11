"""The ViT backbone on inputs of any size (multi-crop's local views, issue 16; sub-cubes, issue 17): at the ViT's own
size exactly MONAI's ``ViT.forward``; smaller or non-cubic inputs run with resampled position embeddings, and the
stored embeddings get gradients through the resampling."""

import dataclasses

import pytest
import torch

from sslseg.models.encoder_io import interpolate_position_embedding, resize_position_embedding
from sslseg.models.presets import get_preset
from sslseg.ssl.backbone import ViTBackbone, vit_tokens


@pytest.mark.parametrize("proj_type", ["conv", "perceptron"])
def test_native_size_is_exactly_monai_vit_and_other_sizes_train_the_position_embeddings(proj_type):
    preset = dataclasses.replace(get_preset("tiny").with_img_size(32), proj_type=proj_type)
    torch.manual_seed(0)
    backbone = ViTBackbone(preset)
    x = torch.rand(2, 1, 32, 32, 32)
    assert torch.equal(vit_tokens(backbone.vit, x), backbone.vit(x)[0])

    position = backbone.vit.patch_embedding.position_embeddings
    for shape, tokens in [((16, 16, 16), 1), ((48, 48, 48), 27), ((16, 32, 48), 6)]:
        backbone.zero_grad()
        out = vit_tokens(backbone.vit, torch.rand(2, 1, *shape))
        assert out.shape == (2, tokens, preset.hidden_size)
        out.square().sum().backward()
        assert position.grad is not None and position.grad.abs().sum() > 0
        assert all(p.grad is not None for p in backbone.vit.patch_embedding.parameters())
    assert backbone(torch.rand(3, 1, 16, 16, 16)).shape == (3, preset.hidden_size)


def test_position_embedding_interpolation_is_the_transfer_resize_but_differentiable():
    torch.manual_seed(0)
    embedding = torch.randn(1, 27, 8, requires_grad=True)
    resized = interpolate_position_embedding(embedding, 2)
    assert torch.equal(resized, resize_position_embedding(embedding, 2))
    assert not resize_position_embedding(embedding, 2).requires_grad
    resized.sum().backward()
    # trilinear weights of each output token sum to 1, so every output's gradient of 1 spreads to a total of 8 per
    # feature
    torch.testing.assert_close(embedding.grad.sum(dim=1), torch.full((1, 8), 8.0))
    assert torch.equal(interpolate_position_embedding(embedding, 3), embedding)  # same grid: unchanged


def test_a_vit_with_a_classification_token_is_refused():
    from monai.networks.nets import ViT

    vit = ViT(1, img_size=32, patch_size=16, hidden_size=48, mlp_dim=96, num_layers=1, num_heads=4,
              classification=True, spatial_dims=3)
    with pytest.raises(ValueError, match="classification token"):
        vit_tokens(vit, torch.rand(1, 1, 32, 32, 32))
