#!/usr/bin/python3
"""`make bench`: nnc against PyTorch on this machine, side by side in one run.

For each model: torchvision weights (seeded, from tools/export_torchvision.py) are exported once,
the model is compiled with nnc and built with clang, and both nnc's program and PyTorch (eval mode,
no_grad, the same thread count) run the same batch-1 input N times after a warm-up. Printed: median
milliseconds of each, the ratio (PyTorch time / nnc time: above 1 means nnc is faster), nnc's
GFLOP/s, and that as a percentage of the machine's fp32 peak: one core's rate on an FMA loop
(tools/fma_peak.c, measured at the start of the run) times the thread count. Timings are noisy:
compare the two columns of one run, not runs with each other.

    tools/bench.py [--runs N] [--threads T] [MODEL...]      (default: resnet50 vit_b_16, 2 threads)
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import export_torchvision  # noqa: E402



def sh(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed:\n{r.stderr}")
    return r.stdout


def peak_per_core(out):
    """(GFLOP/s, what it ran: ISA and registers) of one core on tools/fma_peak.c, built with $CC (default
    clang) -O2 -march=native, so with this machine's own vector width."""
    exe = os.path.join(out, "fma_peak")
    cc = os.environ.get("CC", "clang")
    sh([cc, "-O2", "-march=native", "-ffp-contract=fast", os.path.join(ROOT, "tools", "fma_peak.c"), "-o", exe])
    line = sh([exe]).strip()
    m = re.fullmatch(r"([\d.]+) GFLOP/s on (.+)", line)
    if not m:
        sys.exit(f"bench: unexpected output from fma_peak: {line!r}")
    return float(m.group(1)), m.group(2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=["resnet50", "vit_b_16"])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    out = os.path.join(ROOT, "build", "bench")
    os.makedirs(out, exist_ok=True)
    nnc = os.path.join(ROOT, "build", "nnc")
    torch.set_num_threads(args.threads)
    peak, isa = peak_per_core(out)
    print(f"fp32 peak: {peak:.1f} GFLOP/s per core on {isa} (tools/fma_peak.c)", flush=True)
    rows = []
    for name in args.models:
        weights = os.path.join(out, f"{name}.safetensors")
        if not os.path.exists(weights):
            sh([sys.executable, os.path.join(ROOT, "tools", "export_torchvision.py"), name, weights])
        exe = os.path.join(out, name)
        env = dict(os.environ, CFLAGS=os.environ.get("CFLAGS", "-O3 -march=native"))
        r = subprocess.run([nnc, os.path.join(ROOT, "models", f"{name}.net"), "-o", exe], capture_output=True, text=True, env=env)
        if r.returncode != 0:
            sys.exit(f"bench: nnc failed for {name}:\n{r.stderr}")
        line = sh([exe, "--weights", weights, "--bench", str(args.runs), "--threads", str(args.threads)])
        m = re.search(r"bench: (\d+) runs, median ([\d.]+) ms, min ([\d.]+) ms", line)
        nnc_ms = float(m.group(2))
        prof = sh([exe, "--weights", weights, "--profile", "--threads", str(args.threads)])
        gflop = float(re.search(r"([\d.]+) GFLOP,", prof).group(1))

        model = export_torchvision.build_model(name, 0, None, calib_size=64)
        x = torch.randn(1, 3, 224, 224)
        times = []
        with torch.no_grad():
            model(x)
            for _ in range(args.runs):
                t0 = time.perf_counter()
                model(x)
                times.append((time.perf_counter() - t0) * 1000)
        torch_ms = statistics.median(times)
        rate = gflop / (nnc_ms / 1000)
        rows.append((name, nnc_ms, torch_ms, torch_ms / nnc_ms, rate, 100 * rate / (peak * args.threads)))
        print(line.strip(), f"({name})", flush=True)
    print(f"\n{args.threads} threads, batch 1, median of {args.runs} runs; peak {peak:.1f} GFLOP/s per core ({isa.split(':')[0]})")
    print(f"{'model':<12} {'nnc ms':>10} {'PyTorch ms':>11} {'PyTorch/nnc':>12} {'nnc GFLOP/s':>12} {'% of peak':>10}")
    for name, a, b, ratio, rate, pct in rows:
        print(f"{name:<12} {a:>10.1f} {b:>11.1f} {ratio:>12.2f} {rate:>12.1f} {pct:>9.1f}%")


if __name__ == "__main__":
    main()
