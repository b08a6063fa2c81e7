#!/usr/bin/python3
"""
test_bisect.py — the self-checking builds, on the golden models (tests/golden: their weights and inputs):
`nnc FILE.net --bisect`, and programs built with `--emit-test` run with `--self-test`.

  - a correct build agrees with the reference on every op (exit 0), at -O2 and -O0, on 1 and 3 threads;
  - with one op broken on purpose (the test-only switch NNC_TEST_BREAK=NAME: the generated code perturbs
    that op's result), --bisect exits 1 and names that op: its file:line:col, its name, and the error
    against the tolerance; ops before it agree;
  - a program built with --emit-test passes --self-test (with its weights from the file or embedded, on 1
    and 3 threads, built for the target or generic), and fails it (exit 1) with other weights;
  - usage mistakes are usage errors (exit 2).

Prints `ok - NAME` or `FAIL - NAME: detail`, then `N passed, N failed`. No PyTorch needed.
"""
import concurrent.futures
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tools"))
from safetensors import load_file, save_file  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NNC = os.path.join(ROOT, "build", "nnc")
GOLDEN = os.path.join(ROOT, "tests", "golden")

# model, ops to break: (the op's name as --bisect prints it, its `as` name or kindN, its line in the .net)
BREAKS = {
    "tiny_cnn": [("conv2d stem", "stem", 12), ("conv2d block1.conv2", "block1.conv2", 4), ("conv2d depthwise", "depthwise", 16)],
    "tiny_encoder": [("conv2d patch", "patch", None)],
    "tiny_decoder": [("multihead_attention layers.0.self_attn", "layers.0.self_attn", None)],
}

passed = failed = 0


def report(ok, name, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok - {name}")
    else:
        failed += 1
        print(f"FAIL - {name}: {detail}")


def bisect(model, *args, env=None):
    cmd = [NNC, os.path.join(GOLDEN, f"{model}.net"), "--bisect", "--weights", os.path.join(GOLDEN, model, "weights.safetensors")] + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, NO_COLOR="1", **(env or {})), timeout=300)


def self_test_model(model, tmp):
    """--emit-test builds of one model pass --self-test, and fail it with other weights: (ok, name, detail)s."""
    results = []

    def report(ok, name, detail=""):
        results.append((ok, name, detail))

    w = os.path.join(GOLDEN, model, "weights.safetensors")
    for flags, run_flags, what in ([], ["--weights", w], "weights from the file"), (["--embed-weights"], ["--threads", "3"], "embedded, 3 threads"), \
                                   (["--target", "generic"], ["--weights", w], "--target generic"):
        exe = os.path.join(tmp, f"{model}_{len(flags)}")
        r = subprocess.run([NNC, os.path.join(GOLDEN, f"{model}.net"), "--weights", w, "--emit-test", "-o", exe] + flags,
                           capture_output=True, text=True, env=dict(os.environ, CFLAGS="-O2" if "generic" in flags else "-O2 -march=native"))
        if r.returncode != 0:
            report(False, f"{model}: --emit-test builds ({what})", r.stderr.strip()[:400])
            continue
        r = subprocess.run([exe, "--self-test"] + run_flags, capture_output=True, text=True)
        ok = r.returncode == 0 and f"self-test of model '{model}': passed" in r.stdout and ": ok" in r.stdout
        report(ok, f"{model}: --self-test passes ({what})", f"exit {r.returncode}: {(r.stdout + r.stderr).strip()[:400]}")
    # other weights than the expected outputs were computed with (tiny_ops has none)
    tensors = load_file(w)
    if tensors:
        wrong = os.path.join(tmp, f"{model}_wrong.safetensors")
        save_file({k: v * 1.5 + 0.25 if v.dtype.kind == "f" else v for k, v in tensors.items()}, wrong)
        r = subprocess.run([os.path.join(tmp, f"{model}_0"), "--self-test", "--weights", wrong], capture_output=True, text=True)
        report(r.returncode == 1 and "FAILED" in r.stdout, f"{model}: --self-test fails with other weights",
               f"exit {r.returncode}: {(r.stdout + r.stderr).strip()[:300]}")
    return results


def self_tests(tmp, pool):
    for results in pool.map(lambda model: self_test_model(model, tmp), ("tiny_cnn", "tiny_encoder", "tiny_decoder", "tiny_ops")):
        for r in results:
            report(*r)
    plain = os.path.join(tmp, "plain")
    r = subprocess.run([NNC, os.path.join(GOLDEN, "tiny_cnn.net"), "-o", plain], capture_output=True, text=True)
    r = subprocess.run([plain, "--self-test"], capture_output=True, text=True)
    report(r.returncode == 2 and "--emit-test" in r.stderr, "--self-test of a program built without --emit-test is a usage error", r.stderr.strip())
    r = subprocess.run([NNC, os.path.join(GOLDEN, "tiny_cnn.net"), "--emit-test", "-o", plain], capture_output=True, text=True)
    report(r.returncode == 2 and "--emit-test needs --weights" in r.stderr, "--emit-test without --weights is a usage error", r.stderr.strip())


def main():
    pool = concurrent.futures.ThreadPoolExecutor(2)    # each --bisect builds and runs a program: two at a time
    agree = []
    for model in ("tiny_cnn", "tiny_encoder", "tiny_decoder", "tiny_ops"):
        files = sorted(f for f in os.listdir(os.path.join(GOLDEN, model)) if re.fullmatch(r"input\d+\.npy", f))
        inputs = [a for f in files for a in ("--input", os.path.join(GOLDEN, model, f))]
        agree += [(model, args, pool.submit(bisect, model, *args)) for args in ([], ["-O0"], ["--threads", "3"], inputs)]
    broken = [(model, shown, label, line, pool.submit(bisect, model, env={"NNC_TEST_BREAK": label}))
              for model, breaks in BREAKS.items() for shown, label, line in breaks]
    for model, args, future in agree:
        r = future.result()
        ok = r.returncode == 0 and re.search(r"bisect: all \d+ ops of model '\w+' agree with the reference", r.stdout)
        report(ok, f"{model} {' '.join(a if '/' not in a else os.path.basename(a) for a in args)}: every op agrees",
               f"exit {r.returncode}: {(r.stdout + r.stderr).strip()[:400]}")
    for model, shown, label, line, future in broken:
        r = future.result()
        first = r.stderr.splitlines()[0] if r.stderr else ""
        m = re.match(rf"(?:.*/)?{re.escape(model)}\.net:(\d+):\d+: error: {re.escape(shown)} computes its result \[[\d, ]+\] wrongly: "
                     r"max \|got - want\| is [\d.e+-]+ at element \d+ .* beyond its tolerance [\d.e+-]+", first)
        ok = r.returncode == 1 and m and (line is None or int(m.group(1)) == line) and "agree with the reference" in r.stderr
        report(ok, f"{model}: --bisect names the broken op {label}", f"exit {r.returncode}: {r.stderr.strip()[:500]}")
    with tempfile.TemporaryDirectory(prefix="nnc-selftest-") as tmp:
        self_tests(tmp, pool)
    r = bisect("tiny_cnn", "-o", "/tmp/x.c")
    report(r.returncode == 2 and "--bisect runs the model and writes no C" in r.stderr, "--bisect with -o is a usage error", r.stderr.strip())
    r = bisect("tiny_cnn", "--reference")
    report(r.returncode == 2 and "give one" in r.stderr, "--bisect with --reference is a usage error", r.stderr.strip())
    r = bisect("tiny_encoder", "--input", "a.npy", "--input", "b.npy")
    report(r.returncode == 2 and "has 1 input" in r.stderr, "--bisect with the wrong number of --input", r.stderr.strip())
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
