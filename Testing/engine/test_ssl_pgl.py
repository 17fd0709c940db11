"""PGL (issue 17): the tokens matched between two views see the same voxels of the region, the boxes the views carry
are the crops they were made from, and the local loss pulls together exactly the matched tokens. Float32, CPU."""

import numpy as np
import pytest
import torch

from sslseg.errors import SSLSegError
from sslseg.ssl import StepContext, create_method
from sslseg.ssl.pgl import matched_token_loss
from sslseg.ssl.token_matching import match, sample, token_centres
from sslseg.ssl.views3d import cropped_view

TOKEN = 16


#: Region edge; the views are clipped to 0..1, so the region's values are voxel indices / EDGE
EDGE = 72


def coordinates(edge=EDGE):
    """(3, R, R, R): channel c holds each voxel's index along axis c / EDGE (an asymmetric, position-coded region)."""
    return np.stack(np.meshgrid(*[np.arange(edge, dtype=np.float32) / EDGE] * 3, indexing="ij"))


def centre_values(view):
    """(3, g, g, g): the region voxel index at each token centre of ``view`` (mean of the 2x2x2 voxels around it:
    exact for the linear values of :func:`coordinates`)."""
    return EDGE * _centre_means(view)


def _centre_means(view):
    middle = [view[:, i::TOKEN] for i in (TOKEN // 2 - 1, TOKEN // 2)]
    along_x = (middle[0] + middle[1]) / 2
    along_y = (along_x[:, :, TOKEN // 2 - 1::TOKEN] + along_x[:, :, TOKEN // 2::TOKEN]) / 2
    return (along_y[..., TOKEN // 2 - 1::TOKEN] + along_y[..., TOKEN // 2::TOKEN]) / 2


def two_views(seed, edge=EDGE, size=48, scale=(0.25, 1.0)):
    rng = np.random.RandomState(seed)
    region = coordinates(edge)
    (view1, box1), (view2, box2) = (cropped_view(region, rng, size, scale, intensity=None) for _ in range(2))
    return view1, view2, torch.from_numpy(box1)[None], torch.from_numpy(box2)[None]


def test_a_token_centre_is_where_its_box_says_in_the_region():
    for seed in range(10):
        view1, _, box1, _ = two_views(seed)
        positions = torch.from_numpy(centre_values(view1)).reshape(3, -1).T[None]  # (1, N, 3) voxel indices
        # voxel i covers [i, i + 1): its value i sits at i + 0.5
        torch.testing.assert_close(positions + 0.5, token_centres(box1, 3), atol=1e-3, rtol=0)


def test_matched_tokens_of_two_views_see_the_same_voxels():
    matched_inside = 0
    for seed in range(20):
        view1, view2, box1, box2 = two_views(seed)
        index, seen = match(box1, box2, 3)
        grid2 = torch.from_numpy(centre_values(view2))[None]  # (1, 3, g, g, g)
        found = sample(grid2, index)[0]  # (N, 3): what view 2 holds where view 1's tokens are
        expected = torch.from_numpy(centre_values(view1)).reshape(3, -1).T
        # between view 2's token centres the interpolation of linear values is exact; beyond them (within half a
        # token of its border) it holds the edge token's value
        inside = ((index[0] >= 0) & (index[0] <= 2)).all(dim=-1)
        torch.testing.assert_close(found[inside], expected[inside], atol=1e-3, rtol=0)
        half_token = (box2[0, 1] / 3 / 2)  # region voxels per half token of view 2, per axis
        assert torch.all((found[seen[0]] - expected[seen[0]]).abs() <= half_token + 1e-3)
        # a token is seen exactly when its centre lies inside view 2's box
        centre = token_centres(box1, 3)[0]
        inside_box = ((centre >= box2[0, 0]) & (centre <= box2[0, 0] + box2[0, 1])).all(dim=-1)
        assert torch.equal(seen[0], inside_box)
        matched_inside += int(inside.sum())
    assert matched_inside > 100


def test_a_wrong_axis_order_is_caught():
    """The check above can fail: sampling with the index axes reversed (grid_sample's own (W, H, D) order) finds
    other voxels."""
    view1, view2, box1, box2 = two_views(3, scale=(0.6, 1.0))
    index, _ = match(box1, box2, 3)
    inside = ((index[0] >= 0) & (index[0] <= 2)).all(dim=-1)
    grid2 = torch.from_numpy(centre_values(view2))[None]
    wrong = sample(grid2, index.flip(-1))[0]
    expected = torch.from_numpy(centre_values(view1)).reshape(3, -1).T
    assert (wrong[inside] - expected[inside]).abs().max() > 1


def test_the_views_carry_the_boxes_they_were_cut_from():
    method = create_method("pgl")
    edge = method.region_size(32)
    region = np.random.RandomState(0).rand(1, edge, edge, edge).astype(np.float32)
    for seed in range(10):
        views = method.make_views(region, np.random.RandomState(seed))
        rng = np.random.RandomState(seed)
        for i in (1, 2):
            _, box = cropped_view(region, rng, 32, (0.25, 1.0))  # the same draws, in the same order
            assert np.array_equal(views[f"box{i}"].numpy(), box)
            start, size = box
            assert np.all(start >= 0) and np.all(start + size <= edge) and np.all(size >= 1)
        assert views["view1"].shape == views["view2"].shape == (1, 32, 32, 32)


def test_the_local_loss_counts_only_matched_tokens():
    p = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])  # (1, 3, 2)
    z = torch.tensor([[[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]]])
    # token 0 agrees (0), token 1 is opposite (4), token 2 orthogonal (2)
    assert float(matched_token_loss(p, z, torch.tensor([[True, False, False]]), StepContext())) == pytest.approx(0)
    assert float(matched_token_loss(p, z, torch.tensor([[True, True, True]]), StepContext())) == pytest.approx(2)
    assert float(matched_token_loss(p, z, torch.tensor([[False, True, True]]), StepContext())) == pytest.approx(3)


@pytest.mark.parametrize("option", [{"flip_axes": "0"}, {"rotate90": "true"}])
def test_flips_and_turns_are_refused(option):
    with pytest.raises(SSLSegError, match="crop boxes only"):
        create_method("pgl", **option)
