"""The notebooks' runs: one setting in which every method notebook trains its method and the CE baseline the
same way, and which the other notebooks reuse.

:func:`choose_setting` picks the setting: dlib's face-recognition ResNet-29 fine-tuned at 112 px on a subset of
FERPlus (each method's ``cpu_pretrained`` recipe preset with BatchNorm, the regime of the papers: a
face-pretrained network) when the data and the face weights are installed, else synthetic faces.
:meth:`Setting.train` trains a method in it, or returns the finished run of the same config
(``ferlab.fit(..., reuse=True)``): the runs live in one folder,
``<out_dir>/<setting name>/<method>-sym<rate>-s0`` (the layout of ``benchmarks/run_grid.py``), so the baseline
and EAC that notebook 03 trains are the ones 04-10 show. :func:`compare` collects what a method notebook
prints for each run: clean-label test accuracy, the share of flipped labels memorised, and how well the run's
own noise signal separates the flipped labels from the intact ones.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: the methods of the notebooks, in notebook order
METHODS = ("baseline", "eac", "rul", "dmue", "lanet", "ldlva")

#: the FERPlus setting: training images (the first N of FER2013Train with a majority label), epochs, test images
FERPLUS = {"train": 1500, "epochs": 8, "test": 1500}
#: the FERPlus setting's one change to the cpu_pretrained presets (why: :func:`choose_setting`)
FERPLUS_BACKBONE_ARGS = {"out_stage": 4, "norm": "batchnorm"}
#: the synthetic setting
SYNTHETIC = {"train": 2000, "epochs": 8, "test": 1000, "image_size": 48}
#: smoke mode (the tests): tiny data, one epoch, in either setting
SMOKE = {"train": 64, "epochs": 1, "test": 64}
NOISE = ("symmetric", 0.3)


def recipes_dir() -> Path:
    """``recipes/`` of the source checkout this package runs from (the notebooks' setting is built from it)."""
    path = Path(__file__).resolve().parents[1] / "recipes"
    if not path.is_dir():
        from .errors import UserError
        raise UserError(f"{path}: no recipes folder; the notebooks run from a source checkout of ferlab "
                        f"(git clone, then pip install -e .)")
    return path


def face_weights_missing() -> str | None:
    """Why the FERPlus setting cannot run (dlib's face weights or dlib itself not installed), or None."""
    import importlib.util

    from .data.landmarks import packaged_model_file
    from .models.pretrained import DLIB_FACE
    try:
        packaged_model_file(DLIB_FACE["package"], DLIB_FACE["file"], DLIB_FACE["install"])
    except ImportError as e:
        return str(e)
    if importlib.util.find_spec("dlib") is None:
        return f"dlib (LA-Net's landmarks) is not installed: {DLIB_FACE['install']}"
    return None


@dataclass
class Setting:
    """Where and how the notebooks train: the dataset, the size of the runs and why this setting was chosen.

    Attributes:
        name: the runs folder's name under the notebooks' ``OUT_DIR``: ``ferplus-dlib112`` or
            ``synthetic48`` (``-smoke`` appended in smoke mode).
        dataset: ``ferplus`` or ``synthetic``.
        why: one paragraph: the setting, and why it was chosen over the other.
        n_train: training images.
        epochs: epochs of every run.
        n_test: test images (the first of the test split; no validation split: every epoch evaluates the test
            images only, which the protocol's ``last`` and ``mean_last_k`` use).
        data_root: FERPlus' folder (FERPlus setting).
        smoke: smoke mode (the tests): tiny data, one epoch.
    """

    name: str
    dataset: str
    why: str
    n_train: int
    epochs: int
    n_test: int
    data_root: str | None = None
    smoke: bool = False
    image_size: int = 64
    noise: tuple = field(default=NOISE)

    @property
    def setting_label(self) -> str:
        """``sym30``: the label setting, as the benchmark names it."""
        return f"sym{round(100 * self.noise[1])}"

    def folder(self, out_dir: str | Path) -> Path:
        """The runs folder: ``<out_dir>/<name>``."""
        return Path(out_dir) / self.name

    def run_name(self, method: str) -> str:
        """``<method>-sym30-s0``: the benchmark grid's run names (``ferlab figures`` finds them)."""
        return f"{method}-{self.setting_label}-s0"

    def config(self, method: str, out_dir: str | Path, device: str = "auto"):
        """The :class:`~ferlab.engine.config.TrainConfig` of ``method`` in this setting; the options every
        method shares are the same, so the baseline is trained the same way as each method."""
        from .api import build_config
        common = dict(out_dir=str(self.folder(out_dir)), name=self.run_name(method), device=device,
                      epochs=self.epochs, limit_train=self.n_train, limit_eval=self.n_test, val_split=None,
                      noise=self.noise[0], noise_rate=self.noise[1], noise_seed=0, seed=0,
                      train_fit_every=1 if self.epochs < 6 else 2, mean_last_k=5)
        args = {}
        if method == "dmue":      # the recipe ramps the target branch in over 6 of 15 epochs: the same share
            args["ramp_a"] = max(1, round(self.epochs * 6 / 15))
        if method == "ldlva":     # neighbours from the baseline run of the same setting, as recipes/ldlva does
            args["space"] = "features"
            args["space_checkpoint"] = str(self.folder(out_dir) / self.run_name("baseline") / "checkpoints" /
                                           "last.pt")
        if self.dataset == "ferplus":
            dataset_args = {"landmarks": str(self.landmark_file(out_dir))} if method == "lanet" else {}
            return build_config(method, None, config=recipes_dir() / method / "ferplus.yaml",
                                preset="cpu_pretrained", data_root=self.data_root, dataset_args=dataset_args,
                                backbone_args=FERPLUS_BACKBONE_ARGS, method_args=args, **common)
        # the method part of the from-scratch recipe (cpu preset) with a ResNet-10 on synthetic faces
        return build_config(method, "synthetic", config=recipes_dir() / method / "ferplus.yaml", preset="cpu",
                            dataset_args={"n": self.n_train, "image_size": self.image_size},
                            eval_dataset_args={"n": self.n_test}, backbone="resnet10", input_size=self.image_size,
                            method_args=args, **common)

    def landmark_file(self, out_dir: str | Path) -> Path:
        """LA-Net's landmarks of the FERPlus training images of this setting: detected with dlib on first
        use (``ferlab landmarks`` does the same for a whole split) and kept in the runs folder."""
        path = self.folder(out_dir) / f"landmarks-ferplus-train-{self.n_train}.npz"
        if path.is_file():
            return path
        from .data import build_dataset
        from .data.landmarks import detect_landmarks, save_landmarks
        ds = build_dataset("ferplus", self.data_root, "train", label_mode="majority", num_classes=7, image_size=48)
        ds = ds.subset(np.arange(min(self.n_train, len(ds)))).preload(progress=False)
        lm = detect_landmarks(ds, progress=False)
        print(f"landmarks of {len(ds)} FERPlus training images: {lm['meta']['detected']} detected, "
              f"{lm['meta']['fallback']} from the median box, {lm['meta']['seconds']} s -> {path}")
        return save_landmarks(path, lm["points"], lm["detected"], ds.sample_names(), lm["meta"])

    def train(self, method: str, out_dir: str | Path = "runs/notebooks", device: str = "auto", progress=True):
        """Train ``method`` in this setting and return its :class:`~ferlab.api.Run`; a finished run of the
        same config in the runs folder is returned as it is. LDLVA first trains (or finds) the baseline whose
        features give its neighbours."""
        from .api import fit
        if method == "ldlva":
            self.train("baseline", out_dir, device, progress)
        cfg = self.config(method, out_dir, device)
        cfg.progress = progress
        return fit(cfg, reuse=True)

    def describe(self) -> str:
        """The setting in a few lines: what is trained, on what, and why."""
        data = (f"FERPlus, the first {self.n_train} training images with a majority label, "
                f"the first {self.n_test} test images" if self.dataset == "ferplus"
                else f"synthetic faces at {self.image_size} px, {self.n_train} training and {self.n_test} test images")
        return (f"setting {self.name}: {data}; {self.noise[1]:.0%} {self.noise[0]} label noise (seed 0), "
                f"{self.epochs} epoch{'s' if self.epochs > 1 else ''} per run\n{self.why}")

    def save_result(self, out_dir: str | Path, notebook: str, result: dict) -> Path:
        """Write ``result`` (what :func:`compare` returned, with the notebook's claims) to
        ``<runs folder>/<notebook>.json``."""
        from .atomic import write_text_atomic
        path = self.folder(out_dir) / f"{notebook}.json"
        write_text_atomic(json.dumps({"setting": self.name, **result}, indent=2, default=_plain), path)
        return path


def _plain(value):
    """NumPy scalars (a claim's ``np.bool_``, a float32 number) as JSON values."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def choose_setting(smoke: bool = False, data_root: str | Path | None = None) -> Setting:
    """The notebooks' setting: FERPlus with dlib's face weights when both are there (``data_root``: the folder
    holding ``ferplus/``; None: ``$FERLAB_DATA`` or ``../shared/data``), else synthetic faces, with the
    reason in :attr:`Setting.why`. ``smoke``: tiny data and one epoch (the tests)."""
    from .data.registry import find_data_root
    root = Path(data_root) / "ferplus" if data_root else find_data_root("ferplus")
    root = root if root is not None and root.is_dir() else None
    missing = face_weights_missing()
    size = SMOKE if smoke else None
    suffix = "-smoke" if smoke else ""
    if root is not None and missing is None:
        why = ("FERPlus and dlib's face weights are installed, so the runs fine-tune a face-pretrained network "
               "(dlib_resnet29 from dlib's face-recognition weights, 112 px; each method's cpu_pretrained recipe "
               "preset), the regime the papers report: a face network starts from features in which a flipped label "
               "looks unlike its face. One change to those presets: the normalisation layers are BatchNorm "
               "initialised from dlib's affine layers (backbone_args norm: batchnorm) instead of dlib's fixed "
               "affines, with which EAC, DMUE and LA-Net stop learning within their first epochs at this learning "
               f"rate (they name one class for every face). {FERPLUS['train']} images and {FERPLUS['epochs']} "
               "epochs keep a method and its baseline within about 5 minutes on 2 CPU cores; the baseline memorises "
               "most of the flipped labels by the end, so what a method does against it shows.")
        s = size or FERPLUS
        return Setting(f"ferplus-dlib112{suffix}", "ferplus", why, s["train"], s["epochs"], s["test"], str(root),
                       smoke, image_size=112)
    reason = ("FERPlus was not found (set FERLAB_DATA to the folder holding ferplus/, or DATA_ROOT)" if root is None
              else f"dlib's face weights are not installed ({missing})")
    why = (f"{reason}, so the runs train a small ResNet-10 from scratch on synthetic faces (each method's cpu "
           "recipe preset: the from-scratch benchmark's optimizer, learning rate and schedule), whose flipped labels "
           "are known. The notebooks' text describes the FERPlus setting; in this one, read the numbers each run "
           "prints. The FERPlus numbers are in the README's benchmark.")
    s = size or SYNTHETIC
    return Setting(f"synthetic{SYNTHETIC['image_size']}{suffix}", "synthetic", why, s["train"], s["epochs"],
                   s["test"], None, smoke, image_size=32 if smoke else SYNTHETIC["image_size"])


def compare(runs: dict, device: str = "cpu") -> dict:
    """What a method notebook shows for each run (``{label: ferlab.api.Run}``): ``{label: {...}}`` with
    ``test_last`` and ``test_mean_last_k`` (clean-label test accuracy: last epoch, mean of the last k),
    ``memorised`` (the share of flipped training labels the final model predicts) and ``intact`` (accuracy on
    the training samples whose label is intact), ``signal`` (the run's own noise signal: the method's, or the
    CE of the given label for methods that have none) with its ``auroc`` against "this label was flipped",
    and ``auroc_label_loss``. The per-sample signals are cached in each run folder (``signals.npz``)."""
    from .engine.metrics import noise_detection_auroc
    from .engine.signals import default_signal, run_signals
    out = {}
    for label, run in runs.items():
        sig = run_signals(run.path, device=device, progress=False)
        own = default_signal(sig)
        known = sig["known"]
        fit = run.summary.get("train_fit", {})
        out[label] = {"method": run.config.method, "test_last": run.protocol["last"],
                      "test_mean_last_k": run.protocol["mean_last_k"], "k": min(run.protocol["k"], len(run.history)),
                      "memorised": fit.get("memorised_flipped"), "intact": fit.get("acc_intact"), "signal": own,
                      "auroc": noise_detection_auroc(sig[own][known], sig["flipped"][known]),
                      "auroc_label_loss": noise_detection_auroc(sig["label_loss"][known], sig["flipped"][known])}
    return out


def signal_panels(runs: dict, device: str = "cpu") -> dict:
    """``{"<label>: <signal>": (scores, flipped)}`` for each run's own signal (and the CE of the given label
    where the method has its own): the panels of :func:`ferlab.viz.plots.noise_signal_histograms`."""
    from .engine.signals import default_signal, run_signals
    panels = {}
    for label, run in runs.items():
        sig = run_signals(run.path, device=device, progress=False)
        known = sig["known"]
        own = default_signal(sig)
        for name in dict.fromkeys([own, "label_loss"]):
            panels[f"{label}: {name}"] = (sig[name][known], sig["flipped"][known])
    return panels


def most_suspicious(run, k: int = 16, device: str = "cpu"):
    """The ``k`` training images of ``run`` (a :class:`~ferlab.api.Run`) that its own noise signal finds most
    suspicious, drawn with their training label; red where that label was flipped, with the clean label
    (:func:`ferlab.viz.plots.labelled_faces`). Returns the figure."""
    from .engine.run_data import build_train_set
    from .engine.signals import default_signal, run_signals
    from .viz.plots import labelled_faces
    sig = run_signals(run.path, device=device, progress=False)
    own = default_signal(sig)
    score = np.where(np.isfinite(sig[own]), sig[own], -np.inf)
    top = np.argsort(-score, kind="stable")[:k]
    ds = build_train_set(run.config)[0].subset(top).preload(progress=False)
    flipped = int(sig["flipped"][top].sum())
    return labelled_faces(ds.get_batch(np.arange(len(top)))["image"], ds.labels, ds.clean_labels, ds.classes,
                          title=f"{run.config.method}: the {len(top)} training images with the highest {own} "
                                f"({flipped} flipped, red)")


def comparison_table(result: dict):
    """:func:`compare`'s dict as a pandas DataFrame, one row per run."""
    import pandas as pd
    rows = {label: {"test acc, last epoch": r["test_last"],
                    f"test acc, mean of last {r['k']}": r["test_mean_last_k"],
                    "flipped labels memorised": r["memorised"], "intact labels fitted": r["intact"],
                    "noise signal": r["signal"], "AUROC": r["auroc"]} for label, r in result.items()}
    return pd.DataFrame(rows).T
