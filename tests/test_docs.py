"""The documentation: the README and the docs speak of the project, not of how it was made; every generated
page (results, CLI reference, the README's tables, the layer table) is what ``python docs/gen_pages.py``
writes from the committed JSON and code; the README keeps the parts a new user needs; the test command
builds the site strictly. (``mkdocs build --strict`` itself runs in scripts/check.sh, after pytest.)"""
import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"


def load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen():
    return load_module("ferlab_docs_gen_pages", DOCS / "gen_pages.py")


def doc_files() -> list[Path]:
    return [README, REPO / "mkdocs.yml", *sorted(DOCS.rglob("*.md")), *sorted(DOCS.rglob("*.py"))]


#: wording about how, when or on which computer the project was made: the words of the documentation's
#: acceptance grep and the phrasings it was written against (spelled in pieces, so that the same grep over
#: tests/ finds only real occurrences, not this list)
WORDS = ["ses" "sion", "this " "machine", "this " "VM", "re-trained " "here", "AVX2" "'", "over several (?:ses"
         "sions|mach" "ines)", "no longer on " "this", "paused (?:while|during)", "an AVX2 " "machine"]
HISTORY = re.compile("|".join(WORDS), re.IGNORECASE)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_word_about_how_the_project_was_made(path):
    hits = [f"{path.relative_to(REPO)}:{i}: {line.strip()}"
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if HISTORY.search(line)]
    assert not hits, "\n".join(hits)


def test_history_pattern_catches_what_it_is_for():
    for text in ("as run over several ses" "sions and machines", "no longer on this mach" "ine",
                 "re-trained " "here", "trained on AVX2" "' (a faster EPYC)", "in this " "VM", "Ses" "sion 10"):
        assert HISTORY.search(text), text
    assert not HISTORY.search("a 2-core AMD EPYC with AVX2, one thread per run")


def test_generated_files_are_what_gen_pages_writes(gen):
    stale = [str(path.relative_to(REPO)) for path, text in gen.generated().items()
             if not path.is_file() or path.read_text(encoding="utf-8") != text]
    assert not stale, f"stale generated files {stale}: run `python docs/gen_pages.py` and commit them"


def test_generated_files_cover_results_cli_readme_and_layers(gen):
    paths = {p.relative_to(REPO).as_posix() for p in gen.generated()}
    assert {"README.md", "docs/architecture.md", "docs/reference/cli.md", "docs/results/index.md",
            "docs/results/ferplus-grid.md", "docs/results/face-pretrained.md"} <= paths


def test_cli_reference_has_every_command(gen):
    from ferlab.cli import SUBCOMMANDS
    text = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    for module in SUBCOMMANDS:
        for name in module.COMMANDS:
            assert f"## ferlab {name}\n" in text and f"usage: ferlab {name} " in text, name


def test_results_pages_show_each_results_file_with_its_hardware(gen):
    index = (DOCS / "results" / "index.md").read_text(encoding="utf-8")
    for path in (REPO / "benchmarks" / "results").glob("*.json"):
        assert f"`{path.name}`" in index, path.name
    assert gen.hardware({"cpu_model": "Xeon X", "cpu_count": 2, "cpu_instruction_sets": "AVX2, AMX-BF16",
                         "torch_threads": 1}, {"torch": "2.14.1"}) == \
        "Xeon X, 2 cores (AVX2, AMX-BF16); 1 torch thread; torch 2.14.1"
    assert gen.hardware({"cpu_count": 2}).startswith("CPU model not recorded, 2 cores")


def test_grid_table_marks_expected_cells_without_a_run(gen):
    run = {"method": "eac", "setting": "sym30", "seed": 0, "train_time_s": 600.0,
           "protocol": {"last": 0.5, "mean_last_k": 0.4, "best_val": 0.55, "best_val_epoch": 3,
                        "best_test": {"value": 0.6, "epoch": 4}},
           "train_fit": {"memorised_flipped": 0.25}, "test_dedup_last": {"acc": 0.45}}
    rows = gen.grid_rows([run], expected=[("baseline", "sym30"), ("eac", "sym30")])
    assert rows[0][:4] == ["sym30", "baseline (CE)", "0", gen.NOT_RUN] and rows[0][4:] == [""] * 6
    assert rows[1] == ["sym30", "EAC", "0", "50.00", "40.00", "55.00 (3)", "60.00 (4)", "45.00", "0.250", "10 min"]


def test_recorded_commands_name_no_local_folder(gen):
    assert gen.command("python x.py --out-dir /a/b/runs --results /a/main/benchmarks/results/r.json --out /c/d.json") \
        == "python x.py --out-dir runs --results benchmarks/results/r.json --out d.json"


def test_readme_is_a_short_front_door():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    for part in ("## Install", "## Demo", "ferlab demo", "&& bash scripts/check.sh", "<!-- results:start -->",
                 "figures/ferplus-cpu-accuracy-vs-noise.png",
                 "<!-- python-example:start -->", "<!-- python-example:end -->", "## Command line at a glance",
                 "## Notebooks", "<!-- notebooks:start -->", "## Documentation", "## Licence", "MIT", "## Citing",
                 "CITATION.cff"):
        assert part in text, part
    for figure in re.findall(r"\]\((figures/[^)]+)\)", text):
        assert (REPO / figure).is_file(), figure


def command_extras(path: Path) -> set[str]:
    """The extras of the ``pip install -e ".[...]" && bash scripts/check.sh`` line of ``path``."""
    found = re.findall(r'pip install -e "\.\[([a-z,]+)\]" && bash scripts/check\.sh', path.read_text(encoding="utf-8"))
    assert len(found) == 1, f"{path}: one test command line expected, found {found}"
    return set(found[0].split(","))


def test_the_test_command_builds_the_docs_strictly_and_installs_the_docs_extra():
    import tomllib
    check = (REPO / "scripts" / "check.sh").read_text(encoding="utf-8")
    assert "mkdocs build --strict" in check and check.index("pytest") < check.index("mkdocs build")
    ci, readme = command_extras(REPO / ".ci" / "run"), command_extras(README)
    assert ci == readme and "docs" in ci, (ci, readme)
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {re.split(r"[<>=\[]", d)[0] for d in extras["docs"]}
    assert {"mkdocs", "mkdocs-material", "mkdocstrings", "mkdocs-jupyter"} <= names


@pytest.fixture(scope="module")
def hooks():
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
    return load_module("ferlab_docs_hooks_test", DOCS / "hooks.py")


def test_docs_build_finds_public_names_without_a_docstring(hooks, tmp_path):
    import griffe
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text('"""A package."""\n')
    (tmp_path / "pkg" / "mod.py").write_text(
        '"""A module."""\n\n\ndef documented():\n    """Yes."""\n\n\ndef bare():\n    pass\n\n\n'
        'def _private():\n    pass\n\n\nclass Thing:\n    """A thing."""\n\n    def method(self):\n        pass\n\n'
        '    def _hidden(self):\n        pass\n')
    module = griffe.GriffeLoader(search_paths=[str(tmp_path)]).load("pkg.mod")
    missing = sorted(m.path for m in hooks.public_members(module) if not m.docstring)
    assert missing == ["pkg.mod.Thing.method", "pkg.mod.bare"]


def test_every_public_module_gets_an_api_page(hooks):
    modules = {m for group in hooks.api_modules().values() for m in group}
    assert {"ferlab", "ferlab.engine.trainer", "ferlab.methods.eac", "ferlab.data.ferplus", "ferlab.cli.train",
            "ferlab.errors"} <= modules
    assert not any(part.startswith("_") for m in modules for part in m.split(".")[1:])
    assert "ferlab.cli.__main__" not in modules


def test_executed_notebook_is_kept_without_widgets_and_with_a_readable_smoke_cell(hooks, tmp_path, monkeypatch):
    import nbformat
    monkeypatch.setenv("FERLAB_NOTEBOOK_CACHE", str(tmp_path))
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("SMOKE = False")
    params.metadata["tags"] = ["parameters"]
    run = nbformat.v4.new_code_cell("print(1)")
    run.outputs = [nbformat.v4.new_output("display_data", data={hooks.WIDGET: {"model_id": "x"}, "text/plain": "bar"}),
                   nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nb.cells = [params, run]
    hooks.inject_smoke_cell(nb, "/tmp/somewhere/runs", "cpu")
    source = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), source)
    out = hooks.save_executed(nb, source, key="k")
    saved = nbformat.read(out, as_version=4)
    assert out == tmp_path / "notebooks" / "nb.ipynb" and saved.metadata[hooks.NOTEBOOK_KEY] == "k"
    assert "SMOKE = True" in saved.cells[1].source and "/tmp/somewhere" not in saved.cells[1].source
    assert [o.output_type for o in saved.cells[2].outputs] == ["stream"]
