#!/usr/bin/python3
"""run_embedded.py — the embedded example: CIFAR ResNet-20 with embedded weights on a Cortex-M7 under QEMU.

tests/embedded/cifar_resnet20.net with seeded random weights (tools/export_torchvision.py cifar_resnet20,
BatchNorm statistics measured), compiled by nnc with --embed-weights for --target generic, then:

  - x86: the --main program built with gcc -std=c11 -O2 on its pseudo-random input (nnrt_fill_random,
    seed 1) against PyTorch on the same input, within 1e-4 of max(1, |ref|);
  - Cortex-M7: the same C (without --main) built with arm-none-eabi-gcc -mcpu=cortex-m7 -mfpu=fpv5-d16
    -mfloat-abi=hard -O2, all five NNRT_NO_* switches, tests/embedded/m7 (startup, linker script of QEMU's
    mps2-an500 board, a main() with the model in static memory), run under qemu-system-arm -machine
    mps2-an500 with semihosting: its output, printed as bits, must be the x86 build's bit for bit; the
    ELF's .text, .rodata, .data, .bss and stack (arm-none-eabi-size -A) are printed;
  - runtime/kernels/nnk_half.h (tests/embedded/half.c): every F16 and BF16 pattern widened exactly as numpy
    and PyTorch do, and 1 M random floats plus every rounding edge narrowed as they round (to nearest even;
    a NaN stays a NaN);
  - nnk_fold_batchnorm, in float only, within 4 ulp of the fold in double (tests/embedded/fold.c);
  - the weights as the C array of OUT.weights.inc (-DNNC_NO_INCBIN) give the bits of the .incbin of
    OUT.weights.bin, for F32 and F16;
  - the golden models of tests/golden (convolutions, attention, every other op) with --embed-weights=f16 and
    bf16 on this CPU's kernels and 2 threads against PyTorch's committed outputs, within the same tolerances;
  - the same for --embed-weights=f16 and bf16 (weights kept 16-bit in flash, widened op by op into the
    arena): the M7 output again the x86 build's bit for bit, and both within the weights' rounding of
    PyTorch's F32 output (see TOLERANCE).

Checks print as `ok - NAME`, `FAIL - NAME: detail`, or `skip - NAME: reason` when arm-none-eabi-gcc or
qemu-system-arm is missing (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm, installed by
tools/deps.sh); then `N passed, N failed, N skipped`.

    /usr/bin/python3 tests/embedded/run_embedded.py [-v] [--keep DIR]
"""
import concurrent.futures
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import export_torchvision  # noqa: E402
import safetensors  # noqa: E402

NNC = os.path.join(ROOT, "build", "nnc")
RUNTIME = os.path.join(ROOT, "runtime")
RUNTIME_C = sorted(os.path.join(RUNTIME, f) for f in os.listdir(RUNTIME) if f.endswith(".c"))
NET = os.path.join(HERE, "cifar_resnet20.net")
M7_DIR = os.path.join(HERE, "m7")
SWITCHES = ["-DNNRT_NO_THREADS", "-DNNRT_NO_FILES", "-DNNRT_NO_STDIO", "-DNNRT_NO_CLOCK", "-DNNRT_NO_MALLOC"]
WARN = ["-std=c11", "-Wall", "-Wextra", "-Werror"]
M7 = ["arm-none-eabi-gcc", "-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"] + WARN + \
     ["-O2", "-ffunction-sections", "-fdata-sections"]
QEMU = ["qemu-system-arm", "-machine", "mps2-an500", "-nographic", "-monitor", "none", "-serial", "none",
        "-semihosting-config", "enable=on,target=native"]
MACROS = ['-DMODEL_H="m.h"', "-DMODEL=cifar_resnet20", "-DMEM=CIFAR_RESNET20", "-DIN_SIZE=CIFAR_RESNET20_IMAGE_SIZE",
          "-DOUT_SIZE=CIFAR_RESNET20_OUTPUT_SIZE"]
# Against PyTorch's F32 model, in max|d| / max(1, |ref|). F32 weights: only the order of the sums differs.
# F16 and BF16: every weight (after batch-norm folding) is rounded to the nearest of 11 and 8 significant bits,
# a relative error of at most 2^-11 = 4.9e-4 and 2^-8 = 3.9e-3 per weight. Through the 20 layers these errors
# mostly average out in each sum; what reaches the logits was measured at 4.8e-4 (F16) and 4.9e-3 (BF16) for
# this model and seed, about one rounding step of a weight. The bounds allow two steps: 1e-3 and 1e-2.
TOLERANCE = {"f32": 1e-4, "f16": 1e-3, "bf16": 1e-2}
DTYPES = ("f32", "f16", "bf16")
VERBOSE = "-v" in sys.argv
results = {"passed": 0, "failed": 0, "skipped": 0}


# Checks run two at a time (run_parallel); each one's lines go to its own list (LINES.buf) and are printed in
# order when it ends.
LINES = threading.local()
COUNT_LOCK = threading.Lock()


def say(kind, line):
    with COUNT_LOCK:
        results[kind] += 1
    if getattr(LINES, "buf", None) is not None:
        LINES.buf.append(line)
    else:
        print(line, flush=True)


def ok(name, detail=""):
    say("passed", f"ok - {name}" + (f" ({detail})" if detail else ""))


def fail(name, detail):
    say("failed", f"FAIL - {name}: {detail}")


def skip(name, reason):
    say("skipped", f"skip - {name}: {reason}")


def buffered(task):
    """task() with its lines collected: returns them."""
    LINES.buf = []
    try:
        task()
        return LINES.buf
    finally:
        LINES.buf = None


def run_parallel(tasks):
    """Runs the tasks (functions of no argument) two at a time, printing each one's lines in the tasks' order."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for lines in pool.map(buffered, tasks):
            for line in lines:
                print(line, flush=True)


def run(cmd, timeout=300, **kw):
    if VERBOSE:
        print("# " + " ".join(cmd), flush=True)
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout, **kw)
        return p.returncode, p.stdout
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout} s"
    except OSError as e:
        return -1, str(e)


def first_lines(text, n=4):
    lines = [line for line in text.splitlines() if line.strip()]
    return " | ".join(lines[:n]) or "(no output)"


def fill_random(n, seed=1):
    """nnrt_fill_random (runtime/util.c): splitmix64, 24 bits to a float in [-1, 1)."""
    mask, state, out = (1 << 64) - 1, seed, np.empty(n, np.float32)
    for i in range(n):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        z ^= z >> 31
        out[i] = np.float32((z >> 40) * 2.0 ** -23 - 1.0)
    return out


def rel_error(got, want):
    return float(np.max(np.abs(got.astype(np.float64) - want)) / max(1.0, float(np.max(np.abs(want)))))


def read_npy_bits(path):
    return np.load(path).astype(np.float32).ravel()


def x86_build(tmp, tag, weights, dtype, extra=()):
    """The --main program with embedded weights on the host: its output, or (None, message)."""
    src, exe, out = (os.path.join(tmp, f"x86_{tag}{ext}") for ext in (".c", "", ".npy"))
    flag = "--embed-weights" if dtype == "f32" else f"--embed-weights={dtype}"
    rc, log = run([NNC, NET, "--target", "generic", "--main", "--weights", weights, flag, "-o", src])
    if rc == 0:
        rc, log = run(["gcc"] + WARN + ["-O2", "-I" + RUNTIME, src] + list(extra) + RUNTIME_C + ["-lm", "-lpthread", "-o", exe])
    if rc == 0:
        rc, log = run([exe, "--output", out])
    return (read_npy_bits(out), "") if rc == 0 else (None, first_lines(log))


def check_golden_half(tmp):
    """The golden models (tests/golden: convolutions, attention, the other ops) with 16-bit embedded weights,
    for this CPU's kernels (--target native, -march=native), on 2 threads, against PyTorch's committed outputs within the rounding's tolerance."""
    return [functools.partial(check_golden_model, tmp, model, dtype)
            for model in ("tiny_cnn", "tiny_encoder", "tiny_decoder", "tiny_ops") for dtype in ("f16", "bf16")]


def check_golden_model(tmp, model, dtype):
    """One golden model with dtype weights embedded, against PyTorch's committed outputs."""
    golden = os.path.join(ROOT, "tests", "golden")
    d = os.path.join(golden, model)
    inputs = sorted(f for f in os.listdir(d) if f.startswith("input"))
    expected = sorted(f for f in os.listdir(d) if f.startswith("expected"))
    name = f"x86 {dtype}: golden {model} with embedded weights against PyTorch within {TOLERANCE[dtype]:g}"
    src, exe = os.path.join(tmp, f"{model}_{dtype}.c"), os.path.join(tmp, f"{model}_{dtype}")
    outs = [os.path.join(tmp, f"{model}_{dtype}_{i}.npy") for i in range(len(expected))]
    rc, log = run([NNC, os.path.join(golden, model + ".net"), "--main", "--weights", os.path.join(d, "weights.safetensors"),
                   f"--embed-weights={dtype}", "-o", src])
    if rc == 0:
        rc, log = run(["gcc"] + WARN + ["-O2", "-march=native", "-I" + RUNTIME, src] + RUNTIME_C + ["-lm", "-lpthread", "-o", exe])
    if rc == 0:
        rc, log = run([exe, "--threads", "2"] + sum((["--input", os.path.join(d, f)] for f in inputs), []) +
                      sum((["--output", o] for o in outs), []))
    if rc:
        fail(name, first_lines(log))
        return
    err = max(rel_error(np.load(o).ravel(), np.load(os.path.join(d, e)).astype(np.float64).ravel())
              for o, e in zip(outs, expected))
    (ok if err <= TOLERANCE[dtype] else fail)(name, f"max|d|/max(1,|ref|) = {err:.2g}")


def check_c_array(tmp, weights, dtype, host):
    """The same weights from the C array (-DNNC_NO_INCBIN: OUT.weights.inc) rather than .incbin of OUT.weights.bin."""
    name = f"x86 {dtype}: the weights as a C array (-DNNC_NO_INCBIN) give the .incbin build's bits"
    src = os.path.join(tmp, f"x86_{dtype}_array.c")
    got, msg = x86_build(tmp, f"{dtype}_array", weights, dtype, ["-DNNC_NO_INCBIN"])
    files = [os.path.exists(src[:-2] + ext) for ext in (".weights.bin", ".weights.inc")]
    if got is None:
        fail(name, msg)
    elif not all(files):
        fail(name, "nnc did not write OUT.weights.bin and OUT.weights.inc beside OUT.c")
    elif host is None or got.view(np.uint32).tolist() != host.view(np.uint32).tolist():
        fail(name, "outputs differ")
    else:
        ok(name)


def m7_build(tmp, tag, weights, dtype):
    """The C for the M7 and its ELF: (elf path, sizes dict) or (None, message)."""
    d = os.path.join(tmp, "m7_" + tag)
    os.makedirs(d, exist_ok=True)
    src, elf = os.path.join(d, "m.c"), os.path.join(d, "cifar_resnet20.elf")
    flag = "--embed-weights" if dtype == "f32" else f"--embed-weights={dtype}"
    rc, log = run([NNC, NET, "--target", "generic", "--weights", weights, flag, "-o", src])
    if rc == 0:
        rc, log = run(M7 + SWITCHES + MACROS + ["-I" + RUNTIME, "-I" + d, "-nostartfiles", "-T",
                      os.path.join(M7_DIR, "mps2_an500.ld"), "-Wl,--gc-sections", os.path.join(M7_DIR, "main.c"),
                      os.path.join(M7_DIR, "startup.c"), src] + RUNTIME_C + ["-lm", "-lc", "-lgcc", "-o", elf])
    if rc:
        return None, first_lines(log)
    rc, log = run(["arm-none-eabi-size", "-A", elf])
    sizes = {}
    for line in log.splitlines():
        f = line.split()
        if len(f) == 3 and f[0].startswith(".") and f[1].isdigit():
            sizes[f[0]] = int(f[1])
    return elf, sizes


def m7_run(elf):
    """The M7's output under QEMU (bits as float32), or (None, message)."""
    rc, log = run(QEMU + ["-kernel", elf], timeout=600)
    vals = re.findall(r"^out\[(\d+)\] 0x([0-9a-f]{8}) ", log, re.M)
    if rc != 0 or "done" not in log or not vals:
        return None, f"status {rc}: {first_lines(log)}"
    bits = np.array([int(v, 16) for _, v in sorted(vals, key=lambda x: int(x[0]))], np.uint32)
    return bits.view(np.float32), ""


def size_text(s):
    ram = s.get(".data", 0) + s.get(".bss", 0) + s.get(".stack", 0)
    return (f".text {s.get('.text', 0)}, .rodata {s.get('.rodata', 0)}, .data {s.get('.data', 0)}, "
            f".bss {s.get('.bss', 0)}, stack {s.get('.stack', 0)}: flash {s.get('.text', 0) + s.get('.rodata', 0) + s.get('.data', 0)}, "
            f"RAM {ram} bytes")


def check_half(tmp):
    name = "nnk_half.h: F16 and BF16 widened and narrowed as numpy and PyTorch do"
    exe, out = os.path.join(tmp, "half"), os.path.join(tmp, "half.bin")
    rc, log = run(["gcc"] + WARN + ["-O2", "-I" + RUNTIME, os.path.join(HERE, "half.c"), "-o", exe])
    if rc == 0:
        rc, log = run([exe, out])
    if rc:
        return fail(name, first_lines(log))
    data = open(out, "rb").read()
    wide = np.frombuffer(data, np.uint32, 2 * 65536).reshape(65536, 2)
    n = int(np.frombuffer(data, np.uint32, 1, 8 * 65536)[0])
    bits = np.frombuffer(data, np.uint32, n, 8 * 65536 + 4)
    narrow = np.frombuffer(data, np.uint16, 2 * n, 8 * 65536 + 4 + 4 * n).reshape(n, 2)
    h = np.arange(65536, dtype=np.uint32)
    bad = []
    if not np.array_equal(wide[:, 0], h.astype(np.uint16).view(np.float16).astype(np.float32).view(np.uint32)):
        bad.append("F16 widening")
    if not np.array_equal(wide[:, 1], h << 16):
        bad.append("BF16 widening")
    x = bits.view(np.float32)
    nan = np.isnan(x)
    with np.errstate(over="ignore"):   # the floats past 65504 become inf, as they should
        want16 = x.astype(np.float16).view(np.uint16)
    wantbf = torch.from_numpy(x.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    for col, want, label in ((0, want16, "F16"), (1, wantbf, "BF16")):
        got = narrow[:, col]
        wrong = ~nan & (got != want)
        widened = got.view(np.float16) if label == "F16" else None
        lost_nan = nan & ~(np.isnan(widened) if widened is not None else ((got & 0x7f80) == 0x7f80) & ((got & 0x7f) != 0))
        if wrong.any() or lost_nan.any():
            i = int(np.argmax(wrong | lost_nan))
            bad.append(f"{label} narrowing of 0x{int(bits[i]):08x}: 0x{int(got[i]):04x}, want 0x{int(want[i]):04x} "
                       f"({int(wrong.sum() + lost_nan.sum())} of {n})")
    (fail(name, "; ".join(bad)) if bad else ok(name, f"65536 patterns widened, {n} floats narrowed"))


def check_fold(tmp):
    name = "nnk_fold_batchnorm in float within 4 ulp of the fold in double"
    exe = os.path.join(tmp, "fold")
    rc, log = run(["gcc"] + WARN + ["-O2", "-I" + RUNTIME, os.path.join(HERE, "fold.c"), "-lm", "-o", exe])
    if rc == 0:
        rc, log = run([exe])
    (fail if rc else ok)(name, first_lines(log))


WINDOW_NET = """# run_embedded.py: a 3x3 layer on 1x1 planes, run as its centre tap (select_kernels.c's live_taps)
model window(x: f32[3, 16, 1, 1]) {
    return relu(conv2d(x, 32, kernel=3, pad=1) as conv)
}
"""


def check_window(tmp):
    """A layer run as a window of its taps, with its weights embedded (emit_embed.c packs the window in nnc)
    against the same weights loaded from the file (prepare() packs it at load): the same bits, and the
    channel whose weights left out hold an inf all NaN, as PyTorch's 0 x inf makes it."""
    name = "x86 f32: a conv2d run as a window of its taps, embedded, equals the weights from the file (inf left out: NaN)"
    net, weights = os.path.join(tmp, "window.net"), os.path.join(tmp, "window.safetensors")
    with open(net, "w") as f:
        f.write(WINDOW_NET)
    rng = np.random.default_rng(7)
    w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    w[5, 3, 0, 2] = np.inf   # a corner tap: it reads only the padding
    safetensors.save_file({"conv.weight": w, "conv.bias": rng.standard_normal(32).astype(np.float32)}, weights)
    outs = []
    for tag, args in (("file", []), ("embedded", ["--weights", weights, "--embed-weights"])):
        src, exe, out = (os.path.join(tmp, f"window_{tag}{ext}") for ext in (".c", "", ".npy"))
        rc, log = run([NNC, net, "--main", "-o", src] + args)
        if rc == 0:
            rc, log = run(["gcc"] + WARN + ["-O2", "-march=native", "-I" + RUNTIME, src] + RUNTIME_C + ["-lm", "-lpthread", "-o", exe])
        if rc == 0:
            rc, log = run([exe, "--output", out] + ([] if args else ["--weights", weights]))
        if rc:
            fail(name, f"{tag}: {first_lines(log)}")
            return
        outs.append(np.load(out).reshape(3, 32))
    nan = np.isnan(outs[0])
    if outs[0].tobytes() != outs[1].tobytes():
        fail(name, "the embedded build's output differs from the file's")
    elif not nan[:, 5].all() or nan[:, np.arange(32) != 5].any():
        fail(name, f"NaN in channels {sorted(set(np.flatnonzero(nan.any(0)).tolist()))}, expected channel 5 alone")
    else:
        ok(name, "3 x 32 outputs, channel 5 NaN")


def main():
    keep = sys.argv[sys.argv.index("--keep") + 1] if "--keep" in sys.argv else None
    if not os.path.exists(NNC):
        fail("build/nnc", "missing (run make)")
        return
    torch.manual_seed(0)
    model = export_torchvision.build_model("cifar_resnet20", 0)
    x = fill_random(3 * 32 * 32).reshape(1, 3, 32, 32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).double().numpy().ravel()
    tools_missing = [t for t in ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm") if not shutil.which(t)]
    tmp = keep or tempfile.mkdtemp(prefix="nnc_embedded_")
    os.makedirs(tmp, exist_ok=True)
    try:
        weights = os.path.join(tmp, "cifar_resnet20.safetensors")
        safetensors.save_file(export_torchvision.state_dict_to_numpy(model), weights)
        run_parallel([functools.partial(check_half, tmp), functools.partial(check_fold, tmp), functools.partial(check_window, tmp)]
                     + check_golden_half(tmp)
                     + [functools.partial(check_resnet20, tmp, weights, ref, dtype, tools_missing) for dtype in DTYPES])
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def check_resnet20(tmp, weights, ref, dtype, tools_missing):
    """CIFAR ResNet-20 with weights embedded as dtype: on x86 against PyTorch, and on the M7 against x86."""
    tol = TOLERANCE[dtype]
    name = f"x86 {dtype}: cifar_resnet20 with embedded weights against PyTorch within {tol:g}"
    host, msg = x86_build(tmp, dtype, weights, dtype)
    if host is None:
        fail(name, msg)
    else:
        err = rel_error(host, ref)
        (ok if err <= tol else fail)(name, f"max|d|/max(1,|ref|) = {err:.2g}")
    if dtype != "bf16":
        check_c_array(tmp, weights, dtype, host)
    name = f"cortex-m7 {dtype}: cifar_resnet20 under qemu-system-arm mps2-an500 equals the x86 build bit for bit"
    if tools_missing:
        skip(name, f"{', '.join(tools_missing)} not found (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi "
                   "qemu-system-arm)")
        return
    elf, sizes = m7_build(tmp, dtype, weights, dtype)
    if elf is None:
        fail(name, "build: " + sizes)
        return
    got, msg = m7_run(elf)
    if got is None:
        fail(name, msg)
    elif host is None:
        fail(name, "no x86 output to compare with")
    elif got.shape != host.shape or got.view(np.uint32).tolist() != host.view(np.uint32).tolist():
        fail(name, f"outputs differ: max|d|/max(1,|ref|) = {rel_error(got, host.astype(np.float64)):.2g}")
    else:
        ok(name, size_text(sizes))


if __name__ == "__main__":
    main()
    print(f"{results['passed']} passed, {results['failed']} failed, {results['skipped']} skipped")
    sys.exit(1 if results["failed"] else 0)
