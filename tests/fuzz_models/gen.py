#!/usr/bin/python3
"""
gen.py — random valid .net models, in the spirit of Csmith and NNSmith, for differential testing
(tests/fuzz_models/run.py compares nnc's programs at -O0 and -O2, on 1 and 3 threads, with its reference
evaluator).

A model is a DAG of 2-20 statements over every builtin and operator of the language, each with random
valid attributes and the edge cases that matter to a compiler: odd and size-1 dimensions, stride larger
than the kernel, dilation, groups and depthwise convolutions, asymmetric padding, broadcasting across
ranks, negative axes, slices with steps and clamped or negative bounds, take, expand, params and views of
params (a slice or take of a weight), several inputs and outputs, outputs that are inputs, weights or
repeats, one op reading two views of the same tensor, and chains of elementwise ops (in-place candidates);
reductions over axes, roll, where and masked_fill, and attention with an additive or boolean attn_mask.
Comparisons read only model inputs and params, whose values every build holds bit for bit (a comparison
of computed values could flip on a rounding).

The generator tracks every shape with nnc's own rules (compiler/shape.c), so every model it makes is one
nnc must accept: a rejection is a bug of the generator or of nnc, never something to skip. Denominators
are kept away from zero (x / (sigmoid(y) + 0.5)) and batch-norm variances positive (run.py's weights), so
that no model computes NaN or inf by itself.

    from gen import generate
    m = generate(seed)            # a Model
    text = m.to_net()             # the .net source
    m2 = Model.from_json(m.to_json())

    /usr/bin/python3 tests/fuzz_models/gen.py SEED      # print one model
"""
import json
import math
import random
import re
import sys

MAX_NUMEL = 1536          # elements per tensor: keeps every program and the reference fast
MAX_WORK = 150000         # multiply-adds per layer


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def fmt(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt(e) for e in v) + "]"
    return str(v)


def broadcast(a, b):
    r = max(len(a), len(b))
    a = (1,) * (r - len(a)) + tuple(a)
    b = (1,) * (r - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        if x != y and x != 1 and y != 1:
            return None
        out.append(y if x == 1 else x)
    return tuple(out)


def divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


class Stmt:
    def __init__(self, name, expr, shape, deps, red=0, weights=0):
        self.name = name
        self.expr = expr          # .net expression; names of other statements and inputs appear as themselves
        self.shape = tuple(shape)
        self.deps = list(deps)    # the names it reads
        self.red = red            # the longest reduction in it (for run.py's tolerance)
        self.weights = weights    # floats of weights it creates


class Model:
    def __init__(self, seed):
        self.seed = seed
        self.inputs = []          # [(name, shape)]
        self.stmts = []           # [Stmt], in order
        self.outputs = []         # [name]

    # ---- text ----
    def to_net(self, header=""):
        lines = [f"# {line}" if line else "#" for line in header.split("\n")] if header else []
        lines.append(f"# fuzz-seed: {self.seed}")
        decl = ", ".join(f"{n}: f32{fmt(list(s))}" for n, s in self.inputs)
        lines.append(f"model fuzz({decl}) {{")
        for s in self.stmts:
            lines.append(f"    {s.name} = {s.expr}    # {fmt(list(s.shape))}")
        lines.append("    return " + ", ".join(self.outputs))
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_json(self):
        return json.dumps({"seed": self.seed, "inputs": [[n, list(s)] for n, s in self.inputs],
                           "stmts": [[s.name, s.expr, list(s.shape), s.deps, s.red, s.weights] for s in self.stmts],
                           "outputs": self.outputs})

    @staticmethod
    def from_json(text):
        d = json.loads(text)
        m = Model(d["seed"])
        m.inputs = [(n, tuple(s)) for n, s in d["inputs"]]
        m.stmts = [Stmt(*s) for s in d["stmts"]]
        m.outputs = list(d["outputs"])
        return m

    def copy(self):
        return Model.from_json(self.to_json())

    def shape_of(self, name):
        for n, s in self.inputs:
            if n == name:
                return s
        for s in self.stmts:
            if s.name == name:
                return s.shape
        raise KeyError(name)

    def max_reduction(self):
        return max([s.red for s in self.stmts] + [1])

    def depth(self):
        """The longest chain of statements from an input to an output."""
        d = {n: 0 for n, _ in self.inputs}
        for s in self.stmts:
            d[s.name] = 1 + max([d.get(x, 0) for x in s.deps] + [0])
        return max([d.get(o, 0) for o in self.outputs] + [1])

    # ---- reduction steps (run.py's delta debugging): each returns a new, still valid model or None ----
    def prune(self):
        """Drops statements no output needs and inputs nothing reads."""
        need = set(self.outputs)
        keep = []
        for s in reversed(self.stmts):
            if s.name in need:
                keep.append(s)
                need.update(s.deps)
        m = self.copy()
        m.stmts = [Stmt(s.name, s.expr, s.shape, s.deps, s.red, s.weights) for s in reversed(keep)]
        m.inputs = [(n, s) for n, s in self.inputs if n in need]
        return m

    def drop_output(self, i):
        if len(self.outputs) < 2:
            return None
        m = self.copy()
        del m.outputs[i]
        return m.prune()

    def output_operand(self, i, dep):
        """Output i replaced by an operand of the statement that computes it."""
        m = self.copy()
        m.outputs[i] = dep
        return m.prune()

    def as_input(self, name):
        """Statement `name` replaced by a new model input of its shape (what computes it is cut away)."""
        shape = self.shape_of(name)
        if len(shape) == 0:
            return None
        m = self.copy()
        m.stmts = [s for s in m.stmts if s.name != name]
        m.inputs.append((name, shape))
        return m.prune()

    def bypass(self, name, dep):
        """Statement `name` removed, its readers reading its operand `dep` (of the same shape) instead."""
        if self.shape_of(name) != self.shape_of(dep):
            return None
        m = self.copy()
        m.stmts = [s for s in m.stmts if s.name != name]
        pat = re.compile(r"\b%s\b" % re.escape(name))
        for s in m.stmts:
            if name in s.deps:
                s.expr = pat.sub(dep, s.expr)
                s.deps = [dep if d == name else d for d in s.deps]
        m.outputs = [dep if o == name else o for o in m.outputs]
        return m.prune()


# ---------------------------------------------------------------------------------------------------

class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.m = Model(seed)
        self.pool = []            # names usable as operands (rank >= 1)
        self.shapes = {}
        self.n_tmp = 0
        self.n_w = 0
        self.ops = 0
        self.used = set()         # names some statement reads

    # ---- bookkeeping ----
    def new_input(self, shape):
        name = f"in{len(self.m.inputs)}"
        self.m.inputs.append((name, tuple(shape)))
        self.pool.append(name)
        self.shapes[name] = tuple(shape)
        return name

    def add(self, expr, shape, deps, red=0, weights=0, pool=True):
        self.n_tmp += 1
        name = f"t{self.n_tmp}"
        self.m.stmts.append(Stmt(name, expr, shape, deps, red, weights))
        self.used.update(deps)
        self.shapes[name] = tuple(shape)
        if pool and len(shape) > 0:
            self.pool.append(name)
        self.ops += 1
        return name

    def wname(self, prefix="l"):
        self.n_w += 1
        return f"{prefix}{self.n_w}"

    def rand_shape(self, rank=None):
        r = self.r
        rank = rank if rank is not None else r.choice([1, 2, 2, 3, 3, 4, 4, 4])
        while True:
            s = tuple(r.choice([1, 2, 3, 3, 4, 5, 6, 7]) for _ in range(rank))
            if numel(s) <= MAX_NUMEL // 2:
                return s

    def pick(self, pred=lambda s: True, recent=True):
        """A random operand whose shape satisfies pred, the ones nothing reads yet and the recent ones likelier
        (a connected DAG with deep chains), or None."""
        cands = [n for n in self.pool if pred(self.shapes[n])]
        if not cands:
            return None
        unread = [n for n in cands if n not in self.used]
        if unread and self.r.random() < 0.6:
            cands = unread
        if recent and self.r.random() < 0.7:
            return cands[-1 - min(int(self.r.expovariate(0.8)), len(cands) - 1)]
        return self.r.choice(cands)

    def tensor(self, pred, make_shape):
        """An operand satisfying pred: an existing one, or one made for the purpose."""
        x = self.pick(pred)
        if x is not None and self.r.random() < 0.85:
            return x
        return self.make(make_shape())

    def make(self, shape):
        """A tensor of exactly this shape: an existing one, a new input, a param (or a view of one), or a
        reshape of an existing tensor of the same size."""
        shape = tuple(shape)
        r = self.r
        same = [n for n in self.pool if self.shapes[n] == shape]
        if same and r.random() < 0.5:
            return r.choice(same)
        resh = [n for n in self.pool if numel(self.shapes[n]) == numel(shape)]
        c = r.random()
        if resh and c < 0.35:
            x = r.choice(resh)
            spec = list(shape)
            if len(spec) > 1 and r.random() < 0.5:
                spec[r.randrange(len(spec))] = -1
            return self.add(f"reshape({x}, {fmt(spec)})", shape, [x])
        if len(self.m.inputs) < 4 and c < 0.6:
            return self.new_input(shape)
        if c < 0.8:
            return self.param_view(shape)
        return self.add(f"param({fmt(list(shape))}) as {self.wname('p')}", shape, [], weights=numel(shape))

    def param_view(self, shape):
        """A view of a larger param with this shape: take(p, axis, i) or a slice with a start > 0 (a weight
        read at an offset)."""
        r = self.r
        axis = r.randrange(len(shape) + 1) if r.random() < 0.5 else 0
        if r.random() < 0.5:   # take: the param has one more axis
            n = r.randint(2, 4)
            pshape = shape[:axis] + (n,) + shape[axis:]
            p = self.add(f"param({fmt(list(pshape))}) as {self.wname('p')}", pshape, [], weights=numel(pshape))
            idx = r.randint(1, n - 1)
            if r.random() < 0.3:
                idx -= n
            return self.add(f"take({p}, {self.axis_text(axis, len(pshape))}, {idx})", shape, [p])
        axis = min(axis, len(shape) - 1)
        step = r.choice([1, 1, 2])
        start = r.randint(1, 3)
        pshape = list(shape)
        pshape[axis] = start + (shape[axis] - 1) * step + 1 + r.randint(0, 1)
        pshape = tuple(pshape)
        p = self.add(f"param({fmt(list(pshape))}) as {self.wname('p')}", pshape, [], weights=numel(pshape))
        end = start + (shape[axis] - 1) * step + 1
        end_t = end if r.random() < 0.5 or end >= pshape[axis] else end - pshape[axis]
        st = f", step={step}" if step != 1 else ""
        return self.add(f"slice({p}, {self.axis_text(axis, len(pshape))}, {start}, {end_t}{st})", shape, [p])

    def axis_text(self, axis, rank):
        return str(axis - rank) if self.r.random() < 0.35 else str(axis)

    def rank4(self):
        if self.r.random() < 0.06:   # a large plane: threads split it by pixels, not by channels
            return self.make((1, self.r.randint(1, 3), self.r.randint(23, 33), self.r.randint(23, 33)))
        return self.tensor(lambda s: len(s) == 4 and numel(s) <= MAX_NUMEL,
                           lambda: (self.r.choice([1, 1, 2]), self.r.randint(1, 6), self.r.randint(1, 9), self.r.randint(1, 9)))

    # ---- the ops ----
    def g_unary(self):
        x = self.tensor(lambda s: True, self.rand_shape)
        f = self.r.choice(["relu", "gelu", "gelu_t", "gelu_n", "sigmoid", "tanh", "silu", "neg", "dropout"])
        expr = {"gelu_t": f'gelu({x}, approximate="tanh")', "gelu_n": f'gelu({x}, approximate="none")', "neg": f"-{x}",
                "dropout": f"dropout({x}, p={self.r.choice([0.0, 0.1, 0.5])})"}.get(f, f"{f}({x})")
        self.add(expr, self.shapes[x], [x])

    def b_shape(self, a):
        """A shape that broadcasts with a: a suffix of it with some axes 1, or more leading axes."""
        r = self.r
        k = r.randint(0, len(a))
        b = [d if r.random() < 0.6 else 1 for d in a[len(a) - k:]]
        if r.random() < 0.2 and len(a) < 5:
            b = [r.randint(1, 3)] + list(a) if numel(a) * 3 <= MAX_NUMEL else b
        if not b:
            b = [1]
        return tuple(b)

    def operand(self, x, op):
        return f"(sigmoid({x}) + 0.5)" if op == "/" else x

    def g_binary(self):
        a = self.tensor(lambda s: True, self.rand_shape)
        sa = self.shapes[a]
        pb = [n for n in self.pool if broadcast(sa, self.shapes[n]) and numel(broadcast(sa, self.shapes[n])) <= MAX_NUMEL]
        if pb and self.r.random() < 0.5:
            b = self.r.choice(pb)
        else:
            sb = self.b_shape(sa)
            b = self.make(sb)
        op = self.r.choice("+-*/")
        if self.r.random() < 0.5:
            a, b = b, a
        out = broadcast(self.shapes[a], self.shapes[b])
        self.add(f"{a} {op} {self.operand(b, op)}", out, [a, b])

    def g_self_view(self):
        """t OP view(t): an elementwise op reading a tensor and a view of that same tensor (an in-place
        candidate that must not overwrite what the view still reads), or t OP t."""
        r = self.r
        t = self.tensor(lambda s: len(s) >= 1, self.rand_shape)
        s = self.shapes[t]
        if r.random() < 0.7:   # a fresh intermediate that nothing else reads: what an in-place op may overwrite
            t = self.add(f"{r.choice(['tanh', 'relu', 'sigmoid', 'silu'])}({t})", s, [t], pool=False)
        c = r.random()
        if c < 0.15:
            v, vs = t, s
        elif c < 0.6 and len(s) >= 2:
            i = r.randrange(s[0])
            v, vs = f"take({t}, 0, {i if r.random() < 0.7 else i - s[0]})", s[1:]
        else:
            ax = 0 if r.random() < 0.6 else r.randrange(len(s))
            i = r.randrange(s[ax])
            v, vs = f"slice({t}, {self.axis_text(ax, len(s))}, {i}, {i + 1})", s[:ax] + (1,) + s[ax + 1:]
        op = r.choice("+-*/")
        lhs, rhs = (t, v) if r.random() < 0.6 else (v, t)
        e = f"{lhs} {op} {self.operand(rhs, op)}"
        if r.random() < 0.6:   # read by another op: not a model output, which is written straight to the caller
            e = f"{r.choice(['relu', 'tanh', 'sigmoid'])}({e})"
        self.add(e, broadcast(s, vs), [t])

    def g_two_views(self):
        """Two slices of one tensor meeting in one op."""
        r = self.r
        t = self.tensor(lambda s: max(s) >= 3, lambda: self.rand_shape())
        s = self.shapes[t]
        axes = [i for i, d in enumerate(s) if d >= 2]
        if not axes:
            return self.g_unary()
        ax = r.choice(axes)
        n = s[ax]
        cnt = r.randint(1, max(1, n // 2))
        a0 = r.randint(0, n - cnt)
        b0 = r.randint(0, n - cnt)
        st = r.choice([1, 2]) if cnt * 2 <= n - min(a0, b0) else 1
        if st == 2:
            a0 = r.randint(0, n - 2 * cnt + 1)
        v1 = f"slice({t}, {self.axis_text(ax, len(s))}, {a0}, {a0 + (cnt - 1) * st + 1}{', step=2' if st == 2 else ''})"
        v2 = f"slice({t}, {ax}, {b0}, {b0 + cnt})"
        shape = s[:ax] + (cnt,) + s[ax + 1:]
        if r.random() < 0.3:
            self.add(f"concat([{v1}, {v2}], axis={self.axis_text(ax, len(s))})", s[:ax] + (2 * cnt,) + s[ax + 1:], [t])
        else:
            op = r.choice("+-*")
            self.add(f"{v1} {op} {v2}", shape, [t])

    def g_scalar(self):
        r = self.r
        x = self.tensor(lambda s: True, self.rand_shape)
        v = r.choice(["0.5", "2", "1.5", "3.0", "0.25", "1", "-2.0"])
        form = r.randrange(7)
        expr = [f"{x} * {v}", f"{x} + {v}", f"{x} - {v}", f"{v} - {x}", f"{x} / {v if v not in ('0', '-0') else '2'}",
                f"{v} * {x}", f"{v} / (sigmoid({x}) + 0.5)"][form]
        self.add(expr, self.shapes[x], [x])

    def g_softmax(self):
        x = self.tensor(lambda s: True, self.rand_shape)
        s = self.shapes[x]
        ax = self.r.randrange(len(s))
        arg = "" if ax == len(s) - 1 and self.r.random() < 0.3 else f", axis={self.axis_text(ax, len(s))}"
        self.add(f"softmax({x}{arg})", s, [x], red=s[ax])

    def g_linear(self):
        x = self.tensor(lambda s: s[-1] <= 64, self.rand_shape)
        s = self.shapes[x]
        out = self.r.choice([1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 48])
        while numel(s[:-1]) * out > 2 * MAX_NUMEL or numel(s) * out > MAX_WORK:
            out = max(1, out // 2)
            if out == 1:
                break
        bias = "" if self.r.random() < 0.7 else ", bias=false"
        self.add(f"linear({x}, {out}{bias}) as {self.wname()}", s[:-1] + (out,), [x], red=s[-1], weights=out * (s[-1] + 1))

    def g_conv(self):
        r = self.r
        x = self.rank4()
        N, C, H, W = self.shapes[x]
        for _ in range(30):
            g = r.choice([1, 1, 1, C] + [d for d in divisors(C) if d > 1])
            out = g * r.choice([1, 1, 2, 3]) if g > 1 else r.randint(1, 8)
            if g > 1 and r.random() < 0.2:
                out = g
            kh, kw = r.choice([1, 2, 3, 3, 4]), r.choice([1, 2, 3, 3, 5])
            sh, sw = r.choice([1, 1, 2, 3]), r.choice([1, 1, 2, 4])
            dh, dw = r.choice([1, 1, 2, 3]), r.choice([1, 1, 2])
            pc = r.random()
            if pc < 0.35:
                pad = [0, 0, 0, 0]
                ptxt = ""
            elif pc < 0.6:
                p = r.randint(1, 3)
                pad = [p] * 4
                ptxt = f", pad={p}"
            elif pc < 0.8:
                ph, pw = r.randint(0, 3), r.randint(0, 3)
                pad = [ph, pw, ph, pw]
                ptxt = f", pad={fmt([ph, pw])}"
            else:
                pad = [r.randint(0, 3) for _ in range(4)]
                ptxt = f", pad={fmt(pad)}"
            eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
            if H + pad[0] + pad[2] < eh or W + pad[1] + pad[3] < ew:
                continue
            OH, OW = (H + pad[0] + pad[2] - eh) // sh + 1, (W + pad[1] + pad[3] - ew) // sw + 1
            shape = (N, out, OH, OW)
            if numel(shape) > max(MAX_NUMEL, numel(self.shapes[x])) or numel(shape) * (C // g) * kh * kw > MAX_WORK:
                continue
            k = f"kernel={kh}" if kh == kw and r.random() < 0.6 else f"kernel={fmt([kh, kw])}"
            if kh == kw and r.random() < 0.2:
                k = str(kh)       # positional
            s = "" if sh == sw == 1 else f", stride={sh}" if sh == sw else f", stride={fmt([sh, sw])}"
            d = "" if dh == dw == 1 else f", dilation={dh}" if dh == dw else f", dilation={fmt([dh, dw])}"
            gt = f", groups={g}" if g > 1 else ""
            b = ", bias=false" if r.random() < 0.3 else ""
            self.add(f"conv2d({x}, {out}, {k}{s}{ptxt}{d}{gt}{b}) as {self.wname()}", shape, [x], red=(C // g) * kh * kw,
                     weights=out * (C // g) * kh * kw + out)
            return
        self.g_unary()

    def g_norm(self):
        r = self.r
        if r.random() < 0.5:
            x = self.tensor(lambda s: len(s) >= 2, lambda: self.rand_shape(r.randint(2, 4)))
            eps = r.choice(["", "", ", eps=1e-3", ", eps=0.01"])
            self.add(f"batchnorm({x}{eps}) as {self.wname()}", self.shapes[x], [x], weights=4 * self.shapes[x][1])
        else:
            x = self.tensor(lambda s: True, self.rand_shape)
            eps = r.choice(["", "", ", eps=1e-6", ", eps=1e-3"])
            s = self.shapes[x]
            self.add(f"layernorm({x}{eps}) as {self.wname()}", s, [x], red=s[-1], weights=2 * s[-1])

    def rank3(self):
        return self.tensor(lambda s: len(s) == 3 and (s[2] <= 24 or s[2] == 48) and numel(s) <= 512,
                           lambda: (self.r.randint(1, 2), self.r.randint(1, 7), self.r.choice([2, 3, 4, 6, 8, 12, 48])))

    def g_attention(self):
        r = self.r
        x = self.rank3()
        N, L, D = self.shapes[x]
        heads = r.choice(divisors(D))
        if r.random() < 0.5:
            causal = ", causal=true" if r.random() < 0.5 else ""
            self.add(f"multihead_attention({x}, {heads}{causal}) as {self.wname()}", (N, L, D), [x], red=D + L,
                     weights=4 * D * D + 4 * D)
            return
        y = self.tensor(lambda s: len(s) == 3 and s[0] == N and numel(s) <= 512 and s[2] <= 24,
                        lambda: (N, r.randint(1, 7), r.choice([D, r.randint(1, 8)])))
        S = self.shapes[y][1]
        if self.shapes[y][2] != D:
            y = self.add(f"linear({y}, {D}) as {self.wname()}", (N, S, D), [y], red=self.shapes[y][2])
        kw = "heads=" if r.random() < 0.3 else ""
        self.add(f"cross_attention({x}, {y}, {kw}{heads}) as {self.wname()}", (N, L, D), [x, y], red=D + S, weights=4 * D * D + 4 * D)

    def g_pool(self):
        r = self.r
        x = self.rank4()
        N, C, H, W = self.shapes[x]
        if r.random() < 0.25:
            if r.random() < 0.4:
                self.add(f"global_avgpool({x})", (N, C, 1, 1), [x], red=H * W)
            else:
                oh, ow = r.randint(1, 6), r.randint(1, 6)
                sz = f"{oh}" if oh == ow else fmt([oh, ow])
                self.add(f"adaptive_avgpool({x}, {sz})", (N, C, oh, ow), [x], red=(H // oh + 2) * (W // ow + 2))
            return
        for _ in range(20):
            kh, kw = r.randint(1, 4), r.randint(1, 4)
            stride = None if r.random() < 0.4 else (r.randint(1, 4), r.randint(1, 4))
            sh, sw = stride or (kh, kw)
            pc = r.random()
            if pc < 0.5:
                pad, ptxt = [0, 0, 0, 0], ""
            elif pc < 0.8:
                ph, pw = r.randint(0, kh // 2), r.randint(0, kw // 2)
                pad, ptxt = [ph, pw, ph, pw], f", pad={fmt([ph, pw]) if ph != pw else ph}"
            else:
                pad = [r.randint(0, kh // 2), r.randint(0, kw // 2), r.randint(0, kh // 2), r.randint(0, kw // 2)]
                ptxt = f", pad={fmt(pad)}"
            Hp, Wp = H + pad[0] + pad[2], W + pad[1] + pad[3]
            if Hp < kh or Wp < kw:
                continue
            shape = (N, C, (Hp - kh) // sh + 1, (Wp - kw) // sw + 1)
            kind = r.choice(["maxpool", "avgpool"])
            k = f"{kh}" if kh == kw else fmt([kh, kw])
            st = "" if stride is None else f", stride={sh if sh == sw else fmt([sh, sw])}"
            self.add(f"{kind}({x}, kernel={k}{st}{ptxt})", shape, [x], red=kh * kw)
            return
        self.g_unary()

    def g_pad(self):
        r = self.r
        x = self.tensor(lambda s: numel(s) <= MAX_NUMEL // 3, self.rand_shape)
        s = self.shapes[x]
        ax = r.randrange(len(s))
        b, a = r.randint(0, 3), r.randint(0, 3)
        v = r.choice(["", "", ", value=1.5", ", value=-0.5", ", 2.0"])
        shape = s[:ax] + (s[ax] + a + b,) + s[ax + 1:]
        self.add(f"pad({x}, {self.axis_text(ax, len(s))}, {b}, {a}{v})", shape, [x])

    def g_reshape(self):
        r = self.r
        x = self.tensor(lambda s: True, self.rand_shape)
        s = self.shapes[x]
        if r.random() < 0.35 and len(s) >= 2:
            st = r.randrange(len(s))
            arg = "" if st == 1 and r.random() < 0.5 else f", {self.axis_text(st, len(s)) if r.random() < 0.5 else 'start=' + str(st)}"
            self.add(f"flatten({x}{arg})", s[:st] + (numel(s[st:]),), [x])
            return
        n = numel(s)
        dims = []
        rest = n
        for _ in range(r.randint(0, 4)):
            ds = [d for d in divisors(rest) if d <= 8]
            d = r.choice(ds)
            dims.append(d)
            rest //= d
        dims.append(rest)
        r.shuffle(dims)
        spec = list(dims)
        if r.random() < 0.5:
            spec[r.randrange(len(spec))] = -1
        self.add(f"reshape({x}, {fmt(spec)})", tuple(dims), [x])

    def g_transpose(self):
        x = self.tensor(lambda s: len(s) >= 2, lambda: self.rand_shape(self.r.randint(2, 4)))
        s = self.shapes[x]
        perm = list(range(len(s)))
        self.r.shuffle(perm)
        spec = [p - len(s) if self.r.random() < 0.15 else p for p in perm]
        self.add(f"transpose({x}, {fmt(spec)})", tuple(s[p] for p in perm), [x])

    def g_concat(self):
        r = self.r
        x = self.tensor(lambda s: numel(s) <= MAX_NUMEL // 3, self.rand_shape)
        s = self.shapes[x]
        ax = r.randrange(len(s))
        parts, deps, total = [x], [x], s[ax]
        for _ in range(r.randint(1, 3)):
            others = [n for n in self.pool if len(self.shapes[n]) == len(s)
                      and all(i == ax or self.shapes[n][i] == s[i] for i in range(len(s)))]
            c = r.random()
            if c < 0.3:
                y = x                                             # the same tensor twice
            elif c < 0.55 and others:
                y = r.choice(others)
            elif c < 0.75:
                y = f"relu({x})"
            else:
                k = r.randint(1, 3)
                y = self.make(s[:ax] + (k,) + s[ax + 1:])
            if y != f"relu({x})":
                deps.append(y)
            parts.append(y)
            total += self.shapes.get(y, s)[ax]
        if numel(s) // s[ax] * total > MAX_NUMEL:
            return self.g_unary()
        axis = "" if ax == 0 and r.random() < 0.5 else f", axis={self.axis_text(ax, len(s))}"
        self.add(f"concat([{', '.join(parts)}]{axis})", s[:ax] + (total,) + s[ax + 1:], deps)

    def g_slice(self):
        r = self.r
        x = self.tensor(lambda s: True, self.rand_shape)
        s = self.shapes[x]
        ax = r.randrange(len(s))
        n = s[ax]
        for _ in range(20):
            start = r.randint(-n - 2, n)
            end = r.randint(-n, n + 3)
            step = r.choice([1, 1, 2, 3])
            lo = min(max(start + n if start < 0 else start, 0), n)
            hi = min(max(end + n if end < 0 else end, 0), n)
            cnt = (hi - lo + step - 1) // step if hi > lo else 0
            if cnt > 0:
                st = "" if step == 1 and r.random() < 0.5 else f", step={step}"
                self.add(f"slice({x}, {self.axis_text(ax, len(s))}, {start}, {end}{st})", s[:ax] + (cnt,) + s[ax + 1:], [x])
                return
        self.g_unary()

    def g_take(self):
        r = self.r
        x = self.tensor(lambda s: len(s) >= 2, lambda: self.rand_shape(r.randint(2, 4)))
        s = self.shapes[x]
        ax = r.randrange(len(s))
        i = r.randrange(s[ax])
        if r.random() < 0.3:
            i -= s[ax]
        kw = r.random() < 0.2
        self.add(f"take({x}, {'axis=' if kw else ''}{self.axis_text(ax, len(s))}, {'index=' if kw else ''}{i})",
                 s[:ax] + s[ax + 1:], [x])

    def g_expand(self):
        r = self.r
        x = self.tensor(lambda s: 1 in s or len(s) < 4, self.rand_shape)
        s = self.shapes[x]
        lead = [r.randint(1, 3) for _ in range(r.randint(0, 2) if len(s) < 5 else 0)]
        body, spec = [], []
        for d in s:
            if d == 1 and r.random() < 0.7:
                e = r.randint(1, 4)
                body.append(e)
                spec.append(e)
            else:
                body.append(d)
                spec.append(-1 if r.random() < 0.5 else d)
        shape = tuple(lead + body)
        if numel(shape) > MAX_NUMEL:
            return self.g_unary()
        self.add(f"expand({x}, {fmt(lead + spec)})", shape, [x])

    def g_matmul(self):
        r = self.r
        a = self.tensor(lambda s: s[-1] <= 32 and len(s) <= 4, self.rand_shape)
        sa = self.shapes[a]
        K = sa[-1]
        c = r.random()
        if c < 0.15:
            sb = (K,)                                           # a vector on the right
        elif len(sa) == 1 or c < 0.45:
            sb = (K, r.randint(1, 6))
        else:
            batch = self.b_shape(sa[:-2]) if len(sa) > 2 and r.random() < 0.7 else ()
            if batch == (1,) and r.random() < 0.5:
                batch = ()
            sb = tuple(batch) + (K, r.randint(1, 6))
        b = self.make(sb)
        if r.random() < 0.15 and len(sa) >= 2:   # a vector on the left instead: [M] @ a
            b, a = a, self.make((sa[-2],))
        out = self.matmul_shape(self.shapes[a], self.shapes[b])
        if out is None or numel(out) > MAX_NUMEL:
            return self.g_unary()
        expr = f"{a} @ {b}" if r.random() < 0.6 else f"matmul({a}, {b})"
        k = self.shapes[a][-1]
        self.add(expr, out, [a, b], red=k, pool=len(out) > 0)

    @staticmethod
    def matmul_shape(sa, sb):
        a2 = (1,) + tuple(sa) if len(sa) == 1 else tuple(sa)
        b2 = tuple(sb) + (1,) if len(sb) == 1 else tuple(sb)
        if a2[-1] != b2[-2]:
            return None
        batch = broadcast(a2[:-2], b2[:-2]) if a2[:-2] or b2[:-2] else ()
        if batch is None:
            return None
        out = tuple(batch)
        if len(sa) > 1:
            out += (a2[-2],)
        if len(sb) > 1:
            out += (b2[-1],)
        return out if len(out) <= 8 else None

    def g_sdpa(self):
        r = self.r
        q = self.tensor(lambda s: len(s) >= 2 and s[-1] <= 16 and numel(s) <= 512,
                        lambda: self.rand_shape(r.randint(2, 4)))
        sq = self.shapes[q]
        L, D = sq[-2], sq[-1]
        S = r.choice([L, L, r.randint(1, 7)])
        Dv = r.choice([D, r.randint(1, 6)])
        k = self.make(sq[:-2] + (S, D))
        v = self.make(sq[:-2] + (S, Dv))
        causal = r.choice(["", "", ", causal=true", ", causal=false"])
        self.add(f"scaled_dot_product_attention({q}, {k}, {v}{causal})", sq[:-2] + (L, Dv), [q, k, v], red=D + S)

    def exact_operand(self, pred=lambda s: True):
        """A model input or a param: values every build and the reference hold bit for bit, so that a
        comparison of them (discontinuous) cannot differ by a rounding."""
        cands = [n for n, sh in self.m.inputs if pred(sh)]
        if cands and self.r.random() < 0.7:
            return self.r.choice(cands)
        shape = self.rand_shape()
        return self.add(f"param({fmt(list(shape))}) as {self.wname('p')}", shape, [], weights=numel(shape))

    def condition(self, c):
        """A boolean tensor from an exact operand: c compared with a number, or with itself reversed."""
        r = self.r
        op = r.choice([">", "<", ">=", "<=", "==", "!="])
        thr = r.choice([0, 0.25, -0.5, 1])
        return f"({c} {op} {thr})" if r.random() < 0.8 else f"({thr} {op} {c})"

    def g_where(self):
        r = self.r
        c = self.exact_operand()
        sc = self.shapes[c]
        if r.random() < 0.5:   # masked_fill: the mask broadcasts to x
            x = self.tensor(lambda s: broadcast(s, sc) == tuple(s), lambda: sc)
            if broadcast(self.shapes[x], sc) != self.shapes[x]:
                return self.g_unary()
            self.add(f"masked_fill({x}, {self.condition(c)}, {r.choice([-100.0, 0.0, 2.5])})", self.shapes[x], [x, c])
            return
        a = self.tensor(lambda s: broadcast(s, sc) is not None and numel(broadcast(s, sc)) <= MAX_NUMEL, lambda: sc)
        b_num = r.random() < 0.3
        out = broadcast(self.shapes[a], sc)
        if out is None:
            return self.g_unary()
        b = "-1.5" if b_num else self.make(out if r.random() < 0.5 else out[-1:])
        deps = [c, a] + ([] if b_num else [b])
        self.add(f"where({self.condition(c)}, {a}, {b})", out, deps)

    def g_reduce(self):
        r = self.r
        x = self.tensor(lambda s: True, self.rand_shape)
        s = self.shapes[x]
        f = r.choice(["sum", "mean", "max", "min"])
        keep = r.random() < 0.4
        if r.random() < 0.15:
            axes = list(range(len(s)))
            arg = ""
        else:
            axes = sorted(r.sample(range(len(s)), r.randint(1, len(s))))
            texts = [self.axis_text(a, len(s)) for a in axes]
            arg = f", {texts[0]}" if len(axes) == 1 and r.random() < 0.5 else f", {fmt([int(t) for t in texts])}"
        shape = tuple(1 if i in axes else d for i, d in enumerate(s)) if keep else tuple(d for i, d in enumerate(s) if i not in axes)
        if not shape:   # a 0-d result: something must still read it as a tensor of rank >= 1
            keep, shape = True, tuple(1 for _ in s)
        self.add(f"{f}({x}{arg}{', keepdim=true' if keep else ''})", shape, [x], red=numel(s) // max(numel(shape), 1))

    def g_roll(self):
        r = self.r
        x = self.tensor(lambda s: True, self.rand_shape)
        s = self.shapes[x]
        if r.random() < 0.2:
            self.add(f"roll({x}, {r.randint(-7, 7)})", s, [x])
            return
        axes = r.sample(range(len(s)), r.randint(1, len(s)))
        shifts = [r.randint(-2 * s[a], 2 * s[a]) for a in axes]
        self.add(f"roll({x}, {fmt(shifts)}, axis={fmt([int(self.axis_text(a, len(s))) for a in axes])})", s, [x])

    def g_sdpa_mask(self):
        """scaled_dot_product_attention with an additive mask, or a boolean one from an exact operand."""
        r = self.r
        q = self.tensor(lambda s: len(s) >= 2 and s[-1] <= 16 and numel(s) <= 512, lambda: self.rand_shape(r.randint(2, 4)))
        sq = self.shapes[q]
        L, D = sq[-2], sq[-1]
        S = r.choice([L, r.randint(1, 7)])
        k = self.make(sq[:-2] + (S, D))
        v = self.make(sq[:-2] + (S, D))
        mshape = r.choice([(L, S), (1, S), (L, 1), tuple(sq[:-2]) + (L, S)])
        if r.random() < 0.7:
            m = self.make(mshape)
            mask, deps = m, [q, k, v, m]
        else:
            m = self.exact_operand(lambda s: broadcast(s, tuple(sq[:-2]) + (L, S)) == tuple(sq[:-2]) + (L, S))
            if broadcast(self.shapes[m], tuple(sq[:-2]) + (L, S)) != tuple(sq[:-2]) + (L, S):
                return self.g_unary()
            mask, deps = self.condition(m), [q, k, v, m]
        self.add(f"scaled_dot_product_attention({q}, {k}, {v}, attn_mask={mask})", sq[:-2] + (L, D), deps, red=D + S)

    def g_fusable(self):
        """The patterns -O2 rewrites: a conv2d or linear, then maybe a batch norm (folded into its weights),
        an activation, a residual addition of its own input and another activation (fused epilogue)."""
        r = self.r
        if r.random() < 0.5:
            x = self.rank4()
            N, C, H, W = self.shapes[x]
            k = r.choice([1, 3, 3])
            out = C if r.random() < 0.7 else r.randint(1, 8)
            g = C if out == C and C > 1 and r.random() < 0.25 else 1
            shape = (N, out, H, W)
            if numel(shape) * (C // g) * k * k > MAX_WORK:
                return self.g_unary()
            bn = r.random() < 0.5
            e = (f"conv2d({x}, {out}, kernel={k}{f', pad={k // 2}' if k > 1 else ''}{f', groups={g}' if g > 1 else ''}"
                 f"{', bias=false' if bn and r.random() < 0.7 else ''}) as {self.wname()}")
            red = (C // g) * k * k
        else:
            x = self.tensor(lambda s: s[-1] <= 64, self.rand_shape)
            s = self.shapes[x]
            out = s[-1] if r.random() < 0.7 else r.choice([1, 3, 8, 16])
            shape = s[:-1] + (out,)
            if numel(shape) > MAX_NUMEL:
                return self.g_unary()
            bn = len(shape) >= 2 and r.random() < 0.3
            e = f"linear({x}, {out}) as {self.wname()}"
            red = s[-1]
        if bn:
            e = f"batchnorm({e}) as {self.wname()}"
        acts = ["relu", "relu", "gelu", "sigmoid", "tanh", "silu", "gelu_t"]

        def act(v):
            a = r.choice(acts)
            return f'gelu({v}, approximate="tanh")' if a == "gelu_t" else f"{a}({v})"
        if r.random() < 0.6:
            e = act(e)
        if shape == self.shapes[x] and r.random() < 0.7:
            e = f"{e} + {x}" if r.random() < 0.6 else f"{x} + {e}"
            if r.random() < 0.6:
                e = act(e)
        self.add(e, shape, [x], red=red)

    def g_attention_by_hand(self):
        """softmax(q @ kT * s) @ v, which -O2 fuses into one attention op when s = 1/sqrt(D) (and not
        otherwise)."""
        r = self.r
        q = self.tensor(lambda s: len(s) >= 2 and s[-1] <= 16 and numel(s) <= 512, lambda: self.rand_shape(r.randint(2, 4)))
        sq = self.shapes[q]
        L, D = sq[-2], sq[-1]
        S = r.choice([L, r.randint(1, 7)])
        Dv = r.choice([D, r.randint(1, 6)])
        k = q if S == L and r.random() < 0.3 else self.make(sq[:-2] + (S, D))
        v = k if Dv == D and r.random() < 0.3 else self.make(sq[:-2] + (S, Dv))
        perm = list(range(len(sq)))
        perm[-1], perm[-2] = perm[-2], perm[-1]
        c = r.random()
        if c < 0.4:
            scale = f" * {repr(1 / math.sqrt(D))}"
        elif c < 0.6 and int(math.sqrt(D)) ** 2 == D:
            scale = f" / {float(math.sqrt(D))}"
        elif c < 0.8:
            scale = f" * {r.choice(['0.5', '0.3', '1.0'])}"
        else:
            scale = ""
        axis = r.choice(["", "", ", axis=-1", f", axis={len(sq) - 1}"])
        self.add(f"softmax({q} @ transpose({k}, {fmt(perm)}){scale}{axis}) @ {v}", sq[:-2] + (L, Dv),
                 [q] + ([k] if k != q else []) + ([v] if v not in (q, k) else []), red=D + S)

    def g_param_view(self):
        shape = self.rand_shape(self.r.randint(1, 3))
        t = self.param_view(shape)
        self.ops -= 1   # the view itself; what reads it is the next op

    OPS = [("g_unary", 10), ("g_binary", 12), ("g_self_view", 5), ("g_two_views", 4), ("g_scalar", 6), ("g_softmax", 4),
           ("g_linear", 8), ("g_conv", 10), ("g_norm", 5), ("g_attention", 4), ("g_pool", 6), ("g_pad", 3), ("g_reshape", 5),
           ("g_transpose", 4), ("g_concat", 4), ("g_slice", 5), ("g_take", 3), ("g_expand", 3), ("g_matmul", 6), ("g_sdpa", 3),
           ("g_param_view", 3), ("g_fusable", 6), ("g_attention_by_hand", 3), ("g_where", 3), ("g_reduce", 4), ("g_roll", 2),
           ("g_sdpa_mask", 2)]

    def run(self):
        r = self.r
        for _ in range(r.randint(1, 3)):
            self.new_input(self.rand_shape())
        target = r.randint(2, 20)
        names, weights = zip(*self.OPS)
        guard = 0
        while self.ops < target and guard < 200:
            guard += 1
            getattr(self, r.choices(names, weights)[0])()
        # outputs: the statements nothing reads (the sinks), at most 6, and now and then an input, a weight
        # or a repeated output (each becomes a copy)
        read = set()
        for s in self.m.stmts:
            read.update(s.deps)
        sinks = [s.name for s in self.m.stmts if s.name not in read]
        r.shuffle(sinks)
        keep = 6 if r.random() < 0.85 else r.randint(1, 3)     # sometimes fewer: dead code
        outs = sinks[:keep] or [self.m.stmts[-1].name]
        c = r.random()
        if c < 0.06:
            outs.append(self.m.inputs[0][0])
        elif c < 0.1:
            outs.append(outs[0])
        elif c < 0.14:
            ps = [s.name for s in self.m.stmts if s.expr.startswith("param(")]
            if ps:
                outs.append(r.choice(ps))
        r.shuffle(outs)
        self.m.outputs = outs
        return self.m


def generate(seed):
    return Gen(seed).run()


if __name__ == "__main__":
    print(generate(int(sys.argv[1]) if len(sys.argv) > 1 else 0).to_net(), end="")
