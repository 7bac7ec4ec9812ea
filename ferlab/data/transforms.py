"""Batched, on-device image transforms.

Every op takes a float batch ``x`` of shape (B, 3, H, W) (pixel range 0..255 until
:class:`Normalize`) and returns a batch; :class:`Compose` runs the leading ops that only move
pixels (crop, zero padding, flip, a resize to the same size: ``exact_on_integers``) on the uint8
batch and converts to float after them -- the same numbers at a quarter of the memory traffic (LDLVA
augments B x K neighbour images a step); on the CPU crops and flips copy per-sample windows instead of
gathering every pixel. Random ops draw from the global torch RNG
of ``x``'s device, which the trainer checkpoints, so resume is exact. A pipeline is
a :class:`Compose` built from a preset (:func:`train_transform`, :func:`eval_transform`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF_MEAN = (0.5, 0.5, 0.5)
HALF_STD = (0.5, 0.5, 0.5)


def _rand(n: int, x: torch.Tensor) -> torch.Tensor:
    return torch.rand(n, device=x.device)


def exact_on_integers(op, x: torch.Tensor) -> bool:
    """Whether ``op(x)`` on an integer batch equals ``op(x.float())`` converted afterwards: ops that only
    copy, move or zero pixels say so by ``exact_on_integers(x)`` (their random draws do not depend
    on the dtype, so the RNG stream is the same)."""
    check = getattr(op, "exact_on_integers", None)
    return bool(check(x)) if check is not None else False


class Compose:
    """The ops in order on a batch; an integer batch becomes float before the first op that is not
    :func:`exact_on_integers` (at the end at the latest, unless ``to_float=False``)."""

    def __init__(self, *ops, to_float: bool = True):
        self.ops = [op for op in ops if op is not None]
        self.to_float = to_float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            if not x.is_floating_point() and not exact_on_integers(op, x):
                x = x.float()
            x = op(x)
        return x.float() if self.to_float and not x.is_floating_point() else x

    def split_per_sample_tail(self) -> tuple[Compose, Compose]:
        """(head, tail) with ``tail(head(x))`` equal to ``self(x)``: ``tail`` holds the trailing ops that
        draw nothing and treat each sample alone (``per_sample_deterministic``: normalisation), so
        ``tail`` may run chunk by chunk on ``head(x)``; ``head`` draws every random number, in this
        pipeline's order, and leaves an integer batch integer where its ops allow (``tail`` converts)."""
        i = len(self.ops)
        while i and getattr(self.ops[i - 1], "per_sample_deterministic", False):
            i -= 1
        return Compose(*self.ops[:i], to_float=False), Compose(*self.ops[i:])

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(o) for o in self.ops) + ")"


@dataclass
class Resize:
    """(B, 3, H, W) -> (B, 3, size, size), bilinear (antialiased when shrinking); the identity
    when the batch already has that size."""
    size: int

    def exact_on_integers(self, x):
        """Only when ``x`` already has the target size (then the op is the identity)."""
        return x.shape[-1] == self.size and x.shape[-2] == self.size      # the identity

    def __call__(self, x):
        if x.shape[-1] == self.size and x.shape[-2] == self.size:
            return x
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                             antialias=x.shape[-1] > self.size)


@dataclass
class GaussianNoise:
    """Add N(0, var) pixel noise on the 0..255 scale with probability ``p``, then clip
    (EAC/RUL/DMUE's ``add_g``: var = 30)."""
    var: float = 30.0
    p: float = 0.5

    def __call__(self, x):
        apply = (_rand(x.shape[0], x) < self.p).view(-1, 1, 1, 1)
        noisy = (x + torch.randn_like(x) * math.sqrt(self.var)).clamp(0, 255)
        return torch.where(apply, noisy, x)


@dataclass
class RandomHorizontalFlip:
    """Flip each sample of (B, 3, H, W) left-right with probability ``p``."""
    p: float = 0.5

    def exact_on_integers(self, x):
        """Always: it only copies pixels (see :func:`exact_on_integers`)."""
        return True

    def __call__(self, x):
        apply = _rand(x.shape[0], x) < self.p
        if x.device.type == "cpu":                   # the same result, copying only the flipped samples' rows
            out = x.clone()
            for i in apply.nonzero().flatten().tolist():
                out[i] = x[i].flip(-1)
            return out
        return torch.where(apply.view(-1, 1, 1, 1), x.flip(-1), x)


@dataclass
class FlipOrNoise:
    """RUL: with probability ``p`` apply exactly one of {horizontal flip, Gaussian noise}."""
    p: float = 0.5
    var: float = 30.0

    def __call__(self, x):
        u, pick = _rand(x.shape[0], x).view(-1, 1, 1, 1), _rand(x.shape[0], x).view(-1, 1, 1, 1)
        noisy = (x + torch.randn_like(x) * math.sqrt(self.var)).clamp(0, 255)
        out = torch.where((u < self.p) & (pick < 0.5), x.flip(-1), x)
        return torch.where((u < self.p) & (pick >= 0.5), noisy, out)


@dataclass
class RandomCrop:
    """Random ``size`` crop per sample (after optional zero ``padding``)."""
    size: int
    padding: int = 0

    def exact_on_integers(self, x):
        """Always: zero padding and pixel copies (see :func:`exact_on_integers`)."""
        return True                                  # zero padding, gathers

    def __call__(self, x):
        B, C, H, W = x.shape
        p, S = self.padding, self.size
        top = (torch.rand(B, device=x.device) * (H + 2 * p - S + 1)).long()      # in the padded image
        left = (torch.rand(B, device=x.device) * (W + 2 * p - S + 1)).long()
        if x.device.type == "cpu":        # one window copy per sample into zeros: the same values as the gathers
            out = x.new_zeros(B, C, S, S)
            for i, (t, lf) in enumerate(zip((top - p).tolist(), (left - p).tolist())):
                y0, y1, x0, x1 = max(t, 0), min(t + S, H), max(lf, 0), min(lf + S, W)
                if y1 > y0 and x1 > x0:
                    out[i, :, y0 - t:y1 - t, x0 - lf:x1 - lf] = x[i, :, y0:y1, x0:x1]
            return out
        if p:
            x = F.pad(x, [p] * 4)
        B, C, H, W = x.shape
        ar = torch.arange(self.size, device=x.device)
        rows = (top[:, None] + ar)[:, None, :, None].expand(B, C, self.size, W)
        x = x.gather(2, rows)
        cols = (left[:, None] + ar)[:, None, None, :].expand(B, C, self.size, self.size)
        return x.gather(3, cols)


@dataclass
class CenterCrop:
    """(B, 3, H, W) -> the central (B, 3, size, size) window."""
    size: int

    def exact_on_integers(self, x):
        """Always: it only copies pixels (see :func:`exact_on_integers`)."""
        return True

    def __call__(self, x):
        H, W = x.shape[-2:]
        top, left = (H - self.size) // 2, (W - self.size) // 2
        return x[..., top:top + self.size, left:left + self.size]


@dataclass
class RandomResizedCrop:
    """Per-sample scale/ratio crop resampled to ``size`` with one batched ``grid_sample``."""
    size: int
    scale: tuple = (0.6, 1.0)
    ratio: tuple = (3 / 4, 4 / 3)

    def sample_boxes(self, B: int, device) -> torch.Tensor:
        """(B, 4) crop boxes (w, h, cx, cy) in normalised [-1, 1] image coordinates."""
        area = torch.empty(B, device=device).uniform_(*self.scale)
        logr = torch.empty(B, device=device).uniform_(math.log(self.ratio[0]), math.log(self.ratio[1]))
        r = torch.exp(logr)
        w = torch.sqrt(area * r).clamp(max=1.0)
        h = torch.sqrt(area / r).clamp(max=1.0)
        cx = (torch.rand(B, device=device) * 2 - 1) * (1 - w)
        cy = (torch.rand(B, device=device) * 2 - 1) * (1 - h)
        return torch.stack([w, h, cx, cy], 1)

    def crop(self, x: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        """Resample the boxes ``box`` (B, 4) of :meth:`sample_boxes` from x (B, 3, H, W) to
        (B, 3, size, size), bilinear with border padding."""
        B = x.shape[0]
        theta = torch.zeros(B, 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = box.to(x.dtype).unbind(1)
        grid = F.affine_grid(theta, (B, x.shape[1], self.size, self.size), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def __call__(self, x):
        return self.crop(x, self.sample_boxes(x.shape[0], x.device))


@dataclass
class ColorJitter:
    """Per-sample brightness, contrast and saturation factors drawn from [1-b, 1+b], [1-c, 1+c],
    [1-s, 1+s], applied in that order (saturation blends with the grey image)."""
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.0

    def __call__(self, x):
        B = x.shape[0]
        b = 1 + (torch.rand(B, 1, 1, 1, device=x.device) * 2 - 1) * self.brightness
        c = 1 + (torch.rand(B, 1, 1, 1, device=x.device) * 2 - 1) * self.contrast
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x * b - mean) * c + mean).clamp(0, 255)
        if self.saturation:
            s = 1 + (torch.rand(B, 1, 1, 1, device=x.device) * 2 - 1) * self.saturation
            grey = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
            x = (grey + (x - grey) * s).clamp(0, 255)
        return x


@dataclass
class Normalize:
    """0..255 -> (x/255 - mean) / std."""
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    per_sample_deterministic = True

    def __call__(self, x):
        m = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1) * 255
        s = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1) * 255
        return (x - m).div_(s)                      # (x - m) / s, without a second batch-sized buffer


@dataclass
class RandomErasing:
    """torchvision's RandomErasing, batched: with probability ``p`` erase one box whose
    area share is in ``scale`` and aspect in ``ratio`` (10 attempts, the first that
    fits is used; none fits -> no erase), filled with ``value``."""
    p: float = 0.5
    scale: tuple = (0.02, 0.25)
    ratio: tuple = (0.3, 3.3)
    value: float = 0.0
    attempts: int = 10

    def __call__(self, x):
        B, _, H, W = x.shape
        dev = x.device
        area = H * W * torch.empty(B, self.attempts, device=dev).uniform_(*self.scale)
        logr = torch.empty(B, self.attempts, device=dev).uniform_(math.log(self.ratio[0]), math.log(self.ratio[1]))
        r = torch.exp(logr)
        h = torch.sqrt(area * r).round().long()
        w = torch.sqrt(area / r).round().long()
        fits = (h < H) & (w < W) & (h > 0) & (w > 0)
        first = torch.where(fits.any(1), fits.float().argmax(1), torch.zeros(B, dtype=torch.long, device=dev))
        h = h.gather(1, first[:, None]).squeeze(1)
        w = w.gather(1, first[:, None]).squeeze(1)
        apply = (torch.rand(B, device=dev) < self.p) & fits.any(1)
        top = (torch.rand(B, device=dev) * (H - h + 1).clamp(min=1)).long()
        left = (torch.rand(B, device=dev) * (W - w + 1).clamp(min=1)).long()
        ys = torch.arange(H, device=dev).view(1, H, 1)
        xs = torch.arange(W, device=dev).view(1, 1, W)
        box = ((ys >= top.view(-1, 1, 1)) & (ys < (top + h).view(-1, 1, 1))
               & (xs >= left.view(-1, 1, 1)) & (xs < (left + w).view(-1, 1, 1)) & apply.view(-1, 1, 1))
        return x.masked_fill(box[:, None], self.value)


def train_transform(input_size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD, flip: float = 0.5,
                    crop: str = "none", crop_padding: int = 0, jitter: float = 0.0, erasing: float = 0.0,
                    gaussian_noise: float = 0.0, flip_or_noise: float = 0.0) -> Compose:
    """Preset: [noise | flip-or-noise] -> resize -> [crop] -> [flip] -> [jitter] -> normalise -> [erase].

    ``crop``: ``none`` | ``random`` (pad + random crop) | ``resized`` (RandomResizedCrop) |
    ``resize_crop`` (resize to 256/224 of the input size, random crop back: DMUE).
    ``gaussian_noise`` / ``flip_or_noise`` / ``flip`` / ``erasing`` are probabilities.
    """
    ops = [GaussianNoise(30.0, gaussian_noise) if gaussian_noise else None,
           FlipOrNoise(flip_or_noise) if flip_or_noise else None]
    if crop == "resized":
        ops.append(RandomResizedCrop(input_size))
    elif crop == "resize_crop":   # DMUE: resize 256 -> random crop 224, at any input size
        ops += [Resize(round(input_size * 256 / 224)), RandomCrop(input_size)]
    else:
        ops.append(Resize(input_size))
        if crop == "random":
            ops.append(RandomCrop(input_size, crop_padding))
        elif crop != "none":
            raise ValueError(f"crop must be 'none', 'random', 'resized' or 'resize_crop', got {crop!r}")
    ops += [RandomHorizontalFlip(flip) if flip else None, ColorJitter(jitter, jitter) if jitter else None,
            Normalize(mean, std), RandomErasing(erasing) if erasing else None]
    return Compose(*ops)


def eval_transform(input_size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> Compose:
    """Evaluation preset: resize to ``input_size`` -> normalise; uint8 or float (B, 3, H, W) ->
    float (B, 3, input_size, input_size)."""
    return Compose(Resize(input_size), Normalize(mean, std))


# -- landmark-aware ops: (x (B, 3, H, W), points (B, K, 2) pixel coordinates of x) -> both moved --------
@dataclass
class LandmarkResize:
    """:class:`Resize` of x (B, 3, H, W) to ``size`` with the points (B, K, 2) scaled along
    (square images)."""
    size: int

    def __call__(self, x, points):
        return Resize(self.size)(x), points * (self.size / x.shape[-1])


@dataclass
class LandmarkHorizontalFlip:
    """Flip with probability ``p``: x -> W - x, left/right indices swapped when ``swap`` (the
    default; LA-Net's official flip keeps them: ``swap=False``)."""
    p: float = 0.5
    swap: bool = True

    def __call__(self, x, points):
        from .landmarks import flip_landmarks
        apply = _rand(x.shape[0], x) < self.p
        x = torch.where(apply.view(-1, 1, 1, 1), x.flip(-1), x)
        points = torch.where(apply.view(-1, 1, 1), flip_landmarks(points, x.shape[-1], self.swap), points)
        return x, points


@dataclass
class LandmarkResizedCrop(RandomResizedCrop):
    """:class:`RandomResizedCrop` that also maps the points into the crop (kept as floats; LA-Net
    casts them to int)."""

    def __call__(self, x, points):
        box = self.sample_boxes(x.shape[0], x.device)
        W, H = x.shape[-1], x.shape[-2]
        w, h, cx, cy = (v.view(-1, 1) for v in box.unbind(1))
        u = ((points[..., 0] / W * 2 - 1) - cx) / w
        v = ((points[..., 1] / H * 2 - 1) - cy) / h
        return self.crop(x, box), torch.stack([(u + 1) / 2 * self.size, (v + 1) / 2 * self.size], -1)


class LandmarkCompose:
    """Ops that take (x, points) move both; the rest (jitter, normalise, erase) see x only."""
    landmark_ops = (LandmarkResize, LandmarkHorizontalFlip, LandmarkResizedCrop)

    def __init__(self, *ops):
        self.ops = [op for op in ops if op is not None]

    def __call__(self, x: torch.Tensor, points: torch.Tensor):
        x = x.float() if not x.is_floating_point() else x
        points = points.float()
        for op in self.ops:
            if isinstance(op, self.landmark_ops):
                x, points = op(x, points)
            else:
                x = op(x)
        return x, points

    def __repr__(self) -> str:
        return "LandmarkCompose(" + ", ".join(repr(o) for o in self.ops) + ")"


def landmark_train_transform(input_size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD, flip: float = 0.5,
                             swap_landmarks: bool = True, crop_scale=(0.75, 1.0), jitter: float = 0.4,
                             erasing: float = 0.2, erasing_scale=(0.02, 0.2)) -> LandmarkCompose:
    """LA-Net's train pipeline on (images, landmarks): resize -> flip -> RandomResizedCrop
    (``crop_scale``, ratio 3/4..4/3) -> ColorJitter(brightness, contrast, saturation = ``jitter``)
    -> normalise -> RandomErasing(``erasing``, ``erasing_scale``). ``crop_scale=None`` skips the crop."""
    return LandmarkCompose(
        LandmarkResize(input_size), LandmarkHorizontalFlip(flip, swap_landmarks) if flip else None,
        LandmarkResizedCrop(input_size, tuple(crop_scale)) if crop_scale else None,
        ColorJitter(jitter, jitter, jitter) if jitter else None, Normalize(mean, std),
        RandomErasing(erasing, tuple(erasing_scale)) if erasing else None)
