"""Which training labels are probably wrong: ``ferlab audit`` as a Python API.

- :func:`audit_runs` ranks a run's training set by its noise signal (several runs: rank averaging,
  :mod:`.ranking`);
- :func:`cross_val_probs` trains K folds and returns out-of-sample probabilities (:mod:`.cross_val`),
  :func:`cleanlab_audit` feeds them to ``cleanlab.filter.find_label_issues`` (extra ``ferlab[audit]``);
- :func:`write_report` writes the ranked CSV, the top-k contact sheet and a summary JSON (:mod:`.report`);
- :mod:`.metrics`: AUROC, average precision, precision at k, flagged-set precision / recall.

Example::

    from ferlab.audit import audit_runs, write_report
    audit = audit_runs(["runs/rul-sym30-s0", "runs/ldlva-sym30-s0"])
    write_report(audit, "audit/sym30")
"""
from .confident_learning import cleanlab_audit, require_cleanlab
from .cross_val import cross_val_probs, fold_config, fold_run_dirs
from .errors import AuditError, MissingExtraError
from .metrics import average_precision, detection_report, precision_at_k, set_precision_recall
from .ranking import audit_runs, default_signal, normalised_ranks, rank_average
from .report import contact_sheet, summary, write_csv, write_report
from .result import LabelAudit

__all__ = ["AuditError", "LabelAudit", "MissingExtraError", "audit_runs", "average_precision", "cleanlab_audit",
           "contact_sheet", "cross_val_probs", "default_signal", "detection_report", "fold_config", "fold_run_dirs",
           "normalised_ranks", "precision_at_k", "rank_average", "require_cleanlab", "set_precision_recall",
           "summary", "write_csv", "write_report"]
