#!/usr/bin/python3
"""
run.py — random models, differentially: each model of gen.py is compiled by nnc at -O0 and at -O2 into
programs, each program runs with --threads 1 and 3 on the same inputs and weights, and nnc's reference
evaluator (`nnc --reference`, double precision, no code shared with the kernels) runs too. Checked:

  - nnc accepts the model (gen.py makes only valid models: a rejection is a generator or nnc bug),
    nnc, the C compiler and the programs neither fail nor crash;
  - the outputs of --threads 1 and 3 of one build are bit-identical;
  - every output of every run is within tolerance of the reference: max|out - ref| <= tol * max|ref|
    (NaN where the reference has NaN, and only there; max|ref| taken as at least 1/16, since an output
    that small comes from cancellation, where the rounding of larger intermediates dominates), with tol = 2^-23 * 64 * (depth + sqrt(R)) where
    R is the longest reduction in the model (a dot product's length, a window's size, a softmax axis)
    and depth its longest chain of statements: the float32 rounding of a sum of R terms grows like
    sqrt(R) for random data and each statement adds a few roundings; the factor 64 is the measured
    headroom (see --stats). A real bug (a wrong offset, a buffer overwritten while still read) is
    off by O(1).

A failing model is reduced automatically (a delta-debugging loop: drop outputs, cut statements away by
making them model inputs, bypass statements, output an operand instead, while the same kind of failure persists) and saved, with
its failure, under tests/fuzz_models/regressions/ (the first model of each kind of failure in a run);
`--replay` runs every saved model again.

    /usr/bin/python3 tests/fuzz_models/run.py --seed S --count N [--jobs 2]     a batch
    /usr/bin/python3 tests/fuzz_models/run.py --replay                          the saved regressions
    options: --nnc PATH (the nnc under test), --ref-nnc PATH (the one that runs --reference, default
             build/nnc of this tree), --save-dir DIR, --no-reduce, --keep, --stats, -v,
             --cflags "..." (the C compiler's flags for nnc -O2's programs; default -O1 -march=native, to
             keep a batch fast), --cflags-O0 "..." (for nnc -O0's programs; default -O0 -march=native)

Prints `ok - fuzz-models seed S: N models` or one `FAIL - model K (seed S): what differs` per failing
model, then `N passed, N failed`; exits 1 on any failure. `make test`'s batch is `--seed 1 --count 160` (240 until CI neared its 30 minutes).
"""
import argparse
import concurrent.futures
import glob
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import gen  # noqa: E402
import safetensors  # noqa: E402  (tools/safetensors.py)

REGRESSIONS = os.path.join(HERE, "regressions")
THREADS = (1, 3)
LEVELS = ("-O0", "-O2")
RUN_TIMEOUT = 60
TOL_FACTOR = 64 * 2.0 ** -23
MAX_REDUCTION_TESTS = 120
SCALE_FLOOR = 1 / 16         # errors of outputs smaller than this are measured against it (see the doc)

CFG = {}   # set in each process: nnc, ref_nnc, cflags


def model_seed(seed, k):
    return seed * 1000003 + k


def tolerance(m):
    return TOL_FACTOR * (m.depth() + math.sqrt(m.max_reduction()))


def run(cmd, timeout=RUN_TIMEOUT, env=None):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout, env=env)
        return p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired:
        return "timeout", f"timed out after {timeout} s"


def exit_text(code):
    if code == "timeout":
        return "timed out"
    if isinstance(code, int) and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def first_lines(text, n=3):
    lines = [l for l in text.strip().split("\n") if l.strip()]
    return " | ".join(lines[:n]) + (" | ..." if len(lines) > n else "")


def weight_keys(net):
    code, out = run([CFG["ref_nnc"], net, "--emit", "weights", "-O0"])
    if code != 0:
        return None, out
    keys = []
    for line in out.strip().split("\n"):
        if line.strip():
            key, _, shape = line.partition(" ")
            dims = shape.strip()[1:-1]
            keys.append((key, tuple(int(d) for d in dims.split(",")) if dims.strip() else ()))
    return keys, ""


def weight_values(key, shape, seed):
    """Deterministic per key, so that a reduced model keeps the values of the weights it still has."""
    rng = np.random.RandomState(zlib.crc32(f"{seed}:{key}".encode()))
    if key.endswith("running_var"):
        v = rng.uniform(0.5, 2.0, shape)
    elif key.endswith("running_mean") or key.endswith("bias"):
        v = rng.uniform(-0.5, 0.5, shape)
    elif "." not in key:                       # a param
        v = rng.standard_normal(shape)
    elif len(shape) == 1:                      # a norm's weight
        v = rng.uniform(0.5, 1.5, shape)
    else:
        fan_in = int(np.prod(shape[1:])) or 1
        v = rng.uniform(-1, 1, shape) * math.sqrt(3.0 / fan_in)
    return v.astype(np.float32)


def check(m, d, levels=LEVELS, want=None):
    """Runs model m in directory d. Returns (kinds, details, errors): the kinds of failure found (in order
    of priority), a message for each, and the measured error of each run (for --stats). With `want`, stops
    at the first failure of that kind."""
    os.makedirs(d, exist_ok=True)
    net = os.path.join(d, "m.net")
    with open(net, "w") as f:
        f.write(m.to_net())
    kinds, details, errors = [], [], {}

    def fail(kind, detail):
        kinds.append(kind)
        details.append(detail)

    keys, out = weight_keys(net)
    if keys is None:
        fail("rejected", "nnc rejects the model: " + first_lines(out))
        return kinds, details, errors
    w = os.path.join(d, "w.safetensors")
    safetensors.save_file({k: weight_values(k, s, m.seed) for k, s in keys}, w)
    ins = []
    for name, shape in m.inputs:
        p = os.path.join(d, f"in_{name}.npy")
        rng = np.random.RandomState(zlib.crc32(f"{m.seed}:input:{name}".encode()))
        np.save(p, rng.standard_normal(shape).astype(np.float32))
        ins += ["--input", p]
    n_out = len(m.outputs)

    def outs(tag):
        return [os.path.join(d, f"out{i}_{tag}.npy") for i in range(n_out)]

    ref_files = outs("ref")
    code, out = run([CFG["ref_nnc"], net, "--reference", "--weights", w] + ins + sum((["--output", p] for p in ref_files), []))
    if code != 0:
        fail("reference", f"nnc --reference {exit_text(code)}: {first_lines(out)}")
        return kinds, details, errors
    refs = [np.load(p).astype(np.float64) for p in ref_files]
    # nnc runs --reference in double and writes float32: its outputs are the reference rounded once
    tol = tolerance(m)
    for level in levels:
        exe = os.path.join(d, "prog" + level)
        env = dict(os.environ, CFLAGS=CFG["cflags"][level])
        code, out = run([CFG["nnc"], net, level, "-o", exe], env=env, timeout=120)
        if code != 0:
            crashed = not isinstance(code, int) or code < 0 or code >= 3
            if "C compiler failed" in out:
                fail(f"cc{level}", f"the C of nnc {level} does not build: {first_lines(out)}")
            elif crashed:
                fail(f"nnc-crash{level}", f"nnc {level} {exit_text(code)}: {first_lines(out)}")
            else:
                fail("rejected", f"nnc {level} rejects the model ({exit_text(code)}): {first_lines(out)}")
            if want in kinds:
                return kinds, details, errors
            continue
        results = {}
        for t in THREADS:
            files = outs(f"{level}_t{t}")
            code, out = run([exe, "--weights", w, "--threads", str(t)] + ins + sum((["--output", p] for p in files), []))
            if code != 0:
                fail(f"run{level}", f"the program of {level} with --threads {t} {exit_text(code)}: {first_lines(out)}")
                break
            results[t] = [np.load(p) for p in files]
        if len(results) < len(THREADS):
            if want in kinds:
                return kinds, details, errors
            continue
        for i in range(n_out):
            a, b = results[THREADS[0]][i], results[THREADS[1]][i]
            if a.tobytes() != b.tobytes():
                n = int(np.sum(a.view(np.uint32) != b.view(np.uint32)))
                fail(f"threads{level}", f"{level}: output {i} differs between --threads {THREADS[0]} and {THREADS[1]} "
                                        f"({n} of {a.size} elements)")
                break
        worst = 0.0
        for i, (got, ref) in enumerate(zip(results[1], refs)):
            got = got.astype(np.float64)
            if got.shape != ref.shape:
                fail(f"wrong{level}", f"{level}: output {i} has shape {list(got.shape)}, the reference {list(ref.shape)}")
                break
            shape = ref.shape
            got, ref = got.reshape(-1), ref.reshape(-1)     # (a rank-0 output too)
            nan = np.isnan(got) != np.isnan(ref)
            if nan.any():
                fail(f"wrong{level}", f"{level}: output {i} is NaN at {int(nan.sum())} elements where the reference is not (or the reverse)")
                break
            ok = ~np.isnan(ref)
            scale = max(float(np.max(np.abs(ref[ok]))) if ok.any() else 0.0, SCALE_FLOOR)
            diff = np.abs(got - ref)
            diff[~ok] = 0
            err = float(np.max(diff)) / scale
            worst = max(worst, err)
            if not err <= tol:
                j = int(np.argmax(diff))
                at = np.unravel_index(j, shape) if shape else ()
                fail(f"wrong{level}", f"{level}: output {i} {list(shape)}: max|out - ref| / max|ref| = {err:.3g} > {tol:.3g} "
                                      f"(at {list(map(int, at))}: {got[j]:.7g}, reference {ref[j]:.7g})")
                break
        errors[level] = worst
        if want in kinds:
            return kinds, details, errors
    return kinds, details, errors


def still_fails(m, d, kind):
    if kind == "rejected" or kind == "reference":
        levels = ()
    else:
        levels = [l for l in LEVELS if kind.endswith(l)]
    kinds, _, _ = check(m, d, levels=levels or (), want=kind)
    return kind in kinds


def reduce(m, d, kind):
    """Greedy delta debugging: keep any smaller model that still fails with `kind`; stop at a fixpoint or
    after MAX_REDUCTION_TESTS runs. Returns (model, tests run)."""
    tests = 0
    changed = True
    while changed and tests < MAX_REDUCTION_TESTS:
        changed = False
        candidates = []
        for i, o in enumerate(m.outputs):
            candidates.append(lambda m=m, i=i: m.drop_output(i))
        for i, o in enumerate(m.outputs):                 # an earlier tensor as the output instead
            for s in m.stmts:
                if s.name == o:
                    for dep in s.deps:
                        candidates.append(lambda m=m, i=i, dep=dep: m.output_operand(i, dep))
        for s in reversed(m.stmts):                      # cut from the top: statements become inputs
            candidates.append(lambda m=m, n=s.name: m.as_input(n))
            for dep in s.deps:
                try:
                    same = m.shape_of(dep) == s.shape
                except KeyError:
                    same = False
                if same:
                    candidates.append(lambda m=m, n=s.name, dep=dep: m.bypass(n, dep))
        for make in candidates:
            if tests >= MAX_REDUCTION_TESTS:
                break
            c = make()
            if c is None or (len(c.stmts), len(c.outputs), len(c.inputs)) == (len(m.stmts), len(m.outputs), len(m.inputs)) \
                    and c.to_net() == m.to_net():
                continue
            tests += 1
            if still_fails(c, d, kind):
                m = c
                changed = True
                break
    return m, tests


def init_worker(cfg):
    CFG.update(cfg)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def one_model(seed, k, tmp, keep):
    m = gen.generate(model_seed(seed, k))
    d = os.path.join(tmp, f"m{k}")
    t0 = time.time()
    try:
        kinds, details, errors = check(m, d)
    except Exception as e:  # noqa: BLE001 - the harness's own failure is this model's failure, not the batch's
        kinds, details, errors = ["harness"], [f"run.py raised {type(e).__name__}: {e}"], {}
    res = {"k": k, "kinds": kinds, "details": details, "errors": errors, "net": m.to_net(), "json": m.to_json(),
           "stmts": len(m.stmts), "seconds": time.time() - t0, "tol": tolerance(m)}
    if not keep:
        shutil.rmtree(d, ignore_errors=True)
    return res


def reduce_and_save(res, seed, tmp, save_dir, no_reduce):
    m = gen.Model.from_json(res["json"])
    kind = res["kinds"][0]
    tests = 0
    if not no_reduce:
        m, tests = reduce(m, os.path.join(tmp, f"reduce{res['k']}"), kind)
        shutil.rmtree(os.path.join(tmp, f"reduce{res['k']}"), ignore_errors=True)
    kinds, details, _ = check(m, os.path.join(tmp, f"final{res['k']}"))
    detail = details[kinds.index(kind)] if kind in kinds else res["details"][0]
    os.makedirs(save_dir, exist_ok=True)
    path = os.path.join(save_dir, f"seed{seed}_model{res['k']}_{re.sub('[^A-Za-z0-9]', '', kind)}.net")
    header = (f"found by tests/fuzz_models/run.py --seed {seed} (model {res['k']}): {kind}\n{detail}\n"
              f"reduced from {res['stmts']} to {len(m.stmts)} statements in {tests} runs; replay: run.py --replay")
    with open(path, "w") as f:
        f.write(m.to_net(header))
    return path, len(m.stmts), detail


def snapshot(nnc, dest):
    """A copy of nnc, its libnnrt.a and the runtime's headers, laid out as in the repository (nnc finds
    the runtime relative to itself), so that a `make` during the run cannot change them half-way.
    Returns the copy's path, or an error message."""
    root = os.path.dirname(os.path.dirname(nnc))
    problem = None
    for _ in range(20):                # a concurrent make may be relinking right now
        try:
            shutil.rmtree(dest, ignore_errors=True)
            os.makedirs(os.path.join(dest, "build"))
            shutil.copy2(nnc, os.path.join(dest, "build", "nnc"))
            lib = os.path.join(os.path.dirname(nnc), "libnnrt.a")
            if os.path.exists(lib):
                shutil.copy2(lib, os.path.join(dest, "build", "libnnrt.a"))
            if os.path.isdir(os.path.join(root, "runtime")):
                shutil.copytree(os.path.join(root, "runtime"), os.path.join(dest, "runtime"),
                                ignore=shutil.ignore_patterns("*.c", "*.o"))
            copy = os.path.join(dest, "build", "nnc")
            code, out = run([copy, "--version"])
            if code == 0:
                return copy
            problem = f"the copy of {nnc} does not run: {first_lines(out)}"
        except OSError as e:
            problem = f"cannot copy {nnc}: {e}"
        time.sleep(1.5)
    return problem


def snapshots(cfg, tmp):
    """cfg with nnc and ref_nnc replaced by snapshots, or an error message."""
    cfg = dict(cfg)
    same = cfg["ref_nnc"] == cfg["nnc"]
    for key in ("nnc",) if same else ("nnc", "ref_nnc"):
        copy = snapshot(cfg[key], os.path.join(tmp, f"snap_{key}"))
        if not copy.startswith(tmp):
            return copy
        cfg[key] = copy
    if same:
        cfg["ref_nnc"] = cfg["nnc"]
    return cfg


def batch(args, cfg):
    start = time.time()
    tmp = tempfile.mkdtemp(prefix="nnc_fuzz_models_")
    cfg = snapshots(cfg, tmp)
    if isinstance(cfg, str):
        print(f"FAIL - fuzz-models: {cfg}")
        shutil.rmtree(tmp, ignore_errors=True)
        return 0, 1
    failures = []
    results = []
    try:
        with concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs, initializer=init_worker, initargs=(cfg,)) as pool:
            futs = [pool.submit(one_model, args.seed, k, tmp, args.keep) for k in range(args.count)]
            for f in concurrent.futures.as_completed(futs):
                res = f.result()
                results.append(res)
                if res["kinds"]:
                    failures.append(res)
                if args.verbose:
                    print(f"# model {res['k']}: {res['stmts']} statements, {res['seconds']:.1f} s, errors "
                          + ", ".join(f"{l} {e:.2e}" for l, e in res["errors"].items()) + f" (tol {res['tol']:.2e})"
                          + (f"; {res['kinds']}" if res["kinds"] else ""), flush=True)
            failures.sort(key=lambda r: r["k"])
            # reduce and save the first model of each kind of failure, in parallel
            firsts, seen = [], set()
            for res in failures:
                if res["kinds"][0] not in seen:
                    seen.add(res["kinds"][0])
                    firsts.append(res)
            saved = {}
            futs = {pool.submit(reduce_and_save, res, args.seed, tmp, args.save_dir, args.no_reduce): res["k"] for res in firsts}
            for f in concurrent.futures.as_completed(futs):
                saved[futs[f]] = f.result()
    finally:
        if args.keep:
            print(f"# kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    passed = failed = 0
    first_of = {}
    for res in failures:
        kind = res["kinds"][0]
        first_of.setdefault(kind, res["k"])
        extra = ""
        if res["k"] in saved:
            path, n, _ = saved[res["k"]]
            extra = f" [reduced to {n} statements: {os.path.relpath(path, ROOT)}]"
        elif first_of[kind] != res["k"]:
            extra = f" [the same kind as model {first_of[kind]}]"
        print(f"FAIL - model {res['k']} (seed {args.seed}): {res['details'][0]}{extra}", flush=True)
        for line in res["net"].rstrip("\n").split("\n") if args.verbose else []:
            print("    | " + line)
        failed += 1
    if not failures:
        print(f"ok - fuzz-models seed {args.seed}: {args.count} models")
        passed += 1
    if args.stats or args.verbose:
        ratios = sorted(max(r["errors"].values(), default=0.0) / r["tol"] for r in results if not r["kinds"])
        if ratios:
            print(f"# worst error / tolerance over the passing models: median {ratios[len(ratios) // 2]:.3g}, "
                  f"max {ratios[-1]:.3g}")
    covered = set()
    for r in results:
        covered.update(re.findall(r"\b([a-z_][a-z_0-9]*)\(", r["net"]))
    builtins = {"conv2d", "linear", "batchnorm", "layernorm", "multihead_attention", "cross_attention", "relu", "gelu",
                "sigmoid", "tanh", "silu", "softmax", "maxpool", "avgpool", "global_avgpool", "adaptive_avgpool", "pad",
                "dropout", "flatten", "reshape", "transpose", "concat", "slice", "take", "expand", "matmul",
                "scaled_dot_product_attention", "param", "where", "masked_fill", "roll", "sum", "mean", "max", "min"}
    missing = sorted(builtins - covered)
    print(f"# {args.count} models ({sum(r['stmts'] for r in results)} statements) in {time.time() - start:.1f} s; "
          f"{len(builtins) - len(missing)} of {len(builtins)} builtins used" + (f" (not: {', '.join(missing)})" if missing else "")
          + f"; failures by kind: {dict((k, sum(1 for r in failures if r['kinds'][0] == k)) for k in first_of)}")
    return passed, failed


def replay(args, cfg):
    passed = failed = 0
    files = sorted(glob.glob(os.path.join(args.save_dir, "*.net")))
    tmp = tempfile.mkdtemp(prefix="nnc_fuzz_replay_")
    cfg = snapshots(cfg, tmp)
    if isinstance(cfg, str):
        print(f"FAIL - fuzz-models: {cfg}")
        shutil.rmtree(tmp, ignore_errors=True)
        return 0, 1
    CFG.update(cfg)
    try:
        for path in files:
            text = open(path).read()
            m = parse_net(text)
            name = os.path.relpath(path, ROOT)
            if m is None:
                print(f"FAIL - regression {name}: not a model saved by run.py")
                failed += 1
                continue
            kinds, details, _ = check(m, os.path.join(tmp, os.path.basename(path)))
            if kinds:
                print(f"FAIL - regression {name}: {details[0]}")
                failed += 1
            else:
                print(f"ok - regression {name}")
                passed += 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not files:
        print(f"ok - regressions: none saved in {os.path.relpath(args.save_dir, ROOT)}")
        passed += 1
    return passed, failed


def parse_net(text):
    """A Model back from the .net that Model.to_net wrote (its statements one per line with their shapes)."""
    seed = re.search(r"^# fuzz-seed: (\d+)$", text, re.M)
    head = re.search(r"^model fuzz\((.*)\) \{$", text, re.M)
    ret = re.search(r"^    return (.*)$", text, re.M)
    if not seed or not head or not ret:
        return None
    m = gen.Model(int(seed.group(1)))
    for name, dims in re.findall(r"(\w+): f32\[([^\]]*)\]", head.group(1)):
        m.inputs.append((name, tuple(int(x) for x in dims.split(","))))
    shapes = dict(m.inputs)
    for name, expr, shape in re.findall(r"^    (\w+) = (.*?)    # \[([^\]]*)\]$", text, re.M):
        deps = [w for w in re.findall(r"\b[a-z]\w*\b", expr) if w in shapes]
        # the reduction lengths are not in the text: bound each by the size of the largest operand
        red = max([gen.numel(shapes[d]) for d in deps] + [1])
        shapes[name] = tuple(int(x) for x in shape.split(",")) if shape.strip() else ()
        m.stmts.append(gen.Stmt(name, expr, shapes[name], deps, red))
    m.outputs = [o.strip() for o in ret.group(1).split(",")]
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=240)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--replay", action="store_true", help="run every model saved in the regressions directory")
    ap.add_argument("--nnc", default=os.path.join(ROOT, "build", "nnc"), help="the nnc under test")
    ap.add_argument("--ref-nnc", help="the nnc that runs --reference and --emit weights (default: build/nnc of this tree)")
    ap.add_argument("--save-dir", default=REGRESSIONS, help="where failing models are saved (default tests/fuzz_models/regressions)")
    ap.add_argument("--cflags", default="-O1 -march=native", help="CFLAGS for the programs of nnc -O2 (default -O1 -march=native)")
    ap.add_argument("--cflags-O0", default="-O0 -march=native", help="CFLAGS for the programs of nnc -O0 (default -O0 -march=native)")
    ap.add_argument("--no-reduce", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--stats", action="store_true", help="print how close the passing models came to the tolerance")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    cfg = {"nnc": os.path.abspath(args.nnc), "ref_nnc": os.path.abspath(args.ref_nnc or os.path.join(ROOT, "build", "nnc")),
           "cflags": {"-O0": args.cflags_O0, "-O2": args.cflags}}
    for key in ("nnc", "ref_nnc"):
        if not os.access(cfg[key], os.X_OK):
            print(f"FAIL - fuzz-models: {cfg[key]} not found: run make")
            print("0 passed, 1 failed")
            return 1
    passed, failed = replay(args, cfg) if args.replay else batch(args, cfg)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
