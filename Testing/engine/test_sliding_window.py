"""Sliding windows cover every voxel, blend consistently, and skip only air."""

import numpy as np
import torch

from sslseg.segmentation.sliding_window import predict_probabilities, window_starts


class Threshold(torch.nn.Module):
    """A 'model' whose class is intensity > 0.5: exact answer known everywhere."""

    out_channels = 2

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += x.shape[0]
        return torch.cat([(0.5 - x) * 20, (x - 0.5) * 20], dim=1)


def test_window_starts_cover_the_axis():
    assert window_starts(10, 16, 0.25) == [0]
    assert window_starts(40, 16, 0.25) == [0, 12, 24]
    starts = window_starts(41, 16, 0.5)
    assert starts[-1] + 16 == 41 and all(b - a <= 8 for a, b in zip(starts, starts[1:]))


def test_prediction_equals_the_pointwise_answer_with_padding_and_batching():
    rng = np.random.default_rng(0)
    array = rng.random((37, 21, 29)).astype(np.float32)
    probabilities = predict_probabilities(Threshold(), array, window=16, overlap=0.5, batch_size=3, foreground=None)
    assert probabilities.shape == (2, 37, 21, 29)
    np.testing.assert_array_equal(probabilities.argmax(0).numpy(), array > 0.5)
    np.testing.assert_allclose(probabilities.sum(0).numpy(), 1.0, atol=1e-5)


def test_air_windows_are_skipped_and_background():
    array = np.zeros((64, 64, 16), np.float32)
    array[:16, :16, :] = 0.9  # body in one corner only
    model = Threshold()
    probabilities = predict_probabilities(model, array, window=16, overlap=0.0, foreground=0.0)
    assert model.calls == 1
    assert probabilities[1, :16, :16].min() > 0.99 and probabilities[0, 16:, :].min() == 1.0


def test_windows_side_by_side_blend_exactly_as_one_after_the_other():
    rng = np.random.default_rng(1)
    array = rng.random((41, 23, 30)).astype(np.float32)
    threads = torch.get_num_threads()
    one = predict_probabilities(Threshold(), array, window=16, overlap=0.5, foreground=None, workers=1)
    model = Threshold()
    two = predict_probabilities(model, array, window=16, overlap=0.5, batch_size=2, foreground=None, workers=2)
    assert model.calls == len(window_starts(41, 16, 0.5)) * len(window_starts(23, 16, 0.5)) * len(window_starts(30, 16, 0.5))
    torch.testing.assert_close(two, one, rtol=0, atol=1e-6)
    assert torch.get_num_threads() == threads  # the worker split is undone
    assert not two.requires_grad


def test_a_failing_window_is_reported_and_threads_restored():
    class Broken(Threshold):
        def forward(self, x):
            if self.calls >= 2:
                raise RuntimeError("boom")
            return super().forward(x)

    threads = torch.get_num_threads()
    array = np.ones((40, 40, 16), np.float32)
    try:
        predict_probabilities(Broken(), array, window=16, overlap=0.0, foreground=None, workers=2)
    except RuntimeError as error:
        assert "boom" in str(error)
    else:
        raise AssertionError("the worker's error was swallowed")
    assert torch.get_num_threads() == threads


class CentreBand(torch.nn.Module):
    """A 'model' that answers class 1 only in the middle quarter of its window's depth (a stand-in for a network
    whose answer depends on where in the window the anatomy sits, as UNETR's position embeddings make it)."""

    out_channels = 2

    def forward(self, x):
        depth = x.shape[-1]
        band = torch.zeros_like(x)
        band[..., 3 * depth // 8: 5 * depth // 8] = 1.0
        return torch.cat([(0.5 - band) * 20, (band - 0.5) * 20], dim=1)


def test_a_volume_thinner_than_the_window_sits_in_its_middle_as_in_training():
    """4 slices and a 16-voxel window: padded 6 + 4 + 6, as MONAI's SpatialPadd centres a thin volume for the
    training crops, the slices fall in the window's middle band; padded at the far end (the earlier behaviour) they
    fell in its first quarter, a depth the model never saw them at. The thick axes are unaffected and the
    probabilities come back on the volume's own voxels."""
    array = np.full((20, 18, 4), 0.7, np.float32)
    probabilities = predict_probabilities(CentreBand(), array, window=16, overlap=0.25, foreground=None)
    assert probabilities.shape == (2, 20, 18, 4)
    assert (probabilities.argmax(0) == 1).all()
    thin = np.random.default_rng(1).random((9, 30, 5)).astype(np.float32)
    exact = predict_probabilities(Threshold(), thin, window=16, overlap=0.25, foreground=None)
    np.testing.assert_array_equal(exact.argmax(0).numpy(), thin > 0.5)
