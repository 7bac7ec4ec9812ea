import torch

from ferlab.engine.config import TrainConfig
from ferlab.engine.optim import build_optimizer
from ferlab.methods import build_method
from ferlab.models import create_backbone


def make(**kw):
    torch.manual_seed(0)
    return build_method("rul", create_backbone("resnet10", num_classes=7), 7, input_size=32, **kw)


def batch(n=8):
    return {"image": torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8), "label": torch.randint(0, 7, (n,)),
            "index": torch.arange(n)}


def test_heads_follow_the_official_layout():
    m = make()
    bn2d, drop, _, lin, bn1d = m.mu_head
    assert not bn2d.affine and bn2d.eps == 2e-5 and drop.p == 0.4
    assert lin.in_features == 512 * 1 * 1 and lin.out_features == 64 and bn1d.affine
    assert m.fc.in_features == 64 and m.fc.out_features == 7


def test_eval_logits_do_not_depend_on_the_log_variance_head():
    m = make().eval()
    x = torch.randn(4, 3, 32, 32)
    before = m.predict(x)
    with torch.no_grad():
        for p in m.log_var_head.parameters():
            p.add_(torch.randn_like(p))
    torch.testing.assert_close(m.predict(x), before)


def test_log_variance_head_gets_gradient_only_through_mixing():
    m = make()
    out = m.training_step(batch())
    out["loss"].backward()
    assert m.log_var_head[3].weight.grad.abs().sum() > 0
    # the log-var head is not in the prediction path
    m.zero_grad()
    m.eval()
    m.predict(torch.randn(2, 3, 32, 32)).sum().backward()
    assert m.log_var_head[3].weight.grad is None


def test_classifier_param_group_has_ten_times_the_lr():
    m = make()
    cfg = TrainConfig(optimizer="adam", lr=2e-4, weight_decay=1e-4)
    opt = build_optimizer(m.param_groups(cfg.lr), cfg)
    fc_group = [g for g in opt.param_groups if any(p is m.fc.weight for p in g["params"])]
    assert len(fc_group) == 1 and abs(fc_group[0]["lr"] - 2e-3) < 1e-12
    other = [g for g in opt.param_groups if g is not fc_group[0]]
    assert all(abs(g["lr"] - 2e-4) < 1e-12 for g in other)
    n_params = sum(len(g["params"]) for g in opt.param_groups)
    assert n_params == len(list(m.parameters()))


def test_relabel_replaces_labels_beaten_by_the_margin():
    m = make(relabel=True, relabel_start_epoch=0, relabel_margin=0.2)

    class DS:
        labels = torch.zeros(8, dtype=torch.long).numpy()
    m.setup_train(DS())
    logits = torch.full((8, 7), -5.0)
    logits[:4, 3] = 5.0          # confident class 3, label 0 -> relabel
    logits[4:, 0] = 5.0          # agrees with label 0 -> keep
    m._relabel(torch.arange(8), logits, m.targets.clone())
    assert m.targets.tolist() == [3, 3, 3, 3, 0, 0, 0, 0]
    assert int(m.relabelled) == 4
    # the buffer is part of the state dict and resizes on load
    fresh = make(relabel=True)
    fresh.load_state_dict(m.state_dict())
    assert fresh.targets.tolist() == m.targets.tolist()
