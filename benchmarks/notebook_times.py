"""Wall time of the notebooks as a reader runs them: default parameters, a fresh kernel each.

    python benchmarks/notebook_times.py                       # 03-07, each in a runs folder of its own (cold)
    python benchmarks/notebook_times.py --shared 00 01 02 03  # in order, one runs folder: later ones reuse runs

Every notebook keeps the parameters it is committed with except ``OUT_DIR``, which points into a temporary folder:
by default a fresh one per notebook, so that each trains everything it shows (the time of a reader who opens that
notebook first); with ``--shared`` one folder for all, in the order given (the time of a reader going through
them in order, when runs of earlier notebooks are reused). The kernel uses torch's default thread count (every
core). A method notebook writes ``<runs folder>/<setting>/<notebook>.json`` with its numbers and claims; they are
copied into the results. Writes ``benchmarks/results/notebook-times-<device>.json`` (``--suffix`` appended): per
notebook the wall time, the setting it chose, its claims and whether each held; the machine (CPU model, cores,
instruction sets, torch threads), versions, the command and the load average before and after (another
process's load slows the notebooks). A notebook that fails is recorded with its error and the script exits 1.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
METHOD_NOTEBOOKS = ("03", "04", "05", "06", "07")
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def notebook_path(key: str) -> Path:
    """``03`` or ``03_eac`` or a path -> the notebook file."""
    path = Path(key)
    if path.suffix == ".ipynb" and path.is_file():
        return path
    found = sorted(NOTEBOOKS.glob(f"{key}*.ipynb"))
    if len(found) != 1:
        raise SystemExit(f"notebook_times: {key!r} names {len(found)} notebooks in {NOTEBOOKS}")
    return found[0]


def execute(path: Path, out_dir: Path, parameters: str = "", timeout: int = 3600):
    """Run notebook ``path`` top to bottom in a fresh kernel (working directory ``out_dir``), with a cell after
    its ``parameters`` cell that sets ``OUT_DIR = out_dir/runs`` and then ``parameters``. Returns (the
    executed notebook, wall seconds of the execution, the error or None); figures become PNG outputs."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    i = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    cell = nbformat.v4.new_code_cell(f"OUT_DIR = {str(out_dir / 'runs')!r}\n{parameters}".rstrip())
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(i + 1, cell)
    before = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = INLINE_BACKEND
    t0 = time.perf_counter()
    error = None
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(out_dir)}}).execute()
    except CellExecutionError as e:
        error = str(e).strip().splitlines()[-1][:300]
    finally:
        if before is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = before
    return nb, time.perf_counter() - t0, error


def notebook_results(runs: Path, stem: str) -> dict | None:
    """The ``<stem>.json`` a method notebook wrote into its setting's runs folder, or None."""
    found = sorted(runs.glob(f"*/{stem}.json"))
    return json.loads(found[0].read_text()) if found else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", default=list(METHOD_NOTEBOOKS),
                    help="notebook numbers or names (default: the method notebooks 03-07)")
    ap.add_argument("--shared", action="store_true",
                    help="one runs folder for all, in the order given (later notebooks reuse earlier runs)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder of the results file")
    ap.add_argument("--suffix", default="", help="appended to the results file's name")
    ap.add_argument("--keep", metavar="DIR", help="keep the runs and executed notebooks in DIR (default: deleted)")
    args = ap.parse_args(argv)
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from throughput import machine_and_versions

    paths = [notebook_path(k) for k in args.notebooks]
    load_before = os.getloadavg()
    keep = Path(args.keep) if args.keep else None
    tmp = tempfile.TemporaryDirectory(prefix="ferlab-notebook-times-")
    base = keep or Path(tmp.name)
    rows, failed = {}, False
    for path in paths:
        work = base / ("shared" if args.shared else path.stem)
        work.mkdir(parents=True, exist_ok=True)
        nb, wall, error = execute(path, work)
        row = {"wall_s": round(wall, 1), "mode": "shared" if args.shared else "cold", "error": error}
        result = notebook_results(work / "runs", path.stem)
        if result is not None:
            row.update(setting=result["setting"], claims=result.get("claims"),
                       runs={k: {n: v for n, v in r.items() if n != "method"} for k, r in result["runs"].items()})
        rows[path.stem] = row
        failed |= error is not None
        held = "" if not row.get("claims") else \
            f", claims held {sum(map(bool, row['claims'].values()))}/{len(row['claims'])}"
        print(f"{path.stem}: {wall:.0f} s{held}" + (f"; FAILED: {error}" if error else ""), flush=True)
        if keep:
            import nbformat
            nbformat.write(nb, work / path.name)
    tmp.cleanup()
    device = torch.device("cpu")
    out = {"benchmark": "notebook-times", "command": " ".join(["python", *sys.argv]),
           "what": "wall time of each notebook run top to bottom in a fresh kernel with its default parameters; "
                   "cold: a fresh runs folder per notebook (it trains every run it shows); shared: one runs folder "
                   "in the order given (runs of earlier notebooks reused)",
           **machine_and_versions(device),
           "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "FERLAB_DATA")},
           "load_average": {"before": load_before, "after": os.getloadavg()},
           "notebooks": rows}
    path = Path(args.out) / f"notebook-times-{device.type}{'-' + args.suffix if args.suffix else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
