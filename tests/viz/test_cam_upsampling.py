"""CAM upsampling: constant maps stay constant, real maps interpolate as computed by hand, tiny maps warn."""
import warnings

import numpy as np
import pytest
import torch

from ferlab.viz.cam import overlay, resize_maps


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (3, 3), (7, 7)])
@pytest.mark.parametrize("value", [0.37, -5.0, 1e6])
def test_a_constant_map_stays_constant(shape, value):
    maps = torch.full((2, *shape), value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = resize_maps(maps, (48, 40))
    assert out.shape == (2, 48, 40)
    assert torch.equal(out, torch.zeros_like(out))      # all zeros, as pytorch-grad-cam scales a flat map


def test_a_constant_overlay_is_one_colour():
    img = np.random.default_rng(0).integers(0, 256, (50, 50, 3), dtype=np.uint8)
    with pytest.warns(UserWarning, match="1x1 cells"):
        blended = overlay(img, np.full((1, 1), 3.3), alpha=1.0)
    assert (blended == blended[0, 0]).all()


def test_bilinear_upsampling_by_hand():
    """2x2 [[0, 1], [0, 1]] to 4x4 with align_corners=False: output column centres sit at source
    x = (j + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25, clamped to [0, 1] -> 0, 0.25, 0.75, 1."""
    with pytest.warns(UserWarning, match="2x2 cells upsampled to 4x4: too coarse"):
        out = resize_maps(torch.tensor([[[0.0, 1.0], [0.0, 1.0]]]), (4, 4))
    assert torch.allclose(out[0], torch.tensor([0.0, 0.25, 0.75, 1.0]).expand(4, 4))


def test_maps_are_min_max_scaled_and_larger_maps_do_not_warn():
    maps = torch.randn(3, 7, 7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = resize_maps(maps, (28, 28))
    assert torch.allclose(out.flatten(1).min(1).values, torch.zeros(3))
    assert torch.allclose(out.flatten(1).max(1).values, torch.ones(3))
