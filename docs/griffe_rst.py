"""A griffe extension for the API reference (``extensions:`` in ``mkdocs.yml``): ferlab's docstrings use
reStructuredText roles (``:func:`~ferlab.x.y```, ``:class:`.Trainer```); they are rendered as code, showing
the name as Sphinx would (the last part after ``~``, without a leading ``.``), and the ``::`` that opens an
RST literal block becomes ``:`` (the indented block is a code block in Markdown too)."""
from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj|const|term|ref):`([^`]+)`")


def plain(match: re.Match) -> str:
    target = match.group(1).strip()
    if "<" in target and target.endswith(">"):          # :ref:`text <target>`
        return target.split("<", 1)[0].strip()
    if target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return f"`{target.lstrip('.')}`"


def convert(text: str) -> str:
    """Roles as code; a paragraph ending in ``::`` (an RST literal block follows) ends in ``:``."""
    return re.sub(r"::$", ":", ROLE.sub(plain, text), flags=re.M)


class RstRoles(griffe.Extension):
    """Rewrite the roles of every docstring once it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:  # noqa: D102 - griffe's hook
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
