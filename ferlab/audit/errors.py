"""What ``ferlab audit`` reports to its user as one line (exit 2) instead of a traceback."""
from __future__ import annotations

from ..errors import UserError


class AuditError(UserError, ValueError):
    """Runs that cannot be audited together, a signal a run lacks, a missing checkpoint."""


class MissingExtraError(UserError, ImportError):
    """An optional dependency (``ferlab[audit]``: cleanlab) is not installed."""
