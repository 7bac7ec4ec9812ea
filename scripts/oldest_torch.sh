#!/usr/bin/env bash
# The core tests on the oldest torch / torchvision pair ferlab supports (pyproject.toml's lower bounds).
#
# The environment is kept between runs at $FERLAB_OLDEST_VENV (default ~/.cache/ferlab/venv-torch2.4): the
# first run builds it (PyPI's torch 2.4.1 for Linux is the CUDA build: ~2 GB of downloads, ~5 GB installed,
# ~2 minutes on a fast link), later runs reuse it. ferlab itself is installed into it every run with pip's
# ordinary `pip install -e .`, which must keep torch 2.4.1 (checked). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH=2.4.1
VISION=0.19.1
VENV="${FERLAB_OLDEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ferlab/venv-torch${TORCH%.*}}"
# torch-API-sensitive parts: every loss and method against its hand / official computation, the backbones
# and weight files, the trainer (resume, protocol, precision, optimizers), CAMs (grad-cam imports torchvision),
# inference and the Python entry point; the quick tests of each (-m "not slow")
CORE=(tests/losses tests/models tests/methods/test_eac.py tests/methods/test_rul.py tests/methods/test_dmue.py
      tests/methods/test_lanet.py tests/methods/test_ldlva.py tests/methods/test_smoke.py
      tests/engine/test_trainer.py tests/engine/test_protocol.py tests/engine/test_precision.py
      tests/engine/test_optim.py tests/data/test_transforms.py tests/data/test_noise.py
      tests/viz/test_cam.py tests/test_predictor.py tests/test_api.py tests/test_torch_pair.py)

versions() { "$VENV/bin/python" -c "import torch, torchvision; print(torch.__version__.split('+')[0], torchvision.__version__.split('+')[0])" 2>/dev/null; }

if [ "$(versions)" != "$TORCH $VISION" ]; then
    echo "oldest torch: building $VENV (torch $TORCH, torchvision $VISION)"
    rm -rf "$VENV"
    python -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q "torch==$TORCH" "torchvision==$VISION"
fi
"$VENV/bin/python" -m pip install -q -e ".[dev,landmarks,audit]"
if [ "$(versions)" != "$TORCH $VISION" ]; then
    echo "oldest torch: pip install -e . replaced torch $TORCH / torchvision $VISION by $(versions)" >&2
    exit 1
fi
echo "oldest torch: $(versions) in $VENV"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -m "not slow" "${CORE[@]}" "$@"
