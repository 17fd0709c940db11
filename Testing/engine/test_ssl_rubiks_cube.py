"""Rubik's cube recovery (issue 17): the permutation classes are maximally distinct, the scramble is undone exactly by
its labels, every cube is a block of its own cell, and the task is learned on the tiny cohort. Float32, CPU."""

import numpy as np
import pytest
import torch
from pretrain_support import pretext_held_out_accuracy
from test_ssl_relative_position import coded_region, corner, position_coded

from sslseg.errors import SSLSegError
from sslseg.ssl import create_method
from sslseg.ssl.cube_rotations import CUBE, HALF_TURNS, rotate
from sslseg.ssl.permutation_set import maximal_hamming_set, minimum_distance
from sslseg.ssl.puzzle_head import PuzzleHead, order_logits
from sslseg.ssl.rubiks_cube import CELLS, cube_layout, cut_cubes, permutations, scramble, unscramble


def test_the_100_permutation_classes_are_distinct_orders_at_least_6_of_8_places_apart():
    classes = permutations(100)
    assert classes.shape == (100, 8)
    assert all(sorted(row) == list(range(8)) for row in classes.tolist())
    assert len({tuple(row) for row in classes.tolist()}) == 100
    assert classes[0].tolist() == list(range(8))
    assert minimum_distance(classes) == 6
    # greedy is what makes them distinct: the first 100 orders in lexicographic order are as close as can be
    import itertools
    assert minimum_distance(np.array(list(itertools.islice(itertools.permutations(range(8)), 100)))) == 2
    assert np.array_equal(maximal_hamming_set(8, 100), classes)  # the same labels in every process


def test_the_four_half_turns_are_a_group_of_proper_rotations():
    assert HALF_TURNS[0] == CUBE[0] and all(turn in CUBE for turn in HALF_TURNS)
    cube = np.random.RandomState(0).rand(1, 4, 4, 4)
    images = [rotate(cube, turn) for turn in HALF_TURNS]
    assert len({image.tobytes() for image in images}) == 4
    for a in HALF_TURNS:  # closed: two half turns make a third (so the 4 classes are two independent bits)
        for b in HALF_TURNS:
            assert any(np.array_equal(rotate(rotate(cube, a), b), image) for image in images)


def test_the_labels_undo_the_scramble_voxel_for_voxel():
    method, edge, (cube, gap), region = coded_region("rubiks-cube", cube_layout)
    assert (cube, gap, edge) == (16, 4, 40)
    classes = permutations(100)
    seen_turns = set()
    for seed in range(50):
        views = method.make_views(region, np.random.RandomState(seed))
        scrambled, label, turns = views["cubes"].numpy(), int(views["permutation"]), views["rotations"].numpy()
        assert scrambled.shape == (8, 1, 16, 16, 16)
        restored = unscramble(scrambled, classes[label], turns)
        for cell, block in zip(CELLS, restored):
            start = corner(torch.from_numpy(block))
            # upright and in its own cell (jittered at most g/2), and exactly the region's voxels there
            assert np.all(np.abs(start - (np.asarray(cell) * (cube + gap) + gap // 2)) <= gap // 2), (cell, start)
            assert np.array_equal(block, region[:, start[0]:start[0] + 16, start[1]:start[1] + 16,
                                                start[2]:start[2] + 16])
        seen_turns.update(turns.tolist())
    assert seen_turns == {0, 1, 2, 3}


def test_wrong_labels_do_not_undo_it():
    """The check above can fail: one wrong turn or a wrong order leaves a cube out of place."""
    region = position_coded(40)
    cubes = cut_cubes(region, np.random.RandomState(0))
    order, turns = permutations(100)[7], np.array([0, 1, 2, 3, 0, 1, 2, 3])
    scrambled = scramble(cubes, order, turns)
    assert np.array_equal(unscramble(scrambled, order, turns), cubes)
    assert not np.array_equal(unscramble(scrambled, order, np.roll(turns, 1)), cubes)
    assert not np.array_equal(unscramble(scrambled, permutations(100)[8], turns), cubes)


@pytest.mark.parametrize("bad", [1, 40321])
def test_an_impossible_number_of_permutations_is_refused(bad):
    with pytest.raises(SSLSegError, match="permutations must be 2..40320"):
        create_method("rubiks-cube", permutations=bad)


def _turn_logits(model, batch):
    """(B, 4, 8): each slot's turn logits, classes on dim 1 as the accuracy helper takes them."""
    turns = model.logits(batch["cubes"])[2]
    return turns.reshape(batch["cubes"].shape[0], 8, -1).transpose(1, 2)


def _scrambled_puzzle_accuracy(unlabelled_dir, pretrain_cache, steps: int) -> dict:
    """Held-out accuracy of the order and of the turns after ``steps`` steps of batch 4 at lr 3e-4 on the paper's
    task (order and turns), 4 cohort volumes for training, 64 puzzles of the fifth for scoring."""
    return pretext_held_out_accuracy(
        "rubiks-cube", unlabelled_dir, pretrain_cache,
        {"order": (lambda model, batch: model.logits(batch["cubes"])[1], "permutation"),
         "turns": (_turn_logits, "rotations")}, "", steps=steps, lr=3e-4)


def test_the_order_of_scrambled_and_turned_cubes_is_learned_well_above_chance_on_held_out_volumes(unlabelled_dir,
                                                                                                   pretrain_cache):
    """600 steps: held-out order accuracy measured 0.50 (chance 1/100; seeds 1 and 2 of the same setting: 0.50 and
    0.48), the turns still at chance (0.26; see the slow test below), 22 s (AVX512-BF16 EPYC, one torch thread,
    float32).

    The paper's head (the 8 cube features concatenated, fully connected to the K orders and 8 x 4 turns) fails this
    test: order 0.00 here, 0.03 after 1200 steps, and chance on this cohort for 3000 steps at lr 1e-3. The puzzle head
    (:mod:`sslseg.ssl.puzzle_head`) is what makes the turned puzzle learnable."""
    accuracy = _scrambled_puzzle_accuracy(unlabelled_dir, pretrain_cache, steps=600)
    assert accuracy["order"] > 0.2, accuracy


@pytest.mark.slow
def test_the_turns_are_learned_above_chance_on_held_out_volumes(unlabelled_dir, pretrain_cache):
    """1200 steps: held-out order 0.58 and turns 0.37 (chance 1/100 and 1/4), 42 s on one torch thread (AVX512-BF16
    EPYC, float32); seeds 1 and 2: 0.70 / 0.37 and 0.56 / 0.37; at 1000 steps the turns are still at chance
    (0.24-0.28). Slow-marked for its cost (the default suite is at its 15 minutes on 2 cores); the order test above
    trains the same model for half as long. The paper's head: order 0.03, turns 0.23."""
    accuracy = _scrambled_puzzle_accuracy(unlabelled_dir, pretrain_cache, steps=1200)
    assert accuracy["order"] > 0.2 and accuracy["turns"] > 0.3, accuracy


def test_upright_cubes_are_ordered_almost_perfectly_after_100_steps(unlabelled_dir, pretrain_cache):
    """``turns=false``: the order alone, held-out accuracy measured 1.00 after 100 steps (chance 1/100; the paper's
    head: 0.94 after 300), 3 s."""
    accuracy = pretext_held_out_accuracy("rubiks-cube", unlabelled_dir, pretrain_cache,
                                         lambda model, batch: model.logits(batch["cubes"])[1], "permutation",
                                         steps=100, turns=False)
    assert accuracy > 0.8, accuracy


def test_upright_cubes_carry_identity_turns():
    method = create_method("rubiks-cube", turns=False)
    views = method.make_views(position_coded(40), np.random.RandomState(0))
    assert views["rotations"].tolist() == [0] * 8


def test_order_logits_score_each_permutation_class_by_its_slots_source_cells():
    """The K class logits are the sum over slots of the log-probability of the cell the class puts there: a brute
    force over the classes gives the same numbers, and cells that match class k's order make k the best."""
    classes = torch.from_numpy(permutations(100)).long()
    cells = torch.randn(3, 8, 8)
    log_p = cells.log_softmax(dim=-1)
    expected = torch.stack([torch.stack([sum(log_p[b, s, classes[k, s]] for s in range(8)) for k in range(100)])
                            for b in range(3)])
    assert torch.allclose(order_logits(cells, classes), expected, atol=1e-5)
    confident = torch.full((1, 8, 8), -10.0)
    confident[0, torch.arange(8), classes[42]] = 10.0
    assert int(order_logits(confident, classes).argmax()) == 42


def test_the_puzzle_head_answers_per_slot_and_sees_every_slot():
    """(B, 8, hidden) -> (B, 8, 8) cells and (B, 8, 4) turns; changing one cube's feature changes another slot's
    answer (attention: a slot is judged against its neighbours), and shuffling the slots is not ignored."""
    torch.manual_seed(0)
    head = PuzzleHead(hidden=12, pieces=8, turns=4, width=16, layers=1, heads=2)
    features = torch.randn(2, 8, 12)
    cells, turns = head(features)
    assert cells.shape == (2, 8, 8) and turns.shape == (2, 8, 4)
    changed = features.clone()
    changed[:, 0] += 1.0
    assert not torch.allclose(head(changed)[0][:, 5], cells[:, 5])
    assert not torch.allclose(head(features[:, torch.arange(8).roll(1)])[0], cells[:, torch.arange(8).roll(1)])
