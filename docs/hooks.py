"""MkDocs hooks of ferlab's documentation (``hooks:`` in ``mkdocs.yml``).

- The notebooks in ``notebooks/`` (committed without outputs) are rendered with their outputs: each is
  executed once in smoke mode (``SMOKE = True``: tiny data, one epoch; ``DEVICE = "cpu"``) and the executed
  copy is kept in ``build/notebooks/notebooks/`` (``$FERLAB_NOTEBOOK_CACHE/notebooks/``), keyed by the
  notebook's and the package's source. ``tests/test_notebooks.py`` writes the same copies when it runs the
  notebooks (scripts/check.sh sets the variable), so the test command executes each notebook once;
  ``mkdocs build`` executes only the missing or outdated ones. A cell that fails fails the build.
  ``FERLAB_DOCS_NOTEBOOKS=cached`` uses any executed copy present, outdated or not (quick edits of the
  prose pages).
- The figures of ``figures/`` and the executed notebooks become part of the site without being copied
  into ``docs/``; the "Notebooks" section of the navigation lists every notebook in order.
- Every public function and class documented in the API reference must have a docstring: a missing one
  is a warning, which ``mkdocs build --strict`` turns into a failure.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import mkdocs.plugins
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
FIGURES = ROOT / "figures"
NOTEBOOK_KEY = "ferlab_docs_key"
INJECTED_TAG = "injected-parameters"
#: figures become PNG outputs of their cells (matplotlib's inline backend, what Jupyter uses)
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
WIDGET = "application/vnd.jupyter.widget-view+json"
log = logging.getLogger("mkdocs.hooks.ferlab")


def cache_dir() -> Path:
    return Path(os.environ.get("FERLAB_NOTEBOOK_CACHE") or ROOT / "build" / "notebooks")


def source_key(notebook: Path) -> str:
    """sha256 of the notebook and of every module of the package: an executed copy with another key is outdated."""
    h = hashlib.sha256(notebook.read_bytes())
    for path in sorted((ROOT / "ferlab").rglob("*.py")):
        h.update(path.relative_to(ROOT).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def smoke_cell_source(out_dir: str, device: str) -> str:
    return f"SMOKE = True\nOUT_DIR = {out_dir!r}\nDEVICE = {device!r}"


def inject_smoke_cell(nb, out_dir: str, device: str):
    """``nb`` with a cell after its ``parameters`` cell that sets smoke mode (as papermill injects parameters)."""
    import nbformat
    i = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    cell = nbformat.v4.new_code_cell(smoke_cell_source(out_dir, device))
    cell.metadata["tags"] = [INJECTED_TAG]
    nb.cells.insert(i + 1, cell)
    return nb


def save_executed(nb, notebook: Path, key: str | None = None) -> Path:
    """Write the executed ``nb`` of ``notebook`` to the cache, its smoke cell shown without temporary paths and
    without the progress-bar widgets (they have no state outside a live kernel)."""
    import nbformat
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if WIDGET not in o.get("data", {})]
        if INJECTED_TAG in cell.metadata.get("tags", []):
            cell.source = ("# the documentation shows a smoke run: tiny data, one epoch, on the CPU\n"
                           + smoke_cell_source("runs/notebooks", "cpu"))
    nb.metadata[NOTEBOOK_KEY] = key or source_key(notebook)
    out = cached_path(notebook)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    nbformat.write(nb, tmp)
    tmp.replace(out)
    return out


def cached_path(notebook: Path) -> Path:
    return cache_dir() / "notebooks" / notebook.name


def executed_copy(notebook: Path) -> Path:
    """The cached executed copy of ``notebook``, executing it first when missing or outdated."""
    import nbformat
    key = source_key(notebook)
    out = cached_path(notebook)
    if out.is_file() and (os.environ.get("FERLAB_DOCS_NOTEBOOKS") == "cached"
                          or nbformat.read(out, as_version=4).metadata.get(NOTEBOOK_KEY) == key):
        return out
    from nbclient import NotebookClient
    log.info("executing %s in smoke mode", notebook.name)
    nb = nbformat.read(notebook, as_version=4)
    with tempfile.TemporaryDirectory(prefix="ferlab-docs-nb-") as work:
        inject_smoke_cell(nb, str(Path(work) / "runs"), "cpu")
        before = os.environ.get("MPLBACKEND")
        os.environ["MPLBACKEND"] = INLINE_BACKEND
        try:
            NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": work}}).execute()
        finally:
            if before is None:
                os.environ.pop("MPLBACKEND", None)
            else:
                os.environ["MPLBACKEND"] = before
    return save_executed(nb, notebook, key)


def notebook_title(path: Path) -> str:
    import nbformat
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return path.stem


# ------------------------------------------------------------------------------------------- API pages
#: part of the package -> title of its API page; modules directly in ferlab/ go to "core"
API_GROUPS = {
    "core": "Package core: classes, errors, predictor, figures",
    "data": "Datasets, label noise, landmarks and samplers",
    "models": "Backbones, weights and export",
    "losses": "Losses",
    "methods": "Methods",
    "engine": "Training engine",
    "audit": "Label audit",
    "viz": "Visualisation",
    "cli": "Command line (Python side)",
}
PACKAGE = ROOT / "ferlab"


def api_modules() -> dict[str, list[str]]:
    """Every public module of the package (no ``__main__``, no name starting with ``_``), by API page."""
    groups: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] == "__main__" or any(p.startswith("_") for p in parts[1:]):
            continue
        group = parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else "core"
        groups.setdefault(group, []).append(".".join(parts))
    order = list(API_GROUPS)
    return dict(sorted(groups.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


def api_page(group: str, modules: list[str]) -> str:
    lines = [f"# {API_GROUPS.get(group, group)}", "",
             "Generated from the docstrings by mkdocstrings: one section per module.", ""]
    for name in modules:
        package = (ROOT.joinpath(*name.split(".")) / "__init__.py").is_file() or name == "ferlab"
        lines += [f"::: {name}", "    options:", "      show_root_heading: true"]
        if package:
            lines += ["      members: false"]
        lines.append("")
    return "\n".join(lines)


def api_index(groups: dict[str, list[str]]) -> str:
    lines = ["# API reference", "",
             "Every public module of `ferlab`, generated from the docstrings (tensor shapes are part of them). "
             "The layers and contracts these modules implement are described in [Architecture](../../architecture.md).",
             ""]
    for group, modules in groups.items():
        lines.append(f"- [{API_GROUPS.get(group, group)}]({group}.md): " + ", ".join(f"`{m}`" for m in modules))
    return "\n".join(lines) + "\n"


def on_config(config, **kwargs):
    """Fill the nav: "Notebooks" with every notebook of ``notebooks/`` in order, by its title; "API" with
    one page per part of the package."""
    notebooks = [{notebook_title(p): f"notebooks/{p.name}"} for p in sorted(NOTEBOOKS.glob("*.ipynb"))]
    api = ["reference/api/index.md"] + [{API_GROUPS.get(g, g).split(":")[0]: f"reference/api/{g}.md"}
                                        for g in api_modules()]

    def fill(items):
        for item in items or []:
            if isinstance(item, dict):
                for key, value in item.items():
                    if key == "Notebooks":
                        item[key] = notebooks
                    elif key == "API":
                        item[key] = api
                    elif isinstance(value, list):
                        fill(value)
    fill(config["nav"])
    return config


@mkdocs.plugins.event_priority(100)          # before mkdocs-jupyter turns .ipynb files into pages
def on_files(files, config, **kwargs):
    for path in sorted(FIGURES.glob("*.png")):
        files.append(File.generated(config, f"figures/{path.name}", abs_src_path=str(path)))
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        executed_copy(path)
        # a File read from the cache folder (mkdocs-jupyter reads a notebook through its src_dir)
        files.append(File(f"notebooks/{path.name}", src_dir=str(cache_dir()), dest_dir=config["site_dir"],
                          use_directory_urls=config["use_directory_urls"]))
    groups = api_modules()
    files.append(File.generated(config, "reference/api/index.md", content=api_index(groups)))
    for group, modules in groups.items():
        files.append(File.generated(config, f"reference/api/{group}.md", content=api_page(group, modules)))
    return files


def on_post_build(config, **kwargs):
    """Warn for each public function or class of an API-reference page without a docstring."""
    import griffe
    loader = griffe.GriffeLoader(search_paths=[str(ROOT)])
    for name in [m for modules in api_modules().values() for m in modules]:
        obj = loader.load(name)
        for member in public_members(obj, recurse=False):
            if not member.docstring:
                log.warning("API reference: %s has no docstring", member.path)


def public_members(obj, recurse: bool = True):
    """The public functions and classes the griffe module ``obj`` defines (with ``recurse``, also those of its
    submodules), and the public methods of those classes."""
    for name, member in obj.members.items():
        if name.startswith("_") or member.is_alias:
            continue
        if member.is_module:
            if recurse:
                yield from public_members(member)
        elif member.is_function or member.is_class:
            yield member
            if member.is_class:
                yield from (m for n, m in member.members.items()
                            if not n.startswith("_") and not m.is_alias and m.is_function)
