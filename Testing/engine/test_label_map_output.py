"""Segmentation outputs: names travel with every format; stray islands are removed per organ."""

import numpy as np
import pytest
from geometry_cases import GRIDS

from sslseg.errors import SSLSegError
from sslseg.inference.components import largest_component_per_label
from sslseg.io.label_map_io import read_label_map
from sslseg.io.label_map_writer import write_label_map
from sslseg.labels import LabelTable
from sslseg.volume import Volume


@pytest.mark.parametrize("name", ["out.nii.gz", "out.nrrd", "out.seg.nrrd"])
def test_names_and_colours_round_trip(tmp_path, name):
    labels = np.zeros((8, 7, 6), np.uint8)
    labels[1:3, 1:3, 1:3], labels[5:7, 4:6, 2:5] = 1, 4
    table = LabelTable.from_names({1: "liver", 4: "aorta"}, {1: (0.5, 0.25, 0.125), 4: (1.0, 0.0, 0.0)})
    write_label_map(Volume(labels, GRIDS["lps"]), table, tmp_path / name)
    back, back_table = read_label_map(tmp_path / name)
    np.testing.assert_array_equal(back.array, labels)
    np.testing.assert_allclose(back.affine, GRIDS["lps"], atol=1e-6)
    assert back_table.names == {"liver": 1, "aorta": 4}
    assert back_table.labels[1].color == pytest.approx((0.5, 0.25, 0.125))


def test_existing_outputs_are_kept(tmp_path):
    volume = Volume(np.ones((4, 4, 4), np.uint8), np.eye(4))
    write_label_map(volume, LabelTable.from_names({1: "liver"}), tmp_path / "a.nii.gz")
    with pytest.raises(SSLSegError, match="already exists"):
        write_label_map(volume, LabelTable.from_names({1: "liver"}), tmp_path / "a.nii.gz")


def test_largest_component_per_organ():
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:8, 2:8, 2:8] = 1   # liver, big
    labels[15:17, 15:17, 15:17] = 1  # liver island
    labels[10:12, 2:4, 2:4] = 2  # spleen, one piece: kept
    kept = largest_component_per_label(labels)
    assert (kept == 1).sum() == 216 and (kept == 2).sum() == 8
    assert kept[16, 16, 16] == 0
