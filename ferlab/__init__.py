"""ferlab: facial expression recognition under noisy and ambiguous labels.

EAC, RUL, DMUE (LA-Net and LDLVA to come) behind one data pipeline (``ferlab.data``), one
trainer and evaluation protocol (``ferlab.engine``), method registry (``ferlab.methods``),
backbones (``ferlab.models``) and figures (``ferlab.viz``, ``ferlab figures``).
Submodules are imported on demand, so ``import ferlab`` stays cheap.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ferlab")
except PackageNotFoundError:   # a source tree that is not installed
    __version__ = "0+unknown"
