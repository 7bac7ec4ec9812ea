"""Reusing runs: a finished run of the same config is returned untouched, a changed setting trains
again, an interrupted run of the same config continues from its checkpoint."""
import json

import pytest

import ferlab
from ferlab.engine.config import TrainConfig
from ferlab.engine.run_reuse import as_trained, config_differences, run_state

TINY = dict(method="baseline", dataset="synthetic", dataset_args={"n": 48, "image_size": 32}, backbone="resnet10",
            input_size=32, epochs=2, batch_size=16, lr=1e-3, noise="symmetric", noise_rate=0.3, progress=False,
            device="cpu", limit_eval=16, val_split=None)


def tiny(tmp_path, **change) -> TrainConfig:
    return TrainConfig(out_dir=str(tmp_path), **{**TINY, "name": "r", **change})


def test_as_trained_is_what_the_trainer_writes(tmp_path):
    run = ferlab.fit(tiny(tmp_path))
    written = json.loads(json.dumps(TrainConfig.from_yaml(run.path / "config.yaml").to_dict()))
    assert as_trained(tiny(tmp_path)) == written
    assert written["amp"] in ("bf16", "off") and written["optimizer"] is not None      # resolved, not "auto"/None


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("reuse")
    return out, ferlab.fit(tiny(out))


def test_a_finished_run_of_the_same_config_is_returned_without_training(finished, capsys):
    out, run = finished
    stamp = run.checkpoint.stat().st_mtime_ns
    # settings that do not change the network: progress, device "auto" on a CPU-only torch or "cpu"
    again = ferlab.fit(tiny(out, progress=True, log_every=3), reuse=True)
    assert again.path == run.path and again.history == run.history and again.summary == run.summary
    assert run.checkpoint.stat().st_mtime_ns == stamp
    assert "reused" in capsys.readouterr().out
    assert run_state(tiny(out)) == "finished"


def test_a_changed_setting_is_another_run(finished):
    out, _ = finished
    assert config_differences(tiny(out), out / "r") == []
    assert config_differences(tiny(out, lr=3e-4), out / "r") == ["lr: 0.001 -> 0.0003"]
    assert run_state(tiny(out, noise_rate=0.4)) == "other"
    assert run_state(tiny(out, name="elsewhere")) == "none"
    assert config_differences(tiny(out), out / "nothing") is None


def test_reuse_trains_a_changed_config_again(tmp_path):
    ferlab.fit(tiny(tmp_path))
    run = ferlab.fit(tiny(tmp_path, epochs=3), reuse=True)
    assert [h["epoch"] for h in run.history] == [1, 2, 3] and run.config.epochs == 3


def test_reuse_continues_an_interrupted_run(tmp_path):
    """A run stopped by SIGUSR1 after its first epoch is continued, not restarted: its first epoch's row
    stays as it was, and it ends where the uninterrupted run ends."""
    import os
    import signal

    from ferlab.engine.preemption import TrainingStopped
    from ferlab.engine.trainer import Trainer

    trainer = Trainer(tiny(tmp_path, name="cut"))
    train_epoch = trainer.train_epoch

    def stop_after_first(epoch):
        row = train_epoch(epoch)
        os.kill(os.getpid(), signal.SIGUSR1)        # noted; the trainer stops after this epoch's checkpoint
        return row
    trainer.train_epoch = stop_after_first
    with pytest.raises(TrainingStopped):
        trainer.fit()
    first = ferlab.load_run(tmp_path / "cut").history
    assert len(first) == 1 and run_state(tiny(tmp_path, name="cut")) == "partial"
    run = ferlab.fit(tiny(tmp_path, name="cut"), reuse=True)
    # the row of epoch 1 with its own time_s: not trained again
    assert run.finished and run.history[:1] == first and len(run.history) == 2
    full = ferlab.fit(tiny(tmp_path, name="full"))
    assert [h["loss"] for h in run.history] == [h["loss"] for h in full.history]
