"""Procedurally drawn faces: the embedded default dataset (no downloads).

Every image comes from seeded parameters: identity (face shape, skin tone, feature
spacing, size, position, small yaw and roll), an expression class with an
*intensity* (weak expressions overlap with neutral; fear and surprise share brows,
eyes and an open mouth), lighting, blur, pixel noise and random occlusion. The
renderer draws from exact 68-point landmarks (iBUG layout) which ship with the
images, together with valence/arousal from the circumplex model.

Classes are the 7 basic emotions in canonical order (:data:`ferlab.classes.BASIC7`).
"""
from __future__ import annotations

import numpy as np
import torch

from .. import classes as C
from .base import FERDataset

# expression parameters: brow_raise, brow_inner, eye_open, mouth_curve, mouth_open, mouth_width, nose_wrinkle
PARAMS = ("brow_raise", "brow_inner", "eye_open", "mouth_curve", "mouth_open", "mouth_width", "nose_wrinkle")
PROTOTYPES = np.array([
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],      # neutral
    [0.05, 0.0, -0.25, 0.95, 0.2, 0.3, 0.1],   # happiness
    [0.9, 0.3, 0.65, 0.0, 0.9, -0.25, 0.0],    # surprise
    [-0.1, 0.65, -0.2, -0.75, 0.0, -0.05, 0.0],  # sadness
    [-0.55, -0.85, 0.05, -0.25, 0.05, -0.2, 0.15],  # anger
    [-0.3, -0.2, -0.4, -0.45, 0.1, 0.0, 1.0],  # disgust
    [0.6, 0.7, 0.5, -0.2, 0.5, 0.3, 0.0],      # fear
], dtype=np.float64)
VA_PROTOTYPES = np.array([[0.0, 0.0], [0.8, 0.45], [0.25, 0.8], [-0.7, -0.4], [-0.6, 0.7], [-0.7, 0.3], [-0.6, 0.8]])
SPLIT_OFFSET = {"train": 0, "val": 1, "valid": 1, "test": 2}
DEFAULT_SIZES = {"train": 6000, "val": 1500, "test": 1500}


def _expression_landmarks(e: np.ndarray, ident: dict) -> np.ndarray:
    """(B, 7) expression parameters -> (B, 68, 2) landmarks in face units (y down)."""
    B = len(e)
    br, bi, eo, mc, mo, mw, nw = (e[:, i] for i in range(7))
    fw, fh, sp = ident["face_w"], ident["face_h"], ident["eye_spacing"]
    lm = np.zeros((B, 68, 2))
    phi = np.linspace(-0.15, np.pi + 0.15, 17)
    lm[:, 0:17, 0] = -fw[:, None] * np.cos(phi)
    lm[:, 0:17, 1] = fh[:, None] * np.sin(phi) * 0.95
    ex = 0.36 * sp
    brow_y = -0.47 - 0.12 * br
    for side, (b0, e0) in enumerate(((17, 36), (22, 42))):
        sign = -1 if side == 0 else 1
        cx = sign * ex
        # brows: outer -> inner for the right brow, inner -> outer for the left one (iBUG order)
        t = np.linspace(0, 1, 5) if side == 0 else np.linspace(1, 0, 5)
        xs = cx[:, None] + sign * (0.16 - 0.30 * t)[None] * np.ones((B, 1))
        arch = -0.045 * np.sin(np.pi * (0.2 + 0.7 * t))
        ys = brow_y[:, None] + arch[None] - 0.13 * bi[:, None] * t[None] ** 1.5 + 0.02 * t[None]
        lm[:, b0:b0 + 5, 0], lm[:, b0:b0 + 5, 1] = xs, ys
        ew, eh, cy = 0.24, 0.065 * np.clip(1 + eo, 0.15, 2.2), -0.24
        ox = np.array([-0.5, -1 / 6, 1 / 6, 0.5, 1 / 6, -1 / 6]) * ew
        oy = np.array([0.0, -1.0, -1.0, 0.0, 0.85, 0.85])
        lm[:, e0:e0 + 6, 0] = cx[:, None] + ox[None]
        lm[:, e0:e0 + 6, 1] = cy + oy[None] * eh[:, None]
    nose_up = 0.04 * nw
    lm[:, 27:31, 0] = 0.0
    lm[:, 27:31, 1] = np.linspace(-0.26, 0.06, 4)[None] - nose_up[:, None] * np.linspace(0, 1, 4)[None]
    lm[:, 31:36, 0] = np.array([-0.11, -0.055, 0, 0.055, 0.11])[None]
    lm[:, 31:36, 1] = (0.13 + np.array([0, 0.015, 0.025, 0.015, 0]))[None] - nose_up[:, None]
    half = 0.22 * np.clip(1 + mw, 0.5, 1.6) * ident["mouth_w"]
    cy = (0.43 - 0.03 * nw)[:, None]
    gap = 0.17 * np.clip(mo, 0, 1.2)
    u = np.array([-1, -0.66, -0.33, 0, 0.33, 0.66, 1])  # positions along the mouth, right -> left

    def curve(x):  # lip-corner lift: positive mouth_curve raises the corners
        return -0.11 * mc[:, None] * x[None] ** 2

    upper = cy - 0.035 - 0.04 * nw[:, None]
    lm[:, 48:55, 0] = half[:, None] * u[None]
    lm[:, 48:55, 1] = np.where(np.abs(u)[None] == 1, cy, upper - 0.012 * (np.abs(u)[None] < 0.5)) + curve(u)
    lo = u[::-1][1:-1]
    lm[:, 55:60, 0] = half[:, None] * lo[None]
    lm[:, 55:60, 1] = cy + 0.045 + gap[:, None] * (1 - lo[None] ** 2) + curve(lo)
    ui = np.array([-0.8, -0.35, 0, 0.35, 0.8])
    lm[:, 60:65, 0] = half[:, None] * ui[None]
    lm[:, 60:65, 1] = cy - 0.3 * gap[:, None] * (1 - ui[None] ** 2) + curve(ui)
    li = np.array([0.35, 0, -0.35])
    lm[:, 65:68, 0] = half[:, None] * li[None]
    lm[:, 65:68, 1] = cy + 0.7 * gap[:, None] * (1 - li[None] ** 2) + curve(li)
    return lm


def _segments(idx: list[int], closed: bool = False) -> list[tuple[int, int]]:
    pairs = list(zip(idx[:-1], idx[1:]))
    return pairs + [(idx[-1], idx[0])] if closed else pairs


STROKES = (  # (segments, thickness in face units, opacity)
    (_segments(list(range(17, 22))) + _segments(list(range(22, 27))), 0.05, 0.95),
    (_segments(list(range(36, 42)), True) + _segments(list(range(42, 48)), True), 0.014, 0.9),
    (_segments(list(range(27, 31))) + _segments(list(range(31, 36))), 0.014, 0.45),
    (_segments(list(range(48, 60)), True), 0.024, 0.85),
    (_segments(list(range(0, 17))), 0.012, 0.35),
)


def _seg_alpha(size, A, Bp, thick, samples: int = 10):
    """Anti-aliased coverage of thick segments on a ``size`` x ``size`` grid.

    Points sampled along each segment are splatted as discs (max-combined), which
    costs O(points x disc) instead of O(pixels x segments).
    A, Bp (B,S,2) pixel coords; thick (B,S) pixels -> (B, size*size).
    """
    A, Bp, thick = (torch.tensor(np.asarray(v), dtype=torch.float32) for v in (A, Bp, thick))
    B = A.shape[0]
    t = torch.linspace(0, 1, samples)
    pts = A[:, :, None] + t[None, None, :, None] * (Bp - A)[:, :, None]  # (B,S,T,2)
    th = thick[:, :, None].expand(-1, -1, samples).reshape(B, -1)
    pts = pts.reshape(B, -1, 2)
    r = int(np.ceil(float(thick.max()) + 1))
    off = torch.arange(-r, r + 1, dtype=torch.float32)
    oy, ox = torch.meshgrid(off, off, indexing="ij")
    base = pts.floor()
    px = base[..., 0, None] + ox.reshape(-1)  # (B,P,D)
    py = base[..., 1, None] + oy.reshape(-1)
    dist = ((px + 0.5 - pts[..., 0, None]) ** 2 + (py + 0.5 - pts[..., 1, None]) ** 2).sqrt()
    cov = (th[..., None] - dist + 0.5).clamp(0, 1)
    inside = (px >= 0) & (px < size) & (py >= 0) & (py < size)
    flat = (py.clamp(0, size - 1) * size + px.clamp(0, size - 1)).long()
    cov = torch.where(inside, cov, torch.zeros(()))
    out = torch.zeros(B, size * size)
    out.scatter_reduce_(1, flat.reshape(B, -1), cov.reshape(B, -1), reduce="amax")
    return out.numpy()


def _convex_fill(P, poly):
    """Coverage of convex polygons. poly (B,V,2) in order -> (B,HW) soft mask."""
    P, a = torch.as_tensor(P, dtype=torch.float32), torch.as_tensor(np.asarray(poly), dtype=torch.float32)
    edge = torch.roll(a, -1, 1) - a
    nxt = torch.roll(edge, -1, 1)
    orient = torch.sign((edge[..., 0] * nxt[..., 1] - edge[..., 1] * nxt[..., 0]).sum(1))
    norm = edge.norm(dim=-1).clamp_min(1e-9)
    cross = edge[..., 0, None] * (P[:, 1] - a[..., 1, None]) - edge[..., 1, None] * (P[:, 0] - a[..., 0, None])
    inside = (cross / norm[..., None] * orient[:, None, None]).amin(1)
    return (inside + 0.5).clamp_(0, 1).numpy()


def render_faces(n: int, seed: int, image_size: int = 64, class_probs=None, chunk: int = 128) -> dict:
    """Draw ``n`` faces. Returns dict with ``images`` (n,S,S,3) uint8, ``labels`` (n,),
    ``landmarks`` (n,68,2) pixel coords, ``va`` (n,2), ``intensity`` (n,), ``params`` (n,7)."""
    rng = np.random.default_rng(seed)
    S = image_size
    K = len(PROTOTYPES)
    probs = np.full(K, 1 / K) if class_probs is None else np.asarray(class_probs, float) / np.sum(class_probs)
    labels = rng.choice(K, size=n, p=probs)
    intensity = np.clip(rng.beta(2.0, 1.6, size=n), 0.05, 1.0)
    intensity[labels == 0] = 0
    expr = PROTOTYPES[labels] * intensity[:, None] + rng.normal(0, 0.12, size=(n, 7))
    ident = {
        "face_w": rng.uniform(0.78, 0.98, n), "face_h": rng.uniform(1.0, 1.2, n),
        "eye_spacing": rng.uniform(0.9, 1.1, n), "mouth_w": rng.uniform(0.85, 1.15, n),
    }
    lm = _expression_landmarks(expr, ident)
    yaw = rng.uniform(-0.25, 0.25, n)
    depth = np.zeros(68)
    depth[27:36], depth[36:48], depth[48:68], depth[17:27] = 1.0, 0.55, 0.6, 0.45
    lm[..., 0] = lm[..., 0] * (1 - 0.2 * np.abs(yaw))[:, None] + 0.25 * yaw[:, None] * depth[None]
    roll = np.deg2rad(rng.uniform(-12, 12, n))
    scale = rng.uniform(0.34, 0.40, n) * S
    center = S / 2 + rng.uniform(-0.06, 0.06, (n, 2)) * S
    center[:, 1] -= 0.03 * S
    cos, sin = np.cos(roll)[:, None], np.sin(roll)[:, None]
    x, y = lm[..., 0], lm[..., 1]
    pix = np.stack([cos * x - sin * y, sin * x + cos * y], -1) * scale[:, None, None] + center[:, None]

    skin = rng.uniform(0.35, 0.9, n)[:, None] * np.array([1.0, 0.82, 0.7])[None] + rng.normal(0, 0.03, (n, 3))
    bg = rng.uniform(0.05, 0.95, (n, 3)) * 0.6 + rng.uniform(0.1, 0.4, (n, 1))
    ink = skin * rng.uniform(0.1, 0.35, (n, 1))
    skin, bg, ink = (v.astype(np.float32) for v in (skin, bg, ink))
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) + 0.5
    P = np.stack([xx.ravel(), yy.ravel()], -1)
    images = np.empty((n, S, S, 3), dtype=np.uint8)
    for lo in range(0, n, chunk):
        sl = slice(lo, min(n, lo + chunk))
        b = sl.stop - sl.start
        pts, sc = pix[sl], scale[sl]
        # skin ellipse (forehead included), rotated with the face
        rel = P[None] - center[sl][:, None]
        c, s_ = np.cos(roll[sl])[:, None], np.sin(roll[sl])[:, None]
        u = (c * rel[..., 0] + s_ * rel[..., 1]) / (sc[:, None] * ident["face_w"][sl][:, None] * 1.02)
        v = (-s_ * rel[..., 0] + c * rel[..., 1] + 0.12 * sc[:, None]) \
            / (sc[:, None] * ident["face_h"][sl][:, None] * 1.12)
        r = np.sqrt(u ** 2 + v ** 2)
        face = np.clip((1 - r) * sc[:, None] * 0.9 + 0.5, 0, 1).astype(np.float32)
        img = bg[sl][:, None] * (1 - face[..., None]) + skin[sl][:, None] * face[..., None]
        eyes = np.maximum(_convex_fill(P, pts[:, 36:42]), _convex_fill(P, pts[:, 42:48]))
        img = img * (1 - eyes[..., None]) + 0.92 * eyes[..., None]
        pupil_r = np.minimum(0.035 * sc, np.abs(pts[:, 41, 1] - pts[:, 37, 1]) * 0.6)
        pupils = np.zeros((b, S * S))
        for e0 in (36, 42):
            cen = pts[:, e0:e0 + 6].mean(1)
            d = np.sqrt(((P[None] - cen[:, None]) ** 2).sum(-1))
            pupils = np.maximum(pupils, np.clip(pupil_r[:, None] - d + 0.5, 0, 1))
        pupils *= eyes
        img = img * (1 - pupils[..., None]) + 0.08 * pupils[..., None]
        inner = _convex_fill(P, pts[:, 60:68]) * np.clip((pts[:, 66, 1] - pts[:, 62, 1]) / (0.02 * sc), 0, 1)[:, None]
        img = img * (1 - inner[..., None]) + np.array([0.25, 0.05, 0.07])[None, None] * inner[..., None]
        for segs, thick, opacity in STROKES:
            ia, ib = zip(*segs)
            A, Bp = pts[:, list(ia)], pts[:, list(ib)]
            th = np.broadcast_to((thick * sc)[:, None], A.shape[:2])
            a = _seg_alpha(S, A, Bp, th) * opacity
            img = img * (1 - a[..., None]) + ink[sl][:, None] * a[..., None]
        # disgust wrinkles beside the nose bridge
        wr = np.clip(expr[sl, 6], 0, 1)
        if wr.max() > 0.05:
            A = np.stack([pts[:, 28] + np.array([s * 0.06, 0.0]) * sc[:, None] for s in (-1, 1)], 1)
            Bp = np.stack([pts[:, 29] + np.array([s * 0.11, 0.02]) * sc[:, None] for s in (-1, 1)], 1)
            a = _seg_alpha(S, A, Bp, np.broadcast_to((0.012 * sc)[:, None], A.shape[:2])) * wr[:, None] * 0.8
            img = img * (1 - a[..., None]) + ink[sl][:, None] * a[..., None]
        img = img.reshape(b, S, S, 3)
        # lighting gradient, occlusion, blur, sensor noise
        ang = rng.uniform(0, 2 * np.pi, b)
        g = rng.uniform(0, 0.45, b)
        ramp = (np.cos(ang)[:, None, None] * (xx / S - 0.5) + np.sin(ang)[:, None, None] * (yy / S - 0.5))
        img = img * (1 + g[:, None, None, None] * ramp[..., None])
        for i in np.flatnonzero(rng.random(b) < 0.25):
            h, w = rng.integers(S // 6, S // 2.5, 2)
            y0, x0 = rng.integers(0, S - h), rng.integers(0, S - w)
            img[i, y0:y0 + h, x0:x0 + w] = rng.uniform(0, 1, 3)
        blur = rng.random(b) < 0.35
        if blur.any():
            k = img[blur]
            k = (k + np.roll(k, 1, 1) + np.roll(k, -1, 1)) / 3
            img[blur] = (k + np.roll(k, 1, 2) + np.roll(k, -1, 2)) / 3
        img = img + rng.uniform(0, 0.045, (b, 1, 1, 1)) * rng.standard_normal(img.shape)
        images[sl] = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    va = VA_PROTOTYPES[labels] * intensity[:, None] + rng.normal(0, 0.06, (n, 2))
    return {"images": images, "labels": labels, "landmarks": pix.astype(np.float32),
            "va": np.clip(va, -1, 1).astype(np.float32),
            "intensity": intensity, "params": expr}


def synthetic(split: str = "train", n: int | None = None, seed: int = 0, image_size: int = 64) -> FERDataset:
    """The synthetic-faces dataset. Splits draw disjoint seeds (``seed*10 + split``)."""
    if split not in SPLIT_OFFSET:
        raise ValueError(f"split must be one of {sorted(SPLIT_OFFSET)}, got {split!r}")
    n = DEFAULT_SIZES["val" if split == "valid" else split] if n is None else int(n)
    d = render_faces(n, seed * 10 + SPLIT_OFFSET[split], image_size)
    return FERDataset(classes=C.BASIC7, labels=d["labels"], images=d["images"], image_size=image_size,
                      landmarks=d["landmarks"], va=d["va"], name=f"synthetic-{split}",
                      meta={"seed": seed, "split": split, "intensity": d["intensity"]})
