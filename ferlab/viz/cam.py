"""Class activation maps for every method: classifier CAMs, EAC's attention, and
Grad-CAM / Grad-CAM++ / EigenCAM through pytorch-grad-cam.

    with MethodCAM(method, kind="gradcam") as cam:
        maps = cam(images, classes)          # (N, H, W) in [0, 1] at the input size
    overlay(raw_uint8_image, maps[0])        # (H0, W0, 3) uint8 at the original size

Hooks live only inside the ``with`` block; the method's train/eval mode is restored.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

KINDS = ("gradcam", "gradcam++", "eigencam")


def unwrap(model: nn.Module) -> nn.Module:
    """The Method inside a DDP / DataParallel wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


class LogitsOnly(nn.Module):
    """``forward(x) = method.predict(x)``: a plain (N, K) logits model for pytorch-grad-cam,
    whatever the method's own ``forward`` returns (dicts, tuples)."""

    def __init__(self, method: nn.Module):
        super().__init__()
        self.method = unwrap(method)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images (N, 3, H, W) -> logits (N, K)."""
        return self.method.predict(x)


def classifier_cam(method: nn.Module, images: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
    """CAM from the classifier weight (Zhou et al. 2016) for methods whose classifier is linear in
    globally pooled features (``Method.cam_classifier``): ``sum_c W[k, c] F[n, c, h, w]`` (no bias;
    DMUE's eval BN-neck is folded into W).

    Args:
        images: normalised (N, 3, H, W); classes: (N,) class per image (default: the prediction).
    Returns:
        (N, h, w) raw maps at the feature resolution.
    """
    m = unwrap(method)
    head = m.cam_classifier()
    if head is None:
        raise ValueError(f"{type(m).__name__}: its classifier does not read globally pooled backbone features, "
                         f"so a classifier CAM is not defined; use MethodCAM(kind='gradcam') instead")
    with torch.no_grad():
        f = m.backbone.forward_features(images)
        if classes is None:
            classes = m.predict(images).argmax(1)
        return torch.einsum("nc,nchw->nhw", head[0][classes].to(f.dtype), f)


def denormalize(images: torch.Tensor, mean, std) -> torch.Tensor:
    """Normalised (N, 3, H, W) -> uint8 (N, 3, H, W) with the backbone's own mean / std."""
    m = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    return ((images.float() * s + m) * 255).round().clamp(0, 255).to(torch.uint8)


#: maps with at most this many cells (1x1, 2x2) carry almost no spatial information
TINY_MAP_CELLS = 4


def warn_if_coarse(map_size: tuple[int, int], size: tuple[int, int], stacklevel: int = 2) -> bool:
    """Warn (``UserWarning``) when a map of ``map_size`` cells (at most :data:`TINY_MAP_CELLS`) is drawn
    at ``size``; returns whether it did."""
    h, w = map_size
    if h * w > TINY_MAP_CELLS:
        return False
    import warnings
    warnings.warn(f"class activation maps of {h}x{w} cells upsampled to {size[0]}x{size[1]}: too coarse to "
                  f"localise anything (train at a larger input size, e.g. 112 px or more for a ResNet)",
                  stacklevel=stacklevel + 1)
    return True


def resize_maps(maps: torch.Tensor | np.ndarray, size: tuple[int, int], warn: bool = True) -> torch.Tensor:
    """(N, h, w) maps -> (N, H, W), each min-max scaled to [0, 1].

    Upsampling is bilinear with ``align_corners=False`` (edge cells are replicated), nearest for a
    1x1 map. Whether a map is constant is decided on the *source* map: a constant map (any 1x1 map,
    or a range within float round-off, ``<= 1e-6`` of its magnitude) stays constant -- all zeros, as
    pytorch-grad-cam scales it -- instead of min-max scaling blowing the interpolation's round-off
    up into speckle.
    ``warn``: a ``UserWarning`` when the maps have at most :data:`TINY_MAP_CELLS` cells (e.g. a
    ResNet at 32-64 px input), where any CAM is little more than one number per image.
    """
    maps = torch.as_tensor(maps, dtype=torch.float32)
    h, w = maps.shape[-2:]
    if warn:
        warn_if_coarse((h, w), size, stacklevel=3)
    def min_max(x):
        flat = x.flatten(1)
        return flat.min(1).values.view(-1, 1, 1), flat.max(1).values.view(-1, 1, 1)

    lo, hi = min_max(maps)
    constant = (hi - lo) <= 1e-6 * torch.maximum(lo.abs(), hi.abs()).clamp_min(1e-30)
    if h * w == 1:
        out = F.interpolate(maps[:, None], size=size, mode="nearest")[:, 0]
    else:
        out = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    lo, hi = min_max(out)
    return torch.where(constant, torch.zeros_like(out), (out - lo) / (hi - lo).clamp_min(1e-30))


def overlay(image: torch.Tensor | np.ndarray, cam: torch.Tensor | np.ndarray, alpha: float = 0.5,
            colormap: str = "jet") -> np.ndarray:
    """Blend a map over an image at the *image's* size.

    image: uint8 (3, H, W) tensor or (H, W, 3) array; cam: (h, w) any range.
    Returns (H, W, 3) uint8.
    """
    import matplotlib

    img = image.permute(1, 2, 0).cpu().numpy() if torch.is_tensor(image) else np.asarray(image)
    cam = resize_maps(torch.as_tensor(np.asarray(cam, dtype=np.float32))[None], img.shape[:2])[0].numpy()
    heat = matplotlib.colormaps[colormap](cam)[..., :3] * 255
    return (alpha * heat + (1 - alpha) * img.astype(np.float32)).round().clip(0, 255).astype(np.uint8)


class MethodCAM:
    """Grad-CAM family on any ferlab Method (context manager; hooks released on exit).

    Args:
        method: a Method (DDP-wrapped is fine).
        kind: ``gradcam`` | ``gradcam++`` | ``eigencam``.
        target_layer: default ``method.cam_target_layer`` (the last block of the backbone's stage
            feeding the head, on any backbone: ResNet ``layer4[-1]``, dlib_resnet29 its ``out_stage``).
    ``cam(images, classes=None)``: normalised (N, 3, H, W) -> (N, H, W) float in [0, 1];
    gradients are enabled inside even when called under ``torch.no_grad()``.
    """

    def __init__(self, method: nn.Module, kind: str = "gradcam", target_layer: nn.Module | None = None):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.method = unwrap(method)
        self.kind = kind
        self.target_layer = target_layer or self.method.cam_target_layer
        self._cam = None

    def __enter__(self) -> MethodCAM:
        from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus

        cls = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "eigencam": EigenCAM}[self.kind]
        self._was_training = self.method.training
        self._cam = cls(model=LogitsOnly(self.method), target_layers=[self.target_layer])
        return self

    def __exit__(self, *exc) -> None:
        if self._cam is not None:
            self._cam.activations_and_grads.release()
            self._cam = None
        self.method.train(self._was_training)

    def __call__(self, images: torch.Tensor, classes: torch.Tensor | list | None = None) -> np.ndarray:
        if self._cam is None:
            raise RuntimeError("use MethodCAM inside a `with` block (hooks are attached on enter)")
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        targets = None if classes is None else [ClassifierOutputTarget(int(c)) for c in classes]
        with torch.enable_grad():
            return self._cam(input_tensor=images, targets=targets)


def attention_views(images: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """EAC's three views of uint8 (N, 3, S, S) images: ``original``, ``flipped`` and ``erased``
    (one random box, p = 1, scale 0.02-0.25, filled black; seeded)."""
    from ..data.transforms import RandomErasing

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        erased = RandomErasing(p=1.0)(images.float()).to(torch.uint8)
    return {"original": images, "flipped": images.flip(-1), "erased": erased}


def attention_figure(methods: dict[str, nn.Module], images: torch.Tensor, classes: torch.Tensor,
                     class_names=None, seed: int = 0, alpha: float = 0.5):
    """The EAC paper figure: for each image (rows), the original / flipped / erased view next to
    each method's classifier CAM of the labelled class on that view.

    methods: name -> Method (classifier CAM must be defined, e.g. baseline, EAC);
    images: uint8 (N, 3, S, S); classes: (N,) class whose map is drawn.
    """
    import matplotlib.pyplot as plt

    views = attention_views(images, seed)
    cols = []
    for v in views:
        cols.append((v, None))
        cols += [(v, name) for name in methods]
    n = len(images)
    fig, axes = plt.subplots(n, len(cols), figsize=(1.6 * len(cols), 1.7 * n), squeeze=False)
    maps = {}
    for name, m in methods.items():
        m = unwrap(m)
        for v, imgs in views.items():
            maps[name, v] = classifier_cam(m, m.prepare(imgs.to(next(m.parameters()).device)), classes).cpu()
    for i in range(n):
        for j, (v, name) in enumerate(cols):
            ax = axes[i, j]
            img = views[v][i]
            ax.imshow(img.permute(1, 2, 0).numpy() if name is None else overlay(img, maps[name, v][i], alpha))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(v if name is None else name, fontsize=8)
        if class_names is not None:
            axes[i, 0].set_ylabel(class_names[int(classes[i])], fontsize=8)
    fig.tight_layout()
    return fig


def cam_comparison_figure(methods: dict[str, nn.Module], images: torch.Tensor, classes: torch.Tensor,
                          kinds=("classifier", "gradcam", "gradcam++", "eigencam"), alpha: float = 0.5,
                          class_names=None):
    """Maps of every (method, kind) pair (rows) on every image (columns), at the image size.

    ``kind`` ``classifier`` is the weight CAM (:func:`classifier_cam`; skipped for methods whose
    head does not allow it), the others go through :class:`MethodCAM`. ``images``: uint8 (N, 3, S, S);
    ``classes``: (N,) the class whose map is drawn.
    """
    import matplotlib.pyplot as plt

    rows = []
    for name, method in methods.items():
        m = unwrap(method)
        dev = next(m.parameters()).device
        x = m.prepare(images.to(dev))
        for kind in kinds:
            if kind == "classifier":
                if m.cam_classifier() is None:
                    continue
                maps = resize_maps(classifier_cam(m, x, classes.to(dev)).cpu(), tuple(images.shape[-2:]))
            else:
                with MethodCAM(m, kind) as cam:
                    maps = resize_maps(cam(x, classes), tuple(images.shape[-2:]))
            rows.append((f"{name}\n{kind}", maps))
    n = len(images)
    fig, axes = plt.subplots(len(rows) + 1, n, figsize=(1.5 * n + 0.8, 1.5 * (len(rows) + 1)), squeeze=False)
    for j in range(n):
        axes[0, j].imshow(images[j].permute(1, 2, 0).numpy())
        if class_names is not None:
            axes[0, j].set_title(class_names[int(classes[j])], fontsize=7)
        for i, (_, maps) in enumerate(rows, start=1):
            axes[i, j].imshow(overlay(images[j], maps[j], alpha))
    for i, (label, _) in enumerate([("image", None), *rows]):
        axes[i, 0].set_ylabel(label, fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig
