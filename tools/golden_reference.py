#!/usr/bin/python3
"""The expected outputs of tests/golden/ from nnc's own reference evaluator, without PyTorch.

tools/make_golden.py writes each case from PyTorch (the independent check). This regenerates only the
expected outputs, from the committed weights and inputs, with `nnc NAME.net --reference`; with --check it
writes nothing and reports whether the reference reproduces the committed outputs (within 1e-5 of their
largest value), one `ok -`/`FAIL -` line a case, as the golden suite runs it.

    /usr/bin/python3 tools/golden_reference.py [--check] [NAME...]
"""
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "golden")
NNC = os.path.join(ROOT, "build", "nnc")
TOLERANCE = 1e-5


def reference_outputs(name, out_dir):
    """The reference's outputs of case `name` as paths in out_dir, or a message."""
    data = os.path.join(GOLDEN, name)
    n_out = len(glob.glob(os.path.join(data, "expected*.npy")))
    outs = [os.path.join(out_dir, f"expected{i}.npy") for i in range(n_out)]
    cmd = [NNC, os.path.join(GOLDEN, f"{name}.net"), "--reference", "--weights", os.path.join(data, "weights.safetensors")]
    for x in sorted(glob.glob(os.path.join(data, "input*.npy"))):
        cmd += ["--input", x]
    for y in outs:
        cmd += ["--output", y]
    r = subprocess.run(cmd, capture_output=True, text=True)
    return outs if r.returncode == 0 else f"nnc --reference failed ({r.returncode}): {r.stderr.strip()}"


def main():
    args = sys.argv[1:]
    check = "--check" in args
    names = [a for a in args if a != "--check"] or sorted(os.path.basename(os.path.dirname(p)) for p in
                                                         glob.glob(os.path.join(GOLDEN, "*", "weights.safetensors")))
    failed = 0
    with tempfile.TemporaryDirectory(prefix="nnc-golden-ref-") as tmp:
        for name in names:
            outs = reference_outputs(name, tmp)
            if isinstance(outs, str):
                print(f"FAIL - golden {name} from the reference: {outs}")
                failed += 1
                continue
            if not check:
                for i, y in enumerate(outs):
                    np.save(os.path.join(GOLDEN, name, f"expected{i}.npy"), np.load(y))
                print(f"{name}: {len(outs)} expected output(s) written by nnc --reference")
                continue
            worst = 0.0
            for i, y in enumerate(outs):
                got, want = np.load(y), np.load(os.path.join(GOLDEN, name, f"expected{i}.npy"))
                if got.shape != want.shape:
                    worst = float("inf")
                    break
                worst = max(worst, float(np.abs(got.astype(np.float64) - want).max() / max(np.abs(want).max(), 1e-30)))
            ok = worst <= TOLERANCE
            failed += not ok
            print(f"{'ok' if ok else 'FAIL'} - golden {name}: the reference reproduces PyTorch's expected outputs"
                  f"{'' if ok else ':'} (max rel err {worst:.2g}{'' if ok else f' > {TOLERANCE:g}'})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
