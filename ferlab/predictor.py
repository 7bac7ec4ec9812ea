"""Inference on the images users hold: file paths, PIL images, numpy arrays, uint8 tensors.

    from ferlab.predictor import Predictor
    predictor = Predictor.load("runs/eac-faces")        # a run folder, a checkpoint .pt or a `ferlab export` file
    out = predictor(["face1.jpg", Image.open("face2.png"), uint8_array])
    out.probs        # (N, C) float32 softmax probabilities
    out.labels       # predicted class names
    out.classes      # class names in probability-column order

Photos (faces not yet cut out): ``predictor.predict_faces(["party.jpg"])`` detects every face,
cuts each the way the run's training images were framed and coloured (:mod:`ferlab.data.faces`)
and returns per-face boxes and probabilities.

The eval transform comes from the model's own metadata, as timm's ``resolve_data_config`` or
torchvision's ``weights.transforms()``: each image is decoded to RGB and resized to the side the
run's image cache held (``image_size``, PIL bilinear, as :func:`ferlab.data.io.read_image` does for
training), then resized to ``input_size`` and normalised with the backbone's ``mean`` / ``std``
(:meth:`ferlab.methods.base.Method.prepare`). A file predicted here therefore gets exactly the
logits the training pipeline's evaluation gives it.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data.io import read_image, resize_array
from .methods.base import Method
from .progress import progress_bar


@dataclass
class Predictions:
    """Probabilities of N images over ``classes``."""
    probs: np.ndarray                # (N, C) float32, rows sum to 1
    classes: tuple[str, ...]         # C class names, the columns of ``probs``

    def __len__(self) -> int:
        return len(self.probs)

    @property
    def indices(self) -> np.ndarray:
        """(N,) predicted class index."""
        return self.probs.argmax(1)

    @property
    def labels(self) -> list[str]:
        """N predicted class names."""
        return [self.classes[i] for i in self.indices]

    def to_dicts(self) -> list[dict]:
        """One ``{"label": name, "probs": {class: probability}}`` per image."""
        return [{"label": self.classes[int(p.argmax())], "probs": dict(zip(self.classes, map(float, p)))}
                for p in self.probs]


@dataclass
class FacePrediction:
    """One face found in one photo by :meth:`Predictor.predict_faces`."""
    image: int                       # index of the photo among the inputs
    face: int                        # 0-based, largest face first
    box: tuple                       # (x0, y0, x1, y1) pixels of the photo as a viewer shows it
    score: float                     # the face detector's score
    landmarks: np.ndarray            # (5, 2) float32 dlib landmarks (x, y), same pixels
    probs: np.ndarray                # (C,) float32 softmax probabilities
    classes: tuple[str, ...]         # C class names, the entries of ``probs``

    @property
    def label(self) -> str:
        """The predicted class name."""
        return self.classes[int(self.probs.argmax())]


def to_uint8_image(image, size: int) -> np.ndarray:
    """One image -> (size, size, 3) uint8 RGB, decoded and resized as the training cache does.

    Accepts a file path (str / Path), a PIL image, a uint8 numpy array (H, W), (H, W, 1) or (H, W, 3),
    or a uint8 tensor (H, W), (1, H, W) or (3, H, W)."""
    if isinstance(image, (str, Path)):
        return read_image(image, size)
    if torch.is_tensor(image):
        if image.dtype != torch.uint8:
            raise TypeError(f"image tensors must be uint8 (0..255), got {image.dtype}")
        t = image.detach().cpu()
        image = t.numpy() if t.ndim == 2 else t.permute(1, 2, 0).numpy()
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(f"image arrays must be uint8 (0..255), got {image.dtype}")
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
            raise ValueError(f"image arrays must be (H, W), (H, W, 1) or (H, W, 3), got shape {image.shape}")
        return resize_array(np.ascontiguousarray(image), size)
    from PIL import Image
    if isinstance(image, Image.Image):
        return resize_array(np.asarray(image.convert("RGB")), size)
    raise TypeError(f"cannot read an image from {type(image).__name__} (give a path, PIL image, uint8 array or tensor)")


def _as_list(inputs) -> list:
    """A single image or a sequence of images -> a list (an (N, 3, H, W) uint8 tensor is N images)."""
    if torch.is_tensor(inputs) and inputs.ndim == 4:
        return list(inputs)
    if isinstance(inputs, np.ndarray) and inputs.ndim == 4:
        return list(inputs)
    if isinstance(inputs, (str, Path, np.ndarray)) or torch.is_tensor(inputs) or not isinstance(inputs, Iterable):
        return [inputs]
    return list(inputs)


def checkpoint_metadata(state: dict) -> tuple[list[str], int]:
    """(class names, image_size) of a training checkpoint's state. Checkpoints written before these
    were stored get them from the run's dataset and config."""
    from .engine.config import TrainConfig
    from .engine.trainer import run_classes
    cfg = TrainConfig.from_dict(state["config"])
    classes = run_classes(state)
    if classes is None:
        from .data import build_dataset
        from .engine.run_data import eval_dataset_args
        classes = build_dataset(cfg.dataset, cfg.data_root, cfg.test_split or cfg.train_split,
                                **eval_dataset_args(cfg)).classes
    image_size = state.get("image_size") or cfg.dataset_args.get("image_size") or cfg.input_size
    return list(classes), int(image_size)


class Predictor:
    """A trained model with its eval transform and class names (see the module docstring).

    Args:
        method: a :class:`~ferlab.methods.base.Method` (its ``prepare`` is the eval transform).
        classes: class names in logit order.
        image_size: side of the uint8 images the model was trained on (the dataset cache).
        device: where the model runs (``auto``: CUDA when available).
        amp: ``auto`` (bf16 autocast where the device computes bf16 natively: :mod:`ferlab.engine.precision`),
            ``bf16``, ``fp16`` (CUDA) or ``off`` (float32). Probabilities are a float32 softmax either way.
        channels_last: ``auto`` (with bf16 autocast and on CUDA), ``on`` or ``off``.
        source: the model file, named in messages.
        framing: the run's recorded framing (:meth:`ferlab.data.faces.Framing.to_dict`), or None.
        dataset: the run's dataset name (its framing when the run recorded none).

    Attributes:
        method: the :class:`~ferlab.methods.base.Method`, in eval mode on ``device``.
        classes: class names in logit order.
        image_size: side of the uint8 images the model was trained on.
        device: the ``torch.device`` the model runs on.
        framing: the :class:`~ferlab.data.faces.Framing` faces are cut from photos with
            (:meth:`predict_faces`); ``framing_note`` says why when it is not the run's own.
    """

    def __init__(self, method: Method, classes: Sequence[str], image_size: int, device: str | torch.device = "cpu",
                 source: str = "", amp: str = "auto", channels_last: str = "auto", framing: dict | None = None,
                 dataset: str | None = None):
        from .engine.precision import amp_dtype, use_channels_last
        from .engine.trainer import resolve_device
        self.device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        self.amp = amp_dtype(amp, self.device)
        self.channels_last = use_channels_last(channels_last, self.device, self.amp)
        self.method = method.to(self.device).eval()
        if self.channels_last:
            self.method.to(memory_format=torch.channels_last)
        self.classes = tuple(classes)
        self.image_size = int(image_size)
        self.source = source
        from .data.faces import run_framing
        #: how faces are cut from photos (:meth:`predict_faces`), and why when the run did not record it
        self.framing, self.framing_note = run_framing(framing, dataset, self.image_size)
        if len(self.classes) != method.num_classes:
            raise ValueError(f"{source}: {len(self.classes)} class names for a {method.num_classes}-class model")

    @property
    def input_size(self) -> int:
        """Side in pixels of the square network input (the method's ``input_size``)."""
        return self.method.input_size

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu", amp: str = "auto",
             channels_last: str = "auto") -> Predictor:
        """From a run folder (its ``checkpoints/last.pt``), a training checkpoint (``last.pt`` /
        ``best.pt``) or a model written by ``ferlab export``; ``amp`` / ``channels_last`` as in the class."""
        from .engine import checkpoint as ckpt
        from .errors import CheckpointError
        from .models.export import FORMAT

        path = ckpt.run_checkpoint(path, "a run folder, a checkpoint .pt or a `ferlab export` file")
        state = ckpt.load(path, not_a="a ferlab training checkpoint or inference model")
        if isinstance(state, dict) and state.get("format") == FORMAT:
            return cls._from_export(state, device, str(path), amp=amp, channels_last=channels_last)
        if isinstance(state, dict) and "config" in state and "model" in state:
            return cls._from_checkpoint(state, device, str(path), amp=amp, channels_last=channels_last)
        raise CheckpointError(f"{path}: neither a ferlab training checkpoint nor a `ferlab export` model")

    @classmethod
    def _from_checkpoint(cls, state: dict, device, source: str, **precision) -> Predictor:
        from .engine.trainer import method_from_state
        method, cfg, dev = method_from_state(state, device, source)
        return cls(method, *checkpoint_metadata(state), device=dev, source=source, framing=state.get("framing"),
                   dataset=cfg.dataset, **precision)

    @classmethod
    def _from_export(cls, obj: dict, device, source: str, **precision) -> Predictor:
        from .models.export import build_inference_model
        net = build_inference_model(obj, source)
        method = Method(net, obj["num_classes"], input_size=obj["input_size"], mean=obj["mean"], std=obj["std"])
        classes = obj.get("classes") or [str(i) for i in range(obj["num_classes"])]
        return cls(method, classes, obj.get("image_size") or obj["input_size"], device, source,
                   framing=obj.get("framing"), dataset=obj.get("dataset"), **precision)

    # -- images -> tensors ------------------------------------------------------
    def images(self, inputs) -> torch.Tensor:
        """Any supported images -> uint8 (N, 3, image_size, image_size) on the CPU."""
        arrays = [to_uint8_image(im, self.image_size) for im in _as_list(inputs)]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()

    # -- inference --------------------------------------------------------------
    @torch.no_grad()
    def logits(self, inputs) -> torch.Tensor:
        """(N, C) float32 logits of one batch of images (the network under :attr:`amp` autocast)."""
        from .engine.precision import autocast
        x = self.method.prepare(self.images(inputs).to(self.device))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.amp):
            return self.method.predict(x).float().cpu()

    def predict(self, inputs, batch_size: int = 64, progress: bool = False) -> Predictions:
        """Softmax probabilities with class names for one image or a sequence of images, in batches
        of ``batch_size`` (images are decoded batch by batch)."""
        items = _as_list(inputs)
        probs = []
        for lo in progress_bar(range(0, len(items), batch_size), desc="predict", disable=not progress, leave=False,
                       unit="batch"):
            probs.append(self.logits(items[lo:lo + batch_size]).softmax(1).numpy())
        out = np.concatenate(probs) if probs else np.zeros((0, len(self.classes)), dtype=np.float32)
        return Predictions(out.astype(np.float32), self.classes)

    __call__ = predict

    def predict_faces(self, images, detector: str = "cnn", framing=None, detect_size: int | None = 800,
                      upsample: int = 0, background: str = "white", batch_size: int = 64,
                      progress: bool = False) -> list[list[FacePrediction]]:
        """Every face of every photo (paths, PIL images, uint8 arrays; EXIF orientation, transparency,
        CMYK, 16-bit and palette images handled by :func:`ferlab.data.photos.photo_array`): detected
        (:func:`ferlab.data.faces.detect_faces` with ``detector``, ``detect_size``, ``upsample``),
        aligned and coloured by ``framing`` (a :class:`~ferlab.data.faces.Framing`; default
        :attr:`framing`, the run's training framing), resized to :attr:`image_size` as the training cache
        does, and classified. Returns one list per photo of its faces, largest first (empty: no face).
        Where the run did not record its framing, :attr:`framing_note` is issued as a warning once."""
        import warnings

        from .data.faces import align_face, detect_faces
        from .data.photos import photo_array
        framing = framing or self.framing
        if self.framing_note and framing is self.framing and not getattr(self, "_noted", False):
            warnings.warn(f"{self.source}: {self.framing_note}", stacklevel=2)
            self._noted = True
        out, chips, where = [], [], []
        for i, image in enumerate(progress_bar(_as_list(images), desc="faces", disable=not progress, unit="photo")):
            rgb = photo_array(image, background)
            faces = detect_faces(rgb, detector, detect_size, upsample)
            out.append([])
            for j, face in enumerate(faces):
                chips.append(to_uint8_image(align_face(rgb, face, framing), self.image_size))
                where.append((i, j, face))
        probs = self.predict(chips, batch_size=batch_size).probs if chips else []
        for (i, j, face), p in zip(where, probs):
            out[i].append(FacePrediction(i, j, face.box, face.score, face.landmarks, p, self.classes))
        return out

    def cam(self, inputs, classes=None, kind: str = "auto") -> np.ndarray:
        """Class activation maps, (N, image_size, image_size) in [0, 1], of ``classes`` (default: the
        prediction). ``kind``: ``classifier`` (weight CAM), ``gradcam`` / ``gradcam++`` / ``eigencam``
        (pytorch-grad-cam), or ``auto``: the classifier CAM where the head allows it, else Grad-CAM.
        Warns when the last feature map is too small to localise anything (:func:`ferlab.viz.cam.resize_maps`)."""
        from .viz.cam import MethodCAM, classifier_cam, resize_maps, warn_if_coarse
        m = self.method
        x = m.prepare(self.images(inputs).to(self.device))
        if classes is not None:
            classes = torch.as_tensor([self.classes.index(c) if isinstance(c, str) else int(c) for c in classes])
        if kind == "auto":
            kind = "classifier" if m.cam_classifier() is not None else "gradcam"
        size = (self.image_size, self.image_size)
        if kind == "classifier":
            maps = classifier_cam(m, x, None if classes is None else classes.to(self.device)).float().cpu()
        else:
            with torch.no_grad():
                warn_if_coarse(tuple(m.backbone.forward_features(x[:1]).shape[-2:]), size)
            with MethodCAM(m, kind) as cam:
                maps = torch.as_tensor(cam(x, classes))       # already at the input size
        return resize_maps(maps, size, warn=kind == "classifier").numpy()
