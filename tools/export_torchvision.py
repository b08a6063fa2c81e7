#!/usr/bin/python3
"""Write a torchvision model's weights as a safetensors file for nnc.

usage: export_torchvision.py NAME OUT.safetensors [--state-dict FILE.pt] [--seed S]
                             [--kwargs JSON] [--dtype F32|F16|BF16] [--calib-size N]

NAME is either
  - a torchvision model builder: resnet50, vit_b_16, mobilenet_v2, ... (anything in
    torchvision.models.list_models()), called as torchvision.models.NAME(**kwargs) with
    no pretrained weights; e.g. --kwargs '{"num_classes": 10}' or, for the ViTs,
    --kwargs '{"image_size": 384}';
  - cifar_resnet20 (cifar_resnet32, 44, 56, 110): He et al.'s ResNet for 32x32 CIFAR images
    (section 4.2), built here of torchvision's BasicBlock with its parameter names: a 3x3 stem
    of 16 channels (conv1, bn1), three stages layer1..layer3 of 16, 32 and 64 channels (a
    strided 1x1 projection, downsample.0/.1, where the shape changes: option B) and fc
    (tests/embedded/cifar_resnet20.net);
  - a model class, to build a custom-sized model: VisionTransformer (alias: vit), ResNet,
    or any other nn.Module class in torchvision.models, called as CLASS(**kwargs), e.g.
      export_torchvision.py vit tiny.safetensors --kwargs '{"image_size": 32,
          "patch_size": 8, "num_layers": 2, "num_heads": 2, "hidden_dim": 16, "mlp_dim": 32}'
      export_torchvision.py ResNet r.safetensors --kwargs '{"block": "Bottleneck",
          "layers": [1, 1, 1, 1], "num_classes": 10}'
    (ResNet's "block" is given by name: "BasicBlock" or "Bottleneck").

With --state-dict, the weights are the user's (a torch.save'd state_dict, or a dict
holding one under "state_dict" or "model"; a DataParallel "module." prefix is
removed); they are loaded into the model strictly, so keys and shapes are checked.

Without it, the weights are random but deterministic for a given --seed (default 0):
torchvision's own initialisation, then
  - norm layers (BatchNorm, LayerNorm, GroupNorm): weight ~ U(0.5, 1.5), bias ~ N(0, 0.1^2);
  - any other parameter torchvision leaves constant (zero biases, a zero classifier head,
    the ViT class token): vectors ~ N(0, 0.1^2), others ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in));
  - BatchNorm running_mean/running_var are the real per-channel statistics of the
    network on a seeded batch of N(0, 1) images of --calib-size (default: the model's
    image_size, else 224), accumulated layer after layer, so that they are not 0 and 1
    and matter, while the activations of a deep net stay well-scaled (a random
    ResNet-152's logits have a standard deviation of order 1, not 1e10).

All tensors of the state_dict are written, num_batches_tracked (I64) included, in
F32 unless --dtype says F16 or BF16 (integer tensors stay I64). The file's
__metadata__ records the model name, kwargs and seed.

From Python (the tests): build_model(name, seed=0, kwargs=None) returns the same
model in eval mode; state_dict_to_numpy(model) its tensors.
"""

import argparse
import json
import math
import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors  # noqa: E402  (tools/safetensors.py, not the PyPI package)

CLASS_ALIASES = {"vit": "VisionTransformer"}


class CifarResNet(torch.nn.Module):
    """He et al.'s CIFAR ResNet of depth 6n+2 with torchvision's BasicBlock (option B shortcuts)."""

    def __init__(self, depth=20, num_classes=10):
        super().__init__()
        from torchvision.models.resnet import BasicBlock
        n = (depth - 2) // 6
        self.conv1 = torch.nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(16)
        self.relu = torch.nn.ReLU(inplace=True)
        layers, cin = [], 16
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                s = stride if i == 0 else 1
                down = None
                if s != 1 or cin != width:
                    down = torch.nn.Sequential(torch.nn.Conv2d(cin, width, 1, stride=s, bias=False),
                                               torch.nn.BatchNorm2d(width))
                blocks.append(BasicBlock(cin, width, s, down))
                cin = width
            layers.append(torch.nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = torch.nn.Linear(64, num_classes)
        self.image_size = 32

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))


BUILDERS = {f"cifar_resnet{d}": (lambda d: lambda **kw: CifarResNet(d, **kw))(d) for d in (20, 32, 44, 56, 110)}
NORM_TYPES = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.LayerNorm, torch.nn.GroupNorm)


def _resolve(name):
    """(callable, is_class) for a builder or class name of torchvision.models."""
    name = CLASS_ALIASES.get(name, name)
    if name in BUILDERS:
        return BUILDERS[name], True
    models = torchvision.models
    obj = getattr(models, name, None)
    if isinstance(obj, type) and issubclass(obj, torch.nn.Module):
        return obj, True
    try:
        return models.get_model_builder(name), False
    except ValueError:
        pass
    if callable(obj) and not isinstance(obj, type):
        return obj, False
    raise ValueError(f"unknown torchvision model '{name}' "
                     f"(a builder such as resnet50, or a class such as VisionTransformer)")


def construct(name, kwargs=None):
    """torchvision's model NAME with kwargs and torchvision's initialisation."""
    kwargs = dict(kwargs or {})
    fn, is_class = _resolve(name)
    if is_class and fn is torchvision.models.ResNet and isinstance(kwargs.get("block"), str):
        from torchvision.models import resnet
        kwargs["block"] = {"BasicBlock": resnet.BasicBlock, "Bottleneck": resnet.Bottleneck}[kwargs["block"]]
    if not is_class:
        kwargs.setdefault("weights", None)
    return fn(**kwargs)


def _is_constant(t):
    return t.numel() > 0 and float(t.max() - t.min()) < 1e-4


def _randomise(model, gen):
    """Give the parameters that torchvision initialises to constants random values."""
    norm_params = set()
    for mod in model.modules():
        if isinstance(mod, NORM_TYPES):
            if getattr(mod, "weight", None) is not None:
                w = mod.weight.data
                w.copy_(torch.rand(w.shape, generator=gen) + 0.5)
                norm_params.add(id(mod.weight))
            if getattr(mod, "bias", None) is not None:
                b = mod.bias.data
                b.copy_(torch.randn(b.shape, generator=gen) * 0.1)
                norm_params.add(id(mod.bias))
    for p in model.parameters():
        if id(p) in norm_params or not _is_constant(p.data):
            continue
        if p.dim() <= 1:
            p.data.copy_(torch.randn(p.shape, generator=gen) * 0.1)
        else:
            bound = 1.0 / math.sqrt(p[0].numel())  # fan_in, as nn.Linear's default
            p.data.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * bound)


def _input_size(model, kwargs, calib_size):
    if calib_size:
        return calib_size
    return int((kwargs or {}).get("image_size") or getattr(model, "image_size", None) or 224)


@torch.no_grad()
def _calibrate(model, gen, size, batch=2):
    """Set every BatchNorm's running stats to its input's real statistics."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batch
        bn.train()
    x = torch.randn(batch, 3, size, size, generator=gen)
    try:
        model(x)
    except Exception as e:  # noqa: BLE001
        raise RuntimeError(f"calibrating BatchNorm statistics on a {list(x.shape)} input failed "
                           f"({e}); pass --calib-size") from None
    for bn in bns:
        bn.momentum = 0.1
    model.eval()


def build_model(name, seed=0, kwargs=None, calib_size=None):
    """torchvision model NAME (builder or class) with seeded random weights, eval mode.

    Deterministic for (name, seed, kwargs): see this module's doc for the scheme."""
    torch.manual_seed(seed)
    model = construct(name, kwargs)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        _randomise(model, gen)
    _calibrate(model, gen, _input_size(model, kwargs, calib_size))
    return model.eval()


def load_state_dict(path):
    """A state dict from a torch.save'd file: bare, or under "state_dict"/"model"."""
    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, torch.nn.Module):
                inner = inner.state_dict()
            if isinstance(inner, dict) and any(torch.is_tensor(v) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, dict) or not any(torch.is_tensor(v) for v in obj.values()):
        raise ValueError(f"{path}: no state dict found (expected a dict of tensors, "
                         f"or one under 'state_dict' or 'model')")
    sd = {k: v for k, v in obj.items() if torch.is_tensor(v)}
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def model_from_state_dict(name, path, kwargs=None):
    model = construct(name, kwargs)
    sd = load_state_dict(path)
    result = model.load_state_dict(sd, strict=False)
    problems = []
    if result.missing_keys:
        problems.append("missing " + ", ".join(result.missing_keys))
    if result.unexpected_keys:
        problems.append("unexpected " + ", ".join(result.unexpected_keys))
    if problems:
        raise ValueError(f"{path} does not fit {name}: " + "; ".join(problems))
    return model.eval()


def state_dict_to_numpy(model):
    """name -> numpy array, in state_dict order (num_batches_tracked included)."""
    return {k: v.detach().cpu().contiguous().numpy() for k, v in model.state_dict().items()}


def main(argv=None):
    p = argparse.ArgumentParser(
        usage=__doc__.split("\n\n")[1][len("usage: "):],
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2].split("\nFrom Python")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", metavar="NAME", help="torchvision builder (resnet50) or class (vit, ResNet)")
    p.add_argument("out", metavar="OUT.safetensors")
    p.add_argument("--state-dict", metavar="FILE.pt", help="export these weights instead of random ones")
    p.add_argument("--seed", type=int, default=0, help="random weights' seed (default 0)")
    p.add_argument("--kwargs", default="{}", metavar="JSON", help="keyword arguments of the builder/class")
    p.add_argument("--dtype", default="F32", choices=["F32", "F16", "BF16"],
                   help="dtype of the floating-point tensors (default F32)")
    p.add_argument("--calib-size", type=int, metavar="N",
                   help="image size for the BatchNorm statistics (default: model's, else 224)")
    args = p.parse_args(argv)
    try:
        kwargs = json.loads(args.kwargs)
        if not isinstance(kwargs, dict):
            raise ValueError("--kwargs must be a JSON object")
        if args.state_dict:
            model = model_from_state_dict(args.name, args.state_dict, kwargs)
        else:
            model = build_model(args.name, args.seed, kwargs, args.calib_size)
        tensors = state_dict_to_numpy(model)
        metadata = {"format": "pt", "model": args.name, "kwargs": json.dumps(kwargs, sort_keys=True),
                    "source": args.state_dict and os.path.basename(args.state_dict) or f"random seed {args.seed}"}
        safetensors.save_file(tensors, args.out, metadata=metadata, dtype=args.dtype)
    except (ValueError, RuntimeError, OSError, TypeError, KeyError) as e:
        print(f"export_torchvision: error: {e}", file=sys.stderr)
        return 1
    n = sum(v.size for k, v in tensors.items() if not k.endswith("num_batches_tracked"))
    print(f"wrote {args.out}: {len(tensors)} tensors, {n} parameters ({args.dtype})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
