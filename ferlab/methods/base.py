"""The Method contract and the method registry.

A Method is an ``nn.Module`` that owns its backbone, heads, loss and its own
batched augmentation:

- ``training_step(batch) -> dict``: ``loss`` (scalar to backprop), named float
  components (``ce``, ...), optionally ``logits`` (N, C) for train accuracy.
  ``forward(batch)`` is ``training_step`` so that DDP wraps a Method directly.
- ``predict(images) -> (N, C)`` logits on *normalised* images (inference cost of
  the plain backbone + classifier); ``prepare(uint8 images)`` applies the eval
  transform; ``features(images) -> (N, D)`` penultimate features.
- ``cam_target_layer`` for Grad-CAM (the last block of the stage feeding the head);
  ``setup_train(train_set)`` and ``on_epoch_start(epoch)`` hooks; ``run_features_checkpoint()``
  declares a saved run whose features of the training set ``setup_train`` needs (the engine loads
  it: methods never import the engine).
- ``param_groups(lr)`` for the optimizer (methods with several learning rates
  override it). Per-sample state (banks, lambdas, centres) lives in buffers so it
  is checkpointed with ``state_dict``.

Methods see the backbone through its contract and stage description (:mod:`ferlab.models.stages`:
``stages``, ``stage_names``, ``feature_info``, ``forward_stem``, ``forward_stages``), never through
ResNet attribute names, so every method runs on every registered backbone.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from ..data import transforms as T

_METHODS: dict[str, type[Method]] = {}


def register_method(cls):
    """Class decorator: register a :class:`Method` subclass under its ``name`` (a later class with
    the same name replaces the earlier one); returns the class unchanged."""
    _METHODS[cls.name] = cls
    return cls


def list_methods() -> list[str]:
    """The registered method names, sorted."""
    return sorted(_METHODS)


def method_class(name: str) -> type[Method]:
    """The :class:`Method` subclass registered as ``name``.

    Raises:
        ValueError: No method has that name.
    """
    if name not in _METHODS:
        raise ValueError(f"unknown method {name!r}; available: {list_methods()}")
    return _METHODS[name]


def build_method(name: str, backbone: nn.Module, num_classes: int, **cfg) -> Method:
    """Build a registered method around ``backbone`` (any registered backbone: :class:`~ferlab.models.ResNet`,
    :class:`~ferlab.models.DlibResNet`)."""
    return method_class(name)(backbone=backbone, num_classes=num_classes, **cfg)


class Method(nn.Module):
    """Base class of every training method: the backbone, heads, losses and batched augmentation.

    The contract the :class:`~ferlab.engine.trainer.Trainer` relies on (module docstring):
    :meth:`training_step` turns a batch into a loss, :meth:`predict` normalised images into
    logits; :meth:`setup_train`, :meth:`on_epoch_start`, :meth:`epoch_stats` and
    :meth:`param_groups` are the hooks around training. A subclass registers itself with
    :func:`register_method`, sets ``name`` and ``defaults`` and takes its own options
    (``method_args``) as keyword arguments before ``**kw``.

    Args:
        backbone: A registered backbone (:mod:`ferlab.models`); methods use it through its stage
            contract (``forward_features``, ``forward_head``, ``stages``, ...).
        num_classes: C.
        input_size: Side of the square network input in pixels.
        mean: Per-channel normalisation mean of ``[0, 1]`` RGB.
        std: Per-channel normalisation standard deviation.
        augment: Options of :func:`ferlab.data.transforms.train_transform` (``None``: its defaults).

    Attributes:
        name: Registry name (class attribute).
        defaults: The official training hyperparameters (optimizer, lr, weight decay, schedule,
            epochs, batch size, augmentation) the trainer uses where the config leaves ``None``;
            ``by_backbone: {<backbone>: {...}}`` holds values that differ per backbone.
        per_sample_buffers: Buffers with one row per training sample; loading a checkpoint
            resizes them to the checkpoint's size.
        train_transform: Batched training augmentation: uint8 (N, 3, S, S) -> normalised float
            (N, 3, input_size, input_size).
        eval_transform: Batched evaluation transform (resize, normalise), same shapes.
    """

    name = "method"
    #: official training hyperparameters (optimizer, lr, schedule, epochs, batch) -- the trainer's defaults;
    #: ``by_backbone: {<backbone>: {...}}`` holds the official values that differ per backbone (EAC's R18 lr)
    defaults: dict = {}
    #: buffers with one entry per training sample: a checkpoint's size replaces the current one on load
    per_sample_buffers: tuple[str, ...] = ()

    def __init__(self, backbone: nn.Module, num_classes: int, input_size: int = 112,
                 mean=T.IMAGENET_MEAN, std=T.IMAGENET_STD, augment: dict | None = None):
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.input_size = input_size
        self.mean, self.std = tuple(mean), tuple(std)
        self.train_transform: Callable = T.train_transform(input_size, mean, std, **(augment or {}))
        self.eval_transform: Callable = T.eval_transform(input_size, mean, std)

    def forward(self, batch: dict) -> dict:
        """:meth:`training_step` (so that ``DistributedDataParallel`` wraps a Method directly)."""
        return self.training_step(batch)

    def training_step(self, batch: dict) -> dict:  # pragma: no cover - abstract
        """The training loss of one batch, augmentation included (called in train mode).

        Args:
            batch: :meth:`ferlab.data.base.FERDataset.get_batch` on the trainer's device:
                ``image`` (B, 3, S, S) uint8, ``label`` (B,) int64 (possibly noisy; ``-1`` = no
                label), ``index`` (B,) int64 row of the training set, and where the dataset has
                them ``clean_label`` (B,), ``soft_label`` (B, C) float, ``landmarks`` (B, K, 2)
                float pixel coordinates, ``va`` (B, 2) float.

        Returns:
            ``loss``: () float tensor to backpropagate; every () tensor returned (``loss`` included)
            is logged as its epoch mean under its key; optional ``logits`` (B, C) for the training
            accuracy.
        """
        raise NotImplementedError

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, S, S) -> normalised float (N, 3, input_size, input_size)."""
        return self.eval_transform(images)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Inference logits: normalised float (N, 3, input_size, input_size) -> (N, num_classes).

        Images as users hold them (files, PIL, numpy, uint8 tensors) go through
        :class:`ferlab.predictor.Predictor`, which applies :meth:`prepare` first."""
        return self.backbone.forward_head(self.backbone.forward_features(images))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features: normalised float (N, 3, input_size, input_size) -> (N, D) (UMAP / t-SNE)."""
        return self.backbone.forward_head(self.backbone.forward_features(images), pre_logits=True)

    def cam_classifier(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(weight (K, C), bias (K,)) of a classifier that is linear in the globally pooled last
        feature map -- what a weight CAM needs -- or None when the head is not."""
        fc = getattr(self.backbone, "fc", None)
        if isinstance(fc, nn.Linear) and fc.in_features == self.backbone.num_features \
                and getattr(self.backbone, "linear_pool", True):
            bias = fc.bias if fc.bias is not None else fc.weight.new_zeros(fc.out_features)
            return fc.weight, bias
        return None

    def noise_scores(self, dataset, device, batch_size: int = 256) -> dict:
        """The method's own per-sample signals on ``dataset`` (eval mode, no grad), each (N,) with
        higher = more likely a wrong label; see :mod:`ferlab.engine.signals`."""
        return {}

    def export_inference_model(self) -> nn.Module:
        """A standalone eval-mode copy of the backbone (:class:`~ferlab.models.ResNet`,
        :class:`~ferlab.models.DlibResNet`) giving :meth:`predict`'s logits (for methods whose
        inference is the backbone and its classifier)."""
        import copy
        if not isinstance(getattr(self.backbone, "fc", None), nn.Linear):
            raise NotImplementedError(f"{type(self).__name__}: inference is not a plain backbone + classifier; "
                                      f"use the method's predict()")
        net = copy.deepcopy(self.backbone)
        net.drop = nn.Identity()
        return net.requires_grad_(False).eval()

    @property
    def cam_target_layer(self) -> nn.Module:
        """The module whose output Grad-CAM reads: the last block of the stage feeding the head
        (``backbone.stages[-1]``; ResNet: ``layer4[-1]``). Its output is the stage's output."""
        stage = self.backbone.stages[-1]
        return stage[-1] if isinstance(stage, nn.Sequential) else stage

    def run_features_checkpoint(self) -> str | None:
        """A saved run's checkpoint whose penultimate features of the training set :meth:`setup_train`
        needs (LDLVA's ``space: features``), or None. The engine serves it: it computes those (N, D)
        features (:func:`ferlab.engine.neighbors.checkpoint_features`) and calls
        ``setup_train(train_set, run_features=...)``."""
        return None

    def setup_train(self, train_set) -> None:
        """Called once with the training :class:`~ferlab.data.FERDataset` before a checkpoint is
        loaded: size per-sample state (buffers) here. A method whose :meth:`run_features_checkpoint`
        names a run also receives ``run_features`` (N, D)."""

    def _load_from_state_dict(self, state_dict, prefix, *args, **kw):
        for name in self.per_sample_buffers:
            key, buf = prefix + name, getattr(self, name)
            if key in state_dict and state_dict[key].shape != buf.shape:
                setattr(self, name, torch.empty_like(state_dict[key], device=buf.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kw)

    def on_epoch_start(self, epoch: int) -> None:
        """Called before each training epoch with its 0-based number (after a resume too)."""

    def epoch_stats(self) -> dict:
        """Method-specific numbers added to the epoch's row of ``metrics.jsonl``."""
        return {}

    def param_groups(self, lr: float) -> list[dict]:
        """The optimizer's parameter groups for base learning rate ``lr``: one group of every
        trainable parameter; methods with several learning rates override it."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]
