#!/usr/bin/python3
"""The generated program and its weights, end to end.

Compiles the golden models (tests/golden/tiny_cnn, tiny_decoder, tiny_encoder) with nnc, builds the
programs, and drives them through a table of cases: what is run, the expected exit status, and a
regular expression that stdout + stderr must match. Error messages must name the problem (the key or
file, the expected and the found value), fit on one line, and a rejected run must not write its output.

Covered:
  - weights faults (spec section 6): missing key, wrong shape, wrong dtype (I64, F64, I32), truncated
    files, bad header length, invalid JSON, bad data_offsets, duplicate keys, empty files, directories
    and nonexistent paths; unused keys are warnings; F16 and BF16 weights load exactly;
  - input and output files: raw and .npy, wrong sizes, shapes, dtypes, orders, magic, truncation,
    '<f8' conversion, unwritable outputs, the number of --input flags;
  - the program's flags: --help, unknown options, missing values, --bench, --threads, --profile,
    determinism across thread counts, agreement with PyTorch's golden outputs (1e-4 relative);
  - the compiler's outputs: `-o PROG` (clang and CC=gcc), the C under gcc and clang with
    -std=c11 -Wall -Wextra -Werror (and -pedantic), --embed-weights, the header's macros,
    --cflags/--libs/--version/--help, nnc usage errors;
  - index tensors: I64 and I32 indices loaded; one out of range (or a float file) refused on load by the
    program, --reference and --embed-weights;
  - the header API, used from a small C program: new, load (missing file), load_memory, run twice,
    two instances, a failed load leaves the weights intact, warnings, free(NULL).

Tolerances for reduced-precision weights: the F16/BF16 file is first converted back to F32 exactly
(tools/safetensors.py), and the program's output with the F16/BF16 file must be bit-identical to its output
with that F32 file (the conversion on load is exact). Against PyTorch's F32 outputs the error is then only
the weights' rounding: relative step 2^-11 for F16 and 2^-8 for BF16 per weight, which through the few layers
of tiny_cnn stays well below the bounds used here, 2e-3 (F16) and 1e-2 (BF16) in max|diff| / max|ref|.

Needs numpy, not PyTorch. `-v` shows each case's stderr. Prints `ok - NAME` / `FAIL - NAME: detail` per check and `N passed, N failed`.
"""
import concurrent.futures
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import safetensors as st  # noqa: E402  (tools/safetensors.py)

NNC = os.path.join(ROOT, "build", "nnc")
GOLDEN = os.path.join(ROOT, "tests", "golden")
CLANG = shutil.which("clang")
GCC = shutil.which("gcc")
CC = os.environ.get("CC") or CLANG or GCC or "cc"
TOL = 1e-4
WARN_FLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror"]
# The optimisation of the C this suite builds itself: -O1 when nnc is a sanitizer build (`make
# test-sanitize`, whose --cflags add the sanitizers), as nnc's own builds are then; clang took 24 s to
# build tiny_encoder with ASan and UBSan at -O2, 3 s at -O1.
def _opt():
    try:
        sanitized = "-fsanitize" in subprocess.run([NNC, "--cflags"], capture_output=True, text=True).stdout
    except OSError:   # (no build/nnc: the first check reports it)
        sanitized = False
    return "-O1" if sanitized else "-O2"


OPT = _opt()
VERBOSE = "-v" in sys.argv[1:]   # show each case's stderr

passed = failed = 0


def report(name, error=None):
    """error None (or empty) is a pass; otherwise the detail of the failure."""
    global passed, failed
    if error:
        detail = " ".join(str(error).split())
        if len(detail) > 600:
            detail = detail[:600] + "..."
        print(f"FAIL - {name}: {detail}", flush=True)
        failed += 1
    else:
        print(f"ok - {name}", flush=True)
        passed += 1


def run(cmd, env=None, timeout=120, **kw):
    e = None
    if env:
        e = dict(os.environ)
        for k, v in env.items():   # None removes the variable
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
    try:
        return subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=e, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as ex:
        return subprocess.CompletedProcess(cmd, "timeout", ex.stdout or "", f"timed out after {timeout} s")
    except OSError as ex:
        return subprocess.CompletedProcess(cmd, "not run", "", f"cannot run {cmd[0]}: {ex}")


def brief(r):
    out = (r.stdout or "").strip()
    err = (r.stderr or "").strip()
    return f"status {r.returncode}, stdout {out[:300]!r}, stderr {err[:400]!r}"


def rel_err(got, want):
    return float(np.abs(got.astype(np.float64) - want).max() / max(float(np.abs(want).max()), 1e-30))


def compare(path, ref, tol=TOL, raw_shape=None):
    """None if the output file at path matches ref within tol, else why not."""
    if not os.path.exists(path):
        return f"{path} was not written"
    try:
        if raw_shape is not None:
            got = np.fromfile(path, dtype="<f4")
            if got.size != int(np.prod(raw_shape)):
                return f"{path}: {got.size * 4} bytes, expected {int(np.prod(raw_shape)) * 4}"
            got = got.reshape(raw_shape)
        else:
            got = np.load(path)
    except Exception as e:  # noqa: BLE001
        return f"{path}: numpy cannot read it: {e}"
    if got.shape != ref.shape:
        return f"{path}: shape {got.shape}, expected {ref.shape}"
    if got.dtype != np.float32:
        return f"{path}: dtype {got.dtype}, expected float32"
    err = rel_err(got, ref)
    if not err <= tol:
        return f"{path}: max|diff|/max|ref| = {err:.3g} > {tol:g}"
    return None


def same_bytes(a, b):
    if not (os.path.exists(a) and os.path.exists(b)):
        return f"missing output ({a}: {os.path.exists(a)}, {b}: {os.path.exists(b)})"
    with open(a, "rb") as f, open(b, "rb") as g:
        x, y = f.read(), g.read()
    if x != y:
        return f"{a} and {b} differ ({len(x)} vs {len(y)} bytes)"
    return None


# ---- safetensors files, valid and malformed ----

def pack(header_items, data, hlen=None, raw_header=None):
    """Bytes of a safetensors file from (key, entry) pairs (a list, so keys may repeat) and data."""
    if raw_header is None:
        text = "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in header_items) + "}"
        raw_header = text.encode()
    raw_header += b" " * (-len(raw_header) % 8)
    n = len(raw_header) if hlen is None else hlen
    return struct.pack("<Q", n) + raw_header + data


def write(path, blob):
    with open(path, "wb") as f:
        f.write(blob)
    return path


def golden_parts(name):
    """(ordered [(key, entry)], data bytes) of a golden weights file."""
    path = os.path.join(GOLDEN, name, "weights.safetensors")
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    items = [(k, dict(v)) for k, v in header.items()]
    return items, blob[8 + n:]


def modified(items, key, **changes):
    out = []
    for k, v in items:
        v = dict(v)
        if k == key:
            v.update(changes)
        out.append((k, v))
    return out


# ---- building ----

POOL = concurrent.futures.ThreadPoolExecutor(2)     # builds whose checks do not depend on each other

def build_c(c_file, exe, cc, extra=()):
    flags = run([NNC, "--cflags"]).stdout.split() + run([NNC, "--libs"]).stdout.split()
    return run([cc, OPT] + list(extra) + [c_file, "-o", exe] + flags)


class Model:
    def __init__(self, name, tmp):
        self.name = name
        self.net = os.path.join(GOLDEN, name + ".net")
        self.dir = os.path.join(GOLDEN, name)
        self.weights = os.path.join(self.dir, "weights.safetensors")
        self.inputs = sorted(os.path.join(self.dir, f) for f in os.listdir(self.dir) if f.startswith("input"))
        self.expected = [np.load(os.path.join(self.dir, f))
                         for f in sorted(os.listdir(self.dir)) if f.startswith("expected")]
        self.c = os.path.join(tmp, name + ".c")
        self.h = os.path.join(tmp, name + ".h")
        self.exe = os.path.join(tmp, name)

    def build(self):
        r = run([NNC, self.net, "--main", "-o", self.c])
        if r.returncode != 0:
            return f"nnc --main -o {self.c}: {brief(r)}"
        r = build_c(self.c, self.exe, CC, ["-march=native"] + WARN_FLAGS)
        if r.returncode != 0:
            return f"{CC} {self.c}: {brief(r)}"
        return None


# ---- the case table ----

class Case:
    """Run PROG ARGS; expect STATUS and stdout+stderr matching PATTERN (re.M); POST(r) -> error or None.

    A failing case (status != 0) must also print one line on stderr, nothing on stdout, and write none of
    its --output files (weights and inputs are checked before the first run)."""

    def __init__(self, name, exe, args, status, pattern, post=None, env=None):
        self.name, self.exe, self.args, self.status, self.pattern, self.post, self.env = \
            name, exe, args, status, pattern, post, env


def run_case(case):
    outputs = [case.args[i + 1] for i, a in enumerate(case.args[:-1]) if a == "--output"]
    for o in outputs:
        if os.path.isfile(o):
            os.remove(o)
    r = run([case.exe] + case.args, env=case.env)
    problems = []
    if r.returncode != case.status:
        problems.append(f"expected status {case.status}")
    text = (r.stdout or "") + (r.stderr or "")
    if case.pattern and not re.search(case.pattern, text, re.M):
        problems.append(f"output does not match /{case.pattern}/")
    if case.status != 0 and r.returncode == case.status:
        lines = [x for x in (r.stderr or "").splitlines() if x.strip()]
        if len(lines) != 1:
            problems.append(f"expected one line on stderr, found {len(lines)}")
        if (r.stdout or "").strip():
            problems.append("expected nothing on stdout")
        for o in outputs:
            if os.path.exists(o) and not os.path.isdir(o):
                problems.append(f"rejected run still wrote {o}")
    if not problems and case.post:
        p = case.post(r)
        if p:
            problems.append(p)
    if VERBOSE:
        for line in (r.stderr or "").splitlines()[:4]:
            print(f"#   stderr: {line[:300]}")
    report(case.name, "; ".join(problems) + f" -- {brief(r)}" if problems else None)


# ---- the C program that uses the header API ----

API_C = r"""
#include "tiny_cnn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed_checks, failed_checks;

static void check(const char *name, int ok, const char *detail) {
    if (ok) {
        printf("ok - api %s\n", name);
        passed_checks++;
    } else {
        printf("FAIL - api %s: %s\n", name, detail ? detail : "");
        failed_checks++;
    }
}

static unsigned char *slurp(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static int warnings;
static char last_warning[512];
static void on_warning(void *user, const char *message) {
    (*(int *)user)++;
    warnings++;
    snprintf(last_warning, sizeof last_warning, "%s", message);
}

static double max_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        double x = fabs((double)a[i] - (double)b[i]);
        if (x > d || x != x)
            d = x;
    }
    return d;
}

/* argv: weights, raw input, raw output to write, a missing path, weights with an unused key */
int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: api WEIGHTS INPUT.bin OUTPUT.bin MISSING EXTRA_WEIGHTS\n");
        return 2;
    }
    static const int in_shape[] = TINY_CNN_IMAGE_SHAPE, out_shape[] = TINY_CNN_OUTPUT_SHAPE;
    char detail[1024];
    check("macros", TINY_CNN_IMAGE_RANK == 4 && in_shape[0] * in_shape[1] * in_shape[2] * in_shape[3] ==
                    TINY_CNN_IMAGE_SIZE && TINY_CNN_OUTPUT_RANK == 2 && out_shape[0] * out_shape[1] ==
                    TINY_CNN_OUTPUT_SIZE && TINY_CNN_ARENA_BYTES > 0, "shape macros disagree with sizes");

    size_t in_size = 0, w_size = 0, extra_size = 0;
    unsigned char *in_bytes = slurp(argv[2], &in_size);
    unsigned char *w_bytes = slurp(argv[1], &w_size);
    unsigned char *extra_bytes = slurp(argv[5], &extra_size);
    if (!in_bytes || in_size != TINY_CNN_IMAGE_SIZE * sizeof(float) || !w_bytes || !extra_bytes) {
        fprintf(stderr, "api: cannot read the test files\n");
        return 2;
    }
    static float in[TINY_CNN_IMAGE_SIZE], noise[TINY_CNN_IMAGE_SIZE];
    static float out1[TINY_CNN_OUTPUT_SIZE], out2[TINY_CNN_OUTPUT_SIZE], out3[TINY_CNN_OUTPUT_SIZE];
    static float out4[TINY_CNN_OUTPUT_SIZE], out5[TINY_CNN_OUTPUT_SIZE];
    memcpy(in, in_bytes, sizeof in);
    for (size_t i = 0; i < TINY_CNN_IMAGE_SIZE; i++)
        noise[i] = (float)((i * 7919 % 1000) / 500.0 - 1.0);

    tiny_cnn *m = tiny_cnn_new(1);
    check("new", m != NULL, "tiny_cnn_new(1) returned NULL");
    if (!m)
        return 1;

    int rc = tiny_cnn_load(m, argv[4]);
    snprintf(detail, sizeof detail, "returned %d, last_error '%s'", rc, tiny_cnn_last_error(m));
    check("load of a missing file returns -1", rc == -1, detail);
    check("load of a missing file: last_error names the path", strstr(tiny_cnn_last_error(m), argv[4]) != NULL,
          detail);

    unsigned char *copy = malloc(w_size);
    memcpy(copy, w_bytes, w_size);
    rc = tiny_cnn_load_memory(m, copy, w_size);
    snprintf(detail, sizeof detail, "returned %d, last_error '%s'", rc, tiny_cnn_last_error(m));
    check("load_memory on the weights file's bytes returns 0", rc == 0, detail);
    memset(copy, 0xff, w_size);   /* the bytes were copied: clobbering them changes nothing */
    free(copy);

    rc = tiny_cnn_run(m, in, out1);
    check("run returns 0", rc == 0, tiny_cnn_last_error(m));
    FILE *f = fopen(argv[3], "wb");
    if (!f || fwrite(out1, sizeof(float), TINY_CNN_OUTPUT_SIZE, f) != TINY_CNN_OUTPUT_SIZE) {
        fprintf(stderr, "api: cannot write %s\n", argv[3]);
        return 2;
    }
    fclose(f);

    tiny_cnn_run(m, noise, out2);
    tiny_cnn_run(m, in, out2);
    snprintf(detail, sizeof detail, "max|diff| %g", max_diff(out1, out2, TINY_CNN_OUTPUT_SIZE));
    check("run twice (another input between) gives identical outputs",
          !memcmp(out1, out2, sizeof out1), detail);

    tiny_cnn *m2 = tiny_cnn_new(2);
    check("second instance (2 threads)", m2 != NULL, "tiny_cnn_new(2) returned NULL");
    if (!m2)
        return 1;
    rc = tiny_cnn_load(m2, argv[1]);
    snprintf(detail, sizeof detail, "returned %d, last_error '%s'", rc, tiny_cnn_last_error(m2));
    check("second instance: load from the file returns 0", rc == 0, detail);
    tiny_cnn_run(m2, noise, out3);
    tiny_cnn_run(m, in, out4);
    tiny_cnn_run(m2, in, out3);
    snprintf(detail, sizeof detail, "max|diff| %g", max_diff(out1, out3, TINY_CNN_OUTPUT_SIZE));
    check("two instances in one process give the same results", !memcmp(out1, out3, sizeof out1), detail);
    check("first instance unaffected by the second", !memcmp(out1, out4, sizeof out1), "outputs differ");

    /* a failed load leaves the weights as they were */
    rc = tiny_cnn_load_memory(m, w_bytes, w_size - 100);
    snprintf(detail, sizeof detail, "returned %d, last_error '%s'", rc, tiny_cnn_last_error(m));
    check("load_memory of a truncated image returns -1 naming a key",
          rc == -1 && strstr(tiny_cnn_last_error(m), "stem_bn.") != NULL, detail);
    tiny_cnn_run(m, in, out5);
    check("a failed load leaves the loaded weights intact", !memcmp(out1, out5, sizeof out1), "outputs differ");
    rc = tiny_cnn_load_memory(m, NULL, 0);
    snprintf(detail, sizeof detail, "returned %d, last_error '%s'", rc, tiny_cnn_last_error(m));
    check("load_memory(NULL, 0) returns -1", rc == -1 && tiny_cnn_last_error(m)[0] != '\0', detail);

    int count = 0;
    tiny_cnn_on_warning(m2, on_warning, &count);
    rc = tiny_cnn_load_memory(m2, extra_bytes, extra_size);
    snprintf(detail, sizeof detail, "returned %d, %d warning(s), last '%s', error '%s'", rc, count, last_warning,
             tiny_cnn_last_error(m2));
    check("on_warning is called for an unused key", rc == 0 && count == 1 &&
          strstr(last_warning, "extra.tensor") != NULL, detail);
    tiny_cnn_on_warning(m2, NULL, NULL);
    rc = tiny_cnn_load_memory(m2, extra_bytes, extra_size);
    check("on_warning(NULL) silences warnings", rc == 0 && count == 1, "callback still called");
    tiny_cnn_run(m2, in, out3);
    check("reloading the weights gives the same results", !memcmp(out1, out3, sizeof out1), "outputs differ");

    tiny_cnn_free(m);
    tiny_cnn_free(m2);
    tiny_cnn_free(NULL);
    check("free(NULL) is safe", 1, NULL);
    free(in_bytes);
    free(w_bytes);
    free(extra_bytes);
    return failed_checks ? 1 : 0;
}
"""


def main():
    start = time.time()
    tmp = tempfile.mkdtemp(prefix="nnc-program-")
    try:
        body(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"# {time.time() - start:.1f} s")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def body(tmp):
    T = lambda *p: os.path.join(tmp, *p)  # noqa: E731
    cnn, dec, enc = (Model(n, tmp) for n in ("tiny_cnn", "tiny_decoder", "tiny_encoder"))
    for m, err in zip((cnn, dec, enc), POOL.map(Model.build, (cnn, dec, enc))):
        report(f"build {m.name} with {os.path.basename(CC)} {' '.join(WARN_FLAGS)}", err)
        if err:
            print("# cannot go on without the programs")
            return

    W = cnn.weights
    IN = cnn.inputs[0]
    exp = cnn.expected[0]
    outn = iter(range(100000))

    def out(ext=".npy"):
        return T(f"out{next(outn)}{ext}")

    def run_args(weights, extra=(), inp=IN):
        o = out()
        return ["--weights", weights, "--input", inp, "--output", o] + list(extra)

    def matches(ref, tol=TOL, index=0, raw_shape=None):
        """post-check: the case's index-th --output equals ref."""
        def post(r):
            args = r.args
            outs = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--output"]
            return compare(outs[index], ref, tol, raw_shape)
        return post

    def first_out(r):
        return [r.args[i + 1] for i, a in enumerate(r.args[:-1]) if a == "--output"][0]

    cases = []

    def add(name, exe, args, status, pattern, post=None, env=None):
        cases.append(Case(name, exe, args, status, pattern, post, env))

    # ---- weights faults ----
    tensors = st.load_file(W)
    items, data = golden_parts("tiny_cnn")

    def variant(name, mutate, dtype=None):
        t = {k: v.copy() for k, v in tensors.items()}
        mutate(t)
        return write(T(name + ".safetensors"), st.serialize(t, dtype=dtype))

    E = "error: "
    fcw = tensors["fc.weight"]
    missing = variant("missing", lambda t: t.pop("fc.weight"))
    add("weights: missing key", cnn.exe, run_args(missing), 1,
        r"fc\.weight.*(expected|missing|not found)")
    add("weights: missing key (batchnorm running_var)", cnn.exe,
        run_args(variant("missing_var", lambda t: t.pop("block2.down.1.running_var"))), 1,
        r"block2\.down\.1\.running_var.*(not found|missing)")
    add("weights: wrong shape [12, 5] for [5, 12]", cnn.exe,
        run_args(variant("shape", lambda t: t.__setitem__("fc.weight", fcw.reshape(12, 5)))), 1,
        r"fc\.weight.*expected.*\[5, 12\].*found.*\[12, 5\]")
    add("weights: wrong rank [60] for [5, 12]", cnn.exe,
        run_args(variant("rank", lambda t: t.__setitem__("fc.weight", fcw.reshape(60)))), 1,
        r"fc\.weight.*expected.*\[5, 12\].*found.*\[60\]")
    add("weights: wrong shape [4] for [8] (fewer elements)", cnn.exe,
        run_args(variant("short", lambda t: t.__setitem__("stem.bias", t["stem.bias"][:4]))), 1,
        r"stem\.bias.*expected.*\[8\].*found.*\[4\]")
    for dt, npt in (("I64", np.int64), ("F64", np.float64), ("I32", np.int32)):
        add(f"weights: dtype {dt} on a used key", cnn.exe,
            run_args(variant(f"dtype_{dt}", lambda t, npt=npt: t.__setitem__("fc.weight", fcw.astype(npt)))), 1,
            rf"fc\.weight.*expected.*F32.*found {dt}")

    blob = pack(items, data)
    (hlen,) = struct.unpack("<Q", blob[:8])
    add("weights: empty file", cnn.exe, run_args(write(T("empty.safetensors"), b"")), 1,
        r"expected at least 8 bytes.*found 0")
    add("weights: truncated in the header length (5 bytes)", cnn.exe,
        run_args(write(T("cut_len.safetensors"), blob[:5])), 1, r"expected at least 8 bytes.*found 5")
    add("weights: truncated in the header", cnn.exe,
        run_args(write(T("cut_header.safetensors"), blob[:8 + hlen // 2])), 1,
        rf"header length {hlen}\b.*past the end.*\b{hlen // 2}\b")
    add("weights: truncated in the data (last 100 bytes cut)", cnn.exe,
        run_args(write(T("cut_data.safetensors"), blob[:-100])), 1,
        rf"stem_bn\.\w+'?:.*past the data section of {len(data) - 100} bytes")
    add("weights: header length larger than the file", cnn.exe,
        run_args(write(T("hlen_big.safetensors"), pack(items, data, hlen=len(blob)))), 1,
        rf"header length {len(blob)}\b.*past the end.*\b{len(blob) - 8}\b")
    add("weights: header length 2^64-1", cnn.exe,
        run_args(write(T("hlen_max.safetensors"), pack(items, data, hlen=2**64 - 1))), 1,
        r"header length 18446744073709551615\b")
    big_hdr = b"{" + b" " * (101 * 1024 * 1024) + b"}"
    add("weights: header of 101 MiB is over the limit", cnn.exe,
        run_args(write(T("hlen_limit.safetensors"), pack(None, b"", raw_header=big_hdr))), 1,
        r"header length \d+ exceeds the limit")
    add("weights: invalid JSON header", cnn.exe,
        run_args(write(T("badjson.safetensors"), pack(None, data, raw_header=b'{"fc.weight": {"dtype": "F32",'))), 1,
        r"not valid JSON")
    add("weights: header is a JSON array", cnn.exe,
        run_args(write(T("array.safetensors"), pack(None, data, raw_header=b"[1, 2]"))), 1,
        r"expected a JSON object, found (an? )?array")
    add("weights: header of length 0", cnn.exe,
        run_args(write(T("hlen0.safetensors"), struct.pack("<Q", 0) + data)), 1, r"JSON")
    add("weights: deeply nested JSON (100000 levels) does not crash", cnn.exe,
        run_args(write(T("deep.safetensors"), pack(None, data, raw_header=b'{"a":' + b"[" * 100000 + b"]" * 100000
                                                   + b"}"))), 1,
        r"JSON|nest|deep|'a'")
    add("weights: non-UTF-8 / control characters in the header", cnn.exe,
        run_args(write(T("ctrl.safetensors"), pack(None, data, raw_header=b'{"a\x01\xff": 1}'))), 1, r"JSON|'a")
    add("weights: data_offsets past the data section", cnn.exe,
        run_args(write(T("range.safetensors"), pack(modified(items, "fc.weight", data_offsets=[len(data) - 100,
                                                                                                len(data) + 140]),
                                                     data))), 1,
        rf"fc\.weight.*\[{len(data) - 100}, {len(data) + 140}\].*{len(data)}")
    a, b = dict(items)["fc.weight"]["data_offsets"]
    add("weights: data_offsets reversed", cnn.exe,
        run_args(write(T("reversed.safetensors"), pack(modified(items, "fc.weight", data_offsets=[b, a]), data))), 1,
        rf"fc\.weight.*\[{b}, {a}\]")
    add("weights: data_offsets overlapping another tensor", cnn.exe,
        run_args(write(T("overlap.safetensors"), pack(modified(items, "fc.bias", data_offsets=[a, a + 20]), data))), 1,
        r"(fc\.bias.*overlap.*fc\.weight|fc\.weight.*overlap.*fc\.bias)")
    fb0, fb1 = dict(items)["fc.bias"]["data_offsets"]
    add("weights: data_offsets span not matching shape x dtype", cnn.exe,
        run_args(write(T("span.safetensors"), pack(modified(items, "fc.bias", data_offsets=[fb0, fb1 - 4]), data))), 1,
        r"fc\.bias.*16 bytes.*expected 20")
    add("weights: dtype F16 in the header with an F32-sized span", cnn.exe,
        run_args(write(T("span16.safetensors"), pack(modified(items, "fc.bias", dtype="F16"), data))), 1,
        r"fc\.bias.*20 bytes.*expected 10")
    add("weights: shape with a negative dim", cnn.exe,
        run_args(write(T("negdim.safetensors"), pack(modified(items, "fc.bias", shape=[-5]), data))), 1,
        r"fc\.bias.*shape")
    add("weights: entry without data_offsets", cnn.exe,
        run_args(write(T("nooffsets.safetensors"),
                       pack([(k, {kk: vv for kk, vv in v.items() if not (k == "fc.bias" and kk == "data_offsets")})
                             for k, v in items], data))), 1, r"fc\.bias.*data_offsets")
    add("weights: duplicate key", cnn.exe,
        run_args(write(T("dup.safetensors"), pack(items + [("fc.bias", dict(items)["fc.bias"])], data))), 1,
        r"fc\.bias.*duplicate")
    d = T("weights_dir")
    os.mkdir(d)
    add("weights: a directory", cnn.exe, run_args(d), 1, rf"{re.escape(d)}.*(directory|Is a)")
    nx = T("no_such.safetensors")
    add("weights: nonexistent path", cnn.exe, run_args(nx), 1, rf"{re.escape(nx)}.*No such file")
    add("weights: path through a regular file (ENOTDIR)", cnn.exe, run_args(IN + "/w.safetensors"), 1,
        rf"{re.escape(IN)}/w\.safetensors.*Not a directory")
    if os.geteuid() != 0:
        unreadable = write(T("unreadable.safetensors"), blob)
        os.chmod(unreadable, 0)
        add("weights: unreadable file", cnn.exe, run_args(unreadable), 1, r"unreadable.*Permission denied")
    else:
        print("# skip weights: unreadable file (running as root, which reads anything)")
    add("weights: --weights missing altogether", cnn.exe, ["--input", IN, "--output", out()], 2, r"--weights")

    # unused keys are warnings
    def with_extra(t):
        t["stem_bn.num_batches_tracked"] = np.array(7, dtype=np.int64)
        t["extra.tensor"] = np.ones((3, 2), np.float32)
    extra = variant("extra", with_extra)
    add("weights: unused keys (I64 num_batches_tracked, extra F32) are warnings", cnn.exe, run_args(extra), 0,
        r"(?s)(?=.*warning.*stem_bn\.num_batches_tracked)(?=.*warning.*extra\.tensor)", matches(exp))
    many = variant("many", lambda t: t.update({f"unused.{i}": np.zeros(2, np.float32) for i in range(6)}))
    add("weights: six unused keys: a few listed, the rest counted", cnn.exe, run_args(many), 0,
        r"(?s)warning.*unused\.0.*and 3 more", matches(exp))
    api_extra = variant("api_extra", lambda t: t.__setitem__("extra.tensor", np.ones(3, np.float32)))
    odd = items + [("x.f8", {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [len(data), len(data) + 4]})]
    add("weights: unused key of an unknown dtype (F8_E4M3) is a warning", cnn.exe,
        run_args(write(T("f8.safetensors"), pack(odd, data + b"\0" * 4))), 0, r"warning.*x\.f8", matches(exp))
    nl = items + [("bad\nkey", {"dtype": "F32", "shape": [1], "data_offsets": [len(data), len(data) + 4]})]
    add("weights: an unused key with a newline warns on one line", cnn.exe,
        run_args(write(T("nl.safetensors"), pack(nl, data + b"\0" * 4))), 0, r"^warning: unused weight 'bad key'$",
        matches(exp))
    meta = write(T("meta.safetensors"), st.serialize(tensors, metadata={"format": "pt"}))
    add("weights: __metadata__ is ignored", cnn.exe, run_args(meta), 0, r"^(?![\s\S]*warning)", matches(exp))
    # the tensors in reverse order in the data section, header order shuffled: still fine
    rev_items, rev_data, pos = [], b"", 0
    for k, v in reversed(items):
        b0, b1 = v["data_offsets"]
        rev_items.append((k, dict(v, data_offsets=[pos, pos + b1 - b0])))
        rev_data += data[b0:b1]
        pos += b1 - b0
    add("weights: tensors in another order", cnn.exe,
        run_args(write(T("reordered.safetensors"), pack(rev_items, rev_data))), 0, r"^(?![\s\S]*warning)",
        matches(exp))

    # reduced precision: exact conversion, and close to the F32 outputs
    for dt, tol in (("F16", 2e-3), ("BF16", 1e-2)):
        f = variant(dt.lower(), lambda t: None, dtype=dt)
        exact = write(T(dt.lower() + "_as_f32.safetensors"), st.serialize(st.load_file(f)))
        ref_out = out()
        r = run([cnn.exe, "--weights", exact, "--input", IN, "--output", ref_out])
        if r.returncode != 0:
            report(f"weights: {dt} rounded to F32", brief(r))
            continue
        add(f"weights: {dt} loads and is converted exactly (same output as its F32 copy)", cnn.exe, run_args(f), 0,
            None, lambda r, ref_out=ref_out: same_bytes(first_out(r), ref_out))
        add(f"weights: {dt} output within {tol:g} of PyTorch's F32 output", cnn.exe, run_args(f), 0, None,
            matches(exp, tol))
    mixed = T("mixed.safetensors")
    mixed_items, mixed_data, pos = [], b"", 0
    for i, (k, arr) in enumerate(sorted(tensors.items())):
        dt = ("F32", "F16", "BF16")[i % 3]
        _, shape, raw = st._encode(k, arr, dt)  # one tensor's bytes
        mixed_items.append((k, {"dtype": dt, "shape": shape, "data_offsets": [pos, pos + len(raw)]}))
        mixed_data += raw
        pos += len(raw)
    write(mixed, pack(mixed_items, mixed_data))
    add("weights: F32, F16 and BF16 mixed in one file", cnn.exe, run_args(mixed), 0, None, matches(exp, 1e-2))

    # ---- input and output files ----
    x = np.load(IN)
    n = x.size * 4
    raw_in = write(T("in.bin"), x.astype("<f4").tobytes())
    shape_re = r"\[2, 3, 17, 15\]"
    add("input: raw, exact size", cnn.exe, run_args(W, inp=raw_in), 0, None, matches(exp))
    add("input: raw one byte short", cnn.exe, run_args(W, inp=write(T("short.bin"), x.tobytes()[:-1])), 1,
        rf"short\.bin.*expected {n} bytes.*{shape_re}.*found {n - 1}")
    add("input: raw one float long", cnn.exe, run_args(W, inp=write(T("long.bin"), x.tobytes() + b"\0" * 4)), 1,
        rf"long\.bin.*expected {n} bytes.*found {n + 4}")
    add("input: raw empty", cnn.exe, run_args(W, inp=write(T("empty.bin"), b"")), 1,
        rf"empty\.bin.*expected {n} bytes.*found 0")
    wrong = T("wrong_shape.npy")
    np.save(wrong, np.zeros((2, 3, 17, 16), np.float32))
    add("input: .npy of the wrong shape", cnn.exe, run_args(W, inp=wrong), 1,
        rf"wrong_shape\.npy.*expected shape {shape_re}.*found \[2, 3, 17, 16\]")
    flat = T("flat.npy")
    np.save(flat, x.reshape(-1))
    add("input: .npy with the right count but shape [1530]", cnn.exe, run_args(W, inp=flat), 1,
        rf"flat\.npy.*expected shape {shape_re}.*found \[1530\]")
    i4 = T("int.npy")
    np.save(i4, x.astype("<i4"))
    add("input: .npy of dtype <i4", cnn.exe, run_args(W, inp=i4), 1, r"int\.npy.*expected dtype '<f4'.*found '<i4'")
    be = T("bigendian.npy")
    np.save(be, x.astype(">f4"))
    add("input: .npy of dtype >f4 (big-endian)", cnn.exe, run_args(W, inp=be), 1,
        r"bigendian\.npy.*expected dtype '<f4'.*found '>f4'")
    fo = T("fortran.npy")
    np.save(fo, np.asfortranarray(x))
    add("input: .npy in fortran order", cnn.exe, run_args(W, inp=fo), 1, r"fortran\.npy.*fortran_order")
    with open(IN, "rb") as f:
        npy = f.read()
    add("input: .npy with a bad magic", cnn.exe, run_args(W, inp=write(T("magic.npy"), b"\x93NUMPX" + npy[6:])), 1,
        r"magic\.npy.*(magic|not a \.npy)")
    add("input: .npy truncated in the data", cnn.exe, run_args(W, inp=write(T("trunc.npy"), npy[:-10])), 1,
        rf"trunc\.npy.*expected {n} bytes.*found {n - 10}")
    add("input: .npy truncated in the header", cnn.exe, run_args(W, inp=write(T("trunc_h.npy"), npy[:40])), 1,
        r"trunc_h\.npy.*(header|truncated)")
    add("input: .npy of 5 bytes", cnn.exe, run_args(W, inp=write(T("tiny.npy"), npy[:5])), 1,
        r"tiny\.npy.*(truncated|magic|not a \.npy)")
    f8 = T("double.npy")
    np.save(f8, x.astype(np.float64))
    add("input: .npy <f8 is accepted and converted", cnn.exe, run_args(W, inp=f8), 0, None, matches(exp))
    v2 = T("v2.npy")
    with open(v2, "wb") as f:
        np.lib.format.write_array(f, x, version=(2, 0))
    add("input: .npy format version 2.0", cnn.exe, run_args(W, inp=v2), 0, None, matches(exp))
    nxi = T("no_such_input.npy")
    add("input: nonexistent file", cnn.exe, run_args(W, inp=nxi), 1, rf"{re.escape(nxi)}.*No such file")
    add("input: a directory", cnn.exe, run_args(W, inp=d), 1, rf"{re.escape(d)}.*(directory|Is a)")
    bad_out = T("no_such_dir", "out.npy")
    add("output: path in a directory that does not exist", cnn.exe,
        ["--weights", W, "--input", IN, "--output", bad_out], 1, rf"{re.escape(bad_out)}.*No such file")
    add("output: a directory", cnn.exe, ["--weights", W, "--input", IN, "--output", d], 1,
        rf"{re.escape(d)}.*(directory|Is a)")
    add("output: .npy readable by numpy, shape (2, 5), float32", cnn.exe, run_args(W), 0, None, matches(exp))

    def raw_size(r):
        o = first_out(r)
        size = os.path.getsize(o) if os.path.exists(o) else None
        if size != exp.size * 4:
            return f"{o}: {size} bytes, expected {exp.size * 4}"
        return compare(o, exp, raw_shape=exp.shape)
    add("output: raw .bin has exactly 40 bytes and the right values", cnn.exe,
        ["--weights", W, "--input", IN, "--output", out(".bin")], 0, None, raw_size)
    d_in = dec.inputs
    add("two-input model given one --input", dec.exe, ["--weights", dec.weights, "--input", d_in[0],
                                                      "--output", out()], 2, r"2 input")
    add("two-input model given three --input", dec.exe,
        ["--weights", dec.weights, "--input", d_in[0], "--input", d_in[1], "--input", d_in[0], "--output", out()], 2,
        r"2 input.*--input")
    add("two-input model: the inputs in order give PyTorch's output", dec.exe,
        ["--weights", dec.weights, "--input", d_in[0], "--input", d_in[1], "--output", out()], 0, None,
        matches(dec.expected[0]))
    add("two-input model: the inputs swapped is an error naming the shapes", dec.exe,
        ["--weights", dec.weights, "--input", d_in[1], "--input", d_in[0], "--output", out()], 1,
        r"expected shape \[1, 6, 16\].*found \[1, 9, 16\]")
    add("two-output model given three --output", enc.exe,
        ["--weights", enc.weights, "--input", enc.inputs[0], "--output", out(), "--output", out(), "--output", out()],
        2, r"2 output")
    add("two-output model: both outputs match PyTorch's", enc.exe,
        ["--weights", enc.weights, "--input", enc.inputs[0], "--output", out(), "--output", out()], 0, None,
        lambda r: matches(enc.expected[0])(r) or matches(enc.expected[1], index=1)(r))

    # ---- flags of the program ----
    add("--help exits 0 and names the input and output with shapes", cnn.exe, ["--help"], 0,
        r"(?s)image.*f32\[2, 3, 17, 15\].*output.*f32\[2, 5\]")
    add("--help of the two-output model names both outputs", enc.exe, ["--help"], 0,
        r"(?s)f32\[2, 7\].*f32\[2, 24\]")
    add("--help of the two-input model names both inputs", dec.exe, ["--help"], 0,
        r"(?s)target.*f32\[1, 6, 16\].*memory.*f32\[1, 9, 16\]")
    add("unknown option", cnn.exe, ["--weights", W, "--frobnicate", "3"], 2, r"--frobnicate")
    add("unknown option as the last argument", cnn.exe, ["--weights", W, "--frobnicate"], 2, r"--frobnicate")
    add("missing value of --weights", cnn.exe, ["--weights"], 2, r"--weights")
    add("missing value of --input", cnn.exe, ["--weights", W, "--input"], 2, r"--input")
    add("missing value of --bench", cnn.exe, ["--weights", W, "--bench"], 2, r"--bench")
    add("--bench 0 is rejected (the message asks for a positive integer)", cnn.exe, ["--weights", W, "--bench", "0"],
        2, r"--bench.*'0'")
    add("--bench -1 is rejected", cnn.exe, ["--weights", W, "--bench", "-1"], 2, r"--bench.*'-1'")
    add("--bench abc is rejected", cnn.exe, ["--weights", W, "--bench", "abc"], 2, r"--bench.*'abc'")
    add("--bench 3x is rejected", cnn.exe, ["--weights", W, "--bench", "3x"], 2, r"--bench.*'3x'")
    add("--threads 0 is rejected", cnn.exe, ["--weights", W, "--threads", "0"], 2, r"--threads.*'0'")
    add("--threads -2 is rejected", cnn.exe, ["--weights", W, "--threads", "-2"], 2, r"--threads.*'-2'")
    add("--threads abc is rejected", cnn.exe, ["--weights", W, "--threads", "abc"], 2, r"--threads.*'abc'")

    def bench_line(r):
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("bench:")]
        if len(lines) != 1:
            return f"expected one bench line, found {len(lines)}"
        mm = re.fullmatch(r"bench: 3 runs, median (\d+(?:\.\d+)?) ms, min (\d+(?:\.\d+)?) ms", lines[0])
        if not mm:
            return f"bench line {lines[0]!r} does not have the exact format"
        if float(mm.group(2)) > float(mm.group(1)):
            return f"min {mm.group(2)} > median {mm.group(1)}"
        return None
    add("--bench 3 prints the exact bench line", cnn.exe, ["--weights", W, "--input", IN, "--bench", "3"], 0,
        r"^bench: 3 runs, median \d+(\.\d+)? ms, min \d+(\.\d+)? ms$", bench_line)
    add("--bench 3 with --output still writes the right output", cnn.exe, run_args(W, ["--bench", "3"]), 0,
        r"^bench: 3 runs", matches(exp))

    def profile_lines(r):
        ops = [ln for ln in r.stdout.splitlines() if re.match(r"^\d+\s+\S.*\s\d+\.\d+\s+\d+\.\d+\s*$", ln)]
        names = " ".join(ops)
        if len(ops) < 5 or "conv2d" not in names or "linear" not in names:
            return f"expected a line per op (conv2d ... linear), found {len(ops)}"
        return None
    add("--profile prints per-op lines with ms and GFLOP/s and a total", cnn.exe,
        ["--weights", W, "--input", IN, "--profile"], 0, r"(?im)^total\b.*ms", profile_lines)
    add("--profile with --bench 4 and --threads 2", cnn.exe,
        ["--weights", W, "--input", IN, "--profile", "--bench", "4", "--threads", "2"], 0,
        r"(?s)^bench: 4 runs.*^total\b", profile_lines)
    add("without --input the input is pseudo-random and the run succeeds", cnn.exe,
        ["--weights", W, "--output", out()], 0, None)

    for m in (cnn, dec, enc):
        base = ["--weights", m.weights] + sum((["--input", i] for i in m.inputs), [])
        o1 = [out() for _ in m.expected]
        o2 = [out() for _ in m.expected]
        o3 = [out() for _ in m.expected]

        def golden(r, m=m, o1=o1):
            for i, (o, ref) in enumerate(zip(o1, m.expected)):
                e = compare(o, ref)
                if e:
                    return f"output {i}: {e}"
            return None

        def identical(r, o1=o1, other=None):
            for a, b in zip(o1, other):
                e = same_bytes(a, b)
                if e:
                    return e
            return None
        add(f"{m.name} --threads 1 equals PyTorch's outputs within {TOL:g}", m.exe,
            base + sum((["--output", o] for o in o1), []) + ["--threads", "1"], 0, None, golden)
        for t, ot in ((2, o2), (3, o3)):   # 3: parts that split channels unevenly, some maybe empty
            add(f"{m.name} --threads {t} is bit-identical to --threads 1", m.exe,
                base + sum((["--output", o] for o in ot), []) + ["--threads", str(t)], 0, None,
                lambda r, ot=ot, same=identical: same(r, other=ot))
    r1 = out()
    r2 = out()
    add("random input is deterministic (run 1)", cnn.exe, ["--weights", W, "--output", r1], 0, None)
    add("random input is deterministic (run 2, --threads 2)", cnn.exe,
        ["--weights", W, "--output", r2, "--threads", "2"], 0, None, lambda r: same_bytes(r1, r2))

    for c in cases:
        run_case(c)
    cases = []

    # ---- the compiler's outputs ----
    flags_c = run([NNC, "--cflags"])
    flags_l = run([NNC, "--libs"])
    report("nnc --cflags prints one line with -I", None if flags_c.returncode == 0 and
           re.fullmatch(r"\s*-I\S+.*\n?", flags_c.stdout) else brief(flags_c))
    report("nnc --libs prints one line naming the runtime library and -lm", None if flags_l.returncode == 0 and
           "\n" not in flags_l.stdout.strip() and "-lm" in flags_l.stdout else brief(flags_l))
    for opt, pat in (("--version", r"^nnc \d+\.\d+"), ("--help", r"usage")):
        r = run([NNC, opt])
        report(f"nnc {opt} exits 0", None if r.returncode == 0 and re.search(pat, r.stdout, re.M) else brief(r))

    def nnc_usage(name, args, pattern):
        r = run([NNC] + args)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        ok = r.returncode == 2 and len(lines) == 1 and lines[0].startswith("nnc: error: ") and \
            re.search(pattern, lines[0])
        report(name, None if ok else f"expected status 2 and one line 'nnc: error: ...' matching /{pattern}/ -- "
               + brief(r))
    nnc_usage("nnc: unknown option", [cnn.net, "--frobnicate", "-o", T("x.c")], r"--frobnicate")
    nnc_usage("nnc: missing input file", [T("no_such.net"), "-o", T("x.c")], r"no_such\.net")
    nnc_usage("nnc: -o without a value", [cnn.net, "-o"], r"-o")
    nnc_usage("nnc: --embed-weights without --weights", [cnn.net, "--embed-weights", "-o", T("x.c")],
              r"--weights")
    nnc_usage("nnc: --embed-weights= of an unknown type", [cnn.net, "--weights", W, "--embed-weights=f8", "-o", T("x.c")],
              r"f32, f16 or bf16, found 'f8'")

    with open(cnn.h) as f:
        header = f.read()
    need = [r"#define TINY_CNN_ARENA_BYTES \d+", r"#define TINY_CNN_IMAGE_SHAPE \{2, 3, 17, 15\}",
            r"#define TINY_CNN_IMAGE_RANK 4", r"#define TINY_CNN_IMAGE_SIZE 1530",
            r"#define TINY_CNN_OUTPUT_SHAPE \{2, 5\}", r"#define TINY_CNN_OUTPUT_SIZE 10",
            r"tiny_cnn \*tiny_cnn_new\(int", r"int tiny_cnn_load\(", r"int tiny_cnn_load_memory\(",
            r"int tiny_cnn_run\(", r"tiny_cnn_last_error\(", r"void tiny_cnn_free\("]
    miss = [p for p in need if not re.search(p, header)]
    report("header declares NAME_ARENA_BYTES, the shape macros and the API", f"missing {miss}" if miss else None)
    with open(enc.h) as f:
        eh = f.read()
    miss = [p for p in (r"#define TINY_ENCODER_ARENA_BYTES \d+", r"#define TINY_ENCODER_IMAGE_SHAPE \{2, 3, 16, 16\}",
                        r"#define TINY_ENCODER_OUTPUT0?_SHAPE \{2, 7\}", r"#define TINY_ENCODER_OUTPUT1_SHAPE \{2, 24\}")
            if not re.search(p, eh)]
    report("two-output header declares a shape macro per output", f"missing {miss} in {enc.h}" if miss else None)

    compilers = [("clang", CLANG), ("gcc", GCC)]
    builds = []          # (check name, future of build_c): the twelve builds, two at a time
    for m in (cnn, dec, enc):
        for cname, cc in compilers:
            if not cc:
                print(f"# skip {cname}: not installed")
                continue
            for extra in (["-march=native"], ["-march=native", "-pedantic"]):   # C for this machine (--target native)
                builds.append((f"{m.name}.c builds with {cname} {' '.join(WARN_FLAGS + extra)}",
                               POOL.submit(build_c, m.c, T(f"{m.name}_{cname}{len(extra)}"), cc, WARN_FLAGS + extra)))
    for name, future in builds:
        r = future.result()
        report(name, None if r.returncode == 0 else brief(r))

    def direct(name, args, env):
        exe = T(name)
        r = run([NNC, cnn.net, "-o", exe] + args, env=env)
        if r.returncode != 0 or not os.path.exists(exe):
            report(f"nnc -o PROG ({name})", brief(r))
            return None
        o = out()
        r = run([exe, "--weights", W, "--input", IN, "--output", o])
        report(f"nnc -o PROG ({name}) builds a working program",
               (brief(r) if r.returncode != 0 else None) or compare(o, exp))
        return exe
    if CLANG:
        direct("prog_default", [], {"CC": None, "CFLAGS": None})
    if GCC:
        direct("prog_gcc", [], {"CC": "gcc"})
    direct("prog_cflags_O0", [], {"CFLAGS": "-O0 -march=native"})
    direct("prog_generic_O0", ["--target", "generic"], {"CFLAGS": "-O0"})
    r = run([NNC, cnn.net, "-o", T("prog_nocc")], env={"CC": T("no-such-cc")})
    report("nnc -o PROG with a missing $CC fails naming the compiler",
           None if r.returncode != 0 and "no-such-cc" in r.stderr and not os.path.exists(T("prog_nocc"))
           else brief(r))

    # the same program without and with embedded weights, built alike (same $CC and $CFLAGS)
    plain, emb, ref_out = T("prog_plain"), T("prog_embedded"), out()
    r = run([NNC, cnn.net, "-o", plain])
    if r.returncode == 0:
        r = run([plain, "--weights", W, "--input", IN, "--output", ref_out])
    if r.returncode == 0:
        r = run([NNC, cnn.net, "--weights", W, "--embed-weights", "-o", emb])
    if r.returncode != 0:
        report("--embed-weights builds a program", brief(r))
    else:
        o = out()
        r = run([emb, "--input", IN, "--output", o])
        report("--embed-weights: the program runs without --weights and gives the same output",
               (brief(r) if r.returncode != 0 else None) or same_bytes(o, ref_out))
        o = out()
        r = run([emb, "--weights", missing, "--input", IN, "--output", o])
        report("--embed-weights: --weights still loads (and checks) the given file",
               None if r.returncode == 1 and "fc.weight" in r.stderr and not os.path.exists(o) else brief(r))
    # --target generic: the portable kernels, built for the compiler's default CPU, warning-free too
    gen_c = T("generic.c")
    r = run([NNC, cnn.net, "--main", "--target", "generic", "-o", gen_c])
    for cname, cc in compilers:
        if cc and r.returncode == 0:
            rr = build_c(gen_c, T("generic_" + cname), cc, WARN_FLAGS + ["-pedantic"])
            report(f"--target generic C builds with {cname} {' '.join(WARN_FLAGS)} -pedantic and no -march",
                   None if rr.returncode == 0 else brief(rr))
    r = run([NNC, cnn.net, "--main", "--target", "x86-64-v4" if "avx512f" in open("/proc/cpuinfo").read() else "x86-64-v3", "-o", T("wrong.c")])
    rr = build_c(T("wrong.c"), T("wrong"), CC, ["-march=x86-64"])
    report("C generated for an x86-64-v3/v4 target refuses to build for plain x86-64, naming the flags",
           None if rr.returncode != 0 and "-march=x86-64-v" in rr.stderr and "--target generic" in rr.stderr else brief(rr))
    emb_c = T("embedded.c")
    r = run([NNC, cnn.net, "--main", "--weights", W, "--embed-weights", "-o", emb_c])
    if r.returncode == 0:
        builds = []      # (check name, future of build_c), two at a time
        for cname, cc in compilers:
            if cc:
                builds.append((f"--embed-weights C builds with {cname} {' '.join(WARN_FLAGS)} -pedantic",
                               POOL.submit(build_c, emb_c, T("embedded_" + cname), cc, WARN_FLAGS + ["-march=native", "-pedantic"])))
        with open(T("embedded.h")) as f:
            report("--embed-weights header declares tiny_cnn_load_embedded",
                   None if "tiny_cnn_load_embedded(" in f.read() else "not declared")
        # the weights as a C array (OUT.weights.inc) instead of .incbin, and 16-bit weights, warning-free too
        for cname, cc in compilers:
            if cc:
                builds.append((f"--embed-weights C builds with {cname} -DNNC_NO_INCBIN -pedantic",
                               POOL.submit(build_c, emb_c, T("embedded_array_" + cname), cc,
                                           WARN_FLAGS + ["-march=native", "-pedantic", "-DNNC_NO_INCBIN"])))
        for dt in ("f16", "bf16"):
            half_c = T(f"embedded_{dt}.c")
            r = run([NNC, cnn.net, "--main", "--weights", W, f"--embed-weights={dt}", "-o", half_c])
            for cname, cc in compilers:
                if cc and r.returncode == 0:
                    builds.append((f"--embed-weights={dt} C builds with {cname} {' '.join(WARN_FLAGS)} -pedantic",
                                   POOL.submit(build_c, half_c, T(f"embedded_{dt}_{cname}"), cc, WARN_FLAGS + ["-march=native", "-pedantic"])))
            if r.returncode != 0:
                report(f"--embed-weights={dt} -o FILE.c", brief(r))
        for name, future in builds:
            rr = future.result()
            report(name, None if rr.returncode == 0 else brief(rr))
    else:
        report("--embed-weights -o FILE.c", brief(r))
    bad_emb = T("prog_embedded_missing")
    r = run([NNC, cnn.net, "--weights", missing, "--embed-weights", "-o", bad_emb])
    if r.returncode == 0:
        # nnc does not check the weights it embeds; the program must then refuse them at load
        r = run([bad_emb, "--input", IN, "--output", out()])
        report("--embed-weights of a file missing a key: rejected (by nnc or the program) naming the key",
               None if r.returncode == 1 and re.search(r"fc\.weight.*not found", r.stderr) else brief(r))
    else:
        report("--embed-weights of a file missing a key: rejected (by nnc or the program) naming the key",
               None if re.search(r"fc\.weight", r.stderr) else brief(r))

    # ---- the header API from C ----
    api_c = T("api.c")
    with open(api_c, "w") as f:
        f.write(API_C)
    api = T("api")
    lib = T("lib")
    os.mkdir(lib)
    lib_c = os.path.join(lib, "tiny_cnn.c")
    r = run([NNC, cnn.net, "-o", lib_c])
    if r.returncode == 0:
        flags = run([NNC, "--cflags"]).stdout.split() + run([NNC, "--libs"]).stdout.split()
        r = run([CC, OPT, "-march=native"] + WARN_FLAGS + ["-pedantic", "-I", lib, api_c, lib_c, "-o", api] + flags)
    report("API program (tiny_cnn.h + tiny_cnn.c without --main) builds with -pedantic",
           None if r.returncode == 0 else brief(r))
    if r.returncode == 0:
        missing_path = T("no_such_weights.safetensors")
        api_out = T("api_out.bin")
        r = run([api, W, raw_in, api_out, missing_path, api_extra])
        seen = 0
        for line in r.stdout.splitlines():
            if line.startswith("ok - "):
                report(line[5:])
                seen += 1
            elif line.startswith("FAIL - "):
                name, _, detail = line[7:].partition(": ")
                report(name, detail or "failed")
                seen += 1
        if r.returncode not in (0, 1) or seen == 0:
            report("API program ran to the end", brief(r))
        else:
            report("API run's output equals PyTorch's", compare(api_out, exp, raw_shape=exp.shape))

    # ---- the caller's memory: tiny_cnn_init on static buffers, weights loaded or embedded and used in place ----
    owned_c = os.path.join(ROOT, "tests", "program", "owned_memory.c")
    flags = run([NNC, "--cflags"]).stdout.split() + run([NNC, "--libs"]).stdout.split()
    for embedded in (False, True):
        d = T("owned_emb" if embedded else "owned")
        os.mkdir(d)
        gen = [NNC, cnn.net, "-o", os.path.join(d, "tiny_cnn.c")] + (["--weights", W, "--embed-weights"] if embedded else [])
        r = run(gen)
        exe = os.path.join(d, "owned")
        if r.returncode == 0:
            r = run([CC, OPT, "-march=native"] + WARN_FLAGS + ["-pedantic", "-I", d, owned_c, os.path.join(d, "tiny_cnn.c"), "-o", exe]
                    + (["-DEMBEDDED"] if embedded else []) + flags)
        what = "embedded weights in place" if embedded else "weights loaded into the caller's buffer"
        report(f"tiny_cnn_init on static buffers builds ({what})", None if r.returncode == 0 else brief(r))
        if r.returncode == 0:
            o = T("owned_emb.bin" if embedded else "owned.bin")
            r = run([exe] + ([] if embedded else [W]) + [raw_in, o])
            report(f"tiny_cnn_init: no allocation, the output equals PyTorch's ({what})",
                   brief(r) if r.returncode != 0 else compare(o, exp, raw_shape=exp.shape))


    indices(T)


def indices(T):
    """Index tensors (buffer(..., dtype="i64")): I64 and I32 files give numpy's take; an index out of range,
    or floats where indices are wanted, is refused when the weights are loaded (by the program, by nnc with
    --embed-weights, by --reference), naming the key, and writes no output."""
    net = T("gather.net")
    with open(net, "w") as f:
        f.write("model gather(x: f32[2, 5, 3]) {\n"
                "    table = param([7, 3]) as table\n"
                "    i = buffer([2, 4], dtype=\"i64\") as index\n"
                "    return take(x, 1, i) + reshape(take(table, 0, i), [1, 2, 4, 3])\n"
                "}\n")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    table = rng.standard_normal((7, 3)).astype(np.float32)
    idx = np.array([[0, 4, 4, 1], [2, 3, 0, 4]], dtype=np.int64)
    want = np.take(x, idx, axis=1) + np.take(table, idx, axis=0)[None]
    np.save(T("gather_x.npy"), x)
    files = {"i64": (idx, None), "i32": (idx.astype(np.int32), None), "high": (np.where(idx == 4, 5, idx), "index 5"),
             "negative": (np.where(idx == 3, -1, idx), "index -1"), "f32": (idx.astype(np.float32), "I64 or I32")}
    for name, (values, _) in files.items():
        st.save_file({"table": table, "index": values}, T(f"gather_{name}.safetensors"))
    exe = T("gather")
    r = run([NNC, net, "-o", exe])
    report("index tensors: the program builds", None if r.returncode == 0 else brief(r))
    if r.returncode != 0:
        return
    for name, (values, error) in files.items():
        o = T(f"gather_{name}_out.npy")
        r = run([exe, "--weights", T(f"gather_{name}.safetensors"), "--input", T("gather_x.npy"), "--output", o])
        if error is None:
            report(f"index tensors: {name} indices give numpy's take",
                   brief(r) if r.returncode != 0 else compare(o, want))
        else:
            bad = r.returncode != 1 or "'index'" not in r.stderr or error not in r.stderr or os.path.exists(o)
            report(f"index tensors: {name} indices refused on load, naming the key", brief(r) if bad else None)
        ro = T(f"gather_{name}_ref.npy")
        r = run([NNC, net, "--reference", "--weights", T(f"gather_{name}.safetensors"), "--input", T("gather_x.npy"), "--output", ro])
        if error is None:
            report(f"index tensors: --reference with {name} indices", brief(r) if r.returncode != 0 else compare(ro, want))
        else:
            bad = r.returncode != 1 or "'index'" not in r.stderr or error not in r.stderr
            report(f"index tensors: --reference refuses {name} indices", brief(r) if bad else None)
    emb = T("gather_embedded")
    r = run([NNC, net, "--weights", T("gather_i64.safetensors"), "--embed-weights", "-o", emb])
    if r.returncode == 0:
        o = T("gather_embedded_out.npy")
        r = run([emb, "--input", T("gather_x.npy"), "--output", o])
        report("index tensors: embedded indices give numpy's take", brief(r) if r.returncode != 0 else compare(o, want))
    else:
        report("index tensors: embedded indices give numpy's take", brief(r))
    r = run([NNC, net, "--weights", T("gather_high.safetensors"), "--embed-weights", "-o", T("gather_embedded_bad")])
    bad = r.returncode != 1 or "'index'" not in r.stderr or "index 5" not in r.stderr
    report("index tensors: --embed-weights refuses indices out of range", brief(r) if bad else None)


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
