#!/usr/bin/python3
"""
test_reference.py — nnc's reference evaluator (`nnc FILE.net --reference`, compiler/reference.c) against
PyTorch in float64.

  (a) every case of tests/ops/test_ops.py: its CASES table and prepare() are imported (read-only), which
      write m.net, in*.npy and w.safetensors and compute PyTorch's answer in float64 from the same float32
      inputs and weights; `nnc m.net --reference` runs on those files;
  (b) whole models of models/ at small sizes (-D), with torchvision's seeded weights as in
      tests/models/test_models.py (whose model builders are imported): ResNet-18 at 64x64, ViT-B/16 at
      32x32 (4 patches), the Transformer decoder and the BERT encoder with short sequences;
  (c) the command line: pseudo-random inputs equal to the generated program's, BF16 weights, errors.

The check is max|ref - torch| / max|torch| <= 1e-6 (TOL). The reference computes in double and only its
output files are float32, so its error is essentially the float32 rounding of the outputs (at most
2^-24 = 6e-8 of each value), plus the rounding to float32 of the numbers of the .net source, which the
language prescribes and PyTorch's float64 references do not do (`x * 0.1`: 1.5e-9). Measured, the worst
case over (a) and (b) is 7.8e-8 (printed as a `#` line), 13 times under TOL; a wrong index or constant
is orders of magnitude above it (the generated C's tolerance in test_ops.py is 1e-4). A few PyTorch
references of test_ops.py round an intermediate to float32 on purpose (its f32() helper, as nnc's
float32 programs must); there the double reference differs from PyTorch by that rounding, amplified by
the op after it, and F32_ROUNDED gives each its measured and explained bound.

Prints `ok - NAME` or `FAIL - NAME: detail`, then `N passed, N failed`; exits 1 on any failure.

    /usr/bin/python3 tests/reference/test_reference.py [--filter SUBSTR]... [--no-models] [--nnc PATH] [--keep] [-v]
"""
import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NNC = os.path.join(ROOT, "build", "nnc")
TOL = 1e-6

# Cases whose PyTorch reference rounds an intermediate to float32 (test_ops.f32), with the bound that
# measurement supports. layernorm/offset_input: layernorm(x * 0.1 + 100): float32 rounding of values near
# 100 is up to 3.8e-6, against a standard deviation of 0.1, so the normalised values move by up to ~4e-5
# (measured 2.6e-5 of max|torch|).
F32_ROUNDED = {"layernorm/offset_input": 1e-4}


def ops_module():
    """tests/ops/test_ops.py, read-only: its CASES, prepare() and nonfinite_mismatch(). Imported when first
    needed, as it imports PyTorch, without which this suite reports a skip."""
    ops_dir = os.path.join(ROOT, "tests", "ops")
    if ops_dir not in sys.path:
        sys.path.insert(0, ops_dir)
    import test_ops  # noqa: E402
    return test_ops

passed = failed = 0


def report(ok, name, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok - {name}", flush=True)
    else:
        failed += 1
        print(f"FAIL - {name}: {detail}", flush=True)


def run(cmd, timeout=300):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        return -1, "", f"timed out after {timeout} s"


def first_lines(text, n=4):
    lines = text.strip().split("\n")
    return " | ".join(lines[:n]) + (" | ..." if len(lines) > n else "")


def rel_err(got, ref):
    """max|got - ref| / max|ref| (1 if ref is all zeros); inf on a shape, NaN or infinity mismatch."""
    import numpy as np
    if tuple(got.shape) != tuple(ref.shape):
        return float("inf"), f"shape {list(got.shape)}, PyTorch {list(ref.shape)}"
    got = got.astype(np.float64)
    why = ops_module().nonfinite_mismatch(got, ref)
    if why:
        return float("inf"), why
    both = np.isfinite(ref)   # (NaN and infinities matched above; a finite ref against an inf fails below)
    if not both.any():
        return 0.0, ""
    scale = float(np.max(np.abs(ref[both]))) or 1.0
    diff = np.abs(got[both] - ref[both])
    err = float(np.max(diff)) / scale
    with np.errstate(invalid="ignore"):   # (inf - inf off `both`)
        flat = int(np.argmax(np.where(both, np.abs(got - ref), -1)))
    at = [int(i) for i in np.unravel_index(flat, ref.shape)] if ref.ndim else []
    return err, f"worst at {at}: got {got.flat[flat]:.9g}, PyTorch {ref.flat[flat]:.9g}, max|ref| {scale:.4g}"


def reference(net, weights, inputs, n_out, out_dir, extra=()):
    """Runs nnc --reference; returns (list of output arrays, None) or (None, error)."""
    import numpy as np
    cmd = [NNC, net, "--reference"] + (["--weights", weights] if weights else []) + list(extra)
    for p in inputs:
        cmd += ["--input", p]
    outs = [os.path.join(out_dir, f"ref{i}.npy") for i in range(n_out)]
    for p in outs:
        cmd += ["--output", p]
    code, out, err = run(cmd)
    if code != 0:
        return None, f"nnc --reference exited {code}: {first_lines(err or out)}"
    try:
        return [np.load(p) for p in outs], None
    except Exception as e:  # noqa: BLE001
        return None, f"cannot read the reference's output: {e}"


# ---------------------------------------------------------------------------------------------------
# (a) the builtins

def ops_cases(root, filters, jobs, verbose, worst):
    test_ops = ops_module()
    import torch
    torch.set_num_threads(1)
    cases = [c for c in test_ops.CASES if not filters or any(f in "ops/" + c.name for f in filters)]

    def one(c, d, refs):
        got, err = reference(os.path.join(d, "m.net"), os.path.join(d, "w.safetensors"),
                             [os.path.join(d, f"in{i}.npy") for i in range(len(c.inputs))], len(refs), d)
        if err:
            return None, err
        errs, details = [], []
        for i, (g, r) in enumerate(zip(got, refs)):
            e, detail = rel_err(g, r)
            errs.append(e)
            details.append(f"output {i}: max|d|/max|ref| {e:.3g} ({detail})")
        return errs, details

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = []
        for c in cases:
            try:
                d, refs = test_ops.prepare(c, root)
            except Exception as e:  # noqa: BLE001 - a broken PyTorch reference is that case's failure
                futures.append((c, None, f"the PyTorch reference raised {type(e).__name__}: {e}"))
                continue
            futures.append((c, pool.submit(one, c, d, refs), None))
        for c, fut, err in futures:
            name = "ops/" + c.name
            if fut is None:
                report(False, name, err)
                continue
            errs, details = fut.result()
            if errs is None:
                report(False, name, details)
                continue
            tol = F32_ROUNDED.get(c.name, TOL)
            bad = [dt for e, dt in zip(errs, details) if not e <= tol]
            if verbose:
                print(f"# {name}: " + "; ".join(details))
            if c.name not in F32_ROUNDED:
                worst.append((max(errs, default=0.0), name))
            report(not bad, name, "; ".join(bad) + f" > {tol:g}")
            if not verbose:
                shutil.rmtree(os.path.join(root, test_ops.slug(c.name)), ignore_errors=True)
    return len(cases)


# ---------------------------------------------------------------------------------------------------
# (b) whole models

def model_cases(root, filters, worst):
    import numpy as np
    import torch
    sys.path.insert(0, os.path.join(ROOT, "tests", "models"))
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import export_torchvision  # noqa: E402
    import safetensors  # noqa: E402  (tools/safetensors.py)
    import test_models  # noqa: E402  (read-only: its seeded model builders)

    def resnet18():
        return export_torchvision.build_model("resnet18", 0, calib_size=64)

    def vit_b_16():
        return export_torchvision.build_model("vit_b_16", 0, kwargs={"image_size": 32})

    def decoder_ref(m, tgt, mem):
        mask = torch.nn.Transformer.generate_square_subsequent_mask(tgt.shape[1]).double()
        return m(tgt, mem, tgt_mask=mask)

    # name, .net, -D, torch model builder, input shapes, forward(model, *inputs)
    models = [
        ("resnet18@64", "models/resnet18.net", ["size=64"], resnet18, [(1, 3, 64, 64)], None),
        ("vit_b_16@32", "models/vit_b_16.net", ["size=32"], vit_b_16, [(1, 3, 32, 32)], None),
        ("transformer_decoder@5x7x2", "models/transformer_decoder.net", ["batch=2", "tgt_len=5", "mem_len=7"],
         test_models.transformer_decoder, [(2, 5, 512), (2, 7, 512)], decoder_ref),
        ("bert_base_encoder@6", "models/bert_base_encoder.net", ["seq=6"], test_models.bert_base_encoder,
         [(1, 6, 768)], None),
    ]
    n = 0
    for name, net, defines, build, shapes, forward in models:
        if filters and not any(f in "models/" + name for f in filters):
            continue
        n += 1
        t0 = time.time()
        d = os.path.join(root, name.replace("@", "_"))
        os.makedirs(d, exist_ok=True)
        try:
            model = build()
        except Exception as e:  # noqa: BLE001
            report(False, "models/" + name, f"building the torch model failed: {e}")
            continue
        w = os.path.join(d, "w.safetensors")
        safetensors.save_file({k: v.detach().contiguous().numpy() for k, v in model.state_dict().items()}, w)
        rng = np.random.RandomState(0)
        xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        paths = []
        for i, x in enumerate(xs):
            paths.append(os.path.join(d, f"in{i}.npy"))
            np.save(paths[-1], x)
        t1 = time.time()
        got, err = reference(os.path.join(ROOT, net), w, paths, 1, d, sum((["-D", x] for x in defines), []))
        t2 = time.time()
        if err:
            report(False, "models/" + name, err)
            continue
        model = model.double().eval()
        with torch.no_grad():
            ins = [torch.from_numpy(x).double() for x in xs]
            ref = (forward(model, *ins) if forward else model(*ins)).numpy()
        t3 = time.time()
        e, detail = rel_err(got[0], ref)
        worst.append((e, "models/" + name))
        print(f"# models/{name}: max|d|/max|ref| {e:.3g}; torch model and weights {t1 - t0:.1f} s, "
              f"nnc --reference {t2 - t1:.1f} s, torch float64 {t3 - t2:.1f} s")
        report(e <= TOL, "models/" + name, f"max|d|/max|ref| {e:.3g} > {TOL:g} ({detail})")
        del model
        shutil.rmtree(d, ignore_errors=True)
    return n


# ---------------------------------------------------------------------------------------------------
# (c) the command line

def cli_cases(root):
    import numpy as np
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import safetensors  # noqa: E402
    d = os.path.join(root, "cli")
    os.makedirs(d, exist_ok=True)
    net = os.path.join(d, "m.net")
    with open(net, "w") as f:
        f.write("model m(x: f32[2, 3, 6, 6], v: f32[4]) {\n"
                "    y = relu(conv2d(x, 4, kernel=3, pad=1) as c)\n"
                "    return linear(flatten(global_avgpool(y)), 4) as fc * v, softmax(y, axis=1)\n}\n")
    rng = np.random.RandomState(1)
    tensors = {"c.weight": rng.randn(4, 3, 3, 3), "c.bias": rng.randn(4), "fc.weight": rng.randn(4, 4), "fc.bias": rng.randn(4)}
    tensors = {k: v.astype(np.float32) for k, v in tensors.items()}
    w = os.path.join(d, "w.safetensors")
    safetensors.save_file(tensors, w)

    # without --input: the generated program's pseudo-random inputs (nnrt_fill_random, seed i + 1)
    prog = os.path.join(d, "prog")
    code, out, err = run([NNC, net, "-O0", "-o", prog])
    if code != 0:
        report(False, "cli/random inputs as the program's", f"nnc -o prog failed: {first_lines(err)}")
    else:
        outs = [os.path.join(d, f"p{i}.npy") for i in range(2)]
        code, out, err = run([prog, "--weights", w, "--output", outs[0], "--output", outs[1]])
        got, err2 = reference(net, w, [], 2, d)
        if code != 0 or err2:
            report(False, "cli/random inputs as the program's", first_lines(err) if code else err2)
        else:
            errs = [rel_err(g, np.load(p).astype(np.float64))[0] for g, p in zip(got, outs)]
            report(max(errs) <= 1e-5, "cli/random inputs as the program's", f"max|d|/max|program| {max(errs):.3g}")

    # the summary line without --output, as the program prints it
    code, out, err = run([NNC, net, "--reference", "--weights", w])
    report(code == 0 and out.startswith("output 0 f32[2, 4]: argmax ") and "output 1 f32[2, 4, 6, 6]: argmax" in out,
           "cli/outputs summarised without --output", f"exit {code}: {first_lines(out + err)}")

    # BF16 and F16 weights are converted by the runtime's loader: same result as F32 weights holding the
    # same (rounded) values
    for dt in ("BF16", "F16"):
        wd = os.path.join(d, f"w_{dt}.safetensors")
        safetensors.save_file(tensors, wd, dtype=dt)
        rounded = os.path.join(d, f"w_{dt}_as_f32.safetensors")
        safetensors.save_file(safetensors.load_file(wd), rounded)
        a, e1 = reference(net, wd, [], 2, os.path.join(d))
        a = [x.copy() for x in a] if a else a
        b, e2 = reference(net, rounded, [], 2, os.path.join(d))
        same = not e1 and not e2 and all(x.tobytes() == y.tobytes() for x, y in zip(a, b))
        report(same, f"cli/{dt} weights", e1 or e2 or "results differ from F32 weights of the same values")

    # errors: one line `nnc: error: ...`, exit 2 for usage, 1 for a file that does not fit the model
    bad_shape = os.path.join(d, "bad.npy")
    np.save(bad_shape, np.zeros((2, 3), np.float32))
    wrong = os.path.join(d, "wrong.safetensors")
    safetensors.save_file(dict(tensors, **{"fc.bias": np.zeros(5, np.float32)}), wrong)
    for name, args, want_code, want in [
            ("no --weights", ["--reference"], 2, "give them with --weights"),
            ("missing weights file", ["--reference", "--weights", os.path.join(d, "nope")], 2, "cannot open"),
            ("wrong weight shape", ["--reference", "--weights", wrong], 1, "expected shape [4], found [5]"),
            ("one --input of two", ["--reference", "--weights", w, "--input", bad_shape], 2, "has 2 inputs, found 1 --input"),
            ("missing input file", ["--reference", "--weights", w, "--input", "/nonexistent.npy", "--input", bad_shape], 2,
             "No such file"),
            ("input of the wrong shape", ["--reference", "--weights", w, "--input", bad_shape, "--input", bad_shape], 1,
             "expected shape [2, 3, 6, 6], found [2, 3]"),
            ("too many --output", ["--reference", "--weights", w] + ["--output", "x.npy"] * 3, 2, "has 2 outputs, found 3"),
            ("unwritable output", ["--reference", "--weights", w, "--output", "/nonexistent/x.npy"], 2, "cannot open"),
            ("-o with --reference", ["--reference", "--weights", w, "-o", "x.c"], 2, "does not take -o"),
            ("--input without --reference", ["--input", bad_shape, "-o", "x.c"], 2, "options of --reference")]:
        code, out, err = run([NNC, net] + args)
        lines = err.strip().split("\n")
        ok = code == want_code and any(want in l and l.startswith("nnc: error: ") for l in lines) \
            and all(l.startswith("nnc: ") for l in lines)
        report(ok, f"cli/error: {name}", f"exit {code} (want {want_code}): {first_lines(err)}")
    return 1


def main():
    global NNC
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--filter", action="append", default=[], help="only checks whose name contains SUBSTR (repeatable)")
    ap.add_argument("--no-models", action="store_true", help="skip the whole models (b)")
    ap.add_argument("--jobs", type=int, default=2, help="parallel nnc runs (default 2)")
    ap.add_argument("--keep", action="store_true", help="keep the build directory")
    ap.add_argument("--nnc", default=NNC, help="the nnc to test (default build/nnc)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every measured error")
    args = ap.parse_args()
    NNC = os.path.abspath(args.nnc)
    if not os.access(NNC, os.X_OK):
        report(False, "test_reference", f"{NNC} not found: run make")
        print(f"{passed} passed, {failed} failed")
        return 1
    try:
        import torch  # noqa: F401
    except ImportError as e:
        print(f"skip - test_reference: PyTorch is not installed ({e})")
        print("0 passed, 0 failed, 1 skipped")
        return 0
    start = time.time()
    root = tempfile.mkdtemp(prefix="nnc_test_reference_")
    worst = []
    try:
        n_ops = ops_cases(root, args.filter, args.jobs, args.verbose, worst)
        n_models = 0 if args.no_models else model_cases(root, args.filter, worst)
        if not args.filter or any(f in "cli/" for f in args.filter) or any(f.startswith("cli") for f in args.filter):
            cli_cases(root)
    finally:
        if args.keep:
            print(f"# kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    if worst:
        e, name = max(worst)
        print(f"# largest max|d|/max|ref| over {len(worst)} checks: {e:.3g} ({name}); TOL {TOL:g}")
    print(f"# {n_ops} op cases, {n_models} models in {time.time() - start:.1f} s")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
