#!/usr/bin/python3
"""The README's table of models: for each models/*.net, the lines of .net it takes (its file and the
libraries it imports), the generated C's lines (generated/NAME.c), the time clang -O2 -march=native takes
to compile it, nnc's own time, ops at -O2, arena, lower bound and weights (nnc --stats).

    /usr/bin/python3 tools/model_table.py [--speed build/bench/zoo.json] [NAME...]

With --speed, each model measured by `make bench-zoo` (tools/bench.py --zoo --json) also gets its time at
batch 1 on one thread in nnc and in ONNX Runtime, and their ratio.
"""
import json
import glob
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NNC = os.path.join(ROOT, "build", "nnc")


def size(n):
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}" if n < 100 * scale else f"{n / scale:.0f} {unit}"
    return f"{n} B"


def net_lines(path, seen=None):
    seen = set() if seen is None else seen
    if path in seen:
        return 0
    seen.add(path)
    text = open(path).read()
    n = sum(1 for l in text.splitlines() if l.strip() and not l.strip().startswith("#"))
    for imp in re.findall(r'^import\s+"([^"]+)"', text, re.M):
        n += net_lines(os.path.normpath(os.path.join(os.path.dirname(path), imp)), seen)
    return n


def main():
    args = sys.argv[1:]
    speed = {}
    if args[:1] == ["--speed"]:
        data = json.load(open(args[1]))
        speed = {r["model"]: r["ms"] for r in data["results"] if r["threads"] == 1}
        args = args[2:]
    names = args or sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(ROOT, "models", "*.net")))
    flags = subprocess.run([NNC, "--cflags"], capture_output=True, text=True).stdout.split()
    extra = " nnc, 1 thread | ONNX Runtime | nnc / ORT |" if speed else ""
    print("| model | .net lines | generated C | nnc | clang -O2 | ops at -O2 | arena | lower bound | weights |" + extra)
    print("|---|---|---|---|---|---|---|---|---|" + ("---|---|---|" if speed else ""))
    for name in names:
        net = os.path.join(ROOT, "models", f"{name}.net")
        t = time.time()
        stats = subprocess.run([NNC, net, "--stats", "-o", f"/tmp/model_table_{name}.c"], capture_output=True, text=True).stdout
        t_nnc = time.time() - t
        m = dict(re.findall(r"(\w+)=(\d+)", stats))
        c_lines = sum(1 for _ in open(os.path.join(ROOT, "generated", f"{name}.c")))
        t = time.time()
        subprocess.run(["clang", "-O2", "-march=native", "-c", f"/tmp/model_table_{name}.c", "-o", "/dev/null"] + flags, check=True)
        t_cc = time.time() - t
        cells = ""
        if speed:
            ms = speed.get(name)
            cells = (f" {ms['nnc']:.1f} ms | " + (f"{ms['ort']:.1f} ms | {ms['nnc'] / ms['ort']:.2f} |" if ms.get("ort") else "— | — |")
                     if ms else " — | — | — |")
        print(f"| {name} | {net_lines(net)} | {c_lines:,} lines | {t_nnc:.2f} s | {t_cc:.1f} s | {m['ops']} | {size(int(m['arena_bytes']))} |"
              f" {size(int(m['lower_bound']))} | {size(int(m['weights_bytes']))} |{cells}", flush=True)
        for ext in (".c", ".h"):
            os.remove(f"/tmp/model_table_{name}{ext}")


if __name__ == "__main__":
    main()
