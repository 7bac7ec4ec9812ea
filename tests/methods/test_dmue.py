"""DMUE: branch routing, ramps, optimizer groups, piecewise schedule, export, checkpoint format."""
import copy

import pytest
import torch

from ferlab.engine.config import TrainConfig
from ferlab.engine.optim import build_optimizer, build_scheduler
from ferlab.methods import build_method
from ferlab.methods.dmue import ramp_down, ramp_up
from ferlab.models import ResNet, create_backbone

C = 5


def make(**kw):
    torch.manual_seed(0)
    return build_method("dmue", create_backbone("resnet10"), C, input_size=32, **kw)


def batch(n=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % C
    return {"image": torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8), "label": y,
            "index": torch.arange(n)}


def test_ramps_match_the_spec_at_0_a_and_2a():
    a = 6
    assert ramp_up(0, a) == pytest.approx(0.006738, rel=1e-3)
    assert ramp_up(a, a) == 1.0 and ramp_up(2 * a, a) == 1.0
    assert ramp_down(0, a) == 1.0 and ramp_down(a, a) == 1.0
    assert ramp_down(2 * a, a) == pytest.approx(0.778801, rel=1e-5)
    assert ramp_down(36, 6) == pytest.approx(0.4995, abs=1e-3)


def test_branch_c_trains_only_on_other_classes_and_mines_class_c_without_gradient():
    m = make().train()
    b = batch()
    seen = {}
    trunk_out = {}
    m.backbone.layer3.register_forward_hook(lambda mod, i, o: trunk_out.setdefault("t", o.detach()))
    for c, branch in enumerate(m.aux_branches):
        branch.register_forward_pre_hook(lambda mod, inp, c=c: seen.setdefault(c, []).append(
            (torch.is_grad_enabled(), inp[0].detach())))
    m.training_step(b)
    t, y = trunk_out["t"], b["label"]
    for c in range(C):
        calls = seen[c]
        trained = [x for grad, x in calls if grad]
        mined = [x for grad, x in calls if not grad]
        assert len(trained) == 1 and torch.equal(trained[0], t[y != c])     # never a sample of class c
        assert len(mined) == 1 and torch.equal(mined[0], t[y == c])         # latent pass: no gradient


def _neck_statistics(inputs, mean, var, momentum=0.1):
    """BatchNorm1d's running-statistics update applied to ``inputs`` in turn (unbiased batch variance)."""
    for z in inputs:
        mean = (1 - momentum) * mean + momentum * z.mean(0)
        var = (1 - momentum) * var + momentum * z.var(0, unbiased=True)
    return mean, var


def test_shared_neck_statistics_follow_the_official_call_order():
    # every auxiliary branch (with dropout, in class order), then the target (with dropout), then every
    # latent pass (no dropout); the dropout masks are drawn in that order too
    m = make(augment={"flip": 0.0}).train()          # no random augmentation: the dropouts are the only draws
    ref = copy.deepcopy(m)
    b = batch()
    y = b["label"]
    torch.manual_seed(7)
    m.training_step(b)
    with torch.no_grad():
        pool = ref.backbone.forward_head
        t = ref.trunk(ref.train_transform(b["image"]))                      # train-mode BN: batch statistics
        aux = [pool(ref.aux_branches[c](t[y != c]), pre_logits=True) for c in range(C)]
        target = pool(ref.backbone.layer4(t), pre_logits=True)
        latent = [pool(ref.aux_branches[c](t[y == c]), pre_logits=True) for c in range(C)]
        torch.manual_seed(7)
        dropped = [torch.nn.functional.dropout(a, 0.5) for a in aux] + [torch.nn.functional.dropout(target, 0.5)]
        neck = ref.necks[0]
        mean, var = _neck_statistics(dropped + latent, neck.running_mean, neck.running_var)
        torch.testing.assert_close(m.necks[0].running_mean, mean)
        torch.testing.assert_close(m.necks[0].running_var, var)
        # the order matters: target first, then auxiliary and latent interleaved per class, differs
        torch.manual_seed(7)
        target_first = [torch.nn.functional.dropout(target, 0.5)]
        for c in range(C):
            target_first += [torch.nn.functional.dropout(aux[c], 0.5), latent[c]]
        other, _ = _neck_statistics(target_first, neck.running_mean, neck.running_var)
        assert (other - mean).abs().max() > 1e-3


def test_loss_is_the_ramped_sum_of_its_terms():
    m = make()
    for epoch in (0, 3, 9):
        m.on_epoch_start(epoch)
        torch.manual_seed(1)
        out = m.training_step(batch())
        up, down = ramp_up(epoch, 6), ramp_down(epoch, 6)
        expect = up * (out["wce"] + 0.5 * out["soft"] + 1000 * out["sp"]) + down * out["aux_ce"]
        assert out["loss"].item() == pytest.approx(expect.item(), rel=1e-5)


@pytest.mark.parametrize("trained", [True, False])
def test_uncertainty_mlp_is_trained_only_when_asked(trained):
    m = make(train_uncertainty_mlp=trained, train_neck_weight=trained)
    groups = m.param_groups(1e-4)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    mlp = {id(p) for p in m.confidence_head.parameters()}
    assert bool(mlp & set(ids)) == trained
    assert (id(m.necks[0].weight) in ids) == trained and id(m.necks[0].bias) not in ids   # bias frozen at 0
    assert groups[1]["lr"] == pytest.approx(1e-3)
    before = copy.deepcopy(m.confidence_head.state_dict())
    opt = torch.optim.Adam(groups)
    m.on_epoch_start(6)        # ramp_up = 1: the weighted CE reaches the MLP
    m.training_step(batch())["loss"].backward()
    opt.step()
    changed = any(not torch.equal(before[k], v) for k, v in m.confidence_head.state_dict().items())
    assert changed == trained


def test_piecewise_schedule_follows_the_official_tables():
    m = make()
    cfg = TrainConfig(optimizer="adam", lr=1e-4, weight_decay=1e-4, scheduler="piecewise")
    opt = build_optimizer(m.param_groups(cfg.lr), cfg)
    sched = build_scheduler(opt, cfg)
    base, cls = [], []
    for _ in range(36):
        base.append(opt.param_groups[0]["lr"])
        cls.append(opt.param_groups[1]["lr"])
        opt.step()
        sched.step()
    expect_base = [1e-4] * 6 + [5e-5] * 6 + [1e-5] * 10 + [5e-5] * 3 + [1e-5] * 11
    expect_cls = [1e-3] * 4 + [5e-4] * 4 + [1e-4] * 6 + [1e-5] * 8 + [5e-5] * 3 + [1e-5] * 11
    assert base == pytest.approx(expect_base) and cls == pytest.approx(expect_cls)


def test_exported_model_is_a_plain_resnet_with_the_target_branch_logits():
    m = make()
    for _ in range(2):                        # move BN statistics away from their init
        m.training_step(batch(seed=_))
    m.eval()
    x = m.prepare(batch(seed=5)["image"])
    net = m.export_inference_model()
    assert isinstance(net, ResNet) and not net.training
    with torch.no_grad():
        assert torch.allclose(net(x), m.predict(x), atol=1e-6)
    plain = create_backbone("resnet10")
    extra = sum(p.numel() for p in net.parameters()) - sum(p.numel() for p in plain.parameters())
    assert extra == 2 * 512 + 512 * C        # BN-neck (weight, bias) + bias-free classifier; no branch, no MLP
    assert not any(k.startswith(("aux", "confidence")) for k in net.state_dict())


def test_dmue_checkpoint_format_copies_layer4_into_every_branch(tmp_path):
    torch.manual_seed(3)
    src = create_backbone("resnet18_dmue")
    torch.save({f"feat_net.{k}": v for k, v in src.state_dict().items()} | {"loss_layer.weight": torch.zeros(2)},
               tmp_path / "mv_epoch_17.pt")
    bb = create_backbone("resnet18_dmue", weights=tmp_path / "mv_epoch_17.pt", verbose=False)
    m = build_method("dmue", bb, 7, input_size=64)
    want = {k.removeprefix("layer4."): v for k, v in src.state_dict().items() if k.startswith("layer4.")}
    for branch in [m.backbone.layer4, *m.aux_branches]:
        got = branch.state_dict()
        assert all(torch.equal(got[k], want[k]) for k in want)
    assert len(m.aux_branches) == 7 and m.aux_classifiers[0].out_features == 6


def test_confidence_bank_records_the_step_and_resizes_on_load():
    m = make()

    class Set:
        def __len__(self):
            return 30
    m.setup_train(Set())
    assert torch.isnan(m.confidence_bank).all()
    b = batch(20)
    out = m.training_step(b)
    assert not torch.isnan(m.confidence_bank[:20]).any() and torch.isnan(m.confidence_bank[20:]).all()
    assert m.confidence_bank[:20].mean().item() == pytest.approx(out["confidence"].item(), rel=1e-5)
    fresh = make()
    fresh.load_state_dict(m.state_dict())
    assert torch.equal(fresh.confidence_bank.nan_to_num(-1), m.confidence_bank.nan_to_num(-1))


def test_confidence_with_a_reference_set_and_eval_predict_need_no_labels():
    m = make().eval()
    x = m.prepare(batch()["image"])
    with torch.no_grad():
        assert m.predict(x).shape == (20, C) and m.features(x).shape == (20, 512)
        ref = m.pooled(x)
        s = m.confidence(x[:4], torch.tensor([0, 1, 2, 3]), ref, batch()["label"])
    assert s.shape == (4,) and torch.all((s > 0) & (s < 1))


def test_classifier_init_is_official_by_default_and_an_option():
    assert abs(make().classifier.weight.std().item() - 0.001) < 2e-4
    assert abs(make(classifier_init_std=0.03).aux_classifiers[2].weight.std().item() - 0.03) < 5e-3


def test_scratch_head_has_no_neck_and_biased_classifiers_and_still_exports_and_folds():
    m = make(neck="none", classifier_bias=True)
    assert len(m.necks) == 0 and m.classifier.bias is not None and m.aux_classifiers[0].bias is not None
    assert all(torch.count_nonzero(lin.bias) == 0 for lin in [m.classifier, *m.aux_classifiers])   # zero init
    out = m.train().training_step(batch())
    out["loss"].backward()
    assert m.aux_classifiers[1].bias.grad.abs().sum() > 0 and torch.isfinite(out["loss"])
    with torch.no_grad():
        m.classifier.bias.add_(0.3)
    m.eval()
    x = m.prepare(batch(seed=5)["image"])
    net = m.export_inference_model()
    with torch.no_grad():
        assert torch.allclose(net(x), m.predict(x), atol=1e-6)
        assert torch.allclose(m.features(x), m.pooled(x))
        w, b = m.cam_classifier()
        assert torch.allclose(m.pooled(x) @ w.T + b, m.predict(x), atol=1e-5)
    with pytest.raises(ValueError, match="neck"):
        make(neck="bogus")
