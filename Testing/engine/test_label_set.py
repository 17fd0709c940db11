"""Labels by name: union over cases, remap of differently numbered cases, missing organs, unnamed values."""

import numpy as np
import pytest

from sslseg.errors import LabelError
from sslseg.finetune.label_set import remap, remap_lookup, union_of_names
from sslseg.labels import LabelTable


def test_union_in_order_of_first_appearance():
    a = LabelTable.from_names({1: "liver", 2: "spleen"})
    b = LabelTable.from_names({1: "spleen", 5: "aorta", 9: "liver"})
    assert union_of_names([a, b]).names == {"liver": 1, "spleen": 2, "aorta": 3}


def test_cases_numbered_differently_are_remapped_by_name():
    union = LabelTable.from_names({1: "liver", 2: "spleen", 3: "aorta"})
    case = LabelTable.from_names({4: "aorta", 7: "liver"})  # no spleen in this case
    labels = np.array([[[0, 4, 7, 7]]], dtype=np.uint8)
    lut = remap_lookup(case, union, np.unique(labels), "case_3")
    np.testing.assert_array_equal(remap(labels, lut), [[[0, 3, 1, 1]]])


def test_a_value_without_a_name_is_an_error_naming_the_case():
    union = LabelTable.from_names({1: "liver"})
    with pytest.raises(LabelError, match=r"case_9 uses label value\(s\) \[6\]"):
        remap_lookup(LabelTable.from_names({1: "liver"}), union, [0, 1, 6], "case_9")


def test_an_organ_outside_the_label_set_is_an_error():
    union = LabelTable.from_names({1: "liver"})
    with pytest.raises(LabelError, match="'kidney' is not in the model's label set"):
        remap_lookup(LabelTable.from_names({1: "kidney"}), union, [0, 1], "case_2")
