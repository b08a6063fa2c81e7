#!/usr/bin/python3
"""The bad-input corpus: every tests/errors/NAME.net is a program nnc must reject, and carries the
exact diagnostics it must produce (see tests/errors/README.md).

    tests/errors/run_errors.py                 run every case
    tests/errors/run_errors.py NAME...         run only these cases (NAME or NAME.net)
    tests/errors/run_errors.py --update NAME   rewrite NAME's expectation from nnc's actual output;
                                               then READ it and judge it before keeping it

Each case is run as `build/nnc NAME.net --emit ir ARGS` from inside tests/errors/, with NO_COLOR=1.
The exit status and the whole of stderr must match exactly; stdout must be empty when the expected
exit status is not 0. Prints `ok - NAME` or `FAIL - NAME: detail` (with a unified diff), then
`N passed, N failed`; exits 1 if anything failed. A case with `#! cpu: N` also fails if nnc uses more
than N seconds of CPU time (measured by the kernel, so a loaded machine does not matter); any case
fails if it runs for 10 s (a hang). A crash (a signal) is always a failure.
"""
import difflib
import os
import shlex
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NNC = os.path.join(ROOT, "build", "nnc")
MAX_DIFF_LINES = 40
WALL_TIMEOUT = 60.0      # seconds: a case that runs longer is a hang (generous: a loaded machine, a sanitizer build)


class Case:
    """A case file split into its source and its expectation block (`#!` and `#|` lines)."""

    def __init__(self, name):
        self.name = name
        self.path = os.path.join(HERE, name + ".net")
        with open(self.path, encoding="utf-8", errors="surrogateescape") as f:
            self.lines = f.read().split("\n")
        if self.lines and self.lines[-1] == "":
            self.lines.pop()
        self.error = None
        self.exit = None
        self.args = []
        self.cpu = None          # `#! cpu: N`: at most N seconds of CPU time (load does not count)
        self.stderr = None
        # The block is the leading or the trailing run of `#!`/`#|` lines.
        is_meta = [l.startswith("#!") or l.startswith("#|") for l in self.lines]
        n = len(self.lines)
        if n and is_meta[0]:
            self.at_top = True
            self.lo = 0
            self.hi = next((i for i in range(n) if not is_meta[i]), n)
        else:
            self.at_top = False
            self.hi = n
            self.lo = n
            while self.lo > 0 and is_meta[self.lo - 1]:
                self.lo -= 1
        if self.lo == self.hi:
            self.error = "no expectation block (#! exit N, #! stderr: and #| lines)"
            return
        stray = [i + 1 for i in range(n) if is_meta[i] and not (self.lo <= i < self.hi)]
        if stray:
            self.error = f"'#!'/'#|' lines outside the expectation block (line {stray[0]})"
            return
        stderr = None
        for i in range(self.lo, self.hi):
            line = self.lines[i]
            if line.startswith("#|"):
                if stderr is None:
                    self.error = f"line {i + 1}: '#|' before '#! stderr:'"
                    return
                if line != "#|" and not line.startswith("#| "):
                    self.error = f"line {i + 1}: '#|' must be followed by a space or end the line"
                    return
                stderr.append(line[3:])
                continue
            text = line[2:].strip()
            if text.startswith("exit ") and text[5:].strip().lstrip("-").isdigit():
                self.exit = int(text[5:])
            elif text.startswith("args:"):
                self.args = shlex.split(text[5:])
            elif text.startswith("cpu:") and text[4:].strip().isdigit():
                self.cpu = int(text[4:])
            elif text == "stderr:":
                stderr = []
            else:
                self.error = f"line {i + 1}: unknown directive '{line}'"
                return
        if self.exit is None:
            self.error = "the expectation block has no '#! exit N'"
        elif stderr is None:
            self.error = "the expectation block has no '#! stderr:'"
        else:
            self.stderr = "".join(l + "\n" for l in stderr)

    def command(self):
        cmd = [NNC, self.name + ".net", "--emit", "ir"] + self.args
        if self.cpu:   # the kernel kills nnc (SIGXCPU, then SIGKILL) past the CPU limit
            cmd = ["/bin/sh", "-c", f'ulimit -t {self.cpu} && exec "$0" "$@"'] + cmd
        return cmd

    def wall_timeout(self):
        return max(WALL_TIMEOUT, 5.0 * self.cpu) if self.cpu else WALL_TIMEOUT

    def run(self):
        env = dict(os.environ, NO_COLOR="1")
        start = time.time()
        try:
            p = subprocess.run(self.command(), cwd=HERE, env=env, capture_output=True, timeout=self.wall_timeout())
        except subprocess.TimeoutExpired:
            return None, "", "", time.time() - start
        dec = lambda b: b.decode("utf-8", errors="replace")
        return p.returncode, dec(p.stdout), dec(p.stderr), time.time() - start

    def rewrite(self, code, stderr):
        """The file with its expectation block replaced by one describing (code, stderr)."""
        block = [f"#! exit {code}"]
        if self.args:
            block.append("#! args: " + " ".join(shlex.quote(a) for a in self.args))
        if self.cpu:
            block.append(f"#! cpu: {self.cpu}")
        block.append("#! stderr:")
        body = stderr[:-1] if stderr.endswith("\n") else stderr
        if stderr:
            block += [("#| " + l) if l else "#|" for l in body.split("\n")]
        lines = self.lines[: self.lo] + block + self.lines[self.hi :]
        with open(self.path, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write("\n".join(lines) + "\n")


def check(name):
    """Returns (ok, report lines)."""
    case = Case(name)
    if case.error:
        return False, [f"FAIL - {name}: malformed case: {case.error}"]
    code, out, err, secs = case.run()
    if code is None:
        return False, [f"FAIL - {name}: nnc did not finish within {case.wall_timeout():g} s (a hang?)"]
    problems, detail = [], []
    if code is not None and case.cpu and code in (-signal.SIGXCPU, -signal.SIGKILL):
        problems.append(f"nnc used more than {case.cpu} s of CPU time (the limit of this case)")
    elif code < 0:
        problems.append(f"nnc was killed by signal {-code} (a crash)")
    elif code != case.exit:
        problems.append(f"exit status {code}, expected {case.exit}")
    if err != case.stderr:
        problems.append("stderr differs")
        diff = difflib.unified_diff(case.stderr.splitlines(), err.splitlines(), "expected", "actual", lineterm="", n=2)
        diff = list(diff)
        if len(diff) > MAX_DIFF_LINES:
            diff = diff[:MAX_DIFF_LINES] + [f"... ({len(diff) - MAX_DIFF_LINES} more lines of diff)"]
        detail += ["    " + l for l in diff]
    if case.exit != 0 and out:
        problems.append("stdout is not empty on an error")
        detail += ["    stdout: " + l for l in out.splitlines()[:5]]
    if problems:
        return False, [f"FAIL - {name}: " + "; ".join(problems)] + detail
    return True, [f"ok - {name}"]


def all_cases():
    return sorted(f[:-4] for f in os.listdir(HERE) if f.endswith(".net") and os.path.isfile(os.path.join(HERE, f)))


def update(names):
    for name in names:
        case = Case(name)
        if case.error and not case.error.startswith("no expectation") and "has no" not in case.error:
            sys.exit(f"run_errors.py: {name}: {case.error}")
        # With the block at the top its length shifts the source's line numbers: repeat to a fixed point.
        for _ in range(4):
            code, out, err, _secs = case.run()
            if code is None:
                sys.exit(f"run_errors.py: {name}: nnc did not finish within {case.wall_timeout():g} s")
            if code < 0:
                sys.exit(f"run_errors.py: {name}: nnc was killed by signal {-code}; nothing recorded")
            if case.exit == code and case.stderr == err:
                break
            case.rewrite(code, err)
            case = Case(name)
        print(f"updated {name}.net: exit {code}, {len(err.splitlines())} lines of stderr -- now read them and judge them:")
        sys.stdout.write("".join("    " + l + "\n" for l in err.splitlines()))


def main(argv):
    if not os.access(NNC, os.X_OK):
        print(f"FAIL - errors: {NNC} is missing; run make first")
        print("0 passed, 1 failed")
        return 1
    if argv and argv[0] == "--update":
        if len(argv) < 2:
            sys.exit("usage: run_errors.py --update NAME...")
        update([a[:-4] if a.endswith(".net") else a for a in argv[1:]])
        return 0
    names = [a[:-4] if a.endswith(".net") else a for a in argv] or all_cases()
    missing = [n for n in names if not os.path.isfile(os.path.join(HERE, n + ".net"))]
    if missing:
        sys.exit(f"run_errors.py: no such case: {', '.join(missing)}")
    passed = failed = 0
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 2) * 2)) as pool:
        for ok, report in pool.map(check, names):
            print("\n".join(report), flush=True)
            passed += ok
            failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
