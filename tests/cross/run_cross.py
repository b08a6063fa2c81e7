#!/usr/bin/python3
"""run_cross.py — the runtime and kernels built for other targets: aarch64 under qemu, Cortex-M7, bare metal.

Checks, each printed as `ok - NAME`, `FAIL - NAME: detail` or `skip - NAME: reason` (a cross tool is
missing), then `N passed, N failed, N skipped`; exits 1 on any failure:

  - every runtime file compiles with plain -std=c11 -Wall -Wextra -Werror (no -D_GNU_SOURCE), with gcc and
    clang, as it is and with each NNRT_NO_* switch alone and all together;
  - host: the kernels' own math (nnk__exp within 2 ulp, sigmoid, gelu, softmax, layer norm) stays right when
    compiled with -ffast-math by gcc and clang (tests/cross/fastmath.c);
  - host: the runtime built with all five switches passes tests/embedded/test_embedded.c, and
    fashion_resnet18 on it (weights from memory, the heap in a static buffer, threads supplied through
    nnrt_set_thread_hooks) gives the normal build's output bit for bit, on 1 and 3 threads;
  - Cortex-M7 (arm-none-eabi-gcc, newlib): every runtime file compiles with the switches, and what its
    objects leave undefined is memcpy, memset, libm and libgcc only (with NNRT_NO_MALLOC; without it also
    malloc and free); it links with -nostdlib (tests/embedded/bare_link.c); the generated fashion_resnet18
    compiles too, and the libc functions it needs are listed; on a Cortex-M4, layer norm, softmax, the
    exp-based activations and batch-norm folding compile to float only (no __aeabi_d* soft-float calls);
  - aarch64 (aarch64-linux-gnu-gcc -static, qemu-aarch64): tests/cross/gemm_edges.c (nnk_gemm on every
    block edge against double, and split as threads) passes on the NEON tile and gives the same bits as the
    x86 AVX2+FMA tile; the NEON hot loop's instructions per multiply-add, counted in the object code of gcc
    and clang; fashion_resnet18 built for armv8-a gives the x86 build's output within 1e-5 (relative to the
    largest), and the same bits on 1 and 3 threads.

    /usr/bin/python3 tests/cross/run_cross.py [-v]

Needs build/nnc (make), and for the cross checks Debian's gcc-aarch64-linux-gnu, qemu-user,
gcc-arm-none-eabi and libnewlib-arm-none-eabi (tools/deps.sh installs them). About a minute on two cores.
"""
import concurrent.futures
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RUNTIME = os.path.join(ROOT, "runtime")
RUNTIME_C = sorted(os.path.join(RUNTIME, f) for f in os.listdir(RUNTIME) if f.endswith(".c"))
NNC = os.path.join(ROOT, "build", "nnc")
MODEL = os.path.join(ROOT, "models", "fashion_resnet18.net")
WEIGHTS = os.path.join(ROOT, "models", "weights", "fashion_resnet18.safetensors")
SWITCHES = ["-DNNRT_NO_THREADS", "-DNNRT_NO_FILES", "-DNNRT_NO_STDIO", "-DNNRT_NO_CLOCK", "-DNNRT_NO_MALLOC"]
WARN = ["-std=c11", "-Wall", "-Wextra", "-Werror"]
M7 = ["arm-none-eabi-gcc", "-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"] + WARN + ["-O2"]
A64 = "aarch64-linux-gnu-gcc"
# What a Cortex-M link may need from outside the runtime: memcpy, memset, libm (C99's <math.h> functions,
# with their f and l forms) and the compiler's support library.
MATH = ("acos asin atan atan2 cos sin tan acosh asinh atanh cosh sinh tanh exp exp2 expm1 log log10 log2 log1p "
        "logb ilogb pow sqrt cbrt hypot erf erfc tgamma lgamma ceil floor trunc round lround llround nearbyint "
        "rint lrint llrint fmod remainder remquo copysign nan fabs fdim fmin fmax fma frexp ldexp modf scalbn "
        "scalbln nextafter nexttoward").split()
ALLOWED = {"memcpy", "memset"} | {f + s for f in MATH for s in ("", "f", "l")}
LIBGCC = re.compile(r"^__(aeabi_|gnu_|(u?(div|mod)|mul|ashl|ashr|lshr|clz|ctz|popcount|ffs|extend|trunc|fix|float)\w*\d$)")
VERBOSE = "-v" in sys.argv
results = {"passed": 0, "failed": 0, "skipped": 0}


def ok(name, detail=""):
    results["passed"] += 1
    print(f"ok - {name}" + (f" ({detail})" if detail else ""), flush=True)


def fail(name, detail):
    results["failed"] += 1
    print(f"FAIL - {name}: {detail}", flush=True)


def skip(name, reason):
    results["skipped"] += 1
    print(f"skip - {name}: {reason}", flush=True)


def run(cmd, timeout=300, **kw):
    """Runs cmd; returns (returncode, stdout + stderr)."""
    if VERBOSE:
        print("# " + " ".join(cmd), flush=True)
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout, **kw)
        return p.returncode, p.stdout
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout} s: {' '.join(cmd)}"
    except OSError as e:
        return -1, str(e)


def first_lines(text, n=4):
    lines = [l for l in text.splitlines() if l.strip()]
    return " | ".join(lines[:n]) or "(no output)"


POOL = concurrent.futures.ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2))


def compile_all(jobs):
    """Runs (cmd) jobs in parallel; returns the list of (cmd, rc, output) that failed."""
    outs = list(POOL.map(lambda cmd: (cmd, *run(cmd)), jobs))
    return [o for o in outs if o[1] != 0]


def undefined(nm, objects):
    """Symbols the objects leave undefined that none of them defines."""
    rc, out = run([nm, "-u"] + objects)
    _, defined_out = run([nm, "--defined-only"] + objects)
    defined = {l.split()[-1] for l in defined_out.splitlines() if len(l.split()) >= 3}
    return sorted({l.split()[-1] for l in out.splitlines() if l.strip().startswith("U ")} - defined)


def outside_allowed(symbols, extra=()):
    return [s for s in symbols if s not in ALLOWED and s not in extra and not LIBGCC.match(s)]


# ---------------------------------------------------------------------------------------------- host


def check_std_c11(tmp):
    configs = [("as it is", [])] + [(s[2:], [s]) for s in SWITCHES] + [("all five switches", SWITCHES)]
    for cc in ("gcc", "clang"):
        name = f"runtime files build with {cc} -std=c11 -Wall -Wextra -Werror, without -D_GNU_SOURCE"
        if not shutil.which(cc):
            skip(name, f"{cc} not found")
            continue
        jobs = [[cc] + WARN + ["-O2"] + flags + ["-I" + RUNTIME, "-c", f, "-o", os.devnull] for _, flags in configs
                for f in RUNTIME_C]
        bad = compile_all(jobs)
        if bad:
            fail(name, f"{len(bad)} of {len(jobs)} failed, first: {' '.join(bad[0][0][-4:])}: {first_lines(bad[0][2])}")
        else:
            ok(name, f"{len(configs)} configurations")


def build_runtime(cc, flags, outdir):
    os.makedirs(outdir, exist_ok=True)
    objs = [os.path.join(outdir, os.path.basename(f)[:-2] + ".o") for f in RUNTIME_C]
    bad = compile_all([cc + flags + ["-I" + RUNTIME, "-c", f, "-o", o] for f, o in zip(RUNTIME_C, objs)])
    return objs, bad


def check_host_embedded(tmp):
    name = "host: the runtime with all five switches (tests/embedded/test_embedded.c)"
    objs, bad = build_runtime(["gcc", "-O2", "-g"] + WARN, SWITCHES, os.path.join(tmp, "emb"))
    if bad:
        return fail(name, first_lines(bad[0][2]))
    exe = os.path.join(tmp, "test_embedded")
    rc, out = run(["gcc", "-O2"] + WARN + SWITCHES + ["-I" + RUNTIME, os.path.join(ROOT, "tests", "embedded", "test_embedded.c")]
                  + objs + ["-lm", "-o", exe])
    if rc:
        return fail(name, "build: " + first_lines(out))
    rc, out = run([exe])
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    if rc or not re.match(r"\d+ passed, 0 failed", summary):
        return fail(name, "; ".join(l for l in out.splitlines() if l.startswith("FAIL")) or first_lines(out))
    ok(name, summary)
    return objs


def generate(target, path, main):
    return run([NNC, MODEL, "--target", target] + (["--main"] if main else []) + ["-o", path])


def read_f32(path):
    data = open(path, "rb").read()
    if data[:6] == b"\x93NUMPY":   # .npy version 1: the header length is 2 bytes at offset 8
        data = data[10 + struct.unpack("<H", data[8:10])[0]:]
    return list(struct.unpack(f"<{len(data) // 4}f", data)), data


def x86_reference(tmp):
    """The generic --main build of fashion_resnet18 on the host and its output (floats, raw bytes), or None."""
    if not (os.path.exists(NNC) and os.path.exists(WEIGHTS)):
        return None
    src = os.path.join(tmp, "fx.c")
    exe = os.path.join(tmp, "fx")
    out = os.path.join(tmp, "fx.npy")
    rc, log = generate("generic", src, True)
    if rc == 0:
        rc, log = run(["gcc", "-std=c11", "-O2", "-I" + RUNTIME, src] + RUNTIME_C + ["-lm", "-lpthread", "-o", exe])
    if rc == 0:
        rc, log = run([exe, "--weights", WEIGHTS, "--output", out])
    if rc:
        print("# x86 reference build failed: " + first_lines(log))
        return None
    return read_f32(out)


def check_host_model(tmp, emb_objs, ref):
    name = "host: fashion_resnet18 on the all-switch runtime (weights from memory, heap in a buffer, hooked threads)"
    if not os.path.exists(NNC):
        return skip(name, "build/nnc missing (run make)")
    if ref is None or not emb_objs:
        return fail(name, "no x86 reference or embedded runtime to compare with")
    src = os.path.join(tmp, "fe.c")
    rc, log = generate("generic", src, False)
    exe = os.path.join(tmp, "embed_main")
    if rc == 0:
        rc, log = run(["gcc", "-std=c11", "-O2"] + SWITCHES + ["-I" + RUNTIME, "-I" + tmp, '-DMODEL_H="fe.h"',
                      "-DMODEL=fashion_resnet18", "-DIN_SIZE=FASHION_RESNET18_IMAGE_SIZE",
                      "-DOUT_SIZE=FASHION_RESNET18_OUTPUT_SIZE", "-DMEM=FASHION_RESNET18", os.path.join(ROOT, "tests", "embedded", "embed_main.c"), src]
                      + emb_objs + ["-lm", "-lpthread", "-o", exe])
    if rc:
        return fail(name, "build: " + first_lines(log))
    notes = []
    for threads in (1, 3):
        out = os.path.join(tmp, f"fe{threads}.bin")
        rc, log = run([exe, WEIGHTS, str(threads), out])
        if rc:
            return fail(name, f"--threads {threads}: " + first_lines(log))
        if read_f32(out)[1] != ref[1]:
            return fail(name, f"{threads} thread(s): output differs from the normal build")
        notes.append(log.strip().lstrip("# "))
    ok(name, f"bit-identical on 1 and 3 threads; {notes[-1]}")


def check_fast_math(tmp):
    """tests/cross/fastmath.c built with -ffast-math: nnk__exp, sigmoid, gelu, softmax, layer norm."""
    for cc in ("gcc", "clang"):
        for flags in (["-O2", "-ffast-math"], ["-O3", "-march=native", "-ffast-math"]):
            name = f"host: the kernels' exp, sigmoid, gelu, softmax and layer norm with {cc} {' '.join(flags)}"
            if not shutil.which(cc):
                skip(name, f"{cc} not found")
                continue
            exe = os.path.join(tmp, f"fastmath_{cc}_{flags[0]}")
            rc, log = run([cc] + WARN + flags + ["-I" + RUNTIME, os.path.join(HERE, "fastmath.c"), "-lm", "-o", exe])
            if rc == 0:
                rc, log = run([exe])
            if rc:
                fail(name, "; ".join(l[7:] for l in log.splitlines() if l.startswith("FAIL")) or first_lines(log))
            else:
                exp_line = next((l for l in log.splitlines() if "nnk__exp over" in l), "")
                ok(name, "nnk__exp within " + exp_line[exp_line.rfind("(") + 1:exp_line.rfind(",")] if exp_line else "")


# ---------------------------------------------------------------------------------------------- Cortex-M7


def check_cortex_m7(tmp):
    names = ["cortex-m7: runtime objects need only memcpy, memset, libm and libgcc (all five switches)",
             "cortex-m7: the same with the four switches, malloc and free besides (NNRT_NO_MALLOC off)",
             "cortex-m7: the runtime links with -nostdlib, only libgcc and its own memcpy and memset",
             "cortex-m7: generated fashion_resnet18 compiles with the four switches",
             "cortex-m4: layer norm, softmax, gelu, sigmoid, silu and batch-norm folding compute in float (no soft double)"]
    if not shutil.which(M7[0]):
        for n in names:
            skip(n, "arm-none-eabi-gcc not found (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi)")
        return
    for name, flags, extra in ((names[0], SWITCHES, ()), (names[1], SWITCHES[:4], ("malloc", "free"))):
        objs, bad = build_runtime(M7, flags, os.path.join(tmp, "m7" + str(len(flags))))
        if bad:
            fail(name, f"{os.path.basename(bad[0][0][-3])}: {first_lines(bad[0][2])}")
            continue
        und = undefined("arm-none-eabi-nm", objs)
        extra_found = outside_allowed(und, extra)
        if extra_found:
            fail(name, "also needs " + ", ".join(extra_found))
        else:
            ok(name, "undefined: " + ", ".join(und))
    elf = os.path.join(tmp, "bare.elf")
    rc, log = run(M7 + SWITCHES + ["-I" + RUNTIME, "-nostdlib", "-nostartfiles", os.path.join(ROOT, "tests", "embedded",
                  "bare_link.c")] + RUNTIME_C + ["-lgcc", "-o", elf])
    if rc:
        fail(names[2], first_lines(log))
    else:
        _, size = run(["arm-none-eabi-size", elf])
        fields = size.splitlines()[-1].split() if size.strip() else []
        ok(names[2], f".text {fields[0]}, .data {fields[1]}, .bss {fields[2]} bytes" if len(fields) > 3 else "")
    # the run-time kernels in float only: on a Cortex-M4 (single-precision FPU) double is soft-float calls
    probe = os.path.join(tmp, "m4.c")
    with open(probe, "w") as f:
        f.write('#include "kernels/nnk.h"\n'
                "void ln(float *y, const float *x, const float *g, const float *b, long M, int D) "
                "{ nnk_layernorm(y, x, g, b, M, D, 1e-5f); }\n"
                "void sm(float *y, const float *x, long M, int D) { nnk_softmax(y, x, M, D, 1); }\n"
                "void act(float *y, const float *x, long n) { nnk_gelu(y, x, n); nnk_sigmoid(y, y, n); nnk_silu(y, y, n); }\n"
                "void fold(float *w, float *b, const float *g, const float *be, const float *m, const float *v, int O, long per) "
                "{ nnk_fold_batchnorm(w, b, g, be, m, v, O, per, 1e-5f); }\n")
    obj = os.path.join(tmp, "m4.o")
    rc, log = run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"] + WARN +
                  ["-O2", "-I" + RUNTIME, "-c", probe, "-o", obj])
    und = undefined("arm-none-eabi-nm", [obj]) if rc == 0 else []
    soft = [u for u in und if u.startswith("__aeabi_d") or u.endswith("2d") or u in ("sqrt", "exp", "log")]
    if rc or soft:
        fail(names[4], first_lines(log) if rc else "double arithmetic: " + ", ".join(soft))
    else:
        ok(names[4], "undefined: " + ", ".join(und))
    name = names[3]
    if not os.path.exists(NNC):
        return skip(name, "build/nnc missing (run make)")
    src = os.path.join(tmp, "fm7.c")
    rc, log = generate("generic", src, False)
    obj = os.path.join(tmp, "fm7.o")
    if rc == 0:
        rc, log = run(M7 + SWITCHES[:4] + ["-I" + RUNTIME, "-c", src, "-o", obj])
    if rc:
        return fail(name, first_lines(log))
    und = [s for s in undefined("arm-none-eabi-nm", [obj]) if not s.startswith("nnrt_")]
    # the model's lifecycle allocates on the heap until the caller-owned memory API exists
    heap = ("calloc", "malloc", "free", "aligned_alloc")
    extra_found = outside_allowed(und, heap)
    if extra_found:
        fail(name, "needs " + ", ".join(extra_found))
    else:
        ok(name, "libc and libm it needs: " + ", ".join(und))


# ---------------------------------------------------------------------------------------------- aarch64


def hot_loop(objdump, obj, func):
    """(instructions, fmla) of the innermost loop of func with the most fmla per instruction, or None."""
    rc, out = run([objdump, "-d", "--no-show-raw-insn", obj])
    m = re.search(r"<%s(\.[\w.]+)?>:\n(.*?)(?:\n\n|\Z)" % re.escape(func), out, re.S)
    if not m:
        return None
    ins = [l for l in m.group(2).splitlines() if re.match(r"\s+[0-9a-f]+:\t", l)]
    addr = lambda l: int(l.split(":")[0], 16)
    best = None
    for l in ins:
        b = re.search(r"\t(b\.\w+|b|cbn?z|tbn?z)\s+(?:\w+, )*(?:#\w+, )?([0-9a-f]+) <", l)
        if b and int(b.group(2), 16) < addr(l):
            body = [x for x in ins if int(b.group(2), 16) <= addr(x) <= addr(l)]
            fmla = sum("\tfmla" in x for x in body)
            if fmla >= 24 and not any("\tbl\t" in x or "[sp" in x for x in body):
                if best is None or len(body) / fmla < best[0] / best[1]:
                    best = (len(body), fmla)
    return best


def check_aarch64(tmp, ref):
    names = ["aarch64: nnk_gemm on every block edge under qemu (NEON tile, tests/cross/gemm_edges.c)",
             "aarch64: NEON tile gives the same bits as the x86 AVX2+FMA tile",
             "aarch64: NEON hot loop instructions per multiply-add (gcc)",
             "aarch64: NEON hot loop instructions per multiply-add (clang)",
             "aarch64: fashion_resnet18 under qemu equals the x86 build within 1e-5",
             "aarch64: fashion_resnet18 gives the same bits on 1 and 3 threads"]
    missing = [t for t in (A64, "qemu-aarch64", "aarch64-linux-gnu-objdump") if not shutil.which(t)]
    if missing:
        for n in names:
            skip(n, f"{', '.join(missing)} not found (Debian: gcc-aarch64-linux-gnu qemu-user)")
        return
    edges = os.path.join(ROOT, "tests", "cross", "gemm_edges.c")
    exe, hashes = os.path.join(tmp, "ge_a64"), os.path.join(tmp, "ge_a64.txt")
    rc, log = run([A64] + WARN + ["-O2", "-static", "-I" + RUNTIME, edges, "-lm", "-o", exe])
    if rc == 0:
        rc, log = run(["qemu-aarch64", exe, hashes])
    summary = log.strip().splitlines()[-1] if log.strip() else ""
    if rc or "NEON" not in log:
        fail(names[0], "; ".join(l for l in log.splitlines() if l.startswith("FAIL"))[:400] or first_lines(log))
    else:
        ok(names[0], summary)
    # the x86 tile with the same fused multiply-adds
    rc_cpu, cpu = run(["grep", "-m1", "-o", "-w", "fma", "/proc/cpuinfo"])
    if rc or not os.path.exists(hashes):
        fail(names[1], "no aarch64 result to compare")
    elif "fma" not in cpu or not shutil.which("gcc"):
        skip(names[1], "this CPU lacks AVX2+FMA")
    else:
        x86, x86_hashes = os.path.join(tmp, "ge_v3"), os.path.join(tmp, "ge_v3.txt")
        rc2, log2 = run(["gcc"] + WARN + ["-O2", "-march=x86-64-v3", "-I" + RUNTIME, edges, "-lm", "-o", x86])
        if rc2 == 0:
            rc2, log2 = run([x86, x86_hashes])
        if rc2:
            fail(names[1], "x86 build: " + first_lines(log2))
        else:
            a = open(hashes).read().splitlines()
            b = open(x86_hashes).read().splitlines()
            diff = [x.split()[0:-1] for x, y in zip(a, b) if x != y]
            if len(a) != len(b) or diff:
                fail(names[1], f"{len(diff)} of {len(a)} cases differ, first: {' '.join(diff[0]) if diff else 'count'}")
            else:
                ok(names[1], f"{len(a)} cases")
    # instructions per multiply-add in the hot loop
    probe = os.path.join(tmp, "tile.c")
    with open(probe, "w") as f:
        f.write('#include "kernels/nnk.h"\nint tile(const float *a, const float *b, int kc, float *c, long ldc) '
                "{ return nnk__tile_8x48(a, 1, NNK_MR, b, kc, c, ldc, 0, 0, 1, 0, 0, 0, 0); }\n")
    for name, cc in ((names[2], [A64]), (names[3], ["clang", "--target=aarch64-linux-gnu"])):
        if not shutil.which(cc[0]):
            skip(name, f"{cc[0]} not found")
            continue
        obj = os.path.join(tmp, cc[0] + "_tile.o")
        rc, log = run(cc + WARN + ["-O2", "-I" + RUNTIME, "-c", probe, "-o", obj])
        if rc:
            skip(name, f"{' '.join(cc)} cannot compile for aarch64: {first_lines(log, 1)}") if cc[0] == "clang" else \
                fail(name, first_lines(log))
            continue
        loop = hot_loop("aarch64-linux-gnu-objdump", obj, "nnk__neon_8x12")
        if not loop:
            fail(name, "no loop of fmla without spills found in nnk__neon_8x12")
            continue
        per = loop[0] / (loop[1] * 4)
        detail = f"{per:.3f}: {loop[0]} instructions for {loop[1]} fmla = {loop[1] * 4} multiply-adds, no spill"
        (ok if per <= 0.34 else fail)(name, detail)
    # the whole model
    if not (os.path.exists(NNC) and os.path.exists(WEIGHTS)):
        for n in names[4:]:
            skip(n, "build/nnc or the weights missing")
        return
    src, exe = os.path.join(tmp, "fa.c"), os.path.join(tmp, "fa_a64")
    rc, log = generate("armv8-a", src, True)
    if rc == 0:
        rc, log = run([A64, "-std=c11", "-O2", "-static", "-I" + RUNTIME, src] + RUNTIME_C + ["-lm", "-lpthread", "-o", exe])
    if rc:
        for n in names[4:]:
            fail(n, "build: " + first_lines(log))
        return
    outs = {}
    for threads in (1, 3):
        out = os.path.join(tmp, f"fa{threads}.npy")
        rc, log = run(["qemu-aarch64", exe, "--weights", WEIGHTS, "--threads", str(threads), "--output", out])
        if rc:
            for n in names[4:]:
                fail(n, f"--threads {threads} under qemu: " + first_lines(log))
            return
        outs[threads] = read_f32(out)
    if ref is None:
        fail(names[4], "no x86 reference")
    else:
        got, want = outs[1][0], ref[0]
        scale = max(1.0, max(abs(v) for v in want))
        worst = max(abs(g - w) for g, w in zip(got, want)) if len(got) == len(want) else float("inf")
        (ok if worst / scale <= 1e-5 else fail)(names[4], f"max|d|/max(1,|ref|) = {worst / scale:.2g}, "
                                                f"{'same bits' if outs[1][1] == ref[1] else 'not the same bits'} as x86 generic")
    (ok if outs[1][1] == outs[3][1] else fail)(names[5], "bit-identical" if outs[1][1] == outs[3][1] else "outputs differ")


def main():
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="nnc_cross_") as tmp:
        ref_future = POOL.submit(x86_reference, tmp)
        check_std_c11(tmp)
        emb = check_host_embedded(tmp)
        ref = ref_future.result()
        check_host_model(tmp, emb, ref)
        check_fast_math(tmp)
        check_cortex_m7(tmp)
        check_aarch64(tmp, ref)
    print(f"# {time.time() - start:.1f} s")
    print(f"{results['passed']} passed, {results['failed']} failed, {results['skipped']} skipped")
    sys.exit(1 if results["failed"] else 0)


if __name__ == "__main__":
    main()
