import pytest
import torch

from ferlab.data import transforms as T


def test_flip_with_p1_is_a_mirror():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    assert torch.equal(T.RandomHorizontalFlip(1.0)(x), x.flip(-1))
    assert torch.equal(T.RandomHorizontalFlip(0.0)(x), x)


def test_normalize_matches_hand_computation():
    x = torch.full((1, 3, 2, 2), 255.0)
    y = T.Normalize((0.5, 0.5, 0.5), (0.25, 0.5, 1.0))(x)
    assert torch.allclose(y[0, :, 0, 0], torch.tensor([2.0, 1.0, 0.5]))


def test_random_erasing_box_area_in_scale_and_fill_value():
    torch.manual_seed(0)
    x = torch.ones(500, 3, 50, 50)
    y = T.RandomErasing(p=1.0, scale=(0.02, 0.25), value=0.0)(x)
    erased = (y[:, 0] == 0).float().mean((1, 2))
    assert (erased > 0).float().mean() > 0.95
    hit = erased[erased > 0]
    assert hit.min() >= 0.015 and hit.max() <= 0.26
    assert torch.equal(y[:, 0] == 0, y[:, 2] == 0)  # same box in every channel


def test_random_erasing_probability():
    torch.manual_seed(1)
    y = T.RandomErasing(p=0.5)(torch.ones(2000, 1, 32, 32))
    share = ((y == 0).flatten(1).any(1)).float().mean()
    assert abs(share - 0.5) < 0.05


def test_random_crop_returns_windows_of_the_padded_image():
    torch.manual_seed(0)
    x = torch.arange(64, dtype=torch.float32).view(1, 1, 8, 8).repeat(16, 3, 1, 1)
    y = T.RandomCrop(6)(x)
    assert y.shape == (16, 3, 6, 6)
    # rows/cols stay consecutive: a window of the original
    assert torch.all(y[:, :, :, 1:] - y[:, :, :, :-1] == 1)
    assert torch.all(y[:, :, 1:, :] - y[:, :, :-1, :] == 8)


def test_gaussian_noise_variance_and_clipping():
    torch.manual_seed(0)
    x = torch.full((200, 3, 16, 16), 128.0)
    y = T.GaussianNoise(var=30.0, p=1.0)(x)
    assert (y - x).var().item() == pytest.approx(30.0, rel=0.05)
    assert T.GaussianNoise(30.0, 1.0)(torch.zeros(4, 3, 8, 8)).min() >= 0


def test_same_seed_same_augmentation():
    tf = T.train_transform(32, crop="resized", erasing=0.5, gaussian_noise=0.5, jitter=0.2)
    x = torch.rand(8, 3, 48, 48) * 255
    torch.manual_seed(3)
    a = tf(x)
    torch.manual_seed(3)
    b = tf(x)
    assert a.shape == (8, 3, 32, 32) and torch.equal(a, b)
