#!/usr/bin/python3
"""End-to-end tests of nnc against PyTorch on whole models.

usage: tests/models/test_models.py [--filter SUBSTR] [--keep] [--nnc PATH] [--cc CC]
                                   [--threads N] [--list]

For each case: build the PyTorch model with seeded random weights, write its state_dict
as safetensors, compile the .net file with `nnc --main`, build the C with
`CC -std=c11 -Wall -Wextra -O2 -march=native` (clang by default, else cc; -O1 for the later cases of
a .net file, see OPT below), run the program
on seeded random inputs (.npy) and compare its output with PyTorch's:
max|out - ref| / max|ref| must be at most 1e-4. For the models written for these tests
(bert_base_encoder, transformer_decoder, vit_small) the keys and shapes printed by
`nnc --emit weights` are also compared with the torch state_dict.

Checks per case (one line each, `ok - NAME` or `FAIL - NAME: detail`):
  CASE keys       (new models only) same keys and shapes as the torch state_dict
  CASE build      nnc compiles the model and the C builds without warnings
  CASE output     the program's output matches PyTorch (the measured error is printed)
Lines starting with `#` give timings and measured values. The last line is
`N passed, N failed`; the exit status is 1 if anything failed.

The torchvision models use tools/export_torchvision.build_model (torchvision's init, constant
parameters randomised, BatchNorm running statistics measured on random images). The two
nn.Transformer stacks use torch.manual_seed and the modules' own init, then every parameter
that init leaves constant (LayerNorm weights/biases, attention biases) is randomised too, so
that a swapped key cannot go unnoticed. The BERT encoder is compared both with PyTorch 1.13's
eval-mode fast path (torch._transformer_encoder_layer_fwd, used under no_grad) and with the
plain Python path (grad enabled).

--filter SUBSTR runs only the cases whose name contains SUBSTR; --keep keeps the build
directory (its path is printed); --list shows the cases. A full run takes 45-90 s on 2 shared
cores, about half of it PyTorch itself (vit_b_16, and the BERT encoder's Python path).
"""

import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import export_torchvision  # noqa: E402
import safetensors  # noqa: E402  (tools/safetensors.py)

TOL = 1e-4
SEED = 0


# ---------------------------------------------------------------------------------------------
# the PyTorch models

def _randomise_constants(model, gen):
    """Give every parameter that PyTorch initialises to a constant a random value."""
    for p in model.parameters():
        t = p.data
        if t.numel() == 0 or float(t.max() - t.min()) > 1e-6:
            continue
        if p.dim() <= 1 and float(t.mean()) == 1.0:  # a norm's weight
            t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
        else:
            t.copy_(torch.randn(t.shape, generator=gen) * 0.1)


def bert_base_encoder():
    torch.manual_seed(SEED)
    layer = torch.nn.TransformerEncoderLayer(768, 12, 3072, activation="gelu", batch_first=True)
    model = torch.nn.TransformerEncoder(layer, 12)
    with torch.no_grad():
        _randomise_constants(model, torch.Generator().manual_seed(SEED))
    return model.eval()


def transformer_decoder():
    torch.manual_seed(SEED)
    layer = torch.nn.TransformerDecoderLayer(512, 8, 2048, batch_first=True)
    model = torch.nn.TransformerDecoder(layer, 6)
    with torch.no_grad():
        _randomise_constants(model, torch.Generator().manual_seed(SEED))
    return model.eval()


VIT_SMALL = {"image_size": 64, "patch_size": 16, "num_layers": 4, "num_heads": 4,
             "hidden_dim": 128, "mlp_dim": 256}

# model id -> function building the eval-mode torch model
MODELS = {
    "resnet18": lambda: export_torchvision.build_model("resnet18", SEED),
    "resnet50": lambda: export_torchvision.build_model("resnet50", SEED),
    "vit_b_16": lambda: export_torchvision.build_model("vit_b_16", SEED),
    "vit_small": lambda: export_torchvision.build_model("VisionTransformer", SEED, VIT_SMALL),
    "bert_base_encoder": bert_base_encoder,
    "transformer_decoder": transformer_decoder,
    # the torchvision classification zoo, BatchNorm statistics measured at the test's size
    "alexnet": lambda: export_torchvision.build_model("alexnet", SEED, calib_size=63),
    "vgg11": lambda: export_torchvision.build_model("vgg11", SEED, calib_size=32),
    "vgg11_bn": lambda: export_torchvision.build_model("vgg11_bn", SEED, calib_size=32),
    "squeezenet1_1": lambda: export_torchvision.build_model("squeezenet1_1", SEED, calib_size=25),
    "mobilenet_v2": lambda: export_torchvision.build_model("mobilenet_v2", SEED),
    "mobilenet_v3_small": lambda: export_torchvision.build_model("mobilenet_v3_small", SEED),
    "mobilenet_v3_large": lambda: export_torchvision.build_model("mobilenet_v3_large", SEED),
    "efficientnet_b0": lambda: export_torchvision.build_model("efficientnet_b0", SEED),
    "mnasnet1_0": lambda: export_torchvision.build_model("mnasnet1_0", SEED),
    "efficientnet_v2_s": lambda: export_torchvision.build_model(
        "efficientnet_v2_s", SEED, calib_size=64),
    "shufflenet_v2_x1_0": lambda: export_torchvision.build_model("shufflenet_v2_x1_0", SEED),
    "densenet121": lambda: export_torchvision.build_model("densenet121", SEED),
    "googlenet": lambda: export_torchvision.build_model(
        "googlenet", SEED, {"aux_logits": False, "init_weights": True}),
    "inception_v3": lambda: export_torchvision.build_model(
        "inception_v3", SEED, {"aux_logits": False, "init_weights": True}),
    "regnet_x_400mf": lambda: export_torchvision.build_model("regnet_x_400mf", SEED),
    "regnet_y_400mf": lambda: export_torchvision.build_model("regnet_y_400mf", SEED),
    "convnext_tiny": lambda: export_torchvision.build_model("convnext_tiny", SEED),
    "resnext50_32x4d": lambda: export_torchvision.build_model("resnext50_32x4d", SEED, calib_size=64),
    "wide_resnet50_2": lambda: export_torchvision.build_model("wide_resnet50_2", SEED, calib_size=64),
    "swin_t": lambda: export_torchvision.build_model("swin_t", SEED),
    "swin_v2_t": lambda: export_torchvision.build_model("swin_v2_t", SEED),
    "maxvit_t": lambda: export_torchvision.build_model("maxvit_t", SEED),
    # maxvit_t's network with partitions of 2, for a 64x64 image
    "maxvit_t_p2": lambda: export_torchvision.build_model("MaxVit", SEED, {
        "input_size": [64, 64], "stem_channels": 64, "partition_size": 2, "block_channels": [64, 128, 256, 512],
        "block_layers": [2, 2, 5, 2], "head_dim": 32, "stochastic_depth_prob": 0.2}, calib_size=64),
}


# ---------------------------------------------------------------------------------------------
# references: (model, [input arrays]) -> [(label, output array)]; the first is the main one

def ref_plain(model, inputs):
    with torch.no_grad():
        return [("torch", model(*[torch.from_numpy(x) for x in inputs]).numpy())]


def ref_bert(model, inputs):
    """PyTorch 1.13's fast path (no_grad) and its Python path (grad enabled)."""
    x = torch.from_numpy(inputs[0])
    calls = []
    fast = torch._transformer_encoder_layer_fwd

    def counting(*args, **kwargs):
        calls.append(1)
        return fast(*args, **kwargs)

    torch._transformer_encoder_layer_fwd = counting
    try:
        with torch.no_grad():
            y_fast = model(x).numpy()
        y_slow = model(x).detach().numpy()  # grad enabled: the fast path is refused
    finally:
        torch._transformer_encoder_layer_fwd = fast
    if len(calls) != len(model.layers):
        raise RuntimeError(f"the fast path ran for {len(calls)} of {len(model.layers)} layers")
    return [("torch fast path", y_fast), ("torch python path", y_slow)]


def ref_decoder(model, inputs):
    tgt, memory = (torch.from_numpy(x) for x in inputs)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
    with torch.no_grad():
        return [("torch", model(tgt, memory, tgt_mask=mask).numpy())]


class Case:
    def __init__(self, name, net, model, inputs, defines=(), ref=ref_plain, keys=False):
        self.name = name            # shown in the check names
        self.net = net              # .net file, relative to the repository root
        self.model = model          # key of MODELS
        self.inputs = inputs        # input shapes, in declaration order
        self.defines = list(defines)  # -D NAME=VALUE
        self.ref = ref
        self.keys = keys            # compare `--emit weights` with the state_dict


CASES = [
    Case("resnet18@224", "models/resnet18.net", "resnet18", [[1, 3, 224, 224]]),
    Case("resnet50@224", "models/resnet50.net", "resnet50", [[1, 3, 224, 224]]),
    Case("resnet50@160x2", "models/resnet50.net", "resnet50", [[2, 3, 160, 160]],
         defines=["batch=2", "size=160"]),
    Case("vit_b_16@224", "models/vit_b_16.net", "vit_b_16", [[1, 3, 224, 224]]),
    Case("vit_small@64x2", "tests/models/vit_small.net", "vit_small", [[2, 3, 64, 64]], keys=True),
    Case("bert_base_encoder", "models/bert_base_encoder.net", "bert_base_encoder",
         [[1, 128, 768]], ref=ref_bert, keys=True),
    Case("bert_base_encoder@32x2", "models/bert_base_encoder.net", "bert_base_encoder",
         [[2, 32, 768]], defines=["batch=2", "seq=32"], ref=ref_bert),
    Case("transformer_decoder", "models/transformer_decoder.net", "transformer_decoder",
         [[1, 64, 512], [1, 80, 512]], ref=ref_decoder, keys=True),
    Case("transformer_decoder@17x23x2", "models/transformer_decoder.net", "transformer_decoder",
         [[2, 17, 512], [2, 23, 512]], defines=["batch=2", "tgt_len=17", "mem_len=23"],
         ref=ref_decoder),
    # the torchvision classification zoo, each at the smallest size torchvision accepts
    Case("alexnet@63", "models/alexnet.net", "alexnet", [[1, 3, 63, 63]], defines=["size=63"]),
    Case("alexnet@63x2", "models/alexnet.net", "alexnet", [[2, 3, 63, 63]],
         defines=["batch=2", "size=63"]),
    Case("vgg11@32", "models/vgg11.net", "vgg11", [[1, 3, 32, 32]], defines=["size=32"]),
    Case("vgg11@32x2", "models/vgg11.net", "vgg11", [[2, 3, 32, 32]],
         defines=["batch=2", "size=32"]),
    Case("vgg11_bn@32", "models/vgg11_bn.net", "vgg11_bn", [[1, 3, 32, 32]], defines=["size=32"]),
    Case("vgg11_bn@32x2", "models/vgg11_bn.net", "vgg11_bn", [[2, 3, 32, 32]],
         defines=["batch=2", "size=32"]),
    # (torchvision takes 17x17; nnc refuses a 3x3 ceil_mode pool on the 2x2 map that gives)
    Case("squeezenet1_1@25", "models/squeezenet1_1.net", "squeezenet1_1", [[1, 3, 25, 25]],
         defines=["size=25"]),
    Case("squeezenet1_1@25x2", "models/squeezenet1_1.net", "squeezenet1_1", [[2, 3, 25, 25]],
         defines=["batch=2", "size=25"]),
    Case("mobilenet_v2@32", "models/mobilenet_v2.net", "mobilenet_v2", [[1, 3, 32, 32]],
         defines=["size=32"]),
    Case("mobilenet_v2@32x2", "models/mobilenet_v2.net", "mobilenet_v2", [[2, 3, 32, 32]],
         defines=["batch=2", "size=32"]),
    Case("mobilenet_v3_small@32", "models/mobilenet_v3_small.net", "mobilenet_v3_small",
         [[1, 3, 32, 32]], defines=["size=32"]),
    Case("mobilenet_v3_small@32x2", "models/mobilenet_v3_small.net", "mobilenet_v3_small",
         [[2, 3, 32, 32]], defines=["batch=2", "size=32"]),
    Case("mobilenet_v3_large@32", "models/mobilenet_v3_large.net", "mobilenet_v3_large",
         [[1, 3, 32, 32]], defines=["size=32"]),
    Case("mobilenet_v3_large@32x2", "models/mobilenet_v3_large.net", "mobilenet_v3_large",
         [[2, 3, 32, 32]], defines=["batch=2", "size=32"]),
    Case("efficientnet_b0@32", "models/efficientnet_b0.net", "efficientnet_b0", [[1, 3, 32, 32]],
         defines=["size=32"]),
    Case("efficientnet_b0@32x2", "models/efficientnet_b0.net", "efficientnet_b0", [[2, 3, 32, 32]],
         defines=["batch=2", "size=32"]),
    Case("mnasnet1_0@32", "models/mnasnet1_0.net", "mnasnet1_0", [[1, 3, 32, 32]],
         defines=["size=32"]),
    Case("mnasnet1_0@32x2", "models/mnasnet1_0.net", "mnasnet1_0", [[2, 3, 32, 32]],
         defines=["batch=2", "size=32"]),
    Case("efficientnet_v2_s@32", "models/efficientnet_v2_s.net", "efficientnet_v2_s",
         [[1, 3, 32, 32]], defines=["size=32"]),
    Case("efficientnet_v2_s@32x2", "models/efficientnet_v2_s.net", "efficientnet_v2_s",
         [[2, 3, 32, 32]], defines=["batch=2", "size=32"]),
    Case("shufflenet_v2_x1_0@32", "models/shufflenet_v2_x1_0.net", "shufflenet_v2_x1_0",
         [[1, 3, 32, 32]], defines=["size=32"]),
    Case("shufflenet_v2_x1_0@32x2", "models/shufflenet_v2_x1_0.net", "shufflenet_v2_x1_0",
         [[2, 3, 32, 32]], defines=["batch=2", "size=32"]),
    Case("densenet121@29", "models/densenet121.net", "densenet121", [[1, 3, 29, 29]],
         defines=["size=29"]),
    Case("densenet121@29x2", "models/densenet121.net", "densenet121", [[2, 3, 29, 29]],
         defines=["batch=2", "size=29"]),
    # (torchvision takes 15x15; nnc refuses the 3x3 ceil_mode pools on the 2x2 maps below 31)
    Case("googlenet@31", "models/googlenet.net", "googlenet", [[1, 3, 31, 31]],
         defines=["size=31"]),
    Case("googlenet@31x2", "models/googlenet.net", "googlenet", [[2, 3, 31, 31]],
         defines=["batch=2", "size=31"]),
    Case("inception_v3@75", "models/inception_v3.net", "inception_v3", [[1, 3, 75, 75]],
         defines=["size=75"]),
    Case("inception_v3@75x2", "models/inception_v3.net", "inception_v3", [[2, 3, 75, 75]],
         defines=["batch=2", "size=75"]),
    Case("regnet_x_400mf@32", "models/regnet_x_400mf.net", "regnet_x_400mf", [[1, 3, 32, 32]],
         defines=["size=32"]),
    Case("regnet_x_400mf@32x2", "models/regnet_x_400mf.net", "regnet_x_400mf", [[2, 3, 32, 32]],
         defines=["batch=2", "size=32"]),
    Case("regnet_y_400mf@32", "models/regnet_y_400mf.net", "regnet_y_400mf", [[1, 3, 32, 32]],
         defines=["size=32"]),
    Case("regnet_y_400mf@32x2", "models/regnet_y_400mf.net", "regnet_y_400mf", [[2, 3, 32, 32]],
         defines=["batch=2", "size=32"]),
    Case("convnext_tiny@32", "models/convnext_tiny.net", "convnext_tiny", [[1, 3, 32, 32]],
         defines=["size=32"]),
    Case("convnext_tiny@32x2", "models/convnext_tiny.net", "convnext_tiny", [[2, 3, 32, 32]],
         defines=["batch=2", "size=32"]),
    Case("resnext50_32x4d@64", "models/resnext50_32x4d.net", "resnext50_32x4d", [[1, 3, 64, 64]], defines=["size=64"]),
    Case("resnext50_32x4d@64x2", "models/resnext50_32x4d.net", "resnext50_32x4d", [[2, 3, 64, 64]],
         defines=["batch=2", "size=64"]),
    Case("wide_resnet50_2@64", "models/wide_resnet50_2.net", "wide_resnet50_2", [[1, 3, 64, 64]], defines=["size=64"]),
    # 32x32: a first stage of 8x8 padded to 2x2 shifted windows (the mask), later ones one padded window
    Case("swin_t@32", "models/swin_t.net", "swin_t", [[1, 3, 32, 32]], defines=["size=32"]),
    Case("swin_t@32x2", "models/swin_t.net", "swin_t", [[2, 3, 32, 32]], defines=["batch=2", "size=32"]),
    # 64x64: a first stage of 16x16 in 2x2 shifted windows of 8, the second one window
    Case("swin_v2_t@64", "models/swin_v2_t.net", "swin_v2_t", [[1, 3, 64, 64]], defines=["size=64"]),
    Case("swin_v2_t@64x2", "models/swin_v2_t.net", "swin_v2_t", [[2, 3, 64, 64]], defines=["batch=2", "size=64"]),
    Case("maxvit_t@224", "models/maxvit_t.net", "maxvit_t", [[1, 3, 224, 224]]),
    Case("maxvit_t@64p2", "models/maxvit_t.net", "maxvit_t_p2", [[1, 3, 64, 64]], defines=["size=64", "partition=2"]),
    Case("maxvit_t@64p2x2", "models/maxvit_t.net", "maxvit_t_p2", [[2, 3, 64, 64]],
         defines=["batch=2", "size=64", "partition=2"]),
]

# The optimisation each case's C is built with: -O2, as users build it, for the first case of each .net
# file; -O1 for the later ones (other batches and sizes, which exercise the shapes rather than the
# optimiser, and compile 3x faster: resnet50 2.0 s against 6.0 s), to keep CI within its time.
OPT, _built = {}, set()
for _case in CASES:
    OPT[_case.name] = "-O1" if _case.net in _built else "-O2"
    _built.add(_case.net)


# ---------------------------------------------------------------------------------------------
# helpers

class Failure(Exception):
    pass


def run(cmd, what):
    """Run cmd; return (stdout, stderr, seconds); raise Failure on a non-zero exit."""
    t = time.time()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    except OSError as e:
        raise Failure(f"{what}: cannot run {cmd[0]}: {e}") from None
    dt = time.time() - t
    if r.returncode != 0:
        msg = (r.stderr.strip() or r.stdout.strip() or "no output").splitlines()
        raise Failure(f"{what} exited {r.returncode}: " + " | ".join(msg[:6])
                      + (f" | ... ({len(msg)} lines)" if len(msg) > 6 else ""))
    return r.stdout, r.stderr, dt


def emitted_keys(nnc, net, defines):
    cmd = [nnc, os.path.join(ROOT, net), "--emit", "weights"]
    for d in defines:
        cmd += ["-D", d]
    out, _, _ = run(cmd, "nnc --emit weights")
    keys = []
    for n, line in enumerate(out.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, shape = line.strip().partition(" ")
        if not sep or not (shape.startswith("[") and shape.endswith("]")):
            raise Failure(f"line {n} of `--emit weights` is not 'KEY [d0, ...]': {line!r}")
        dims = shape[1:-1].strip()
        keys.append((key, [int(d) for d in dims.split(",")] if dims else []))
    return keys


def compare_keys(ours, model):
    ref = {k: list(v.shape) for k, v in model.state_dict().items()
           if not k.endswith("num_batches_tracked")}
    seen = {}
    dups = []
    for k, s in ours:
        if k in seen:
            dups.append(k)
        seen[k] = s
    problems = []

    def show(items):
        return ", ".join(items[:4]) + (f" (+{len(items) - 4} more)" if len(items) > 4 else "")

    missing = [k for k in ref if k not in seen]
    extra = [k for k in seen if k not in ref]
    shapes = [f"{k} {seen[k]} (torch {ref[k]})" for k in ref if k in seen and seen[k] != ref[k]]
    if missing:
        problems.append(f"missing {len(missing)}: {show(missing)}")
    if extra:
        problems.append(f"extra {len(extra)}: {show(extra)}")
    if shapes:
        problems.append(f"shape {len(shapes)}: {show(shapes)}")
    if dups:
        problems.append(f"duplicate {len(dups)}: {show(dups)}")
    return problems


def rel_error(out, ref):
    if out.shape != ref.shape:
        raise Failure(f"output shape {list(out.shape)}, torch {list(ref.shape)}")
    if not np.all(np.isfinite(out)):
        raise Failure(f"{int(np.sum(~np.isfinite(out)))} non-finite values in the output")
    scale = float(np.max(np.abs(ref)))
    return float(np.max(np.abs(out.astype(np.float64) - ref))) / (scale if scale else 1.0)


def find_cc():
    if os.environ.get("CC"):
        return os.environ["CC"]
    return shutil.which("clang") or "cc"


# ---------------------------------------------------------------------------------------------

class Runner:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.passed = self.failed = 0
        self.models = {}    # model id -> (torch model, weights path)
        self.cflags = self.libs = None
        self.builds = {}    # case name -> future of try_build()

    def check(self, name, problem=None, detail=""):
        if problem:
            self.failed += 1
            print(f"FAIL - {name}: {problem}", flush=True)
        else:
            self.passed += 1
            print(f"ok - {name}" + (f" ({detail})" if detail else ""), flush=True)

    def model(self, mid):
        """(torch model, weights path, seconds spent building them or None if cached)."""
        if mid in self.models:
            return self.models[mid] + (None,)
        t = time.time()
        m = MODELS[mid]()
        path = os.path.join(self.tmp, mid + ".safetensors")
        tensors = {k: v.detach().cpu().contiguous().numpy() for k, v in m.state_dict().items()}
        safetensors.save_file(tensors, path)
        self.models[mid] = (m, path)
        return m, path, time.time() - t

    def build_flags(self):
        if self.cflags is None:
            self.cflags = run([self.args.nnc, "--cflags"], "nnc --cflags")[0].split()
            self.libs = run([self.args.nnc, "--libs"], "nnc --libs")[0].split()
        return self.cflags, self.libs

    def build(self, case, base):
        """Compile case to the program `base`; return (nnc seconds, cc seconds)."""
        cmd = [self.args.nnc, os.path.join(ROOT, case.net), "--main", "-o", base + ".c"]
        for d in case.defines:
            cmd += ["-D", d]
        _, err, t_nnc = run(cmd, "nnc")
        if err.strip():
            raise Failure("nnc succeeded but wrote to stderr: " + " | ".join(err.strip().splitlines()[:4]))
        cflags, libs = self.build_flags()
        cmd = [self.args.cc, "-std=c11", "-Wall", "-Wextra", OPT[case.name], "-march=native",
               base + ".c"] + cflags + libs + ["-o", base]
        _, err, t_cc = run(cmd, self.args.cc)
        if err.strip():
            lines = [l for l in err.strip().splitlines() if "warning" in l or "error" in l] \
                or err.strip().splitlines()
            raise Failure(f"{len(lines)} warning line(s) from {self.args.cc}: "
                          + " | ".join(lines[:4]))
        return t_nnc, t_cc

    def base(self, case):
        return os.path.join(self.tmp, case.name.replace("@", "_"))

    def try_build(self, case, base):
        """build(), or the Failure it raised."""
        try:
            return self.build(case, base)
        except Failure as e:
            return e

    def build_ahead(self, cases, pool):
        """Start every case's build on pool (the C compiler is most of the time, and there are two cores)."""
        try:
            self.build_flags()
        except Failure:
            return    # (each case then builds itself, and reports why it cannot)
        self.builds = {c.name: pool.submit(self.try_build, c, self.base(c)) for c in cases}

    def case(self, case):
        base = self.base(case)
        times = []
        try:
            model, wpath, t_model = self.model(case.model)
        except Exception as e:  # noqa: BLE001  (torch or the export failed: report, go on)
            self.check(f"{case.name} output", f"building the torch model failed: {e}")
            return
        if t_model is not None:
            times.append(f"torch model + weights {t_model:.1f} s")

        if case.keys:
            try:
                problems = compare_keys(emitted_keys(self.args.nnc, case.net, case.defines), model)
            except Failure as e:
                problems = [str(e)]
            self.check(f"{case.name} keys", "; ".join(problems))

        built = self.builds[case.name].result() if case.name in self.builds else self.try_build(case, base)
        if not isinstance(built, Failure):
            times += [f"nnc {built[0]:.1f} s", f"cc {built[1]:.1f} s"]
            self.check(f"{case.name} build")
        else:
            self.check(f"{case.name} build", str(built))
            if not os.path.exists(base):
                self.check(f"{case.name} output", "not run: the program was not built")
                print(f"# {case.name}: " + ", ".join(times), flush=True)
                return
            # warnings only: the program exists, still check its numbers

        rng = np.random.RandomState(SEED)
        inputs = [rng.standard_normal(s).astype(np.float32) for s in case.inputs]
        cmd = [base, "--weights", wpath]
        for i, x in enumerate(inputs):
            p = f"{base}.in{i}.npy"
            np.save(p, x)
            cmd += ["--input", p]
        out_path = base + ".out.npy"
        cmd += ["--output", out_path]
        if self.args.threads:
            cmd += ["--threads", str(self.args.threads)]
        try:
            _, _, t_run = run(cmd, "the program")
            times.append(f"run {t_run:.1f} s")
            out = np.load(out_path)
            t = time.time()
            refs = case.ref(model, inputs)
            times.append(f"torch {time.time() - t:.1f} s")
            errs = [(label, rel_error(out, ref)) for label, ref in refs]
        except Failure as e:
            self.check(f"{case.name} output", str(e))
        except Exception as e:  # noqa: BLE001  (the torch reference failed)
            self.check(f"{case.name} output", f"torch reference failed: {type(e).__name__}: {e}")
        else:
            text = ", ".join(f"vs {label} {err:.2e}" for label, err in errs)
            if len(refs) > 1:
                a, b = refs[0][1], refs[1][1]
                text += f"; {refs[0][0]} vs {refs[1][0]} {rel_error(a, b):.2e}"
            bad = [f"{label} {err:.2e}" for label, err in errs if not err <= TOL]
            self.check(f"{case.name} output",
                       bad and f"max|d|/max|ref| {', '.join(bad)} > {TOL:g} ({text})",
                       f"max|d|/max|ref| {text}")
        print(f"# {case.name}: " + ", ".join(times), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("--filter", metavar="SUBSTR", help="only the cases whose name contains SUBSTR")
    p.add_argument("--keep", action="store_true", help="keep the build directory")
    p.add_argument("--nnc", default=os.path.join(ROOT, "build", "nnc"), help="the compiler")
    p.add_argument("--cc", default=find_cc(), help="C compiler (default $CC, else clang, else cc)")
    p.add_argument("--threads", type=int, help="--threads for the generated programs")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    args = p.parse_args(argv)

    cases = [c for c in CASES if not args.filter or args.filter in c.name]
    if args.list:
        for c in cases:
            print(c.name, c.net, " ".join("-D " + d for d in c.defines))
        return 0
    if not cases:
        p.error(f"no case matches --filter {args.filter!r}; cases: {', '.join(c.name for c in CASES)}")

    start = time.time()
    tmp = tempfile.mkdtemp(prefix="nnc_test_models_")
    runner = Runner(args, tmp)
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            runner.build_ahead(cases, pool)
            for case in cases:
                runner.case(case)
    finally:
        if args.keep:
            print(f"# kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"# total {time.time() - start:.0f} s")
    print(f"{runner.passed} passed, {runner.failed} failed")
    return 1 if runner.failed else 0


if __name__ == "__main__":
    sys.exit(main())
