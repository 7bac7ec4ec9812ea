#!/usr/bin/env bash
# ferlab's test command: every check CI runs, in order. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# the notebooks the tests execute are kept for the documentation (docs/hooks.py), which then executes none again
export FERLAB_NOTEBOOK_CACHE="${FERLAB_NOTEBOOK_CACHE:-$PWD/build/notebooks}"
python -m ruff check .
python -m pytest "$@"
# the core tests again on the oldest supported torch / torchvision (a cached second environment)
bash scripts/oldest_torch.sh
python -m mkdocs build --strict
