#!/usr/bin/python3
"""The Fashion-MNIST model end to end: nnc's C against PyTorch on all 10,000 test images.

usage: tests/models/test_fashion.py [--nnc PATH] [--limit N] [--keep]

models/fashion_resnet18.net with models/weights/fashion_resnet18.safetensors (d2l's ResNet-18,
trained by tools/train_fashion.py). Checks:
  - keys: `nnc --emit weights` creates exactly the keys and shapes of the d2l module's
    state_dict (less num_batches_tracked), and the weights file loads into that module strictly;
  - pytorch accuracy: PyTorch, with the file's weights as stored (F16 read back as F32, the
    values nnc's loader produces), reaches >= 90 % on the test set;
  - the batch-64 and batch-1 builds (`-D batch=64`, `-D batch=1`) compile, with the demo's own
    program demo/fashion_demo.c as the driver (it writes the logits with --logits);
  - agreement: the batch-64 build's predictions equal PyTorch's on >= 99.9 % of the images, and
    its accuracy is within 0.1 point of PyTorch's (the largest logit difference is reported);
  - batch 1 vs 64: the batch-1 build predicts the same class as the batch-64 build for every image.
--limit N checks only the first N images (for a quick run; the accuracy bar is then not checked).
Builds go to build/tests/fashion/ (removed unless --keep). Prints `ok - NAME` or `FAIL - NAME:
detail` per check and `N passed, N failed`; exits 1 on any failure.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from safetensors import load_file  # noqa: E402
import train_fashion  # noqa: E402  (the model's definition, the data reader and the normalisation)

NET = os.path.join(ROOT, "models", "fashion_resnet18.net")
WEIGHTS = os.path.join(ROOT, "models", "weights", "fashion_resnet18.safetensors")
DEMO = os.path.join(ROOT, "demo", "fashion_demo.c")
WORK = os.path.join(ROOT, "build", "tests", "fashion")
LINE = re.compile(r"^(\S+) \[((?:-?\d+(?:, -?\d+)*)?)\]$")

results = {"passed": 0, "failed": 0}


def report(name, ok, detail=""):
    if ok:
        results["passed"] += 1
        print(f"ok - fashion {name}" + (f" ({detail})" if detail else ""), flush=True)
    else:
        results["failed"] += 1
        print(f"FAIL - fashion {name}: {detail}", flush=True)


def run(cmd, **kw):
    """Runs cmd; returns (ok, combined output)."""
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, **kw)
    return r.returncode == 0, (r.stdout + r.stderr).strip()


def shell_words(cmd):
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    return r.stdout.split()


def check_keys(nnc, model):
    ok, out = run([nnc, NET, "--emit", "weights"])
    if not ok:
        report("keys", False, f"nnc {NET} --emit weights failed: {out[:400]}")
        return
    got = {}
    for line in out.splitlines():
        m = LINE.match(line.strip())
        if m:
            got[m.group(1)] = [int(d) for d in m.group(2).split(", ")] if m.group(2) else []
    want = {k: list(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    shapes = [f"{k}: nnc {got[k]}, torch {want[k]}" for k in sorted(set(got) & set(want)) if got[k] != want[k]]
    problems = []
    if missing:
        problems.append(f"{len(missing)} keys missing in nnc: {missing[:5]}")
    if extra:
        problems.append(f"{len(extra)} keys nnc has and torch does not: {extra[:5]}")
    if shapes:
        problems.append(f"{len(shapes)} shapes differ: {shapes[:5]}")
    report("keys", not problems, "; ".join(problems) or f"{len(want)} keys")


def build(nnc, batch, cflags, libs):
    """Compiles the model for `batch` and the demo program against it; returns the program or None."""
    d = os.path.join(WORK, f"b{batch}")
    os.makedirs(d, exist_ok=True)
    c = os.path.join(d, "fashion_resnet18.c")
    ok, out = run([nnc, NET, "-D", f"batch={batch}", "-o", c])
    if not ok:
        report(f"build batch {batch}", False, f"`nnc {NET} -D batch={batch} -o {c}` failed: {out[:600]}")
        return None
    prog = os.path.join(d, "fashion_demo")
    cc = os.environ.get("CC", "cc")
    cmd = [cc, "-O2", "-march=native", "-I" + d, DEMO, c] + cflags + libs + ["-o", prog]
    ok, out = run(cmd)
    report(f"build batch {batch}", ok, "" if ok else f"`{' '.join(cmd)}` failed: {out[:600]}")
    return prog if ok else None


def start(prog, images, labels, limit, logits, threads):
    cmd = [prog, "--weights", WEIGHTS, "--images", images, "--labels", labels, "--threads", str(threads),
           "--logits", logits, "--quiet"]
    if limit:
        cmd += ["--limit", str(limit)]
    return cmd, subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(name, job, logits, n):
    """Waits for a demo run; returns its logits [n, 10] or None."""
    cmd, proc = job
    t0 = time.time()
    out, _ = proc.communicate()
    if proc.returncode != 0:
        report(name, False, f"`{' '.join(cmd)}` exited {proc.returncode}: {out.strip()[:600]}")
        return None
    a = np.fromfile(logits, dtype=np.float32)
    if a.size != n * 10:
        report(name, False, f"{logits}: {a.size} floats, expected {n} x 10")
        return None
    print(f"# {name}: {out.strip()} (waited {time.time() - t0:.0f} s)", flush=True)
    return a.reshape(n, 10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nnc", default=os.path.join(ROOT, "build", "nnc"))
    ap.add_argument("--limit", type=int, default=0, help="only the first N images")
    ap.add_argument("--keep", action="store_true", help="keep build/tests/fashion/")
    args = ap.parse_args()
    t_start = time.time()
    torch.set_num_threads(1)
    # Under `make test-sanitize` the programs run many times slower: check the first 500 images there
    # (every image is checked by the plain `make test`).
    flags = subprocess.run([args.nnc, "--cflags"], capture_output=True, text=True).stdout
    if "-fsanitize" in flags and not args.limit:
        args.limit = 500
        print("# a sanitizer build: the first 500 images only")

    for path, what in ((args.nnc, "run make"), (WEIGHTS, "run tools/train_fashion.py"),
                       (os.path.join(train_fashion.DATA_DIR, "t10k-images-idx3-ubyte.gz"),
                        "apt-get install dataset-fashion-mnist")):
        if not os.path.exists(path):
            report("setup", False, f"{path} not found ({what})")
            return finish_all()

    # the module and the weights, as stored
    model = train_fashion.build_model()
    check_keys(args.nnc, model)
    tensors = load_file(WEIGHTS)
    try:
        model.load_state_dict({k: torch.from_numpy(v.astype(np.float32) if v.dtype == np.float16 else v)
                               for k, v in tensors.items()}, strict=True)
        dtypes = sorted({str(v.dtype) for v in tensors.values()})
        report("weights load into the d2l module", True, f"{len(tensors)} tensors, {', '.join(dtypes)}")
    except RuntimeError as e:
        report("weights load into the d2l module", False, str(e).replace("\n", " ")[:600])
        return finish_all()
    model.eval()

    # the C programs: uncompressed IDX files, two builds, run in the background
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    files = {}
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        files[stem] = os.path.join(WORK, stem)
        with open(files[stem], "wb") as f:
            subprocess.run(["gzip", "-dc", os.path.join(train_fashion.DATA_DIR, stem + ".gz")], stdout=f, check=True)
    cflags = shell_words([args.nnc, "--cflags"])
    libs = shell_words([args.nnc, "--libs"])
    progs = {b: build(args.nnc, b, cflags, libs) for b in (64, 1)}

    images = train_fashion.read_idx(files["t10k-images-idx3-ubyte"])
    labels = train_fashion.read_idx(files["t10k-labels-idx1-ubyte"]).astype(np.int64)
    n = args.limit if 0 < args.limit < len(images) else len(images)
    images, labels = images[:n], labels[:n]

    # two cores: each build on one thread, side by side; PyTorch meanwhile
    jobs = {}
    for b, prog in progs.items():
        if prog:
            logits = os.path.join(WORK, f"logits_b{b}.f32")
            jobs[b] = (logits, start(prog, files["t10k-images-idx3-ubyte"], files["t10k-labels-idx1-ubyte"],
                                     args.limit, logits, threads=1))

    x = train_fashion.normalise(images)
    with torch.no_grad():
        ref = torch.cat([model(x[i:i + 500]) for i in range(0, n, 500)]).numpy()
    ref_pred = ref.argmax(1)
    ref_acc = 100.0 * (ref_pred == labels).mean()
    if args.limit:
        print(f"# pytorch accuracy {ref_acc:.2f} % on the first {n} images (bar not checked with --limit)")
    else:
        report("pytorch accuracy >= 90 %", ref_acc >= 90.0, f"{ref_acc:.2f} %")

    got = {b: finish(f"run batch {b}", job, logits, n) for b, (logits, job) in jobs.items()}

    if got.get(64) is not None:
        c = got[64]
        pred = c.argmax(1)
        agree = 100.0 * (pred == ref_pred).mean()
        acc = 100.0 * (pred == labels).mean()
        diff = float(np.abs(c - ref).max())
        worst = int(np.abs(c - ref).max(1).argmax())
        detail = (f"{agree:.2f} % of {n} predictions equal PyTorch's ({int((pred != ref_pred).sum())} differ); "
                  f"accuracy {acc:.2f} % vs PyTorch {ref_acc:.2f} %; largest logit difference {diff:.3g} "
                  f"(image {worst})")
        report("agreement with pytorch", agree >= 99.9 and abs(acc - ref_acc) <= 0.1, detail)
    if got.get(1) is not None and got.get(64) is not None:
        p1, p64 = got[1].argmax(1), got[64].argmax(1)
        differ = np.flatnonzero(p1 != p64)
        report("batch 1 and batch 64 predict the same", differ.size == 0,
               f"{n} images, largest logit difference {float(np.abs(got[1] - got[64]).max()):.3g}" if differ.size == 0
               else f"{differ.size} of {n} predictions differ, first images {differ[:10].tolist()}")

    if not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)
    print(f"# {time.time() - t_start:.0f} s")
    return finish_all()


def finish_all():
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
