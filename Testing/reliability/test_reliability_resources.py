"""Catalogue, resources: running out of memory while segmenting falls back (fewer windows at once, then the CPU) or
stops with a message saying what to change; asking for CUDA where there is none says so and offers the CPU.

=================================  ========================================================================
OOM, several windows at once       test_out_of_memory_with_several_windows_retries_one_at_a_time
OOM on the GPU                     test_out_of_memory_on_an_accelerator_falls_back_to_the_cpu[meta] (a stand-in
                                   accelerator), [cuda] where there is one
OOM even on the CPU                test_out_of_memory_even_on_the_cpu_says_what_to_change
OOM while training                  engine/test_pretrain_training_parts.py::test_out_of_memory_becomes_advice
CUDA requested, none present       test_a_cuda_request_without_cuda_says_so_and_offers_the_cpu[segment], [finetune];
                                   pretrain: engine/test_pretrain_cli.py::test_asking_for_cuda_without_cuda_says_so
=================================  ========================================================================

Out of memory is simulated at the torch level: the network is wrapped so that a forward pass raises the error
PyTorch raises when an allocation fails (``torch.OutOfMemoryError``, or the CPU allocator's RuntimeError), exactly
where a real one would come from. The engine's own code runs unchanged.
"""

import logging

import numpy as np
import pytest
import torch
from pretrain_support import one_torch_thread
from reliability_support import FINETUNE_TINY, assert_refused, run_cli

from sslseg.errors import SSLSegError
from sslseg.io import read_volume
from sslseg.package.model_package import load_model_package
from sslseg.segmentation.segment import Segmenter, SegmentOptions
from sslseg.volume import Volume

GPU_FULL = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)"
CPU_FULL = "[enforce fail at alloc_cpu.cpp:117] . DefaultCPUAllocator: can't allocate memory: you tried to allocate"


class OutOfMemoryWhen(torch.nn.Module):
    """The network, except that a forward pass for which ``full(input)`` is true fails as a full memory does."""

    def __init__(self, model, full, error=torch.OutOfMemoryError, message=GPU_FULL) -> None:
        super().__init__()
        self.model, self.full, self.error, self.message = model, full, error, message
        self.refused = 0

    def forward(self, x):
        if self.full(x):
            self.refused += 1
            raise self.error(self.message)
        return self.model(x)


@pytest.fixture(autouse=True)
def one_thread():
    """Deterministic sums: the fallback's result must equal the plain run's voxel for voxel (an untrained model's
    classes are close, so another summation order could flip a voxel)."""
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def image(labelled_dir):
    """The middle of a phantom: two 32^3 windows at the model's 6 mm (a whole phantom takes 8, 4x the time)."""
    phantom = read_volume(labelled_dir / "imagesTr" / "case_000.nii.gz")
    return Volume(np.ascontiguousarray(phantom.array[6:46, 5:35, 2:32]), phantom.affine, phantom.meta)


def segmenter(tiny_model, **options) -> Segmenter:
    return Segmenter(load_model_package(tiny_model), SegmentOptions(device="cpu", **options))


def test_out_of_memory_with_several_windows_retries_one_at_a_time(tiny_model, image, caplog):
    expected = segmenter(tiny_model).segment(image).array
    several = segmenter(tiny_model, sw_batch_size=4)
    several.model = OutOfMemoryWhen(several.model, lambda x: x.shape[0] > 1)
    with caplog.at_level(logging.WARNING):
        labels = several.segment(image).array
    assert several.model.refused == 1
    np.testing.assert_array_equal(labels, expected)
    assert "out of memory with 4 windows at a time on cpu" in caplog.text
    assert "trying again with 1 window at a time on cpu" in caplog.text
    assert several.options.sw_batch_size == 1, "the next volume starts with what worked"


@pytest.mark.parametrize("accelerator", ["meta", "cuda"])
def test_out_of_memory_on_an_accelerator_falls_back_to_the_cpu(tiny_model, image, caplog, accelerator):
    if accelerator == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here (the meta device stands in for one)")
    expected = segmenter(tiny_model).segment(image).array
    if accelerator == "cuda":
        gpu = Segmenter(load_model_package(tiny_model), SegmentOptions(device="cuda"))
    else:  # the meta device accepts every tensor and computes nothing: as a GPU, with the network failing on it
        gpu = segmenter(tiny_model)
        gpu.device = torch.device("meta")
    gpu.model = OutOfMemoryWhen(gpu.model, lambda x: x.device.type != "cpu")
    with caplog.at_level(logging.WARNING):
        labels = gpu.segment(image).array
    np.testing.assert_array_equal(labels, expected)
    assert f"out of memory with 1 window at a time on {accelerator}" in caplog.text
    assert "trying again with 1 window at a time on cpu" in caplog.text
    assert gpu.device.type == "cpu" and next(gpu.model.parameters()).device.type == "cpu"


def test_out_of_memory_even_on_the_cpu_says_what_to_change(tiny_model, image):
    full = segmenter(tiny_model, sw_batch_size=2)
    full.model = OutOfMemoryWhen(full.model, lambda x: True, RuntimeError, CPU_FULL)
    with pytest.raises(SSLSegError) as stopped:
        full.segment(image)
    assert full.model.refused == 2  # 2 windows at once, then 1 window with one worker
    assert "out of memory while segmenting" in stopped.value.message and image.meta.source in stopped.value.message
    assert "32^3 window" in stopped.value.message
    assert "close other programs" in stopped.value.hint and "more memory" in stopped.value.hint


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("command", ["segment", "finetune"])
def test_a_cuda_request_without_cuda_says_so_and_offers_the_cpu(command, tiny_model, labelled_dir, tmp_path, capsys):
    if command == "segment":
        args = ["segment", labelled_dir / "imagesTr" / "case_000.nii.gz", "--model", tiny_model,
                "--out", tmp_path / "labels.nii.gz"]
    else:
        args = ["finetune", labelled_dir, "--encoder", "none", "--out", tmp_path / "model", *FINETUNE_TINY,
                "--events", tmp_path / "events.jsonl"]
    assert_refused(run_cli(capsys, *args, "--device", "cuda"), "--device cuda was requested",
                   "this PyTorch sees no CUDA GPU", "use --device cpu")
