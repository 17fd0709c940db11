"""Training crops keep the patient's sides: no augmentation may move the right to the left (the liver/spleen and
left/right kidney labels would then contradict the anatomy)."""

import numpy as np
import torch

from sslseg.finetune.crops import tutorial_transforms

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
