"""The generic cut of a foreign network into ferlab's stem and stages, on hand-made chains."""
import copy

import torch
import torch.nn as nn

from ferlab.models.chain import ChainBackbone, cut, side_reduction, view


def test_cut_puts_everything_before_the_first_end_in_the_stem_and_the_tail_in_the_last_stage():
    names = ["conv", "bn", "act", "pool", "s1", "down2", "s2", "down3", "s3", "head_conv", "head_bn"]
    stem, stages = cut(names, [4, 6, 8])
    assert stem == ["conv", "bn", "act", "pool"]
    assert stages == [["s1"], ["down2", "s2"], ["down3", "s3", "head_conv", "head_bn"]]


def test_a_view_is_the_module_itself_or_a_sequential_without_identities():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Identity(), nn.ReLU())
    assert view(model, ["0"]) is model[0]
    assert view(model, ["0", "1"]) is model[0]                       # the Identity computes nothing
    v = view(model, ["0", "1", "2"])
    assert isinstance(v, nn.Sequential) and list(v) == [model[0], model[2]]
    assert view(model, ["1"]) is model[1]                            # a stage of only an Identity stays one


def test_side_reduction_rounds_to_a_power_of_two():
    assert [side_reduction(64, h) for h in (32, 16, 2, 1)] == [2, 4, 32, 64]
    assert side_reduction(150, 35) == 4 and side_reduction(103, 1) == 128


class _Pooled(ChainBackbone):
    def global_pool(self, f):
        return f.mean((2, 3))


def test_a_chain_backbone_runs_its_views_on_its_own_parameters_and_registers_them_once():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU(), nn.Conv2d(4, 8, 3, 2, 1), nn.Conv2d(8, 8, 3, 2, 1))
    net = _Pooled(model, ["0", "1"], [["2"], ["3"]], ["s1", "s2"], [8, 8], [4, 8], {"channels": 4, "reduction": 2},
                  num_features=8, num_classes=3)
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(net.forward_features(x), model(x))
    assert torch.equal(net(x), net.fc(model(x).mean((2, 3))))
    assert net.stages == (model[2], model[3]) and net.s2 is model[3]
    assert [k for k, _ in net.named_parameters()] == ["model.0.weight", "model.0.bias", "model.2.weight",
                                                     "model.2.bias", "model.3.weight", "model.3.bias",
                                                     "fc.weight", "fc.bias"]
    twin = copy.deepcopy(net)
    assert twin.stages[0] is twin.model[2] and twin.stages[0] is not model[2]
    assert torch.equal(twin(x), net(x))
