"""Training crops keep the patient's sides: no augmentation may move the right to the left (the liver/spleen and
left/right kidney labels would then contradict the anatomy); and the model card describes the transforms that ran."""

import numpy as np
import torch
from monai.transforms import RandFlipd, RandRotate90d

from sslseg.finetune.crops import tutorial_transforms
from sslseg.package.model_package import load_model_package

SIZE, CROP, DRAWS = 24, 12, 200


def test_no_crop_ever_mirrors_or_turns_left_and_right():
    """Image = the voxel's left-right index (a ramp along axis 0, towards R in RAS), label = its right half. In 200
    random draws of the training transforms, every crop still rises by one step per voxel along axis 0 and is
    constant along the others (the intensity shift only adds a constant), and its label still marks the right."""
    ramp = np.broadcast_to(np.arange(SIZE, dtype=np.float32)[:, None, None], (SIZE,) * 3) / SIZE
    sample = {"image": torch.from_numpy(ramp.copy())[None],
              "label": torch.from_numpy((ramp >= 0.5).astype(np.uint8))[None]}
    transforms = tutorial_transforms(CROP, crops=2)
    crops = 0
    for seed in range(DRAWS):
        transforms.set_random_state(seed=seed)
        for out in transforms(dict(sample)):
            image, label = np.asarray(out["image"])[0], np.asarray(out["label"])[0].astype(int)
            assert np.allclose(np.diff(image, axis=0), 1 / SIZE, atol=1e-6), f"draw {seed}: left-right flipped/turned"
            assert np.allclose(np.diff(image, axis=1), 0) and np.allclose(np.diff(image, axis=2), 0), f"draw {seed}"
            assert (np.diff(label, axis=0) >= 0).all() and (np.diff(label, axis=(1)) == 0).all(), f"draw {seed}"
            crops += 1
    assert crops == 2 * DRAWS


def test_the_card_describes_the_transforms_that_ran(labelled_dir, tmp_path, run_finetune):
    """Each transform of the training Compose, in order, with its keys, probability and settings: the flips name
    exactly the spatial axes the RandFlipd objects flip (never left-right), the 90-degree turns their plane."""
    patch, crops = 32, 2
    run_finetune(labelled_dir, tmp_path / "model", epochs=1, max_steps=1, val_fraction=0, patch_size=patch,
                 crops_per_volume=crops)
    described = load_model_package(tmp_path / "model").card["provenance"]["training"]["augmentation"]
    ran = tutorial_transforms(patch, crops).transforms
    assert [d["transform"] for d in described] == [type(t).__name__ for t in ran]
    for item, transform in zip(described, ran):
        assert item["keys"] == list(transform.keys) and item.get("prob") == getattr(transform, "prob", None)
    flips = [d for d in described if d["transform"] == "RandFlipd"]
    assert [d["spatial_axis"] for d in flips] == [t.flipper.spatial_axis for t in ran if isinstance(t, RandFlipd)]
    assert [d["axes"] for d in flips] == [["posterior-anterior"], ["inferior-superior"]]
    (turn,) = [d for d in described if d["transform"] == "RandRotate90d"]
    (turned,) = [t for t in ran if isinstance(t, RandRotate90d)]
    assert turn["spatial_axes"] == list(turned.spatial_axes) and turn["max_k"] == turned.max_k
    assert not any("left-right" in d.get("axes", []) for d in described)
    (crop,) = [d for d in described if d["transform"] == "RandCropByPosNegLabeld"]
    assert crop["spatial_size"] == [patch] * 3 and crop["num_samples"] == crops


def test_class_balanced_centres_centre_small_organs_as_often_as_large_ones(labelled_dir, tmp_path):
    """``--crop-centres classes``: over 150 draws of 2 crops of a phantom, each of background and the 8 organs is
    the centre voxel's class about 1/9 of the time; the tutorial's draw centres the small gallbladder and pancreas
    far less often than the liver."""
    from sslseg.finetune.cases import load_cases
    from sslseg.finetune.crops import LabelledCrops
    from sslseg.segmentation.preprocess import SegmentationPreprocessing

    cases = load_cases(labelled_dir, tmp_path / "cache", SegmentationPreprocessing(spacing_mm=(6.0, 6.0, 6.0)), 0.0, 0)
    case = cases.train[0]
    classes = len(cases.labels) + 1
    odd = 17  # the centre voxel stays the centre under the flips and 90-degree turns

    def centre_classes(**choice) -> np.ndarray:
        crops = LabelledCrops([case], [cases.lut(case)], odd, 2, seed=0, **choice)
        centres = [int(label[0, odd // 2, odd // 2, odd // 2]) for e in range(150) for label in crops[(e, 0)]["label"]]
        return np.bincount(centres, minlength=classes) / len(centres)

    balanced, tutorial = centre_classes(classes=classes), centre_classes()
    assert balanced.min() > 0.05 and balanced.max() < 0.2, balanced
    small = [cases.labels.value_of(name) for name in ("gallbladder", "pancreas")]
    assert tutorial[small].max() < 0.05 < balanced[small].min(), (tutorial, balanced)
