"""Canonical emotion vocabulary and the native label order of every dataset.

Labels are indices into a dataset's own ``classes`` tuple; moving labels between
datasets always goes through the class *names* (:func:`remap`).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

#: Canonical names, in FERPlus order (the 7 basic emotions, then contempt).
CANONICAL: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
)
BASIC7: tuple[str, ...] = CANONICAL[:7]

#: RAF-DB basic: file labels are 1-based in this order (1 Surprise ... 7 Neutral).
RAFDB: tuple[str, ...] = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
#: FER2013 csv / Kaggle: 0 Angry ... 6 Neutral.
FER2013: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
#: FERPlus vote columns (the last two are not emotions).
FERPLUS_VOTES: tuple[str, ...] = CANONICAL + ("unknown", "NF")
FERPLUS8: tuple[str, ...] = CANONICAL
FERPLUS7: tuple[str, ...] = BASIC7
#: AffectNet: 0 Neutral ... 7 Contempt (8-11 are non-expression codes).
AFFECTNET8: tuple[str, ...] = (
    "neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger", "contempt",
)
AFFECTNET7: tuple[str, ...] = AFFECTNET8[:7]

DATASET_CLASSES: dict[str, tuple[str, ...]] = {
    "rafdb": RAFDB, "fer2013": FER2013, "ferplus7": FERPLUS7, "ferplus8": FERPLUS8,
    "affectnet7": AFFECTNET7, "affectnet8": AFFECTNET8, "synthetic": BASIC7,
}

#: Spellings found in folder names and papers -> canonical name.
ALIASES: dict[str, str] = {
    "happy": "happiness", "happiness": "happiness", "joy": "happiness",
    "sad": "sadness", "sadness": "sadness",
    "angry": "anger", "anger": "anger",
    "surprise": "surprise", "surprised": "surprise",
    "fear": "fear", "fearful": "fear", "scared": "fear",
    "disgust": "disgust", "disgusted": "disgust",
    "neutral": "neutral", "calm": "neutral",
    "contempt": "contempt",
}


def canonical_name(name: str) -> str:
    """Map a spelling such as ``'Happy'`` or ``'angry'`` to the canonical name."""
    key = name.strip().lower()
    if key not in ALIASES:
        raise KeyError(f"unknown emotion name {name!r}; known: {sorted(set(ALIASES))}")
    return ALIASES[key]


def remap(labels: Iterable[int] | np.ndarray, src: Sequence[str], dst: Sequence[str]) -> np.ndarray:
    """Re-index ``labels`` given in class order ``src`` into class order ``dst`` by name.

    Labels ``< 0`` (unknown) stay ``-1``. A class of ``src`` absent from ``dst``
    (e.g. contempt into a 7-class set) becomes ``-1``.
    """
    table = np.array([dst.index(n) if n in dst else -1 for n in src], dtype=np.int64)
    lab = np.asarray(labels, dtype=np.int64)
    out = np.full_like(lab, -1)
    ok = lab >= 0
    out[ok] = table[lab[ok]]
    return out
