"""ferlab: facial expression recognition under noisy and ambiguous labels.

Five published methods -- EAC, RUL, DMUE, LA-Net and LDLVA -- and a cross-entropy baseline
(``ferlab.methods``) behind one data pipeline (``ferlab.data``: FERPlus, RAF-DB, FER2013, AffectNet,
any class-folder dataset, synthetic faces; label noise), one trainer and evaluation protocol
(``ferlab.engine``), backbones with safe weight loading (``ferlab.models``), inference on image files
(``ferlab.predictor.Predictor``), figures (``ferlab.viz``, ``ferlab.figures``) and the ``ferlab``
command. Submodules are imported on demand, so ``import ferlab`` stays cheap.

The Python entry point (:mod:`ferlab.api`), loaded on first use::

    import ferlab
    run = ferlab.train(method="eac", dataset="ferplus", epochs=2)    # a Run: path, history, protocol
    run = ferlab.fit(ferlab.TrainConfig(method="eac", dataset="ferplus"))
    run = ferlab.load_run("runs/eac-ferplus-clean-s0")
    predictor = ferlab.Predictor.load(run.path)

``import ferlab`` raises an ``ImportError`` naming the pair when the installed torchvision does not
belong to the installed torch (:mod:`ferlab.torch_pair`).
"""
from importlib.metadata import PackageNotFoundError, version

from . import torch_pair

try:
    __version__ = version("ferlab")
except PackageNotFoundError:   # a source tree that is not installed
    __version__ = "0+unknown"

torch_pair.check()

__all__ = ["__version__", "train", "fit", "load_run", "Run", "TrainConfig", "Predictor"]


def __getattr__(name: str):
    """The entry point's names, imported on first use (they import torch)."""
    if name in ("train", "fit", "load_run", "Run"):
        from . import api
        return getattr(api, name)
    if name == "TrainConfig":
        from .engine.config import TrainConfig
        return TrainConfig
    if name == "Predictor":
        from .predictor import Predictor
        return Predictor
    raise AttributeError(f"module 'ferlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
