#!/usr/bin/python3
"""
test_ops.py — every builtin and tensor operator of the .net language (spec §5, §7) against PyTorch,
through the whole compiler: .net -> nnc -> C -> program -> output file.

Each case is one entry of the table below: a name, the inputs (name -> shape), the model body in .net,
and a reference function. The reference function receives a weight maker `W` and the inputs as float64
torch tensors; it builds the PyTorch modules it needs through `W` (which randomises their parameters and
running statistics and records them under the keys nnc expects) and returns the expected output(s).
The recorded weights go into a safetensors file (an empty one when the model has none), the inputs
into .npy files, and the program built from the generated C is run on them with `--threads` 1, 2, 3, 7
and 16. Adding a case is adding one entry.

Checks, one line each:
  - per case: nnc compiles the model, the program runs, every output has PyTorch's shape, and
    max|Δ| / max(1e-6, max|ref|) <= 1e-4 (the reference is computed in float64 from the same float32
    weights and inputs);
  - over all cases: the generated C compiles without a warning under gcc and under clang with
    -std=c11 -Wall -Wextra -Werror, and the outputs of every thread count are bit-identical.

Prints `ok - NAME` or `FAIL - NAME: detail` (a failure is followed by the case's .net source), then
`N passed, N failed`; exits 1 on any failure.

    /usr/bin/python3 tests/ops/test_ops.py [--filter SUBSTR]... [--keep] [--jobs N] [--list]
                                           [--cc gcc|clang] [--nnc-flags "-O0"] [-v]

nnc runs with NNC_VERIFY=1, so a graph broken by a pass aborts the case. build/nnc and the runtime library
are copied into the build directory first, so a concurrent `make` cannot change them half-way.
"""
import argparse
import concurrent.futures
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from safetensors import save_file  # noqa: E402

NNC = os.path.join(ROOT, "build", "nnc")
TOL = 1e-4
WARN_FLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror"]
RUN_TIMEOUT = 120
# Every program runs with each of these thread counts (more threads than work included) and must give
# the bits of --threads 1.
THREADS = tuple(int(t) for t in os.environ.get("NNC_OPS_THREADS", "1,2,3,7,16").split(","))   # (fewer under the sanitizers)
OPT = os.environ.get("NNC_OPS_OPT", "-O2")   # the C's optimisation (-O1 under the sanitizers, which compile slowly)
# NNC_OPS_SHARD=K/N: only the cases whose index is K modulo N (the sanitizer run takes every fifth one, to
# keep CI within its time; the plain run takes them all)
SHARD = tuple(int(v) for v in os.environ.get("NNC_OPS_SHARD", "0/1").split("/"))


# ---------------------------------------------------------------------------------------------------
# The weight maker handed to every reference function.

class Weights:
    """Randomises PyTorch modules and params and records them under their safetensors keys."""

    def __init__(self, gen):
        self.gen = gen
        self.tensors = {}

    def _uniform(self, shape, lo, hi):
        return torch.rand(shape, generator=self.gen, dtype=torch.float32) * (hi - lo) + lo

    def mod(self, prefix, module):
        """Randomises every parameter and buffer of `module`, records them as PREFIX.KEY (as nnc
        names them: PyTorch's state_dict keys), returns the module in float64 and eval mode."""
        with torch.no_grad():
            for name, p in module.named_parameters():
                if p.dim() >= 2:
                    bound = 1.0 / math.sqrt(p[0].numel())
                    p.copy_(self._uniform(p.shape, -bound, bound))
                elif name.endswith("weight"):
                    p.copy_(self._uniform(p.shape, 0.5, 1.5))
                else:
                    p.copy_(self._uniform(p.shape, -0.5, 0.5))
            for name, b in module.named_buffers():
                if name.endswith("running_mean"):
                    b.copy_(self._uniform(b.shape, -0.5, 0.5))
                elif name.endswith("running_var"):
                    b.copy_(self._uniform(b.shape, 0.5, 2.0))
        module.eval()
        for key, value in module.state_dict().items():
            if key.endswith("num_batches_tracked"):
                continue
            self._record(prefix + "." + key, value)
        return module.double()

    def param(self, name, shape):
        """A `param(shape) as name`: a random tensor recorded under `name`, returned in float64."""
        t = torch.randn(shape, generator=self.gen, dtype=torch.float32)
        self._record(name, t)
        return t.double()

    def index(self, name, shape, limit, dtype=torch.int64):
        """A `buffer(shape, dtype="i64") as name`: random indices in [0, limit), recorded as int64 (or int32)."""
        t = torch.randint(0, limit, shape, generator=self.gen, dtype=torch.int64)
        self._record(name, t.to(dtype))
        return t

    def _record(self, key, value):
        if key in self.tensors:
            raise ValueError(f"weight key {key} recorded twice")
        value = value.detach()
        self.tensors[key] = (value if value.dtype in (torch.int64, torch.int32) else value.float()).numpy().copy()


# ---------------------------------------------------------------------------------------------------
# The case table.

class Case:
    def __init__(self, name, inputs, body, ref, gen=None, lets="", flags=()):
        self.name = name
        self.flags = list(flags)              # extra nnc flags of this case ("-O0")
        self.inputs = list(inputs.items())   # [(name, shape)], declaration order
        self.body = body
        self.ref = ref
        self.gen = gen or {}                  # input name -> "pos" | "wide" | "big" | "int"
        self.lets = lets

    def source(self):
        decl = ", ".join(f"{n}: f32[{', '.join(str(d) for d in s)}]" for n, s in self.inputs)
        body = "\n".join("    " + line if line.strip() else "" for line in self.body.strip("\n").split("\n"))
        lets = self.lets.strip() + "\n\n" if self.lets.strip() else ""
        return f"# test_ops.py case {self.name}\n{lets}model m({decl}) {{\n{body}\n}}\n"


CASES = []


def case(name, inputs, body, ref, gen=None, lets="", flags=()):
    if any(c.name == name for c in CASES):
        raise ValueError("duplicate case name " + name)
    CASES.append(Case(name, inputs, body, ref, gen, lets, flags))


def fmt(v):
    """A Python value as .net source: ints, floats, bools and (nested) lists."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt(e) for e in v) + "]"
    return str(v)


def pair(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


# ---- reference helpers ----

def ref_conv(W, name, x, out, kernel, stride=1, pad=0, dilation=1, groups=1, bias=True):
    """nn.Conv2d; a 4-element pad [top, left, bottom, right] goes through F.pad first."""
    conv_pad = pad
    if isinstance(pad, (list, tuple)) and len(pad) == 4:
        t, l, b, r = pad
        x = F.pad(x, (l, r, t, b))
        conv_pad = 0
    conv = nn.Conv2d(x.shape[1], out, pair(kernel), stride=pair(stride), padding=pair(conv_pad),
                     dilation=pair(dilation), groups=groups, bias=bias)
    return W.mod(name, conv)(x)


def f32(t):
    """Rounds a float64 reference intermediate to float32, as nnc stores every tensor."""
    return t.float().double()


def causal_mask(lq, lk):
    """True where attention is masked: key position j > query position i."""
    return torch.triu(torch.ones(lq, lk, dtype=torch.bool), diagonal=1)


def ref_mha(W, name, x, heads, causal=False, memory=None):
    d = x.shape[-1]
    mha = W.mod(name, nn.MultiheadAttention(d, heads, batch_first=True))
    kv = x if memory is None else memory
    mask = causal_mask(x.shape[1], kv.shape[1]) if causal else None
    return mha(x, kv, kv, need_weights=False, attn_mask=mask)[0]


def ref_sdpa(q, k, v, causal=False):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        s = s.masked_fill(causal_mask(q.shape[-2], k.shape[-2]), float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def ref_pad(x, axis, before, after, value=0.0):
    axis %= x.dim()
    spec = [0, 0] * (x.dim() - 1 - axis) + [before, after]
    return F.pad(x, spec, value=value)


def ref_maxpool(x, kernel, stride=None, pad=0):
    if isinstance(pad, (list, tuple)) and len(pad) == 4:
        t, l, b, r = pad
        x = F.pad(x, (l, r, t, b), value=float("-inf"))
        pad = 0
    return F.max_pool2d(x, pair(kernel), pair(stride if stride is not None else kernel), pair(pad))


def ref_avgpool(x, kernel, stride=None, pad=0):
    return nn.AvgPool2d(pair(kernel), pair(stride if stride is not None else kernel), pair(pad),
                        count_include_pad=True)(x)


def ref_slice(x, axis, start, end, step=1):
    idx = [slice(None)] * x.dim()
    idx[axis] = slice(start, end, step)
    return x[tuple(idx)]


def ref_take(x, axis, index):
    return x.select(axis, index)


def batchnorm_module(rank, c, eps):
    return {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}[rank](c, eps=eps)


# ---- conv2d ----
# (name, x shape, out, kernel, stride, pad, dilation, groups, bias)
CONV = [
    ("basic", (1, 3, 8, 8), 5, 3, 1, 0, 1, 1, True),
    ("batch2_stride2_pad1", (2, 4, 9, 9), 6, 3, 2, 1, 1, 1, True),
    ("pad_asym", (2, 3, 7, 8), 4, 3, 1, [1, 0, 2, 3], 1, 1, True),
    ("pad_asym_stride2", (1, 3, 11, 10), 4, 3, 2, [0, 2, 1, 0], 1, 1, True),
    ("pad_hw", (1, 2, 6, 7), 3, [3, 5], 1, [2, 1], 1, 1, True),
    ("kernel_hw_stride_hw", (2, 3, 10, 9), 4, [2, 3], [2, 1], 0, 1, 1, True),
    ("dilation2", (1, 3, 11, 11), 4, 3, 1, 2, 2, 1, True),
    ("dilation_hw", (1, 2, 12, 13), 3, 3, 1, [2, 3], [2, 3], 1, True),
    ("dilation_stride", (2, 2, 13, 12), 3, 3, 2, 1, 2, 1, True),
    ("groups2", (2, 4, 7, 7), 6, 3, 1, 1, 1, 2, True),
    ("groups3_stride2", (1, 6, 9, 8), 9, 3, 2, 1, 1, 3, False),
    ("depthwise", (2, 5, 8, 9), 5, 3, 1, 1, 1, 5, True),
    ("depthwise_stride2", (1, 8, 10, 10), 8, 3, 2, 1, 1, 8, False),
    ("depthwise_multiplier2", (1, 3, 7, 6), 6, 3, 1, 1, 1, 3, True),
    ("depthwise_5x5_dilated", (1, 4, 12, 12), 4, 5, 1, 4, 2, 4, True),
    ("bias_false", (2, 3, 6, 6), 4, 3, 1, 1, 1, 1, False),
    ("1x1", (2, 8, 5, 7), 3, 1, 1, 0, 1, 1, True),
    ("1x1_stride2", (1, 4, 9, 9), 6, 1, 2, 0, 1, 1, False),
    ("7x7_stride2_pad3", (1, 3, 15, 17), 8, 7, 2, 3, 1, 1, False),
    ("kernel_equals_input", (2, 3, 5, 5), 4, 5, 1, 0, 1, 1, True),
    ("patchify", (2, 3, 16, 16), 8, 4, 4, 0, 1, 1, True),
    ("large_pad_exceeds_kernel", (1, 2, 4, 5), 3, 3, 1, 3, 1, 1, True),
    ("single_pixel", (3, 5, 1, 1), 4, 1, 1, 0, 1, 1, True),
    ("threads_big", (2, 16, 32, 32), 32, 3, 1, 1, 1, 1, True),
    ("threads_big_depthwise", (2, 32, 33, 31), 32, 3, 2, 1, 1, 32, True),
    ("threads_big_asym_groups", (1, 8, 45, 39), 12, 5, 2, [2, 1, 3, 0], 1, 2, True),
    ("threads_big_1x1", (2, 64, 28, 28), 96, 1, 1, 0, 1, 1, False),
    ("threads_big_dilated", (1, 16, 30, 30), 24, 3, 1, 2, 2, 1, True),
]


def conv_src(out, kernel, stride, pad, dilation, groups, bias):
    args = [f"x, {out}, kernel={fmt(kernel)}"]
    if stride != 1:
        args.append(f"stride={fmt(stride)}")
    if pad != 0:
        args.append(f"pad={fmt(pad)}")
    if dilation != 1:
        args.append(f"dilation={fmt(dilation)}")
    if groups != 1:
        args.append(f"groups={groups}")
    if not bias:
        args.append("bias=false")
    return f"return conv2d({', '.join(args)}) as conv"


for (n, shape, out, k, s, p, d, g, b) in CONV:
    case("conv2d/" + n, dict(x=shape), conv_src(out, k, s, p, d, g, b),
         lambda W, x, out=out, k=k, s=s, p=p, d=d, g=g, b=b:
         ref_conv(W, "conv", x, out, k, s, p, d, g, b))

# The blocked layout (passes/choose_layouts.c, kernels/nnk_conv_nchwc.h): output channels a multiple of 16, every
# edge of its tiles: rows not a multiple of the tile width (13 = 8+4+1, 23 = 14+8+1), 1, 2, 3 and 5 blocks of
# output channels (pieces of a group of 4), plain input of 3 and of 20 channels, a 1x1 plane longer than one
# run of 196 pixels, strides, dilation, asymmetric and oversized padding, batches.
CONV_NCHWC = [
    ("3x3_pad1", (1, 16, 13, 13), 16, 3, 1, 1, 1, 1, True),
    ("3x3_32ch_w23", (2, 32, 9, 23), 32, 3, 1, 1, 1, 1, True),
    ("3x3_48out", (1, 16, 7, 7), 48, 3, 1, 1, 1, 1, False),
    ("3x3_80out_stride2", (1, 32, 15, 14), 80, 3, 2, 1, 1, 1, True),
    ("stem_rgb_7x7_s2", (2, 3, 29, 31), 32, 7, 2, 3, 1, 1, False),
    ("plain_20ch", (1, 20, 11, 12), 16, 3, 1, 1, 1, 1, True),
    ("1x1_long_run", (1, 32, 21, 20), 64, 1, 1, 0, 1, 1, True),
    ("1x1_stride2", (2, 64, 14, 13), 32, 1, 2, 0, 1, 1, True),
    ("dilation2", (1, 16, 17, 16), 16, 3, 1, 2, 2, 1, True),
    ("pad_asym", (1, 16, 10, 9), 32, 3, 1, [2, 0, 1, 3], 1, 1, True),
    ("large_pad", (1, 16, 4, 5), 16, 3, 1, 4, 1, 1, True),
    ("kernel_hw", (1, 16, 12, 11), 16, [1, 5], [1, 2], [0, 2], 1, 1, True),
    ("7x7_plane", (2, 64, 7, 7), 128, 3, 1, 1, 1, 1, True),
    ("single_pixel", (3, 16, 1, 1), 16, 1, 1, 0, 1, 1, True),
    ("batch_of_1x1_planes", (30, 32, 1, 1), 80, 3, 1, 1, 1, 1, True),        # images as the pixels of a run
    ("batch_to_1x1_stride2", (5, 3, 2, 2), 48, 3, 2, 1, 1, 1, False),
    ("batch_of_4x3_planes", (30, 16, 4, 3), 48, 3, 1, 1, 1, 1, True),        # position by position
    ("batch_of_2x2_stride2", (3, 32, 4, 4), 32, 3, 2, 1, 1, 1, True),
    ("batch_of_4x4_dilated", (2, 16, 8, 8), 16, 3, 2, 2, 2, 1, True),
    # groups: within a block (4 and 8 channels a group) and of whole blocks (16 in, 16 or 32 out; 32 in, 64 out)
    ("groups_of_4", (1, 64, 13, 13), 64, 3, 1, 1, 1, 16, True),
    ("groups_of_8_stride2", (2, 64, 15, 14), 64, 3, 2, 1, 1, 8, False),
    ("groups_of_16", (1, 64, 9, 23), 64, 3, 1, 1, 1, 4, True),
    ("groups_16_in_32_out", (1, 32, 11, 12), 64, 3, 1, 1, 1, 2, True),
    ("groups_32_in_64_out", (1, 64, 7, 7), 128, 3, 1, 1, 1, 2, True),
    ("groups_1x1", (1, 64, 10, 10), 128, 1, 1, 0, 1, 4, True),
    ("groups_batch_of_1x1_planes", (30, 64, 1, 1), 64, 3, 1, 1, 1, 8, True),
    # a layer whose weights for a unit exceed NNK_CONV_CHUNK_BYTES: input blocks in chunks (ResNet-50's last stage)
    ("input_chunks_7x7", (1, 256, 7, 7), 128, 3, 1, 1, 1, 1, True),
    ("input_chunks_stride2", (2, 192, 13, 12), 64, 3, 2, 1, 1, 1, False),
    # a window of the kernel's taps where the others read only padding (select_kernels.c's live_taps): 2x2 of a
    # stride-2 3x3 on plain input, one row of three on 1-pixel rows, 3 rows of 5 on a 2x3 plane, the centre of
    # a dilated kernel
    ("window_plain_to_1x1_stride2", (5, 3, 2, 2), 48, 3, 2, 1, 1, 1, True),
    ("window_rows_only", (2, 16, 1, 6), 32, 3, 1, 1, 1, 1, True),
    ("window_5x5_on_2x3", (3, 32, 2, 3), 16, 5, 1, 2, 1, 1, True),
    ("window_dilated", (2, 16, 2, 2), 16, 3, 1, 2, 2, 1, True),
]
for (n, shape, out, k, s, p, d, g, b) in CONV_NCHWC:
    case("nchwc/" + n, dict(x=shape), conv_src(out, k, s, p, d, g, b),
         lambda W, x, out=out, k=k, s=s, p=p, d=d, g=g, b=b:
         ref_conv(W, "conv", x, out, k, s, p, d, g, b))



def ref_window_nonfinite(W, x):
    """A 3x3 layer on 1x1 planes, run as its centre tap, with an inf and a NaN among the taps left out: PyTorch
    multiplies them by the padding's zeros, which makes every output of those two channels NaN."""
    m = W.mod("conv", nn.Conv2d(16, 32, 3, padding=1))
    with torch.no_grad():
        m.weight[3, 5, 0, 0] = float("inf")
        m.weight[7, 2, 2, 1] = float("nan")
    W.tensors["conv.weight"][3, 5, 0, 0] = np.inf
    W.tensors["conv.weight"][7, 2, 2, 1] = np.nan
    return torch.relu(m(x))


case("nchwc/window_nonfinite_weights", dict(x=(3, 16, 1, 1)), "return relu(conv2d(x, 32, kernel=3, pad=1) as conv)",
     ref_window_nonfinite)
case("nchwc/window_folded_bias", dict(x=(4, 16, 1, 1)),
     "return relu(batchnorm(conv2d(x, 32, kernel=3, pad=1, bias=false) as conv) as bn)",
     lambda W, x: torch.relu(W.mod("bn", nn.BatchNorm2d(32))(ref_conv(W, "conv", x, 32, 3, 1, 1, bias=False))))

case("nchwc/bottleneck_pool", dict(x=(2, 3, 24, 22)), """
s = relu(conv2d(x, 32, kernel=3, stride=2, pad=1) as stem)
s = maxpool(s, 3, stride=2, pad=1)
y = relu(conv2d(s, 16, kernel=1) as a)
y = relu(conv2d(y, 16, kernel=3, pad=1) as b)
y = conv2d(y, 32, kernel=1) as c
y = relu(y + s)
return global_avgpool(y), y
""", lambda W, x: (lambda s: (lambda y: (y.mean((2, 3), keepdim=True), y))(
    torch.relu(ref_conv(W, "c", torch.relu(ref_conv(W, "b", torch.relu(ref_conv(W, "a", s, 16, 1)), 16, 3, 1, 1)), 32, 1) + s)))(
    F.max_pool2d(torch.relu(ref_conv(W, "stem", x, 32, 3, 2, 1)), 3, 2, 1)))

# Winograd F(4x4, 3x3) (kernels/nnk_winograd.h): 3x3 stride-1 layers on planes of 49 tiles or more, the
# last tiles partly past the plane, 1, 3 and 9 blocks of output channels (groups of 8), batches.
for (n, shape, out) in [("28x28", (1, 16, 28, 28), 16), ("odd_29x31", (2, 32, 29, 31), 48),
                        ("144_out", (1, 16, 25, 26), 144), ("batch3", (3, 48, 28, 28), 32)]:
    case("winograd/" + n, dict(x=shape), conv_src(out, 3, 1, 1, 1, 1, True),
         lambda W, x, out=out: ref_conv(W, "conv", x, out, 3, 1, 1))

case("winograd/residual_relu_chain", dict(x=(1, 32, 28, 28)), """
y = relu(conv2d(x, 32, kernel=3, pad=1) as a)
y = relu(conv2d(y, 32, kernel=3, pad=1) as b + x)
return sigmoid(conv2d(y, 32, kernel=3, pad=1) as c)
""", lambda W, x: torch.sigmoid(ref_conv(W, "c", torch.relu(ref_conv(W, "b", torch.relu(ref_conv(W, "a", x, 32, 3, 1, 1)), 32, 3, 1, 1) + x),
                                         32, 3, 1, 1)))

# Winograd F(2x2, 3x3): planes of fewer than 49 tiles of 4x4 but 49 or more of 2x2 (a 14x14 plane, an odd
# one whose last tiles are partly past it, a batch of 10x10 ones), 4, 3 and 1 blocks of output channels.
for (n, shape, out) in [("14x14", (1, 64, 14, 14), 64), ("odd_13x15", (1, 32, 13, 15), 48), ("batch2_10x10", (2, 16, 10, 10), 16)]:
    case("winograd2/" + n, dict(x=shape), conv_src(out, 3, 1, 1, 1, 1, True),
         lambda W, x, out=out: ref_conv(W, "conv", x, out, 3, 1, 1))

case("nchwc/resnext_block", dict(x=(2, 32, 12, 12)), """
y = relu(conv2d(x, 64, kernel=1) as a)
y = relu(conv2d(y, 64, kernel=3, pad=1, groups=16) as b)
return relu(conv2d(y, 32, kernel=1) as c + x)
""", lambda W, x: torch.relu(ref_conv(W, "c", torch.relu(ref_conv(W, "b", torch.relu(ref_conv(W, "a", x, 64, 1)), 64, 3, 1, 1, 1, 16)), 32, 1) + x))

case("nchwc/batch_1x1_residual_relu", dict(x=(29, 32, 1, 1)), """
y = relu(conv2d(x, 32, kernel=3, pad=1) as a)
return relu(conv2d(y, 32, kernel=1) as b + x)
""", lambda W, x: torch.relu(ref_conv(W, "b", torch.relu(ref_conv(W, "a", x, 32, 3, 1, 1)), 32, 1) + x))

case("nchwc/dense_concat_bn_avgpool", dict(x=(2, 3, 12, 12)), """
s = conv2d(x, 32, kernel=3, pad=1) as stem
y = conv2d(relu(batchnorm(s) as bn1), 16, kernel=1) as c1
s = concat([s, y], axis=1)
s = relu(batchnorm(s) as bn2)
return avgpool(conv2d(s, 32, kernel=1) as c2, 2)
""", lambda W, x: (lambda s: (lambda s2: F.avg_pool2d(ref_conv(W, "c2", torch.relu(W.mod("bn2", nn.BatchNorm2d(48))(s2)), 32, 1), 2))(
    torch.cat([s, ref_conv(W, "c1", torch.relu(W.mod("bn1", nn.BatchNorm2d(32))(s)), 16, 1)], 1)))(ref_conv(W, "stem", x, 32, 3, 1, 1)))

case("nchwc/batch_small_planes_gelu_residual", dict(x=(16, 32, 3, 2)), """
y = gelu(conv2d(x, 32, kernel=3, pad=1) as a)
return sigmoid(conv2d(y, 32, kernel=1) as b + x)
""", lambda W, x: torch.sigmoid(ref_conv(W, "b", F.gelu(ref_conv(W, "a", x, 32, 3, 1, 1)), 32, 1) + x))

case("nchwc/sigmoid_mul_flatten", dict(x=(1, 16, 6, 6)), """
y = conv2d(x, 32, kernel=3, pad=1) as a
z = sigmoid(y) * y
return flatten(avgpool(z, 2))
""", lambda W, x: (lambda y: F.avg_pool2d(torch.sigmoid(y) * y, 2).flatten(1))(ref_conv(W, "a", x, 32, 3, 1, 1)))

case("conv2d/chain_scoped_names", dict(x=(1, 3, 9, 9)), """
y = relu(conv2d(x, 4, kernel=3, stride=2, pad=1) as features.0)
return conv2d(y, 6, kernel=[1, 3], pad=[0, 1], groups=2, bias=false) as features.2
""", lambda W, x: ref_conv(W, "features.2", torch.relu(ref_conv(W, "features.0", x, 4, 3, 2, 1)),
                           6, (1, 3), 1, (0, 1), 1, 2, False))

# ---- linear ----
for (n, shape, out, bias) in [
        ("rank1", (7,), 5, True),
        ("rank2", (4, 7), 5, True),
        ("rank3", (2, 3, 7), 5, True),
        ("rank4", (2, 3, 2, 6), 4, True),
        ("rank5", (2, 1, 3, 2, 5), 3, True),
        ("bias_false", (3, 9), 4, False),
        ("rank3_bias_false", (2, 5, 8), 1, False),
        ("out1", (6, 4), 1, True),
        ("threads_big", (64, 256), 192, True),
        ("threads_big_rank3", (2, 197, 384), 384, True)]:
    case("linear/" + n, dict(x=shape),
         f"return linear(x, {out}{'' if bias else ', bias=false'}) as fc",
         lambda W, x, out=out, bias=bias: W.mod("fc", nn.Linear(x.shape[-1], out, bias=bias))(x))

case("linear/mlp_keys", dict(x=(2, 4, 6)),
     "return linear(gelu(linear(x, 12) as mlp.0), 6) as mlp.3",
     lambda W, x: W.mod("mlp.3", nn.Linear(12, 6))(F.gelu(W.mod("mlp.0", nn.Linear(6, 12))(x))))

# ---- batchnorm ----
for (n, shape, eps) in [
        ("rank4", (2, 3, 5, 4), None),
        ("rank4_eps1e-3", (1, 6, 3, 3), 1e-3),
        ("rank2", (5, 7), None),
        ("rank3", (2, 4, 9), None),
        ("rank5", (2, 3, 2, 3, 4), None),
        ("threads_big", (4, 64, 28, 28), None)]:
    case("batchnorm/" + n, dict(x=shape),
         f"return batchnorm(x{'' if eps is None else f', eps={eps}'}) as bn",
         lambda W, x, eps=eps: W.mod("bn", batchnorm_module(x.dim(), x.shape[1], eps or 1e-5))(x))

case("batchnorm/conv_bn_relu", dict(x=(2, 3, 8, 8)),
     "return relu(batchnorm(conv2d(x, 5, kernel=3, pad=1, bias=false) as conv1) as bn1)",
     lambda W, x: torch.relu(W.mod("bn1", nn.BatchNorm2d(5))(ref_conv(W, "conv1", x, 5, 3, 1, 1, bias=False))))

# ---- layernorm ----
for (n, shape, eps) in [
        ("rank1", (9,), None),
        ("rank2", (4, 7), None),
        ("rank3", (2, 5, 8), None),
        ("rank4_eps1e-6", (2, 3, 4, 6), 1e-6),
        ("rank5", (2, 1, 3, 2, 5), None),
        ("dim1", (3, 4, 1), None),
        ("threads_big", (4, 197, 768), 1e-6)]:
    case("layernorm/" + n, dict(x=shape),
         f"return layernorm(x{'' if eps is None else f', eps={eps}'}) as ln",
         lambda W, x, eps=eps: W.mod("ln", nn.LayerNorm(x.shape[-1], eps=eps or 1e-5))(x))

# a large mean and a small variance: a one-pass E[x²] - E[x]² in float32 loses every digit (error ~0.1).
# The reference rounds the intermediate to float32 as nnc must.
case("layernorm/offset_input", dict(x=(3, 16)), "return layernorm(x * 0.1 + 100.0) as ln",
     lambda W, x: W.mod("ln", nn.LayerNorm(16))(f32(x * 0.1 + 100.0)))

# Input names that the generated C uses itself (a local, its macros, its weight offsets) are renamed there.
case("names/generated_c_names", dict(t=(8, 4), N_OPS=(8, 4), SCRATCH_FLOATS=(8, 4), w_l_weight=(8, 4)),
     "return linear(t + N_OPS * SCRATCH_FLOATS - w_l_weight, 48) as l",
     lambda W, t, N_OPS, SCRATCH_FLOATS, w_l_weight: W.mod("l", nn.Linear(4, 48))(t + N_OPS * SCRATCH_FLOATS - w_l_weight))

# ---- multihead_attention / cross_attention ----
for (n, shape, heads, causal) in [
        ("basic", (2, 5, 8), 2, False),
        ("heads1", (1, 4, 6), 1, False),
        ("heads3_odd_len", (2, 7, 12), 3, False),
        ("causal", (2, 5, 8), 2, True),
        ("causal_heads4", (1, 9, 16), 4, True),
        ("len1", (3, 1, 8), 2, False),
        ("len1_causal", (2, 1, 4), 1, True),
        ("heads_eq_dim", (1, 3, 4), 4, False),
        ("threads_big", (2, 50, 64), 4, False),
        ("threads_big_causal", (2, 33, 48), 3, True)]:
    case("multihead_attention/" + n, dict(x=shape),
         f"return multihead_attention(x, {heads}{', causal=true' if causal else ''}) as attn",
         lambda W, x, heads=heads, causal=causal: ref_mha(W, "attn", x, heads, causal))

case("multihead_attention/keyword_heads", dict(x=(1, 3, 8)),
     "return multihead_attention(x, heads=2, causal=false) as self_attention",
     lambda W, x: ref_mha(W, "self_attention", x, 2))

for (n, xs, ms, heads) in [
        ("basic", (2, 4, 8), (2, 6, 8), 2),
        ("heads1_short_memory", (1, 5, 6), (1, 2, 6), 1),
        ("query_len1", (2, 1, 8), (2, 7, 8), 4),
        ("memory_len1", (2, 3, 8), (2, 1, 8), 2),
        ("threads_big", (2, 20, 64), (2, 45, 64), 8)]:
    case("cross_attention/" + n, dict(x=xs, mem=ms),
         f"return cross_attention(x, mem, {heads}) as xattn",
         lambda W, x, mem, heads=heads: ref_mha(W, "xattn", x, heads, memory=mem))

# ---- elementwise activations ----
ACTS = [
    ("relu", "relu(x)", torch.relu),
    ("gelu", "gelu(x)", F.gelu),
    ("gelu_none", 'gelu(x, approximate="none")', F.gelu),
    ("gelu_tanh", 'gelu(x, approximate="tanh")', lambda x: F.gelu(x, approximate="tanh")),
    ("sigmoid", "sigmoid(x)", torch.sigmoid),
    ("tanh", "tanh(x)", torch.tanh),
    ("silu", "silu(x)", F.silu),
    ("relu6", "relu6(x)", F.relu6),
    ("hardsigmoid", "hardsigmoid(x)", F.hardsigmoid),
    ("hardswish", "hardswish(x)", F.hardswish),
    ("abs", "abs(x)", torch.abs),
    ("clamp", "clamp(x, -0.5, 1.25)", lambda x: torch.clamp(x, -0.5, 1.25)),
    ("clamp_min", "clamp(x, min=0.25)", lambda x: torch.clamp(x, min=0.25)),
    ("clamp_max", "clamp(x, max=-0.5)", lambda x: torch.clamp(x, max=-0.5)),
    ("clamp_0_6", "clamp(x, 0, 6)", lambda x: torch.clamp(x, 0, 6)),
    ("hardtanh", "hardtanh(x)", F.hardtanh),
    ("hardtanh_bounds", "hardtanh(x, -2.0, 0.5)", lambda x: F.hardtanh(x, -2.0, 0.5)),
]
# on positive inputs (and exp on moderate ones, whose float32 result stays finite)
for (n, expr, fn, gen) in [("sqrt", "sqrt(x)", torch.sqrt, "pos"), ("rsqrt", "rsqrt(x)", torch.rsqrt, "pos"),
                           ("log", "log(x)", torch.log, "pos"), ("exp", "exp(x)", torch.exp, "wide")]:
    for shape in [(11,), (2, 3, 5), (2, 3, 4, 5)]:
        case(f"{n}/rank{len(shape)}", dict(x=shape), "return " + expr, lambda W, x, fn=fn: fn(x), gen={"x": gen})
    case(f"{n}/threads_big", dict(x=(4, 64, 32, 32)), "return " + expr, lambda W, x, fn=fn: fn(x), gen={"x": gen})
for n, fn in [("relu6", F.relu6), ("hardswish", F.hardswish), ("hardsigmoid", F.hardsigmoid)]:
    case(f"fuse/conv2d_{n}", dict(x=(2, 3, 9, 9)), f"return {n}(conv2d(x, 16, kernel=3, pad=1) as c)",
         lambda W, x, fn=fn: fn(ref_conv(W, "c", x, 16, 3, 1, 1)))
    case(f"fuse/linear_{n}_residual", dict(x=(20, 16)), f"return {n}(linear(x, 16) as fc + x)",
         lambda W, x, fn=fn: fn(W.mod("fc", nn.Linear(16, 16))(x) + x))
ACT_SHAPES = [(11,), (3, 7), (2, 3, 5), (2, 3, 4, 5), (1, 2, 3, 4, 5)]
for (n, expr, fn) in ACTS:
    for shape in ACT_SHAPES:
        case(f"{n}/rank{len(shape)}", dict(x=shape), "return " + expr, lambda W, x, fn=fn: fn(x), gen={"x": "wide"})
    case(f"{n}/extreme", dict(x=(4, 64)), "return " + expr, lambda W, x, fn=fn: fn(x), gen={"x": "big"})
    case(f"{n}/threads_big", dict(x=(4, 64, 32, 32)), "return " + expr, lambda W, x, fn=fn: fn(x))

# ---- softmax ----
for (n, shape, axis) in [
        ("rank1", (13,), None),
        ("rank2_last", (4, 9), -1),
        ("rank2_axis0", (4, 9), 0),
        ("rank3_axis1", (2, 5, 3), 1),
        ("rank3_axis-2", (2, 5, 3), -2),
        ("rank4_axis1", (2, 3, 4, 5), 1),
        ("rank4_axis2", (2, 3, 4, 5), 2),
        ("rank4_axis0", (3, 2, 2, 3), 0),
        ("rank5_axis3", (2, 2, 3, 4, 3), 3),
        ("rank5_last", (2, 2, 3, 4, 3), 4),
        ("axis_len1", (3, 1, 4), 1),
        ("threads_big", (8, 12, 197, 197), -1)]:
    case("softmax/" + n, dict(x=shape), f"return softmax(x{'' if axis is None else f', axis={axis}'})",
         lambda W, x, axis=axis: torch.softmax(x, dim=-1 if axis is None else axis), gen={"x": "wide"})
case("softmax/large_logits", dict(x=(3, 17)), "return softmax(x * 40.0, axis=1)",
     lambda W, x: torch.softmax(x * 40.0, 1), gen={"x": "big"})
case("softmax/keyword_axis_negative", dict(x=(2, 6, 5)), "return softmax(x, axis=-3)",
     lambda W, x: torch.softmax(x, 0))

# ---- maxpool / avgpool ----
# (name, x shape, kernel, stride (None: default), pad)
POOLS = [
    ("k2", (1, 2, 8, 8), 2, None, 0),
    ("k2_odd_size", (2, 3, 7, 9), 2, None, 0),
    ("k3_s2_p1", (2, 3, 9, 10), 3, 2, 1),
    ("k3_s1_p1", (1, 4, 6, 5), 3, 1, 1),
    ("k_hw_s_hw", (2, 2, 9, 11), [2, 3], [1, 2], 0),
    ("k_hw_pad_hw", (1, 3, 8, 9), [3, 5], [2, 1], [1, 2]),
    ("k3_default_stride_odd", (1, 2, 11, 10), 3, None, 0),
    ("k_eq_input", (2, 3, 5, 6), [5, 6], None, 0),
    ("s3_k2", (1, 2, 10, 11), 2, 3, 0),
    ("threads_big", (2, 64, 56, 56), 3, 2, 1),
]
for (n, shape, k, s, p) in POOLS:
    args = f"x, kernel={fmt(k)}" + ("" if s is None else f", stride={fmt(s)}") + ("" if p == 0 else f", pad={fmt(p)}")
    case("maxpool/" + n, dict(x=shape), f"return maxpool({args})",
         lambda W, x, k=k, s=s, p=p: ref_maxpool(x, k, s, p))
    case("avgpool/" + n, dict(x=shape), f"return avgpool({args})",
         lambda W, x, k=k, s=s, p=p: ref_avgpool(x, k, s, p))
case("maxpool/all_negative_padded", dict(x=(1, 2, 5, 5)), "return maxpool(-x * x - 1.0, kernel=3, stride=2, pad=1)",
     lambda W, x: ref_maxpool(-x * x - 1.0, 3, 2, 1))
# ceil_mode (GoogLeNet, SqueezeNet, Inception) and count_include_pad=false: (name, shape, kernel, stride, pad)
for (n, shape, k, st, p) in [("k3_s2", (1, 2, 8, 8), 3, 2, 0), ("k3_s2_p1", (2, 3, 9, 10), 3, 2, 1), ("k2_s2_odd", (1, 2, 7, 9), 2, 2, 0),
                             ("k3_s3_p1", (1, 2, 10, 11), 3, 3, 1), ("k_hw", (1, 2, 9, 10), [3, 2], [2, 3], [1, 1]),
                             ("window_past_input", (2, 3, 2, 2), 3, 2, 0), ("window_past_input_p1", (1, 2, 3, 4), 4, 3, 1)]:
    args = f"x, kernel={fmt(k)}, stride={fmt(st)}" + ("" if p == 0 else f", pad={fmt(p)}")
    case(f"maxpool/ceil_{n}", dict(x=shape), f"return maxpool({args}, ceil_mode=true)",
         lambda W, x, k=k, st=st, p=p: F.max_pool2d(x, pair(k), pair(st), pair(p), ceil_mode=True))
    for ceil, incl in [(True, True), (True, False)] + ([] if n.startswith("window_past") else [(False, False)]):
        case(f"avgpool/{n}_ceil{int(ceil)}_incl{int(incl)}", dict(x=shape),
             f"return avgpool({args}, ceil_mode={fmt(ceil)}, count_include_pad={fmt(incl)})",
             lambda W, x, k=k, st=st, p=p, ceil=ceil, incl=incl: nn.AvgPool2d(pair(k), pair(st), pair(p), ceil_mode=ceil,
                                                                               count_include_pad=incl)(x))
# Beyond PyTorch's pooling (spec: int or [h, w]); ops.def accepts [top, left, bottom, right] as conv2d does.
case("maxpool/pad_asym", dict(x=(1, 2, 7, 8)), "return maxpool(x, kernel=3, stride=2, pad=[1, 0, 1, 1])",
     lambda W, x: ref_maxpool(x, 3, 2, [1, 0, 1, 1]))

# ---- global_avgpool / adaptive_avgpool ----
for (n, shape) in [("basic", (2, 5, 7, 9)), ("1x1", (3, 4, 1, 1)), ("threads_big", (8, 512, 7, 7))]:
    case("global_avgpool/" + n, dict(x=shape), "return global_avgpool(x)",
         lambda W, x: F.adaptive_avg_pool2d(x, 1))
case("global_avgpool/flatten_linear", dict(x=(2, 6, 4, 3)), "return linear(flatten(global_avgpool(x)), 3) as fc",
     lambda W, x: W.mod("fc", nn.Linear(6, 3))(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))

for (n, shape, size) in [
        ("divisible", (1, 2, 8, 8), 4),
        ("smaller_nondivisible", (2, 3, 7, 7), 3),
        ("smaller_hw", (1, 2, 5, 9), [2, 4]),
        ("larger", (2, 2, 3, 3), 7),
        ("larger_hw", (1, 3, 4, 2), [6, 5]),
        ("mixed", (1, 2, 3, 10), [5, 4]),
        ("same", (1, 2, 6, 5), [6, 5]),
        ("to1", (2, 4, 5, 3), 1),
        ("resnet_7x7", (1, 8, 13, 11), 7),
        ("threads_big", (2, 64, 30, 29), [7, 6])]:
    case("adaptive_avgpool/" + n, dict(x=shape), f"return adaptive_avgpool(x, {fmt(size)})",
         lambda W, x, size=size: nn.AdaptiveAvgPool2d(pair(size))(x))
case("adaptive_avgpool/keyword_size", dict(x=(1, 2, 9, 9)), "return adaptive_avgpool(x, size=[2, 3])",
     lambda W, x: nn.AdaptiveAvgPool2d((2, 3))(x))

# ---- pad ----
for (n, shape, axis, before, after, value) in [
        ("rank4_channels", (2, 3, 4, 4), 1, 2, 3, None),
        ("rank4_last_value", (1, 2, 3, 4), -1, 1, 2, 1.5),
        ("axis0", (2, 3), 0, 1, 1, None),
        ("before_only", (2, 3, 5), 2, 3, 0, -2.0),
        ("after_only", (2, 3, 5), -2, 0, 2, None),
        ("rank1", (5,), 0, 2, 1, 0.5),
        ("rank5_axis2", (1, 2, 3, 2, 2), 2, 1, 2, None),
        ("zero_zero", (2, 3), 1, 0, 0, None)]:
    v = "" if value is None else f", value={value}"
    case("pad/" + n, dict(x=shape), f"return pad(x, {axis}, {before}, {after}{v})",
         lambda W, x, axis=axis, before=before, after=after, value=value:
         ref_pad(x, axis, before, after, value or 0.0))
case("pad/shortcut_optionA", dict(x=(2, 4, 8, 8)),
     "return pad(slice(slice(x, 2, 0, 8, step=2), 3, 0, 8, step=2), axis=1, before=2, after=2)",
     lambda W, x: ref_pad(x[:, :, ::2, ::2], 1, 2, 2))

# ---- dropout ----
case("dropout/default", dict(x=(2, 3, 4)), "return dropout(x)", lambda W, x: x)
case("dropout/p0", dict(x=(5, 6)), "return dropout(x, p=0.0)", lambda W, x: x)
case("dropout/in_chain", dict(x=(2, 8)), "return relu(dropout(x * 2.0, 0.1)) + x",
     lambda W, x: torch.relu(x * 2.0) + x)

# ---- flatten / reshape ----
for (n, shape, start) in [
        ("rank4_default", (2, 3, 4, 5), None),
        ("rank4_start0", (2, 3, 4, 5), 0),
        ("rank4_start2", (2, 3, 4, 5), 2),
        ("rank4_start3", (2, 3, 4, 5), 3),
        ("rank4_start-2", (2, 3, 4, 5), -2),
        ("rank2", (3, 4), None),
        ("rank5_start1", (2, 1, 3, 2, 2), 1)]:
    case("flatten/" + n, dict(x=shape), f"return flatten(x{'' if start is None else f', start={start}'})",
         lambda W, x, start=start: torch.flatten(x, 1 if start is None else start))
case("flatten/between_ops", dict(x=(2, 3, 4, 4)), "return relu(flatten(x * 2.0)) - 1.0",
     lambda W, x: torch.relu(torch.flatten(x * 2.0, 1)) - 1.0)

for (n, shape, new) in [
        ("minus1_last", (2, 3, 4), [6, -1]),
        ("minus1_first", (2, 3, 4), [-1, 4]),
        ("minus1_only", (2, 3, 4), [-1]),
        ("minus1_middle", (2, 3, 4), [2, -1, 2, 1]),
        ("explicit", (6, 4), [2, 2, 2, 3]),
        ("to_rank5", (24,), [1, 2, 3, 1, 4]),
        ("from_rank5", (1, 2, 3, 1, 4), [4, 6]),
        ("vit_tokens", (2, 8, 3, 3), [2, 8, 9])]:
    case("reshape/" + n, dict(x=shape), f"return reshape(x, {fmt(new)})",
         lambda W, x, new=new: x.reshape(new))
case("reshape/keyword", dict(x=(3, 4)), "return reshape(x, shape=[1, -1])", lambda W, x: x.reshape(1, -1))
case("reshape/from_shape_props", dict(x=(2, 3, 4, 5)), "return reshape(x, [x.shape[0], x.shape[1], -1]) + 1.0",
     lambda W, x: x.reshape(2, 3, -1) + 1.0)

# ---- transpose ----
for (n, shape, perm) in [
        ("rank2", (3, 5), [1, 0]),
        ("rank3_021", (2, 3, 4), [0, 2, 1]),
        ("rank3_201", (2, 3, 4), [2, 0, 1]),
        ("rank4_nhwc", (2, 3, 4, 5), [0, 2, 3, 1]),
        ("rank4_reverse", (2, 3, 4, 5), [3, 2, 1, 0]),
        ("rank5", (2, 3, 1, 4, 2), [4, 0, 2, 1, 3]),
        ("identity", (2, 3, 4), [0, 1, 2]),
        ("size1_axes", (1, 3, 1, 4), [2, 3, 0, 1]),
        ("threads_big", (16, 64, 197), [0, 2, 1])]:
    case("transpose/" + n, dict(x=shape), f"return transpose(x, {fmt(perm)})",
         lambda W, x, perm=perm: x.permute(perm))
case("transpose/keyword", dict(x=(2, 3, 4)), "return transpose(x, perm=[1, 2, 0]) * 3.0",
     lambda W, x: x.permute(1, 2, 0) * 3.0)

# ---- concat ----
for (n, shapes, axis) in [
        ("axis0", [(2, 3), (4, 3)], 0),
        ("axis1_rank4", [(2, 3, 4, 4), (2, 5, 4, 4)], 1),
        ("axis-1", [(2, 3, 2), (2, 3, 5)], -1),
        ("three_axis2", [(1, 2, 3, 4), (1, 2, 1, 4), (1, 2, 2, 4)], 2),
        ("rank1", [(3,), (4,), (1,)], 0),
        ("rank5_axis3", [(2, 1, 2, 3, 2), (2, 1, 2, 1, 2)], 3),
        ("default_axis", [(2, 3), (1, 3)], None),
        ("axis-3", [(2, 3, 4), (1, 3, 4)], -3)]:
    names = [f"t{i}" for i in range(len(shapes))]
    ax = "" if axis is None else f", axis={axis}"
    case("concat/" + n, dict(zip(names, shapes)), f"return concat([{', '.join(names)}]{ax})",
         lambda W, *ts, axis=axis: torch.cat(ts, 0 if axis is None else axis))
case("concat/same_tensor_twice", dict(x=(2, 3)), "return concat([x, x * 2.0, x], axis=1)",
     lambda W, x: torch.cat([x, x * 2.0, x], 1))
case("concat/class_token", dict(x=(2, 4, 8)),
     "cls = expand(param([1, 1, 8]) as class_token, [x.shape[0], -1, -1])\nreturn concat([cls, x], axis=1)",
     lambda W, x: torch.cat([W.param("class_token", (1, 1, 8)).expand(2, -1, -1), x], 1))

# ---- slice ----
for (n, shape, axis, start, end, step) in [
        ("basic", (2, 6, 3), 1, 1, 4, None),
        ("negative_start", (2, 6, 3), 1, -3, 6, None),
        ("negative_both", (2, 6, 3), 1, -4, -1, None),
        ("clamped_end", (2, 6, 3), 1, 2, 100, None),
        ("clamped_start", (2, 6, 3), 1, -100, 3, None),
        ("clamped_both", (5, 4), 0, -100, 100, None),
        ("step2", (3, 9), 1, 0, 9, 2),
        ("step3_clamped", (3, 10), -1, 1, 100, 3),
        ("step2_negative_start", (2, 7, 2), 1, -5, -1, 2),
        ("axis0", (5, 2, 3), 0, 1, 3, None),
        ("axis-1", (2, 3, 8), -1, 2, 7, None),
        ("rank4_hw_step2", (1, 2, 7, 7), 3, 1, 7, 2),
        ("rank5_axis4", (1, 2, 1, 2, 9), 4, 3, 8, 2),
        ("rank1", (10,), 0, 2, -2, None),
        ("whole", (3, 4), 1, 0, 4, None),
        ("single", (3, 4), 1, 2, 3, None)]:
    st = "" if step is None else f", step={step}"
    case("slice/" + n, dict(x=shape), f"return slice(x, {axis}, {start}, {end}{st})",
         lambda W, x, axis=axis, start=start, end=end, step=step: ref_slice(x, axis, start, end, step or 1))
case("slice/keywords", dict(x=(4, 6)), "return slice(x, axis=1, start=1, end=-1, step=2) + 1.0",
     lambda W, x: x[:, 1:-1:2] + 1.0)
case("slice/two_slices_concat", dict(x=(2, 8)),
     "return concat([slice(x, 1, 4, 8), slice(x, 1, 0, 4)], axis=1)",
     lambda W, x: torch.cat([x[:, 4:8], x[:, 0:4]], 1))

# ---- take ----
for (n, shape, axis, index) in [
        ("axis1_index0", (2, 5, 3), 1, 0),
        ("negative_index", (2, 5, 3), 1, -1),
        ("negative_index2", (2, 5, 3), 1, -5),
        ("axis0", (4, 3), 0, 2),
        ("axis-1", (2, 3, 4), -1, 3),
        ("rank4_axis2", (2, 3, 4, 5), 2, 1),
        ("rank5_axis3", (2, 1, 3, 4, 2), 3, -2),
        ("rank2_to_rank1", (3, 4), 1, 2)]:
    case("take/" + n, dict(x=shape), f"return take(x, {axis}, {index})",
         lambda W, x, axis=axis, index=index: ref_take(x, axis, index))
case("take/keywords_class_token", dict(x=(2, 5, 8)), "return linear(take(x, axis=1, index=0), 3) as head",
     lambda W, x: W.mod("head", nn.Linear(8, 3))(x[:, 0]))

# ---- expand ----
for (n, shape, new) in [
        ("size1_axes", (1, 3, 1), [2, 3, 4]),
        ("minus1_keeps", (2, 1, 4), [-1, 5, -1]),
        ("new_leading", (3, 1), [2, 4, 3, 5]),
        ("new_leading_minus1", (3, 1), [2, -1, 6]),
        ("vit_class_token", (1, 1, 8), [3, -1, -1]),
        ("rank1_to_rank3", (4,), [2, 3, 4]),
        ("noop", (2, 3), [2, 3]),
        ("rank5", (1, 2, 1, 3, 1), [2, 2, 3, 3, 2])]:
    case("expand/" + n, dict(x=shape), f"return expand(x, {fmt(new)})",
         lambda W, x, new=new: x.expand(*new))
case("expand/keyword_then_add", dict(x=(1, 4), y=(3, 4)), "return expand(x, shape=[3, -1]) + y",
     lambda W, x, y: x.expand(3, -1) + y)

# ---- matmul ----
for (n, sa, sb) in [
        ("2d_2d", (3, 4), (4, 5)),
        ("1d_2d", (4,), (4, 5)),
        ("2d_1d", (3, 4), (4,)),
        ("1d_1d", (6,), (6,)),
        ("1d_3d", (4,), (2, 4, 3)),
        ("3d_1d", (2, 3, 4), (4,)),
        ("batched_3d", (2, 3, 4), (2, 4, 5)),
        ("3d_2d_broadcast", (2, 3, 4), (4, 5)),
        ("2d_3d_broadcast", (3, 4), (2, 4, 5)),
        ("4d_3d_broadcast", (2, 1, 3, 4), (3, 4, 5)),
        ("4d_4d_both_broadcast", (2, 1, 3, 4), (1, 3, 4, 2)),
        ("5d", (2, 1, 2, 3, 4), (2, 1, 4, 3)),
        ("inner1", (3, 1), (1, 4)),
        ("odd_sizes", (2, 7, 13), (2, 13, 11)),
        ("threads_big", (4, 128, 96), (4, 96, 160)),
        ("threads_big_2d", (257, 129), (129, 131))]:
    case("matmul/" + n, dict(a=sa, b=sb), "return matmul(a, b)", lambda W, a, b: torch.matmul(a, b))
    case("@/" + n, dict(a=sa, b=sb), "return a @ b", lambda W, a, b: a @ b)
case("matmul/attention_by_hand", dict(q=(2, 5, 8), k=(2, 6, 8), v=(2, 6, 4)),
     "return softmax(q @ transpose(k, [0, 2, 1]) * 0.25) @ v",
     lambda W, q, k, v: torch.softmax(q @ k.transpose(1, 2) * 0.25, -1) @ v)
case("@/precedence", dict(a=(3, 4), b=(4, 2), c=(3, 2)), "return c + a @ b * 2.0",
     lambda W, a, b, c: c + (a @ b) * 2.0)

# ---- scaled_dot_product_attention ----
for (n, sq, sk, sv, causal) in [
        ("rank3", (2, 5, 8), (2, 5, 8), (2, 5, 8), False),
        ("rank4_heads", (2, 3, 5, 8), (2, 3, 5, 8), (2, 3, 5, 8), False),
        ("causal", (2, 6, 4), (2, 6, 4), (2, 6, 4), True),
        ("causal_rank4", (1, 2, 7, 8), (1, 2, 7, 8), (1, 2, 7, 8), True),
        ("cross_lengths", (2, 4, 8), (2, 7, 8), (2, 7, 8), False),
        ("causal_lq_lt_lk", (1, 4, 8), (1, 6, 8), (1, 6, 8), True),
        ("causal_lq_gt_lk", (1, 6, 8), (1, 4, 8), (1, 4, 8), True),
        ("dv_ne_d", (2, 5, 8), (2, 7, 8), (2, 7, 3), False),
        ("rank2", (5, 8), (6, 8), (6, 8), False),
        ("len1", (2, 1, 8), (2, 1, 8), (2, 1, 8), True),
        ("rank5", (2, 1, 2, 3, 4), (2, 1, 2, 5, 4), (2, 1, 2, 5, 4), False),
        ("threads_big", (2, 8, 65, 64), (2, 8, 65, 64), (2, 8, 65, 64), True)]:
    c = ", causal=true" if causal else ""
    case("scaled_dot_product_attention/" + n, dict(q=sq, k=sk, v=sv),
         f"return scaled_dot_product_attention(q, k, v{c})",
         lambda W, q, k, v, causal=causal: ref_sdpa(q, k, v, causal))
case("scaled_dot_product_attention/same_input", dict(x=(2, 5, 6)),
     "return scaled_dot_product_attention(x, x, x, causal=false)", lambda W, x: ref_sdpa(x, x, x))

# ---- param ----
case("param/add_bias", dict(x=(2, 3, 4, 4)), "return x + param([1, 3, 1, 1]) as p",
     lambda W, x: x + W.param("p", (1, 3, 1, 1)))
case("param/pos_embedding_scoped", dict(x=(2, 5, 8)), "return x + param([1, x.shape[1], x.shape[2]]) as encoder.pos_embedding",
     lambda W, x: x + W.param("encoder.pos_embedding", (1, 5, 8)))
case("param/matmul_weight", dict(x=(3, 4)), "return x @ param([4, 6]) as w",
     lambda W, x: x @ W.param("w", (4, 6)))
case("param/only_output", dict(x=(2,)), "return param([2, 3]) as table",
     lambda W, x: W.param("table", (2, 3)))
case("param/keyword_shape", dict(x=(5,)), "return x * param(shape=[5]) as scale",
     lambda W, x: x * W.param("scale", (5,)))

# ---- tensor operators: + - * / with broadcasting ----
BINOPS = [("add", "+", torch.add), ("sub", "-", torch.sub), ("mul", "*", torch.mul), ("div", "/", torch.div)]
BCAST = [
    ("same", (2, 3, 4), (2, 3, 4)),
    ("rank1_same", (7,), (7,)),
    ("b_last_axis", (2, 3, 4, 5), (5,)),
    ("b_channel", (2, 3, 4, 5), (3, 1, 1)),
    ("a_broadcast", (5,), (2, 3, 4, 5)),
    ("both_directions", (1, 4), (3, 1)),
    ("both_directions_rank3", (2, 1, 4), (3, 1)),
    ("both_rank4", (2, 1, 3, 1), (1, 4, 1, 5)),
    ("rank5", (2, 1, 3, 1, 2), (4, 1, 2, 1)),
    ("scalar_shaped", (2, 3), (1,)),
    ("b_size1_all", (1, 1, 1), (2, 3, 4)),
    ("threads_big", (8, 64, 32, 32), (64, 1, 1)),
]
for (opn, sym, fn) in BINOPS:
    for (n, sa, sb) in BCAST:
        case(f"{opn}/{n}", dict(a=sa, b=sb), f"return a {sym} b", lambda W, a, b, fn=fn: fn(a, b),
             gen={"b": "pos"} if opn == "div" else None)

# scalars: literals (int and float) and variables on either side
SCALARS = [
    ("mul_float_right", "x * 0.125", lambda x: x * 0.125),
    ("mul_float_left", "3.5 * x", lambda x: 3.5 * x),
    ("mul_int_literal", "x * 3", lambda x: x * 3),
    ("add_int_literal_left", "1 + x", lambda x: 1 + x),
    ("add_float_right", "x + 0.5", lambda x: x + 0.5),
    ("sub_float_right", "x - 2.5", lambda x: x - 2.5),
    ("sub_float_left", "2.5 - x", lambda x: 2.5 - x),
    ("sub_int_left", "1 - x", lambda x: 1 - x),
    ("div_float_right", "x / 4.0", lambda x: x / 4.0),
    ("div_int_right", "x / 3", lambda x: x / 3),
    ("div_float_left", "1.0 / x", lambda x: 1.0 / x),
    ("div_int_left", "2 / x", lambda x: 2 / x),
    ("negative_literal", "x * -0.5", lambda x: x * -0.5),
    ("exp_literal", "x * 1e-3", lambda x: x * 1e-3),
    ("const_expr", "x * (1.0 / 8)", lambda x: x * 0.125),
    ("const_expr_sqrt", "x * (64 ** -0.5)", lambda x: x * 0.125),
    ("chain", "(2.0 * x - 1.0) / 3.0 + 0.25", lambda x: (2.0 * x - 1.0) / 3.0 + 0.25),
]
for (n, expr, fn) in SCALARS:
    case("scalar/" + n, dict(x=(2, 3, 5)), "return " + expr, lambda W, x, fn=fn: fn(x), gen={"x": "pos"})

case("scalar/let_float_right", dict(x=(3, 4)), "return x * scale", lambda W, x: x * 0.3, lets="let scale = 0.3")
case("scalar/let_float_left", dict(x=(3, 4)), "return scale - x", lambda W, x: 0.3 - x, lets="let scale = 0.3")
case("scalar/let_float_div_left", dict(x=(3, 4)), "return scale / x", lambda W, x: 0.3 / x,
     lets="let scale = 0.3", gen={"x": "pos"})
case("scalar/local_float_both_sides", dict(x=(2, 5)), "s = 1.5\nt = s * 2.0\nreturn (x + s) / t - s * x",
     lambda W, x: (x + 1.5) / 3.0 - 1.5 * x)
case("scalar/float_from_shape", dict(x=(2, 16)), "d = x.shape[-1]\nreturn x * (1.0 / d)", lambda W, x: x / 16.0)
case("scalar/int_variable", dict(x=(2, 5)), "k = 3\nreturn x * k + k", lambda W, x: x * 3 + 3)
case("scalar/float_param_of_block", dict(x=(4, 3)),
     "return scaled(x, 0.75)", lambda W, x: x * 0.75 + 0.75 / x,
     lets="block scaled(x, f: float) {\n    return x * f + f / x\n}", gen={"x": "pos"})

# unary minus
case("neg/rank1", dict(x=(5,)), "return -x", lambda W, x: -x)
case("neg/rank4", dict(x=(2, 3, 4, 5)), "return -x", lambda W, x: -x)
case("neg/of_sum", dict(a=(2, 3), b=(3,)), "return -(a + b)", lambda W, a, b: -(a + b))
case("neg/precedence", dict(x=(2, 3)), "return -x * 2.0 - -x", lambda W, x: (-x) * 2.0 - (-x))
case("neg/double", dict(x=(4,)), "return - -x", lambda W, x: x)

# operator mixes and aliasing
case("ops/precedence", dict(a=(2, 3), b=(2, 3), c=(3,), d=(2, 1), e=(2, 3)),
     "return a + b * c - d / e", lambda W, a, b, c, d, e: a + b * c - d / e, gen={"e": "pos"})
case("ops/self_square", dict(x=(3, 4)), "return x * x + x", lambda W, x: x * x + x)
case("ops/self_sub", dict(x=(3, 4)), "return x - x", lambda W, x: x - x)
case("ops/reuse_after_relu", dict(x=(2, 6)), "y = relu(x)\nreturn y + x * y", lambda W, x: torch.relu(x) + x * torch.relu(x))
case("ops/rebinding", dict(x=(3, 3)), "y = x\nfor i in 0..3 {\n    y = y * 0.5 + x\n}\nreturn y",
     lambda W, x: ((x * 0.5 + x) * 0.5 + x) * 0.5 + x)
case("ops/residual_inplace_hazard", dict(x=(2, 4, 5, 5)),
     "y = conv2d(x, 4, kernel=3, pad=1) as c\nx = relu(x + y)\nreturn x + y",
     lambda W, x: (lambda y: torch.relu(x + y) + y)(ref_conv(W, "c", x, 4, 3, 1, 1)))

# model plumbing: identity, several outputs, an output that is a view of an input
case("model/identity", dict(x=(2, 3)), "return x", lambda W, x: x)
case("model/two_outputs", dict(x=(2, 3), y=(3,)), "return x + y, relu(y)",
     lambda W, x, y: (x + y, torch.relu(y)))
case("model/same_output_twice", dict(x=(2, 3)), "y = x * 2.0\nreturn y, y", lambda W, x: (x * 2.0, x * 2.0))
case("model/output_is_input_and_op", dict(x=(4,)), "return x, -x", lambda W, x: (x, -x))
case("model/view_outputs", dict(x=(2, 3, 4)), "return reshape(x, [-1]), take(x, 1, 1), flatten(dropout(x))",
     lambda W, x: (x.reshape(-1), x[:, 1], torch.flatten(x, 1)))
case("model/unused_input", dict(x=(2, 3), y=(4,)), "return x * 2.0", lambda W, x, y: x * 2.0)
case("model/three_inputs_order", dict(a=(2,), b=(3, 2), c=(2,)), "return (b - a) / c",
     lambda W, a, b, c: (b - a) / c, gen={"c": "pos"})
case("model/block_two_returns", dict(x=(2, 4)), "a, b = split(x)\nreturn b - a",
     lambda W, x: x[:, 2:] - x[:, :2],
     lets="block split(x) {\n    return slice(x, 1, 0, 2), slice(x, 1, 2, 4)\n}")


# ---- patterns the -O2 passes rewrite (fold_bn, fuse_epilogue, fuse_attention, dce, views), and near misses ----
case("fold/conv_bn", dict(x=(2, 3, 7, 7)), "return batchnorm(conv2d(x, 4, kernel=3, stride=2, pad=1) as c) as bn",
     lambda W, x: W.mod("bn", nn.BatchNorm2d(4))(ref_conv(W, "c", x, 4, 3, 2, 1)))
case("fold/conv_nobias_bn_relu", dict(x=(1, 4, 6, 6)),
     "return relu(batchnorm(conv2d(x, 6, kernel=3, pad=1, groups=2, bias=false) as c, eps=1e-3) as bn)",
     lambda W, x: torch.relu(W.mod("bn", nn.BatchNorm2d(6, eps=1e-3))(ref_conv(W, "c", x, 6, 3, 1, 1, 1, 2, False))))
case("fold/depthwise_bn", dict(x=(2, 5, 6, 5)), "return batchnorm(conv2d(x, 5, kernel=3, pad=1, groups=5, bias=false) as c) as bn",
     lambda W, x: W.mod("bn", nn.BatchNorm2d(5))(ref_conv(W, "c", x, 5, 3, 1, 1, 1, 5, False)))
case("fold/linear_bn1d", dict(x=(4, 6)), "return batchnorm(linear(x, 5) as fc) as bn",
     lambda W, x: W.mod("bn", nn.BatchNorm1d(5))(W.mod("fc", nn.Linear(6, 5))(x)))
case("fold/linear_nobias_bn1d", dict(x=(4, 6)), "return batchnorm(linear(x, 5, bias=false) as fc) as bn",
     lambda W, x: W.mod("bn", nn.BatchNorm1d(5))(W.mod("fc", nn.Linear(6, 5, bias=False))(x)))
case("fold/linear_rank3_bn_channel_axis1", dict(x=(2, 3, 6)), "return batchnorm(linear(x, 5) as fc) as bn",
     lambda W, x: W.mod("bn", nn.BatchNorm1d(3))(W.mod("fc", nn.Linear(6, 5))(x)))
case("fold/conv_output_used_twice", dict(x=(1, 3, 5, 5)),
     "y = conv2d(x, 4, kernel=3, pad=1) as c\nreturn batchnorm(y) as bn + y",
     lambda W, x: (lambda y: W.mod("bn", nn.BatchNorm2d(4))(y) + y)(ref_conv(W, "c", x, 4, 3, 1, 1)))
case("fold/conv_output_is_model_output", dict(x=(1, 3, 5, 5)),
     "y = conv2d(x, 4, kernel=3) as c\nreturn y, batchnorm(y) as bn",
     lambda W, x: (lambda y: (y, W.mod("bn", nn.BatchNorm2d(4))(y)))(ref_conv(W, "c", x, 4, 3)))
case("fold/conv_relu_bn_not_folded", dict(x=(1, 3, 5, 5)),
     "return batchnorm(relu(conv2d(x, 4, kernel=3) as c)) as bn",
     lambda W, x: W.mod("bn", nn.BatchNorm2d(4))(torch.relu(ref_conv(W, "c", x, 4, 3))))

for (n, act, fn) in [("relu", "relu", torch.relu), ("gelu", "gelu", F.gelu), ("sigmoid", "sigmoid", torch.sigmoid),
                     ("tanh", "tanh", torch.tanh), ("silu", "silu", F.silu),
                     ("gelu_tanh", 'gelu_t', lambda t: F.gelu(t, approximate="tanh"))]:
    a = (lambda e: f'gelu({e}, approximate="tanh")') if act == "gelu_t" else (lambda e, act=act: f"{act}({e})")
    case(f"epilogue/conv_{n}", dict(x=(2, 3, 6, 6)), "return " + a("conv2d(x, 4, kernel=3, pad=1) as c"),
         lambda W, x, fn=fn: fn(ref_conv(W, "c", x, 4, 3, 1, 1)))
    case(f"epilogue/linear_{n}", dict(x=(2, 3, 8)), "return " + a("linear(x, 6) as fc"),
         lambda W, x, fn=fn: fn(W.mod("fc", nn.Linear(8, 6))(x)))
    case(f"epilogue/conv_add_{n}", dict(x=(2, 4, 5, 5)), "return " + a("x + conv2d(x, 4, kernel=3, pad=1) as c"),
         lambda W, x, fn=fn: fn(x + ref_conv(W, "c", x, 4, 3, 1, 1)))
    case(f"epilogue/linear_{n}_add_{n}", dict(x=(3, 8)), "return " + a(a("linear(x, 8) as fc") + " + x"),
         lambda W, x, fn=fn: fn(fn(W.mod("fc", nn.Linear(8, 8))(x)) + x))
# depthwise and grouped conv2d (nnk_dwconv.h's rows; a product a group past 256 taps a group), each with every
# activation the epilogue fuses, alone and after a residual; rows of 17 and 13 (no vector's multiple)
DW_ACTS = [("relu", "relu", torch.relu), ("relu6", "relu6", F.relu6), ("gelu", "gelu", F.gelu), ("sigmoid", "sigmoid", torch.sigmoid),
           ("tanh", "tanh", torch.tanh), ("silu", "silu", F.silu), ("hardswish", "hardswish", F.hardswish),
           ("hardsigmoid", "hardsigmoid", F.hardsigmoid), ("gelu_tanh", "gelu_t", lambda t: F.gelu(t, approximate="tanh"))]
for (n, act, fn) in DW_ACTS:
    a = (lambda e: f'gelu({e}, approximate="tanh")') if act == "gelu_t" else (lambda e, act=act: f"{act}({e})")
    case(f"dwconv/depthwise_3x3_{n}", dict(x=(2, 24, 15, 17)), "return " + a("conv2d(x, 24, kernel=3, pad=1, groups=24) as c"),
         lambda W, x, fn=fn: fn(ref_conv(W, "c", x, 24, 3, 1, 1, 1, 24)))
    case(f"dwconv/depthwise_7x7_add_{n}", dict(x=(1, 20, 14, 13)), "return " + a("x + conv2d(x, 20, kernel=7, pad=3, groups=20) as c"),
         lambda W, x, fn=fn: fn(x + ref_conv(W, "c", x, 20, 7, 1, 3, 1, 20)))
    case(f"dwconv/groups_of_4_stride2_{n}", dict(x=(2, 16, 15, 15)),
         "return " + a("conv2d(x, 16, kernel=3, stride=2, pad=1, groups=4) as c"),
         lambda W, x, fn=fn: fn(ref_conv(W, "c", x, 16, 3, 2, 1, 1, 4)))
    case(f"dwconv/groups_of_32_add_{n}", dict(x=(1, 64, 9, 9)), "return " + a("x + conv2d(x, 64, kernel=3, pad=1, groups=2) as c"),
         lambda W, x, fn=fn: fn(x + ref_conv(W, "c", x, 64, 3, 1, 1, 1, 2)))
for (n, shape, out, k, s, p, d, g) in [
        ("depthwise_relu6_add_relu", (2, 32, 28, 28), 32, 3, 1, 1, 1, 32),
        ("depthwise_stride2_multiplier2_relu6_add_relu", (1, 12, 23, 21), 24, 5, 2, 2, 1, 12),
        ("depthwise_dilated_pad_past_reach_relu6_add_relu", (1, 7, 9, 11), 7, 3, 1, [3, 1, 1, 3], 2, 7),
        ("groups_of_8_relu6_add_relu", (2, 48, 14, 14), 48, 3, 1, 1, 1, 6),
        ("groups_of_32_relu6_add_relu", (1, 128, 7, 7), 128, 3, 1, 1, 1, 4)]:
    cin = shape[1]
    if out == cin:
        body = f"return relu(x + relu6({conv_src(out, k, s, p, d, g, True)[len('return '):]}))"
        ref = lambda W, x, out=out, k=k, s=s, p=p, d=d, g=g: torch.relu(x + F.relu6(ref_conv(W, "conv", x, out, k, s, p, d, g)))
        case("dwconv/" + n, dict(x=shape), body, ref)
    else:   # the residual is a second input of the output's shape
        body = f"return relu(z + relu6({conv_src(out, k, s, p, d, g, True)[len('return '):]}))"
        oh = (shape[2] + 2 * p - d * (k - 1) - 1) // s + 1
        ow = (shape[3] + 2 * p - d * (k - 1) - 1) // s + 1
        ref = lambda W, x, z, out=out, k=k, s=s, p=p, d=d, g=g: torch.relu(z + F.relu6(ref_conv(W, "conv", x, out, k, s, p, d, g)))
        case("dwconv/" + n, dict(x=shape, z=(shape[0], out, oh, ow)), body, ref)
case("epilogue/conv_bn_add_relu_resnet", dict(x=(2, 4, 6, 6)),
     "y = relu(batchnorm(conv2d(x, 4, kernel=3, pad=1, bias=false) as conv1) as bn1)\n"
     "y = batchnorm(conv2d(y, 4, kernel=3, pad=1, bias=false) as conv2) as bn2\nreturn relu(x + y)",
     lambda W, x: torch.relu(x + W.mod("bn2", nn.BatchNorm2d(4))(ref_conv(W, "conv2", torch.relu(W.mod("bn1", nn.BatchNorm2d(4))(
         ref_conv(W, "conv1", x, 4, 3, 1, 1, bias=False))), 4, 3, 1, 1, bias=False))))
case("epilogue/residual_computed_later", dict(x=(1, 3, 5, 5)),
     "a = conv2d(x, 4, kernel=3, pad=1) as c1\nb = conv2d(x, 4, kernel=1) as c2\nreturn relu(a + b)",
     lambda W, x: torch.relu(ref_conv(W, "c1", x, 4, 3, 1, 1) + ref_conv(W, "c2", x, 4, 1)))
case("epilogue/add_broadcast_param", dict(x=(2, 3, 4, 4)),
     "return relu(conv2d(x, 5, kernel=1) as c + param([1, 5, 1, 1]) as p)",
     lambda W, x: torch.relu(ref_conv(W, "c", x, 5, 1) + W.param("p", (1, 5, 1, 1))))
case("epilogue/add_broadcast_larger", dict(x=(1, 4), z=(3, 5)), "return linear(x, 5) as fc + z",
     lambda W, x, z: W.mod("fc", nn.Linear(4, 5))(x) + z)
case("epilogue/sub_not_add", dict(x=(3, 6)), "return relu(x - linear(x, 6) as fc)",
     lambda W, x: torch.relu(x - W.mod("fc", nn.Linear(6, 6))(x)))
case("epilogue/self_add", dict(x=(3, 6)), "y = linear(x, 6) as fc\nreturn y + y",
     lambda W, x: (lambda y: y + y)(W.mod("fc", nn.Linear(6, 6))(x)))
case("epilogue/two_adds", dict(x=(3, 6), z=(3, 6)), "return relu(linear(x, 6) as fc + x + z)",
     lambda W, x, z: torch.relu(W.mod("fc", nn.Linear(6, 6))(x) + x + z))
case("epilogue/three_activations", dict(x=(3, 6)), "return tanh(sigmoid(relu(linear(x, 6) as fc)))",
     lambda W, x: torch.tanh(torch.sigmoid(torch.relu(W.mod("fc", nn.Linear(6, 6))(x)))))
case("epilogue/activation_of_output", dict(x=(2, 6)), "y = linear(x, 4) as fc\nreturn y, relu(y)",
     lambda W, x: (lambda y: (y, torch.relu(y)))(W.mod("fc", nn.Linear(6, 4))(x)))
case("epilogue/relu_output_then_add", dict(x=(2, 4)), "y = relu(linear(x, 4) as fc)\nreturn y, y + x",
     lambda W, x: (lambda y: (y, y + x))(torch.relu(W.mod("fc", nn.Linear(4, 4))(x))))
case("epilogue/residual_is_input_of_later_layer", dict(x=(2, 6)),
     "a = linear(x, 6) as fc1\nb = linear(a, 6) as fc2\nreturn relu(b + a)",
     lambda W, x: (lambda a: torch.relu(W.mod("fc2", nn.Linear(6, 6))(a) + a))(W.mod("fc1", nn.Linear(6, 6))(x)))

for (n, expr, scale_ref) in [
        ("mul_1_over_sqrt_d", "q @ transpose(k, [0, 2, 1]) * 0.25", 0.25),
        ("div_sqrt_d", "q @ transpose(k, [0, 2, 1]) / 4.0", 0.25),
        ("no_scale", "q @ transpose(k, [0, 2, 1])", 1.0),
        ("scale_first_not_fused", "0.25 * (q @ transpose(k, [0, 2, 1]))", 0.25),
        ("wrong_scale_not_fused", "q @ transpose(k, [0, 2, 1]) * 0.5", 0.5)]:
    case("fuse_attention/" + n, dict(q=(2, 5, 16), k=(2, 7, 16), v=(2, 7, 3)), f"return softmax({expr}, axis=-1) @ v",
         lambda W, q, k, v, sc=scale_ref: torch.softmax(q @ k.transpose(1, 2) * sc, -1) @ v)
case("fuse_attention/rank4_heads", dict(q=(2, 3, 5, 4), k=(2, 3, 6, 4), v=(2, 3, 6, 4)),
     "return matmul(softmax(matmul(q, transpose(k, [0, 1, 3, 2])) * 0.5), v)",
     lambda W, q, k, v: ref_sdpa(q, k, v))
case("fuse_attention/rank2", dict(q=(5, 4), k=(6, 4), v=(6, 2)),
     "return softmax(q @ transpose(k, [1, 0]) / 2.0) @ v", lambda W, q, k, v: ref_sdpa(q, k, v))
case("fuse_attention/broadcast_batch_k", dict(q=(2, 3, 5, 4), k=(1, 3, 6, 4), v=(2, 3, 6, 4)),
     "return softmax(q @ transpose(k, [0, 1, 3, 2]) * 0.5) @ v",
     lambda W, q, k, v: torch.softmax(q @ k.transpose(-1, -2) * 0.5, -1) @ v)
case("fuse_attention/softmax_other_axis", dict(q=(2, 5, 4), k=(2, 5, 4), v=(2, 5, 4)),
     "return softmax(q @ transpose(k, [0, 2, 1]) * 0.5, axis=1) @ v",
     lambda W, q, k, v: torch.softmax(q @ k.transpose(1, 2) * 0.5, 1) @ v)
case("fuse_attention/transpose_not_last_two", dict(q=(3, 2, 4), k=(5, 3, 4), v=(3, 5, 6)),
     "return softmax(q @ transpose(k, [1, 2, 0]) * 0.5) @ v",
     lambda W, q, k, v: torch.softmax(q @ k.permute(1, 2, 0) * 0.5, -1) @ v)
case("fuse_attention/probs_also_output", dict(q=(2, 4, 4), k=(2, 4, 4), v=(2, 4, 4)),
     "p = softmax(q @ transpose(k, [0, 2, 1]) * 0.5)\nreturn p @ v, p",
     lambda W, q, k, v: (lambda p: (p @ v, p))(torch.softmax(q @ k.transpose(1, 2) * 0.5, -1)))
case("fuse_attention/scores_reused", dict(q=(2, 4, 4), k=(2, 4, 4), v=(2, 4, 4)),
     "s = q @ transpose(k, [0, 2, 1])\nreturn softmax(s * 0.5) @ v + s",
     lambda W, q, k, v: (lambda s: torch.softmax(s * 0.5, -1) @ v + s)(q @ k.transpose(1, 2)))
case("fuse_attention/bias_added", dict(q=(2, 3, 5, 4), k=(2, 3, 6, 4), v=(2, 3, 6, 4), b=(3, 5, 6)),
     "return softmax(q @ transpose(k, [0, 1, 3, 2]) * 0.5 + b) @ v",
     lambda W, q, k, v, b: torch.softmax(q @ k.transpose(-1, -2) * 0.5 + b, -1) @ v)
case("fuse_attention/swin_style_q_scaled_bias_first", dict(q=(4, 2, 7, 16), k=(4, 2, 7, 16), v=(4, 2, 7, 16), b=(1, 2, 7, 7)),
     "return softmax(b + (q * 0.25) @ transpose(k, [0, 1, 3, 2]), axis=-1) @ v",
     lambda W, q, k, v, b: torch.softmax(b + (q * 0.25) @ k.transpose(-1, -2), -1) @ v)
case("fuse_attention/bias_widens_scores", dict(q=(1, 5, 4), k=(1, 6, 4), v=(1, 6, 4), b=(3, 5, 6)),
     "return softmax(q @ transpose(k, [0, 2, 1]) * 0.5 + b) @ v",
     lambda W, q, k, v, b: torch.softmax(q @ k.transpose(-1, -2) * 0.5 + b, -1) @ v)
case("fuse_attention/wrong_scale_with_bias", dict(q=(2, 5, 4), k=(2, 6, 4), v=(2, 6, 4), b=(5, 6)),
     "return softmax((q * 0.3) @ transpose(k, [0, 2, 1]) + b) @ v",
     lambda W, q, k, v, b: torch.softmax((q * 0.3) @ k.transpose(-1, -2) + b, -1) @ v)
case("fuse_attention/self_attention_same_tensor", dict(x=(2, 5, 4)),
     "return softmax(x @ transpose(x, [0, 2, 1]) * 0.5) @ x", lambda W, x: ref_sdpa(x, x, x))

case("dce/dead_branch", dict(x=(2, 4)), "unused = linear(x, 3) as fc\nd = relu(x) * 2.0\nreturn x + 1.0",
     lambda W, x: (W.mod("fc", nn.Linear(4, 3)), x + 1.0)[1])
case("dce/common_subexpressions", dict(x=(2, 4)), "return relu(x) * 2.0 + relu(x) * 2.0 - sigmoid(x) * 3.0",
     lambda W, x: torch.relu(x) * 2.0 + torch.relu(x) * 2.0 - torch.sigmoid(x) * 3.0)
case("dce/similar_not_same", dict(x=(2, 4, 6)),
     "return concat([slice(x, 1, 0, 2), slice(x, 1, 2, 4), slice(x, 1, 0, 4, step=2), slice(x, 1, 1, 3)], axis=2)",
     lambda W, x: torch.cat([x[:, 0:2], x[:, 2:4], x[:, 0:4:2], x[:, 1:3]], 2))
case("dce/scalar_ops_differ", dict(x=(2, 4)), "return (x * 2.0) - (x * 3.0) + (x + 2.0) / (x + 3.0)",
     lambda W, x: (x * 2.0) - (x * 3.0) + (x + 2.0) / (x + 3.0), gen={"x": "pos"})
case("dce/identical_outputs_distinct_ops", dict(x=(2, 3)), "return x * 2.0, x * 2.0",
     lambda W, x: (x * 2.0, x * 2.0))
case("dce/softmax_axes_differ", dict(x=(3, 3)), "return softmax(x, axis=0) - softmax(x, axis=1)",
     lambda W, x: torch.softmax(x, 0) - torch.softmax(x, 1))
case("dce/transposes_differ", dict(x=(3, 3, 3)), "return transpose(x, [1, 0, 2]) - transpose(x, [0, 2, 1])",
     lambda W, x: x.permute(1, 0, 2) - x.permute(0, 2, 1))
case("dce/pads_differ", dict(x=(2, 3)), "return pad(x, 1, 1, 0) - pad(x, 1, 0, 1) + pad(x, 1, 1, 0, value=2.0)",
     lambda W, x: ref_pad(x, 1, 1, 0) - ref_pad(x, 1, 0, 1) + ref_pad(x, 1, 1, 0, 2.0))
case("dce/pools_differ", dict(x=(1, 2, 6, 6)), "return maxpool(x, 2) - avgpool(x, 2) + maxpool(x, 3, stride=2, pad=1)",
     lambda W, x: ref_maxpool(x, 2) - ref_avgpool(x, 2) + ref_maxpool(x, 3, 2, 1))
case("dce/gelu_forms_differ", dict(x=(4, 5)), 'return gelu(x) + gelu(x, approximate="tanh") * 2.0',
     lambda W, x: F.gelu(x) + F.gelu(x, approximate="tanh") * 2.0, gen={"x": "wide"})

case("view/slice_of_input", dict(x=(4, 3, 2)), "return relu(slice(x, 0, 1, 3))", lambda W, x: torch.relu(x[1:3]))
case("view/take_of_input", dict(x=(4, 3)), "return take(x, 0, 2) * 2.0", lambda W, x: x[2] * 2.0)
case("view/take_class_token", dict(x=(1, 5, 8)), "return linear(take(relu(x), axis=1, index=0), 3) as head",
     lambda W, x: W.mod("head", nn.Linear(8, 3))(torch.relu(x)[:, 0]))
case("view/transpose_size1_axes", dict(x=(1, 3, 1, 4)), "return transpose(x, [2, 0, 1, 3]) + 1.0",
     lambda W, x: x.permute(2, 0, 1, 3) + 1.0)
case("view/transpose_size1_reorders", dict(x=(2, 1, 3)), "return transpose(x, [1, 2, 0]) * 2.0",
     lambda W, x: x.permute(1, 2, 0) * 2.0)
case("view/reshape_chain", dict(x=(2, 3, 4)), "y = reshape(relu(x), [6, 4])\nz = reshape(y, [4, -1])\nreturn z * 2.0, y - 1.0",
     lambda W, x: (torch.relu(x).reshape(4, 6) * 2.0, torch.relu(x).reshape(6, 4) - 1.0))
case("view/slice_then_write_neighbour", dict(x=(3, 4)),
     "a = relu(x)\nb = slice(a, 0, 0, 1)\nc = slice(a, 0, 1, 3)\nreturn concat([c * 2.0, b + 1.0], axis=0)",
     lambda W, x: torch.cat([torch.relu(x)[1:3] * 2.0, torch.relu(x)[0:1] + 1.0], 0))
case("view/output_is_slice_of_intermediate", dict(x=(3, 4)), "return slice(relu(x), 0, 1, 2)",
     lambda W, x: torch.relu(x)[1:2])
case("view/output_and_its_view", dict(x=(3, 4)), "y = relu(x)\nreturn y, slice(y, 0, 0, 2)",
     lambda W, x: (torch.relu(x), torch.relu(x)[0:2]))
case("view/flatten_of_output", dict(x=(2, 2, 3)), "y = x * 2.0\nreturn y, flatten(y)",
     lambda W, x: (x * 2.0, torch.flatten(x * 2.0, 1)))


# ---- integer index tensors: buffer(..., dtype="i64"), index_select, take by a tensor ----
case("index_select/axis0_i64", dict(x=(7, 5)), 'i = buffer([9], dtype="i64") as idx\nreturn index_select(x, 0, i)',
     lambda W, x: torch.index_select(x, 0, W.index("idx", (9,), 7)))
case("index_select/axis1_i32_negative_axis", dict(x=(2, 6, 3)), 'i = buffer([4], dtype="i32") as idx\nreturn index_select(x, -2, i) * 2.0',
     lambda W, x: torch.index_select(x, 1, W.index("idx", (4,), 6, torch.int32)) * 2.0)
case("index_select/param_table", dict(x=(2, 3, 4, 4)), """
table = param([13, 3]) as table
i = buffer([4, 4], dtype="i64") as index
return x + transpose(take(table, 0, i), [2, 0, 1])""",
     lambda W, x: x + W.param("table", (13, 3))[W.index("index", (4, 4), 13)].permute(2, 0, 1))
case("take/tensor_index_last_axis", dict(x=(2, 3, 5)), 'i = buffer([2, 3], dtype="i64") as idx\nreturn take(relu(x), 2, i)',
     lambda W, x: torch.relu(x)[:, :, W.index("idx", (2, 3), 5)])
case("index_select/activation_by_weights", dict(x=(1, 4, 8)), """
t = linear(x, 6) as fc
i = buffer([10], dtype="i64") as idx
return index_select(t, 2, i)""", lambda W, x: W.mod("fc", nn.Linear(8, 6))(x)[:, :, W.index("idx", (10,), 6)])
case("buffer/f32", dict(x=(2, 4)), "return x + buffer([4]) as table", lambda W, x: x + W.param("table", (4,)))

# ---- attn_mask ----
def ref_sdpa_mask(q, k, v, mask, causal=False):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask.dtype == torch.bool:
        s = s.masked_fill(~mask, float("-inf"))
    else:
        s = s + mask
    if causal:
        s = s.masked_fill(causal_mask(q.shape[-2], k.shape[-2]), float("-inf"))
    return torch.softmax(s, dim=-1) @ v


case("attn_mask/sdpa_additive", dict(q=(2, 3, 5, 4), k=(2, 3, 6, 4), v=(2, 3, 6, 3), m=(5, 6)),
     "return scaled_dot_product_attention(q, k, v, attn_mask=m)", lambda W, q, k, v, m: ref_sdpa_mask(q, k, v, m))
case("attn_mask/sdpa_additive_batch_broadcast", dict(q=(2, 3, 5, 4), k=(2, 3, 6, 4), v=(2, 3, 6, 4), m=(2, 1, 5, 6)),
     "return scaled_dot_product_attention(q, k, v, attn_mask=m * 3.0)", lambda W, q, k, v, m: ref_sdpa_mask(q, k, v, m * 3.0))
case("attn_mask/sdpa_bool_keep", dict(q=(2, 5, 4), k=(2, 6, 4), v=(2, 6, 4), m=(2, 5, 6)),
     "return scaled_dot_product_attention(q, k, v, attn_mask=m > -0.5)",
     lambda W, q, k, v, m: ref_sdpa_mask(q, k, v, m > -0.5),
     gen={"m": "int"})
case("attn_mask/sdpa_mask_column", dict(q=(3, 5, 4), k=(3, 7, 4), v=(3, 7, 2), m=(7,)),
     "return scaled_dot_product_attention(q, k, v, causal=true, attn_mask=m)", lambda W, q, k, v, m: ref_sdpa_mask(q, k, v, m, True))
case("attn_mask/mha_additive_2d", dict(x=(2, 5, 8), m=(5, 5)),
     "return multihead_attention(x, 2, attn_mask=m) as attn",
     lambda W, x, m: W.mod("attn", nn.MultiheadAttention(8, 2, batch_first=True))(x, x, x, need_weights=False, attn_mask=m)[0])
case("attn_mask/mha_bool_3d", dict(x=(2, 5, 8), m=(4, 5, 5)),
     "return multihead_attention(x, 2, attn_mask=m > 0.5) as attn",
     lambda W, x, m: W.mod("attn", nn.MultiheadAttention(8, 2, batch_first=True))(
         x, x, x, need_weights=False, attn_mask=m > 0.5)[0])
case("attn_mask/cross_attention_additive", dict(x=(2, 3, 8), mem=(2, 6, 8), m=(3, 6)),
     "return cross_attention(x, mem, 4, attn_mask=m) as attn",
     lambda W, x, mem, m: W.mod("attn", nn.MultiheadAttention(8, 4, batch_first=True))(x, mem, mem, need_weights=False,
                                                                                       attn_mask=m)[0])

# ---- roll ----
case("roll/two_axes", dict(x=(2, 5, 6, 3)), "return roll(x, [-2, 3], axis=[1, 2])", lambda W, x: torch.roll(x, (-2, 3), (1, 2)))
case("roll/one_axis_large_shift", dict(x=(4, 5)), "return roll(relu(x), 12, axis=-1)", lambda W, x: torch.roll(torch.relu(x), 12, -1))
case("roll/flattened", dict(x=(3, 4)), "return roll(x, -5)", lambda W, x: torch.roll(x, -5))
case("roll/whole_turn", dict(x=(3, 4)), "return roll(x, 3, axis=0)", lambda W, x: torch.roll(x, 3, 0))

# ---- constant tensors, comparisons, where, masked_fill ----
case("const/full_zeros_ones", dict(x=(2, 3)), "return x + full([2, 3], 2.5) - ones([3]) * 4.0 + zeros([2, 1])",
     lambda W, x: x + torch.full((2, 3), 2.5) - torch.ones(3) * 4.0 + torch.zeros(2, 1))
case("const/arange", dict(x=(2, 5)), "return x * arange(5) + arange(1, 2, 0.2) - arange(10, 0, -2)",
     lambda W, x: x * torch.arange(5) + torch.arange(1, 2, 0.2) - torch.arange(10, 0, -2))
case("compare/tensor_ops", dict(a=(2, 3, 4), b=(3, 1)),
     "return a == b, a != b, a < b, a <= b, a > b, a >= b",
     lambda W, a, b: tuple(t.double() for t in (a == b, a != b, a < b, a <= b, a > b, a >= b)), gen={"a": "int", "b": "int"})
case("compare/scalar_both_sides", dict(x=(3, 4)), "return x > 0.25, 0.25 > x, x == 0.0, 1.0 <= x, x != 1",
     lambda W, x: tuple(t.double() for t in (x > 0.25, 0.25 > x, x == 0.0, 1.0 <= x, x != 1)))
case("where/tensors_and_numbers", dict(c=(2, 1, 4), a=(3, 4), b=(2, 3, 1)),
     "return where(c > 0.0, a, b), where(c > 0.0, 1.5, b), where(c < 0.0, a, -2), where(c > 0.0, 3, 4)",
     lambda W, c, a, b: (torch.where(c > 0, a, b), torch.where(c > 0, torch.tensor(1.5, dtype=torch.float64), b),
                         torch.where(c < 0, a, torch.tensor(-2.0, dtype=torch.float64)),
                         torch.where(c > 0, torch.tensor(3.0, dtype=torch.float64), torch.tensor(4.0, dtype=torch.float64)).expand(2, 1, 4)))
case("masked_fill/swin_style", dict(x=(3, 4)), """
d = reshape(x, [3, 1, 4]) - reshape(x, [3, 4, 1])
return masked_fill(masked_fill(d, d != 0.0, -100.0), d == 0.0, 0.0)""",
     lambda W, x: (lambda d: d.masked_fill(d != 0, -100.0).masked_fill(d == 0, 0.0))(x.unsqueeze(1) - x.unsqueeze(2)),
     gen={"x": "int"})
case("masked_fill/compile_time_mask", dict(x=(4, 4)), """
m = arange(4) > reshape(arange(4), [4, 1])
return masked_fill(x, m, -1.0e9) + where(m, 0.0, 1.0)""",
     lambda W, x: (lambda m: x.masked_fill(m, -1.0e9) + torch.where(m, 0.0, 1.0))(torch.arange(4) > torch.arange(4).reshape(4, 1)))

def swin_shift_mask(H, W, w, s):
    """torchvision 0.14's shifted_window_attention mask, as it builds it."""
    attn_mask = torch.zeros((H, W), dtype=torch.float64)
    slices = ((0, -w), (-w, -s), (-s, None))
    count = 0
    for h in slices:
        for ww in slices:
            attn_mask[h[0]:h[1], ww[0]:ww[1]] = count
            count += 1
    attn_mask = attn_mask.view(H // w, w, W // w, w).permute(0, 2, 1, 3).reshape(H * W // (w * w), w * w)
    attn_mask = attn_mask.unsqueeze(1) - attn_mask.unsqueeze(2)
    return attn_mask.masked_fill(attn_mask != 0, float(-100.0)).masked_fill(attn_mask == 0, float(0.0))


case("masked_fill/swin_shift_mask", dict(x=(4, 16, 16)), """
m = shift_mask(8, 8, 4, 2)
return x + m""", lambda W, x: x + swin_shift_mask(8, 8, 4, 2), lets="""
block window_ids(n: int, w: int, s: int) {
    return concat([zeros([n - w]), ones([w - s]), full([s], 2.0)])
}

block shift_mask(H: int, W: int, w: int, s: int) {
    ids = reshape(window_ids(H, w, s), [H, 1]) * 3.0 + reshape(window_ids(W, w, s), [1, W])
    ids = reshape(transpose(reshape(ids, [H / w, w, W / w, w]), [0, 2, 1, 3]), [H * W / (w * w), w * w])
    d = reshape(ids, [-1, 1, w * w]) - reshape(ids, [-1, w * w, 1])
    return masked_fill(d, d != 0.0, -100.0)
}""")

# ---- reductions, normalize ----
case("reduce/sum_mean_max_min", dict(x=(2, 3, 4, 5)),
     "return sum(x, 1), mean(x, [2, 3], keepdim=true), max(x, -1), min(x, [0, 2])",
     lambda W, x: (x.sum(1), x.mean((2, 3), keepdim=True), x.amax(-1), x.amin((0, 2))))
case("reduce/all_axes", dict(x=(3, 4)), "return sum(x), max(x, keepdim=true), mean(x)",
     lambda W, x: (x.sum(), x.amax(dim=(0, 1), keepdim=True), x.mean()))
case("reduce/number_min_max_still_compile_time", dict(x=(2, 4)), "return x * max(2, 3) + min([1.5, 0.5])",
     lambda W, x: x * 3 + 0.5)
case("normalize/default_and_p1", dict(x=(2, 3, 4)), "return normalize(x), normalize(x, p=1.0, axis=-1), normalize(x * 0.0, axis=2)",
     lambda W, x: (F.normalize(x), F.normalize(x, p=1.0, dim=-1), F.normalize(x * 0.0, dim=2)))

# ---- whole small networks: memory planning over many live tensors ----
case("net/mini_resnet", dict(x=(2, 3, 16, 16)), """
x = relu(batchnorm(conv2d(x, 8, kernel=3, stride=2, pad=1, bias=false) as conv1) as bn1)
x = maxpool(x, kernel=3, stride=2, pad=1)
for i in 0..2 {
    y = relu(batchnorm(conv2d(x, 8, kernel=3, pad=1, bias=false) as layer.{i}.conv1) as layer.{i}.bn1)
    y = batchnorm(conv2d(y, 8, kernel=3, pad=1, bias=false) as layer.{i}.conv2) as layer.{i}.bn2
    x = relu(x + y)
}
return linear(flatten(global_avgpool(x)), 5) as fc""", lambda W, x: mini_resnet(W, x))
case("net/mini_vit_encoder", dict(x=(2, 3, 8, 8)), """
x = conv2d(x, 16, kernel=4, stride=4) as conv_proj
x = transpose(reshape(x, [x.shape[0], 16, 4]), [0, 2, 1])
x = concat([expand(param([1, 1, 16]) as class_token, [2, -1, -1]), x], axis=1)
x = x + param([1, 5, 16]) as pos_embedding
for i in 0..2 {
    x = x + multihead_attention(layernorm(x, eps=1e-6) as l{i}.ln_1, 4) as l{i}.attn
    x = x + linear(gelu(linear(layernorm(x, eps=1e-6) as l{i}.ln_2, 32) as l{i}.mlp.0), 16) as l{i}.mlp.3
}
return linear(take(layernorm(x, eps=1e-6) as ln, axis=1, index=0), 10) as head""", lambda W, x: mini_vit(W, x))
case("net/mini_decoder_block", dict(x=(2, 5, 16), mem=(2, 7, 16)), """
x = layernorm(x + multihead_attention(x, 4, causal=true) as self_attn) as norm1
x = layernorm(x + cross_attention(x, mem, 2) as cross_attn) as norm2
return layernorm(x + linear(relu(linear(x, 24) as linear1), 16) as linear2) as norm3""",
     lambda W, x, mem: mini_decoder(W, x, mem))
case("net/sdpa_by_heads", dict(x=(2, 6, 16)), """
qkv = linear(x, 48) as qkv
q = transpose(reshape(slice(qkv, 2, 0, 16), [2, 6, 4, 4]), [0, 2, 1, 3])
k = transpose(reshape(slice(qkv, 2, 16, 32), [2, 6, 4, 4]), [0, 2, 1, 3])
v = transpose(reshape(slice(qkv, 2, 32, 48), [2, 6, 4, 4]), [0, 2, 1, 3])
o = scaled_dot_product_attention(q, k, v, causal=true)
return linear(reshape(transpose(o, [0, 2, 1, 3]), [2, 6, 16]), 16) as proj""", lambda W, x: sdpa_by_heads(W, x))

# ---- regressions: wrong results and crashes that random models found (each with its neighbours) ----
case("regress/param_view_at_offset", dict(x=(1,)), "p = param([5, 8]) as p\nreturn tanh(slice(p, 0, 2, 5))",
     lambda W, x: torch.tanh(W.param("p", (5, 8))[2:5]))
case("regress/param_view_outputs", dict(x=(1,)), "p = param([5, 8]) as p\nreturn slice(p, 0, 2, 5), take(p, 0, 3)",
     lambda W, x: (lambda p: (p[2:5], p[3]))(W.param("p", (5, 8))))
case("regress/param_view_into_matmul", dict(x=(3, 8)), "p = param([2, 8, 4]) as p\nreturn x @ take(p, 0, 1) + take(take(p, 0, 0), 0, 5)",
     lambda W, x: (lambda p: x @ p[1] + p[0][5])(W.param("p", (2, 8, 4))))
case("regress/input_view_at_offset", dict(x=(4, 6)), "return relu(slice(x, 0, 1, 3)), take(x, 0, 3) * 2.0",
     lambda W, x: (torch.relu(x[1:3]), x[3] * 2.0))
case("regress/inplace_reads_view_of_itself", dict(x=(4, 8)), "y = tanh(x)\nz = y * take(y, 0, 0)\nreturn sigmoid(z)",
     lambda W, x: torch.sigmoid(torch.tanh(x) * torch.tanh(x)[0]))
case("regress/inplace_add_slice_of_itself", dict(x=(3, 5)), "y = relu(x)\nreturn tanh(y + slice(y, 0, 0, 1))",
     lambda W, x: torch.tanh(torch.relu(x) + torch.relu(x)[0:1]))
case("regress/inplace_sub_reshape_of_itself", dict(x=(2, 6)), "y = tanh(x)\nreturn relu(reshape(y, [12]) - slice(take(y, 0, 0), 0, 0, 1))",
     lambda W, x: torch.relu(torch.tanh(x).reshape(12) - torch.tanh(x)[0, 0:1]))
case("regress/inplace_square", dict(x=(4, 8)), "y = tanh(x)\nreturn sigmoid(y * y)",
     lambda W, x: torch.sigmoid(torch.tanh(x) * torch.tanh(x)))
case("regress/grouped_conv_idle_threads", dict(x=(2, 8, 4, 1)),
     "y = conv2d(x, out=4, kernel=2, stride=3, pad=[3, 2], groups=2, bias=false) as a\n"
     "return conv2d(y, 8, [4, 2], stride=4, pad=[0, 0, 2, 1], groups=4) as c",
     lambda W, x: ref_conv(W, "c", ref_conv(W, "a", x, 4, 2, 3, [3, 2, 3, 2], groups=2, bias=False), 8, [4, 2], 4, [0, 0, 2, 1], groups=4))
case("regress/few_channels_many_threads", dict(x=(1, 3, 30, 30)),
     "y = conv2d(x, 2, kernel=3, pad=1) as a\nreturn linear(reshape(y, [60, 30]), 2) as l",
     lambda W, x: W.mod("l", nn.Linear(30, 2))(ref_conv(W, "a", x, 2, 3, 1, 1).reshape(60, 30)))
RESERVED = ["output", "output0", "NULL", "EOF", "INFINITY", "relu_1", "tanh_1", "nnrt_now_ms", "t", "m", "main", "in_x", "INPUT0", "w_x"]
case("regress/inputs_named_like_c", {n: (2, 3) for n in RESERVED},
     "return " + " + ".join(f"relu({n})" if i % 2 else f"tanh({n})" for i, n in enumerate(RESERVED)),
     lambda W, *xs: sum(torch.relu(x) if i % 2 else torch.tanh(x) for i, x in enumerate(xs)))
case("regress/inputs_x_and_X", dict(x=(2, 3), X=(3,), output=(2, 3)), "return x * X, output",
     lambda W, x, X, output: (x * X, output))
for level in ("-O0", "-O2"):
    case(f"regress/input_read_by_dead_view{level}", dict(a=(2, 3), b=(2, 3)), "y = flatten(b)\nz = reshape(b, [6])\nreturn relu(a)",
         lambda W, a, b: torch.relu(a), flags=[level])
def ref_depthwise_nonfinite(k):
    def ref(W, x):
        """A depthwise layer with an inf and a NaN on corner taps: PyTorch multiplies them by the padding's zeros
        too, so the border they reach past is NaN, and the inf makes the rest of its channel ±inf."""
        m = W.mod("conv", nn.Conv2d(4, 4, k, padding=k // 2, groups=4))
        with torch.no_grad():
            m.weight[1, 0, 0, 0] = float("inf")
            m.weight[3, 0, k - 1, 1] = float("nan")
        W.tensors["conv.weight"][1, 0, 0, 0] = np.inf
        W.tensors["conv.weight"][3, 0, k - 1, 1] = np.nan
        return m(x)
    return ref


# 3x3: nnk_dwconv.h; 33x33, more taps than its table: the direct loop nest (nnk_conv2d), which skips the taps
# that read padding and so once gave finite values at the border
for k, size in ((3, 12), (33, 40)):
    case(f"regress/depthwise{k}x{k}_nonfinite_weight_on_padding", dict(x=(1, 4, size, size)),
         f"return conv2d(x, 4, kernel={k}, pad={k // 2}, groups=4) as conv", ref_depthwise_nonfinite(k))

case("regress/batchnorm_eps_0", dict(x=(2, 3, 4, 4)), "return batchnorm(x, eps=0.0) as bn",
     lambda W, x: W.mod("bn", nn.BatchNorm2d(3, eps=0.0))(x))
case("regress/layernorm_eps_0", dict(x=(2, 5, 8)), "return layernorm(x, eps=0.0) as ln",
     lambda W, x: W.mod("ln", nn.LayerNorm(8, eps=0.0))(x))


def mini_resnet(W, x):
    x = torch.relu(W.mod("bn1", nn.BatchNorm2d(8))(ref_conv(W, "conv1", x, 8, 3, 2, 1, bias=False)))
    x = ref_maxpool(x, 3, 2, 1)
    for i in range(2):
        y = torch.relu(W.mod(f"layer.{i}.bn1", nn.BatchNorm2d(8))(ref_conv(W, f"layer.{i}.conv1", x, 8, 3, 1, 1, bias=False)))
        y = W.mod(f"layer.{i}.bn2", nn.BatchNorm2d(8))(ref_conv(W, f"layer.{i}.conv2", y, 8, 3, 1, 1, bias=False))
        x = torch.relu(x + y)
    return W.mod("fc", nn.Linear(8, 5))(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def mini_vit(W, x):
    x = ref_conv(W, "conv_proj", x, 16, 4, 4)
    x = x.reshape(2, 16, 4).permute(0, 2, 1)
    x = torch.cat([W.param("class_token", (1, 1, 16)).expand(2, -1, -1), x], 1)
    x = x + W.param("pos_embedding", (1, 5, 16))
    for i in range(2):
        x = x + ref_mha(W, f"l{i}.attn", W.mod(f"l{i}.ln_1", nn.LayerNorm(16, eps=1e-6))(x), 4)
        h = W.mod(f"l{i}.ln_2", nn.LayerNorm(16, eps=1e-6))(x)
        x = x + W.mod(f"l{i}.mlp.3", nn.Linear(32, 16))(F.gelu(W.mod(f"l{i}.mlp.0", nn.Linear(16, 32))(h)))
    return W.mod("head", nn.Linear(16, 10))(W.mod("ln", nn.LayerNorm(16, eps=1e-6))(x)[:, 0])


def mini_decoder(W, x, mem):
    x = W.mod("norm1", nn.LayerNorm(16))(x + ref_mha(W, "self_attn", x, 4, causal=True))
    x = W.mod("norm2", nn.LayerNorm(16))(x + ref_mha(W, "cross_attn", x, 2, memory=mem))
    h = W.mod("linear2", nn.Linear(24, 16))(torch.relu(W.mod("linear1", nn.Linear(16, 24))(x)))
    return W.mod("norm3", nn.LayerNorm(16))(x + h)


def sdpa_by_heads(W, x):
    qkv = W.mod("qkv", nn.Linear(16, 48))(x)
    q, k, v = (qkv[:, :, i * 16:(i + 1) * 16].reshape(2, 6, 4, 4).permute(0, 2, 1, 3) for i in range(3))
    o = ref_sdpa(q, k, v, causal=True)
    return W.mod("proj", nn.Linear(16, 16))(o.permute(0, 2, 1, 3).reshape(2, 6, 16))

# ---------------------------------------------------------------------------------------------------
# Running a case.

def make_input(kind, shape, gen):
    if kind == "pos":        # away from zero: denominators
        return (torch.rand(shape, generator=gen) * 1.5 + 0.5).numpy()
    if kind == "wide":
        return (torch.randn(shape, generator=gen) * 3.0).numpy()
    if kind == "big":        # saturation tails, overflow of naive exp
        return (torch.rand(shape, generator=gen) * 200.0 - 100.0).numpy()
    if kind == "int":        # small whole numbers: comparisons that are equal somewhere
        return torch.randint(-2, 3, shape, generator=gen).float().numpy()
    return torch.randn(shape, generator=gen).numpy()


def slug(name):
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name.replace("/", "__"))


def prepare(c, root):
    """Writes the .net, inputs and weights of a case; returns (dir, reference outputs as float64 arrays)."""
    d = os.path.join(root, slug(c.name))
    os.makedirs(d, exist_ok=True)
    gen = torch.Generator().manual_seed(zlib.crc32(c.name.encode()))
    xs = [make_input(c.gen.get(n), s, gen).astype(np.float32) for n, s in c.inputs]
    W = Weights(gen)
    with torch.no_grad():
        out = c.ref(W, *[torch.from_numpy(x).double() for x in xs])
    outs = out if isinstance(out, tuple) else (out,)
    refs = [o.detach().double().numpy() for o in outs]
    with open(os.path.join(d, "m.net"), "w") as f:
        f.write(c.source())
    for i, x in enumerate(xs):
        np.save(os.path.join(d, f"in{i}.npy"), x)
    save_file(W.tensors, os.path.join(d, "w.safetensors"))
    return d, refs


def run(cmd, timeout=RUN_TIMEOUT, **kw):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout, **kw)
        return p.returncode, (p.stdout + p.stderr).strip()
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout} s: {' '.join(cmd)}"


def first_lines(text, n=6):
    lines = text.strip().split("\n")
    return " | ".join(lines[:n]) + (" | ..." if len(lines) > n else "")


class Result:
    def __init__(self):
        self.error = None            # the case failed before any comparison (nnc, build, run)
        self.detail = None           # the comparison failed
        self.errs = []               # measured relative error per output
        self.warn = {}               # compiler -> its -Werror diagnostics, for the files that warn
        self.threads_diff = None     # description of a --threads 1 / 2 mismatch
        self.compiled = False


def build_and_run(c, d, refs, flags):
    r = Result()
    cfile = os.path.join(d, "m.c")
    code, out = run([flags["nnc_bin"], os.path.join(d, "m.net"), "--main", "-o", cfile] + flags["nnc"] + c.flags,
                    env=dict(os.environ, NNC_VERIFY="1"))
    if code != 0:
        r.error = "nnc failed (exit %d): %s" % (code, first_lines(out))
        return r
    r.compiled = True
    exe = os.path.join(d, "m")
    cc, other = flags["cc"], ("clang" if flags["cc"] == "gcc" else "gcc")
    # (gcc, and clang's check below, read the runtime's headers precompiled: precompile())
    base = [OPT, "-march=native"] + flags["pch"].get(cc, []) + [cfile] + flags["cflags"] + ["-o", exe] + flags["libs"]
    code, out = run([cc] + WARN_FLAGS + base)
    if code != 0:
        r.warn[cc] = first_lines(out, 4)
        code2, out2 = run([cc, "-std=c11"] + base)   # build anyway, to still check the numbers
        if code2 != 0:
            r.error = f"{cc} cannot build the generated C: " + first_lines(out2)
            return r
    # clang's -Wall -Wextra warnings all come from its front end, so -fsyntax-only sees every one;
    # some of gcc's (-Wmaybe-uninitialized, ...) need the optimiser
    check = ["-fsyntax-only", "-march=native"] + flags["pch"]["clang"] if other == "clang" else [OPT, "-march=native", "-c", "-o", os.devnull]
    code, out = run([other] + WARN_FLAGS + check + [cfile] + flags["cflags"])
    if code != 0:
        r.warn[other] = first_lines(out, 4)
    ins = []
    for i in range(len(c.inputs)):
        ins += ["--input", os.path.join(d, f"in{i}.npy")]
    results = {}
    for t in THREADS:
        outs = []
        for i in range(len(refs)):
            outs += ["--output", os.path.join(d, f"out{i}_t{t}.npy")]
        code, out = run([exe, "--weights", os.path.join(d, "w.safetensors")] + ins + outs + ["--threads", str(t)])
        if code != 0:
            r.error = f"program failed with --threads {t} (exit {code}): {first_lines(out)}"
            return r
        try:
            results[t] = [np.load(os.path.join(d, f"out{i}_t{t}.npy")) for i in range(len(refs))]
        except Exception as e:  # noqa: BLE001 - any unreadable output is the program's failure
            r.error = f"cannot read the output of --threads {t}: {e}"
            return r
    for t in THREADS[1:]:
        for i, (a, b) in enumerate(zip(results[1], results[t])):
            if a.shape != b.shape or a.tobytes() != b.tobytes():
                n = int(np.sum(a.view(np.uint32) != b.view(np.uint32))) if a.shape == b.shape else -1
                what = f"{n} of {a.size} elements differ" if n >= 0 else "shapes differ"
                r.threads_diff = f"--threads {t}, output {i}: {what}"
                break
        if r.threads_diff:
            break
    problems = []
    for i, (got, ref) in enumerate(zip(results[1], refs)):
        if tuple(got.shape) != tuple(ref.shape):
            problems.append(f"output {i}: shape {list(got.shape)}, PyTorch gives {list(ref.shape)}")
            r.errs.append(float("inf"))
            continue
        got64 = got.astype(np.float64)
        if ref.size == 0:
            r.errs.append(0.0)
            continue
        why = nonfinite_mismatch(got64, ref)
        if why:
            problems.append(f"output {i}: {why}")
            r.errs.append(float("nan"))
            continue
        both = np.isfinite(ref)   # (NaN and infinities matched above; a finite ref against an inf fails below)
        scale = max(1e-6, float(np.max(np.abs(ref[both]))) if both.any() else 0.0)
        diff = np.abs(got64[both] - ref[both])
        err = float(np.max(diff)) / scale if diff.size else 0.0
        r.errs.append(err)
        if not err <= TOL:
            with np.errstate(invalid="ignore"):   # (inf - inf off `both`)
                at = np.unravel_index(int(np.argmax(np.where(both, np.abs(got64 - ref), -1))), ref.shape)
            problems.append(f"output {i}: max|Δ|/max|ref| = {err:.3g} > {TOL:g} (worst at {list(map(int, at))}: "
                            f"got {got64[at]:.7g}, want {ref[at]:.7g}; max|ref| {scale:.4g})")
    if problems:
        r.detail = "; ".join(problems)
    return r


def nonfinite_mismatch(got, ref):
    """Where got's NaNs and infinities differ from PyTorch's ref, what differs (else None): the elements that
    are NaN in one and not the other, or not the infinity ref has. The finite rest is compared by error."""
    nan = np.isnan(got) != np.isnan(ref)
    if nan.any():
        return f"{int(nan.sum())} of {ref.size} elements NaN where PyTorch's are not (or the reverse)"
    inf = np.isinf(ref) & (got != ref)
    if inf.any():
        return f"{int(inf.sum())} of {ref.size} elements not the infinity PyTorch gives"
    return None


def snapshot_toolchain(root):
    """Copies build/nnc, build/libnnrt.a and the runtime headers into ROOT/snap (laid out as the
    repository is, since nnc finds the runtime relative to its own path), so that a `make` or an edit
    by someone else during the suite cannot change them half-way. Returns the flags, or an error."""
    if not os.access(NNC, os.X_OK):
        return f"{NNC} not found: run make at the repository root"
    snap = os.path.join(root, "snap")
    problem = None
    for _ in range(20):                # a concurrent make may be relinking right now
        try:
            shutil.rmtree(snap, ignore_errors=True)
            os.makedirs(os.path.join(snap, "build"))
            shutil.copy2(NNC, os.path.join(snap, "build", "nnc"))
            shutil.copy2(os.path.join(ROOT, "build", "libnnrt.a"), os.path.join(snap, "build", "libnnrt.a"))
            shutil.copytree(os.path.join(ROOT, "runtime"), os.path.join(snap, "runtime"),
                            ignore=shutil.ignore_patterns("*.c", "*.o"))
            nnc = os.path.join(snap, "build", "nnc")
            code, cflags = run([nnc, "--cflags"])
            code2, libs = run([nnc, "--libs"])
            if code == 0 and code2 == 0 and snap in cflags and snap in libs:
                return {"nnc_bin": nnc, "cflags": cflags.split(), "libs": libs.split()}
            problem = f"the copy of nnc does not find its runtime: --cflags {cflags!r}, --libs {libs!r}"
        except OSError as e:
            problem = f"cannot copy {NNC} and its runtime: {e}"
        time.sleep(1.5)
    return problem


def precompile(root, cc, opt, flags):
    """The runtime headers every generated file includes (what emit_c.c writes at the top of every file, after
    the model's own header), precompiled once under cc with the flags its compiles use and -Werror, so that a
    warning in the headers fails here and each case's compile parses only the model's own code (the headers'
    guards skip the file's own #includes). gcc's builds include the header first (-include, its .gch beside
    it: 0.88 -> 0.75 s a case, the same binary); clang's warning check reads the .pch (-include-pch).
    Returns (the arguments that use it, None), or (None, what went wrong)."""
    if not shutil.which(cc):
        return None, f"{cc} not found: the generated C's warnings are checked under gcc and clang (Debian: {cc})"
    d = os.path.join(root, cc + "_pch")
    os.makedirs(d, exist_ok=True)
    header = os.path.join(d, "nnc_headers.h")
    with open(header, "w") as f:
        f.write("".join(f"#include {h}\n" for h in ('"nnrt.h"', '"kernels/nnk.h"', "<math.h>", "<stdint.h>",
                                                     "<stdio.h>", "<stdlib.h>", "<string.h>")))
    out = header + (".gch" if cc == "gcc" else ".pch")
    code, text = run([cc, "-x", "c-header"] + WARN_FLAGS + opt + ["-march=native", header, "-o", out] + flags["cflags"])
    if code != 0:
        return None, f"the runtime's headers do not precompile without warnings under {cc}: " + first_lines(text)
    return (["-include", header] if cc == "gcc" else ["-include-pch", out]), None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--filter", action="append", default=[], help="run only cases whose name contains SUBSTR (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the build directory and print its path")
    ap.add_argument("--jobs", type=int, default=2, help="parallel builds (default 2)")
    ap.add_argument("--list", action="store_true", help="list the case names and exit")
    ap.add_argument("--cc", choices=["gcc", "clang"], default="gcc",
                    help="the compiler that builds the programs (default gcc); the other one only checks warnings")
    ap.add_argument("--nnc-flags", default="", help="extra nnc options, e.g. '-O0' (default: none, i.e. -O2)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print the measured error of passing cases too")
    args = ap.parse_args()

    cases = [c for i, c in enumerate(CASES) if (not args.filter or any(f in c.name for f in args.filter)) and i % SHARD[1] == SHARD[0]]
    if SHARD != (0, 1):
        print(f"# NNC_OPS_SHARD={SHARD[0]}/{SHARD[1]}: {len(cases)} of the {len(CASES)} cases", flush=True)
    if args.list:
        for c in cases:
            print(c.name)
        return 0
    if not cases:
        print(f"FAIL - test_ops: no case matches {args.filter}")
        print("0 passed, 1 failed")
        return 1
    start = time.time()
    passed = failed = 0

    def report(ok, name, detail=None, source=None):
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"ok - {name}", flush=True)
        else:
            failed += 1
            print(f"FAIL - {name}: {detail}", flush=True)
            if source:
                for line in source.rstrip("\n").split("\n"):
                    print("    | " + line)
            sys.stdout.flush()

    root = tempfile.mkdtemp(prefix="nnc_test_ops_")
    snap = snapshot_toolchain(root)
    if isinstance(snap, str):
        report(False, "test_ops", snap)
        print(f"{passed} passed, {failed} failed")
        shutil.rmtree(root, ignore_errors=True)
        return 1
    flags = dict(snap, nnc=args.nnc_flags.split(), cc=args.cc, pch={})
    if args.cc == "gcc":
        for cc, opt in (("gcc", [OPT]), ("clang", [])):   # (gcc's builds, clang's -fsyntax-only check)
            flags["pch"][cc], error = precompile(root, cc, opt, flags)
            if error:
                report(False, "test_ops", error)
                print(f"{passed} passed, {failed} failed")
                shutil.rmtree(root, ignore_errors=True)
                return 1
    torch.set_num_threads(1)
    results = {}
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = []
            for c in cases:          # references are computed here, builds and runs go to the pool
                try:
                    d, refs = prepare(c, root)
                except Exception as e:  # noqa: BLE001 - a broken reference is a broken case
                    futures.append((c, None, f"the PyTorch reference raised {type(e).__name__}: {e}"))
                    continue
                futures.append((c, pool.submit(build_and_run, c, d, refs, flags), None))
            for c, fut, err in futures:
                if fut is None:
                    report(False, c.name, err, c.source())
                    continue
                try:
                    r = fut.result()
                except Exception as e:  # noqa: BLE001
                    report(False, c.name, f"harness error {type(e).__name__}: {e}", c.source())
                    continue
                results[c.name] = r
                if r.error:
                    report(False, c.name, r.error, c.source())
                elif r.detail:
                    report(False, c.name, r.detail, c.source())
                else:
                    if args.verbose:
                        print(f"# {c.name}: max|Δ|/max|ref| = {max(r.errs, default=0.0):.2e}")
                    report(True, c.name)

        compiled = [n for n, r in results.items() if r.compiled]
        for label in ("gcc", "clang"):
            bad = [(n, results[n].warn[label]) for n in compiled if label in results[n].warn]
            name = f"generated C compiles with {label} {' '.join(WARN_FLAGS)} ({len(compiled)} files)"
            report(not bad, name, f"{len(bad)} file(s) warn: " + "; ".join(f"{n}: {w}" for n, w in bad[:8])
                   + (" ..." if len(bad) > 8 else ""))
        ran = [n for n, r in results.items() if r.compiled and not r.error]
        bad = [(n, results[n].threads_diff) for n in ran if results[n].threads_diff]
        report(not bad, f"--threads {', '.join(map(str, THREADS))} give bit-identical outputs ({len(ran)} cases)",
               f"{len(bad)} case(s) differ: " + "; ".join(f"{n}: {w}" for n, w in bad[:12]))
    finally:
        if args.keep:
            print(f"# build directory kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"# {len(cases)} cases in {time.time() - start:.1f} s")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
