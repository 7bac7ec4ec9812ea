"""``ferlab backbones``: the registered backbones, how to name any timm or torchvision model, and the
stage description of one backbone with what each method needs from it."""
from __future__ import annotations

from .common import add_command

#: the commands this module adds (name -> the one-line help ``ferlab --help`` lists)
COMMANDS = {"backbones": "list the backbones: the registered ones and how to name any timm or torchvision model"}

EXAMPLES = """examples:
  ferlab backbones                                  # registered backbones; timm / torchvision naming
  ferlab backbones --timm 'convnext*'               # timm models matching a pattern
  ferlab backbones --timm 'resnet*' --pretrained    # ... that timm publishes weights for
  ferlab backbones --tv                             # torchvision classification models
  ferlab backbones --describe timm:convnext_atto    # stem, stages, pooled features, methods it suits
  ferlab train --config recipes/eac/ferplus.yaml --preset cpu --backbone timm:convnext_tiny --weights timm

--weights timm (timm's published weights) and --weights IMAGENET1K_V2 (a torchvision weights enum)
are downloaded by timm / torchvision the first time they are used: the only downloads ferlab makes, and
only when asked. A weight file (--weights PATH: a state dict, a timm checkpoint, a .safetensors file)
is never downloaded."""

#: what each method computes on, for ``--describe``: (needs stages, needs fc on the map's channels, text)
NEEDS = {
    "baseline": (False, False, "the pooled features"),
    "rul": (False, False, "the last map (N, C, h, w), flattened"),
    "ldlva": (False, False, "the pooled features"),
    "eac": (False, True, "CAMs: the classifier's weights on the last map's channels"),
    "dmue": (True, False, "C + 1 copies of the last stage"),
    "lanet": (True, False, "its own copies of stages 2..n and an FPN on the stage maps"),
}


def _library_lines() -> list[str]:
    lines = []
    try:
        import timm
    except ImportError:
        lines.append("timm:<model>   any timm model; needs timm: pip install 'ferlab[timm]'")
    else:
        lines.append(f"timm:<model>   any of the {len(timm.list_models())} models of timm {timm.__version__}, e.g. "
                     f"timm:convnext_tiny, timm:efficientnet_b0, timm:resnet50, timm:regnetz_c16 (with a weights tag: "
                     f"timm:convnext_tiny.fb_in22k); --weights timm fetches timm's published weights (a download, "
                     f"on first use); list names with --timm PATTERN")
    import torchvision
    lines.append(f"tv:<model>     a torchvision {torchvision.__version__} classification CNN, e.g. tv:resnet50, "
                 f"tv:convnext_tiny, tv:efficientnet_b0; --weights names its weights enum (IMAGENET1K_V2, DEFAULT; "
                 f"a download, on first use); list names with --tv")
    return lines


def describe(name: str) -> list[str]:
    """Lines describing backbone ``name`` (built from random init: nothing is read or fetched)."""
    import torch

    from ..models import create_backbone
    net = create_backbone(name, num_classes=0, verbose=False).eval()
    cfg = net.pretrained_cfg
    side = max(64, net.min_input_size)
    lines = [f"{name}: {sum(p.numel() for p in net.parameters()) / 1e6:.1f} M parameters, input >= "
             f"{net.min_input_size} px (native {cfg['input_size']}), mean {tuple(round(m, 4) for m in cfg['mean'])}, "
             f"std {tuple(round(s, 4) for s in cfg['std'])}"]
    with torch.no_grad():
        x = torch.zeros(1, 3, side, side)
        if getattr(net, "spatial_stages", True):
            f = net.forward_stem(x)
            lines.append(f"  stem: {f.shape[1]} channels, stride {net.stem_info['reduction']} "
                         f"({f.shape[-2]}x{f.shape[-1]} at {side} px)")
            for d, stage in zip(net.feature_info, net.stages):
                f = stage(f)
                lines.append(f"  stage {d['module']}: {d['channels']} channels, stride {d['reduction']} "
                             f"({f.shape[-2]}x{f.shape[-1]} at {side} px)")
        else:
            f = net.forward_features(x)
            lines.append(f"  no stages ({net.no_stages_reason}); last map {f.shape[1]} channels "
                         f"({f.shape[-2]}x{f.shape[-1]} at {side} px)")
    pool = "the mean of the last map" if getattr(net, "linear_pool", True) else "pooled, then normalised"
    hidden = getattr(net, "head_hidden", False)
    lines.append(f"  pooled features: {net.num_features} ({'after a hidden layer' if hidden else pool})")
    for method, (stages, map_fc, what) in NEEDS.items():
        ok = not ((stages and not getattr(net, "spatial_stages", True)) or (map_fc and hidden))
        lines.append(f"  {method:8s} {'yes' if ok else 'no '}  needs {what}")
    return lines


def cmd_backbones(args) -> int:
    """Run ``ferlab backbones``; returns the exit status."""
    from ..errors import ConfigError
    from ..models import list_backbones, weight_tags
    if args.describe:
        from ..models.registry import backbone_problem
        problem = backbone_problem(args.describe)
        if problem:
            raise ConfigError(f"--describe: {problem}")
        print("\n".join(describe(args.describe)))
        return 0
    if args.timm is not None:
        from ..models.timm_backbones import import_timm
        timm = import_timm()
        names = timm.list_models(args.timm or "*", pretrained=args.pretrained)
        print("\n".join(f"timm:{n}" for n in names) if names else f"no timm model matches {args.timm!r}")
        return 0
    if args.tv:
        from ..models.tv_backbones import classification_models
        print("\n".join(f"tv:{n}" for n in classification_models()))
        return 0
    for name in list_backbones():
        print(f"{name:15s}weights: {', '.join(weight_tags(name)) or 'none named (random init or a file)'}")
    print("\n".join(_library_lines()))
    return 0


def add_parser(sub) -> None:
    """Register ``ferlab backbones`` on the subparsers ``sub``."""
    p = add_command(sub, "backbones", COMMANDS["backbones"], EXAMPLES)
    p.add_argument("--timm", nargs="?", const="*", metavar="PATTERN",
                   help="list the timm models whose names match PATTERN (wildcards: 'convnext*'; all without one)")
    p.add_argument("--pretrained", action="store_true",
                   help="with --timm: only models timm publishes weights for (name.tag, as --backbone timm:name.tag)")
    p.add_argument("--tv", action="store_true", help="list torchvision's classification models")
    p.add_argument("--describe", metavar="NAME",
                   help="the stem, stages and pooled features of backbone NAME (random init: nothing is read or "
                        "downloaded) and which methods run on it")
    p.set_defaults(func=cmd_backbones)
