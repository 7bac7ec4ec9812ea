"""Every supported checkpoint format loads 100% of backbone keys; unsafe pickles are refused."""
import os
import pickle

import pytest
import torch
import torchvision

from ferlab.models import WeightsError, create_backbone


def _values_equal(model, sd, prefix=""):
    own = model.state_dict()
    return all(torch.equal(own[k], sd[prefix + k].float() if sd[prefix + k].is_floating_point() else sd[prefix + k])
               for k in own if not k.startswith("fc.") and not k.endswith("num_batches_tracked"))


def test_flat_torchvision_state_dict(tmp_path):
    sd = torchvision.models.resnet18(num_classes=1000).state_dict()
    torch.save(sd, tmp_path / "tv.pth")
    m = create_backbone("resnet18", weights=tmp_path / "tv.pth", num_classes=7)
    assert m.load_report.match == 1.0 and m.load_report.format == "torchvision"
    assert not m.load_report.unexpected
    assert _values_equal(m, sd)


def test_msceleb_state_dict_with_module_prefix(tmp_path):
    src = torchvision.models.resnet18(num_classes=1000).state_dict()
    torch.save({"epoch": 30, "state_dict": {"module." + k: v for k, v in src.items()}},
               tmp_path / "resnet18_msceleb.pth")
    m = create_backbone("resnet18", weights=tmp_path / "resnet18_msceleb.pth", num_classes=7)
    assert m.load_report.match == 1.0 and m.load_report.format == "msceleb"
    assert _values_equal(m, src)


def test_vggface2_pickle_of_numpy_arrays(tmp_path):
    ref = create_backbone("resnet50_caffe", num_classes=8631)
    arrays = {k: v.numpy() for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}
    with open(tmp_path / "resnet50_ft_weight.pkl", "wb") as f:
        pickle.dump(arrays, f, protocol=2)
    m = create_backbone("resnet50_caffe", weights=tmp_path / "resnet50_ft_weight.pkl", num_classes=7)
    assert m.load_report.match == 1.0 and m.load_report.format == "vggface2_pkl"
    assert _values_equal(m, {k: torch.from_numpy(v) for k, v in arrays.items()})


def test_dmue_feat_net_checkpoint(tmp_path):
    ref = create_backbone("resnet18_dmue")
    sd = {"feat_net." + k: v for k, v in ref.state_dict().items()}
    sd["loss_layer.weight"] = torch.randn(512, 100)
    torch.save(sd, tmp_path / "mv_epoch_17.pt")
    m = create_backbone("resnet18_dmue", weights=tmp_path / "mv_epoch_17.pt", num_classes=7)
    assert m.load_report.match == 1.0 and m.load_report.format == "dmue"
    assert _values_equal(m, sd, "feat_net.")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_that_calls_a_function_is_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump({"conv1.weight": _Evil()}, f)
    with pytest.raises(WeightsError, match=r"refusing to unpickle .*system"):
        create_backbone("resnet18", weights=path)


def test_torch_file_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"x": _Evil()}}, path)
    with pytest.raises(WeightsError, match="weights_only"):
        create_backbone("resnet18", weights=path)


def test_wrong_backbone_is_refused_with_key_report(tmp_path):
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    with pytest.raises(WeightsError, match=r"only .*% of the backbone"):
        create_backbone("resnet50", weights=tmp_path / "r18.pth")


def test_missing_weight_file(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        create_backbone("resnet18", weights=tmp_path / "nope.pth")
