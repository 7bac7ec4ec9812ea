"""LA-Net's losses against hand computations."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ferlab.losses.landmark_contrastive import (
    LabelDistributionEstimator,
    PairScore,
    adaptive_wing_loss,
    el_contrastive_loss,
    enqueue,
    heatmap_targets,
    neighbour_mask,
    neighbour_weights,
    pseudo_labels,
)


def test_exact_heatmap_peaks_at_the_landmark_with_weights_around_it():
    pts = torch.tensor([[[10.0, 22.0], [47.0, 3.0], [500.0, 500.0]]])     # 48 px input, stride 4 -> 12 x 12
    heat, w = heatmap_targets(pts, 12, 4.0, rounding="exact")
    assert heat.shape == w.shape == (1, 3, 12, 12)
    # centre = int(p / 4 + 0.5): (3, 6) and (12 -> off the map in x, 1)
    assert heat[0, 0].argmax() == 6 * 12 + 3 and heat[0, 0, 6, 3] == 1.0
    assert heat[0, 0, 6, 4] == pytest.approx(math.exp(-1 / (2 * 1.5 ** 2)))
    assert heat[0, 0, 6, 9] == 0                                          # outside the 10 x 10 window (dx = 6)
    assert w[0, 0, 6, 3] == 10 and w[0, 0, 0, 11] == 1
    assert heat[0, 1].max() < 1 and heat[0, 1, 1, 11] > 0.1               # centre just off the map: only its tail
    assert heat[0, 2].sum() == 0 and (w[0, 2] == 1).all()                  # window entirely off the map


def _peak_columns(heat):
    return [int(h.max(0).values.argmax()) for h in heat[0]]


# x = 4c lands at centre c (int(c + 0.5)); x = -3 at int(-0.25) = 0 (truncation), x = -6 at -1
HEAT_X = [0, 4, 8, 12, 16, 20, 24, 28, -3, -6]


# -- the official generator, written out in plain numpy as the reference ----------------------------
def _official_axis(p, stride, size, tmp):
    """One axis of the official generator: centre, box [ul, br) (Python int(): toward zero), the
    map's pixel range and the patch's index range pasted there; None when the box misses the map."""
    c = int(np.float32(p) / np.float32(stride) + np.float32(0.5))    # float32, as the official tensor
    ul, br = int(c - tmp), int(c + tmp + 1)
    if ul >= size or br < 0:
        return None
    return (max(0, ul), min(br, size)), (max(0, -ul), min(br, size) - ul)


def _official_heatmap(px, py, size, stride, sigma=1.5):
    heat = np.zeros((size, size), np.float32)
    tmp = 3 * sigma
    ax, ay = _official_axis(px, stride, size, tmp), _official_axis(py, stride, size, tmp)
    if ax is None or ay is None:
        return heat
    side = 2 * tmp + 1
    g1 = np.arange(0, side, 1, np.float32)                           # the patch, in float32
    centre = side // 2
    patch = np.exp(-((g1[None, :] - centre) ** 2 + (g1[:, None] - centre) ** 2) / (2 * sigma ** 2))
    (x0, x1), (gx0, gx1) = ax
    (y0, y1), (gy0, gy1) = ay
    heat[y0:y1, x0:x1] = patch[gy0:gy1, gx0:gx1]
    return heat


def _official_weights(heat, weight=10.0, threshold=0.2):
    padded = np.pad(heat, 1, constant_values=-np.inf)
    n = heat.shape[0]
    dilated = np.max([padded[i:i + n, j:j + n] for i in range(3) for j in range(3)], axis=0)
    return np.where(dilated > threshold, np.float32(weight), np.float32(1.0)).astype(np.float32)


def _g(d2):
    return math.exp(-d2 / (2 * 1.5 ** 2))


@pytest.mark.parametrize("c, cols, peak", [
    (5, (0, 10), 5),      # ul = int(0.5) = 0, br = int(10.5) = 10: patch offsets -5 .. +4, peak at c
    (4, (0, 9), 5),       # ul = int(-0.5) = 0, br = 9: offsets -5 .. +3, peak at c + 1
    (3, (0, 8), 4),       # ul = int(-1.5) = -1, br = 8: offsets -4 .. +3 on the map, peak at c + 1
])
def test_official_heatmap_box_by_hand_for_centres_3_4_5(c, cols, peak):
    # 28 x 28 map, stride 4; y = 56 -> centre 14, rows [9, 19) with the peak on row 14
    heat, w = heatmap_targets(torch.tensor([[[4.0 * c, 56.0]]]), 28, 4.0)
    h = heat[0, 0]
    nz = h.nonzero()
    assert (nz[:, 1].min().item(), nz[:, 1].max().item() + 1) == cols
    assert (nz[:, 0].min().item(), nz[:, 0].max().item() + 1) == (9, 19)
    assert len(nz) == (cols[1] - cols[0]) * 10                           # the whole box, nothing else
    assert h[14, peak] == 1.0 and h.max() == 1.0
    for col in range(cols[0], cols[1]):                                  # the peak row, offset by offset
        assert h[14, col].item() == pytest.approx(_g((col - peak) ** 2), rel=1e-6)
    assert h[9, peak].item() == pytest.approx(_g(25), rel=1e-6)          # row offset -5 is there
    assert h[19, peak] == 0                                              # +5 never is
    if c == 5:
        assert h[14, 1].item() == h[14, 9].item() == pytest.approx(_g(16), rel=1e-6)   # offsets -4, +4
        assert h[14, 0].item() == pytest.approx(_g(25), rel=1e-6)                    # offset -5
    else:
        assert h[14, cols[1]] == 0                                       # offset +4 (value g(16)) unwritten
    assert w[0, 0, 14, peak] == 10 and w[0, 0, 14, 27] == 1
    # the same on the y axis
    heat_y, _ = heatmap_targets(torch.tensor([[[56.0, 4.0 * c]]]), 28, 4.0)
    assert torch.equal(heat_y[0, 0], h.T)


def test_official_heatmap_axes_are_independent():
    # x centre 4 (9-wide box, columns 0..8, peak column 5), y centre 3 (rows 0..7, peak row 4)
    heat, _ = heatmap_targets(torch.tensor([[[16.0, 12.0]]]), 28, 4.0)
    nz = heat[0, 0].nonzero()
    assert (nz[:, 1].min().item(), nz[:, 1].max().item()) == (0, 8)
    assert (nz[:, 0].min().item(), nz[:, 0].max().item()) == (0, 7)
    assert len(nz) == 9 * 8 and heat[0, 0, 4, 5] == 1.0
    assert heat[0, 0, 0, 0].item() == pytest.approx(_g(16 + 25), rel=1e-6)   # row offset -4, column -5


def test_official_heatmap_negative_centre():
    # x = -10: -10 / 4 + 0.5 = -2 -> c = -2; ul = int(-6.5) = -6, br = int(3.5) = 3: columns 0..2 take
    # patch indices 6..8 (offsets +1..+3 from the virtual peak at column -1)
    heat, w = heatmap_targets(torch.tensor([[[-10.0, 56.0], [-14.0, 56.0], [-22.0, 56.0], [-26.0, 56.0]]]),
                              28, 4.0)
    h = heat[0, 0]
    nz = h.nonzero()
    assert (nz[:, 1].min().item(), nz[:, 1].max().item()) == (0, 2) and len(nz) == 3 * 10
    for col, d in zip(range(3), (1, 2, 3)):
        assert h[14, col].item() == pytest.approx(_g(d * d), rel=1e-6)
    assert h.max().item() == pytest.approx(_g(1), rel=1e-6) and h[14, 3] == 0
    # x = -14: c = int(-3) = -3, ul = -7, br = 2: columns 0, 1 (offsets +2, +3)
    assert heat[0, 1, 14, :3].tolist() == pytest.approx([_g(4), _g(9), 0.0], rel=1e-6)
    # x = -22: c = -5, ul = int(-9.5) = -9, br = int(0.5) = 0: nothing on the map
    # x = -26: c = int(-6) = -6, br = int(-0.5) = 0 (toward zero): nothing either
    assert heat[0, 2:].sum() == 0 and (w[0, 2:] == 1).all()


def test_official_heatmap_equals_the_reference_generator_on_every_pixel():
    size, stride = 28, 4.0
    gen = torch.Generator().manual_seed(0)
    pts = torch.rand(6, 200, 2, generator=gen) * 180 - 34                # centres -8 .. 36: all borders
    grid = torch.arange(-34.0, 146.0, 0.5)                               # every centre, on the 0.5 px grid
    pts[0, :, 0] = grid[torch.randint(len(grid), (200,), generator=gen)]
    pts[1, :, 1] = grid[torch.randint(len(grid), (200,), generator=gen)]
    pts[2, :, :] = grid[torch.randint(len(grid), (200, 2), generator=gen)]
    centres = set(torch.trunc(pts / stride + 0.5).flatten().int().tolist())
    assert set(range(-8, 36)) <= centres
    heat, w = heatmap_targets(pts, size, stride)
    ref = np.stack([[_official_heatmap(float(x), float(y), size, stride) for x, y in row] for row in pts.tolist()])
    assert heat.dtype == torch.float32
    assert torch.equal(heat, torch.from_numpy(ref))                      # bit for bit
    assert torch.equal(w, torch.from_numpy(np.stack([[_official_weights(r) for r in row] for row in ref])))


def test_official_heatmap_rounding_truncates_the_window_corner_toward_zero():
    pts = torch.tensor([[[x, 32.0] for x in HEAT_X]])                    # y: centre 8 on a 16 x 16 map
    heat, w = heatmap_targets(pts, 16, 4.0)
    # ul = int(c - 4.5) (toward zero), peak = ul + 5: c <= 4 peaks one pixel further in
    # c:        0  1  2  3  4  5  6  7 | int(-0.25) = 0 -> 1 | c = -1: ul int(-5.5) = -5 -> 0
    assert _peak_columns(heat) == [1, 2, 3, 4, 5, 5, 6, 7, 1, 0]
    assert (heat[0, :, 8].max(1).values == 1.0).all()                    # every peak is on row 8, value 1
    assert heat[0, 4, 8, 0] == pytest.approx(math.exp(-25 / (2 * 1.5 ** 2)))   # c = 4: the box is columns 0..8
    assert heat[0, 4, 8, 8] > 0 and heat[0, 4, 8, 9] == 0
    assert heat[0, 4, 3, 5] > 0 and heat[0, 4, 2, 5] == 0 and heat[0, 4, 13, 5] == 0   # rows 3..12 (c = 8)
    assert w[0, 4, 8, 5] == 10
    heat_y, _ = heatmap_targets(pts.flip(-1), 16, 4.0)                  # the same rule in y
    assert torch.equal(heat_y, heat.transpose(-1, -2))


def test_exact_heatmap_rounding_is_an_option_and_puts_the_peak_at_the_centre():
    pts = torch.tensor([[[x, 32.0] for x in HEAT_X[:8]]])
    heat, _ = heatmap_targets(pts, 16, 4.0, rounding="exact")
    assert _peak_columns(heat) == list(range(8))
    assert heat[0, 4, 8, 9] == 0 and heat[0, 4, 8, 8] > 0               # c = 4: box columns -1..8
    off, _ = heatmap_targets(torch.tensor([[[-3.0, 32.0]]]), 16, 4.0, rounding="exact")
    assert off.max() < 1                                                  # floor(-0.25) = -1: off the map
    with pytest.raises(ValueError, match="rounding"):
        heatmap_targets(pts, 16, 4.0, rounding="nearest")


def test_adaptive_wing_matches_hand_computation():
    alpha, omega, eps, theta = 2.1, 14.0, 1.0, 0.5
    pred = torch.tensor([0.3, 0.9, -0.5, 2.0])
    y = torch.tensor([0.0, 1.0, 0.2, 0.6])
    out = adaptive_wing_loss(pred, y)
    for p, t, o in zip(pred.tolist(), y.tolist(), out.tolist()):
        d = abs(p - t)
        if d < theta:
            ref = omega * math.log(1 + (d / eps) ** (alpha - t))
        else:
            A = omega / (1 + (theta / eps) ** (alpha - t)) * (alpha - t) * (theta / eps) ** (alpha - t - 1) / eps
            C = theta * A - omega * math.log(1 + (theta / eps) ** (alpha - t))
            ref = A * d - C
        assert o == pytest.approx(ref, rel=1e-5)
    # continuous at |d| = theta, zero at d = 0
    a = adaptive_wing_loss(torch.tensor([0.5 - 1e-6, 0.5 + 1e-6]), torch.zeros(2))
    assert a[0] == pytest.approx(float(a[1]), rel=1e-4) and adaptive_wing_loss(torch.ones(1), torch.ones(1)) == 0


def test_pair_score_equals_the_explicit_pair_mlp():
    torch.manual_seed(0)
    net = PairScore(16)
    x = torch.randn(5, 16)
    c = net(x)
    z = net.proj(x)
    for i in range(5):
        for j in range(5):
            pair = torch.cat([z[i, :8], z[j, 8:]])
            ref = net.fc3(F.relu(net.fc2(F.relu(net.fc1(pair))))).softmax(-1)[0]
            assert c[i, j].item() == pytest.approx(ref.item(), abs=1e-6)


def test_neighbours_exclude_self_and_label_distribution_rows_sum_to_one():
    torch.manual_seed(0)
    u, v = torch.randn(12, 16), torch.randn(12, 8)
    m = neighbour_mask(u, 3)
    assert not m.diagonal().any() and (m.sum(1) == 3).all()
    w = neighbour_weights(torch.rand(12, 12), m)
    torch.testing.assert_close(w.sum(1), torch.ones(12))
    assert (w[~m] < 1e-8).all()                                          # only neighbours carry weight
    probs = torch.softmax(torch.randn(12, 7, requires_grad=True), 1)
    t = LabelDistributionEstimator(16, 8, k=3)(u, v, probs)
    torch.testing.assert_close(t.sum(1), torch.ones(12))
    t.sum().backward()                                                   # not detached: reaches the logits


def test_contrastive_loss_matches_hand_computation():
    torch.manual_seed(1)
    q, k = F.normalize(torch.randn(4, 3), dim=1), F.normalize(torch.randn(4, 3), dim=1)
    queue = F.normalize(torch.randn(6, 3), dim=1)
    qlab = torch.tensor([0, 1, 1, 2, -7, 0])
    lab = torch.tensor([0, 1, 0, -3])            # sample 3: unconfident, unique label
    T = 0.1
    total = 0.0
    for i in range(4):
        negs = sum(math.exp(float(q[i] @ queue[m]) / T) for m in range(6) if qlab[m] != lab[i])
        pos = [j for j in range(4) if lab[j] == lab[i]]
        li = [-math.log(math.exp(float(q[i] @ k[j]) / T) / (math.exp(float(q[i] @ k[j]) / T) + negs)) for j in pos]
        total += sum(li) / len(li)
    assert el_contrastive_loss(q, k, queue, qlab, lab, T).item() == pytest.approx(total / 4, rel=1e-5)


def test_pseudo_labels_and_queue_wrap():
    t = torch.tensor([[0.8, 0.2], [0.6, 0.4], [0.1, 0.9]])
    idx = torch.tensor([0, 5, 9])
    assert pseudo_labels(t, idx, 0.7).tolist() == [0, -5, 1]
    assert pseudo_labels(t, idx, 0.7, offset=1).tolist() == [0, -6, 1]
    queue, labels, ptr = torch.zeros(5, 2), torch.full((5,), -99), torch.tensor(3)
    enqueue(queue, labels, ptr, torch.ones(4, 2), torch.tensor([1, 2, 3, 4]))
    assert labels.tolist() == [3, 4, -99, 1, 2] and int(ptr) == 2
