"""The shipped organ terminology: coverage, codes, colours, aliases, and Slicer's TerminologyEntry string format."""

import json
import logging

import numpy as np
import pytest
import slicer

from sslseg.errors import LabelError
from sslseg.synth.anatomy import ORGAN_LABELS
from sslseg.terminology import DEFAULT_PATH, Code, load_terminology, normalize_name

BTCV = ["spleen", "right_kidney", "left_kidney", "gallbladder", "esophagus", "liver", "stomach", "aorta",
        "inferior_vena_cava", "portal_vein_and_splenic_vein", "pancreas", "right_adrenal_gland", "left_adrenal_gland"]

#: SNOMED-CT type (and modifier) codes, as in Slicer's General Anatomy / DICOM master lists (CID 7150 / CID 4031).
EXPECTED_CODES = {
    "liver": ("10200004", None), "spleen": ("78961009", None), "stomach": ("69695003", None),
    "aorta": ("15825003", None), "pancreas": ("15776009", None), "gallbladder": ("28231008", None),
    "esophagus": ("32849002", None), "inferior_vena_cava": ("64131007", None),
    "right_kidney": ("64033007", "24028007"), "left_kidney": ("64033007", "7771000"),
    "right_adrenal_gland": ("23451007", "24028007"), "left_adrenal_gland": ("23451007", "7771000"),
    "portal_vein_and_splenic_vein": ("110765007", None),  # SlicerTotalSegmentator's code; none in DICOM
}

#: Slicer's General Anatomy recommended colours (0..255).
GENERAL_ANATOMY_COLOURS = {"liver": (221, 130, 101), "spleen": (157, 108, 162), "right_kidney": (185, 102, 83),
                           "stomach": (216, 132, 105), "aorta": (224, 97, 76), "pancreas": (249, 180, 111),
                           "gallbladder": (139, 150, 98), "esophagus": (211, 171, 143),
                           "right_adrenal_gland": (249, 186, 150)}


@pytest.fixture(scope="module")
def terminology():
    return load_terminology()


def test_covers_btcv_and_the_synthetic_organs(terminology):
    for name in [*BTCV, *ORGAN_LABELS]:
        assert terminology.lookup(name) is not None, name


@pytest.mark.parametrize("name", sorted(EXPECTED_CODES))
def test_codes(terminology, name):
    term = terminology.lookup(name)
    type_code, modifier = EXPECTED_CODES[name]
    assert term.category == Code("SCT", "123037004", "Anatomical Structure")
    assert (term.type.scheme, term.type.value) == ("SCT", type_code)
    assert (term.modifier.value if term.modifier else None) == modifier


def test_general_anatomy_colours(terminology):
    for name, rgb in GENERAL_ANATOMY_COLOURS.items():
        np.testing.assert_allclose(terminology.color_of(name), np.array(rgb) / 255, atol=1e-12, err_msg=name)
    colours = {terminology.color_of(name) for name in ("inferior_vena_cava", "portal_vein_and_splenic_vein")}
    assert len(colours) == 2  # the two veins can be told apart


def test_every_organ_has_its_own_colour(terminology):
    """Issue 15: both kidneys (and both adrenal glands) had the same colour, because Slicer's lists recommend the
    type's colour for either side. A side swap (the left-right flip the views avoid) must be visible, so paired
    organs differ clearly (at least 30 units of 0..255 in RGB) and no two organs share a colour."""
    colours = {name: tuple(round(c * 255) for c in term.color) for name, term in terminology.terms.items()}
    shared = [(a, b) for a in colours for b in colours if a < b and colours[a] == colours[b]]
    assert not shared, f"organs with the same colour: {shared}"
    for organ in ("kidney", "adrenal_gland"):
        right, left = np.array(colours[f"right_{organ}"]), np.array(colours[f"left_{organ}"])
        assert np.linalg.norm(right - left) >= 30, organ
    model_organs = {terminology.canonical_name(name) for name in [*BTCV, *ORGAN_LABELS]}
    assert len({colours[name] for name in model_organs}) == len(model_organs)


@pytest.mark.parametrize(
    ("alias", "organ"),
    [("kidney_right", "right_kidney"), ("Right Kidney", "right_kidney"), ("right-kidney", "right_kidney"),
     ("rkid", "right_kidney"), ("lkid", "left_kidney"), ("adrenal_gland_left", "left_adrenal_gland"),
     ("left adrenal gland", "left_adrenal_gland"), ("rad", "right_adrenal_gland"), ("IVC", "inferior_vena_cava"),
     ("postcava", "inferior_vena_cava"), ("veins", "portal_vein_and_splenic_vein"),
     ("Portal vein and splenic vein", "portal_vein_and_splenic_vein"), ("gall bladder", "gallbladder"),
     ("Oesophagus", "esophagus"), ("eso", "esophagus"), ("sto", "stomach"), ("gall", "gallbladder")],
)
def test_aliases(terminology, alias, organ):
    assert terminology.canonical_name(alias) == organ


def test_normalize_name():
    assert normalize_name(" Kidney (Right) ") == "kidney_right"
    assert normalize_name("RIGHT_kidney") == "kidney_right"
    assert normalize_name("liver") == "liver"


def test_unknown_names_warn_and_get_no_code(terminology, caplog):
    with caplog.at_level(logging.WARNING):
        assert terminology.tag_of("tumour", warn=True) is None
    assert "'tumour'" in caplog.text
    assert terminology.color_of("tumour", value=3) == terminology.unknown_color(3)
    assert terminology.unknown_color(1) != terminology.unknown_color(2)


def test_tag_is_slicers_terminology_entry_format(terminology):
    """Seven '~'-separated parts, codes as scheme^value^meaning; vtkSegment keeps it and Slicer's parser reads it."""
    tag = terminology.tag_of("left_kidney")
    assert tag == ("Segmentation category and type - 3D Slicer General Anatomy list"
                   "~SCT^123037004^Anatomical Structure~SCT^64033007^Kidney~SCT^7771000^Left"
                   "~Anatomic codes - DICOM master list~^^~^^")
    default = slicer.vtkSegment().GetTerminology()  # Slicer's own default entry has the same shape
    assert default.count("~") == tag.count("~") == 6
    segment = slicer.vtkSegment()
    segment.SetTerminology(tag)
    assert segment.GetTerminology() == tag
    entry = slicer.vtkSlicerTerminologyEntry()
    assert slicer.vtkSlicerTerminologiesModuleLogic.DeserializeTerminologyEntry(tag, entry)
    assert entry.GetTypeObject().GetCodeValue() == "64033007"
    assert entry.GetTypeModifierObject().GetCodeMeaning() == "Left"
    assert entry.GetCategoryObject().GetCodeValue() == "123037004"
    assert entry.GetTerminologyContextName() == "Segmentation category and type - 3D Slicer General Anatomy list"


def test_every_entry_is_well_formed():
    data = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    names = [organ["name"] for organ in data["organs"]]
    assert len(names) == len(set(names))
    for organ in data["organs"]:
        assert organ["context"].startswith("Segmentation category and type - "), organ["name"]
        assert organ["type"]["scheme"] == "SCT" and organ["type"]["code"].isdigit(), organ["name"]
        assert all(0 <= c <= 255 for c in organ["color"]) and len(organ["color"]) == 3, organ["name"]


def test_an_alias_for_two_organs_is_refused(tmp_path):
    data = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    data["organs"][0]["aliases"] = ["spleen"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(LabelError, match="spleen"):
        load_terminology(path)
