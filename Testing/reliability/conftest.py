"""Fixtures of the reliability catalogue."""

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A model folder (tiny UNETR, 32^3 window, 6 mm, untrained): liver 1, spleen 2."""
    import torch

    from sslseg.labels import LabelTable
    from sslseg.models.presets import get_preset
    from sslseg.models.unetr import architecture_card, build_unetr
    from sslseg.package.model_package import labels_to_card, save_model_package
    from sslseg.segmentation.preprocess import SegmentationPreprocessing

    torch.manual_seed(0)
    preset = get_preset("tiny").with_img_size(32)
    card = {"architecture": architecture_card(preset, 3),
            "labels": labels_to_card(LabelTable.from_names({1: "liver", 2: "spleen"})),
            "preprocessing": SegmentationPreprocessing(spacing_mm=(6.0, 6.0, 6.0)).to_card()}
    return save_model_package(tmp_path_factory.mktemp("tiny_model") / "model", build_unetr(preset, 3).state_dict(),
                              card)


@pytest.fixture(autouse=True)
def untuned_malloc(monkeypatch):
    """`sslseg segment` tunes glibc malloc for its one-shot process; in pytest's process, leave the allocator alone."""
    monkeypatch.setenv("SSLSEG_MALLOC_TUNING", "0")
