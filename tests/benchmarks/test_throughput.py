"""benchmarks/throughput.py and optimizer_kernels.py measure the trainer's step of a real method."""
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_bench_counts_the_step_and_writes_a_table():
    throughput = load("throughput")
    r = throughput.bench("eac", "resnet10", 32, 8, steps=2, warmup=1, device=torch.device("cpu"), precision="fp32")
    assert r["optimizer"] == "adam (fused)"
    assert r["images_per_s"] == 8 / r["median_step_s"]
    # EAC's step is two forward/backward passes of the same network: its FLOPs are about twice the baseline's
    base = throughput.bench("baseline", "resnet10", 32, 8, steps=2, warmup=1, device=torch.device("cpu"),
                            precision="fp32")
    assert 1.8 < r["step_flops"] / base["step_flops"] < 2.2
    assert 0 < r["peak_rss_mib"] < 64 * 1024
    base["step_time_vs_baseline"], r["step_time_vs_baseline"] = None, 2.0
    for row in (base, r):
        row["peak_fraction"] = 0.5
    table = throughput.markdown_table({"results": [base, r]}).splitlines()
    assert len(table) == 4 and table[2].startswith("| baseline | 32 |") and "| 1.00 |" in table[2]
    assert table[3].startswith("| EAC | 32 |") and "| 2.00 |" in table[3] and "| 50 |" in table[3]


def test_optimizer_kernels_time_both_kernels_on_every_parameter():
    kernels = load("optimizer_kernels")
    r = kernels.compare("baseline", "resnet10", 32, 8, steps=2, warmup=1, device=torch.device("cpu"))
    from ferlab.models import create_backbone
    assert r["optimized_params"] == sum(p.numel() for p in create_backbone("resnet10", num_classes=7).parameters())
    for k in ("loop", "fused"):
        assert 0 < r[k]["median_optimizer_s"] < r[k]["median_step_s"]
    assert r["step_speedup"] == r["loop"]["median_step_s"] / r["fused"]["median_step_s"]


def test_bench_measures_another_backbone_with_its_weights_and_options():
    """--backbone dlib_resnet29 --weights dlib --backbone-arg out_stage=3: the step runs on the face
    weights with their normalisation, and the row and the file name say which network it was."""
    throughput = load("throughput")
    from ferlab.models import create_backbone
    method, _ = throughput.setup("dmue", "dlib_resnet29", 31, 8, torch.device("cpu"), False, "dlib", {"out_stage": 3})
    ref = create_backbone("dlib_resnet29", weights="dlib", out_stage=3, verbose=False)
    assert (method.mean, method.std) == (tuple(ref.pretrained_cfg["mean"]), tuple(ref.pretrained_cfg["std"]))
    assert len(method.backbone.stages) == 3
    torch.testing.assert_close(method.backbone.layer2[0].conv1.weight, ref.layer2[0].conv1.weight)  # the face weights
    r = throughput.bench("baseline", "dlib_resnet29", 31, 8, steps=1, warmup=0, device=torch.device("cpu"),
                         precision="fp32", weights="dlib", backbone_args={"out_stage": 3})
    assert (r["backbone"], r["weights"], r["backbone_args"], r["input_size"]) == ("dlib_resnet29", "dlib",
                                                                                  {"out_stage": 3}, 31)
    assert r["step_flops"] > 0 and r["images_per_s"] == 8 / r["median_step_s"]
    assert throughput.backbone_suffix("resnet18", {}) == ""
    assert throughput.backbone_suffix("dlib_resnet29", {"out_stage": 3, "norm": "batchnorm"}) \
        == "-dlib_resnet29-normbatchnorm-out_stage3"
    assert throughput.backbone_suffix("timm:convnext_tiny", {"drop_path_rate": 0.1}) \
        == "-timm-convnext_tiny-drop_path_rate0.1"


def test_main_refuses_a_bad_backbone_setup_in_one_line(tmp_path, capsys):
    throughput = load("throughput")
    for argv, says in [(["--backbone", "dlib_resnet29", "--sizes", "48"],
                        "below the minimum input of dlib_resnet29 (55 px)"),
                       (["--backbone", "dlib_resnet29", "--backbone-arg", "out_stage=3", "--sizes", "30"],
                        "(31 px)"),
                       (["--backbone", "dlib_resnet29", "--backbone-arg", "out_stage=7"], "out_stage must be 1..5"),
                       (["--backbone", "dlib_resnet29", "--backbone-arg", "out_stage"], "expects KEY=VALUE"),
                       (["--backbone", "resnet18", "--weights", "nope"], "no weights named 'nope'"),
                       (["--backbone", "nonet"], "--backbone nonet: unknown backbone 'nonet'"),
                       (["--backbone", "tv:resnet19"], "--backbone tv:resnet19: torchvision has no classification "
                                                       "model 'resnet19'")]:
        with pytest.raises(SystemExit) as e:
            throughput.main([*argv, "--out", str(tmp_path)])
        err = capsys.readouterr().err
        assert e.value.code == 2 and says in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert not list(tmp_path.iterdir())                 # refused before measuring anything
