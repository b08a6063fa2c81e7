#!/usr/bin/python3
"""Check that each models/*.net that ports a torchvision model creates exactly the
weight keys and shapes of that model's state_dict (less num_batches_tracked).

usage: tests/models/check_keys.py [--nnc PATH] [MODEL...]

For each file in MODELS (or those named), runs `nnc models/FILE.net --emit weights`,
which prints `KEY [d0, d1, ...]` per line, and compares the set of keys and each
shape with torchvision's. Prints `ok - NAME keys` or `FAIL - NAME keys: ...` per
model, then `N passed, N failed`; exits 1 on any failure.
"""

import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from torch_keys import keys as torch_keys  # noqa: E402

# models/FILE.net -> torchvision.models builder, or (builder, its keyword arguments)
MODELS = {
    "resnet18.net": "resnet18",
    "resnet34.net": "resnet34",
    "resnet50.net": "resnet50",
    "resnet101.net": "resnet101",
    "resnet152.net": "resnet152",
    "vit_b_16.net": "vit_b_16",
    "vit_b_32.net": "vit_b_32",
    "vit_l_16.net": "vit_l_16",
    "alexnet.net": "alexnet",
    "vgg11.net": "vgg11",
    "vgg11_bn.net": "vgg11_bn",
    "squeezenet1_1.net": "squeezenet1_1",
    "mobilenet_v2.net": "mobilenet_v2",
    "mobilenet_v3_small.net": "mobilenet_v3_small",
    "mobilenet_v3_large.net": "mobilenet_v3_large",
    "efficientnet_b0.net": "efficientnet_b0",
    "mnasnet1_0.net": "mnasnet1_0",
    "efficientnet_v2_s.net": "efficientnet_v2_s",
    "shufflenet_v2_x1_0.net": "shufflenet_v2_x1_0",
    "densenet121.net": "densenet121",
    "googlenet.net": ("googlenet", {"aux_logits": False, "init_weights": True}),
    "inception_v3.net": ("inception_v3", {"aux_logits": False, "init_weights": True}),
    "regnet_x_400mf.net": "regnet_x_400mf",
    "regnet_y_400mf.net": "regnet_y_400mf",
    "convnext_tiny.net": "convnext_tiny",
    "resnext50_32x4d.net": "resnext50_32x4d",
    "wide_resnet50_2.net": "wide_resnet50_2",
    "swin_t.net": "swin_t",
    "swin_v2_t.net": "swin_v2_t",
    "maxvit_t.net": "maxvit_t",
}

# Other builders of a family, reached with -D: (models/FILE.net, [NAME=VALUE...], builder). RegNet's
# widths are computed by the .net file from the builder's BlockParams.from_init_params arguments.
VARIANTS = [
    ("regnet_x_400mf.net", ["depth=16", "w_0=56", "w_a=35.73", "w_m=2.28", "group_width=16"], "regnet_x_800mf"),
    ("regnet_x_400mf.net", ["depth=18", "w_0=80", "w_a=34.01", "w_m=2.25", "group_width=24"], "regnet_x_1_6gf"),
    ("regnet_x_400mf.net", ["depth=25", "w_0=88", "w_a=26.31", "w_m=2.25", "group_width=48"], "regnet_x_3_2gf"),
    ("regnet_x_400mf.net", ["depth=23", "w_0=80", "w_a=49.56", "w_m=2.88", "group_width=120"], "regnet_x_8gf"),
    ("regnet_y_400mf.net", ["depth=14", "w_0=56", "w_a=38.84", "w_m=2.4", "group_width=16"], "regnet_y_800mf"),
    ("regnet_y_400mf.net", ["depth=27", "w_0=48", "w_a=20.71", "w_m=2.65", "group_width=24"], "regnet_y_1_6gf"),
    ("regnet_y_400mf.net", ["depth=21", "w_0=80", "w_a=42.63", "w_m=2.66", "group_width=24"], "regnet_y_3_2gf"),
    ("regnet_y_400mf.net", ["depth=17", "w_0=192", "w_a=76.82", "w_m=2.19", "group_width=56"], "regnet_y_8gf"),
    ("swin_t.net", ['variant="s"'], "swin_s"),
    ("swin_t.net", ['variant="b"'], "swin_b"),
    ("swin_v2_t.net", ['variant="s"'], "swin_v2_s"),
    ("swin_v2_t.net", ['variant="b"'], "swin_v2_b"),
]

LINE = re.compile(r"^(\S+) \[((?:-?\d+(?:, -?\d+)*)?)\]$")
SHOW = 5  # keys listed per kind of problem


def nnc_keys(nnc, path, defines=()):
    """[(key, shape)] printed by nnc, or raise RuntimeError with its message."""
    r = subprocess.run([nnc, path, "--emit", "weights"] + [a for d in defines for a in ("-D", d)], capture_output=True, text=True)
    if r.returncode != 0:
        msg = (r.stderr.strip() or r.stdout.strip() or "no output").splitlines()
        raise RuntimeError(f"nnc exited {r.returncode}: " + " | ".join(msg[:4]))
    out = []
    for n, line in enumerate(r.stdout.splitlines(), 1):
        if not line.strip():
            continue
        m = LINE.match(line.strip())
        if not m:
            raise RuntimeError(f"line {n} of nnc's output is not 'KEY [d0, ...]': {line!r}")
        out.append((m.group(1), [int(d) for d in m.group(2).split(", ")] if m.group(2) else []))
    return out


def shorten(items):
    items = list(items)
    more = f" (+{len(items) - SHOW} more)" if len(items) > SHOW else ""
    return ", ".join(items[:SHOW]) + more


def compare(ours, theirs):
    """A list of problems (empty when the keys and shapes agree)."""
    problems = []
    seen = {}
    dups = []
    for k, s in ours:
        if k in seen:
            dups.append(k)
        seen[k] = s
    ref = dict(theirs)
    missing = [k for k in ref if k not in seen]
    extra = [k for k in seen if k not in ref]
    shapes = [f"{k} {seen[k]} (torch {ref[k]})" for k in ref if k in seen and seen[k] != ref[k]]
    if missing:
        problems.append(f"missing {len(missing)}: {shorten(missing)}")
    if extra:
        problems.append(f"extra {len(extra)}: {shorten(extra)}")
    if shapes:
        problems.append(f"shape {len(shapes)}: {shorten(shapes)}")
    if dups:
        problems.append(f"duplicate {len(dups)}: {shorten(dups)}")
    return problems


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nnc", default=os.path.join(ROOT, "build", "nnc"), help="the compiler (default build/nnc)")
    p.add_argument("models", nargs="*", metavar="MODEL", help="names such as resnet50 (default: all)")
    args = p.parse_args(argv)
    chosen = {f: t for f, t in MODELS.items() if not args.models or f[:-4] in args.models}
    unknown = set(args.models) - {f[:-4] for f in MODELS}
    if unknown:
        p.error(f"unknown model(s): {', '.join(sorted(unknown))}")
    passed = failed = 0
    for fname, tv in chosen.items():
        name = fname[:-4]
        path = os.path.join(ROOT, "models", fname)
        try:
            builder, kwargs = tv if isinstance(tv, tuple) else (tv, None)
            problems = compare(nnc_keys(args.nnc, path), torch_keys(builder, kwargs))
        except (RuntimeError, OSError) as e:
            problems = [str(e)]
        if problems:
            failed += 1
            print(f"FAIL - {name} keys: " + "; ".join(problems))
        else:
            passed += 1
            print(f"ok - {name} keys")
        sys.stdout.flush()
    for fname, defines, builder in VARIANTS:
        if args.models and builder not in args.models and fname[:-4] not in args.models:
            continue
        try:
            problems = compare(nnc_keys(args.nnc, os.path.join(ROOT, "models", fname), defines), torch_keys(builder))
        except (RuntimeError, OSError) as e:
            problems = [str(e)]
        if problems:
            failed += 1
            print(f"FAIL - {builder} keys ({fname} -D {' -D '.join(defines)}): " + "; ".join(problems))
        else:
            passed += 1
            print(f"ok - {builder} keys ({fname} -D {' -D '.join(defines)})")
        sys.stdout.flush()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
