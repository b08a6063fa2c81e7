#!/usr/bin/python3
"""`make bench`: nnc against ONNX Runtime and PyTorch on this machine, side by side in one run.

For each model the same weights (torchvision's architecture with seeded weights from
tools/export_torchvision.py, or the trained Fashion-MNIST ResNet-18) run in four engines on the same
input, at each thread count:

  nnc          the model's .net compiled by nnc (--target native, or --target T) and built with
               $CC $CFLAGS (default clang -O3 -march=native, or T's flags in compiler/targets.def);
               the program's own --bench;
  ONNX Runtime npm's onnxruntime-node (its CPU library), installed with --ignore-scripts into
               build/ort, on the model exported by torch.onnx.export (opset 14), all graph
               optimisations on;
  PyTorch best torch.jit.optimize_for_inference(torch.jit.script(model));
  eager        the module itself, under no_grad.

The engines take turns (--rounds rounds of --runs runs each, interleaved, so that a machine that
slows down mid-run slows all of them); each figure is the median of the rounds' medians. Printed:
milliseconds, nnc's time over ONNX Runtime's (below 1 means nnc is faster; for a model with Winograd
layers also that of nnc built with --no-winograd, "direct/ORT"), nnc's GFLOP/s and that as
a percentage of the machine's fp32 peak: one core's rate on tools/fma_peak.c (12 independent FMA
chains of this CPU's widest registers, measured at the start) times the thread count. As many copies
of fma_peak as the most threads also run at once, at the start and at the end: where they make fewer
cores than threads, the machine (a hypervisor) shared its cores, and the figures of several threads say
little. Timings are noisy: compare the columns of one run, not runs with each other. Nothing here is a
test.

    tools/bench.py [--runs N] [--rounds R] [--threads 1,2] [--target T] [MODEL...]
                   (default: resnet50 vit_b_16 fashion_resnet18, 1 and 2 threads)
    tools/bench.py --zoo [--nnc-ort-only] [--json FILE] ...
                   every classification family of models/ (`make bench-zoo`: 1 thread, nnc and ONNX Runtime
                   only, the figures into build/bench/zoo.json for tools/model_table.py --speed)
    tools/bench.py --target x86-64-v3 ...
                   nnc's AVX2 path, on a machine that has AVX-512 too (the peak is then fma_peak's on ymm;
                   ONNX Runtime still picks its own kernels for the CPU)
"""
import argparse
import datetime
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import export_torchvision  # noqa: E402

OUT = os.path.join(ROOT, "build", "bench")
ORT_DIR = os.path.join(ROOT, "build", "ort")
ORT_VERSION = "1.30.0"
NNC = os.path.join(ROOT, "build", "nnc")
SLOW_MS = 2000   # a PyTorch run slower than this is timed twice a round, not --runs times


def sh(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed:\n{r.stderr}")
    return r.stdout


def march(target):
    """The flags a build for nnc's --target uses, as compiler/targets.def gives them (native: -march=native)."""
    if target == "native":
        return "-march=native"
    rows = re.findall(r'^TARGET\(\w+,\s*"([^"]+)",\s*\w+,\s*"[^"]*",\s*"([^"]*)"', open(os.path.join(ROOT, "compiler", "targets.def")).read(), re.M)
    flags = dict(rows).get(target)
    if flags is None:
        sys.exit(f"bench: unknown --target {target}; known: native, {', '.join(n for n, _ in rows)}")
    return flags


def peak_per_core(target):
    """(GFLOP/s, what it ran) of one core on tools/fma_peak.c built for the target (native: this machine)."""
    exe = os.path.join(OUT, "fma_peak")
    cc = os.environ.get("CC", "clang")
    sh([cc, "-O2", *march(target).split(), "-ffp-contract=fast", os.path.join(ROOT, "tools", "fma_peak.c"), "-o", exe])
    line = sh([exe]).strip()
    m = re.fullmatch(r"([\d.]+) GFLOP/s on (.+)", line)
    if not m:
        sys.exit(f"bench: unexpected output from fma_peak: {line!r}")
    return float(m.group(1)), m.group(2)


def cores_together(n):
    """The summed GFLOP/s of n copies of fma_peak (built by peak_per_core) run at once: n times one core's
    where the machine gives each thread a core of its own, less where a hypervisor puts two of them on one
    physical core (seen on a 2-vCPU KVM guest: 173 + 173 in one trial, 89 + 89 in the next)."""
    exe = os.path.join(OUT, "fma_peak")
    procs = [subprocess.Popen([exe], stdout=subprocess.PIPE, text=True) for _ in range(n)]
    outs = [p.communicate()[0] for p in procs]
    return sum(float(re.match(r"([\d.]+) GFLOP/s", o.strip()).group(1)) for o in outs)


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


# ---- the models: name -> (the .net, nnc's -D, input shape, a function building the torch module)

def fashion_module():
    import numpy as np
    import train_fashion
    from safetensors import load_file
    m = train_fashion.build_model()
    tensors = load_file(os.path.join(ROOT, "models", "weights", "fashion_resnet18.safetensors"))
    m.load_state_dict({k: torch.from_numpy(v.astype(np.float32) if v.dtype == np.float16 else v) for k, v in tensors.items()})
    return m.eval()


MODELS = {
    "resnet50": ("resnet50", [], (1, 3, 224, 224), None),
    "vit_b_16": ("vit_b_16", [], (1, 3, 224, 224), None),
    "fashion_resnet18": ("fashion_resnet18", ["-D", "batch=64"], (64, 1, 28, 28), fashion_module),
}

# One model of each torchvision classification family with a .net in models/ (at its .net's default input
# size, torchvision's own), for --zoo.
ZOO = ["alexnet", "vgg11", "vgg11_bn", "squeezenet1_1", "resnet18", "resnet50", "densenet121", "googlenet", "inception_v3",
       "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "mnasnet1_0", "shufflenet_v2_x1_0", "efficientnet_b0",
       "efficientnet_v2_s", "regnet_x_400mf", "regnet_y_400mf", "convnext_tiny", "vit_b_16", "swin_t", "swin_v2_t", "maxvit_t",
       "resnext50_32x4d", "wide_resnet50_2"]
def _net_size(name):
    """The input size a model's .net declares (`let size = N`), torchvision's own for the family."""
    m = re.search(r"^let size = (\d+)", open(os.path.join(ROOT, "models", f"{name}.net")).read(), re.M)
    return int(m.group(1)) if m else 224


for _name in ZOO:
    if _name not in MODELS and os.path.exists(os.path.join(ROOT, "models", f"{_name}.net")):
        MODELS[_name] = (_name, [], (1, 3, _net_size(_name), _net_size(_name)), None)


def torch_module(name, build):
    if build:
        return build()
    # (batch norm statistics measured on a small input; Inception's stem needs 75 pixels, MaxViT its 224)
    return export_torchvision.build_model(name, 0, None, calib_size={"inception_v3": 75, "maxvit_t": 224}.get(name, 64)).eval()


def weights_for(name, module):
    path = os.path.join(OUT, f"{name}.safetensors")
    if name == "fashion_resnet18":
        return os.path.join(ROOT, "models", "weights", "fashion_resnet18.safetensors")
    if not os.path.exists(path):
        sh([sys.executable, os.path.join(ROOT, "tools", "export_torchvision.py"), name, path])
    return path


# ---- ONNX Runtime

def ort_available():
    """None when onnxruntime-node is installed in build/ort (installing it if npm can), else why not."""
    if os.path.isdir(os.path.join(ORT_DIR, "node_modules", "onnxruntime-node")):
        return None
    if not shutil.which("node") or not shutil.which("npm"):
        return "node and npm are not installed (apt-get install nodejs npm)"
    os.makedirs(ORT_DIR, exist_ok=True)
    r = subprocess.run(["npm", "install", "--prefix", ORT_DIR, "--ignore-scripts", "--no-audit", "--no-fund",
                        f"onnxruntime-node@{ORT_VERSION}"], capture_output=True, text=True)
    if r.returncode != 0:
        return "npm install onnxruntime-node failed: " + r.stderr.strip().splitlines()[-1:][0] if r.stderr.strip() else "npm failed"
    return None


def onnx_file(name, module, shape):
    """The model exported for ONNX Runtime, or None (and why) when torch.onnx.export cannot export it."""
    path = os.path.join(OUT, f"{name}.onnx")
    if not os.path.exists(path):
        # with gradients on, nn.MultiheadAttention takes its exportable path, not the fused CPU kernel
        try:
            with torch.enable_grad():
                torch.onnx.export(module, torch.zeros(shape), path, opset_version=14, input_names=["input"], output_names=["output"])
        except Exception as e:  # noqa: BLE001 - the row then says why ONNX Runtime has no figure
            if os.path.exists(path):
                os.remove(path)
            return None, str(e).strip().splitlines()[0][:100]
    return path, None


def ort_ms(path, threads, runs, shape):
    env = dict(os.environ, NODE_PATH=os.path.join(ORT_DIR, "node_modules"))
    line = sh(["node", os.path.join(ROOT, "tools", "ort_bench.js"), path, str(threads), str(runs), ",".join(map(str, shape))], env=env)
    return float(re.search(r"median ([\d.]+) ms", line).group(1))


# ---- PyTorch

def torch_ms(module, x, runs):
    with torch.no_grad():
        t0 = time.perf_counter()
        module(x)
        first = (time.perf_counter() - t0) * 1000
        times = []
        for _ in range(2 if first > SLOW_MS else runs):
            t0 = time.perf_counter()
            module(x)
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def scripted(module, x):
    """PyTorch's fastest inference of the module: TorchScript (scripted, else traced) frozen and optimised."""
    try:
        return torch.jit.optimize_for_inference(torch.jit.script(module)), None
    except Exception as e:  # noqa: BLE001 - a module TorchScript cannot script is traced instead
        why = next((l.strip() for l in str(e).splitlines() if l.strip()), type(e).__name__)[:80]
    try:
        with torch.no_grad():
            return torch.jit.optimize_for_inference(torch.jit.trace(module, x)), f"traced (scripting failed: {why})"
    except Exception as e:  # noqa: BLE001 - then there is no such column for this model
        return None, f"not measured: {str(e).strip().splitlines()[0][:80]}"


# ---- nnc

def nnc_program(name, net, defines, target, suffix=""):
    exe = os.path.join(OUT, f"{name}_nnc{suffix}")
    env = dict(os.environ, CFLAGS=os.environ.get("CFLAGS", f"-O3 {march(target)}"))
    defines = defines + ["--target", target]
    r = subprocess.run([NNC, os.path.join(ROOT, "models", f"{net}.net"), "-o", exe] + defines, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"bench: nnc failed for {name}:\n{r.stderr}")
    ir = sh([NNC, os.path.join(ROOT, "models", f"{net}.net"), "--emit", "ir"] + defines)
    target = re.search(r"target (\S+)", ir.splitlines()[0]).group(1)
    kernels = sorted(set(re.findall(r"nnk_f32_gemm_ukernel_\w+", ir)))
    kernels += [name for name, mark in (("direct NCHW16c convolutions", "[direct nchw16c"), ("Winograd F(4x4, 3x3)", "[winograd F(4x4"),
                                        ("Winograd F(2x2, 3x3)", "[winograd F(2x2"), ("depthwise rows", "[dwconv")) if mark in ir]
    return exe, target, kernels


def nnc_ms(exe, weights, threads, runs):
    line = sh([exe, "--weights", weights, "--bench", str(runs), "--threads", str(threads)])
    return float(re.search(r"median ([\d.]+) ms", line).group(1))


def nnc_gflop(exe, weights):
    prof = sh([exe, "--weights", weights, "--profile", "--threads", "1"])
    return float(re.search(r"([\d.]+) GFLOP,", prof).group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=["resnet50", "vit_b_16", "fashion_resnet18"])
    ap.add_argument("--runs", type=int, default=5, help="runs per engine per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    ap.add_argument("--zoo", action="store_true", help="every family of models/ with a torchvision builder")
    ap.add_argument("--target", default="native", help="nnc's --target (x86-64-v3 measures the AVX2 path on an AVX-512 machine)")
    ap.add_argument("--nnc-ort-only", action="store_true", help="measure nnc and ONNX Runtime only (no PyTorch)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--append", action="store_true", help="with --json: keep that file's figures for the models not run now")
    args = ap.parse_args()
    if args.zoo:
        args.models = [m for m in ZOO if m in MODELS]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        sys.exit(f"bench: unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    thread_counts = [int(t) for t in args.threads.split(",")]
    os.makedirs(OUT, exist_ok=True)
    peak, isa = peak_per_core(args.target)
    why_no_ort = ort_available()
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; {datetime.date.today().isoformat()}")
    print(f"fp32 peak: {peak:.1f} GFLOP/s per core on {isa} (tools/fma_peak.c)")
    most = max(thread_counts)
    start = cores_together(most) if most > 1 else None
    if start:
        print(f"{most} copies of fma_peak at once: {start:.1f} GFLOP/s ({start / peak:.2f} cores)")
    if why_no_ort:
        print(f"ONNX Runtime: not measured: {why_no_ort}")
    results = []
    for name in args.models:
        net, defines, shape, build = MODELS[name]
        module = torch_module(name, build)
        weights = weights_for(name, module)
        exe, target, kernels = nnc_program(name, net, defines, args.target)
        # where Winograd runs, nnc with direct convolutions only too (--no-winograd)
        direct = nnc_program(name, net, defines + ["--no-winograd"], args.target, "_direct")[0] if any(k.startswith("Winograd") for k in kernels) else None
        gflop = nnc_gflop(exe, weights)
        x = torch.randn(shape)
        best, why_not_scripted = (None, "not measured (--nnc-ort-only)") if args.nnc_ort_only else scripted(module, x)
        onnx, why_no_onnx = (None, why_no_ort) if why_no_ort else onnx_file(name, module, shape)
        if why_no_onnx and not why_no_ort:
            print(f"{name}: ONNX Runtime not measured: torch.onnx.export failed: {why_no_onnx}")
        print(f"{name}: nnc --target {target} ({', '.join(kernels) or 'no blocked products'}), {gflop:.2f} GFLOP per run"
              + (f"; TorchScript: {why_not_scripted}" if why_not_scripted else ""), flush=True)
        for t in thread_counts:
            torch.set_num_threads(t)
            samples = {"nnc": [], "direct": [], "ort": [], "best": [], "eager": []}
            for _ in range(args.rounds):
                samples["nnc"].append(nnc_ms(exe, weights, t, args.runs))
                if direct:
                    samples["direct"].append(nnc_ms(direct, weights, t, args.runs))
                if onnx:
                    samples["ort"].append(ort_ms(onnx, t, args.runs, shape))
                if best is not None:
                    samples["best"].append(torch_ms(best, x, args.runs))
                if not args.nnc_ort_only:
                    samples["eager"].append(torch_ms(module, x, args.runs))
            med = {k: statistics.median(v) if v else None for k, v in samples.items()}
            results.append((name, shape[0], t, med, gflop))
            print(f"  {t} thread(s): " + ", ".join(f"{k} {v:.1f} ms" for k, v in med.items() if v is not None), flush=True)

    print(f"\nmedians of {args.rounds} interleaved rounds of {args.runs} runs; peak {peak:.1f} GFLOP/s per core ({isa.split(':')[0]})")
    if start:
        end = cores_together(most)
        print(f"{most} copies of fma_peak at once, at the start and at the end: {start / peak:.2f} and {end / peak:.2f} cores"
              + (" (fewer than the threads: the machine shared its cores, and the figures of several threads say little)"
                 if min(start, end) < 0.9 * most * peak else ""))
    print(f"{'model':<17} {'batch':>5} {'thr':>3} {'nnc ms':>9} {'ORT ms':>9} {'nnc/ORT':>8} {'direct/ORT':>11} {'PyTorch best':>13}"
          f" {'eager':>9} {'nnc GFLOP/s':>12} {'% of peak':>10}")
    fmt = lambda v, w, p=1: f"{v:>{w}.{p}f}" if v is not None else f"{'-':>{w}}"  # noqa: E731
    for name, batch, t, med, gflop in results:
        rate = gflop / (med["nnc"] / 1000)
        ratio = med["nnc"] / med["ort"] if med["ort"] else None
        direct_ratio = med["direct"] / med["ort"] if med.get("direct") and med["ort"] else None
        print(f"{name:<17} {batch:>5} {t:>3} {fmt(med['nnc'], 9)} {fmt(med['ort'], 9)} {fmt(ratio, 8, 2)} {fmt(direct_ratio, 11, 2)}"
              f" {fmt(med['best'], 13)} {fmt(med['eager'], 9)} {rate:>12.1f} {100 * rate / (peak * t):>9.1f}%")
        if batch > 1:
            print(f"{'':<17} {'':>5} {'':>3} {batch * 1000 / med['nnc']:>9.0f} images/s with nnc"
                  + (f", {batch * 1000 / med['ort']:.0f} with ONNX Runtime" if med["ort"] else ""))
    if args.json:
        import json
        if args.append and os.path.exists(args.json):   # the figures of an earlier run for other models stay
            with open(args.json) as f:
                old = [r for r in json.load(f)["results"] if r["model"] not in args.models]
            results = [(r["model"], r["batch"], r["threads"], r["ms"], r["gflop"]) for r in old] + results
        with open(args.json, "w") as f:
            json.dump({"machine": cpu_name(), "date": datetime.date.today().isoformat(), "peak": peak, "isa": isa,
                       "results": [{"model": n, "batch": b, "threads": t, "ms": m, "gflop": g} for n, b, t, m, g in results]}, f, indent=1)


if __name__ == "__main__":
    main()
