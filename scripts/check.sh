#!/usr/bin/env bash
# ferlab's test command: every check CI runs, in order. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pytest "$@"
