/*
 * emit_c.c — the graph as one C file and its header: the driver (see emit_c.h for the other parts).
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
#include "emit_c.h"

#include "nnrt.h"
#include "kernels/nnk.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- names and pointers */

static const char *c_keywords[] = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum", "extern", "float",
    "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return", "short", "signed", "sizeof", "static",
    "struct", "switch", "typedef", "union", "unsigned", "void", "volatile", "while", "m", "arena", "main",
    "t", "N_OPS", "SCRATCH_FLOATS", "WS", "STAGE_AT", "widen", "embedded_weights", NULL,   /* the generated file's own names */
};

char *c_ident(const char *s) {
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
const char *input_ident(const Tensor *t) { return format("in_%s", t->name); }

int output_index(const Graph *g, const Tensor *t);

/* Whether the generated code reads input t: some op that emits code reads it or a view of it, or it
   is itself an output (copied out). A view that nothing reads costs no code and reads nothing. */
static bool input_read(const Graph *g, const Tensor *t) {
    if (output_index(g, t) >= 0)
        return true;
    for (int i = 0; i < g->ops.len; i++) {
        const Op *op = g->ops.items[i];
        if (op_is_view(op) && output_index(g, op->out) < 0)
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

int output_index(const Graph *g, const Tensor *t) {
    for (int i = 0; i < g->outputs.len; i++)
        if (g->outputs.items[i] == t)
            return i;
    return -1;
}

const char *output_name(const Graph *g, int i) {
    return g->outputs.len == 1 ? "output" : format("output%d", i);
}

/* The C expression for a tensor's first element: a view is its root's pointer plus its offset. */
/* A weight's pointer in the generated C: W(conv1_weight), its key made an identifier (the enum of
   offsets defines w_conv1_weight), or W(offset) when the offsets do not fit an enum. */
const char *wref(const Emitter *e, const Tensor *t) {
    if (e->stage) {   /* WS(name, where the op widens it, floats) */
        Stage *s = e->stage;
        int64_t n = e->slot_floats[t->id];
        if (s->op_of[t->id] != s->op + 1) {
            s->op_of[t->id] = s->op + 1;
            s->at[t->id] = s->used;
            s->used += (n + 15) / 16 * 16;
            if (s->floats < s->used)
                s->floats = s->used;
        }
        return format("WS(%s, %lld, %lld)", e->weight_name ? e->weight_name[t->id] : format("%lld", (long long)e->weight_at[t->id]),
                      (long long)s->at[t->id], (long long)n);
    }
    if (e->weight_name)
        return format("W(%s)", e->weight_name[t->id]);
    return format("W(%lld)", (long long)e->weight_at[t->id]);
}

/* Names for the weights' offsets: each key with every run of other characters than letters and digits
   made one '_' ("layer1.0.conv1.weight" -> "layer1_0_conv1_weight", "conv1.bias(folded)" ->
   "conv1_bias_folded"), and a number added where two keys would meet. */
const char *unique_ident(Vec *taken, const char *text, const char *fallback) {
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

void name_weights(Emitter *e) {
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
const char *arena_name(Emitter *e, const Tensor *t) {
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
const char *scratch_ref(Emitter *e, const Op *op, int64_t plus) {
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

const char *ptr(Emitter *e, const Tensor *t) {
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
const char *c_float(double v) {
    float f = (float)v;
    if (f != f)
        return "NAN";
    if (f > 3.4e38f || f < -3.4e38f)
        return f > 0 ? "INFINITY" : "-INFINITY";
    char *s = format("%.9g", (double)f);
    return strpbrk(s, ".e") ? format("%sf", s) : format("%s.0f", s);
}

const char *shape_c(const Tensor *t) { return shape_text(t->rank, t->dims); }

int64_t prod(const Tensor *t, int from, int to) {
    int64_t n = 1;
    for (int i = from; i < to; i++)
        n *= t->dims[i];
    return n;
}

/* "{1, 3, 224, 224}"; "{0}" for a rank-0 shape, since C has no empty initialiser (its length is 0 anyway) */
const char *int_array(int n, const int64_t *v) {
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
const char *specialise_stage(Emitter *e, const Op *op, const char *stage, const char *params, const char *body) {
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

const char *specialise(Emitter *e, const Op *op, const char *params, const char *body) {
    return specialise_stage(e, op, NULL, params, body);
}

/* The text of the source line at loc, trimmed, made safe inside a C comment. */
const char *source_line(Loc loc) {
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
void call_comment(Emitter *e, const Op *op) {
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

void call_line(Emitter *e, const Op *op, const char *fn, const char *args) {
    call_comment(e, op);
    buf_printf(&e->body, "    %s(%s);\n    TICK(%d);\n", fn, args, op->id);
}

/* The common case: out, then every input, as pointers. */
/* The pointers an op's function takes: its output, every input, and its scratch memory if any. */
const char *op_pointers(Emitter *e, const Op *op) {
    Buf args = {0};
    buf_puts(&args, ptr(e, op->out));
    for (int i = 0; i < op->in.len; i++)
        buf_printf(&args, ", %s", ptr(e, op->in.items[i]));
    if (op->impl.scratch_floats > 0)
        buf_printf(&args, ", %s", scratch_ref(e, op, 0));
    return buf_take(&args);
}

void simple_call(Emitter *e, const Op *op, const char *params, const char *body) {
    call_line(e, op, specialise(e, op, params, body), op_pointers(e, op));
}

/* What is done to the weights once, after loading: derived weights start at zero, batch norms are
   folded into the layers before them (passes/fold_bn.c), then the weights that blocked products read
   packed are rearranged (nnk_pack_weight). -1 when there is no memory for that. */
/* An upper bound of sizeof the model's struct on any ABI (checked by a _Static_assert in the C): its
   pointers, counters, per-op timings and error message. */
long long state_bytes(const Emitter *e) {
    return 16LL * 8 + 8LL * e->g->ops.len + (long long)sizeof(nnrt_error) + 64;
}

/* A weight's offset in the weight block, as the generated C names it: w_conv1_weight, or a number. */
const char *woff(const Emitter *e, const Tensor *t) {
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
    static const char *const how[] = {[NNK_PACK_BLOCKED] = "NNK_PACK_BLOCKED", [NNK_PACK_PLAIN] = "NNK_PACK_PLAIN",   /* nnk_pack_conv's */
                                      [NNK_PACK_WINOGRAD] = "NNK_PACK_WINOGRAD", [NNK_PACK_WINOGRAD2] = "NNK_PACK_WINOGRAD2"};
    int kinds[PACK_GEMV + 1] = {0};
    for (int i = 0; i < e->packed.len; i++)
        kinds[pack_kind(e->packed.items[i])]++;
    int strips = kinds[PACK_STRIPS], convs = kinds[PACK_CONV], windows = kinds[PACK_CONV_WINDOW], panels = kinds[PACK_GEMV];
    if (strips) {
        buf_puts(c, "/* Weights the blocked products read rearranged into strips (nnk_pack_weight): offset, rows, columns, strip width. */\n"
                    "static const nnrt_packing packings[] = {\n");
        for (int i = 0; i < e->packed.len; i++) {
            const Packed *p = e->packed.items[i];
            long long rows = p->w->dims[0];
            if (pack_kind(p) != PACK_STRIPS)
                continue;
            if (p->width != NNK_MR && p->width != NNK_NR)
                internal_error(NULL, "a weight packed %d wide, which is neither NNK_MR nor NNK_NR", p->width);
            buf_printf(c, "    {%s, %lld, %lld, %s},\n", woff(e, p->w), rows, (long long)(tensor_numel(p->w) / rows),
                       p->width == NNK_MR ? "NNK_MR" : "NNK_NR");
        }
        buf_puts(c, "};\n\n");
    }
    if (convs) {
        buf_puts(c, "/* Convolution weights the blocked tiles read rearranged (nnk_pack_conv): offset, output channels, input\n"
                    "   channels of a group, kernel height and width, groups, and how: NNK_PACK_BLOCKED, _PLAIN (for plain\n"
                    "   input), _WINOGRAD (F(4x4, 3x3): 4x the floats) or _WINOGRAD2 (F(2x2, 3x3): 16/9 of them). */\n"
                    "static const struct { long at; int O, C, kh, kw, groups, how; } conv_packings[] = {\n");
        for (int i = 0; i < e->packed.len; i++) {
            const Packed *p = e->packed.items[i];
            if (pack_kind(p) == PACK_CONV)
                buf_printf(c, "    {%s, %lld, %lld, %lld, %lld, %d, %s},\n", woff(e, p->w), (long long)p->w->dims[0], (long long)p->w->dims[1],
                           (long long)p->w->dims[2], (long long)p->w->dims[3], p->groups, how[p->nchwc]);
        }
        buf_puts(c, "};\n\n");
    }
    if (panels) {
        buf_printf(c, "/* Weights of linear layers of a few rows rearranged into panels of %d features (nnk_pack_gemv): offset,\n"
                      "   features, inputs. */\n"
                      "static const struct { long at; int O; long K; } gemv_packings[] = {\n", NNK_GEMV_W);
        for (int i = 0; i < e->packed.len; i++) {
            const Packed *p = e->packed.items[i];
            if (pack_kind(p) == PACK_GEMV)
                buf_printf(c, "    {%s, %lld, %lld},\n", woff(e, p->w), (long long)p->w->dims[0], (long long)(tensor_numel(p->w) / p->w->dims[0]));
        }
        buf_puts(c, "};\n\n");
    }
    if (windows) {
        buf_puts(c, "/* Convolutions of which only a window of taps ever reads the input, the others only its zero padding\n"
                    "   (nnk_pack_conv_taps packs the window, and turns the bias of a channel to NaN where a weight left out\n"
                    "   is not finite): weight and bias offsets, output channels, input channels of a group, kernel height and\n"
                    "   width, groups, how, and the window's first row and column, height and width. */\n"
                    "static const struct { long at, bias; int O, C, kh, kw, groups, how, kh0, kw0, wkh, wkw; } conv_windows[] = {\n");
        for (int i = 0; i < e->packed.len; i++) {
            const Packed *p = e->packed.items[i];
            if (pack_kind(p) != PACK_CONV_WINDOW)
                continue;
            const Impl *m = &p->window->impl;
            buf_printf(c, "    {%s, %s, %lld, %lld, %lld, %lld, %d, %s, %d, %d, %d, %d},\n", woff(e, p->w), woff(e, p->window->in.items[2]),
                       (long long)p->w->dims[0], (long long)p->w->dims[1], (long long)p->w->dims[2], (long long)p->w->dims[3], p->groups,
                       how[p->nchwc], m->tap0[0], m->tap0[1], m->taps[0], m->taps[1]);
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
        buf_printf(c, "    float *tmp = nnrt_alloc(%lld * sizeof(float));   /* the largest packed weight, from the runtime's heap */\n"
                      "    if (!tmp) {\n        nnrt_seterr(&m->error, \"out of memory packing the weights\");\n        return -1;\n    }\n"
                      "%s%s%s%s"
                      "    nnrt_release(tmp);\n",
                   largest_packed(e),
                   strips ? "    for (size_t i = 0; i < sizeof packings / sizeof *packings; i++)\n"
                            "        nnk_pack_weight(m->weights + packings[i].at, packings[i].rows, packings[i].cols, packings[i].width, tmp);\n" : "",
                   convs ? "    for (size_t i = 0; i < sizeof conv_packings / sizeof *conv_packings; i++)\n"
                           "        nnk_pack_conv(m->weights + conv_packings[i].at, conv_packings[i].O, conv_packings[i].C, conv_packings[i].kh,\n"
                           "                      conv_packings[i].kw, conv_packings[i].groups, conv_packings[i].how, tmp);\n" : "",
                   windows ? "    for (size_t i = 0; i < sizeof conv_windows / sizeof *conv_windows; i++)\n"
                             "        nnk_pack_conv_taps(m->weights + conv_windows[i].at, conv_windows[i].O, conv_windows[i].C, conv_windows[i].kh,\n"
                             "                           conv_windows[i].kw, conv_windows[i].groups, conv_windows[i].how, conv_windows[i].kh0,\n"
                             "                           conv_windows[i].kw0, conv_windows[i].wkh, conv_windows[i].wkw, m->weights + conv_windows[i].bias, tmp);\n" : "",
                   panels ? "    for (size_t i = 0; i < sizeof gemv_packings / sizeof *gemv_packings; i++)\n"
                            "        nnk_pack_gemv(m->weights + gemv_packings[i].at, gemv_packings[i].O, gemv_packings[i].K, tmp);\n" : "");
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
    e->slot_floats = xcalloc((size_t)g->tensors.len + 1, sizeof *e->slot_floats);
    for (int i = 0; i < g->weights.len; i++) {
        const Tensor *t = g->weights.items[i];
        e->slot_floats[t->id] = tensor_numel(t);
    }
    for (int i = 0; i < g->ops.len; i++) {   /* the convolution weights nnk_pack_conv rearranges, into as much or more */
        const Op *op = g->ops.items[i];
        if (op->kind == OPK_CONV2D && op->impl.family == IMPL_NCHWC) {
            const Tensor *w = op->in.items[1];
            e->slot_floats[w->id] = NNK_PACK_CONV_FLOATS(w->dims[0], w->dims[1], w->dims[2], w->dims[3], conv_pack_how(op));
            if (op->impl.taps[0]) {   /* the weight as loaded, then its window packed (for groups within a block, 16 floats a tap) */
                long long window = NNK_PACK_CONV_FLOATS(w->dims[0], w->dims[1], op->impl.taps[0], op->impl.taps[1], conv_pack_how(op));
                e->slot_floats[w->id] = tensor_numel(w) > window ? tensor_numel(w) : window;
            }
        } else if ((op->kind == OPK_LINEAR || op->kind == OPK_CONV2D) && op->impl.pack_gemv) {   /* nnk_pack_gemv: whole panels */
            const Tensor *w = op->in.items[1];
            e->slot_floats[w->id] = NNK_GEMV_FLOATS(w->dims[0], tensor_numel(w) / w->dims[0]);
        }
    }
    for (int i = 0; i < g->weights.len; i++) {
        Tensor *t = g->weights.items[i];
        e->weight_at[t->id] = e->weight_floats;
        e->weight_floats += (e->slot_floats[t->id] + 15) / 16 * 16;   /* each weight 64-byte aligned */
    }
    name_weights(e);
    if (o->embed_weights && o->embed_dtype != EMBED_F32) {
        e->stage = xcalloc(1, sizeof *e->stage);
        e->stage->op_of = xcalloc((size_t)g->tensors.len + 1, sizeof *e->stage->op_of);
        e->stage->at = xcalloc((size_t)g->tensors.len + 1, sizeof *e->stage->at);
    }
    for (int i = 0; i < g->ops.len; i++) {
        const Op *op = g->ops.items[i];
        if (e->stage) {
            e->stage->op = i;
            e->stage->used = 0;
        }
        emitter_of(op->kind)(e, op);
        if (o->break_op && tensor_numel(op->out) > 0 && strcmp(o->break_op, op->label ? op->label : op->out->name) == 0)
            buf_printf(&e->body, "    %s[0] = %s[0] * 2.0f + 1.0f;   /* broken on purpose (a test of --bisect) */\n", ptr(e, op->out),
                       ptr(e, op->out));
        if (o->dumps)
            buf_printf(&e->body, "    DUMP(%d, %s, %lld);\n", op->id, ptr(e, op->out), (long long)tensor_numel(op->out));
    }
    e->arena_total = g->arena_bytes;
    if (e->stage && e->stage->floats)
        e->arena_total = (g->arena_bytes + 63) / 64 * 64 + e->stage->floats * 4;
    emit_header(e, h);

    buf_printf(c, "/*\n * %s.c — generated by nnc %s from %s. Do not edit; change the .net file.\n *\n", e->id, NNC_VERSION, o->source_path);
    buf_printf(c, " * model %s: %d ops, %lld weight floats, an arena of %lld bytes.\n */\n", g->name, g->ops.len, (long long)e->weight_floats,
               (long long)g->arena_bytes);
    buf_printf(c, "#include \"%s\"\n\n#include \"nnrt.h\"\n", o->header_name);
    if (e->small_groups)
        buf_puts(c, "#define NNK_CONV_SMALL_GROUPS 1   /* 3x3 layers of groups within a block: nnk_conv_nchwc.h's tiles for them */\n");
    buf_puts(c, "#include \"kernels/nnk.h\"\n\n#include <math.h>\n#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n\n");
    if (g->target && g->target->macros[0])
        buf_printf(c, "/* Generated for --target %s (%s), whose kernels it runs. */\n#if !(%s)\n"
                      "#error \"model '%s' was generated by nnc for --target %s: build it with %s (or -march=native on such a CPU), or generate it again with --target generic\"\n"
                      "#endif\n\n",
                   g->target->name, g->target->about, g->target->macros, g->name, g->target->name, g->target->cflags);
    buf_printf(c, "#define N_OPS %d\n\nstruct %s {\n    float *weights;      /* %lld floats: every weight, 64-byte aligned: weight_mem, or embedded ones in place */\n"
                  "    float *weight_mem;   /* %s_WEIGHT_BYTES of the caller's or %s_new's to load a file into (or NULL) */\n"
                  "    float *arena;        /* %s_ARENA_BYTES: every intermediate tensor */\n%s    nnrt_pool *pool;\n"
                  "    void *owned[4];      /* what %s_new allocated, for %s_free */\n"
                  "    void (*warn)(void *user, const char *message);\n    void *warn_user;\n    int profile;\n"
                  "    double op_ms[N_OPS];\n%s%s    nnrt_error error;\n};\n\n",
               g->ops.len, e->id, (long long)e->weight_floats, e->ID, e->id, e->ID,
               e->gemm ? "    float *scratch;      /* SCRATCH_FLOATS for each thread */\n" : "", e->id, e->id,
               o->dumps ? "    void (*dump)(void *user, int op, const float *y, long n);   /* NAME_on_dump */\n    void *dump_user;\n" : "",
               e->stage ? "    const uint16_t *half;   /* the embedded 16-bit weights, once loaded (else NULL: weights holds them) */\n" : "");
    if (o->dumps)
        buf_puts(c, "/* Every op's result to the dump hook, as soon as it is computed (nnc --bisect). */\n"
                    "#define DUMP(op, y, n) if (m->dump) m->dump(m->dump_user, op, y, n)\n\n");
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
    if (e->stage && e->stage->floats > 0) {
        const char *dt = o->embed_dtype == EMBED_F16 ? "f16" : "bf16";
        buf_printf(c, "/* --embed-weights=%s: the embedded weights stay 16-bit in read-only memory; each op widens those it reads\n"
                      "   (WS(name, at, floats)) into its own stage at the arena's end, from STAGE_AT on, just before it runs. Weights\n"
                      "   loaded from a file are used as they are. */\n#define STAGE_AT %lld\n",
                   dt, (long long)(g->arena_bytes + 63) / 64 * 16);
        buf_printf(c, "#define WS(name, at, n) (m->half ? widen(m->arena + STAGE_AT + (at), m->half + %s, n) : m->weights + %s)\n",
                   e->weight_name ? "w_##name" : "(name)", e->weight_name ? "w_##name" : "(name)");
        buf_printf(c, "static float *widen(float *dst, const uint16_t *src, long n) {\n    nnk_widen_%s(dst, src, n);\n    return dst;\n}\n\n", dt);
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
    Buf limits = {0};   /* index tensors: each weight's range of indices (0 for floats), checked by the loader */
    bool indexed = false;
    for (int i = 0; i < g->weights.len; i++) {
        Tensor *t = g->weights.items[i];
        if (!t->derived) {
            buf_printf(&limits, "%s%lld", limits.len ? ", " : "", (long long)t->index_limit);
            indexed |= t->index_limit > 0;
        }
    }
    if (indexed)
        buf_printf(c, "/* Each weight's range of indices: those of an index tensor must be below it (0: floats). */\n"
                      "static const int64_t index_limits[%d] = {%s};\n\n", nspecs, limits.buf);
    buf_puts(c, "/* Per-op name and floating-point work, for --profile. */\nstatic const nnrt_op_info op_table[N_OPS] = {\n");
    for (int i = 0; i < g->ops.len; i++) {
        const Op *op = g->ops.items[i];
        buf_printf(c, "    {\"%s%s%s\", %.0f},\n", op_info[op->kind].name, op->label ? " " : "", op->label ? op->label : "", e->flops[i]);
    }
    buf_puts(c, "};\n\n");

    /* lifecycle */
    long long wbytes = e->weight_floats * 4, abytes = e->arena_total;
    buf_printf(c, "_Static_assert(sizeof(struct %s) <= %s_STATE_BYTES, \"the header's state size is too small\");\n", e->id, e->ID);
    if (abytes > 0 || wbytes > 0)   /* (a 32-bit target cannot hold more than 4 GiB) */
        buf_printf(c, "_Static_assert(%s%s%s, \"the model's memory does not fit this target's size_t\");\n",
                   abytes > 0 ? format("(unsigned long long)%s_ARENA_BYTES <= SIZE_MAX", e->ID) : "", abytes > 0 && wbytes > 0 ? " && " : "",
                   wbytes > 0 ? format("(unsigned long long)%s_WEIGHT_BYTES <= SIZE_MAX", e->ID) : "");
    buf_puts(c, "\n");
    buf_puts(c, "/* A buffer's 64-byte alignment. */\nstatic int aligned64(const void *p) { return ((uintptr_t)p & 63) == 0; }\n\n");
    buf_printf(c, "%s *%s_init(void *state, void *arena, void *scratch, void *weights, int threads) {\n", e->id, e->id);
    buf_puts(c, "    if (nnrt_cpu_missing())   /* built for instructions this CPU lacks */\n        return NULL;\n");
    buf_printf(c, "    if (!state || ((uintptr_t)state %% _Alignof(struct %s))%s || (weights && !aligned64(weights))%s)\n        return NULL;\n",
               e->id, abytes > 0 ? " || !arena || !aligned64(arena)" : "", e->gemm ? " || !scratch || !aligned64(scratch)" : "");
    buf_printf(c, "    %s *m = state;\n    memset(m, 0, sizeof *m);\n    m->weights = m->weight_mem = weights;\n    m->arena = arena;\n", e->id);
    if (e->gemm)
        buf_puts(c, "    m->scratch = scratch;\n");
    else
        buf_puts(c, "    (void)scratch;\n");
    buf_printf(c, "    if (weights)\n        memset(weights, 0, %lld);\n", wbytes > 0 ? wbytes : 0);
    buf_puts(c, "    m->pool = nnrt_pool_create(threads);\n    return m->pool ? m : NULL;\n}\n\n");
    buf_puts(c, "/* The address in raw, allocated 63 bytes longer, where 64-byte alignment starts. */\n"
                "static void *align64(void *raw) { return raw ? (void *)(((uintptr_t)raw + 63) & ~(uintptr_t)63) : NULL; }\n\n");
    buf_printf(c, "%s *%s_new(int threads) {\n", e->id, e->id);
    if (e->gemm)
        buf_puts(c, "    size_t t = (size_t)(threads > 1 ? threads : 1);\n");
    buf_printf(c, "    void *raw[4] = {nnrt_alloc(%s_STATE_BYTES), nnrt_alloc(%s_ARENA_BYTES + 63), nnrt_alloc(%s_WEIGHT_BYTES + 63),\n"
                  "                    %s};\n",
               e->ID, e->ID, e->ID, e->gemm ? format("nnrt_alloc(t * %s_SCRATCH_BYTES_PER_THREAD + 63)", e->ID) : "NULL");
    buf_printf(c, "    %s *m = raw[0] && raw[1] && raw[2]%s ? %s_init(raw[0], align64(raw[1]), align64(raw[3]), align64(raw[2]), threads) : NULL;\n",
               e->id, e->gemm ? " && raw[3]" : "", e->id);
    buf_puts(c, "    if (!m) {\n        for (int i = 0; i < 4; i++)\n            nnrt_release(raw[i]);\n        return NULL;\n    }\n"
                "    memcpy(m->owned, raw, sizeof raw);\n    return m;\n}\n\n");
    buf_printf(c, "void %s_free(%s *m) {\n    if (!m)\n        return;\n    nnrt_pool_destroy(m->pool);\n    void *owned[4];\n"
                  "    memcpy(owned, m->owned, sizeof owned);\n    for (int i = 3; i >= 0; i--)   /* the state last: it is owned[0] */\n"
                  "        nnrt_release(owned[i]);\n}\n\n", e->id, e->id);
    buf_printf(c, "const char *%s_last_error(const %s *m) { return m->error.msg; }\n\n", e->id, e->id);
    buf_printf(c, "void %s_on_warning(%s *m, void (*fn)(void *user, const char *message), void *user) {\n"
                  "    m->warn = fn;\n    m->warn_user = user;\n}\n\n", e->id, e->id);
    emit_prepare(e, c);
    buf_printf(c, "int %s_load_memory(%s *m, const void *data, size_t size) {\n"
                  "    if (!m->weight_mem) {\n        nnrt_seterr(&m->error, \"no memory to load weights into (%s_init was given none)\");\n"
                  "        return -1;\n    }\n    m->weights = m->weight_mem;\n%s"
                  "    if (%s(data, size, weight_specs, %d, %sm->weights, m->warn, m->warn_user, &m->error) != 0)\n"
                  "        return -1;\n    return prepare(m);\n}\n\n",
               e->id, e->id, e->id, e->stage ? "    m->half = NULL;\n" : "", indexed ? "nnrt_load_safetensors_indexed" : "nnrt_load_safetensors",
               nspecs, indexed ? "index_limits, " : "");
    buf_printf(c, "int %s_load(%s *m, const char *path) {\n    nnrt_file f;\n    if (nnrt_map_file(path, &f, &m->error) != 0)\n        return -1;\n"
                  "    int status = %s_load_memory(m, f.data, f.size);\n    nnrt_unmap_file(&f);\n"
                  "    if (status != 0) {   /* say which file */\n        nnrt_error inner = m->error;\n"
                  "        nnrt_seterr(&m->error, \"'%%s': %%s\", path, inner.msg);\n    }\n    return status;\n}\n\n",
               e->id, e->id, e->id);
    buf_printf(c, "void %s_profile(%s *m, int on) {\n    m->profile = on;\n    memset(m->op_ms, 0, sizeof m->op_ms);\n}\n\n", e->id, e->id);
    if (o->dumps)
        buf_printf(c, "void %s_on_dump(%s *m, void (*fn)(void *user, int op, const float *y, long n), void *user) {\n"
                      "    m->dump = fn;\n    m->dump_user = user;\n}\n\n", e->id, e->id);
    buf_printf(c, "void %s_profile_report(const %s *m, int runs) { nnrt_profile_report(op_table, m->op_ms, N_OPS, runs); }\n\n", e->id, e->id);
    if (o->embed_weights && !emit_embedded(e, c))
        return false;
    if (o->main_program)
        emit_main(e, c);
    return true;
}

