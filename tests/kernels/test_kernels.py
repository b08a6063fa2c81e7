#!/usr/bin/python3
"""
test_kernels.py — every nnk reference kernel against PyTorch, on random inputs and many shapes.

kernels_lib.c (non-inline wrappers around runtime/kernels/nnk.h) is built into a shared library in a
temporary directory with the warning flags the runtime must pass; each case calls one kernel through ctypes
and compares it with the PyTorch module or function it implements. A case passes when
max|Δ| / max(1, max|ref|) is within its tolerance (1e-5, or 1e-4 for long reductions) and NaNs agree.
Output buffers start as NaN, so an element a kernel forgets to write fails the case.

Before building, a probe compiled with the same compiler, flags and headers says which ISA path of the
kernels (the table ISA_PATHS) the build takes, and whether this CPU can run it; it prints
`# kernels: ISA path NAME (CC FLAGS)`. `--isa NAME` asks for one path (built with its flags unless
--cflags gives others): when the build would take another path, or this CPU cannot run it, the suite
prints one `skip - ...: reason` and no other check, because the plain checks would only repeat the
`kernels` suite's. A path this CPU cannot run is skipped the same way without --isa.

Prints `ok - name`, `FAIL - name: detail` or `skip - name: reason` per case, then `N passed, N failed,
N skipped`; exits 1 on any failure.

    /usr/bin/python3 tests/kernels/test_kernels.py [--cc COMPILER] [--cflags FLAGS] [--isa NAME] [-k SUBSTRING] [-v]

NNK_TEST_CPU_LACKS=avx512f (CPU features, comma-separated) makes the probe treat this CPU as lacking
them, to test the skip on a machine that has them.
"""
import argparse
import collections
import ctypes
import itertools
import math
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
KERNELS = os.path.join(ROOT, "runtime", "kernels")
CFLAGS = ["-std=c11", "-Wall", "-Wextra", "-Wshadow", "-O2", "-fPIC", "-shared"]

ADD, SUB, MUL, DIV, RSUB, RDIV = range(6)
OP_NAMES = ["add", "sub", "mul", "div", "rsub", "rdiv"]
LONG = np.dtype("i%d" % ctypes.sizeof(ctypes.c_long))

# Each wrapper's parameter kinds: p pointer (numpy array or None), i int, l long, f float.
SIGNATURES = {
    "conv2d": "pppp" + "i" * 16,
    "linear": "ppppiii",
    "linear_rows": "ppppiiiii",
    "conv2d_gemm": "pppip" + "pii" + "i" * 15,
    "conv2d_gemm_batch": "pppip" + "pii" + "i" * 15,
    "linear_gemm": "pppipp" + "i" * 7,
    "linear_gemv": "ppppp" + "i" * 5,
    "batchnorm": "ppppppiilf",
    "layernorm": "pppplif",
    "relu": "ppl", "gelu": "ppl", "gelu_tanh": "ppl", "sigmoid": "ppl", "tanh": "ppl", "silu": "ppl",
    "neg": "ppl",
    "binary": "pppiippp",
    "scalar": "ppfil",
    "softmax": "pplil",
    "maxpool2d": "pp" + "i" * 12,
    "avgpool2d": "pp" + "i" * 12,
    "adaptive_avgpool2d": "pp" + "i" * 6,
    "global_avgpool_nchwc": "pp" + "i" * 5,
    "pad": "pplilii" + "f",
    "transpose": "ppipp",
    "copy_axis": "pplilii",
    "slice": "pplilii" + "i",
    "broadcast": "ppipp",
    "matmul": "pppipppiii",
    "sdpa_scratch": "ii",
    "sdpa": "pppp" + "i" * 6 + "p",
    "mha_scratch": "iiii",
    "mha": "ppppppp" + "i" * 6 + "p",
    "mha_blocked": "ppppppp" + "i" * 6,
    "dwconv2d": "ppppp" + "ii" + "i" * 16,
    "conv2d_nchwc": "ppppp" + "ii" + "i" * 18,
    "conv2d_gemm_groups": "ppppp" + "ii" + "i" * 16,
}
CTYPES = {"p": ctypes.c_void_p, "i": ctypes.c_int, "l": ctypes.c_long, "f": ctypes.c_float}

LIB = None
BUILD_PATH = None   # the ISA path the library was built for (ISA_PATHS)

# The ISA paths of runtime/kernels/, best first. A build takes the first path whose macros are all defined:
# nnk_gemm.h picks its register tile from the target's macros and says which by defining one NNK_GEMM_*
# macro, so each row asks for both (NNK_PORTABLE skips the intrinsic tiles, NNK_SCALAR every vector path).
# name; what it is; the flags `--isa NAME` builds with when --cflags is not given; the macros that prove a
# build compiled the path; the CPU features (as __builtin_cpu_supports names them) needed to run it. A new
# micro-kernel is a row, once its header selects it with those macros.
IsaPath = collections.namedtuple("IsaPath", "name what cflags macros cpu")
ISA_PATHS = [
    IsaPath("avx512f", "AVX-512 tile", "-march=x86-64-v4", ("__AVX512F__", "NNK_GEMM_AVX512F"), ("avx512f",)),
    IsaPath("avx2", "AVX2+FMA tile", "-march=x86-64-v3", ("__AVX2__", "__FMA__", "NNK_GEMM_AVX2_FMA"), ("avx2", "fma")),
    IsaPath("vector", "portable vector-type tile", "", ("NNK_GEMM_VECTOR",), ()),
    IsaPath("plain", "plain C", "-DNNK_SCALAR", (), ()),
]


def build(cc, flags, tmp):
    """Compiles kernels_lib.c; returns (library path or None, compiler diagnostics)."""
    out = os.path.join(tmp, "libnnk_test.so")
    cmd = [cc] + flags + ["-I", KERNELS, os.path.join(HERE, "kernels_lib.c"), "-o", out, "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return (out if proc.returncode == 0 else None), (proc.stdout + proc.stderr).strip()


def probe_isa(cc, flags, tmp):
    """Which ISA path a build with `cc flags` takes, and whether this CPU runs it. Returns (path, None, why
    not runnable or None), or (None, diagnostics, None) when the probe does not build. The macros come from
    the preprocessor (-dM, with nnk.h included, as kernels_lib.c does); running is checked by a program built
    with the same flags that asks __builtin_cpu_supports for each feature, and that dies of SIGILL if even its
    own code is too new for this CPU."""
    flags = [f for f in flags if f not in ("-shared", "-fPIC")]
    src = os.path.join(tmp, "isa_probe.c")
    with open(src, "w") as f:
        f.write('#include "nnk.h"\n#include <stdio.h>\n\nint main(void)\n{\n')
        features = sorted({c for p in ISA_PATHS for c in p.cpu})
        if features:
            f.write("#if defined(__x86_64__) || defined(__i386__)\n    __builtin_cpu_init();\n")
            for c in features:
                f.write('    printf("%s %%d\\n", __builtin_cpu_supports("%s") != 0);\n' % (c, c))
            f.write("#endif\n")
        f.write("    return 0;\n}\n")
    try:
        proc = subprocess.run([cc] + flags + ["-I", KERNELS, "-E", "-dM", src], capture_output=True, text=True)
    except OSError as e:
        return None, str(e), None
    if proc.returncode != 0:
        return None, (proc.stdout + proc.stderr).strip(), None
    defined = {line.split()[1] for line in proc.stdout.splitlines() if line.startswith("#define ")}
    path = next(p for p in ISA_PATHS if all(m in defined for m in p.macros))
    exe = os.path.join(tmp, "isa_probe")
    proc = subprocess.run([cc] + flags + ["-I", KERNELS, src, "-o", exe, "-lm"], capture_output=True, text=True)
    if proc.returncode != 0:
        return None, (proc.stdout + proc.stderr).strip(), None
    run = subprocess.run([exe], capture_output=True, text=True)
    if run.returncode != 0:
        return path, None, "the probe died (status %d%s)" % (run.returncode, ", SIGILL" if run.returncode == -4 else "")
    has = {}
    for line in run.stdout.splitlines():
        name, value = line.split()
        has[name] = value == "1"
    lacks = set(filter(None, os.environ.get("NNK_TEST_CPU_LACKS", "").split(",")))
    missing = [c for c in path.cpu if not has.get(c, True) or c in lacks]
    return path, None, "no %s" % ", ".join(missing) if missing else None


def load(path):
    lib = ctypes.CDLL(path)
    for name, sig in SIGNATURES.items():
        fn = getattr(lib, "nnkt_" + name)
        fn.argtypes = [CTYPES[c] for c in sig]
        fn.restype = ctypes.c_long if name.endswith("_scratch") else None
    lib.nnkt_dwconv_path.restype = ctypes.c_char_p
    lib.nnkt_nchwc_path.restype = ctypes.c_char_p
    return lib


def call(name, *args):
    conv = [a.ctypes.data if isinstance(a, np.ndarray) else a for a in args]
    for a in args:
        assert not isinstance(a, np.ndarray) or a.flags.c_contiguous
    return getattr(LIB, "nnkt_" + name)(*conv)


# ---- data helpers ----

def arr(t):
    """A torch tensor as a contiguous float32 numpy array (a copy)."""
    return np.ascontiguousarray(t.detach().numpy(), dtype=np.float32).copy()


def out(shape):
    return np.full(shape, np.nan, dtype=np.float32)


def ints(values):
    return np.array(list(values) or [0], dtype=np.int32)


def longs(values):
    return np.array(list(values) or [0], dtype=LONG)


def contiguous_strides(shape):
    strides, s = [], 1
    for d in reversed(shape):
        strides.append(s)
        s *= d
    return strides[::-1]


def broadcast_strides(shape, out_shape):
    """Element strides for reading a contiguous tensor of `shape` as `out_shape` (0 on broadcast axes)."""
    padded = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
    return [0 if d == 1 else s for d, s in zip(padded, contiguous_strides(padded))]


def randn(*shape):
    return torch.randn(shape, dtype=torch.float32)


def away_from_zero(*shape):
    """Random values with |v| in [0.5, 2]: safe divisors."""
    mag = torch.rand(shape) * 1.5 + 0.5
    return torch.where(torch.rand(shape) < 0.5, -mag, mag)


def compare(got, ref, tol):
    """(problem, error): problem is None when got matches ref within tol, else a description of the mismatch;
    error is max|Δ|/max(1,max|ref|) when it could be measured."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref.detach().numpy() if torch.is_tensor(ref) else ref, dtype=np.float64)
    if got.shape != ref.shape:
        return "shape %s, expected %s" % (got.shape, ref.shape), None
    nan_got, nan_ref = np.isnan(got), np.isnan(ref)
    if (nan_got != nan_ref).any():
        idx = np.unravel_index(np.argmax(nan_got != nan_ref), got.shape)
        return "%d NaN mismatches, first at %s: got %r, expected %r" % (
            (nan_got != nan_ref).sum(), idx, got[idx], ref[idx]), None
    if got.size == 0:
        return None, 0.0
    with np.errstate(invalid="ignore"):
        diff = np.where((got == ref) | nan_ref, 0.0, np.abs(got - ref))
    finite = np.isfinite(ref)
    scale = max(1.0, np.abs(ref[finite]).max() if finite.any() else 1.0)
    err = diff.max() / scale
    if not err <= tol:
        idx = np.unravel_index(np.argmax(diff), got.shape)
        return "max|Δ|/max(1,max|ref|) = %.3g > %g, at %s: got %r, expected %r" % (
            err, tol, idx, got[idx], ref[idx]), err
    return None, err


# ---- the cases: each generator yields (name, thunk returning (got, ref), tolerance) ----

# PyTorch's function for every activation of runtime/kernels/nnk_acts.def, and the rows of that table in
# order (NNK_ACT_NONE is 0, the first row 1, ...): an activation added there without a reference here fails.
TORCH_ACT = {
    "relu": torch.relu, "gelu": F.gelu, "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"), "sigmoid": torch.sigmoid,
    "tanh": torch.tanh, "silu": F.silu, "neg": torch.neg, "relu6": F.relu6, "hardsigmoid": F.hardsigmoid,
    "hardswish": F.hardswish, "sqrt": torch.sqrt, "rsqrt": torch.rsqrt, "exp": torch.exp, "log": torch.log, "abs": torch.abs,
}
ACT_ROWS = re.findall(r"^ACT\(\s*\w+\s*,\s*(\w+)\s*,", open(os.path.join(ROOT, "runtime", "kernels", "nnk_acts.def")).read(), re.M)
POSITIVE_ONLY = {"sqrt", "rsqrt", "log"}   # on inputs in (0.5, 2) and, like exp, without the extremes
UNARY = [(name, TORCH_ACT[name]) for name in ACT_ROWS]
EXTREMES = [0.0, -0.0, 1e-4, -1e-4, 3.0, -3.0, 10.0, -10.0, 20.0, -20.0, 50.0, -50.0, 100.0, -100.0, 1e4, -1e4]


def unary_cases():
    for (name, fn), n in itertools.product(UNARY, [1, 7, 64, 1001, 4099]):
        def run(name=name, fn=fn, n=n):
            x = randn(n) * 3
            if name in POSITIVE_ONLY:
                x = torch.rand(n) * 1.5 + 0.5
            elif n >= len(EXTREMES) and name != "exp":
                x[:len(EXTREMES)] = torch.tensor(EXTREMES)
            xa, y = arr(x), out(n)
            call(name, y, xa, n)
            return y, fn(x)
        yield "%s n=%d" % (name, n), run, 1e-5
    for name, fn in UNARY:
        def run_inplace(name=name, fn=fn):
            x = torch.rand(3, 37) + 0.5 if name in POSITIVE_ONLY else randn(3, 37) * 4
            xa = arr(x)
            call(name, xa, xa, xa.size)
            return xa, fn(x)
        yield "%s in place" % name, run_inplace, 1e-5
    for name, fn in [("relu", torch.relu), ("sigmoid", torch.sigmoid), ("tanh", torch.tanh)]:
        def run_nan(name=name, fn=fn):
            x = torch.tensor([float("nan"), 1.0, -1.0, float("inf"), float("-inf"), float("nan")])
            y = out(6)
            call(name, y, arr(x), 6)
            return y, fn(x)
        yield "%s NaN/inf" % name, run_nan, 1e-5


def scalar_cases():
    refs = [lambda x, s: x + s, lambda x, s: x - s, lambda x, s: x * s, lambda x, s: x / s,
            lambda x, s: s - x, lambda x, s: s / x]
    for op, s, n in itertools.product(range(6), [2.5, -0.125], [1, 33, 1000]):
        def run(op=op, s=s, n=n):
            x = away_from_zero(n) if op == RDIV else randn(n) * 2
            y = out(n)
            call("scalar", y, arr(x), s, op, n)
            return y, refs[op](x, s)
        yield "scalar %s s=%g n=%d" % (OP_NAMES[op], s, n), run, 1e-5
    def run_inplace():
        x = randn(5, 9)
        xa = arr(x)
        call("scalar", xa, xa, 0.5, MUL, xa.size)
        return xa, x * 0.5
    yield "scalar mul in place", run_inplace, 1e-5


BINARY_REFS = [torch.add, torch.sub, torch.mul, torch.div, lambda a, b: b - a, lambda a, b: b / a]
BINARY_SHAPES = [
    ((), ()), ((5,), (5,)), ((7,), (1,)), ((1,), (7,)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((4,), (3, 4)),
    ((2, 3, 4), (3, 1)), ((2, 1, 4), (1, 3, 1)), ((2, 3, 4, 5), (1, 3, 1, 1)), ((2, 3, 4, 5), (5,)),
    ((2, 3, 4, 5), ()), ((2, 1, 3, 1, 5), (4, 1, 6, 1)), ((1,), (2, 3, 4, 5, 6)), ((3, 33), (3, 33)),
    ((4, 1, 1), (1, 1, 65)),
]


def binary_case(ashape, bshape, op):
    a = away_from_zero(*ashape) if op == RDIV else randn(*ashape)
    b = away_from_zero(*bshape) if op == DIV else randn(*bshape)
    ref = BINARY_REFS[op](a, b)
    shape = tuple(ref.shape)
    y = out(shape)
    call("binary", y, arr(a), arr(b), op, len(shape), ints(shape), longs(broadcast_strides(ashape, shape)),
         longs(broadcast_strides(bshape, shape)))
    return y, ref


def binary_cases():
    for (ashape, bshape), op in itertools.product(BINARY_SHAPES, range(6)):
        yield ("binary %s %s, %s" % (OP_NAMES[op], ashape, bshape),
               lambda ashape=ashape, bshape=bshape, op=op: binary_case(ashape, bshape, op), 1e-5)

    rng = np.random.default_rng(2)    # random broadcasting patterns, rank 0..5
    for _ in range(30):
        shape = tuple(int(d) for d in rng.integers(1, 6, size=rng.integers(1, 6)))
        ashape, bshape = (tuple(d if rng.random() < 0.6 else 1 for d in shape[len(shape) - rank:])
                          for rank in rng.integers(0, len(shape) + 1, size=2))
        op = int(rng.integers(0, 6))
        yield ("binary random %s %s, %s" % (OP_NAMES[op], ashape, bshape),
               lambda ashape=ashape, bshape=bshape, op=op: binary_case(ashape, bshape, op), 1e-5)

    def run_alias_a():
        a, b = randn(2, 3, 4, 5), randn(1, 3, 1, 1)
        aa = arr(a)
        call("binary", aa, aa, arr(b), ADD, 4, ints(aa.shape), longs(contiguous_strides(aa.shape)),
             longs(broadcast_strides(b.shape, aa.shape)))
        return aa, a + b
    yield "binary add in place on a", run_alias_a, 1e-5

    def run_alias_b():
        a, b = randn(4), randn(3, 4)
        ba = arr(b)
        call("binary", ba, arr(a), ba, SUB, 2, ints(ba.shape), longs(broadcast_strides(a.shape, ba.shape)),
             longs(contiguous_strides(ba.shape)))
        return ba, a - b
    yield "binary sub in place on b", run_alias_b, 1e-5

    def run_strided():
        base, b = randn(4, 3), randn(3, 4)     # a is base.T read through swapped strides
        y = out((3, 4))
        call("binary", y, arr(base), arr(b), MUL, 2, ints((3, 4)), longs([1, 3]), longs([4, 1]))
        return y, base.t() * b
    yield "binary mul transposed operand", run_strided, 1e-5


def broadcast_cases():
    for xshape, shape in [((), ()), ((), (3, 2)), ((1,), (5,)), ((3, 1), (3, 4)), ((4,), (2, 3, 4)),
                          ((2, 1, 3), (2, 5, 3)), ((1, 1, 1, 1, 1), (2, 3, 1, 4, 5)),
                          ((3, 1, 1, 2), (3, 4, 5, 2)), ((6, 7), (6, 7)), ((1, 9, 1), (2, 3, 9, 7))]:
        def run(xshape=xshape, shape=shape):
            x = randn(*xshape)
            y = out(shape)
            call("broadcast", y, arr(x), len(shape), ints(shape), longs(broadcast_strides(xshape, shape)))
            return y, x.expand(shape)
        yield "broadcast %s -> %s" % (xshape, shape), run, 1e-5


def transpose_cases():
    cases = [((5,), (0,)), ((3, 4), (1, 0)), ((4, 3), (0, 1)), ((2, 3, 4), (2, 0, 1)), ((2, 3, 4), (0, 2, 1)),
             ((7, 1, 9), (1, 2, 0)), ((2, 3, 4, 5), (0, 2, 3, 1)), ((2, 3, 4, 5), (3, 2, 1, 0)),
             ((2, 3, 1, 4, 5), (4, 0, 3, 2, 1)), ((1, 197, 12, 64), (0, 2, 1, 3))]
    rng = np.random.default_rng(1)
    for _ in range(4):
        cases.append(((3, 2, 4, 1, 5), tuple(int(p) for p in rng.permutation(5))))
    for shape, perm in cases:
        def run(shape=shape, perm=perm):
            x = randn(*shape)
            ref = x.permute(*perm)
            y = out(tuple(ref.shape))
            call("transpose", y, arr(x), len(shape), ints(shape), ints(perm))
            return y, ref
        yield "transpose %s perm %s" % (shape, perm), run, 1e-5


def pad_cases():
    for outer, D, inner, before, after, value in [
            (1, 5, 1, 2, 3, 0.0), (3, 4, 7, 1, 0, -1.5), (2, 3, 5, 0, 2, 0.0), (4, 6, 1, 0, 0, 0.0),
            (2, 8, 3, -2, 1, 0.0), (2, 8, 3, 1, -3, 2.0), (1, 1, 1, 3, 3, 7.0), (5, 16, 49, 8, 8, 0.0)]:
        def run(outer=outer, D=D, inner=inner, before=before, after=after, value=value):
            x = randn(outer, D, inner)
            y = out((outer, before + D + after, inner))
            call("pad", y, arr(x), outer, D, inner, before, after, value)
            return y, F.pad(x, (0, 0, before, after), value=value)
        yield "pad [%d,%d,%d] before %d after %d value %g" % (outer, D, inner, before, after, value), run, 1e-5


def concat_cases():
    for outer, sizes, inner in [(1, [3, 4], 1), (2, [1, 5, 2], 3), (3, [4, 4], 1), (2, [2, 3, 1, 1], 7),
                                (1, [6], 10)]:
        def run(outer=outer, sizes=sizes, inner=inner):
            pieces = [randn(outer, d, inner) for d in sizes]
            Dy = sum(sizes)
            y = out((outer, Dy, inner))
            offset = 0
            for p, d in zip(pieces, sizes):
                call("copy_axis", y, arr(p), outer, d, inner, Dy, offset)
                offset += d
            return y, torch.cat(pieces, dim=1)
        yield "copy_axis (concat) outer %d sizes %s inner %d" % (outer, sizes, inner), run, 1e-5


def slice_cases():
    for outer, D, inner, start, end, step in [
            (2, 10, 3, 0, 10, 1), (2, 10, 3, 2, 10, 3), (1, 7, 1, 6, 7, 1), (3, 9, 4, 1, 9, 2),
            (4, 5, 1, 0, 5, 5), (2, 12, 5, 3, 11, 4), (1, 197, 768, 0, 1, 1), (3, 8, 2, 7, 8, 2)]:
        def run(outer=outer, D=D, inner=inner, start=start, end=end, step=step):
            x = randn(outer, D, inner)
            count = len(range(start, end, step))
            y = out((outer, count, inner))
            call("slice", y, arr(x), outer, D, inner, start, step, count)
            return y, x[:, start:end:step]
        yield "slice [%d,%d,%d] %d:%d:%d" % (outer, D, inner, start, end, step), run, 1e-5


def softmax_cases():
    for outer, D, inner, scale in [(1, 1, 1, 1), (1, 10, 1, 1), (4, 1000, 1, 1), (3, 7, 5, 1), (2, 5, 33, 1),
                                   (6, 64, 1, 50), (1, 3, 100, 1), (2, 3, 20, 1), (12, 197, 1, 8)]:
        def run(outer=outer, D=D, inner=inner, scale=scale):
            x = randn(outer, D, inner) * scale
            y = out((outer, D, inner))
            call("softmax", y, arr(x), outer, D, inner)
            return y, torch.softmax(x, dim=1)
        yield "softmax [%d,%d,%d] scale %g" % (outer, D, inner, scale), run, 1e-5
    def run_inplace():
        x = randn(4, 33)
        xa = arr(x)
        call("softmax", xa, xa, 4, 33, 1)
        return xa, torch.softmax(x, dim=-1)
    yield "softmax in place", run_inplace, 1e-5


def batchnorm_cases():
    for N, C, spatial, eps in [(1, 3, (), 1e-5), (4, 7, (), 1e-5), (2, 16, (7, 7), 1e-5), (2, 5, (13, 11), 1e-3),
                               (3, 4, (9,), 1e-5), (1, 64, (1, 1), 1e-5)]:
        def run(N=N, C=C, spatial=spatial, eps=eps):
            x = randn(N, C, *spatial) * 2 + 0.5
            gamma, beta, mean, var = randn(C), randn(C), randn(C), torch.rand(C) + 0.1
            S = int(np.prod(spatial)) if spatial else 1
            y = out(tuple(x.shape))
            call("batchnorm", y, arr(x), arr(gamma), arr(beta), arr(mean), arr(var), N, C, S, eps)
            return y, F.batch_norm(x, mean, var, gamma, beta, training=False, eps=eps)
        yield "batchnorm [%d,%d,%s] eps %g" % (N, C, "x".join(map(str, spatial)) or "-", eps), run, 1e-5


def layernorm_cases():
    # A large common offset makes the float32 mean itself inexact (PyTorch's float32 result is ~2e-4 off at
    # offset 1000), so that case is checked against PyTorch in float64, which shows the two-pass variance
    # holding up.
    for shape, offset, eps in [((1, 1), 0, 1e-5), ((3, 7), 0, 1e-5), ((5, 768), 0, 1e-5), ((16, 33), 0, 1e-6),
                               ((4, 1000), 1000, 1e-5), ((2, 3, 4), 0, 1e-5), ((2, 197, 64), 3, 1e-5)]:
        def run(shape=shape, offset=offset, eps=eps):
            D = shape[-1]
            x = randn(*shape) + offset
            gamma, beta = randn(D), randn(D)
            y = out(shape)
            call("layernorm", y, arr(x), arr(gamma), arr(beta), x.numel() // D, D, eps)
            if offset >= 1000:
                return y, F.layer_norm(x.double(), (D,), gamma.double(), beta.double(), eps)
            return y, F.layer_norm(x, (D,), gamma, beta, eps)
        yield "layernorm %s offset %g eps %g%s" % (shape, offset, eps, " vs float64" if offset >= 1000 else ""), \
            run, 1e-4 if offset >= 1000 else 1e-5

    def run_inplace():
        x, gamma, beta = randn(3, 40), randn(40), randn(40)
        xa = arr(x)
        call("layernorm", xa, xa, arr(gamma), arr(beta), 3, 40, 1e-5)
        return xa, F.layer_norm(x, (40,), gamma, beta, 1e-5)
    yield "layernorm in place", run_inplace, 1e-5


def linear_cases():
    for M, K, O, bias in [(1, 1, 1, True), (3, 7, 5, True), (16, 64, 32, True), (7, 33, 9, False),
                          (5, 768, 17, True), (1, 1000, 3, True), (197, 96, 40, False)]:
        def run(M=M, K=K, O=O, bias=bias):
            x, w = randn(M, K), randn(O, K)
            b = randn(O) if bias else None
            y = out((M, O))
            call("linear", y, arr(x), arr(w), arr(b) if bias else None, M, K, O)
            return y, F.linear(x, w, b)
        yield "linear M %d K %d O %d%s" % (M, K, O, "" if bias else " no bias"), run, 1e-4 if K > 100 else 1e-5

    def rows_alone(M=3, K=1003, O=9):
        # four rows at a time (nnk__dot4) give the bits of one row at a time (nnk__dot, the tail's path)
        x, w, b = randn(M, K), randn(O, K), randn(O)
        y = out((M, O))
        call("linear", y, arr(x), arr(w), arr(b), M, K, O)
        for o in range(O):
            yo = out((M, 1))
            call("linear", yo, arr(x), arr(w[o:o + 1].contiguous()), arr(b[o:o + 1].contiguous()), M, K, 1)
            if not np.array_equal(yo[:, 0], y[:, o]):
                raise AssertionError("output %d: four rows at a time differ from one row alone" % o)
        return y, F.linear(x, w, b)
    yield "linear rows four at a time equal rows alone, bit for bit", rows_alone, 1e-4

    for M, K, O, o0, o1 in [(3, 200, 50, 7, 29), (5, 64, 13, 0, 13), (2, 33, 40, 36, 40)]:
        def run(M=M, K=K, O=O, o0=o0, o1=o1):
            # a part's features [o0, o1) of every row, into the whole output (the rest stays unwritten)
            x, w, b = randn(M, K), randn(O, K), randn(O)
            y = np.full((M, O), np.nan, dtype=np.float32)
            call("linear_rows", y, arr(x), arr(w), arr(b), M, K, O, o0, o1)
            ref = np.full((M, O), np.nan, dtype=np.float32)
            ref[:, o0:o1] = F.linear(x, w, b).numpy()[:, o0:o1]
            if not np.array_equal(np.isnan(y), np.isnan(ref)):
                raise AssertionError("wrote outside features [%d, %d) or left some unwritten" % (o0, o1))
            return np.nan_to_num(y), torch.from_numpy(np.nan_to_num(ref))
        yield "linear rows M %d K %d features [%d, %d) of %d" % (M, K, o0, o1, O), run, 1e-4 if K > 100 else 1e-5


def matmul_cases():
    for ashape, bshape in [((3, 4), (4, 5)), ((1, 1), (1, 1)), ((2, 3, 4), (2, 4, 5)), ((2, 3, 4), (4, 5)),
                           ((3, 4), (2, 4, 5)), ((1, 3, 4), (6, 4, 5)), ((2, 1, 3, 4), (5, 4, 7)),
                           ((2, 3, 5, 16, 8), (2, 3, 5, 8, 16)), ((7, 33, 65), (7, 65, 9)),
                           ((1, 200, 300), (300, 100)), ((2, 12, 50, 64), (2, 12, 64, 50))]:
        def run(ashape=ashape, bshape=bshape):
            a, b = randn(*ashape), randn(*bshape)
            ref = torch.matmul(a, b)
            M, K, N = ashape[-2], ashape[-1], bshape[-1]
            bd = tuple(ref.shape[:-2])
            ast = broadcast_strides(ashape[:-2], bd)
            bst = broadcast_strides(bshape[:-2], bd)
            ast = [s * M * K for s in ast]
            bst = [s * K * N for s in bst]
            y = out(tuple(ref.shape))
            call("matmul", y, arr(a), arr(b), len(bd), ints(bd), longs(ast), longs(bst), M, K, N)
            return y, ref
        yield "matmul %s @ %s" % (ashape, bshape), run, 1e-4 if ashape[-1] > 100 else 1e-5


# (N, C, H, W, O, KH, KW, stride, pad (top, left, bottom, right), dilation, groups, bias)
CONVS = [
    (1, 1, 5, 5, 1, 3, 3, (1, 1), (0, 0, 0, 0), (1, 1), 1, True),
    (2, 3, 8, 8, 4, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, True),
    (1, 3, 9, 7, 5, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), 1, False),
    (2, 4, 10, 11, 6, 3, 2, (2, 3), (0, 1, 2, 0), (1, 1), 2, True),
    (1, 6, 12, 12, 6, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 6, True),
    (2, 4, 12, 12, 8, 3, 3, (1, 1), (2, 2, 2, 2), (2, 2), 4, True),
    (2, 3, 15, 13, 4, 5, 3, (2, 1), (2, 1, 1, 2), (2, 3), 1, True),
    (1, 3, 32, 32, 8, 7, 7, (2, 2), (3, 3, 3, 3), (1, 1), 1, False),
    (2, 16, 7, 7, 32, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1, True),
    (1, 8, 8, 8, 16, 1, 1, (2, 2), (0, 0, 0, 0), (1, 1), 1, False),
    (1, 2, 5, 5, 2, 5, 5, (1, 1), (4, 4, 4, 4), (1, 1), 1, True),
    (1, 1, 3, 3, 1, 3, 3, (3, 3), (0, 0, 0, 0), (1, 1), 1, True),
    (1, 2, 10, 10, 3, 2, 2, (3, 3), (0, 0, 0, 0), (1, 1), 1, True),
    (1, 2, 4, 4, 2, 2, 2, (1, 1), (3, 3, 3, 3), (1, 1), 1, True),
    (3, 5, 1, 9, 2, 1, 3, (1, 2), (0, 1, 0, 1), (1, 1), 1, True),
    (2, 6, 9, 9, 9, 3, 3, (2, 2), (0, 0, 1, 1), (1, 1), 3, True),
    (1, 8, 6, 6, 8, 3, 3, (1, 1), (1, 0, 0, 1), (1, 2), 8, False),
    (2, 64, 14, 14, 64, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, True),
    (1, 3, 32, 32, 16, 4, 4, (4, 4), (0, 0, 0, 0), (1, 1), 1, True),
]


def random_convs(count, seed):
    """Random small convolutions: any stride, dilation, groups (depthwise too), asymmetric padding."""
    rng = np.random.default_rng(seed)
    r = lambda lo, hi: int(rng.integers(lo, hi + 1))
    for _ in range(count):
        G = r(1, 3)
        C, O = G * r(1, 3), G * r(1, 3)
        if rng.random() < 0.25:
            G = C = O = r(1, 6)
        KH, KW, SH, SW, DH, DW = r(1, 5), r(1, 5), r(1, 3), r(1, 3), r(1, 3), r(1, 3)
        PT, PL, PB, PR = r(0, 3), r(0, 3), r(0, 3), r(0, 3)
        H = max(r(1, 12), (KH - 1) * DH + 1 - PT - PB)
        W = max(r(1, 12), (KW - 1) * DW + 1 - PL - PR)
        yield (r(1, 3), C, H, W, O, KH, KW, (SH, SW), (PT, PL, PB, PR), (DH, DW), G, rng.random() < 0.7)


def conv_cases():
    for cfg in CONVS + list(random_convs(40, 3)):
        N, C, H, W, O, KH, KW, (SH, SW), (PT, PL, PB, PR), (DH, DW), G, bias = cfg

        def run(N=N, C=C, H=H, W=W, O=O, KH=KH, KW=KW, SH=SH, SW=SW, PT=PT, PL=PL, PB=PB, PR=PR, DH=DH,
                DW=DW, G=G, bias=bias):
            x, w = randn(N, C, H, W), randn(O, C // G, KH, KW)
            b = randn(O) if bias else None
            ref = F.conv2d(F.pad(x, (PL, PR, PT, PB)), w, b, (SH, SW), 0, (DH, DW), G)
            OH, OW = ref.shape[2:]
            y = out(tuple(ref.shape))
            call("conv2d", y, arr(x), arr(w), arr(b) if bias else None, N, C, H, W, O, OH, OW, KH, KW, SH, SW,
                 PT, PL, DH, DW, G)
            return y, ref
        name = "conv2d N%d C%d %dx%d O%d k%dx%d s%dx%d pad %s dil %dx%d G%d%s" % (
            N, C, H, W, O, KH, KW, SH, SW, "/".join(map(str, (PT, PL, PB, PR))), DH, DW, G,
            "" if bias else " no bias")
        yield name, run, 1e-4 if C // G * KH * KW > 100 else 1e-5


# The epilogues the blocked product fuses: (act1, residual, act2), as NNK_ACT_* numbers and PyTorch functions.
ACTS = [(0, None)] + [(i + 1, TORCH_ACT[name]) for i, name in enumerate(ACT_ROWS)]
EPILOGUES = [(0, False, 0), (1, False, 0), (0, True, 0), (0, True, 1), (1, True, 1), (2, False, 0), (6, True, 4),
             (3, False, 0), (5, True, 0)]
# The product's tiles fuse relu6 too (nnk__gemm_fusable)
RELU6 = ACT_ROWS.index("relu6") + 1
GEMM_EPILOGUES = EPILOGUES + [(RELU6, False, 0), (RELU6, True, RELU6)]


def apply_epilogue(t, res, act1, act2):
    if ACTS[act1][1]:
        t = ACTS[act1][1](t)
    if res is not None:
        t = t + res
        if ACTS[act2][1]:
            t = ACTS[act2][1](t)
    return t


# Convolutions whose products cross every block edge: K past KC=256, pixels past NC=480, channels past MC=64,
# and rows or columns that do not fill a tile.
GEMM_CONVS = [
    (1, 64, 14, 14, 64, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, True),
    (1, 30, 23, 29, 70, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, True),
    (1, 300, 5, 7, 9, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1, True),
    (2, 3, 40, 37, 65, 7, 7, (2, 2), (3, 3, 3, 3), (1, 1), 1, False),
    (1, 40, 9, 9, 131, 1, 1, (2, 2), (0, 0, 0, 0), (1, 1), 1, True),
    (1, 17, 30, 31, 5, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1, True),
    (1, 33, 7, 7, 96, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, True),
    (1, 8, 12, 12, 8, 3, 3, (1, 1), (2, 2, 2, 2), (2, 2), 1, True),
    (1, 16, 3, 3, 24, 3, 3, (1, 1), (0, 0, 0, 0), (1, 1), 1, True),
    # panels of 1 to 4 pixels left on nnk__narrow (nnkt_conv2d_gemm splits the pixels at a third: 7x21 as 49
    # + 98, panels of 1 and 2 left; 10x15 as 50 + 100, of 2 and 4), each twice so that one of the two reads a
    # packed weight; 72 and 136 channels: past MC = 64, and 8 strips and one more
    (1, 40, 7, 21, 72, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1, True),
    (1, 40, 7, 21, 72, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1, True),
    (1, 300, 10, 15, 136, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1, False),
    (1, 300, 10, 15, 136, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1, False),
    (1, 24, 10, 15, 16, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, True),
    (1, 24, 10, 15, 16, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, True),
]


def conv_gemm_cases():
    plain = [c for c in CONVS + list(random_convs(40, 3)) if c[10] == 1]
    for i, cfg in enumerate(plain + GEMM_CONVS):
        N, C, H, W, O, KH, KW, (SH, SW), (PT, PL, PB, PR), (DH, DW), G, bias = cfg
        act1, residual, act2 = GEMM_EPILOGUES[i % len(GEMM_EPILOGUES)]
        packed = O % 8 == 0 and i % 2 == 0   # weights in nnk_pack_weight's layout

        def run(N=N, C=C, H=H, W=W, O=O, KH=KH, KW=KW, SH=SH, SW=SW, PT=PT, PL=PL, PB=PB, PR=PR, DH=DH,
                DW=DW, bias=bias, act1=act1, residual=residual, act2=act2, packed=packed):
            x, w = randn(N, C, H, W), randn(O, C, KH, KW)
            b = randn(O) if bias else None
            ref = F.conv2d(F.pad(x, (PL, PR, PT, PB)), w, b, (SH, SW), 0, (DH, DW))
            res = randn(*ref.shape) if residual else None
            OH, OW = ref.shape[2:]
            y = out(tuple(ref.shape))
            call("conv2d_gemm", y, arr(x), arr(w), int(packed), arr(b) if bias else None,
                 arr(res) if residual else None,
                 act1, act2, N, C, H, W, O, OH, OW, KH, KW, SH, SW, PT, PL, DH, DW)
            return y, apply_epilogue(ref, res, act1, act2)
        name = "conv2d_gemm N%d C%d %dx%d O%d k%dx%d s%dx%d pad %s dil %dx%d%s%s epilogue %d%s%s" % (
            N, C, H, W, O, KH, KW, SH, SW, "/".join(map(str, (PT, PL, PB, PR))), DH, DW,
            " packed" if packed else "",
            "" if bias else " no bias", act1, " + residual" if residual else "", " %d" % act2 if residual else "")
        yield name, run, 1e-4 if C * KH * KW > 100 else 1e-5


# Batches of small planes as one product (nnk_conv2d_gemm_batch): runs of pixels that end inside a panel,
# planes of one pixel, strides and padding, K past KC, more columns than NC.
BATCH_CONVS = [
    (3, 5, 9, 7, 16, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, True),
    (64, 8, 2, 2, 24, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, True),
    (7, 40, 1, 1, 9, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, False),
    (2, 300, 5, 5, 17, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1, True),
    (5, 16, 14, 14, 32, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), 1, True),
    (9, 12, 7, 7, 40, 1, 1, (2, 2), (0, 0, 0, 0), (1, 1), 1, True),
    (2, 30, 11, 13, 8, 3, 3, (1, 1), (2, 1, 0, 2), (2, 1), 1, True),
]


def conv_batch_cases():
    for i, cfg in enumerate(BATCH_CONVS):
        N, C, H, W, O, KH, KW, (SH, SW), (PT, PL, PB, PR), (DH, DW), G, bias = cfg
        act1, residual, act2 = GEMM_EPILOGUES[i % len(GEMM_EPILOGUES)]
        packed = O % 8 == 0 and i % 2 == 0

        def run(N=N, C=C, H=H, W=W, O=O, KH=KH, KW=KW, SH=SH, SW=SW, PT=PT, PL=PL, PB=PB, PR=PR, DH=DH,
                DW=DW, bias=bias, act1=act1, residual=residual, act2=act2, packed=packed):
            x, w = randn(N, C, H, W), randn(O, C, KH, KW)
            b = randn(O) if bias else None
            ref = F.conv2d(F.pad(x, (PL, PR, PT, PB)), w, b, (SH, SW), 0, (DH, DW))
            res = randn(*ref.shape) if residual else None
            OH, OW = ref.shape[2:]
            y = out(tuple(ref.shape))
            call("conv2d_gemm_batch", y, arr(x), arr(w), int(packed), arr(b) if bias else None,
                 arr(res) if residual else None, act1, act2, N, C, H, W, O, OH, OW, KH, KW, SH, SW, PT, PL, DH, DW)
            return y, apply_epilogue(ref, res, act1, act2)
        name = "conv2d_gemm_batch N%d C%d %dx%d O%d k%dx%d s%dx%d pad %s dil %dx%d%s epilogue %d%s" % (
            N, C, H, W, O, KH, KW, SH, SW, "/".join(map(str, (PT, PL, PB, PR))), DH, DW, " packed" if packed else "", act1,
            " + residual" if residual else "")
        yield name, run, 1e-4 if C * KH * KW > 100 else 1e-5


# Depthwise convolutions (nnk_dwconv.h): output rows not a multiple of any vector (1, 3, 7, 13, 17, 33,
# 63, 65) and of exactly 16 or 64, strides 1 to 3 (different across and down), padding up to more than the
# kernel's reach, dilation, 1×1 planes, odd channel counts and channel multipliers (O = M·C), 1×1 to 9×9
# kernels; each split between 1, 3 or 16 threads (16: more than channels, so some have none).
# (N, C, H, W, M, KH, KW, stride, pad (top, left, bottom, right), dilation, bias, threads)
DW_CONVS = [
    (1, 1, 5, 5, 1, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), True, 1),
    (2, 3, 7, 7, 1, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), True, 3),
    (1, 5, 56, 56, 1, 7, 7, (1, 1), (3, 3, 3, 3), (1, 1), True, 3),
    (1, 7, 14, 14, 1, 7, 7, (1, 1), (3, 3, 3, 3), (1, 1), False, 16),
    (1, 4, 112, 112, 1, 3, 3, (2, 2), (0, 0, 1, 1), (1, 1), True, 3),
    (2, 3, 33, 35, 1, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), True, 1),
    (1, 13, 17, 17, 1, 5, 5, (1, 1), (2, 2, 2, 2), (1, 1), True, 3),
    (1, 6, 27, 27, 1, 5, 5, (2, 2), (2, 2, 2, 2), (1, 1), True, 16),
    (1, 3, 63, 65, 1, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), True, 3),
    (1, 3, 16, 64, 1, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), False, 3),
    (1, 2, 1, 1, 1, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), True, 1),
    (2, 9, 1, 1, 1, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), True, 16),
    (1, 3, 2, 2, 1, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), True, 3),
    (1, 3, 4, 5, 1, 3, 3, (1, 1), (4, 3, 5, 4), (1, 1), True, 3),
    (1, 2, 3, 3, 1, 2, 2, (1, 1), (3, 3, 3, 3), (1, 1), True, 1),
    (1, 3, 20, 19, 1, 3, 3, (1, 1), (2, 2, 2, 2), (2, 2), True, 3),
    (1, 5, 21, 30, 1, 3, 3, (2, 3), (3, 1, 2, 3), (3, 2), True, 3),
    (2, 4, 13, 17, 1, 5, 3, (3, 2), (2, 1, 2, 1), (1, 2), False, 3),
    (1, 3, 12, 12, 2, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), True, 3),
    (1, 5, 11, 9, 3, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), True, 16),
    (1, 2, 30, 70, 1, 9, 9, (1, 1), (4, 4, 4, 4), (1, 1), True, 1),
    (1, 3, 9, 40, 1, 1, 7, (1, 1), (0, 3, 0, 3), (1, 1), True, 3),
    (1, 3, 19, 19, 1, 4, 4, (4, 4), (0, 0, 0, 0), (1, 1), True, 3),
    (1, 32, 14, 14, 1, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), True, 3),
]


def random_dwconvs(count, seed):
    """Random small depthwise convolutions: any kernel, stride, dilation, padding, multiplier."""
    rng = np.random.default_rng(seed)
    r = lambda lo, hi: int(rng.integers(lo, hi + 1))
    for _ in range(count):
        KH, KW, SH, SW, DH, DW = r(1, 7), r(1, 7), r(1, 3), r(1, 3), r(1, 3), r(1, 2)
        PT, PL, PB, PR = r(0, 4), r(0, 4), r(0, 4), r(0, 4)
        H = max(r(1, 40), (KH - 1) * DH + 1 - PT - PB)
        W = max(r(1, 40), (KW - 1) * DW + 1 - PL - PR)
        yield (r(1, 2), r(1, 7), H, W, r(1, 2), KH, KW, (SH, SW), (PT, PL, PB, PR), (DH, DW), rng.random() < 0.7,
               r(1, 4))


def dwconv_run(N, C, H, W, M, KH, KW, SH, SW, PT, PL, PB, PR, DH, DW, bias, act1, residual, act2, threads):
    """(the kernel's output with `threads` parts, the same with one part, PyTorch's)"""
    O = C * M
    x, w = randn(N, C, H, W), randn(O, 1, KH, KW)
    b = randn(O) if bias else None
    ref = F.conv2d(F.pad(x, (PL, PR, PT, PB)), w, b, (SH, SW), 0, (DH, DW), C)
    res = randn(*ref.shape) if residual else None
    OH, OW = ref.shape[2:]
    ys = []
    for parts in (threads, 1):
        y = out(tuple(ref.shape))
        call("dwconv2d", y, arr(x), arr(w), arr(b) if bias else None, arr(res) if residual else None, act1, act2, N, C, H, W,
             O, OH, OW, KH, KW, SH, SW, PT, PL, DH, DW, C, parts)
        ys.append(y)
    return ys[0], ys[1], apply_epilogue(ref, res, act1, act2)


def dwconv_cases():
    def run_path():
        gemm = {"avx512f": "avx512f", "avx2": "avx2", "vector": "vector", "plain": "plain"}[BUILD_PATH.name]
        got = LIB.nnkt_dwconv_path().decode()
        if got != gemm:
            raise AssertionError("nnk_dwconv.h took the %s path where nnk_gemm.h took %s" % (got, gemm))
        return np.zeros(1), np.zeros(1)
    yield "dwconv2d path is the build's ISA path", run_path, 0.0

    for i, cfg in enumerate(DW_CONVS + list(random_dwconvs(40, 5))):
        N, C, H, W, M, KH, KW, (SH, SW), (PT, PL, PB, PR), (DH, DW), bias, threads = cfg
        act1, residual, act2 = EPILOGUES[i % len(EPILOGUES)]

        def run(cfg=(N, C, H, W, M, KH, KW, SH, SW, PT, PL, PB, PR, DH, DW, bias, act1, residual, act2, threads)):
            y, y1, ref = dwconv_run(*cfg)
            if not np.array_equal(y, y1, equal_nan=True):   # the same bits for any split between threads
                raise AssertionError("%d parts differ from 1 part" % cfg[-1])
            return y, ref
        name = "dwconv2d N%d C%d %dx%d M%d k%dx%d s%dx%d pad %s dil %dx%d%s epilogue %d%s %d threads" % (
            N, C, H, W, M, KH, KW, SH, SW, "/".join(map(str, (PT, PL, PB, PR))), DH, DW, "" if bias else " no bias", act1,
            " + residual %d" % act2 if residual else "", threads)
        yield name, run, 1e-5


# Grouped convolutions as a product per group: ResNeXt's 32 groups of 4 and 8, RegNet's groups of 8, odd
# groups, one output channel a group, strides, padding, dilation, a 1×1 plane, K past KC.
# (N, C, H, W, O, KH, KW, stride, pad, dilation, groups, bias)
GROUP_CONVS = [
    (1, 128, 14, 14, 128, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 32, True),
    (1, 256, 9, 9, 256, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), 32, True),
    (2, 48, 11, 11, 48, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 6, True),
    (1, 9, 13, 10, 6, 3, 3, (2, 1), (2, 1, 0, 2), (1, 2), 3, False),
    (1, 8, 7, 7, 4, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 4, True),
    (2, 12, 1, 1, 12, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 2, True),
    (1, 60, 6, 6, 90, 5, 5, (1, 1), (4, 4, 4, 4), (1, 1), 2, True),
    (1, 6, 20, 20, 9, 3, 3, (3, 3), (1, 1, 1, 1), (2, 2), 3, True),
    (1, 64, 30, 30, 64, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 8, True),
]


def group_conv_cases():
    for (i, cfg), kernel in itertools.product(
            enumerate(GROUP_CONVS + [c for c in random_convs(40, 7) if 1 < c[10] < c[1]]), ["dwconv2d", "conv2d_gemm_groups"]):
        N, C, H, W, O, KH, KW, (SH, SW), (PT, PL, PB, PR), (DH, DW), G, bias = cfg
        act1, residual, act2 = EPILOGUES[i % len(EPILOGUES)]
        threads = (1, 3, 16)[i % 3]

        def run(N=N, C=C, H=H, W=W, O=O, KH=KH, KW=KW, SH=SH, SW=SW, PT=PT, PL=PL, PB=PB, PR=PR, DH=DH,
                DW=DW, G=G, bias=bias, act1=act1, residual=residual, act2=act2, threads=threads, kernel=kernel):
            x, w = randn(N, C, H, W), randn(O, C // G, KH, KW)
            b = randn(O) if bias else None
            ref = F.conv2d(F.pad(x, (PL, PR, PT, PB)), w, b, (SH, SW), 0, (DH, DW), G)
            res = randn(*ref.shape) if residual else None
            OH, OW = ref.shape[2:]
            ys = []
            for parts in (threads, 1):
                y = out(tuple(ref.shape))
                call(kernel, y, arr(x), arr(w), arr(b) if bias else None, arr(res) if residual else None, act1,
                     act2, N, C, H, W, O, OH, OW, KH, KW, SH, SW, PT, PL, DH, DW, G, parts)
                ys.append(y)
            if not np.array_equal(ys[0], ys[1], equal_nan=True):
                raise AssertionError("%d parts differ from 1 part" % threads)
            return ys[0], apply_epilogue(ref, res, act1, act2)
        name = "%s N%d C%d %dx%d O%d k%dx%d s%dx%d pad %s dil %dx%d G%d%s epilogue %d%s %d threads" % (
            kernel, N, C, H, W, O, KH, KW, SH, SW, "/".join(map(str, (PT, PL, PB, PR))), DH, DW, G, "" if bias else " no bias",
            act1, " + residual %d" % act2 if residual else "", threads)
        yield name, run, 1e-4 if C // G * KH * KW > 100 else 1e-5


# The blocked layout (nnk_conv_nchwc.h) and Winograd (nnk_winograd.h): output rows of every length the tiles
# cut (1 to 33: full tiles of 14 and 7, pieces of 8, 4, 2, 1), 1 to 9 blocks of output channels (groups of 4
# and 8, the tile heights 1, 2 and 4), plain input of 3 and 20 channels, 1x1 runs past 196 pixels, strides,
# dilation, padding wider than the kernel, batches of small planes (position by position), every epilogue,
# and splits between 1 to 5 threads, which must give the same bits; groups within a block (4 and 8 channels
# a group, zeros between them in the block's weights) and of whole blocks (16 and 32 input channels against
# 16, 32 or 64 output channels: tiles of 1, 2 and 4 blocks that must not cross a group); input blocks in
# chunks (12 and 13 blocks of a 3x3 layer: chunks of 11 and the rest, from the partial sums).
# (N, C, H, W, O, KH, KW, stride, pad, dilation, winograd[, groups])
NCHWC_CONVS = [
    (1, 16, 13, 13, 16, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), False),
    (1, 32, 9, 33, 48, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), False),
    (2, 16, 7, 17, 80, 1, 7, (1, 1), (0, 3, 0, 3), (1, 1), False),
    (1, 3, 29, 31, 32, 7, 7, (2, 2), (3, 3, 3, 3), (1, 1), False),
    (1, 20, 11, 12, 16, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), False),
    (1, 32, 21, 20, 64, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), False),
    (2, 64, 14, 13, 32, 1, 1, (2, 2), (0, 0, 0, 0), (1, 1), False),
    (1, 16, 17, 16, 144, 3, 3, (1, 1), (2, 2, 2, 2), (2, 2), False),
    (1, 16, 4, 5, 16, 3, 3, (1, 1), (4, 4, 4, 4), (1, 1), False),
    (30, 32, 1, 1, 48, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), False),
    (20, 16, 4, 3, 32, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), False),
    (1, 16, 28, 28, 16, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), True),
    (2, 32, 29, 31, 48, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), True),
    (1, 16, 25, 26, 144, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), True),
    (1, 64, 30, 30, 64, 3, 3, (1, 1), (1, 1, 0, 2), (1, 1), True),
    (1, 64, 13, 13, 64, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), False, 16),
    (2, 64, 15, 14, 64, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), False, 8),
    (1, 32, 9, 23, 32, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), False, 2),
    (1, 64, 7, 7, 128, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), False, 2),
    (1, 32, 11, 12, 64, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), False, 2),
    (1, 64, 15, 14, 256, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), False, 4),
    (30, 64, 1, 1, 64, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), False, 8),
    (5, 32, 4, 4, 64, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), False, 2),
    (20, 64, 4, 3, 128, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), False, 2),
    # input blocks in chunks, each over every run of a unit before the next (weights past NNK_CONV_CHUNK_BYTES)
    (1, 192, 7, 7, 64, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), False),
    (1, 208, 13, 12, 48, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), False),
    # Winograd on batches of small planes: chunks of tiles that run from one image into the next (4, 1, 16,
    # 1, 1 and 6 tiles an image), and tiles mostly past the plane
    (20, 16, 7, 7, 32, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), True),
    (30, 32, 4, 4, 48, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), True),
    (3, 16, 14, 14, 80, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), True),
    (5, 16, 3, 3, 16, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), True),
    (64, 16, 2, 3, 32, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), True),
    (7, 32, 9, 5, 32, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), True),
    # runs of 28 tiles where the weights are large (128 input channels or more: chunks of 28 and 21; an
    # epilogue that keeps the output's scale, which Winograd's error is relative to), and one chunk of all
    # 16 tiles (a 14x14 plane)
    (1, 128, 28, 28, 32, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), True),
    (1, 32, 14, 14, 48, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), True),
    # (added last: each case's epilogue and threads follow from its place) narrow rows whose runs of pixels
    # are gathered across them (OW 13 on AVX2 and NEON, OW 5 on x86's portable path too): three runs, the
    # last short, each starting within a row; chunked input blocks over several runs of a 15x15 plane, each
    # chunk from the last one's partial sums (and OW 5: runs of 12 pixels, the last of 9, for its 2 groups of
    # blocks); a small plane of one group of blocks in 7 runs of 7 pixels (NNK_CONV_MIN_UNITS)
    (1, 16, 31, 13, 32, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), False),
    (1, 192, 15, 15, 64, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), False),
    (1, 16, 9, 5, 32, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), False),
    (1, 32, 7, 7, 16, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), False),
    # a flat 7x7 plane of 8 groups of blocks: one run of 49 pixels, which AVX-512 starts with tiles of 14
    # pixels × 2 blocks and ends with one of 7 × 4
    (1, 32, 7, 7, 512, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), False),
    # Winograd's F(2x2, 3x3) (winograd 2): a 14x14 plane (49 tiles: chunks of 28 and 21 on 128 channels), an
    # odd plane whose last tiles are partly past it, a batch whose chunks run from one image into the next,
    # a plane of 25 tiles, and padding that differs by side
    (1, 128, 14, 14, 64, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 2),
    (1, 16, 13, 11, 48, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 2),
    (3, 32, 7, 7, 80, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 2),
    (1, 32, 9, 9, 16, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 2),
    (2, 64, 6, 5, 32, 3, 3, (1, 1), (0, 1, 2, 1), (1, 1), 2),
    # 7x7 output planes of 8 groups of blocks or more, whose runs AVX-512 computes two rows of 7 a tile where
    # the blocks go in pairs: stride 2 (3x3 from 14x14, and 1x1 not flat); runs of 25 pixels (4 groups) that
    # start and end within rows; input blocks in chunks, from the partial sums; groups of whole blocks; and
    # 33 blocks (no pairs)
    (1, 32, 14, 14, 512, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), False),
    (1, 32, 7, 7, 256, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), False),
    (1, 16, 13, 14, 512, 1, 1, (2, 2), (0, 0, 0, 0), (1, 1), False),
    (1, 208, 7, 7, 512, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), False),
    (1, 64, 7, 7, 512, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), False, 2),
    (1, 32, 7, 7, 528, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), False),
    # groups within a block on the x86 paths' own tiles (G = 4 or 8 in and out, 3x3, stride 1 or 2 along a row):
    # ResNeXt-50's first two stages (56x56 in runs that start within rows; 56 → 28 at stride 2), rows of 33
    # and 13 (tiles of 14 and pixels left over), a stride of 2 along a column only, dilation along a column
    # (which they take) and along a row (which the tiles of 16 channels compute)
    (1, 128, 56, 56, 128, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), False, 32),
    (1, 256, 56, 56, 256, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), False, 32),
    (1, 32, 9, 33, 32, 3, 3, (1, 1), (1, 2, 0, 1), (1, 1), False, 8),
    (2, 48, 13, 27, 48, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), False, 12),
    (1, 64, 17, 13, 64, 3, 3, (2, 1), (1, 1, 1, 1), (1, 1), False, 16),
    (1, 32, 19, 29, 32, 3, 3, (1, 1), (2, 1, 2, 1), (2, 1), False, 4),
    (1, 32, 12, 12, 32, 3, 3, (1, 1), (2, 2, 2, 2), (1, 2), False, 4),
    # AVX-512's tiles of 6 pixels x 4 blocks (8 runs a plane of 64 channels, 4 of 80): 1x1 runs of 28 (4 tiles
    # and 4 pixels left), 194 (32 and 2) and 24 (4), the last of 9 input blocks; at stride 2 rows of 10 (6 and
    # 4), and of 6 of 20 input blocks; rows of 8 and 13 of a 3x3 (6 + 2 and 2 x 6 + 1: the tiles of 14 then)
    (1, 48, 14, 16, 64, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), False),
    (1, 32, 8, 97, 80, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), False),
    (1, 144, 12, 16, 64, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), False),
    (1, 64, 20, 20, 64, 1, 1, (2, 2), (0, 0, 0, 0), (1, 1), False),
    (1, 320, 12, 12, 96, 1, 1, (2, 2), (0, 0, 0, 0), (1, 1), False),
    (1, 32, 8, 13, 64, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), False),
]


def nchwc_cases():
    def run_path():
        got = LIB.nnkt_nchwc_path().decode()
        if got != BUILD_PATH.name:
            raise AssertionError("nnk_conv_nchwc.h took the %s path where nnk_gemm.h took %s" % (got, BUILD_PATH.name))
        return np.zeros(1), np.zeros(1)
    yield "conv2d_nchwc path is the build's ISA path", run_path, 0.0

    for i, cfg in enumerate(NCHWC_CONVS):
        N, C, H, W, O, KH, KW, (SH, SW), (PT, PL, PB, PR), (DH, DW), wino = cfg[:11]
        G = cfg[11] if len(cfg) > 11 else 1
        act1, residual, act2 = EPILOGUES[i % len(EPILOGUES)]
        threads = i % 5 + 1

        def run(N=N, C=C, H=H, W=W, O=O, KH=KH, KW=KW, SH=SH, SW=SW, PT=PT, PL=PL, PB=PB, PR=PR, DH=DH, DW=DW, wino=wino,
                G=G, act1=act1, residual=residual, act2=act2, threads=threads):
            x, w, b = randn(N, C, H, W), randn(O, C // G, KH, KW), randn(O)
            ref = F.conv2d(F.pad(x, (PL, PR, PT, PB)), w, b, (SH, SW), 0, (DH, DW), G)
            res = randn(*ref.shape) if residual else None
            OH, OW = ref.shape[2:]
            ys = []
            for parts in (threads, 1):
                y = out(tuple(ref.shape))
                call("conv2d_nchwc", y, arr(x), arr(w), arr(b), arr(res) if residual else None, act1, act2, N, C, H, W, O, OH, OW,
                     KH, KW, SH, SW, PT, PL, DH, DW, G, int(wino), parts)
                ys.append(y)
            if not np.array_equal(ys[0], ys[1], equal_nan=True):
                raise AssertionError("%d parts differ from 1 part" % threads)
            return ys[0], apply_epilogue(ref, res, act1, act2)
        name = "conv2d_nchwc%s N%d C%d %dx%d O%d k%dx%d s%dx%d pad %s dil %dx%d%s epilogue %d%s %d threads" % (
            " winograd F2" if wino == 2 else " winograd" if wino else "", N, C, H, W, O, KH, KW, SH, SW, "/".join(map(str, (PT, PL, PB, PR))), DH, DW,
            " G%d" % G if G > 1 else "", act1, " + residual %d" % act2 if residual else "", threads)
        yield name, run, 1e-4 if C // G * KH * KW > 100 else 1e-5


def linear_gemm_cases():
    # (M, K, O, [o0, o1) of the output features computed, bias)
    for i, (M, K, O, o0, o1, bias) in enumerate([
            (1, 1, 1, 0, 1, True), (3, 7, 5, 0, 5, True), (16, 64, 32, 0, 32, True), (7, 33, 9, 0, 9, False),
            (5, 768, 17, 3, 17, True), (1, 1000, 3, 0, 3, True), (197, 96, 40, 0, 40, False),
            (197, 300, 500, 0, 250, True), (197, 300, 500, 250, 500, True), (70, 513, 49, 1, 48, True),
            (9, 40, 1000, 0, 1000, True), (130, 257, 97, 0, 97, False), (197, 300, 144, 48, 144, True),
            (20, 600, 96, 0, 96, False), (197, 768, 480, 0, 240, True), (197, 768, 480, 240, 480, True),
            # edges of the AVX2 path's 4x24 sub-tiles: 1, 2 or 3 rows against 8, 16 or 17..23 columns
            (5, 300, 8, 0, 8, True), (10, 40, 56, 0, 56, False), (2, 40, 16, 0, 16, True), (11, 300, 65, 0, 65, True),
            (11, 70, 64, 0, 64, True)]):
        act1, residual, act2 = GEMM_EPILOGUES[i % len(GEMM_EPILOGUES)]
        packed = O % 48 == 0 and o0 % 48 == 0 and o1 % 48 == 0   # weights in nnk_pack_weight's layout

        def run(M=M, K=K, O=O, o0=o0, o1=o1, bias=bias, act1=act1, residual=residual, act2=act2, packed=packed):
            x, w = randn(M, K), randn(O, K)
            b = randn(O) if bias else None
            res = randn(M, O) if residual else None
            y = out((M, O))
            call("linear_gemm", y, arr(x), arr(w), int(packed), arr(b) if bias else None, arr(res) if residual else None,
                 act1, act2, M, K, O, o0, o1)
            ref = apply_epilogue(F.linear(x, w, b), res, act1, act2)
            outside = np.full((M, O), np.nan, dtype=np.float32)   # columns outside [o0, o1) stay unwritten
            outside[:, o0:o1] = ref[:, o0:o1].numpy()
            return y, torch.from_numpy(outside)
        yield "linear_gemm M %d K %d O %d [%d, %d)%s%s epilogue %d%s%s" % (
            M, K, O, o0, o1, "" if bias else " no bias", " packed" if packed else "", act1, " + residual" if residual else "",
            " %d" % act2 if residual else ""), run, 1e-4 if K > 100 else 1e-5


def linear_gemv_cases():
    # (M, K, O, [o0, o1) of the output features computed, bias): a classifier at batch 1 (ResNet-50's, a part
    # of it as a thread computes it), fewer features than a panel, a last panel part full, several rows, K of 1
    for (M, K, O, o0, o1, bias) in [(1, 2048, 1000, 0, 1000, True), (1, 2048, 1000, 512, 1000, True), (1, 768, 10, 0, 10, True),
                                    (3, 100, 130, 64, 130, False), (7, 33, 64, 0, 64, True), (2, 1, 65, 0, 65, True)]:
        def run(M=M, K=K, O=O, o0=o0, o1=o1, bias=bias):
            x, w = randn(M, K), randn(O, K)
            b = randn(O) if bias else None
            y, y2 = out((M, O)), out((M, O))
            call("linear_gemv", y, y2, arr(x), arr(w), arr(b) if bias else None, M, K, O, o0, o1)
            if not np.array_equal(y[:, o0:o1], y2[:, o0:o1]):
                raise AssertionError("not the bits of nnk_linear_gemm")
            if not np.isnan(y[:, :o0]).all() or not np.isnan(y[:, o1:]).all():
                raise AssertionError("wrote outside [o0, o1)")
            ref = np.full((M, O), np.nan, dtype=np.float32)
            ref[:, o0:o1] = F.linear(x, w, b)[:, o0:o1].numpy()
            return y, torch.from_numpy(ref)
        yield "linear_gemv M %d K %d O %d [%d, %d)%s (nnk_linear_gemm's bits)" % (M, K, O, o0, o1, "" if bias else " no bias"), run, \
            1e-4 if K > 100 else 1e-5


# (N, C, H, W, kernel, stride, pad (top, left, bottom, right)); symmetric pads use nn.MaxPool2d/AvgPool2d's own
# padding, asymmetric ones go through F.pad first.
POOLS = [
    (1, 1, 4, 4, (2, 2), (2, 2), (0, 0, 0, 0)),
    (2, 3, 9, 9, (3, 3), (2, 2), (1, 1, 1, 1)),
    (1, 2, 7, 8, (3, 2), (2, 1), (1, 0, 1, 0)),
    (2, 4, 11, 10, (3, 3), (3, 3), (0, 0, 0, 0)),
    (1, 1, 5, 5, (5, 5), (1, 1), (2, 2, 2, 2)),
    (1, 3, 6, 7, (2, 2), (1, 1), (1, 1, 1, 1)),
    (2, 64, 112, 112, (3, 3), (2, 2), (1, 1, 1, 1)),
    (1, 2, 8, 9, (3, 3), (2, 2), (1, 0, 2, 1)),
    (2, 3, 5, 6, (2, 3), (1, 2), (0, 1, 1, 0)),
    (1, 1, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0)),
    (3, 2, 7, 7, (2, 2), (3, 3), (1, 1, 1, 1)),
]


def random_pools(count, seed):
    """Random small pools; padding at most half the window, as nn.MaxPool2d/AvgPool2d require."""
    rng = np.random.default_rng(seed)
    r = lambda lo, hi: int(rng.integers(lo, hi + 1))
    for _ in range(count):
        KH, KW, SH, SW = r(1, 4), r(1, 4), r(1, 4), r(1, 4)
        PT, PL, PB, PR = r(0, KH // 2), r(0, KW // 2), r(0, KH // 2), r(0, KW // 2)
        yield (r(1, 2), r(1, 3), max(r(1, 12), KH), max(r(1, 12), KW), (KH, KW), (SH, SW), (PT, PL, PB, PR))


def pool_cases():
    for (N, C, H, W, (KH, KW), (SH, SW), (PT, PL, PB, PR)), kind in itertools.product(
            POOLS + list(random_pools(25, 4)), ["max", "avg"]):
        def run(N=N, C=C, H=H, W=W, KH=KH, KW=KW, SH=SH, SW=SW, PT=PT, PL=PL, PB=PB, PR=PR, kind=kind):
            x = randn(N, C, H, W)
            Pool = nn.MaxPool2d if kind == "max" else nn.AvgPool2d
            if (PT, PL) == (PB, PR):
                ref = Pool((KH, KW), (SH, SW), (PT, PL))(x)
            else:
                fill = float("-inf") if kind == "max" else 0.0
                ref = Pool((KH, KW), (SH, SW), 0)(F.pad(x, (PL, PR, PT, PB), value=fill))
            OH, OW = ref.shape[2:]
            y = out(tuple(ref.shape))
            call(kind + "pool2d", y, arr(x), N, C, H, W, OH, OW, KH, KW, SH, SW, PT, PL)
            return y, ref
        yield "%spool2d N%d C%d %dx%d k%dx%d s%dx%d pad %s" % (
            kind, N, C, H, W, KH, KW, SH, SW, "/".join(map(str, (PT, PL, PB, PR)))), run, 1e-5

    def run_nan():
        x = randn(1, 2, 6, 6)
        x[0, 0, 1, 1] = float("nan")
        x[0, 1, 5, 0] = float("nan")
        ref = nn.MaxPool2d(3, 2, 1)(x)
        y = out(tuple(ref.shape))
        call("maxpool2d", y, arr(x), 1, 2, 6, 6, 3, 3, 3, 3, 2, 2, 1, 1)
        return y, ref
    yield "maxpool2d NaN propagation", run_nan, 1e-5

    for N, C, H, W, OH, OW in [(2, 3, 7, 7, 1, 1), (1, 4, 8, 8, 4, 4), (2, 2, 7, 9, 3, 4), (1, 3, 5, 5, 7, 7),
                               (2, 2, 10, 3, 4, 6), (1, 1, 1, 1, 3, 2), (1, 2, 13, 17, 5, 1),
                               (1, 512, 7, 7, 1, 1), (2, 3, 14, 14, 6, 6),
                               (1, 3, 2, 3, 1, 1), (1, 2, 4, 2, 1, 1), (1, 2, 3, 5, 1, 1), (2, 4, 56, 56, 1, 1)]:
        def run_adaptive(N=N, C=C, H=H, W=W, OH=OH, OW=OW):
            x = randn(N, C, H, W)
            y = out((N, C, OH, OW))
            call("adaptive_avgpool2d", y, arr(x), N, C, H, W, OH, OW)
            return y, nn.AdaptiveAvgPool2d((OH, OW))(x)
        yield "adaptive_avgpool2d N%d C%d %dx%d -> %dx%d" % (N, C, H, W, OH, OW), run_adaptive, 1e-5

    # the global pool on the blocked layout: PyTorch's mean within 1e-5, and the plain pool's bits (both add
    # each plane in the same NNK_MEAN_LANES partial sums), split between 1 or 3 threads
    for N, C, H, W, parts in [(1, 16, 7, 7, 1), (2, 32, 7, 7, 3), (1, 48, 1, 1, 1), (1, 16, 3, 5, 3), (2, 16, 56, 56, 3),
                              (3, 64, 2, 4, 3)]:
        def run_global(N=N, C=C, H=H, W=W, parts=parts):
            x = randn(N, C, H, W)
            y, plain = out((N, C)), out((N, C, 1, 1))
            call("global_avgpool_nchwc", y, arr(x), N, C, H, W, parts)
            call("adaptive_avgpool2d", plain, arr(x), N, C, H, W, 1, 1)
            if y.tobytes() != plain.reshape(N, C).tobytes():
                raise AssertionError("the blocked global pool's bits differ from the plain pool's")
            return y, x.mean(dim=(2, 3))
        yield "global_avgpool_nchwc N%d C%d %dx%d, %d part(s): the plain pool's bits" % (N, C, H, W, parts), run_global, 1e-5


def causal_mask(L, S):
    return torch.triu(torch.full((L, S), float("-inf")), diagonal=1)


def sdpa_cases():
    for B, L, S, D, Dv, causal in [(1, 1, 1, 1, 1, 0), (2, 5, 5, 8, 8, 0), (2, 5, 5, 8, 8, 1), (3, 7, 11, 16, 5, 0),
                                   (3, 7, 11, 16, 5, 1), (2, 9, 4, 4, 6, 1), (1, 64, 64, 64, 64, 1),
                                   (4, 197, 197, 64, 64, 0), (2, 3, 40, 33, 17, 0)]:
        def run(B=B, L=L, S=S, D=D, Dv=Dv, causal=causal):
            q, k, v = randn(B, L, D), randn(B, S, D), randn(B, S, Dv)
            scores = q @ k.transpose(1, 2) / math.sqrt(D)
            if causal:
                scores = scores + causal_mask(L, S)
            ref = torch.softmax(scores, dim=-1) @ v
            y = out((B, L, Dv))
            scratch = out(call("sdpa_scratch", L, S))
            call("sdpa", y, arr(q), arr(k), arr(v), B, L, S, D, Dv, causal, scratch)
            return y, ref
        yield "sdpa B%d L%d S%d D%d Dv%d%s" % (B, L, S, D, Dv, " causal" if causal else ""), run, 1e-5


def mha_cases():
    # (N, L, S, D, heads, causal, cross, need_weights): need_weights=False lets self-attention take PyTorch's
    # fused fast path, True the plain Python one; both must agree with the kernel.
    for N, L, S, D, heads, causal, cross, need_weights in [
            (1, 1, 1, 4, 1, 0, 0, True), (2, 5, 5, 16, 4, 0, 0, True), (2, 5, 5, 16, 4, 0, 0, False),
            (2, 5, 5, 16, 4, 1, 0, True), (2, 5, 5, 16, 4, 1, 0, False), (3, 7, 7, 12, 3, 1, 0, True),
            (1, 10, 10, 8, 8, 0, 0, True), (2, 17, 17, 64, 1, 1, 0, False), (2, 50, 50, 96, 12, 0, 0, False),
            (2, 6, 9, 16, 2, 0, 1, True), (2, 6, 6, 32, 8, 1, 1, True), (3, 4, 11, 24, 6, 0, 1, False),
            (1, 7, 3, 8, 2, 1, 1, True), (1, 150, 150, 64, 4, 1, 0, False), (2, 70, 130, 32, 2, 0, 1, True),
            (1, 130, 70, 16, 2, 1, 1, True)]:
        for blocked in (False, True):   # nnk_mha itself, or the generated code's nnk_mha_attend
            def run(N=N, L=L, S=S, D=D, heads=heads, causal=causal, cross=cross, need_weights=need_weights,
                    blocked=blocked):
                mha = nn.MultiheadAttention(D, heads, batch_first=True).eval()
                with torch.no_grad():
                    mha.in_proj_bias.normal_()
                    mha.out_proj.bias.normal_()
                    x = randn(N, L, D)
                    mem = randn(N, S, D) if cross else x
                    if not causal:
                        mask = None
                    elif L == S:
                        mask = nn.Transformer.generate_square_subsequent_mask(L)
                    else:
                        mask = causal_mask(L, S)
                    ref, _ = mha(x, mem, mem, attn_mask=mask, need_weights=need_weights)
                y = out((N, L, D))
                xa = arr(x)
                args = [y, xa, arr(mem) if cross else xa, arr(mha.in_proj_weight), arr(mha.in_proj_bias),
                        arr(mha.out_proj.weight), arr(mha.out_proj.bias), N, L, S, D, heads, causal]
                if blocked:
                    call("mha_blocked", *args)
                else:
                    call("mha", *args, out(call("mha_scratch", N, L, S, D)))
                return y, ref
            yield "mha%s N%d L%d S%d D%d heads %d%s%s%s" % (
                " blocked" if blocked else "", N, L, S, D, heads, " causal" if causal else "", " cross" if cross else " self",
                " need_weights" if need_weights else ""), run, 1e-5


SUITES = [unary_cases, scalar_cases, binary_cases, broadcast_cases, transpose_cases, pad_cases, concat_cases,
          slice_cases, softmax_cases, batchnorm_cases, layernorm_cases, linear_cases, linear_gemm_cases, linear_gemv_cases,
          matmul_cases, conv_cases, conv_gemm_cases, conv_batch_cases, dwconv_cases, group_conv_cases, nchwc_cases,
          pool_cases, sdpa_cases, mha_cases]


def main():
    global LIB, BUILD_PATH
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--cc", default="cc", help="C compiler (default: cc)")
    parser.add_argument("--cflags", default=None, help="extra compiler flags, e.g. \"-O3 -march=native\"")
    parser.add_argument("--isa", choices=[p.name for p in ISA_PATHS],
                        help="the ISA path the build must take (else the suite is skipped); built with that "
                             "path's flags unless --cflags is given")
    parser.add_argument("-k", default="", help="run only cases whose name contains this")
    parser.add_argument("-v", action="store_true", help="print the error measure of passing cases too")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    start = time.time()
    passed = failed = 0
    wanted = next((p for p in ISA_PATHS if p.name == args.isa), None)
    extra = (args.cflags if args.cflags is not None else wanted.cflags if wanted else "").split()

    with tempfile.TemporaryDirectory(prefix="nnk_test_") as tmp:
        flags = CFLAGS + extra
        path, diagnostics, cannot_run = probe_isa(args.cc, flags, tmp)
        if path is None:
            print("FAIL - ISA probe with %s %s: %s" % (args.cc, " ".join(flags), diagnostics.replace("\n", "\n# ")))
            print("0 passed, 1 failed, 0 skipped")
            return 1
        print("# kernels: ISA path %s (%s)" % (path.name, " ".join([args.cc] + extra)))
        BUILD_PATH = path
        native = "-march=native" in extra
        label = "kernels-native" if native else "kernels %s" % (wanted or path).name
        reason = None
        if wanted and path != wanted:
            reason = "%s not %s (path: %s)" % (wanted.what, "available on this CPU" if native else
                                               "compiled by %s" % " ".join([args.cc] + extra), path.what)
        elif cannot_run:
            reason = "%s compiled, but this CPU cannot run it (%s)" % (path.what, cannot_run)
        if reason:
            print("skip - %s: %s" % (label, reason))
            print("0 passed, 0 failed, 1 skipped")
            return 0
        lib, diagnostics = build(args.cc, flags, tmp)
        if lib is None or diagnostics:
            print("FAIL - build with %s %s: %s" % (args.cc, " ".join(flags), diagnostics.replace("\n", "\n# ")))
            failed += 1
        else:
            print("ok - build with %s %s (ISA path %s)" % (args.cc, " ".join(flags), path.name))
            passed += 1
        try:
            LIB = load(lib) if lib else None
        except OSError as e:
            print("FAIL - load %s: %s" % (lib, e))
            failed += 1
        if LIB is None:
            print("%d passed, %d failed, 0 skipped" % (passed, failed))
            return 1
        for suite in SUITES:
            for name, run, tol in suite():
                if args.k not in name:
                    continue
                try:
                    got, ref = run()
                    problem, err = compare(got, ref, tol)
                except Exception as e:  # a broken case is a failure, not the end of the run
                    problem, err = "%s: %s" % (type(e).__name__, e), None
                if problem:
                    print("FAIL - %s: %s" % (name, problem))
                    failed += 1
                else:
                    print("ok - %s%s" % (name, " (%.2g)" % err if args.v else ""))
                    passed += 1
    print("# %.1f s, ISA path %s" % (time.time() - start, path.name))
    print("%d passed, %d failed, 0 skipped" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
