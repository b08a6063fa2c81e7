#!/usr/bin/python3
"""generated/ holds the C that nnc emits for every models/*.net (with --main); check it is current.

Each model is compiled again into a temporary directory and compared byte for byte with the
committed files. A stale file fails with the command that refreshes it: `make generated`.
"""
import filecmp
import glob
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    os.chdir(ROOT)
    nets = sorted(glob.glob("models/*.net"))
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="nnc-gen-") as tmp:
        for net in nets:
            name = os.path.splitext(os.path.basename(net))[0]
            out = os.path.join(tmp, name + ".c")
            r = subprocess.run(["build/nnc", net, "--main", "--target", "generic", "-o", out], capture_output=True, text=True)
            if r.returncode != 0:
                print(f"FAIL - generated {name}: nnc failed: {r.stderr.strip()}")
                failed += 1
                continue
            stale = [ext for ext in (".c", ".h")
                     if not os.path.exists(f"generated/{name}{ext}") or not filecmp.cmp(os.path.join(tmp, name + ext), f"generated/{name}{ext}", shallow=False)]
            if stale:
                print(f"FAIL - generated {name}: generated/{name}{'/'.join(stale)} is stale or missing; run `make generated`")
                failed += 1
            else:
                print(f"ok - generated {name} is current")
                passed += 1
        extra = sorted(set(os.path.splitext(os.path.basename(f))[0] for f in glob.glob("generated/*.[ch]"))
                       - set(os.path.splitext(os.path.basename(n))[0] for n in nets))
        for name in extra:
            print(f"FAIL - generated {name}: no models/{name}.net for it; run `make generated`")
            failed += 1
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
