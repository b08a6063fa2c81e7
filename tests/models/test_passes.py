#!/usr/bin/python3
"""The optimising passes keep what every model computes, and the memory plan is tight and sound.

For every models/*.net:
  - `nnc --stats` at -O2: arena_bytes <= 1.1 x lower_bound (the most bytes live at one op);
  - the program built at -O0 (the graph as written) and at -O2 (batch norm folded, epilogues and
    attention fused, views, in-place ops) give the same outputs, max|diff|/max|ref| <= 1e-5, on the
    same random weights and input. Models run at a reduced size (-D overrides) to stay quick;
  - nnc proves its memory plan (no two live buffers overlap) on every compile, and NNC_VERIFY=1
    verifies the graph after every pass: both must hold.
Also the op counts after fusion: ResNet-50 keeps no batchnorm and no standalone relu or add.
Needs numpy only.
"""
import concurrent.futures
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import safetensors  # noqa: E402

NNC = os.path.join(ROOT, "build", "nnc")
CC = os.environ.get("CC") or ("clang" if shutil.which("clang") else "cc")
SMALL = {"size": 32, "seq": 16, "tgt_len": 8, "mem_len": 12}   # overrides, where the model has such a let
# models whose smallest input is larger than SMALL's (their pooling and strides need it)
SMALLEST_SIZE = {"alexnet": 63, "inception_v3": 75, "maxvit_t": 64}
# other overrides: MaxViT's partitions must divide every block's map
EXTRA = {"maxvit_t": {"partition": 2}}
TOLERANCE = 1e-5
# The C at -O1, here and in test_winograd.py (CFLAGS: the programs `nnc --bisect` builds): these suites check
# what nnc's passes and Winograd compute, not the C compiler's optimisations, and -O1 compiles generated C
# about 3x faster than -O2 (ResNet-50 at 32x32: 2.1 s against 6.4) while computing the same floats
# (without -ffast-math every level does the same operations in the same order). The models, ops and
# program suites build at -O2, as a user does.
COPT = "-O1"
ENV = dict(os.environ, NNC_VERIFY="1", CFLAGS=f"{COPT} -march=native")

passed = failed = 0


def report(ok, name, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok - {name}{' (' + detail + ')' if detail else ''}")
    else:
        failed += 1
        print(f"FAIL - {name}: {detail}")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, **kw)


def random_weights(keys, path, seed, index_limits=None):
    """Weights scaled like a trained network's: fan-in scaled kernels, batch-norm variances near 1; index
    tensors (index_limits: key -> the range nnc checks) random integers in range."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for key, shape in keys:
        if key in (index_limits or {}):
            tensors[key] = rng.integers(0, index_limits[key], shape, dtype=np.int64)
            continue
        if key.endswith("running_var"):
            a = rng.uniform(0.5, 1.5, shape)
        elif key.endswith(("running_mean", "bias")) or len(shape) == 1:
            a = rng.normal(0, 0.1, shape) + (1.0 if key.endswith("weight") and len(shape) == 1 else 0.0)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
            a = rng.normal(0, 1 / np.sqrt(max(fan_in, 1)), shape)
        tensors[key] = a.astype(np.float32)
    safetensors.save_file(tensors, path)


def weight_keys(net, defines):
    r = run([NNC, net, "--emit", "weights"] + defines)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    keys = []
    for line in r.stdout.splitlines():
        key, shape = line.split(" ", 1)
        keys.append((key, [int(d) for d in shape.strip("[]").split(",")]))
    return keys


def index_limits(net, defines):
    """key -> limit of each index weight, from `--emit ir` (`weight @KEY index[...]  # values below N`)."""
    r = run([NNC, net, "--emit", "ir"] + defines)
    return {k: int(n) for k, n in re.findall(r"^weight @(\S+) index\[.*# values below (\d+)$", r.stdout, re.M)}


def build(net, defines, opt, out_dir):
    c_file = os.path.join(out_dir, f"m{opt}.c")
    r = run([NNC, net, opt, "--main", "-o", c_file] + defines)
    if r.returncode != 0:
        raise RuntimeError(f"nnc {opt}: {r.stderr.strip()}")
    exe = os.path.join(out_dir, f"m{opt}")
    flags = run([NNC, "--cflags"]).stdout.split() + run([NNC, "--libs"]).stdout.split()
    r = run([CC, "-std=c11", COPT, "-march=native", "-Wall", "-Wextra", "-Werror", c_file, "-o", exe] + flags)
    if r.returncode != 0:
        raise RuntimeError(f"{CC} {opt}: {r.stderr.strip()[:2000]}")
    return exe


def outputs_of(exe, weights, n_out, out_dir, tag):
    outs = [os.path.join(out_dir, f"{tag}_out{i}.npy") for i in range(n_out)]
    cmd = [exe, "--weights", weights]
    for o in outs:
        cmd += ["--output", o]
    r = run(cmd)
    if r.returncode != 0:
        raise RuntimeError(f"{exe}: {r.stderr.strip()}")
    return [np.load(o) for o in outs]


def check_model(net, tmp):
    """The memory plan and -O0 against -O2 of one model: a list of (ok, name, detail), reported by the caller
    (models are checked two at a time)."""
    results = []

    def report(ok, name, detail=""):
        results.append((ok, name, detail))

    name = os.path.splitext(os.path.basename(net))[0]
    lets = set(re.findall(r"^let\s+(\w+)", open(net).read(), re.M))
    small = dict(SMALL, size=SMALLEST_SIZE.get(name, SMALL["size"]), **EXTRA.get(name, {}))
    defines = [f"-D{k}={v}" for k, v in small.items() if k in lets]

    r = run([NNC, net, "--stats"])
    m = re.search(r"arena_bytes=(\d+) lower_bound=(\d+)", r.stdout)
    if r.returncode != 0 or not m:
        report(False, f"{name} memory plan", f"nnc --stats failed: {r.stderr.strip()}")
    else:
        arena, bound = int(m.group(1)), int(m.group(2))
        report(arena <= 1.1 * bound, f"{name} memory plan", f"arena {arena} bytes, lower bound {bound}, ratio {arena / bound:.3f}")

    out_dir = tempfile.mkdtemp(dir=tmp)
    try:
        keys = weight_keys(net, defines)
        weights = os.path.join(out_dir, "w.safetensors")
        random_weights(keys, weights, seed=len(name), index_limits=index_limits(net, defines))
        n_out = run([NNC, net, "--emit", "ir"] + defines).stdout.count("\noutput ")
        ref = outputs_of(build(net, defines, "-O0", out_dir), weights, n_out, out_dir, "O0")
        got = outputs_of(build(net, defines, "-O2", out_dir), weights, n_out, out_dir, "O2")
        errs = [float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)) for a, b in zip(got, ref)]
        finite = all(np.isfinite(b).all() for b in ref)
        report(finite and max(errs) <= TOLERANCE, f"{name} -O0 and -O2 agree", f"max rel diff {max(errs):.2g} at {' '.join(defines) or 'full size'}"
               if finite else "the -O0 outputs are not finite")
    except RuntimeError as e:
        report(False, f"{name} -O0 and -O2 agree", str(e))
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    return results


def check_fusion():
    r = run([NNC, "models/resnet50.net", "--emit", "ir"])
    kinds = re.findall(r"^%\d+ = (\w+)\(", r.stdout, re.M)
    leftover = {k: kinds.count(k) for k in ("batchnorm", "relu", "add") if k in kinds}
    report(r.returncode == 0 and not leftover and kinds.count("conv2d") == 53,
           "resnet50 -O2 keeps no batchnorm, relu or add", f"{len(kinds)} ops, {kinds.count('conv2d')} conv2d" if not leftover else f"left: {leftover}")
    r0 = run([NNC, "models/resnet50.net", "-O0", "--emit", "ir"])
    kinds0 = re.findall(r"^%\d+ = (\w+)\(", r0.stdout, re.M)
    report(kinds0.count("batchnorm") == 53 and kinds0.count("relu") == 49 and kinds0.count("add") == 16,
           "resnet50 -O0 keeps the graph as written", f"{kinds0.count('batchnorm')} batchnorm, {kinds0.count('relu')} relu, {kinds0.count('add')} add")


def check_blocked_groups():
    """ResNeXt-50 stays on the blocked layout through its grouped convolutions (of 4 to 32 channels a group):
    every conv2d nchw16c, and no conversion (the global pool reads blocked and writes plain)."""
    r = run([NNC, "models/resnext50_32x4d.net", "--emit", "ir"])
    convs = re.findall(r"^%\d+ = conv2d\(.*$", r.stdout, re.M)
    grouped = [c for c in convs if "groups=32" in c]
    plain = [c for c in convs if not re.search(r"-> f32\[[^\]]*\] nchw16c ", c)]
    reorders = len(re.findall(r"^%\d+ = to_(plain|blocked)\(", r.stdout, re.M))
    report(r.returncode == 0 and len(grouped) == 16 and not plain and reorders == 0,
           "resnext50 runs its grouped convolutions on the blocked layout",
           f"{len(convs)} conv2d ({len(grouped)} grouped), {len(plain)} plain, {reorders} reorders")


ATTENTION = """
model attn(q: f32[2, 5, 8], k: f32[2, 7, 8], v: f32[2, 7, 4]) {
    scores = q @ transpose(k, [0, 2, 1]) * 0.35355339059327373   # 1/sqrt(8)
    return softmax(scores, axis=-1) @ v
}
"""


def check_attention_fusion(tmp):
    """Attention written out by hand becomes one attention op that never holds the score matrix."""
    net = os.path.join(tmp, "attn.net")
    with open(net, "w") as f:
        f.write(ATTENTION)
    r2 = run([NNC, net, "--emit", "ir"])
    kinds = re.findall(r"^%\d+ = (\w+)\(", r2.stdout, re.M)
    report(r2.returncode == 0 and kinds == ["scaled_dot_product_attention"], "hand-written attention is fused at -O2", f"ops: {kinds}")
    r0 = run([NNC, net, "-O0", "--emit", "ir"])
    kinds0 = re.findall(r"^%\d+ = (\w+)\(", r0.stdout, re.M)
    report("softmax" in kinds0 and "scaled_dot_product_attention" not in kinds0, "-O0 keeps attention as written", f"ops: {kinds0}")


def check_arena_budget():
    """--arena-budget: a plan over the budget fails, naming the op at the peak and what is alive there."""
    stats = run([NNC, "models/resnet18.net", "--stats"]).stdout
    arena = int(re.search(r"arena_bytes=(\d+)", stats).group(1))
    over = run([NNC, "models/resnet18.net", "--arena-budget", str(arena - 1), "-o", os.devnull + ".c"])
    report(over.returncode == 1 and "more than --arena-budget" in over.stderr and "alive at the peak: %" in over.stderr
           and re.search(r"resnet\.net:\d+:\d+: error:", over.stderr) is not None,
           "--arena-budget below the plan fails with the peak op and live tensors", over.stderr.strip().splitlines()[0] if over.stderr else "no message")
    under = run([NNC, "models/resnet18.net", "--arena-budget", str(arena)])
    report(under.returncode == 0 and under.stderr == "", "--arena-budget at the plan passes", under.stderr.strip())


def check_dot():
    r = run([NNC, "models/resnet50.net", "--emit", "dot"])
    report(r.returncode == 0 and r.stdout.startswith("digraph") and "+residual +relu" in r.stdout and "arena+" in r.stdout,
           "--emit dot shows fused epilogues and arena offsets", "")


def main():
    os.chdir(ROOT)
    check_fusion()
    check_blocked_groups()
    check_arena_budget()
    check_dot()
    with tempfile.TemporaryDirectory(prefix="nnc-attn-") as tmp:
        check_attention_fusion(tmp)
    nets = sorted(glob.glob("models/*.net"))
    only = [a for a in sys.argv[1:] if not a.startswith("-")]
    nets = [os.path.relpath(n, ROOT) for n in nets if not only or any(o in n for o in only)]
    with tempfile.TemporaryDirectory(prefix="nnc-passes-") as tmp, concurrent.futures.ThreadPoolExecutor(2) as pool:
        for results in pool.map(lambda net: check_model(net, tmp), nets):
            for r in results:
                report(*r)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
