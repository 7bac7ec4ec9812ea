"""Annotator votes of a training set, where the dataset has them (shown next to a suspected label)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import classes as C


def annotator_votes(dataset) -> tuple[tuple[str, ...], np.ndarray] | None:
    """(column names, (N, V) votes) for the rows of ``dataset``, or ``None`` when it has none.

    - FERPlus images (a ``label.csv`` beside them, whatever the label mode): the raw counts of its
      10 annotators over neutral ... contempt, unknown, NF (``ferlab.classes.FERPLUS_VOTES``),
      matched by file name;
    - any other dataset with ``soft_label`` (e.g. FERPlus ``label_mode: votes``): those rows.
    """
    if dataset.paths is not None and dataset.name.startswith("ferplus"):
        from ..data.ferplus import read_votes
        tables = {}
        rows = []
        for p in map(Path, dataset.paths):
            if p.parent not in tables:
                names, votes = read_votes(p.parent / "label.csv")
                tables[p.parent] = dict(zip(names, votes))
            rows.append(tables[p.parent][p.name])
        return C.FERPLUS_VOTES, np.asarray(rows, dtype=np.int64).reshape(-1, len(C.FERPLUS_VOTES))
    if dataset.soft_labels is not None:
        return dataset.classes, np.asarray(dataset.soft_labels)
    return None
