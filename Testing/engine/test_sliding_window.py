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
