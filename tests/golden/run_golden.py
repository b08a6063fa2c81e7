#!/usr/bin/python3
"""Golden cases: small models with committed weights, inputs and PyTorch's outputs.

For each tests/golden/NAME.net with a directory NAME/, compile it with nnc, build the program with
the C compiler (warnings are errors), run it on NAME/input*.npy and compare every output with
NAME/expected*.npy: max|diff| / max|expected| <= 1e-4. Needs numpy, not PyTorch. The cases are
written by tools/make_golden.py.
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NNC = os.path.join(ROOT, "build", "nnc")
CC = os.environ.get("CC") or ("clang" if shutil.which("clang") else "cc")
TOLERANCE = 1e-4


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def check_case(net, tmp):
    name = os.path.splitext(os.path.basename(net))[0]
    data = os.path.join(os.path.dirname(net), name)
    c_file = os.path.join(tmp, name + ".c")
    r = run([NNC, net, "--main", "--target", "generic", "-o", c_file])   # built with plain -O2: the portable kernels
    if r.returncode != 0:
        return f"nnc failed: {r.stderr.strip()}"
    flags = run([NNC, "--cflags"]).stdout.split() + run([NNC, "--libs"]).stdout.split()
    exe = os.path.join(tmp, name)
    r = run([CC, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", c_file, "-o", exe] + flags)
    if r.returncode != 0:
        return f"{CC} failed: {r.stderr.strip()[:2000]}"
    inputs = sorted(glob.glob(os.path.join(data, "input*.npy")))
    expected = sorted(glob.glob(os.path.join(data, "expected*.npy")))
    outs = [os.path.join(tmp, f"{name}_out{i}.npy") for i in range(len(expected))]
    cmd = [exe, "--weights", os.path.join(data, "weights.safetensors")]
    for x in inputs:
        cmd += ["--input", x]
    for y in outs:
        cmd += ["--output", y]
    r = run(cmd)
    if r.returncode != 0:
        return f"program failed ({r.returncode}): {r.stderr.strip()}"
    worst = []
    for i, (y, ref) in enumerate(zip(outs, expected)):
        got, want = np.load(y), np.load(ref)
        if got.shape != want.shape:
            return f"output {i}: shape {got.shape}, expected {want.shape}"
        err = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))
        worst.append(err)
        if not err <= TOLERANCE:
            return f"output {i}: max|diff|/max|ref| = {err:.3g} > {TOLERANCE}"
    return None, max(worst)


def main():
    nets = sorted(n for n in glob.glob(os.path.join(ROOT, "tests", "golden", "*.net"))
                  if os.path.isdir(os.path.splitext(n)[0]))
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="nnc-golden-") as tmp:
        for net in nets:
            name = os.path.splitext(os.path.basename(net))[0]
            result = check_case(os.path.relpath(net, ROOT), tmp)
            if isinstance(result, tuple):
                print(f"ok - golden {name} (max rel err {result[1]:.2g})")
                passed += 1
            else:
                print(f"FAIL - golden {name}: {result}")
                failed += 1
    if not nets:
        print("FAIL - golden: no cases found")
        failed += 1
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
