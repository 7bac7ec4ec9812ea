"""Keras Adam (``adam_keras``): the update by hand, exact resume, and its kernels."""
import io
import math

import pytest
import torch

from ferlab.engine.config import TrainConfig
from ferlab.engine.optim import KerasAdam, build_optimizer, build_scheduler
from ferlab.engine.optim_names import SCHEDULERS

LR, B1, B2, EPS = 0.1, 0.9, 0.999, 1e-7
# two tensors, two steps of given gradients; the second tensor's gradients are tiny, where the
# place of eps decides the step (Keras: on the uncorrected sqrt(v); torch: on the corrected one)
START = [[[0.5, -1.0, 2.0], [0.0, 0.25, -0.75]], [1.0, -2.0, 3.0, 0.5]]
GRADS = [([[0.3, -0.2, 0.1], [1.0, -0.5, 0.05]], [2e-7, -1e-7, 5e-8, 3e-7]),
         ([[-0.1, 0.4, 0.2], [0.5, 0.5, -0.3]], [1e-7, 1e-7, -2e-7, 0.0])]


def keras_adam_by_hand(weight_decay=0.0):
    """The Keras update in float64 Python, element by element."""
    theta = [[x for row in t for x in (row if isinstance(row, list) else [row])] for t in START]
    m = [[0.0] * len(t) for t in theta]
    v = [[0.0] * len(t) for t in theta]
    for t, grads in enumerate(GRADS, start=1):
        lr_t = LR * math.sqrt(1 - B2 ** t) / (1 - B1 ** t)
        for k, g in enumerate(grads):
            flat = [x for row in g for x in (row if isinstance(row, list) else [row])]
            for i, gi in enumerate(flat):
                gi = gi + weight_decay * theta[k][i]
                m[k][i] = B1 * m[k][i] + (1 - B1) * gi
                v[k][i] = B2 * v[k][i] + (1 - B2) * gi * gi
                theta[k][i] -= lr_t * m[k][i] / (math.sqrt(v[k][i]) + EPS)
    return [torch.tensor(t, dtype=torch.float64) for t in theta]


def run(opt_cls=KerasAdam, steps=GRADS, **kw):
    params = [torch.tensor(t, requires_grad=True) for t in START]
    opt = opt_cls(params, lr=LR, **kw)
    for grads in steps:
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g)
        opt.step()
    return params, opt


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_two_steps_match_the_keras_update_by_hand(foreach, weight_decay):
    params, opt = run(foreach=foreach, weight_decay=weight_decay)
    want = keras_adam_by_hand(weight_decay)
    for p, w in zip(params, want):
        torch.testing.assert_close(p.detach().double().flatten(), w, rtol=1e-6, atol=1e-7)
    assert all(opt.state[p]["step"] == 2 for p in params)
    if weight_decay:
        return
    # torch's Adam (eps on the bias-corrected sqrt(v)) moves the tiny-gradient tensor much further
    torch_params, _ = run(torch.optim.Adam)
    keras_move = (params[1] - torch.tensor(START[1])).abs()
    torch_move = (torch_params[1] - torch.tensor(START[1])).abs()
    assert (torch_move[:3] > 3 * keras_move[:3]).all()


def test_state_dict_round_trip_resumes_exactly():
    params, opt = run(steps=GRADS[:1])
    buf = io.BytesIO()
    torch.save({"params": [p.detach() for p in params], "opt": opt.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    again = [p.clone().requires_grad_(True) for p in saved["params"]]
    resumed = KerasAdam(again, lr=LR)
    resumed.load_state_dict(saved["opt"])
    for ps, o in ((params, opt), (again, resumed)):
        for p, g in zip(ps, GRADS[1]):
            p.grad = torch.tensor(g)
        o.step()
    for a, b in zip(params, again):
        assert torch.equal(a, b)
    assert resumed.state[again[0]]["step"] == 2


def test_foreach_equals_loop_on_a_small_net_with_mixed_dtypes():
    results = {}
    for foreach in (True, False):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
        extra = torch.nn.Parameter(torch.randn(4, dtype=torch.float64))     # a second (device, dtype) group
        opt = KerasAdam([{"params": net.parameters()}, {"params": [extra], "lr": 0.01}], lr=0.05,
                        weight_decay=1e-3, foreach=foreach)
        x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
        for _ in range(5):
            opt.zero_grad()
            (torch.nn.functional.cross_entropy(net(x), y) + extra.pow(2).sum()).backward()
            opt.step()
        results[foreach] = [p.detach().clone() for p in [*net.parameters(), extra]]
    for a, b in zip(results[True], results[False]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_build_optimizer_kernels_for_adam_keras():
    net = torch.nn.Linear(3, 2)
    cfg = dict(optimizer="adam_keras", lr=1e-3, weight_decay=0.0)
    auto = build_optimizer(net.parameters(), TrainConfig(**cfg))
    assert isinstance(auto, KerasAdam) and auto.defaults["foreach"] is True and auto.defaults["eps"] == 1e-7
    assert build_optimizer(net.parameters(), TrainConfig(**cfg, optimizer_impl="loop")).defaults["foreach"] is False
    assert build_optimizer(net.parameters(), TrainConfig(**cfg, optimizer_impl="foreach")).defaults["foreach"] is True
    with pytest.raises(ValueError, match="adam_keras has no fused kernel"):
        build_optimizer(net.parameters(), TrainConfig(**cfg, optimizer_impl="fused"))
    with pytest.raises(ValueError, match="adam_keras"):
        build_optimizer(net.parameters(), TrainConfig(optimizer="adam_tf", lr=1e-3, weight_decay=0.0))


def test_the_scheduler_names_the_config_check_accepts_are_the_ones_built():
    """config_check validates ``scheduler`` against optim_names.SCHEDULERS without building it."""
    for name in SCHEDULERS:
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        build_scheduler(opt, TrainConfig(scheduler=name, epochs=2, gamma=0.1), 1)
    with pytest.raises(ValueError, match="scheduler must be exponential, cosine, step, piecewise, linear or none"):
        build_scheduler(opt, TrainConfig(scheduler="onecycle", epochs=2, gamma=0.1), 1)
