"""Standalone inference models round-trip through one weights-only file."""
import pytest
import torch

from ferlab.methods import build_method
from ferlab.models import create_backbone
from ferlab.models.export import load_inference_model, save_inference_model


@pytest.mark.parametrize("name", ["baseline", "eac", "dmue"])
def test_export_save_load_gives_predict_logits(tmp_path, name):
    torch.manual_seed(0)
    m = build_method(name, create_backbone("resnet10", num_classes=7), 7, input_size=32)
    if name == "dmue":
        m.training_step({"image": torch.randint(0, 256, (14, 3, 32, 32), dtype=torch.uint8),
                         "label": torch.arange(14) % 7, "index": torch.arange(14)})
    m.eval()
    save_inference_model(m.export_inference_model(), tmp_path / "m.pt", backbone="resnet10", method=name)
    net, meta = load_inference_model(tmp_path / "m.pt")
    assert meta["method"] == name and meta["head"] == ("bn_linear" if name == "dmue" else "linear")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x), m.predict(x), rtol=1e-5, atol=1e-6)


def test_methods_without_a_plain_head_refuse_and_bad_files_are_named(tmp_path):
    m = build_method("rul", create_backbone("resnet10", num_classes=7), 7, input_size=32)
    with pytest.raises(NotImplementedError, match="predict"):
        m.export_inference_model()
    torch.save({"weights": 1}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="x.pt: not a ferlab inference model"):
        load_inference_model(tmp_path / "x.pt")


def test_export_round_trip_keeps_backbone_args(tmp_path):
    torch.manual_seed(0)
    args = {"out_stage": 3, "norm": "batchnorm"}
    m = build_method("baseline", create_backbone("dlib_resnet29", num_classes=7, **args), 7, input_size=32)
    m.train()
    m.training_step({"image": torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8), "label": torch.arange(8) % 7,
                     "index": torch.arange(8)})                            # moves the BN running statistics
    m.eval()
    save_inference_model(m.export_inference_model(), tmp_path / "m.pt", method="baseline")
    net, meta = load_inference_model(tmp_path / "m.pt")
    assert meta["backbone"] == "dlib_resnet29" and meta["backbone_args"] == args
    assert (net.out_stage, net.norm, len(net.stages)) == (3, "batchnorm", 3)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x), m.predict(x), rtol=1e-5, atol=1e-6)


class _Payload:
    """Unpickling it would run a shell command that creates a file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def test_an_unsafe_pickle_is_refused_in_one_line_and_nothing_runs(tmp_path, capsys):
    from ferlab.cli import main
    from ferlab.errors import CheckpointError
    from ferlab.predictor import Predictor
    marker = tmp_path / "executed"
    evil = tmp_path / "model.pt"
    torch.save({"format": "ferlab-inference-v1", "state_dict": {"fc.weight": _Payload(marker)}}, evil)
    with pytest.raises(CheckpointError) as info:
        load_inference_model(evil)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{evil}: not a ferlab inference model, and it was not loaded: the safe loader")
    assert "it asks to call posix.system" in msg and "never executes code" in msg
    with pytest.raises(CheckpointError, match="not a ferlab training checkpoint or inference model, and it was not "
                                              "loaded"):
        Predictor.load(evil)
    (tmp_path / "face.png").write_bytes(b"")
    assert main(["predict", str(evil), str(tmp_path / "face.png"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ferlab predict: error: {evil}: not a ferlab training checkpoint")
    assert not marker.exists()


def test_other_files_are_refused_by_what_they_are(tmp_path):
    from ferlab.errors import CheckpointError
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save({"model": {}, "config": {}}, tmp_path / "run.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    torch.save({"format": "ferlab-inference-v1", "backbone": "resnet10", "num_classes": 7, "head": "linear",
                "state_dict": {"fc.weight": torch.zeros(3, 3)}}, tmp_path / "wrong.pt")
    for name, match in [("missing.pt", "no such inference model file"), ("empty.pt", "empty file"),
                        ("run.pt", "a ferlab training checkpoint"), ("list.pt", "a torch file holding a list"),
                        ("wrong.pt", "its weights do not fit a resnet10 with 7 classes")]:
        with pytest.raises(CheckpointError, match=match):
            load_inference_model(tmp_path / name)
