#!/usr/bin/python3
"""Winograd F(4x4, 3x3) and F(2x2, 3x3) on every model that has a layer they take, against the direct
convolutions.

For every models/*.net whose `--emit ir` at -Dsize=112 shows a layer
computed by Winograd (3x3 stride-1 blocked convolutions, 49 tiles of 4x4, or of 2x2, or more over the
batch), and for the
Fashion ResNet-18 at batch 52 (BATCHED), on random weights
scaled like a trained network's:
  - per layer: `nnc --bisect` runs the program (Winograd on) and the double-precision reference evaluator
    on the same input and checks every op's result within its own tolerance (the error of sums of K float
    products, compiler/bisect.c), the Winograd layers included;
  - whole model: the program built with Winograd and with --no-winograd give the same outputs within
    1e-4 of max|output|.
Models without such a layer at that size are listed. Two models at a time. Needs numpy only.
"""
import concurrent.futures
import glob
import os
import re
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_passes as tp  # noqa: E402  (its helpers: weights, builds, runs)

SIZE = 112   # where a ResNet's first stage has 28x28 planes, 49 tiles
TOLERANCE = 1e-4


# Models also checked at a batch, whose small planes Winograd takes only there (their tiles counted over the
# batch, chunks running from one image into the next): the Fashion ResNet-18's 7x7 and 4x4 planes.
BATCHED = [("models/fashion_resnet18.net", 52)]


def check(net, tmp, batch=None):
    """(model, [(ok, name, detail)]), or (model, None) when no layer is computed by Winograd."""
    name = os.path.splitext(os.path.basename(net))[0]
    lets = set(re.findall(r"^let\s+(\w+)", open(net).read(), re.M))
    if batch:
        defines = [f"-Dbatch={batch}"]
        name += f" at batch {batch}"
    else:
        defines = [f"-Dsize={SIZE}"] if "size" in lets else []
    ir = tp.run([tp.NNC, net, "--emit", "ir"] + defines)
    layers = len(re.findall(r"\[winograd F\([24]x[24], 3x3\)", ir.stdout))
    if ir.returncode != 0 or layers == 0:
        return name, None
    results = []
    out_dir = tempfile.mkdtemp(dir=tmp)
    try:
        weights = os.path.join(out_dir, "w.safetensors")
        tp.random_weights(tp.weight_keys(net, defines), weights, seed=len(name), index_limits=tp.index_limits(net, defines))
        b = tp.run([tp.NNC, net, "--bisect", "--weights", weights] + defines)
        verdict = (b.stdout.strip().splitlines() or [b.stderr.strip()])[-1]
        results.append((b.returncode == 0, f"{name}: every layer within its tolerance of the reference, {layers} by Winograd", verdict))
        n_out = ir.stdout.count("\noutput ")
        wino = tp.outputs_of(tp.build(net, defines, "-O2", out_dir), weights, n_out, out_dir, "wino")
        direct = tp.outputs_of(tp.build(net, defines, "--no-winograd", out_dir), weights, n_out, out_dir, "direct")
        errs = [float(np.abs(a - d).max() / max(np.abs(d).max(), 1e-30)) for a, d in zip(wino, direct)]
        finite = all(np.isfinite(d).all() for d in direct)
        results.append((finite and max(errs) <= TOLERANCE, f"{name}: Winograd and direct convolutions agree within {TOLERANCE:g}",
                        f"max rel diff {max(errs):.2g} at {' '.join(defines) or 'its size'}" if finite else "outputs not finite"))
    except RuntimeError as e:
        results.append((False, f"{name}: Winograd against direct", str(e)[:2000]))
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    return name, results


def main():
    os.chdir(tp.ROOT)
    nets = [os.path.relpath(n, tp.ROOT) for n in sorted(glob.glob(os.path.join(tp.ROOT, "models", "*.net")))]
    none = []
    with tempfile.TemporaryDirectory(prefix="nnc-winograd-") as tmp, concurrent.futures.ThreadPoolExecutor(2) as pool:
        jobs = [(n, None) for n in nets] + BATCHED
        for name, results in pool.map(lambda job: check(job[0], tmp, job[1]), jobs):
            if results is None:
                none.append(name)
                continue
            for ok, what, detail in results:
                tp.report(ok, what, detail)
    tp.report(len(none) < len(jobs), "models without a Winograd layer at their size", ", ".join(none) or "none")
    print(f"{tp.passed} passed, {tp.failed} failed")
    sys.exit(1 if tp.failed else 0)


if __name__ == "__main__":
    main()
