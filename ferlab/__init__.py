"""ferlab: facial expression recognition under noisy and ambiguous labels.

Five published methods -- EAC, RUL, DMUE, LA-Net and LDLVA -- and a cross-entropy baseline
(``ferlab.methods``) behind one data pipeline (``ferlab.data``: FERPlus, RAF-DB, FER2013, AffectNet,
any class-folder dataset, synthetic faces; label noise), one trainer and evaluation protocol
(``ferlab.engine``), backbones with safe weight loading (``ferlab.models``), inference on image files
(``ferlab.predictor.Predictor``), figures (``ferlab.viz``, ``ferlab.figures``) and the ``ferlab``
command. Submodules are imported on demand, so ``import ferlab`` stays cheap.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ferlab")
except PackageNotFoundError:   # a source tree that is not installed
    __version__ = "0+unknown"
