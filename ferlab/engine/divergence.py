"""The NaN stop: a run stops when its running loss, or the model / optimizer state about to be
saved, holds NaN/inf. Nothing non-finite is ever saved, so the last good checkpoint is kept, and
the stop message names it (positions counted from 1, as the logs count them)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserError
from .checkpoint import position


class TrainingDiverged(UserError, RuntimeError):
    """The loss, or the model / optimizer state about to be saved, became NaN/inf. Nothing
    non-finite is ever saved: the last good checkpoint is kept, and the message names it."""
    exit_code = 3


def nonfinite_state(method, optimizer) -> str | None:
    """The name of the first parameter, buffer or optimizer-state tensor holding NaN/inf (a
    method's per-sample bookkeeping buffers excepted: DMUE marks unseen samples with NaN)."""
    skip = set(method.per_sample_buffers)
    named = [(n, t) for n, t in (*method.named_parameters(), *method.named_buffers())
             if n not in skip and t.is_floating_point()]
    param_name = {id(p): n for n, p in method.named_parameters()}
    for p, st in optimizer.state.items():
        named += [(f"optimizer {k} of {param_name.get(id(p), '?')}", t) for k, t in st.items()
                  if torch.is_tensor(t) and t.is_floating_point() and t.dim()]
    if not named:
        return None
    ok = torch.stack([torch.isfinite(t).all() for _, t in named])
    if bool(ok.all()):
        return None
    return named[int((~ok).nonzero()[0])][0]


def diverged(what: str, where: str, checkpoint: Path, last_saved: tuple[int, int] | None,
             fp16: bool = False) -> TrainingDiverged:
    """The stop: ``what`` became non-finite at ``where``; ``last_saved`` is the (epoch,
    step_in_epoch) of the run's ``checkpoint`` this process saved or resumed (``None``: none)."""
    if last_saved is None:
        keep = ("no checkpoint of this run was saved before it (none is written with NaN/inf); start again "
                "with a lower --lr" + (", or --amp bf16/off" if fp16 else ""))
    else:
        keep = (f"the last good checkpoint {checkpoint} ({position(*last_saved)}) is kept; "
                f"--resume continues from it" + (" (with --amp bf16/off against fp16 overflow)" if fp16 else "")
                + "; a lower --lr needs a new run (resume restores the optimizer's lr)")
    return TrainingDiverged(f"training diverged at {where}: {what}; {keep}")
