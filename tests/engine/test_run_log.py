"""The epoch line a run prints: a small learning rate stays readable."""
from ferlab.engine.config import TrainConfig
from ferlab.engine.run_log import format_epoch_line, format_lr
from ferlab.engine.trainer import fit


def test_epoch_line_prints_a_small_learning_rate_in_scientific_notation():
    row = {"epoch": 3, "lr": 3e-5, "loss": 1.23456, "train_acc": 0.5, "train_fit": {"acc_intact": 0.9}}
    assert format_epoch_line(row) == "epoch 3 | lr 3.0e-05 | loss 1.2346 | train_acc 0.5000"


def test_epoch_line_keeps_four_decimals_from_1e_3_up():
    row = {"epoch": 1, "lr": 0.1, "loss": 2.0, "val_acc": 0.25}
    assert format_epoch_line(row) == "epoch 1 | lr 0.1000 | loss 2.0000 | val_acc 0.2500"
    assert format_lr(1e-3) == "0.0010"
    assert format_lr(9.99e-4) == "1.0e-03"
    assert format_lr(0.0) == "0.0000"          # the end of a schedule that decays to zero


def test_a_run_prints_its_epoch_line_with_the_readable_learning_rate(tmp_path, capsys):
    fit(TrainConfig(name="lr", out_dir=str(tmp_path), dataset_args={"n": 16, "image_size": 32},
                    eval_dataset_args={"n": 8}, backbone="resnet10", input_size=32, epochs=1, batch_size=8,
                    lr=3e-5, progress=False, val_split=None, test_split=None))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch 1 | ")]
    assert len(lines) == 1 and lines[0].startswith("epoch 1 | lr 3.0e-05 | loss "), lines
