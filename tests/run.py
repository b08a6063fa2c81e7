#!/usr/bin/python3
"""Run every test suite of nnc and count the results.

Each suite is a command that prints one line per check, `ok - NAME`, `FAIL - NAME: detail` or
`skip - NAME: reason` (a check that could not run here: counted apart, never as a pass); other lines
are passed through. A suite that exits non-zero without reporting a failure counts as one failure, so
a crash can never look like a pass; a suite that reports nothing at all, not even a skip, fails too.
Each suite's summary and the last line are `N passed, N failed, N skipped`.

    tests/run.py                 every suite
    tests/run.py errors ops      only the suites whose names are given

Two suites run at a time (NNC_TEST_JOBS=N for N; 1 prints each line as it comes): most suites keep
both cores busy only part of the time, and each works in its own temporary directory. The output is
printed suite by suite, in the order below, as each finishes.
"""
import concurrent.futures
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"

# name, command (run from the repository root), needs PyTorch
SUITES = [
    ("runtime", ["build/tests/test_runtime"], False),
    ("compiler", ["build/tests/test_compiler"], False),
    ("kernels", [PY, "tests/kernels/test_kernels.py"], True),
    # the AVX-512 tile: skipped (not passed) where -march=native does not compile it
    ("kernels-native", [PY, "tests/kernels/test_kernels.py", "--cc", "clang", "--cflags=-march=native", "--isa", "avx512f"], True),
    # the AVX2 + FMA tile, which AVX-512 machines run too; skipped (not passed) where the CPU lacks it
    ("kernels-avx2", [PY, "tests/kernels/test_kernels.py", "--cc", "clang", "--isa", "avx2"], True),
    # the AVX2 tiles again with the blocked convolution's runs cut into rows as on AVX-512 (-DNNK_CONV_ROWS),
    # where kernels-avx2 gathers narrow rows across rows
    ("kernels-avx2-rows", [PY, "tests/kernels/test_kernels.py", "--cc", "clang", "--isa", "avx2",
                           "--cflags=-march=x86-64-v3 -DNNK_CONV_ROWS"], True),
    # the plain scalar loop (-DNNK_SCALAR), which no other suite reaches
    ("kernels-plain", [PY, "tests/kernels/test_kernels.py", "--isa", "plain"], True),
    ("errors", [PY, "tests/errors/run_errors.py"], False),
    ("fuzz", ["sh", "tests/fuzz/replay_all.sh"], False),
    ("golden", [PY, "tests/golden/run_golden.py"], False),
    ("golden-reference", [PY, "tools/golden_reference.py", "--check"], False),
    ("generated", [PY, "tests/check_generated.py"], False),
    ("keys", [PY, "tests/models/check_keys.py"], True),
    ("ops", [PY, "tests/ops/test_ops.py"], True),
    ("reference", [PY, "tests/reference/test_reference.py"], True),
    ("bisect", [PY, "tests/bisect/test_bisect.py"], False),
    # random models against the reference evaluator: a fixed batch, and the models it once found failing
    ("fuzz-models", [PY, "tests/fuzz_models/run.py", "--seed", "1", "--count", "160", "--jobs", "2"], False),
    ("fuzz-models-replay", [PY, "tests/fuzz_models/run.py", "--replay"], False),
    ("cross", [PY, "tests/cross/run_cross.py"], False),
    # CIFAR ResNet-20 with embedded weights on a Cortex-M7 under qemu-system-arm (skipped without the tools)
    ("embedded", [PY, "tests/embedded/run_embedded.py"], True),
    ("program", [PY, "tests/program/test_program.py"], False),
    ("passes", [PY, "tests/models/test_passes.py"], False),
    # every model's Winograd layers: each layer against the reference (--bisect), the model against --no-winograd
    ("winograd", [PY, "tests/models/test_winograd.py"], False),
    ("models", [PY, "tests/models/test_models.py"], True),
    ("fashion", [PY, "tests/models/test_fashion.py"], True),
]


# A suite's own summary line (`N passed, N failed` or `..., N skipped`): we count its lines ourselves.
SUMMARY = re.compile(r"\d+ passed, \d+ failed(, \d+ skipped)?$")


def run_suite(name, cmd, out):
    """Runs one suite, writing its lines with out(line); returns (passed, failed, skipped)."""
    passed = failed = skipped = 0
    start = time.time()
    out(f"== {name}: {' '.join(cmd)}")
    try:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    except OSError as e:
        out(f"FAIL - {name}: cannot run: {e}")
        return 0, 1, 0
    for line in proc.stdout:
        line = line.rstrip("\n")
        if line.startswith("ok - "):
            passed += 1
        elif line.startswith("FAIL - "):
            failed += 1
        elif line.startswith("skip - "):
            skipped += 1
        elif SUMMARY.search(line):
            continue
        out(line)
    code = proc.wait()
    if code != 0 and failed == 0:
        out(f"FAIL - {name}: exited with status {code} without reporting a failure")
        failed += 1
    if passed + failed + skipped == 0:
        out(f"FAIL - {name}: ran no checks")
        failed += 1
    out(f"== {name}: {passed} passed, {failed} failed, {skipped} skipped ({time.time() - start:.1f} s)")
    return passed, failed, skipped


def say(line):
    print(line, flush=True)


def run_buffered(suite):
    """A suite run with its lines kept, for printing when its turn comes."""
    lines = []
    return run_suite(suite[0], suite[1], lines.append), lines


def main():
    wanted = set(sys.argv[1:])
    unknown = wanted - {s[0] for s in SUITES}
    if unknown:
        sys.exit(f"run.py: unknown suite(s): {', '.join(sorted(unknown))}")
    suites = [s for s in SUITES if not wanted or s[0] in wanted]
    jobs = int(os.environ.get("NNC_TEST_JOBS", "2"))
    if jobs <= 1:
        counts = [run_suite(name, cmd, say) for name, cmd, _ in suites]
    else:
        counts = []
        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            for (p, f, s), lines in pool.map(run_buffered, suites):   # (in order, each as soon as it and those before it are done)
                for line in lines:
                    say(line)
                counts.append((p, f, s))
    total_p, total_f, total_s = (sum(c) for c in zip(*counts)) if counts else (0, 0, 0)
    print(f"{total_p} passed, {total_f} failed, {total_s} skipped")
    sys.exit(1 if total_f else 0)


if __name__ == "__main__":
    main()
