"""3-D relative position (issue 17): the label names exactly where the neighbour cube was cut, the cubes stay inside
their cells (gap and jitter), and the task is learnable on the tiny cohort. Float32, CPU."""

import itertools

import numpy as np
import torch
from pretrain_support import pretext_held_out_accuracy

from sslseg.ssl import create_method
from sslseg.ssl.relative_position import OFFSETS, cell_layout


def position_coded(edge):
    """A volume whose voxel (i, j, k) holds 10000 i + 100 j + k, so a cube's values name where it was cut."""
    i, j, k = np.meshgrid(*[np.arange(edge)] * 3, indexing="ij")
    return (10000 * i + 100 * j + k).astype(np.float32)[None]


def coded_region(name, layout):
    """(method, region edge, (cube edge, gap), position-coded region) of a sub-cube method at a 32^3 patch."""
    method = create_method(name)
    edge = method.region_size(32)
    return method, edge, layout(edge), position_coded(edge)


def corner(cube: torch.Tensor) -> np.ndarray:
    value = int(cube[0, 0, 0, 0])
    return np.array([value // 10000, value // 100 % 100, value % 100])


def test_the_26_offsets_are_the_neighbours_of_a_3x3x3_grid():
    assert len(OFFSETS) == 26 and len(set(OFFSETS)) == 26 and (0, 0, 0) not in OFFSETS
    assert set(OFFSETS) == set(itertools.product((-1, 0, 1), repeat=3)) - {(0, 0, 0)}


def test_the_label_is_the_direction_from_the_centre_cube_to_the_neighbour():
    method, edge, (cube, gap), region = coded_region("relative-position", cell_layout)
    assert (cube, gap, edge) == (16, 4, 60)
    seen = set()
    for seed in range(200):
        views = method.make_views(region, np.random.RandomState(seed))
        label = int(views["position"])
        centre, neighbour = corner(views["centre"]), corner(views["neighbour"])
        assert views["centre"].shape == views["neighbour"].shape == (1, 16, 16, 16)
        # every voxel is the region's (no resampling): the cube is the region block at its corner
        for name, start in (("centre", centre), ("neighbour", neighbour)):
            block = region[:, start[0]:start[0] + 16, start[1]:start[1] + 16, start[2]:start[2] + 16]
            assert np.array_equal(views[name].numpy(), block)
        assert np.all(np.abs(centre - (cube + gap + gap // 2)) <= gap // 2)  # the centre cell, jittered
        step = (neighbour - centre) / (cube + gap)
        assert np.array_equal(np.rint(step), OFFSETS[label])
        assert np.all(np.abs(step - OFFSETS[label]) <= gap / (cube + gap))  # the jitter never crosses a cell
        seen.add(label)
    assert len(seen) == 26


def test_the_task_is_learned_well_above_chance_on_held_out_volumes(unlabelled_dir, pretrain_cache):
    """300 steps of batch 4 on 4 cohort volumes, then 64 cube pairs of the fifth volume: measured held-out accuracy
    0.47 (chance 1/26 = 0.04; 0.45 on two torch threads), about 7 s on one (AVX512-BF16 EPYC)."""
    accuracy = pretext_held_out_accuracy("relative-position", unlabelled_dir, pretrain_cache,
                                         lambda model, batch: model.logits(batch)[1], "position")
    assert accuracy > 0.2, accuracy
