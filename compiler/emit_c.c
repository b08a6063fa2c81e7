/*
 * emit_c.c — the graph as one C file and its header.
 *
 * The generated file reads like the network: a `forward` function with one call per op, each under
 * a comment naming the op, its weights and its shapes, in source order. Each call goes to a small
 * function specialised to that op's shapes (every dimension a constant), which calls a reference
 * kernel from runtime/kernels with those constants so the C compiler can unroll and vectorise it.
 * Ops with identical shapes share one function, which keeps generated files small.
 *
 * Memory: the weights live in one float block and the intermediates in one arena, both allocated
 * when the model is created; inputs and outputs are the caller's buffers. Nothing is allocated
 * while running, and all state is in the model struct, so one process may run several models.
 *
 * The emitter of each op kind is named in ops.def. Replacing an op's kernel (tiled, another layout)
 * means changing its emitter only.
 */
#include "nnc.h"

#include "nnrt.h"
#include "kernels/nnk.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    int64_t offset;          /* in floats */
} ArenaEntry;

typedef struct {
    const Graph *g;
    const EmitOptions *o;
    const char *id;          /* C identifier of the model: "resnet50" */
    const char *ID;          /* the same in capitals, for macros */
    Buf fns;                 /* specialised functions */
    Buf body;                /* forward() */
    Vec fn_keys, fn_names;   /* dedup of specialised functions by their text */
    int per_kind[OPK_COUNT];
    int64_t *weight_at;      /* tensor id -> offset in floats into the weight block */
    const char **weight_name;   /* tensor id -> its offset's name in the generated C (w_NAME), or NULL */
    int64_t weight_floats;
    double *flops;           /* per op */
    bool parallel;           /* some op runs on the thread pool */
    bool gemm;               /* some op runs on nnk_gemm, whose threads each need scratch */
    long long scratch_floats;   /* ...this much (SCRATCH_FLOATS in the generated C), */
    const char *scratch_expr;   /* ...written with the runtime's macros */
    bool tile;               /* some op's numbers assume the micro-kernel's tile (NNK_MR x NNK_NR) */
    Vec packed;              /* of Packed*: weights that prepare() rearranges for nnk_gemm */
    const char **arena_name; /* tensor id -> its arena offset's name (a_NAME), once used */
    const char **scratch_name;   /* op id -> the name of its scratch's offset, once used */
    Vec arena_entries;       /* of ArenaEntry*: the names of arena offsets, in the order of first use */
    Vec arena_taken;         /* the names given, weights' included, so that none repeats */
} Emitter;


/* ---------------------------------------------------------------- names and pointers */

static const char *c_keywords[] = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum", "extern", "float",
    "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return", "short", "signed", "sizeof", "static",
    "struct", "switch", "typedef", "union", "unsigned", "void", "volatile", "while", "m", "arena", "main",
    "t", "N_OPS", "SCRATCH_FLOATS", NULL,   /* the generated file's own names */
};

static char *c_ident(const char *s) {
    char *id = xcalloc(strlen(s) + 2, 1);
    char *p = id;
    if (isdigit((unsigned char)s[0]))
        *p++ = '_';
    for (; *s; s++)
        *p++ = isalnum((unsigned char)*s) ? *s : '_';
    for (int i = 0; c_keywords[i]; i++)
        if (strcmp(id, c_keywords[i]) == 0)
            return format("%s_", id);
    if (strncmp(id, "w_", 2) == 0)   /* the weight offsets' enum (name_weights: no name of it ends in '_') */
        return format("%s_", id);
    return id;
}

/* A model input's name in the generated C: `in_` and its name, so that no input can meet a name of
   the generated file (`output`, a helper `relu_1`), of the runtime (`nnrt_now_ms`) or of libc (`NULL`,
   `EOF`, `INFINITY`). */
static const char *input_ident(const Tensor *t) { return format("in_%s", t->name); }

static int output_index(const Graph *g, const Tensor *t);

/* Whether the generated code reads input t: some op that emits code reads it or a view of it, or it
   is itself an output (copied out). A view that nothing reads costs no code and reads nothing. */
static bool input_read(const Graph *g, const Tensor *t) {
    if (output_index(g, t) >= 0)
        return true;
    for (int i = 0; i < g->ops.len; i++) {
        const Op *op = g->ops.items[i];
        bool view = op->out->view_of && (op_info[op->kind].props & OPF_VIEW);
        if (view && output_index(g, op->out) < 0)
            continue;
        for (int j = 0; j < op->in.len; j++) {
            const Tensor *x = op->in.items[j];
            while (x->view_of && x != t)
                x = x->view_of;
            if (x == t)
                return true;
        }
    }
    return false;
}

static int output_index(const Graph *g, const Tensor *t) {
    for (int i = 0; i < g->outputs.len; i++)
        if (g->outputs.items[i] == t)
            return i;
    return -1;
}

static const char *output_name(const Graph *g, int i) {
    return g->outputs.len == 1 ? "output" : format("output%d", i);
}

/* The C expression for a tensor's first element: a view is its root's pointer plus its offset. */
/* A weight's pointer in the generated C: W(conv1_weight), its key made an identifier (the enum of
   offsets defines w_conv1_weight), or W(offset) when the offsets do not fit an enum. */
static const char *wref(const Emitter *e, const Tensor *t) {
    if (e->weight_name)
        return format("W(%s)", e->weight_name[t->id]);
    return format("W(%lld)", (long long)e->weight_at[t->id]);
}

/* Names for the weights' offsets: each key with every run of other characters than letters and digits
   made one '_' ("layer1.0.conv1.weight" -> "layer1_0_conv1_weight", "conv1.bias(folded)" ->
   "conv1_bias_folded"), and a number added where two keys would meet. */
static const char *unique_ident(Vec *taken, const char *text, const char *fallback) {
    Buf b = {0};
    for (const char *p = text; *p; p++) {
        if (isalnum((unsigned char)*p))
            buf_printf(&b, "%c", *p);
        else if (b.len && b.buf[b.len - 1] != '_')
            buf_puts(&b, "_");
    }
    while (b.len && b.buf[b.len - 1] == '_')
        b.buf[--b.len] = '\0';
    const char *base = b.len ? buf_take(&b) : fallback, *name = base;
    for (int n = 2;; n++) {
        bool clash = false;
        for (int j = 0; j < taken->len && !clash; j++)
            clash = strcmp(taken->items[j], name) == 0;
        if (!clash)
            break;
        name = format("%s_%d", base, n);
    }
    vec_push(taken, (void *)name);
    return name;
}

static void name_weights(Emitter *e) {
    const Graph *g = e->g;
    if (e->weight_floats > 2147483647LL)   /* an enum holds an int */
        return;
    e->weight_name = xcalloc((size_t)g->tensors.len + 1, sizeof *e->weight_name);
    Vec taken = {0};
    for (int i = 0; i < g->weights.len; i++) {
        Tensor *t = g->weights.items[i];
        e->weight_name[t->id] = unique_ident(&taken, t->name, "weight");
    }
}

/* The name of an intermediate's place in the arena, A(layer1_0_conv1) in the generated C (the enum of
   offsets defines a_layer1_0_conv1): its producer's `as` name, or its kind and number; the scratch of
   an op is SCRATCH_OF(its name). NULL when the offsets do not fit an enum. */
static const char *arena_name(Emitter *e, const Tensor *t) {
    if (e->g->arena_bytes / 4 > 2147483647LL)
        return NULL;
    if (!e->arena_name[t->id]) {
        ArenaEntry *a = xcalloc(1, sizeof *a);
        a->name = e->arena_name[t->id] = unique_ident(&e->arena_taken, t->name, "tensor");
        a->offset = t->offset / 4;
        vec_push(&e->arena_entries, a);
    }
    return e->arena_name[t->id];
}

/* An op's scratch memory in the arena, `plus` floats in: (A(NAME_scratch) + plus). */
static const char *scratch_ref(Emitter *e, const Op *op, int64_t plus) {
    if (e->g->arena_bytes / 4 > 2147483647LL)
        return format("A(%lld)", (long long)(op->scratch_offset / 4 + plus));
    if (!e->scratch_name[op->id]) {
        ArenaEntry *a = xcalloc(1, sizeof *a);
        a->name = e->scratch_name[op->id] = unique_ident(&e->arena_taken, format("%s_scratch", op->out->name), "scratch");
        a->offset = op->scratch_offset / 4;
        vec_push(&e->arena_entries, a);
    }
    return plus ? format("(A(%s) + %lld)", e->scratch_name[op->id], (long long)plus) : format("A(%s)", e->scratch_name[op->id]);
}

static const char *ptr(Emitter *e, const Tensor *t) {
    int64_t bytes = 0;
    while (t->view_of && output_index(e->g, t) < 0) {
        bytes += t->view_offset;
        t = t->view_of;
    }
    const char *base;
    switch (t->kind) {
    case TK_INPUT: base = input_ident(t); break;
    case TK_WEIGHT: base = wref(e, t); break;
    default:
        if (output_index(e->g, t) < 0) {
            const char *name = arena_name(e, t);
            if (!name)
                return format("A(%lld)", (long long)((t->offset + bytes) / 4));
            return bytes ? format("(A(%s) + %lld)", name, (long long)(bytes / 4)) : format("A(%s)", name);
        }
        base = output_name(e->g, output_index(e->g, t));
    }
    return bytes ? format("(%s + %lld)", base, (long long)(bytes / 4)) : base;
}

/* A float as a C literal that round-trips through float: "0.5f", "1.0f", "1e-05f", "-INFINITY". */
static const char *c_float(double v) {
    float f = (float)v;
    if (f != f)
        return "NAN";
    if (f > 3.4e38f || f < -3.4e38f)
        return f > 0 ? "INFINITY" : "-INFINITY";
    char *s = format("%.9g", (double)f);
    return strpbrk(s, ".e") ? format("%sf", s) : format("%s.0f", s);
}

static const char *shape_c(const Tensor *t) { return shape_text(t->rank, t->dims); }

static int64_t prod(const Tensor *t, int from, int to) {
    int64_t n = 1;
    for (int i = from; i < to; i++)
        n *= t->dims[i];
    return n;
}

/* "{1, 3, 224, 224}"; "{0}" for a rank-0 shape, since C has no empty initialiser (its length is 0 anyway) */
static const char *int_array(int n, const int64_t *v) {
    if (n == 0)
        return "{0}";
    Buf b = {0};
    buf_puts(&b, "{");
    for (int i = 0; i < n; i++)
        buf_printf(&b, i ? ", %lld" : "%lld", (long long)v[i]);
    buf_puts(&b, "}");
    return buf_take(&b);
}

/* ---------------------------------------------------------------- specialised functions and calls */

/* Defines (once per distinct text) `static void KIND_N(PARAMS) { BODY }` and returns its name. */
/* The specialised function for one stage of an op that runs in several ("project", "attend"), named so. */
static const char *specialise_stage(Emitter *e, const Op *op, const char *stage, const char *params, const char *body) {
    char *key = format("%d|%s|%s|%s", op->kind, stage ? stage : "", params, body);
    for (int i = 0; i < e->fn_keys.len; i++)
        if (strcmp(e->fn_keys.items[i], key) == 0)
            return e->fn_names.items[i];
    char *name = stage ? format("%s_%s_%d", op_info[op->kind].name, stage, ++e->per_kind[op->kind])
                       : format("%s_%d", op_info[op->kind].name, ++e->per_kind[op->kind]);
    vec_push(&e->fn_keys, key);
    vec_push(&e->fn_names, name);
    buf_printf(&e->fns, "/* %s: ", op_info[op->kind].name);
    for (int i = 0; i < op->in.len; i++) {
        const Tensor *t = op->in.items[i];
        if (t->kind != TK_WEIGHT)
            buf_printf(&e->fns, "%s%s", i ? ", " : "", shape_c(t));
    }
    buf_printf(&e->fns, " -> %s%s%s */\nstatic void %s(%s) {\n%s}\n\n", shape_c(op->out), stage ? ", stage " : "", stage ? stage : "", name,
               params, body);
    return name;
}

static const char *specialise(Emitter *e, const Op *op, const char *params, const char *body) {
    return specialise_stage(e, op, NULL, params, body);
}

/* The text of the source line at loc, trimmed, made safe inside a C comment. */
static const char *source_line(Loc loc) {
    if (!loc.file || loc.line < 1)
        return "";
    const char *p = loc.file->text, *end = p + loc.file->len;
    for (int line = 1; line < loc.line && p < end; p++)
        if (*p == '\n')
            line++;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    const char *q = p;
    while (q < end && *q != '\n' && *q != '\r')
        q++;
    while (q > p && (q[-1] == ' ' || q[-1] == '\t'))
        q--;
    Buf b = {0};
    for (; p < q; p++) {
        if (p[0] == '*' && p + 1 < q && p[1] == '/')   /* would end the comment */
            buf_puts(&b, "* ");
        else if (p[0] == '/' && p + 1 < q && p[1] == '*')
            buf_puts(&b, "/ ");
        else if ((unsigned char)*p >= ' ' || *p == '\t')
            buf_printf(&b, "%c", *p);
    }
    return b.len ? buf_take(&b) : "";
}

/* The comment over each call: the op, its name, its shape, and the source line that made it. */
static void call_comment(Emitter *e, const Op *op) {
    const Attrs *a = &op->a;
    Buf fused = {0};   /* what fuse_epilogue folded into a layer */
    if ((op_info[op->kind].props & OPF_EPILOGUE) && (a->act1 || a->residual)) {
        if (a->act1)
            buf_printf(&fused, " + %s", act_name[a->act1]);
        if (a->residual)
            buf_puts(&fused, " + residual");
        if (a->act2)
            buf_printf(&fused, " + %s", act_name[a->act2]);
    }
    buf_printf(&e->body, "\n    /* %s%s%s%s: %s\n       %s:%d: %s */\n", op_info[op->kind].name, op->label ? " " : "", op->label ? op->label : "",
               fused.buf ? fused.buf : "", shape_c(op->out), op->loc.file ? op->loc.file->path : "?", op->loc.line, source_line(op->loc));
}

static void call_line(Emitter *e, const Op *op, const char *fn, const char *args) {
    call_comment(e, op);
    buf_printf(&e->body, "    %s(%s);\n    TICK(%d);\n", fn, args, op->id);
}

/* The common case: out, then every input, as pointers. */
/* The pointers an op's function takes: its output, every input, and its scratch memory if any. */
static const char *op_pointers(Emitter *e, const Op *op) {
    Buf args = {0};
    buf_puts(&args, ptr(e, op->out));
    for (int i = 0; i < op->in.len; i++)
        buf_printf(&args, ", %s", ptr(e, op->in.items[i]));
    if (op->impl.scratch_floats > 0)
        buf_printf(&args, ", %s", scratch_ref(e, op, 0));
    return buf_take(&args);
}

static void simple_call(Emitter *e, const Op *op, const char *params, const char *body) {
    call_line(e, op, specialise(e, op, params, body), op_pointers(e, op));
}

/* ---------------------------------------------------------------- per-op emitters */

/* A parallel op: the function computes part `part` of `parts` (a range of output channels or
   features), reading its pointers from an nnrt_op_args; the call goes through the thread pool. Every
   output element is computed by the same code whatever the split, so results do not depend on the
   thread count. */
static void parallel_call(Emitter *e, const Op *op, const char *body) {
    const char *fn = specialise(e, op, "const nnrt_op_args *a, int part, int parts", body);
    e->parallel = true;
    call_comment(e, op);
    buf_printf(&e->body, "    PARALLEL(%s, %s);\n    TICK(%d);\n", fn, op_pointers(e, op), op->id);
}

/* "c1 * v1 + c2 * v2" without the zero terms and unit factors: index arithmetic as a person writes it. */
static const char *affine(long long c1, const char *v1, long long c2, const char *v2) {
    Buf b = {0};
    const long long c[2] = {c1, c2};
    const char *v[2] = {v1, v2};
    for (int i = 0; i < 2; i++) {
        if (c[i] == 0 || !v[i])
            continue;
        buf_printf(&b, "%s%s", b.len ? " + " : "", v[i]);
        if (c[i] != 1)
            buf_printf(&b, " * %lld", c[i]);
    }
    return b.len ? buf_take(&b) : "0";
}

/* A pointer plus an offset, or just the pointer. */
static const char *at(const char *base, const char *offset) {
    return strcmp(offset, "0") == 0 ? base : format("%s + %s", base, offset);
}

/* The runtime's name of an activation: NNK_ACT_RELU, ... (the same rows of nnk_acts.def). */
static const char *act_enum(ActKind k) {
    static const char *const names[ACT_COUNT] = {
        [ACT_NONE] = "NNK_ACT_NONE",
#define ACT(ID, NAME, EXPR) [ACT_##ID] = "NNK_ACT_" #ID,
#include "kernels/nnk_acts.def"
#undef ACT
    };
    return names[k];
}

/* The fused epilogue of a layer (fuse_epilogue.c) on the `len` elements at `y_at`, or "". */
static const char *epilogue(const Op *op, const char *indent, const char *y_at, const char *len) {
    const Attrs *a = &op->a;
    if (!a->act1 && !a->residual)
        return "";
    return format("%snnk_epilogue(%s, %s, %s, %s, %s);\n", indent, at("a->y", y_at),
                  a->residual ? at(format("a->in[%d]", a->residual), y_at) : "NULL", len, act_enum(a->act1),
                  act_enum(a->act2));
}

/* A weight that prepare() rearranges (nnk_pack_weight), and the strip width nnk_gemm reads it with:
   NNK_MR rows of a convolution's A, NNK_NR columns of a linear layer's B. */
typedef struct {
    const Tensor *w;
    int width;
} Packed;

/* Whether op reads weight w rearranged by prepare() in strips (select_kernels chose it: op->impl.pack_width);
   if so, w joins e->packed. */
static bool pack(Emitter *e, const Op *op, const Tensor *w) {
    if (!op->impl.pack_width)
        return false;
    Packed *p = xcalloc(1, sizeof *p);
    p->w = w;
    p->width = op->impl.pack_width;
    vec_push(&e->packed, p);
    return true;
}

/* Floats in the largest packed weight: the temporary copy nnk_pack_weight needs. */
static long long largest_packed(const Emitter *e) {
    long long most = 0;
    for (int i = 0; i < e->packed.len; i++) {
        const Packed *p = e->packed.items[i];
        long long n = tensor_numel(p->w);
        most = n > most ? n : most;
    }
    return most;
}

/* The first lines of a parallel op's body that computes rows [o0, o1) of a weight with `rows` rows,
   split at multiples of `unit` (packed) or anywhere. */
static void split_rows(Buf *body, long long rows, bool packed, int unit) {
    if (packed)
        buf_printf(body, "    long o0 = %dL * (%lldL * part / parts), o1 = %dL * (%lldL * (part + 1) / parts);\n", unit, rows / unit, unit,
                   rows / unit);
    else
        buf_printf(body, "    long o0 = %lldL * part / parts, o1 = %lldL * (part + 1) / parts;\n", rows, rows);
    buf_puts(body, "    if (o0 == o1)\n        return;\n");
}

/* The scratch of the thread running `part`, for an op on nnk_gemm. */
/* Each thread's scratch must hold `floats`, written `expr` with the runtime's macros. */
static void need_scratch(Emitter *e, long long floats, const char *expr) {
    e->gemm = true;
    if (e->scratch_floats < floats) {
        e->scratch_floats = floats;
        e->scratch_expr = expr;
    }
}

static const char *gemm_scratch(Emitter *e) {
    need_scratch(e, NNK_GEMM_SCRATCH, "NNK_GEMM_SCRATCH");
    e->tile = true;
    return "    float *scratch = a->scratch + (long)part * SCRATCH_FLOATS;\n";
}

/* conv2d with groups = 1 as a blocked product (nnk_conv2d_gemm), the epilogue fused into it. When the
   channels fill whole strips of NNK_MR and nothing else reads the weight, prepare() rearranges it into
   strips once. Each part computes a range of pixels [p0, p1) of every channel, in whole panels of NNK_NR,
   for a large plane (each thread then gathers only its own patches), or else a range of channels
   [o0, o1), at strip edges when packed. */
static void emit_conv2d_gemm(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0], *y = op->out, *w = op->in.items[1];
    const Attrs *a = &op->a;
    long long N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3], O = y->dims[1], OH = y->dims[2], OW = y->dims[3];
    long long P = OH * OW, NR = op->impl.uk->nr;
    bool by_pixels = op->impl.split == SPLIT_PIXELS;
    const char *n = N == 1 ? NULL : "n", *ind = N == 1 ? "    " : "        ";
    const char *y_at = by_pixels ? affine(O * P, n, 0, NULL) : affine(O * P, n, P, "o0");
    bool packed = pack(e, op, w);
    Buf body = {0};
    if (by_pixels) {
        long long panels = (P + NR - 1) / NR;
        buf_printf(&body, "    long p0 = %lldL * (%lldL * part / parts), p1 = %lldL * (%lldL * (part + 1) / parts);\n", NR, panels, NR, panels);
        if (P % NR)
            buf_printf(&body, "    p1 = p1 < %lld ? p1 : %lld;\n", P, P);
        buf_puts(&body, "    if (p0 == p1)\n        return;\n");
    } else {
        split_rows(&body, O, packed, op->impl.pack_width);
    }
    buf_puts(&body, gemm_scratch(e));
    if (N > 1)
        buf_printf(&body, "    for (long n = 0; n < %lld; n++)\n", N);
    buf_printf(&body, "%snnk_conv2d_gemm(%s, %s, a->in[1], %d, %lld, %s, %s, %s, %s, %s,\n"
                      "%s                %lld, %lld, %lld, %s, %lld, %lld, %s, %d, %d, %d, %d, %d, %d, %d, %d, scratch);\n",
               ind, at("a->y", y_at), at("a->in[0]", affine(C * H * W, n, 0, NULL)), packed, O, by_pixels ? "0" : "(int)o0",
               a->has_bias ? (by_pixels ? "a->in[2]" : "a->in[2] + o0") : "NULL", a->residual ? at(format("a->in[%d]", a->residual), y_at) : "NULL",
               act_enum(a->act1), act_enum(a->act2), ind, C, H, W, by_pixels ? format("%lld", O) : "(int)(o1 - o0)", OH,
               OW, by_pixels ? "(int)p0, (int)p1" : format("0, %lld", P), a->kernel[0], a->kernel[1], a->stride[0], a->stride[1], a->pad[0],
               a->pad[1], a->dilation[0], a->dilation[1]);
    parallel_call(e, op, body.buf);
    e->flops[op->id] = 2.0 * (double)tensor_numel(y) * (double)prod(w, 1, 4);
}

static void emit_conv2d(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0], *y = op->out, *w = op->in.items[1];
    const Attrs *a = &op->a;
    if (op->impl.family == IMPL_GEMM) {
        emit_conv2d_gemm(e, op);
        return;
    }
    long long N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3], O = y->dims[1], OH = y->dims[2], OW = y->dims[3];
    /* each part computes a range [u0, u1) of output channels, or of whole groups when grouped */
    long long G = a->groups, units = G == 1 ? O : G, o_per = O / units, c_per = G == 1 ? C : C / G;
    const char *n = N == 1 ? NULL : "n", *ind = N == 1 ? "    " : "        ";
    const char *y_at = affine(O * OH * OW, n, o_per * OH * OW, "u0"), *x_at = affine(C * H * W, n, G == 1 ? 0 : c_per * H * W, "u0");
    Buf body = {0};
    buf_printf(&body, "    long u0 = %lldL * part / parts, u1 = %lldL * (part + 1) / parts;\n", units, units);
    buf_puts(&body, "    if (u0 == u1)\n        return;   /* more threads than groups: this one has none */\n");
    if (N > 1)
        buf_printf(&body, "    for (long n = 0; n < %lld; n++) {\n", N);
    buf_printf(&body, "%snnk_conv2d(%s, %s, %s, %s,\n%s           1, %s, %lld, %lld, (int)(u1 - u0)%s, %lld, %lld, %d, %d, %d, %d, %d, %d, %d, %d, %s);\n",
               ind, at("a->y", y_at), at("a->in[0]", x_at), at("a->in[1]", affine(o_per * prod(w, 1, 4), "u0", 0, NULL)),
               a->has_bias ? at("a->in[2]", affine(o_per, "u0", 0, NULL)) : "NULL", ind,
               G == 1 ? format("%lld", C) : format("(int)(u1 - u0) * %lld", c_per), H, W, o_per == 1 ? "" : format(" * %lld", o_per), OH, OW,
               a->kernel[0], a->kernel[1], a->stride[0], a->stride[1], a->pad[0], a->pad[1], a->dilation[0], a->dilation[1],
               G == 1 ? "1" : "(int)(u1 - u0)");
    buf_puts(&body, epilogue(op, ind, y_at, affine(o_per * OH * OW, "(u1 - u0)", 0, NULL)));
    if (N > 1)
        buf_puts(&body, "    }\n");
    parallel_call(e, op, body.buf);
    e->flops[op->id] = 2.0 * (double)tensor_numel(y) * (double)prod(w, 1, 4);
}

/* nn.Linear; each part computes a range [o0, o1) of output features, for every row. With a few rows
   (a classifier at batch 1) each output is a dot product of two rows (nnk_linear), which reads the weight
   once; with more, a blocked product (nnk_linear_gemm), reading a weight that prepare() rearranged into
   panels when its features fill whole panels of NNK_NR (the parts then split at panel edges). */
static void emit_linear(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0], *y = op->out;
    long long K = x->dims[x->rank - 1], O = y->dims[y->rank - 1], M = tensor_numel(x) / K;
    const Attrs *a = &op->a;
    Buf body = {0};
    if (op->impl.family == IMPL_DOT) {
        const char *m = M == 1 ? NULL : "m", *ind = M == 1 ? "    " : "        ";
        const char *y_at = affine(O, m, 1, "o0");
        buf_printf(&body, "    long o0 = %lldL * part / parts, o1 = %lldL * (part + 1) / parts;\n", O, O);
        buf_puts(&body, "    if (o0 == o1)\n        return;\n");
        if (M > 1)
            buf_printf(&body, "    for (long m = 0; m < %lld; m++) {\n", M);
        buf_printf(&body, "%snnk_linear(%s, %s, %s, %s, 1, %lld, (int)(o1 - o0));\n", ind, at("a->y", y_at),
                   at("a->in[0]", affine(K, m, 0, NULL)), at("a->in[1]", affine(K, "o0", 0, NULL)), a->has_bias ? "a->in[2] + o0" : "NULL", K);
        buf_puts(&body, epilogue(op, ind, y_at, "o1 - o0"));
        if (M > 1)
            buf_puts(&body, "    }\n");
    } else {
        bool packed = pack(e, op, op->in.items[1]);
        split_rows(&body, O, packed, op->impl.pack_width);
        buf_puts(&body, gemm_scratch(e));
        buf_printf(&body, "    nnk_linear_gemm(a->y + o0, %lld, a->in[0], a->in[1], %d, %lld, (int)o0, %s, %s, %s, %s,\n"
                          "                    %lld, %lld, (int)(o1 - o0), scratch);\n", O, packed, O, a->has_bias ? "a->in[2] + o0" : "NULL",
                   a->residual ? format("a->in[%d] + o0", a->residual) : "NULL", act_enum(a->act1), act_enum(a->act2),
                   M, K);
    }
    parallel_call(e, op, body.buf);
    e->flops[op->id] = 2.0 * (double)M * (double)K * (double)O;
}

static void emit_batchnorm(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0];
    char *body = format("    nnk_batchnorm(y, x, gamma, beta, mean, var, %lld, %lld, %lld, %s);\n", (long long)x->dims[0],
                        (long long)x->dims[1], (long long)prod(x, 2, x->rank), c_float(op->a.eps));
    simple_call(e, op, "float *y, const float *x, const float *gamma, const float *beta, const float *mean, const float *var", body);
}

static void emit_layernorm(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0];
    int64_t D = x->dims[x->rank - 1];
    char *body = format("    nnk_layernorm(y, x, gamma, beta, %lld, %lld, %s);\n", (long long)(tensor_numel(x) / D), (long long)D, c_float(op->a.eps));
    simple_call(e, op, "float *y, const float *x, const float *gamma, const float *beta", body);
}

/* "o0", or "(C + o0)". */
static const char *plus_o0(long long c) {
    return c ? format("(%lld + o0)", c) : "o0";
}

/* The whole of multi-head attention on one thread (nnk_mha), for keys too many for a row of scores to
   fit in a thread's scratch. */
static void emit_mha_serial(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0];
    bool cross = op->kind == OPK_CROSS_ATTENTION;
    const Tensor *mem = cross ? op->in.items[1] : x;
    long long N = x->dims[0], L = x->dims[1], D = x->dims[2], S = mem->dims[1];
    char *body = format("    _Static_assert(NNK_MHA_SCRATCH(%lld, %lld, %lld, %lld) <= %lld, \"scratch planned too small\");\n"
                        "    nnk_mha(y, x, %s, in_w, in_b, out_w, out_b, %lld, %lld, %lld, %lld, %d, %d, scratch);\n",
                        N, L, S, D, (long long)op->impl.scratch_floats, cross ? "mem" : "x", N, L, S, D, op->a.heads, op->a.causal);
    const char *params = cross ? "float *y, const float *x, const float *mem, const float *in_w, const float *in_b, const float *out_w, "
                                 "const float *out_b, float *scratch"
                               : "float *y, const float *x, const float *in_w, const float *in_b, const float *out_w, "
                                 "const float *out_b, float *scratch";
    simple_call(e, op, params, body);
}

/* Multi-head attention in three parallel stages, all in the op's scratch Q|K|V (NNK_MHA_SCRATCH):
   "project" computes Q, K and V with blocked products (each part a range of features), "attend" runs
   the heads (each part a range of (batch, head) pairs) and leaves their outputs in Q, and "output"
   projects Q into y. The weights are packed when the embedding fills whole panels. */
static void emit_mha(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0];
    bool cross = op->kind == OPK_CROSS_ATTENTION;
    const Tensor *mem = cross ? op->in.items[1] : x;
    int wi = cross ? 2 : 1;   /* in_w, in_b, out_w, out_b from here */
    long long N = x->dims[0], L = x->dims[1], D = x->dims[2], S = mem->dims[1], heads = op->a.heads;
    e->flops[op->id] = 2.0 * N * (L * D * D + 2.0 * S * D * D + 2.0 * L * S * D + L * D * D);
    if (op->impl.family == IMPL_SERIAL) {
        emit_mha_serial(e, op);
        return;
    }
    const char *scratch = scratch_ref(e, op, 0);
    bool in_packed = pack(e, op, op->in.items[wi]), out_packed = pack(e, op, op->in.items[wi + 2]);
    long long k_at = N * L * D, v_at = k_at + N * S * D;

    Buf project = {0};
    split_rows(&project, D, in_packed, op->impl.pack_width);
    buf_puts(&project, gemm_scratch(e));
    const char *what[3] = {"Q", "K", "V"};
    const long long at_[3] = {0, k_at, v_at}, rows[3] = {N * L, N * S, N * S};
    for (int j = 0; j < 3; j++)
        buf_printf(&project, "    nnk_linear_gemm(%s, %lld, a->in[%d], a->in[%d], %d, %lld, (int)%s, a->in[%d] + %s, NULL, NNK_ACT_NONE,\n"
                             "                    NNK_ACT_NONE, %lld, %lld, (int)(o1 - o0), scratch);   /* %s */\n",
                   at("a->y", plus_o0(at_[j])), D, j == 0 || !cross ? 0 : 1, wi, in_packed, 3 * D, plus_o0(j * D), wi + 1,
                   plus_o0(j * D), rows[j], D, what[j]);
    const char *fn1 = specialise_stage(e, op, "project", "const nnrt_op_args *a, int part, int parts", project.buf);

    need_scratch(e, NNK_ATTEND_SCRATCH(S), format("NNK_ATTEND_SCRATCH(%lld)", S));
    char *attend = format("    long u0 = %lldL * part / parts, u1 = %lldL * (part + 1) / parts;\n"
                          "    nnk_mha_attend(a->y, a->in[0], a->in[1], %lld, %lld, %lld, %lld, %d, u0, u1, a->scratch + (long)part * SCRATCH_FLOATS);\n",
                          N * heads, N * heads, L, S, D, heads, op->a.causal);
    const char *fn2 = specialise_stage(e, op, "attend", "const nnrt_op_args *a, int part, int parts", attend);

    Buf output = {0};
    split_rows(&output, D, out_packed, op->impl.pack_width);
    buf_puts(&output, gemm_scratch(e));
    buf_printf(&output, "    nnk_linear_gemm(a->y + o0, %lld, a->in[0], a->in[1], %d, %lld, (int)o0, a->in[2] + o0, NULL, NNK_ACT_NONE, NNK_ACT_NONE,\n"
                        "                    %lld, %lld, (int)(o1 - o0), scratch);\n", D, out_packed, D, N * L, D);
    const char *fn3 = specialise_stage(e, op, "output", "const nnrt_op_args *a, int part, int parts", output.buf);

    e->parallel = true;
    call_comment(e, op);
    buf_printf(&e->body, "    PARALLEL(%s, %s, %s%s%s, %s, %s);\n", fn1, scratch, ptr(e, x), cross ? ", " : "", cross ? ptr(e, mem) : "",
               ptr(e, op->in.items[wi]), ptr(e, op->in.items[wi + 1]));
    buf_printf(&e->body, "    PARALLEL(%s, %s, %s, %s);\n", fn2, scratch, scratch_ref(e, op, k_at), scratch_ref(e, op, v_at));
    buf_printf(&e->body, "    PARALLEL(%s, %s, %s, %s, %s);\n    TICK(%d);\n", fn3, ptr(e, op->out), scratch, ptr(e, op->in.items[wi + 2]),
               ptr(e, op->in.items[wi + 3]), op->id);
}

/* An activation op: the kernel of its row of nnk_acts.def. */
static void emit_unary(Emitter *e, const Op *op) {
    if (op->a.act == ACT_NONE)
        internal_error(op, "emit_unary: %s runs no activation (its ACT column in ops.def is NONE)", op_info[op->kind].name);
    simple_call(e, op, "float *y, const float *x", format("    nnk_%s(y, x, %lld);\n", act_name[op->a.act], (long long)tensor_numel(op->out)));
}

/* Element strides of t read as a tensor of shape out (aligned from the right; 0 where broadcast). */
static const char *broadcast_strides(const Tensor *t, const Tensor *out) {
    int64_t strides[MAX_RANK], s = 1;
    for (int i = out->rank - 1; i >= 0; i--) {
        int j = t->rank - out->rank + i;
        int64_t d = j >= 0 ? t->dims[j] : 1;
        strides[i] = d == 1 ? 0 : s;
        s *= d;
    }
    return int_array(out->rank, strides);
}

static const char *binop_enum(Operator op, bool reversed) {
    switch (op) {
    case OP_ADD: return "NNK_ADD";
    case OP_SUB: return reversed ? "NNK_RSUB" : "NNK_SUB";
    case OP_MUL: return "NNK_MUL";
    default: return reversed ? "NNK_RDIV" : "NNK_DIV";
    }
}

static void emit_binary(Emitter *e, const Op *op) {
    static const Operator ops[] = {[OPK_ADD] = OP_ADD, [OPK_SUB] = OP_SUB, [OPK_MUL] = OP_MUL, [OPK_DIV] = OP_DIV};
    const Tensor *a = op->in.items[0], *b = op->in.items[1], *y = op->out;
    char *body = format("    static const int dims[] = %s;\n    static const long a_strides[] = %s, b_strides[] = %s;\n"
                        "    nnk_binary(y, a, b, %s, %d, dims, a_strides, b_strides);\n",
                        int_array(y->rank, y->dims), broadcast_strides(a, y), broadcast_strides(b, y), binop_enum(ops[op->kind], false), y->rank);
    simple_call(e, op, "float *y, const float *a, const float *b", body);
}

static void emit_scalar(Emitter *e, const Op *op) {
    char *body = format("    nnk_scalar(y, x, %s, %s, %lld);\n", c_float(op->a.value), binop_enum(op->a.binop, op->a.scalar_first),
                        (long long)tensor_numel(op->out));
    simple_call(e, op, "float *y, const float *x", body);
}

static void emit_softmax(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0];
    int ax = op->a.axis;
    char *body = format("    nnk_softmax(y, x, %lld, %lld, %lld);\n", (long long)prod(x, 0, ax), (long long)x->dims[ax],
                        (long long)prod(x, ax + 1, x->rank));
    simple_call(e, op, "float *y, const float *x", body);
}

static void emit_pool(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0], *y = op->out;
    const Attrs *a = &op->a;
    char *body = format("    %s(y, x, %lld, %lld, %lld, %lld, %lld, %lld, %d, %d, %d, %d, %d, %d);\n",
                        op->kind == OPK_MAXPOOL ? "nnk_maxpool2d" : "nnk_avgpool2d", (long long)x->dims[0], (long long)x->dims[1],
                        (long long)x->dims[2], (long long)x->dims[3], (long long)y->dims[2], (long long)y->dims[3], a->kernel[0],
                        a->kernel[1], a->stride[0], a->stride[1], a->pad[0], a->pad[1]);
    simple_call(e, op, "float *restrict y, const float *restrict x", body);
}

static void emit_adaptive_avgpool(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0], *y = op->out;
    char *body = format("    nnk_adaptive_avgpool2d(y, x, %lld, %lld, %lld, %lld, %lld, %lld);\n", (long long)x->dims[0], (long long)x->dims[1],
                        (long long)x->dims[2], (long long)x->dims[3], (long long)y->dims[2], (long long)y->dims[3]);
    simple_call(e, op, "float *restrict y, const float *restrict x", body);
}

static void emit_pad(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0];
    int ax = op->a.axis;
    char *body = format("    nnk_pad(y, x, %lld, %lld, %lld, %lld, %lld, %s);\n", (long long)prod(x, 0, ax), (long long)x->dims[ax],
                        (long long)prod(x, ax + 1, x->rank), (long long)op->a.before, (long long)op->a.after, c_float(op->a.value));
    simple_call(e, op, "float *restrict y, const float *restrict x", body);
}

/* A view costs no code: a comment says where its memory is. */
static bool emit_view(Emitter *e, const Op *op) {
    if (!op->out->view_of)
        return false;
    buf_printf(&e->body, "\n    /* %s%s%s: %s is a view of %s at %s */\n", op_info[op->kind].name, op->label ? " " : "", op->label ? op->label : "",
               shape_c(op->out), shape_c(op->in.items[0]), ptr(e, op->out));
    return true;
}

/* A reshape is a view unless it produces a model output, which must be copied out. */
static void emit_reshape(Emitter *e, const Op *op) {
    if (emit_view(e, op))
        return;
    call_comment(e, op);
    buf_printf(&e->body, "    memcpy(%s, %s, %lld * sizeof(float));\n    TICK(%d);\n", ptr(e, op->out), ptr(e, op->in.items[0]),
               (long long)tensor_numel(op->out), op->id);
}

static void emit_transpose(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0];
    if (emit_view(e, op))
        return;
    int64_t perm[MAX_RANK];
    for (int i = 0; i < x->rank; i++)
        perm[i] = op->a.perm[i];
    char *body = format("    static const int dims[] = %s, perm[] = %s;\n    nnk_transpose(y, x, %d, dims, perm);\n",
                        int_array(x->rank, x->dims), int_array(x->rank, perm), x->rank);
    simple_call(e, op, "float *restrict y, const float *restrict x", body);
}

static void emit_concat(Emitter *e, const Op *op) {
    const Tensor *y = op->out;
    int ax = op->a.axis;
    call_comment(e, op);
    int64_t offset = 0;
    for (int i = 0; i < op->in.len; i++) {
        const Tensor *x = op->in.items[i];
        buf_printf(&e->body, "    nnk_copy_axis(%s, %s, %lld, %lld, %lld, %lld, %lld);\n", ptr(e, y), ptr(e, x), (long long)prod(y, 0, ax),
                   (long long)x->dims[ax], (long long)prod(y, ax + 1, y->rank), (long long)y->dims[ax], (long long)offset);
        offset += x->dims[ax];
    }
    buf_printf(&e->body, "    TICK(%d);\n", op->id);
}

static void emit_slice(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0];
    if (emit_view(e, op))
        return;
    int ax = op->a.axis;
    char *body = format("    nnk_slice(y, x, %lld, %lld, %lld, %lld, %lld, %lld);\n", (long long)prod(x, 0, ax), (long long)x->dims[ax],
                        (long long)prod(x, ax + 1, x->rank), (long long)op->a.start, (long long)op->a.step, (long long)op->out->dims[ax]);
    simple_call(e, op, "float *restrict y, const float *restrict x", body);
}

static void emit_expand(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0], *y = op->out;
    char *body = format("    static const int dims[] = %s;\n    static const long x_strides[] = %s;\n    nnk_broadcast(y, x, %d, dims, x_strides);\n",
                        int_array(y->rank, y->dims), broadcast_strides(x, y), y->rank);
    simple_call(e, op, "float *restrict y, const float *restrict x", body);
}

static void emit_matmul(Emitter *e, const Op *op) {
    const Tensor *a = op->in.items[0], *b = op->in.items[1], *y = op->out;
    Tensor a2, b2;   /* 1-D operands as matrices, as the shape rule saw them */
    matmul_operands(a, b, &a2, &b2);
    int64_t M = a2.dims[a2.rank - 2], K = a2.dims[a2.rank - 1], N = b2.dims[b2.rank - 1];
    int brank = (a2.rank > b2.rank ? a2.rank : b2.rank) - 2;
    int64_t bdims[MAX_RANK], as[MAX_RANK], bs[MAX_RANK];
    int64_t sa = M * K, sb = K * N;
    for (int i = brank - 1; i >= 0; i--) {
        int ia = a2.rank - 2 - brank + i, ib = b2.rank - 2 - brank + i;
        int64_t da = ia >= 0 ? a2.dims[ia] : 1, db = ib >= 0 ? b2.dims[ib] : 1;
        bdims[i] = da > db ? da : db;
        as[i] = da == 1 ? 0 : sa;
        bs[i] = db == 1 ? 0 : sb;
        sa *= da;
        sb *= db;
    }
    Buf body = {0};
    if (brank > 0)
        buf_printf(&body, "    static const int bdims[] = %s;\n    static const long a_strides[] = %s, b_strides[] = %s;\n",
                   int_array(brank, bdims), int_array(brank, as), int_array(brank, bs));
    buf_printf(&body, "    nnk_matmul(y, a, b, %d, %s, %lld, %lld, %lld);\n", brank, brank ? "bdims, a_strides, b_strides" : "NULL, NULL, NULL",
               (long long)M, (long long)K, (long long)N);
    simple_call(e, op, "float *restrict y, const float *restrict a, const float *restrict b", body.buf);
    e->flops[op->id] = 2.0 * (double)tensor_numel(y) * (double)K;
}

/* Scaled dot-product attention: each part takes a range of the batch (every leading axis) and runs
   nnk_attend_blocked on each of its matrices, in the thread's scratch. */
static void emit_sdpa(Emitter *e, const Op *op) {
    const Tensor *q = op->in.items[0], *k = op->in.items[1], *v = op->in.items[2];
    int r = q->rank;
    long long B = prod(q, 0, r - 2), L = q->dims[r - 2], D = q->dims[r - 1], S = k->dims[r - 2], Dv = v->dims[r - 1];
    e->flops[op->id] = 2.0 * B * L * S * (D + Dv);
    need_scratch(e, NNK_ATTEND_SCRATCH(S), format("NNK_ATTEND_SCRATCH(%lld)", S));
    char *body = format("    long b0 = %lldL * part / parts, b1 = %lldL * (part + 1) / parts;\n"
                        "    for (long b = b0; b < b1; b++)\n"
                        "        nnk_attend_blocked(a->y + b * %lld, %lld, a->in[0] + b * %lld, %lld, a->in[1] + b * %lld, %lld, a->in[2] + b * %lld, %lld,\n"
                        "                           %lld, %lld, %lld, %lld, %s, %d, a->scratch + (long)part * SCRATCH_FLOATS);\n",
                        B, B, L * Dv, Dv, L * D, D, S * D, D, S * Dv, Dv, L, S, D, Dv, format("1.0f / sqrtf(%lld.0f)", D), op->a.causal);
    const char *fn = specialise(e, op, "const nnrt_op_args *a, int part, int parts", body);
    e->parallel = true;
    call_comment(e, op);
    buf_printf(&e->body, "    PARALLEL(%s, %s, %s, %s, %s);\n    TICK(%d);\n", fn, ptr(e, op->out), ptr(e, q), ptr(e, k), ptr(e, v), op->id);
}

/* The emitters by op kind, from ops.def (0 for the rows that lower to other ops). */
typedef void EmitFn(Emitter *e, const Op *op);
static EmitFn *const emit_fn[OPK_COUNT] = {
#define OP(id, name, user, props, act, sig, build, emit) [OPK_##id] = emit,
#include "ops.def"
#undef OP
};

bool op_has_emitter(OpKind kind) { return emit_fn[kind] != NULL; }

/* ---------------------------------------------------------------- the files */

static const char *upper(const char *s) {
    char *u = xstrdup(s);
    for (char *p = u; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    return u;
}

/* The part of input i's macros after the model's prefix: its name in capitals (RESNET50_IMAGE_SHAPE),
   or INPUTi when that could meet another input's (`x` and `X`, `input1`) or an output's (`output`). */
static const char *input_macro(const Graph *g, int i) {
    const char *n = upper(c_ident(VEC_AT(g->inputs, i, Tensor *)->name));
    for (int j = 0; j < g->inputs.len; j++)
        if (j != i && strcmp(upper(c_ident(VEC_AT(g->inputs, j, Tensor *)->name)), n) == 0)
            return format("INPUT%d", i);
    for (int j = 0; j < g->outputs.len; j++)
        if (strcmp(upper(output_name(g, j)), n) == 0)
            return format("INPUT%d", i);
    return strncmp(n, "INPUT", 5) == 0 ? format("INPUT%d", i) : n;   /* "input1" may not take INPUT1 from another */
}

static void emit_header(Emitter *e, Buf *h) {
    const Graph *g = e->g;
    buf_printf(h, "/* %s.h — generated by nnc %s from %s. The API of model '%s'. */\n", e->id, NNC_VERSION, e->o->source_path, g->name);
    buf_printf(h, "#ifndef %s_H\n#define %s_H\n\n#include <stddef.h>\n\n", e->ID, e->ID);
    for (int i = 0; i < g->inputs.len; i++) {
        Tensor *t = g->inputs.items[i];
        const char *n = input_macro(g, i);
        buf_printf(h, "/* input %d '%s': f32%s */\n#define %s_%s_RANK %d\n#define %s_%s_SHAPE %s\n#define %s_%s_SIZE %lld\n", i, t->name,
                   shape_c(t), e->ID, n, t->rank, e->ID, n, int_array(t->rank, t->dims), e->ID, n, (long long)tensor_numel(t));
    }
    for (int i = 0; i < g->outputs.len; i++) {
        Tensor *t = g->outputs.items[i];
        const char *n = upper(output_name(g, i));
        buf_printf(h, "/* output %d: f32%s */\n#define %s_%s_RANK %d\n#define %s_%s_SHAPE %s\n#define %s_%s_SIZE %lld\n", i, shape_c(t), e->ID,
                   n, t->rank, e->ID, n, int_array(t->rank, t->dims), e->ID, n, (long long)tensor_numel(t));
    }
    buf_printf(h, "\n/* Memory the model allocates when created: intermediates and weights, in bytes. */\n");
    buf_printf(h, "#define %s_ARENA_BYTES %lld\n#define %s_WEIGHT_BYTES %lld\n", e->ID, (long long)g->arena_bytes, e->ID,
               (long long)e->weight_floats * 4);
    buf_printf(h, "/* and, for each thread, scratch for the blocked matrix products */\n#define %s_SCRATCH_BYTES_PER_THREAD %lld\n\n", e->ID,
               e->scratch_floats * 4);
    buf_printf(h, "typedef struct %s %s;\n\n", e->id, e->id);
    buf_printf(h, "/* Creates a model that runs on `threads` threads (1: no threads); NULL when out of memory, or when\n"
                  "   this CPU lacks instructions the file was compiled to use (nnrt_cpu_missing() names them). */\n");
    buf_printf(h, "%s *%s_new(int threads);\n", e->id, e->id);
    buf_printf(h, "/* Loads weights from a safetensors file, or from one in memory (the bytes are copied).\n"
                  "   Every weight is checked; 0 on success, -1 with %s_last_error() set. */\n", e->id);
    buf_printf(h, "int %s_load(%s *m, const char *safetensors_path);\n", e->id, e->id);
    buf_printf(h, "int %s_load_memory(%s *m, const void *data, size_t size);\n", e->id, e->id);
    if (e->o->embed_weights)
        buf_printf(h, "/* Loads the weights embedded in the generated C. */\nint %s_load_embedded(%s *m);\n", e->id, e->id);
    buf_printf(h, "/* Called for each weight in the file that the model does not use (may be NULL). */\n");
    buf_printf(h, "void %s_on_warning(%s *m, void (*fn)(void *user, const char *message), void *user);\n", e->id, e->id);
    buf_printf(h, "/* Runs one inference: reads the inputs, writes the outputs; allocates nothing. 0 on success. */\n");
    buf_printf(h, "int %s_run(%s *m", e->id, e->id);
    for (int i = 0; i < g->inputs.len; i++)
        buf_printf(h, ", const float *%s", input_ident(g->inputs.items[i]));
    for (int i = 0; i < g->outputs.len; i++)
        buf_printf(h, ", float *%s", output_name(g, i));
    buf_printf(h, ");\nconst char *%s_last_error(const %s *m);\nvoid %s_free(%s *m);\n", e->id, e->id, e->id, e->id);
    buf_printf(h, "/* Per-op timing for the next runs (see %s_profile_report). */\n", e->id);
    buf_printf(h, "void %s_profile(%s *m, int on);\n", e->id, e->id);
    buf_printf(h, "void %s_profile_report(const %s *m, int runs);\n\n#endif\n", e->id, e->id);
}

/* --embed-weights: the weights are loaded and checked here, at compile time, with the runtime's own
   loader; the derived weights and batch-norm folds are computed here too, and the finished weight
   block goes into the C as 32-bit words (exact, and compact enough). The program then needs no file
   and no parsing: loading is a copy. */
static bool emit_embedded(Emitter *e, Buf *c) {
    const Graph *g = e->g;
    nnrt_error err;
    nnrt_file file;
    if (nnrt_map_file(e->o->weights_path, &file, &err) != 0) {
        diag_plain("--weights: %s", err.msg);
        return false;
    }
    nnrt_weight_spec *specs = xcalloc((size_t)g->weights.len + 1, sizeof *specs);
    size_t n = 0;
    for (int i = 0; i < g->weights.len; i++) {
        Tensor *t = g->weights.items[i];
        if (t->derived)
            continue;
        specs[n] = (nnrt_weight_spec){.key = t->name, .rank = t->rank, .offset = (size_t)e->weight_at[t->id]};
        memcpy(specs[n].dims, t->dims, sizeof(int64_t) * (size_t)t->rank);
        n++;
    }
    float *w = xcalloc((size_t)e->weight_floats + 1, sizeof *w);
    int status = nnrt_load_safetensors(file.data, file.size, specs, n, w, NULL, NULL, &err);
    nnrt_unmap_file(&file);
    if (status != 0) {   /* the weights do not fit the model: an error in the input, exit status 1 */
        diag_plain("--weights %s: %s", e->o->weights_path, err.msg);
        diag_error_count++;
        return false;
    }
    for (int i = 0; i < g->folds.len; i++) {   /* what prepare() does at load time for a file */
        BnFold *f = g->folds.items[i];
        int64_t O = f->weight->dims[0];
        nnk_fold_batchnorm(w + e->weight_at[f->weight->id], w + e->weight_at[f->bias->id], w + e->weight_at[f->gamma->id],
                           w + e->weight_at[f->beta->id], w + e->weight_at[f->mean->id], w + e->weight_at[f->var->id], (int)O,
                           tensor_numel(f->weight) / O, (float)f->eps);
    }
    float *tmp = xcalloc((size_t)largest_packed(e) + 1, sizeof *tmp);
    for (int i = 0; i < e->packed.len; i++) {
        const Packed *p = e->packed.items[i];
        nnk_pack_weight(w + e->weight_at[p->w->id], (int)p->w->dims[0], tensor_numel(p->w) / p->w->dims[0], p->width, tmp);
    }
    buf_printf(c, "/* The weights of %s, embedded with --embed-weights: checked, batch norms folded and the weights of\n"
                  "   blocked products packed, by nnc. */\n", e->o->weights_path);
    buf_printf(c, "static const uint32_t embedded_weights[%lld] = {\n", (long long)(e->weight_floats > 0 ? e->weight_floats : 1));
    for (int64_t i = 0; i < e->weight_floats; i++) {
        uint32_t bits;
        memcpy(&bits, &w[i], 4);
        buf_printf(c, "0x%08x,%s", bits, i % 8 == 7 ? "\n" : "");
    }
    buf_printf(c, "%s};\n\nint %s_load_embedded(%s *m) {\n    memcpy(m->weights, embedded_weights, sizeof embedded_weights);\n    return 0;\n}\n\n",
               e->weight_floats % 8 ? "\n" : "", e->id, e->id);
    free(w);
    return true;
}

static void emit_main(Emitter *e, Buf *c);

/* What is done to the weights once, after loading: derived weights start at zero, batch norms are
   folded into the layers before them (passes/fold_bn.c), then the weights that blocked products read
   packed are rearranged (nnk_pack_weight). -1 when there is no memory for that. */
/* A weight's offset in the weight block, as the generated C names it: w_conv1_weight, or a number. */
static const char *woff(const Emitter *e, const Tensor *t) {
    return e->weight_name ? format("w_%s", e->weight_name[t->id]) : format("%lld", (long long)e->weight_at[t->id]);
}

static void emit_prepare(Emitter *e, Buf *c) {
    const Graph *g = e->g;
    int derived = 0;
    for (int i = 0; i < g->weights.len; i++)
        derived += VEC_AT(g->weights, i, Tensor *)->derived;
    if (derived) {
        buf_puts(c, "/* Weights computed at load time (a folded bias): offset, floats. They start at zero. */\n"
                    "static const struct { long at, floats; } derived[] = {\n");
        for (int i = 0; i < g->weights.len; i++) {
            Tensor *t = g->weights.items[i];
            if (t->derived)
                buf_printf(c, "    {%s, %lld},\n", woff(e, t), (long long)tensor_numel(t));
        }
        buf_puts(c, "};\n\n");
    }
    if (g->folds.len) {
        buf_puts(c, "/* Batch norms folded into the layer before each (passes/fold_bn.c): the layer's weight and bias, the\n"
                    "   norm's weight, bias, running mean and variance, the layer's output channels and weights per channel, eps. */\n"
                    "static const nnrt_bn_fold folds[] = {\n");
        for (int i = 0; i < g->folds.len; i++) {
            BnFold *f = g->folds.items[i];
            int64_t O = f->weight->dims[0];
            buf_printf(c, "    {%s, %s, %s, %s, %s, %s, %lld, %lld, %s},\n", woff(e, f->weight), woff(e, f->bias), woff(e, f->gamma),
                       woff(e, f->beta), woff(e, f->mean), woff(e, f->var), (long long)O, (long long)(tensor_numel(f->weight) / O),
                       c_float(f->eps));
        }
        buf_puts(c, "};\n\n");
    }
    if (e->packed.len) {
        buf_puts(c, "/* Weights the blocked products read rearranged into strips (nnk_pack_weight): offset, rows, columns, strip width. */\n"
                    "static const nnrt_packing packings[] = {\n");
        for (int i = 0; i < e->packed.len; i++) {
            const Packed *p = e->packed.items[i];
            long long rows = p->w->dims[0];
            if (p->width != NNK_MR && p->width != NNK_NR)
                internal_error(NULL, "a weight packed %d wide, which is neither NNK_MR nor NNK_NR", p->width);
            buf_printf(c, "    {%s, %lld, %lld, %s},\n", woff(e, p->w), rows, (long long)(tensor_numel(p->w) / rows),
                       p->width == NNK_MR ? "NNK_MR" : "NNK_NR");
        }
        buf_puts(c, "};\n\n");
    }
    buf_printf(c, "/* Once after loading: %d weight(s) derived, %d batch norm(s) folded, %d weight(s) packed. */\n"
                  "static int prepare(%s *m) {\n", derived, g->folds.len, e->packed.len, e->id);
    if (!derived && !g->folds.len && !e->packed.len)
        buf_puts(c, "    (void)m;\n");
    if (derived)
        buf_puts(c, "    for (size_t i = 0; i < sizeof derived / sizeof *derived; i++)\n"
                    "        memset(m->weights + derived[i].at, 0, (size_t)derived[i].floats * sizeof(float));\n");
    if (g->folds.len)
        buf_puts(c, "    for (size_t i = 0; i < sizeof folds / sizeof *folds; i++) {\n        const nnrt_bn_fold *f = &folds[i];\n"
                    "        float *w = m->weights;\n"
                    "        nnk_fold_batchnorm(w + f->weight, w + f->bias, w + f->gamma, w + f->beta, w + f->mean, w + f->var, f->channels, f->per_channel, f->eps);\n"
                    "    }\n");
    if (e->packed.len) {
        buf_printf(c, "    float *tmp = malloc(%lld * sizeof(float));   /* the largest packed weight */\n"
                      "    if (!tmp) {\n        nnrt_seterr(&m->error, \"out of memory packing the weights\");\n        return -1;\n    }\n"
                      "    for (size_t i = 0; i < sizeof packings / sizeof *packings; i++)\n"
                      "        nnk_pack_weight(m->weights + packings[i].at, packings[i].rows, packings[i].cols, packings[i].width, tmp);\n"
                      "    free(tmp);\n",
                   largest_packed(e));
    }
    buf_puts(c, "    return 0;\n}\n\n");
}

bool emit_c(const Graph *g, const EmitOptions *o, Buf *c, Buf *h) {
    Emitter E = {.g = g, .o = o};
    Emitter *e = &E;
    e->id = c_ident(g->name);
    e->ID = upper(e->id);
    e->weight_at = xcalloc((size_t)g->tensors.len + 1, sizeof *e->weight_at);
    e->flops = xcalloc((size_t)g->ops.len + 1, sizeof *e->flops);
    e->arena_name = xcalloc((size_t)g->tensors.len + 1, sizeof *e->arena_name);
    e->scratch_name = xcalloc((size_t)g->ops.len + 1, sizeof *e->scratch_name);
    for (int i = 0; i < g->weights.len; i++) {
        Tensor *t = g->weights.items[i];
        e->weight_at[t->id] = e->weight_floats;
        e->weight_floats += (tensor_numel(t) + 15) / 16 * 16;   /* each weight 64-byte aligned */
    }
    name_weights(e);
    for (int i = 0; i < g->ops.len; i++) {
        const Op *op = g->ops.items[i];
        emit_fn[op->kind](e, op);
    }
    emit_header(e, h);

    buf_printf(c, "/*\n * %s.c — generated by nnc %s from %s. Do not edit; change the .net file.\n *\n", e->id, NNC_VERSION, o->source_path);
    buf_printf(c, " * model %s: %d ops, %lld weight floats, an arena of %lld bytes.\n */\n", g->name, g->ops.len, (long long)e->weight_floats,
               (long long)g->arena_bytes);
    buf_printf(c, "#include \"%s\"\n\n#include \"nnrt.h\"\n#include \"kernels/nnk.h\"\n\n#include <math.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n\n",
               o->header_name);
    if (g->target && g->target->macros[0])
        buf_printf(c, "/* Generated for --target %s (%s), whose kernels it runs. */\n#if !(%s)\n"
                      "#error \"model '%s' was generated by nnc for --target %s: build it with %s (or -march=native on such a CPU), or generate it again with --target generic\"\n"
                      "#endif\n\n",
                   g->target->name, g->target->about, g->target->macros, g->name, g->target->name, g->target->cflags);
    buf_printf(c, "#define N_OPS %d\n\nstruct %s {\n    float *weights;      /* %lld floats: every weight, 64-byte aligned */\n"
                  "    float *arena;        /* %s_ARENA_BYTES: every intermediate tensor */\n%s    nnrt_pool *pool;\n"
                  "    void (*warn)(void *user, const char *message);\n    void *warn_user;\n    int profile;\n"
                  "    double op_ms[N_OPS];\n    nnrt_error error;\n};\n\n",
               g->ops.len, e->id, (long long)e->weight_floats, e->ID,
               e->gemm ? "    float *scratch;      /* SCRATCH_FLOATS for each thread */\n" : "");
    if (e->weight_name && g->weights.len > 0) {
        buf_puts(c, "/* Where each weight starts in the weight block, in floats. */\nenum {\n");
        for (int i = 0; i < g->weights.len; i++) {
            Tensor *t = g->weights.items[i];
            buf_printf(c, "    w_%s = %lld,\n", e->weight_name[t->id], (long long)e->weight_at[t->id]);
        }
        buf_puts(c, "};\n#define W(name) (m->weights + w_##name)\n\n");
    } else {
        buf_puts(c, "#define W(offset) (m->weights + (offset))\n\n");
    }
    if (e->arena_entries.len > 0) {
        buf_puts(c, "/* Where each intermediate tensor starts in the arena, in floats: tensors whose lives do not overlap share\n"
                    "   memory (passes/plan_memory.c). */\nenum {\n");
        for (int i = 0; i < e->arena_entries.len; i++) {
            const ArenaEntry *a = e->arena_entries.items[i];
            buf_printf(c, "    a_%s = %lld,\n", a->name, (long long)a->offset);
        }
        buf_puts(c, "};\n#define A(name) (m->arena + a_##name)\n");
    } else {
        buf_puts(c, "#define A(offset) (m->arena + (offset))\n");
    }

    if (e->gemm)
        buf_printf(c, "/* Each thread's scratch for the blocked products (nnk_gemm, nnk_mha_attend), in floats; the header's\n"
                      "   figure must agree with the runtime this file is built with. */\n#define SCRATCH_FLOATS %s\n"
                      "_Static_assert(SCRATCH_FLOATS * 4 == %s_SCRATCH_BYTES_PER_THREAD, \"generated by an nnc of another runtime: generate it again\");\n",
                   e->scratch_expr, e->ID);
    if (e->tile) {
        const Ukernel *uk = NULL;
        for (int i = 0; i < g->ops.len && !uk; i++)
            uk = VEC_AT(g->ops, i, Op *)->impl.uk;
        buf_printf(c, "/* The threads' shares of the products below are whole strips and panels of nnk_gemm.h's %dx%d tile. */\n"
                      "_Static_assert(NNK_MR == %d && NNK_NR == %d, \"generated for another tile of nnk_gemm.h: generate it again\");\n",
                   uk->mr, uk->nr, uk->mr, uk->nr);
    }
    if (e->parallel)
        buf_printf(c, "/* Runs a parallel op's function on the model's threads, each with its part of the work (runtime/threads.c). */\n"
                      "#define PARALLEL(fn, y, ...) nnrt_run_parallel(m->pool, fn, &(const nnrt_op_args){y, {__VA_ARGS__}, %s})\n",
                   e->gemm ? "m->scratch" : "NULL");
    buf_puts(c, "/* With profiling on, the time since the previous op is charged to this one. */\n");
    buf_puts(c, "#define TICK(op) if (m->profile) { double now = nnrt_now_ms(); m->op_ms[op] += now - t; t = now; }\n\n");
    buf_puts(c, e->fns.buf ? e->fns.buf : "");

    /* forward */
    buf_printf(c, "int %s_run(%s *m", e->id, e->id);
    for (int i = 0; i < g->inputs.len; i++)
        buf_printf(c, ", const float *%s", input_ident(g->inputs.items[i]));
    for (int i = 0; i < g->outputs.len; i++)
        buf_printf(c, ", float *%s", output_name(g, i));
    buf_puts(c, ") {\n    double t = m->profile ? nnrt_now_ms() : 0;\n");
    for (int i = 0; i < g->inputs.len; i++) {
        Tensor *t = g->inputs.items[i];
        if (!input_read(g, t))
            buf_printf(c, "    (void)%s;   /* the model does not read this input */\n", input_ident(t));
    }
    buf_puts(c, e->body.buf ? e->body.buf : "");
    buf_puts(c, "    return 0;\n}\n\n");

    buf_puts(c, "/* The weights: safetensors key, shape, and offset (in floats) into the weight block. */\n");
    int nspecs = 0;
    Buf specs = {0};
    for (int i = 0; i < g->weights.len; i++) {
        Tensor *t = g->weights.items[i];
        if (t->derived)
            continue;
        buf_printf(&specs, "    {\"%s\", %d, %s, %s},\n", t->name, t->rank, int_array(t->rank, t->dims),
                   e->weight_name ? format("w_%s", e->weight_name[t->id]) : format("%lld", (long long)e->weight_at[t->id]));
        nspecs++;
    }
    buf_printf(c, "static const nnrt_weight_spec weight_specs[%d] = {\n%s};\n\n", nspecs ? nspecs : 1, specs.buf ? specs.buf : "    {0},\n");
    buf_puts(c, "/* Per-op name and floating-point work, for --profile. */\nstatic const nnrt_op_info op_table[N_OPS] = {\n");
    for (int i = 0; i < g->ops.len; i++) {
        const Op *op = g->ops.items[i];
        buf_printf(c, "    {\"%s%s%s\", %.0f},\n", op_info[op->kind].name, op->label ? " " : "", op->label ? op->label : "", e->flops[i]);
    }
    buf_puts(c, "};\n\n");

    /* lifecycle */
    buf_printf(c, "%s *%s_new(int threads) {\n", e->id, e->id);
    buf_printf(c, "    if (nnrt_cpu_missing())   /* built for instructions this CPU lacks */\n        return NULL;\n");
    buf_printf(c, "    %s *m = calloc(1, sizeof *m);\n    if (!m)\n        return NULL;\n", e->id);
    buf_printf(c, "    m->weights = aligned_alloc(64, %lld);\n    m->arena = aligned_alloc(64, %s_ARENA_BYTES > 0 ? %s_ARENA_BYTES : 64);\n",
               (long long)(e->weight_floats > 0 ? e->weight_floats * 4 : 64), e->ID, e->ID);
    buf_puts(c, "    m->pool = nnrt_pool_create(threads);\n");
    if (e->gemm)
        buf_puts(c, "    m->scratch = m->pool ? aligned_alloc(64, (size_t)nnrt_pool_threads(m->pool) * SCRATCH_FLOATS * sizeof(float)) : NULL;\n");
    buf_printf(c, "    if (!m->weights || !m->arena || !m->pool%s) {\n        %s_free(m);\n        return NULL;\n    }\n", e->gemm ? " || !m->scratch" : "", e->id);
    buf_printf(c, "    memset(m->weights, 0, %lld);\n    return m;\n}\n\n", (long long)(e->weight_floats > 0 ? e->weight_floats * 4 : 64));
    buf_printf(c, "void %s_free(%s *m) {\n    if (!m)\n        return;\n    free(m->weights);\n    free(m->arena);\n%s"
                  "    nnrt_pool_destroy(m->pool);\n    free(m);\n}\n\n", e->id, e->id, e->gemm ? "    free(m->scratch);\n" : "");
    buf_printf(c, "const char *%s_last_error(const %s *m) { return m->error.msg; }\n\n", e->id, e->id);
    buf_printf(c, "void %s_on_warning(%s *m, void (*fn)(void *user, const char *message), void *user) {\n"
                  "    m->warn = fn;\n    m->warn_user = user;\n}\n\n", e->id, e->id);
    emit_prepare(e, c);
    buf_printf(c, "int %s_load_memory(%s *m, const void *data, size_t size) {\n"
                  "    if (nnrt_load_safetensors(data, size, weight_specs, %d, m->weights, m->warn, m->warn_user, &m->error) != 0)\n"
                  "        return -1;\n    return prepare(m);\n}\n\n",
               e->id, e->id, nspecs);
    buf_printf(c, "int %s_load(%s *m, const char *path) {\n    nnrt_file f;\n    if (nnrt_map_file(path, &f, &m->error) != 0)\n        return -1;\n"
                  "    int status = %s_load_memory(m, f.data, f.size);\n    nnrt_unmap_file(&f);\n"
                  "    if (status != 0) {   /* say which file */\n        nnrt_error inner = m->error;\n"
                  "        nnrt_seterr(&m->error, \"'%%s': %%s\", path, inner.msg);\n    }\n    return status;\n}\n\n",
               e->id, e->id, e->id);
    buf_printf(c, "void %s_profile(%s *m, int on) {\n    m->profile = on;\n    memset(m->op_ms, 0, sizeof m->op_ms);\n}\n\n", e->id, e->id);
    buf_printf(c, "void %s_profile_report(const %s *m, int runs) { nnrt_profile_report(op_table, m->op_ms, N_OPS, runs); }\n\n", e->id, e->id);
    if (o->embed_weights && !emit_embedded(e, c))
        return false;
    if (o->main_program)
        emit_main(e, c);
    return true;
}

/* ---------------------------------------------------------------- the program's main() */

static void emit_main(Emitter *e, Buf *c) {
    const Graph *g = e->g;
    const char *id = e->id;
    int ni = g->inputs.len, no = g->outputs.len;
    buf_puts(c, "/* ---- the command-line program (--main): runtime/program.c, given the model's shapes and functions ---- */\n\n");
    Buf descs = {0};
    for (int i = 0; i < ni; i++) {
        Tensor *t = g->inputs.items[i];
        buf_printf(c, "static const int64_t in%d_dims[] = %s;\n", i, int_array(t->rank, t->dims));
        buf_printf(&descs, "%s    {\"%s\", %d, in%d_dims, %lld},\n", i ? "" : "static const nnrt_tensor_desc inputs[] = {\n", t->name, t->rank, i,
                   (long long)tensor_numel(t));
    }
    if (ni)
        buf_puts(&descs, "};\n");
    for (int i = 0; i < no; i++) {
        Tensor *t = g->outputs.items[i];
        buf_printf(c, "static const int64_t out%d_dims[] = %s;\n", i, int_array(t->rank, t->dims));
        buf_printf(&descs, "%s    {NULL, %d, out%d_dims, %lld},\n", i ? "" : "static const nnrt_tensor_desc outputs[] = {\n", t->rank, i,
                   (long long)tensor_numel(t));
    }
    buf_printf(c, "%s};\n\n", descs.buf);
    buf_printf(c, "static void *create(int threads) { return %s_new(threads); }\n", id);
    buf_printf(c, "static int load(void *m, const char *path) { return %s_load(m, path); }\n", id);
    if (e->o->embed_weights)
        buf_printf(c, "static int load_embedded(void *m) { return %s_load_embedded(m); }\n", id);
    buf_printf(c, "static void on_warning(void *m, void (*fn)(void *, const char *), void *user) { %s_on_warning(m, fn, user); }\n", id);
    buf_printf(c, "static int run(void *m, const float *const *in, float *const *out) { %sreturn %s_run(m", ni ? "" : "(void)in; ", id);
    for (int i = 0; i < ni; i++)
        buf_printf(c, ", in[%d]", i);
    for (int i = 0; i < no; i++)
        buf_printf(c, ", out[%d]", i);
    buf_puts(c, "); }\n");
    buf_printf(c, "static const char *last_error(const void *m) { return %s_last_error(m); }\n", id);
    buf_printf(c, "static void profile(void *m, int on) { %s_profile(m, on); }\n", id);
    buf_printf(c, "static void profile_report(const void *m, int runs) { %s_profile_report(m, runs); }\n", id);
    buf_printf(c, "static void destroy(void *m) { %s_free(m); }\n\n", id);
    buf_printf(c, "static const nnrt_program program = {\n    .model = \"%s\",\n    .n_inputs = %d,\n    .n_outputs = %d,\n", g->name, ni, no);
    buf_printf(c, "    .inputs = %s,\n    .outputs = outputs,\n    .default_threads = %d,\n", ni ? "inputs" : "NULL", e->o->threads);
    buf_printf(c, "    .cpu_missing = nnrt_cpu_missing,\n    .create = create,\n    .load = load,\n    .load_embedded = %s,\n",
               e->o->embed_weights ? "load_embedded" : "NULL");
    buf_puts(c, "    .on_warning = on_warning,\n    .run = run,\n    .last_error = last_error,\n    .profile = profile,\n"
                "    .profile_report = profile_report,\n    .destroy = destroy,\n};\n\n");
    buf_puts(c, "int main(int argc, char **argv) { return nnrt_main(argc, argv, &program); }\n");
}
