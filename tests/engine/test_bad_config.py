"""The Python API's documented errors for bad configs, checkpoints and weights: ConfigError,
CheckpointError and WeightsError (all ferlab.errors.UserError), raised before any data is read."""
import pytest
import torch
import torchvision

from ferlab.engine import checkpoint as ckpt
from ferlab.engine.config import TrainConfig
from ferlab.engine.trainer import Trainer, evaluate_checkpoint, fit
from ferlab.errors import CheckpointError, ConfigError, UserError
from ferlab.models import WeightsError, create_backbone
from ferlab.models.weights import load_backbone_weights


@pytest.mark.parametrize("d,needles", [
    ({"epochs": 0}, ["epochs", ">= 1"]),
    ({"lr": "x"}, ["lr", "a number", "'x'"]),
    ({"batch_size": True}, ["batch_size", "integer", "True"]),
    ({"noise_rate": 2}, ["noise_rate", "[0, 1]"]),
    ({"epochz": 3}, ["unknown config key epochz (did you mean epochs?)"]),
    ({"method": "mixup"}, ["method", "'mixup'", "baseline"]),
    ({"backbone": "vgg"}, ["backbone", "'vgg'", "resnet18"]),
    ({"dataset": "imagenet"}, ["dataset", "'imagenet'", "ferplus"]),
    ({"method": "rul", "method_args": {"drop": 0.1}}, ["method_args.drop", "method rul has no option drop", "dropout"]),
    ({"dataset": "ferplus", "dataset_args": {"labelmode": "x"}}, ["dataset_args.labelmode", "label_mode"]),
    ({"device": "gpu:0"}, ["device", "'gpu:0'"]),
    ({"scheduler": "onecycle"}, ["scheduler", "'onecycle'"]),
    ({"milestones": [1, "x"]}, ["milestones"]),
    ({"noise": "from_file"}, ["noise", "noise_file"]),
])
def test_from_dict_raises_config_error_naming_the_key(d, needles):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(d)
    for needle in needles:
        assert needle in str(info.value), str(info.value)


def test_yaml_numbers_and_on_off_read_as_meant(tmp_path):
    """PyYAML reads 1e-3 as a string and on/off as booleans: both mean what the user wrote."""
    (tmp_path / "c.yaml").write_text("lr: 1e-3\nchannels_last: off\nepochs: 3\n")
    cfg = TrainConfig.from_yaml(tmp_path / "c.yaml")
    assert cfg.lr == 0.001 and cfg.channels_last == "off" and cfg.epochs == 3


def test_trainer_validates_a_config_built_in_python_before_reading_data(tmp_path):
    with pytest.raises(ConfigError, match="batch_size: must be >= 1, got 0"):
        Trainer(TrainConfig(out_dir=str(tmp_path), dataset="ferplus", data_root=str(tmp_path / "none"), batch_size=0))
    with pytest.raises(ConfigError, match="epochs: must be >= 1, got -2"):
        fit(TrainConfig(out_dir=str(tmp_path), epochs=-2))
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            Trainer(TrainConfig(out_dir=str(tmp_path), device="cuda"))


def test_resume_without_a_checkpoint_says_where_it_looked(tmp_path):
    (tmp_path / "runs" / "other" / "checkpoints").mkdir(parents=True)
    (tmp_path / "runs" / "other" / "checkpoints" / "last.pt").write_bytes(b"x")
    cfg = TrainConfig(out_dir=str(tmp_path / "runs"), name="typo", dataset="ferplus", data_root=str(tmp_path / "no"))
    with pytest.raises(CheckpointError) as info:
        fit(cfg, resume=True)
    msg = str(info.value)
    assert f"no checkpoint at {tmp_path / 'runs' / 'typo' / 'checkpoints' / 'last.pt'}" in msg
    assert "no such run directory" in msg and "runs with a checkpoint in" in msg and "other" in msg


def test_checkpoint_loading_names_the_file(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save([1, 2], tmp_path / "list.pt")
    torch.save({"model": {}}, tmp_path / "nocfg.pt")
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "w.pt")
    cases = {"missing.pt": "checkpoint not found", "empty.pt": "empty file", "list.pt": "holding a list",
             "nocfg.pt": "not a ferlab run checkpoint", "w.pt": "a weights file"}
    for name, needle in cases.items():
        with pytest.raises(CheckpointError, match=needle) as info:
            ckpt.load_run_state(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)
    with pytest.raises(CheckpointError, match="is a directory"):
        evaluate_checkpoint(tmp_path)
    assert issubclass(CheckpointError, UserError) and issubclass(WeightsError, UserError)


def test_unexpected_file_tensors_count_against_the_weight_match(tmp_path):
    """resnet18 weights in a resnet10: every resnet10 tensor is found with its shape, but the second
    block of each stage has no place; the match is loaded / (loaded + unexpected)."""
    sd = torchvision.models.resnet18().state_dict()
    torch.save(sd, tmp_path / "r18.pth")
    net = create_backbone("resnet10", num_classes=7)
    own = {k for k in net.state_dict() if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    extra = {k for k in sd if k not in net.state_dict() and not k.startswith("fc.")
             and not k.endswith("num_batches_tracked")}
    rep = load_backbone_weights(net, tmp_path / "r18.pth", min_match=0.0, verbose=False)
    assert set(rep.unexpected) == extra and len(extra) == 40 and not rep.missing
    assert rep.match == len(own) / (len(own) + len(extra)) == 0.6
    with pytest.raises(WeightsError, match=r"r18.pth: only 60.0% .* unexpected \(40\): layer1.1.conv1.weight"):
        create_backbone("resnet10", weights=tmp_path / "r18.pth")
