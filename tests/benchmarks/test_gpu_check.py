"""benchmarks/gpu_check.py: the GPU check's --dry mode runs every method and variant through the same
functions on the CPU (bf16 autocast + channels_last, float32 channels_last, cache gpu, torchrun with gloo),
writes its JSON and exits 0; a failed check exits 1 with one line; on CUDA the full mode runs."""
import contextlib
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def load():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_variant_passed(row: dict, variant: str) -> None:
    assert row["config"] == load().VARIANTS[variant]
    assert row["checks"] and all(row["checks"].values()), (variant, row["checks"], row.get("error"))
    losses = row["losses"]
    assert losses and all(math.isfinite(v) for v in losses)
    q = row["detail"]["falling"]["steps_per_quarter"]
    assert sum(losses[-q:]) / q < sum(losses[:q]) / q
    first = row["detail"]["first_step"]
    assert first["loss"] == losses[0] and first["rel_diff"] <= first["rtol"]
    assert row["images_per_s"] > 0 and row["peak_memory_mib"] > 0
    assert row["resolved"]["amp"] == row["config"]["amp"] and row["resolved"]["channels_last"] == "on"


@pytest.mark.slow
def test_dry_check_runs_every_variant_and_writes_the_json(tmp_path, capsys):
    """Two methods, every variant: bf16 with the resume check, fp16 skipped on the CPU, float32
    channels_last, cache gpu (the RAM cache on the CPU), torchrun --nproc_per_node=1."""
    gpu_check = load()
    out = tmp_path / "check.json"
    from ferlab.data import registry
    synthetic = registry.DATASETS["synthetic"]
    rc = gpu_check.main(["--dry", "--methods", "baseline", "rul", "--out", str(out)])
    # the check shares its faces through the registry while it runs, and leaves it as it found it
    assert registry.DATASETS["synthetic"] is synthetic
    printed = capsys.readouterr().out
    r = json.loads(out.read_text())
    assert rc == 0, printed
    assert r["passed"] is True and r["failures"] == []
    assert "gpu check passed" in printed and "FAIL" not in printed
    assert r["hardware"]["device"] == "cpu" and r["hardware"]["cpu_model"]
    assert r["hardware"]["cpu_model"] == r["machine"]["cpu_model"]
    assert {"gpu", "cuda", "cudnn", "tf32"} <= set(r["hardware"])
    assert r["versions"]["torch"] == torch.__version__
    assert r["command"].startswith("python benchmarks/gpu_check.py --dry")
    assert r["settings"]["backbone"] == "resnet10" and r["settings"]["dry"] is True
    assert r["tolerances"]["first_step_rtol"] == {"bf16": 5e-2, "fp16": 5e-2, "off": 1e-4}
    assert set(r["methods"]) == {"baseline", "rul"}
    for method, entry in r["methods"].items():
        assert f"{method}: " in printed                              # a time per method
        assert entry["passed"] is True and entry["time_s"] > 0
        assert math.isfinite(entry["cpu_float32_first_step_loss"])
        variants = entry["variants"]
        assert set(variants) == set(gpu_check.VARIANTS)
        assert variants["fp16"] == {"skipped": "fp16 autocast is CUDA-only"}
        for name in ("bf16", "fp32_channels_last", "cache_gpu", "torchrun"):
            assert_variant_passed(variants[name], name)
            assert len(variants[name]["losses"]) == r["settings"]["steps"]
        resume = variants["bf16"]["resume"]
        assert resume["bit_exact"] is True and variants["bf16"]["checks"]["resume_bit_exact"] is True
        assert 0 < resume["stopped_at_step"] < r["settings"]["steps"] and resume["losses_after_resume_equal"]
        assert variants["cache_gpu"]["note"].startswith("cache gpu on the CPU is the RAM cache")
        assert variants["cache_gpu"]["losses"] == variants["bf16"]["losses"]
        run = variants["torchrun"]
        assert run["torchrun_env"]["WORLD_SIZE"] == "1" and run["torchrun_env"]["RANK"] == "0"
        assert run["losses"] == variants["bf16"]["losses"]          # the same run, launched by torchrun
        assert variants["fp32_channels_last"]["detail"]["first_step"]["rtol"] == 1e-4
    assert "torch.distributed.run --nproc_per_node=1" in r["torchrun"]["command"]


@pytest.mark.parametrize("method", ["baseline", "eac", "rul", "dmue", "lanet", "ldlva"])
@pytest.mark.slow
def test_dry_check_of_each_method(tmp_path, method):
    """Every method in the single-process variants: bf16 autocast + channels_last (with the resume
    check), float32 channels_last and cache gpu."""
    gpu_check = load()
    out = tmp_path / "check.json"
    rc = gpu_check.main(["--dry", "--methods", method, "--variants", "bf16", "fp32_channels_last", "cache_gpu",
                         "--out", str(out)])
    r = json.loads(out.read_text())
    assert rc == 0, r["failures"]
    variants = r["methods"][method]["variants"]
    for name in ("bf16", "fp32_channels_last", "cache_gpu"):
        assert_variant_passed(variants[name], name)
    assert variants["bf16"]["resume"]["bit_exact"] is True


@pytest.mark.slow
def test_a_failed_check_exits_1_with_one_line(tmp_path, capsys):
    """A first-step tolerance of 0: the bf16 step differs from the float32 one, so that check fails
    (and only that one), with one line naming the method, variant, check and numbers."""
    gpu_check = load()
    out = tmp_path / "check.json"
    rc = gpu_check.main(["--dry", "--methods", "baseline", "--variants", "bf16", "--first-step-rtol", "0",
                         "--out", str(out)])
    assert rc == 1
    fails = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1, fails
    assert fails[0].startswith("FAIL baseline bf16: first_step: first-step loss ") and "> rtol 0" in fails[0]
    r = json.loads(out.read_text())
    assert r["passed"] is False and r["methods"]["baseline"]["passed"] is False
    assert len(r["failures"]) == 1 and r["tolerances"]["first_step_rtol"]["bf16"] == 0
    checks = r["methods"]["baseline"]["variants"]["bf16"]["checks"]
    assert checks["first_step"] is False and checks["resume_bit_exact"] and checks["falling"]


def test_the_first_step_draws_the_same_numbers_whatever_the_global_rng():
    """Under CpuRandom a method's training step (augmentation, RUL's mixup permutation, dropout) draws from
    its own seeded generator: the loss does not depend on the global RNG state, so the device step and the
    CPU step see the same draws."""
    gpu_check = load()
    from ferlab.data.synthetic import synthetic
    from ferlab.methods import build_method
    from ferlab.models import create_backbone
    torch.manual_seed(0)
    method = build_method("rul", create_backbone("resnet10", num_classes=7), 7, input_size=32).train()
    ds = synthetic("train", n=16, image_size=32)
    batch = ds.get_batch(list(range(16)))

    def loss(global_seed: int, replay: bool) -> float:
        torch.manual_seed(global_seed)
        mode = gpu_check.CpuRandom(7)
        with torch.no_grad(), (mode if replay else contextlib.nullcontext()):
            out = float(method(batch)["loss"])
        assert not mode.unreplayed
        return out

    assert loss(1, True) == loss(2, True)
    assert loss(1, False) != loss(2, False)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_full_check_on_cuda(tmp_path):
    """The full mode (bf16, fp16 + GradScaler, float32 channels_last, cache on the GPU, torchrun) with fewer,
    smaller steps: every method and variant passes on CUDA."""
    gpu_check = load()
    out = tmp_path / "check.json"
    rc = gpu_check.main(["--device", "cuda", "--size", "64", "--steps", "24", "--batch-size", "32", "--repeat", "4",
                         "--out", str(out)])
    r = json.loads(out.read_text())
    assert rc == 0, r["failures"]
    assert r["hardware"]["gpu"]["name"] and r["hardware"]["cuda"]
    assert set(r["methods"]) == set(gpu_check.METHODS)
    for entry in r["methods"].values():
        assert set(entry["variants"]) == set(gpu_check.VARIANTS)
        assert "skipped" not in entry["variants"]["fp16"]
        assert entry["variants"]["fp16"]["resolved"]["grad_scaler"] is True
        assert entry["variants"]["cache_gpu"]["resolved"]["cache_device"].startswith("cuda")
        assert entry["variants"]["bf16"]["resume"]["bit_exact"] is True
        assert entry["variants"]["bf16"]["memory"] == "torch.cuda.max_memory_allocated"
