"""Fixtures of the engine tests."""
import pytest

from ferlab.engine.config import TrainConfig


@pytest.fixture
def tiny_cfg():
    """``tiny_cfg(tmp_path, **overrides) -> TrainConfig``: 96 synthetic 32 px faces, a ResNet-10 of widths 8-64
    (checkpoints of ~1 MB), 2 epochs, 30% noise."""
    def make(tmp_path, **kw):
        base = dict(out_dir=str(tmp_path), dataset_args={"n": 96, "image_size": 32}, backbone="resnet10",
                    backbone_args={"widths": [8, 16, 32, 64]},
                    input_size=32, epochs=2, batch_size=16, lr=1e-3, noise="symmetric", noise_rate=0.3,
                    progress=False, augment={"flip": 0.5, "erasing": 0.5})
        base.update(kw)
        return TrainConfig(**base)
    return make
