"""LabelAudit: a training set ranked by how suspicious each given label looks."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .votes import annotator_votes


@dataclass
class LabelAudit:
    """Every training row with a suspicion score (higher = more likely a wrong label).

    Attributes:
        dataset: the training set as the run(s) trained on it (``labels`` = the given labels, maybe
            noisy; ``clean_labels`` = a reference label where the dataset has one: the label before
            synthetic noise, or the FERPlus majority).
        suspicion: (N,) float; the ranking key (ties keep dataset order).
        signals: column name -> (N,) raw values shown next to the suspicion (e.g.
            ``rul-sym30-s0:uncertainty``).
        probs: (N, C) predicted class probabilities (mean over the runs), or ``None``.
        source: how ``suspicion`` was made (runs, signal per run, combination; cleanlab settings).
        flagged: (N,) bool, rows cleanlab flags as label issues (cleanlab audits only).
    """
    dataset: object
    suspicion: np.ndarray
    signals: dict = field(default_factory=dict)
    probs: np.ndarray | None = None
    source: dict = field(default_factory=dict)
    flagged: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.suspicion)

    @property
    def order(self) -> np.ndarray:
        """(N,) row indices, most suspicious first (stable: ties in dataset order)."""
        return np.argsort(-np.asarray(self.suspicion, dtype=np.float64), kind="stable")

    @property
    def known(self) -> np.ndarray:
        """(N,) bool: rows with a reference (clean) label and a given label."""
        ds = self.dataset
        if ds.clean_labels is None:
            return np.zeros(len(self), dtype=bool)
        return (ds.clean_labels >= 0) & (ds.labels >= 0)

    @property
    def wrong(self) -> np.ndarray:
        """(N,) bool: the given label differs from the reference label (only where ``known``)."""
        ds = self.dataset
        return self.known & (ds.labels != (ds.clean_labels if ds.clean_labels is not None else ds.labels))

    def image_names(self) -> list[str]:
        """The image file of each row, or ``<dataset name>[<row>]`` for in-memory datasets."""
        ds = self.dataset
        return list(ds.paths) if ds.paths is not None else [f"{ds.name}[{i}]" for i in range(len(ds))]

    def predicted(self) -> np.ndarray | None:
        """(N,) argmax class of ``probs``, or ``None`` when the audit has no probabilities."""
        return None if self.probs is None else self.probs.argmax(1)

    def rows(self) -> tuple[list[str], list[list]]:
        """(header, rows in rank order) of the audit table (``report.write_csv``)."""
        ds, classes = self.dataset, self.dataset.classes
        names = self.image_names()
        has_clean = ds.clean_labels is not None and bool(self.known.any())
        votes = annotator_votes(ds)

        def cls(i: int) -> str:
            return classes[i] if i >= 0 else ""

        header = ["rank", "index", "image", "given_label", "predicted_label", "p_given", "p_predicted", "suspicion"]
        header += ["flagged"] * (self.flagged is not None) + ["reference_label"] * has_clean
        header += list(self.signals) + [f"p_{c}" for c in classes] * (self.probs is not None)
        header += [f"votes_{v}" for v in votes[0]] if votes else []
        pred = self.predicted()
        out = []
        for rank, i in enumerate(self.order, 1):
            y = int(ds.labels[i])
            row = [rank, int(i), names[i], cls(y)]
            if self.probs is not None:
                p = self.probs[i]
                row += [cls(int(pred[i])), _num(p[y]) if y >= 0 else "", _num(p[pred[i]])]
            else:
                row += ["", "", ""]
            row.append(_num(self.suspicion[i]))
            if self.flagged is not None:
                row.append(int(self.flagged[i]))
            if has_clean:
                row.append(cls(int(ds.clean_labels[i])))
            row += [_num(v[i]) for v in self.signals.values()]
            if self.probs is not None:
                row += [_num(v) for v in self.probs[i]]
            if votes:
                row += [_num(v) for v in votes[1][i]]
            out.append(row)
        return header, out


def _num(v) -> str | int:
    """Numbers as CSV text: integers plainly, floats to 6 significant digits, NaN as empty."""
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, (int, np.integer)):
        return int(v)
    return "" if not np.isfinite(v) else f"{v:.6g}"
