"""Progress bars that suit where ferlab runs: a terminal, a Jupyter notebook with or without ipywidgets.

- In a terminal (or any process that is not a Jupyter kernel): tqdm's text bar, redrawn in place.
- In a Jupyter kernel with ``ipywidgets`` (the ``notebooks`` extra): tqdm's widget bar.
- In a Jupyter kernel without ``ipywidgets``: no bar. tqdm's text bar would write every redraw into the
  cell's output (a notebook keeps them all: thousands of lines over a training run), so the bar is
  switched off and what a caller prints between bars (the trainer's one line per epoch) is all that shows.

Every bar in ferlab is made by :func:`progress_bar`, and lines printed while one may be open go through
:func:`write_line`.
"""
from __future__ import annotations

import sys


def in_jupyter_kernel() -> bool:
    """Whether this process is a Jupyter (IPython) kernel, as opposed to a terminal, a plain script or
    an IPython shell in a terminal."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:       # an IPython too old or half-imported: not a kernel ferlab can draw widgets in
        return False
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def has_widgets() -> bool:
    """Whether ``ipywidgets`` can be imported (tqdm's notebook bar needs it)."""
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def bar_kind() -> str:
    """``"widget"`` (a Jupyter kernel with ipywidgets), ``"none"`` (a Jupyter kernel without) or
    ``"text"`` (anywhere else): the bar :func:`progress_bar` makes here."""
    if not in_jupyter_kernel():
        return "text"
    return "widget" if has_widgets() else "none"


def progress_bar(iterable=None, *, disable: bool = False, **kwargs):
    """A tqdm bar over ``iterable`` (or of ``total=``) of the kind :func:`bar_kind` names; ``disable``
    and every other keyword are tqdm's. Where no bar suits (a kernel without ipywidgets) the bar is a
    disabled tqdm: it iterates, counts and closes like any other and prints nothing."""
    kind = bar_kind()
    if kind == "widget":
        from tqdm.notebook import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm(iterable, disable=disable or kind == "none", **kwargs)


def write_line(message: str, file=None) -> None:
    """Print ``message`` as a line of its own without breaking an open text bar (``tqdm.write``)."""
    from tqdm.std import tqdm
    tqdm.write(message, file=file)
