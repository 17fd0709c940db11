"""Organ names -> SNOMED-CT coded terminology and recommended colours, from the shipped JSON mapping.

The mapping lives in ``sslseg/resources/SSLSegmentation_terminology.json`` (package data: the single source of truth,
also what the Slicer modules read). Each organ has a canonical name (the engine's snake_case, e.g. ``right_kidney``),
aliases (BTCV's ``rkid``, TotalSegmentator's ``kidney_right``, AMOS's ``postcava``...), a coded category / type /
type modifier, the Slicer terminology context the type comes from, and a colour.

Names are matched after :func:`normalize_name`: case, spaces, hyphens and underscores do not matter, and a side word
(``right``/``left``) may come first or last, so ``kidney_right``, ``right_kidney`` and ``"Right kidney"`` are one organ.

:meth:`OrganTerm.tag` writes Slicer's ``TerminologyEntry`` string (what ``vtkSegment::SetTerminology`` takes): seven
``~``-separated parts, each code a ``scheme^value^meaning`` triplet::

    terminology context ~ category ~ type ~ type modifier ~ anatomic context ~ region ~ region modifier

No ``slicer`` import here: the engine uses this for model packages and reports; :mod:`sslseg.mrml` puts it on segments.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sslseg.errors import LabelError

log = logging.getLogger(__name__)

RGB = tuple[float, float, float]

#: The shipped mapping (package data).
DEFAULT_PATH = Path(__file__).resolve().parent / "resources" / "SSLSegmentation_terminology.json"

SIDES = ("right", "left")


@dataclass(frozen=True)
class Code:
    """One coded concept, e.g. ``Code("SCT", "10200004", "Liver")``."""

    scheme: str
    value: str
    meaning: str

    def triplet(self) -> str:
        """``scheme^value^meaning``, Slicer's serialisation of a code."""
        return f"{self.scheme}^{self.value}^{self.meaning}"


EMPTY_TRIPLET = "^^"


@dataclass(frozen=True)
class OrganTerm:
    """What the mapping knows about one organ.

    Attributes:
        name: canonical engine name, e.g. ``right_kidney``.
        context: Slicer terminology context name the type is listed in.
        category, type: coded category (``Anatomical Structure``) and type (``Kidney``).
        modifier: coded type modifier (``Right``), or None.
        color: recommended display colour, RGB in 0..1 (multiples of 1/255).
        anatomic_context: Slicer anatomic (region) context name; the region itself is empty for organs.
        aliases: other names that mean this organ.
    """

    name: str
    context: str
    category: Code
    type: Code
    modifier: Code | None
    color: RGB
    anatomic_context: str
    aliases: tuple[str, ...] = ()

    def tag(self) -> str:
        """Slicer's ``TerminologyEntry`` tag string for a segment of this organ."""
        modifier = self.modifier.triplet() if self.modifier else EMPTY_TRIPLET
        parts = [self.context, self.category.triplet(), self.type.triplet(), modifier,
                 self.anatomic_context, EMPTY_TRIPLET, EMPTY_TRIPLET]
        return "~".join(parts)

    def description(self) -> str:
        """Human-readable, e.g. ``Kidney, Right (SCT 64033007)``."""
        side = f", {self.modifier.meaning}" if self.modifier else ""
        return f"{self.type.meaning}{side} ({self.type.scheme} {self.type.value})"


class Terminology:
    """Organ terms by name and alias. Build with :func:`load_terminology`."""

    def __init__(self, terms: list[OrganTerm], unknown_colors: list[RGB], source: str = "") -> None:
        self.terms = {term.name: term for term in terms}
        self.unknown_colors = unknown_colors or [(0.5, 0.5, 0.5)]
        self.source = source
        self._index: dict[str, OrganTerm] = {}
        for term in terms:
            for name in (term.name, *term.aliases):
                key = normalize_name(name)
                other = self._index.get(key)
                if other is not None and other is not term:
                    raise LabelError(f"{source}: name {name!r} is given to {other.name!r} and {term.name!r}",
                                     "each name or alias may mean one organ")
                self._index[key] = term

    def lookup(self, name: str, warn: bool = False) -> OrganTerm | None:
        """The organ a name means, or None (with a logged warning when ``warn``)."""
        term = self._index.get(normalize_name(name))
        if term is None and warn:
            log.warning("organ name %r is not in the terminology mapping (%s): no SNOMED-CT code, generic colour",
                        name, self.source)
        return term

    def canonical_name(self, name: str) -> str | None:
        term = self.lookup(name)
        return term.name if term else None

    def same_organ(self, a: str, b: str) -> bool:
        """True when two names mean the same organ (identical names always do)."""
        if normalize_name(a) == normalize_name(b):
            return True
        term_a, term_b = self.lookup(a), self.lookup(b)
        return term_a is not None and term_a is term_b

    def unknown_color(self, value: int) -> RGB:
        """Generic colour for label value ``value`` (>= 1) of a name the mapping does not know."""
        return self.unknown_colors[(max(int(value), 1) - 1) % len(self.unknown_colors)]

    def color_of(self, name: str, value: int = 1, warn: bool = False) -> RGB:
        """Recommended colour of an organ, else the generic colour for ``value``."""
        term = self.lookup(name, warn=warn)
        return term.color if term else self.unknown_color(value)

    def segment_color(self, value: int, table) -> RGB:
        """Colour of the segment for label ``value`` of ``table`` (a :class:`~sslseg.labels.LabelTable`): the table's
        own colour, else the organ's recommended one, else the generic colour for ``value`` (also for a value the
        table lacks)."""
        label = table.labels.get(value)
        if label is None:
            return self.unknown_color(value)
        if label.color is not None:
            return tuple(float(c) for c in label.color)
        return self.color_of(label.name, value)

    def tag_of(self, name: str, warn: bool = False) -> str | None:
        """Slicer ``TerminologyEntry`` string of an organ, or None for an unknown name."""
        term = self.lookup(name, warn=warn)
        return term.tag() if term else None

    def __contains__(self, name: str) -> bool:
        return normalize_name(name) in self._index

    def __len__(self) -> int:
        return len(self.terms)


def normalize_name(name: str) -> str:
    """Matching key of an organ name: lower case, words joined by ``_``, a side word moved to the end.

    ``"Right Kidney"`` -> ``kidney_right``; ``kidney-right`` -> ``kidney_right``; ``IVC`` -> ``ivc``.
    """
    words = [w for w in re.split(r"[^0-9a-z]+", str(name).lower()) if w]
    if len(words) > 1 and words[0] in SIDES:
        words = words[1:] + words[:1]
    return "_".join(words)


@lru_cache(maxsize=8)
def load_terminology(path: str | Path | None = None) -> Terminology:
    """Read a terminology mapping JSON (default: the shipped one). Cached per path."""
    path = Path(path) if path is not None else DEFAULT_PATH
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise LabelError(f"cannot read the terminology mapping {path}: {error}",
                         "reinstall sslseg or fix the JSON") from error
    try:
        category = _code(data["category"])
        anatomic_context = data.get("anatomicContextName", "Anatomic codes - DICOM master list")
        terms = [
            OrganTerm(
                name=organ["name"],
                context=organ["context"],
                category=_code(organ["category"]) if "category" in organ else category,
                type=_code(organ["type"]),
                modifier=_code(organ["modifier"]) if organ.get("modifier") else None,
                color=_rgb(organ["color"]),
                anatomic_context=anatomic_context,
                aliases=tuple(organ.get("aliases", ())),
            )
            for organ in data["organs"]
        ]
        unknown = [_rgb(c) for c in data.get("unknownColors", [])]
    except (KeyError, TypeError, ValueError) as error:
        raise LabelError(f"{path}: malformed terminology mapping ({error!r})",
                         "compare with the shipped file") from error
    return Terminology(terms, unknown, source=path.name)


def _code(entry: dict) -> Code:
    return Code(str(entry["scheme"]), str(entry["code"]), str(entry["meaning"]))


def _rgb(values) -> RGB:
    rgb = tuple(int(v) for v in values)
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise ValueError(f"colour {values!r} is not three integers 0..255")
    return tuple(v / 255.0 for v in rgb)  # type: ignore[return-value]
