/*
 * emit_ops.c — one emitter per op kind, named in ops.def's EMIT column: each prints the call to its
 * kernel with every shape a constant, in the way compiler/passes/select_kernels.c chose (op->impl).
 */
#include "emit_c.h"

#include "nnrt.h"
#include "kernels/nnk.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>


/* The line that gives part `part` of `parts` its share [lo, hi) of n units, cut at multiples of `step`
   (1: anywhere): every part's share depends on the thread count, what each unit computes does not. */
static char *share(const char *lo, const char *hi, long long n, long long step) {
    if (step > 1) {   /* whole steps a part; a last step short of one ends at n */
        long long steps = (n + step - 1) / step;
        char *s = format("    long %s = %lldL * (%lldL * part / parts), %s = %lldL * (%lldL * (part + 1) / parts);", lo, step, steps, hi, step,
                         steps);
        return n % step ? format("%s\n    %s = %s < %lld ? %s : %lld;", s, hi, hi, n, hi, n) : s;
    }
    return format("    long %s = %lldL * part / parts, %s = %lldL * (part + 1) / parts;", lo, n, hi, n);
}

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
#define ACT(ID, NAME, ZMM, EXPR) [ACT_##ID] = "NNK_ACT_" #ID,
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


/* Whether op reads weight w rearranged by prepare() in strips (select_kernels chose it: op->impl.pack_width);
   if so, w joins e->packed. */
static bool pack(Emitter *e, const Op *op, const Tensor *w) {
    if (!op->impl.pack_width && !op->impl.pack_gemv)
        return false;
    Packed *p = xcalloc(1, sizeof *p);
    p->w = w;
    p->width = op->impl.pack_width;
    p->gemv = op->impl.pack_gemv;   /* (a linear of a few rows: in panels for nnk_linear_gemv) */
    vec_push(&e->packed, p);
    return true;
}

/* The kernel height or width (d = 0, 1) a blocked conv2d runs with: its window of taps, or the whole kernel. */
static int conv_taps(const Op *op, int d) { return op->impl.taps[0] ? op->impl.taps[d] : op->a.kernel[d]; }

/* How nnk_pack_conv rearranges the weight of a conv2d on the blocked tiles (IMPL_NCHWC). */
int conv_pack_how(const Op *op) {
    const Tensor *x = op->in.items[0];
    return op->impl.winograd ? NNK_PACK_FOR_WINOGRAD(op->impl.winograd) : x->layout != LAYOUT_NCHW16C ? NNK_PACK_PLAIN : NNK_PACK_BLOCKED;
}

/* Floats in the largest packed weight: the temporary copy nnk_pack_weight needs. */
long long largest_packed(const Emitter *e) {
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
    buf_printf(body, "%s\n", share("o0", "o1", rows, packed ? unit : 1));
    buf_puts(body, "    if (o0 == o1)\n        return;\n");
}

/* Each thread's scratch must hold `floats`, written `expr` with the runtime's macros. */
static void need_scratch(Emitter *e, long long floats, const char *expr) {
    e->gemm = true;
    if (e->scratch_floats < floats) {
        e->scratch_floats = floats;
        e->scratch_expr = expr;
    }
}

/* The scratch of a product of M, N and K (A or B packed already or not) as nnk_gemm lays it out, sized by
   the op's own shape, and this thread's part of it. */
static const char *gemm_scratch_for(Emitter *e, long long M, long long N, long long K, bool a_packed, bool b_packed) {
    need_scratch(e, NNK_GEMM_SCRATCH_FOR(M, N, K, a_packed, b_packed),
                 format("NNK_GEMM_SCRATCH_FOR(%lld, %lld, %lld, %d, %d)", M, N, K, a_packed, b_packed));
    e->tile = true;
    return "    float *scratch = a->scratch + (long)part * SCRATCH_FLOATS;\n";
}

/* The shape of a conv2d as the kernels take it: a static const nnk_conv_params with designated
   initialisers, first in the op's function. */
static const char *conv_params(const Op *op) {
    const Tensor *x = op->in.items[0], *y = op->out;
    const Attrs *a = &op->a;
    const char *window = !op->impl.taps[0] ? "" /* the window of its taps that reads the input (select_kernels.c) */
                         : format("    /* taps %dx%d from (%d, %d) of the %dx%d kernel: the others read only the padding */\n", op->impl.taps[0],
                                  op->impl.taps[1], op->impl.tap0[0], op->impl.tap0[1], a->kernel[0], a->kernel[1]);
    return format("    static const nnk_conv_params shape = {.C = %lld, .H = %lld, .W = %lld, .O = %lld, .OH = %lld, .OW = %lld,\n"
                  "                                         .kh = %d, .kw = %d, .sh = %d, .sw = %d, .pt = %d, .pl = %d, .dh = %d, .dw = %d, .groups = %d};\n%s",
                  (long long)x->dims[1], (long long)x->dims[2], (long long)x->dims[3], (long long)y->dims[1], (long long)y->dims[2],
                  (long long)y->dims[3], conv_taps(op, 0), conv_taps(op, 1), a->stride[0], a->stride[1], a->pad[0], a->pad[1], a->dilation[0],
                  a->dilation[1], a->groups, window);
}

/* The fused epilogue's arguments of a conv2d (bias, residual at the image's offset, activations). */
static const char *conv_epilogue_args(const Op *op, const char *image_at) {
    const Attrs *a = &op->a;
    return format("%s, %s, %s, %s", a->has_bias ? "a->in[2]" : "NULL", a->residual ? at(format("a->in[%d]", a->residual), image_at) : "NULL",
                  act_enum(a->act1), act_enum(a->act2));
}

/* conv2d of a batch of small planes as one product over every image's pixels (nnk_conv2d_batch_part:
   no tile wasted on a plane narrower than NR); each part computes a range of those columns, in whole
   panels. */
static void emit_conv2d_batch(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0], *y = op->out, *w = op->in.items[1];
    long long N = x->dims[0], O = y->dims[1], Q = N * y->dims[2] * y->dims[3], NR = op->impl.uk->nr, panels = (Q + NR - 1) / NR;
    bool packed = pack(e, op, w);
    long long K = prod(w, 1, 4);
    need_scratch(e, NNK_CONV_BATCH_SCRATCH_FOR(O, Q, K, packed), format("NNK_CONV_BATCH_SCRATCH_FOR(%lld, %lld, %lld, %d)", O, Q, K, packed));
    e->tile = true;
    Buf body = {0};
    buf_puts(&body, conv_params(op));
    buf_printf(&body, "%s\n", share("q0", "q1", NR * panels, NR));
    if (Q % NR)
        buf_printf(&body, "    q1 = q1 < %lld ? q1 : %lld;\n", Q, Q);
    buf_puts(&body, "    if (q0 == q1)\n        return;\n");
    buf_printf(&body, "    nnk_conv2d_batch_part(a->y, a->in[0], a->in[1], %d, %s, &shape, q0, q1,\n"
                      "                          a->scratch + (long)part * SCRATCH_FLOATS);\n",
               packed, conv_epilogue_args(op, "0"));
    parallel_call(e, op, body.buf);
    e->flops[op->id] = 2.0 * (double)tensor_numel(y) * (double)prod(w, 1, 4);
}

/* conv2d with groups = 1 as a blocked product (nnk_conv2d_gemm_part), the epilogue fused into it. When the
   channels fill whole strips of NNK_MR and nothing else reads the weight, prepare() rearranges it into
   strips once. Each part computes a range of pixels [p0, p1) of every channel, in whole panels of NR,
   for a large plane (each thread then gathers only its own patches), or else a range of channels
   [o0, o1), at strip edges when packed; a batch of small planes is one product (emit_conv2d_batch). */
static void emit_conv2d_gemm(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0], *y = op->out, *w = op->in.items[1];
    long long N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3], O = y->dims[1], OH = y->dims[2], OW = y->dims[3];
    long long P = OH * OW, NR = op->impl.uk->nr;
    if (op->impl.split == SPLIT_BATCH) {
        emit_conv2d_batch(e, op);
        return;
    }
    bool by_pixels = op->impl.split == SPLIT_PIXELS;
    const char *n = N == 1 ? NULL : "n", *ind = N == 1 ? "    " : "        ";
    const char *y_at = affine(O * P, n, 0, NULL);
    bool packed = pack(e, op, w);
    Buf body = {0};
    buf_puts(&body, conv_params(op));
    if (by_pixels) {
        long long panels = (P + NR - 1) / NR;
        buf_printf(&body, "%s\n", share("p0", "p1", NR * panels, NR));
        if (P % NR)
            buf_printf(&body, "    p1 = p1 < %lld ? p1 : %lld;\n", P, P);
        buf_puts(&body, "    if (p0 == p1)\n        return;\n");
    } else {
        split_rows(&body, O, packed, op->impl.pack_width);
    }
    buf_puts(&body, gemm_scratch_for(e, O, P, prod(w, 1, 4), packed, false));
    if (N > 1)
        buf_printf(&body, "    for (long n = 0; n < %lld; n++)\n", N);
    buf_printf(&body, "%snnk_conv2d_gemm_part(%s, %s, a->in[1], %d, %s, &shape, %s, %s, scratch);\n", ind, at("a->y", y_at),
               at("a->in[0]", affine(C * H * W, n, 0, NULL)), packed, conv_epilogue_args(op, y_at),
               by_pixels ? format("0, %lld", O) : "(int)o0, (int)o1", by_pixels ? "(int)p0, (int)p1" : format("0, %lld", P));
    parallel_call(e, op, body.buf);
    e->flops[op->id] = 2.0 * (double)tensor_numel(y) * (double)prod(w, 1, 4);
}

/* conv2d on channel-blocked activations (choose_layouts.c), by the direct tiles of nnk_conv_nchwc.h: each
   part computes a range of the units (a run of NNK_CONV_RUN output pixels of NNK_CONV_GROUP blocks of 16
   channels, or for a batch of small planes one pixel of NNK_CONV_IMAGES images) of the batch. Its input is blocked, or plain when it has too few channels; it is padded already (a pad_plane
   op), and prepare() rearranged the weight for the tiles. */
static void emit_conv2d_nchwc(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0], *y = op->out, *w = op->in.items[1];
    int plain = x->layout != LAYOUT_NCHW16C;
    Packed *p = xcalloc(1, sizeof *p);
    p->w = w;
    p->nchwc = conv_pack_how(op);
    p->groups = op->a.groups;
    p->window = op->impl.taps[0] ? op : NULL;
    vec_push(&e->packed, p);
    nnk_conv_params shape = {.C = (int)x->dims[1], .H = (int)x->dims[2], .W = (int)x->dims[3], .O = (int)y->dims[1], .OH = (int)y->dims[2],
                             .OW = (int)y->dims[3], .kh = conv_taps(op, 0), .kw = conv_taps(op, 1), .sh = op->a.stride[0], .sw = op->a.stride[1],
                             .dh = op->a.dilation[0], .dw = op->a.dilation[1], .groups = op->a.groups};
    e->small_groups |= nnk_conv_nchwc_small_groups(&shape, plain) != 0;
    int m = op->impl.winograd;
    long long units = m ? nnk_winograd_units(&shape, x->dims[0], m) : nnk_conv_nchwc_batch_units(&shape, x->dims[0]);
    Buf body = {0};
    buf_puts(&body, conv_params(op));
    if (m) {
        need_scratch(e, NNK_WINO_SCRATCH(shape.C), format("NNK_WINO_SCRATCH(%d)", shape.C));
        buf_printf(&body, "%s   /* of %lld units: up to %d tiles of %dx%d pixels, %d channels */\n", share("u0", "u1", units, 1), units,
                   NNK_WINO_CHUNK, m, m, NNK_WINO_GROUP * NNK_CB);
        buf_puts(&body, "    if (u0 == u1)\n        return;\n");
        buf_printf(&body, "    nnk_conv2d_winograd_batch(%d, a->y, a->in[0], a->in[1], %s, &shape, %lld, u0, u1,\n"
                          "                              a->scratch + (long)part * SCRATCH_FLOATS);\n",
                   m, conv_epilogue_args(op, "0"), (long long)x->dims[0]);
        parallel_call(e, op, body.buf);
        e->flops[op->id] = 2.0 * (double)tensor_numel(y) * (double)prod(w, 1, 4);
        return;
    }
    if (nnk__conv_by_images(&shape, x->dims[0]))
        buf_printf(&body, "%s   /* of %lld units: one pixel of up to %d images, %d output channels */\n", share("u0", "u1", units, 1), units,
                   NNK_CONV_IMAGES, NNK_CONV_GROUP * NNK_CB);
    else
        buf_printf(&body, "%s   /* of %lld units: runs of up to %d pixels, %d output channels */\n", share("u0", "u1", units, 1), units,
                   NNK_CONV_RUN, NNK_CONV_GROUP * NNK_CB);
    buf_puts(&body, "    if (u0 == u1)\n        return;\n");
    const char *x_at = "a->in[0]";   /* the window's first tap, in the padded plane */
    if (op->impl.taps[0])
        x_at = format("a->in[0] + %lld /* the window's first tap */", ((long long)op->impl.tap0[0] * op->a.dilation[0] * x->dims[3] + (long long)op->impl.tap0[1] * op->a.dilation[1]) *
                                             (plain ? 1 : NNK_CB));
    buf_printf(&body, "    nnk_conv2d_nchwc_batch(a->y, %s, %d, a->in[1], %s, &shape, %lld, u0, u1);\n", x_at, plain, conv_epilogue_args(op, "0"),
               (long long)x->dims[0]);
    parallel_call(e, op, body.buf);
    e->flops[op->id] = 2.0 * (double)tensor_numel(y) * (double)prod(w, 1, 4);
}

/* The lines that give a part its blocks [b0, b1) (of every image) and output rows [r0, r1) of an op on
   `planes` planes of `rows` rows (pad_plane, the blocked pools): one image by rows, as the convolutions
   around it split it (their units are runs of rows), so that each thread reads the rows it wrote; a
   batch by planes, image by image. */
static char *plane_share(const Tensor *x, long long planes, long long rows) {
    if (x->dims[0] == 1)
        return format("    long b0 = 0, b1 = %lld;\n%s   /* rows of every plane */\n", planes, share("r0", "r1", rows, 1));
    return format("%s   /* whole planes */\n    long r0 = 0, r1 = %lld;\n", share("b0", "b1", planes, 1), rows);
}

/* A convolution's input copied into a zero-padded plane (choose_layouts.c), in its layout: planes of
   16-channel blocks or of single channels. */
static void emit_pad_plane(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0], *y = op->out;
    int v = x->layout == LAYOUT_NCHW16C ? NNK_CB : 1;
    Buf body = {0};
    buf_puts(&body, plane_share(x, x->dims[0] * x->dims[1] / v, y->dims[2]));
    buf_printf(&body, "    nnk_pad_plane(a->y, a->in[0], %d, %lld, %lld, %lld, %lld, %d, %d, (int)b0, (int)b1, (int)r0, (int)r1);\n", v,
               (long long)x->dims[2], (long long)x->dims[3], (long long)y->dims[2], (long long)y->dims[3], op->a.pad[0], op->a.pad[1]);
    parallel_call(e, op, body.buf);
}

/* A change of layout, plain to blocked or back, image by image. */
static void emit_reorder(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0];
    long long N = x->dims[0], C = x->dims[1], HW = x->dims[2] * x->dims[3];
    const char *n = N == 1 ? NULL : "n", *ind = N == 1 ? "    " : "        ";
    Buf body = {0};
    if (N > 1)
        buf_printf(&body, "    for (long n = 0; n < %lld; n++)\n", N);
    buf_printf(&body, "%s%s(%s, %s, %lld, %lld, 0, %lld);\n", ind, op->kind == OPK_TO_BLOCKED ? "nnk_to_nchwc" : "nnk_from_nchwc",
               at("y", affine(C * HW, n, 0, NULL)), at("x", affine(C * HW, n, 0, NULL)), C, HW, C);
    simple_call(e, op, "float *restrict y, const float *restrict x", body.buf);
}

/* A depthwise conv2d, or one of few channels a group, on vectorised rows (nnk_dwconv2d_part): each part a
   range of output channels [o0, o1) of every image, the epilogue fused; each thread pads one group's input
   channels at a time into its scratch. */
static void emit_conv2d_dwconv(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0], *y = op->out;
    const Attrs *a = &op->a;
    long long N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3], O = y->dims[1], OH = y->dims[2], OW = y->dims[3];
    const char *n = N == 1 ? NULL : "n", *ind = N == 1 ? "    " : "        ", *y_at = affine(O * OH * OW, n, 0, NULL);
    long long Cg = C / a->groups;
    need_scratch(e, NNK_DWCONV_SCRATCH(Cg, OH, OW, a->kernel[0], a->kernel[1], a->stride[0], a->stride[1], a->dilation[0], a->dilation[1]),
                 format("NNK_DWCONV_SCRATCH(%lld, %lld, %lld, %d, %d, %d, %d, %d, %d)", Cg, OH, OW, a->kernel[0], a->kernel[1], a->stride[0],
                        a->stride[1], a->dilation[0], a->dilation[1]));
    Buf body = {0};
    buf_puts(&body, conv_params(op));
    split_rows(&body, O, false, 0);
    buf_puts(&body, "    float *scratch = a->scratch + (long)part * SCRATCH_FLOATS;\n");
    if (N > 1)
        buf_printf(&body, "    for (long n = 0; n < %lld; n++)\n", N);
    buf_printf(&body, "%snnk_dwconv2d_part(%s, %s, a->in[1], %s, &shape, (int)o0, (int)o1, scratch);\n", ind, at("a->y", y_at),
               at("a->in[0]", affine(C * H * W, n, 0, NULL)), conv_epilogue_args(op, y_at));
    parallel_call(e, op, body.buf);
    e->flops[op->id] = 2.0 * (double)tensor_numel(y) * (double)prod(op->in.items[1], 1, 4);
}

/* A grouped conv2d of many channels a group as a blocked product per group (nnk_conv2d_gemm_groups), each
   part a range of output channels [o0, o1) of every image, cut anywhere in a group, the epilogue fused. */
static void emit_conv2d_groups(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0], *y = op->out;
    long long N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3], O = y->dims[1];
    const char *n = N == 1 ? NULL : "n", *ind = N == 1 ? "    " : "        ", *y_at = affine(O * y->dims[2] * y->dims[3], n, 0, NULL);
    Buf body = {0};
    buf_puts(&body, conv_params(op));
    split_rows(&body, O, false, 0);
    long long G = op->a.groups;   /* each group's product: its channels by the plane, over its patch */
    buf_puts(&body, gemm_scratch_for(e, O / G, y->dims[2] * y->dims[3], C / G * op->a.kernel[0] * op->a.kernel[1], false, false));
    if (N > 1)
        buf_printf(&body, "    for (long n = 0; n < %lld; n++)\n", N);
    buf_printf(&body, "%snnk_conv2d_gemm_groups(%s, %s, a->in[1], %s, &shape, (int)o0, (int)o1, scratch);\n", ind, at("a->y", y_at),
               at("a->in[0]", affine(C * H * W, n, 0, NULL)), conv_epilogue_args(op, y_at));
    parallel_call(e, op, body.buf);
    e->flops[op->id] = 2.0 * (double)tensor_numel(y) * (double)prod(op->in.items[1], 1, 4);
}

/* The body of a linear layer of M rows, K inputs and O features by sums of rows (IMPL_DOT: a classifier
   at batch 1, or a 1×1 convolution of 1×1 planes): each part computes a range [o0, o1) of the features for
   every row, each output a dot product of two rows, which reads the weight once: from panels of NNK_GEMV_W
   features (nnk_linear_gemv) where prepare() rearranged it, else four outputs at a time so that four weight
   rows stream from memory together (nnk_linear_rows). Then the epilogue. */
static void emit_row_sums(Buf *body, Emitter *e, const Op *op, long long M, long long K, long long O) {
    const Attrs *a = &op->a;
    const char *m = M == 1 ? NULL : "m", *ind = M == 1 ? "    " : "        ";
    const char *y_at = affine(O, m, 1, "o0");
    if (pack(e, op, op->in.items[1])) {   /* whole panels of the weight a part */
        split_rows(body, O, true, NNK_GEMV_W);
        buf_printf(body, "    nnk_linear_gemv(a->y, %lld, a->in[0], a->in[1], %s, %lld, %lld, (int)o0, (int)o1);\n", O,
                   a->has_bias ? "a->in[2]" : "NULL", M, K);
    } else {
        buf_printf(body, "%s\n", share("o0", "o1", O, 1));
        buf_puts(body, "    if (o0 == o1)\n        return;\n");
        /* all rows in one call, which reads the weight once for them */
        buf_printf(body, "    nnk_linear_rows(a->y + o0, %lld, a->in[0], %s, %s, %lld, %lld, (int)(o1 - o0));\n", O,
                   at("a->in[1]", affine(K, "o0", 0, NULL)), a->has_bias ? "a->in[2] + o0" : "NULL", M, K);
    }
    const char *ep = epilogue(op, ind, y_at, "o1 - o0");
    if (M > 1 && *ep)
        buf_printf(body, "    for (long m = 0; m < %lld; m++)\n%s", M, ep);
    else
        buf_puts(body, ep);
}

/* conv2d with groups and more taps than nnk_dwconv.h takes: the direct loop nest (nnk_conv2d_groups), each
   part a range of whole groups [g0, g1) of every image, then the fused epilogue on what the part wrote. */
static void emit_conv2d(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0], *y = op->out, *w = op->in.items[1];
    if (op->impl.family == IMPL_GEMM && op->a.groups > 1) {
        emit_conv2d_groups(e, op);
        return;
    }
    if (op->impl.family == IMPL_GEMM) {
        emit_conv2d_gemm(e, op);
        return;
    }
    if (op->impl.family == IMPL_NCHWC) {
        emit_conv2d_nchwc(e, op);
        return;
    }
    if (op->impl.family == IMPL_DWCONV) {
        emit_conv2d_dwconv(e, op);
        return;
    }
    if (op->impl.family == IMPL_DOT) {   /* 1×1 on 1×1 planes: a linear layer of N rows */
        Buf body = {0};
        emit_row_sums(&body, e, op, x->dims[0], x->dims[1], y->dims[1]);
        parallel_call(e, op, body.buf);
        e->flops[op->id] = 2.0 * (double)tensor_numel(y) * (double)prod(w, 1, 4);
        return;
    }
    long long N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3], O = y->dims[1], OH = y->dims[2], OW = y->dims[3];
    long long G = op->a.groups, o_per = O / G;
    const char *n = N == 1 ? NULL : "n", *ind = N == 1 ? "    " : "        ";
    const char *y_at = affine(O * OH * OW, n, 0, NULL);
    Buf body = {0};
    buf_puts(&body, conv_params(op));
    buf_printf(&body, "%s\n", share("g0", "g1", G, 1));
    buf_puts(&body, "    if (g0 == g1)\n        return;   /* more threads than groups: this one has none */\n");
    if (N > 1)
        buf_printf(&body, "    for (long n = 0; n < %lld; n++) {\n", N);
    buf_printf(&body, "%snnk_conv2d_groups(%s, %s, a->in[1], %s, &shape, (int)g0, (int)g1);\n", ind, at("a->y", y_at),
               at("a->in[0]", affine(C * H * W, n, 0, NULL)), op->a.has_bias ? "a->in[2]" : "NULL");
    buf_puts(&body, epilogue(op, ind, affine(O * OH * OW, n, o_per * OH * OW, "g0"), affine(o_per * OH * OW, "(g1 - g0)", 0, NULL)));
    if (N > 1)
        buf_puts(&body, "    }\n");
    parallel_call(e, op, body.buf);
    e->flops[op->id] = 2.0 * (double)tensor_numel(y) * (double)prod(w, 1, 4);
}

/* nn.Linear; each part computes a range [o0, o1) of output features, for every row. With a few rows, sums
   of rows (emit_row_sums); with more, a blocked product (nnk_linear_gemm), reading a weight that prepare()
   rearranged into panels when its features fill whole panels of NNK_NR (the parts then split at panel
   edges). */
static void emit_linear(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0], *y = op->out;
    long long K = x->dims[x->rank - 1], O = y->dims[y->rank - 1], M = tensor_numel(x) / K;
    const Attrs *a = &op->a;
    Buf body = {0};
    if (op->impl.family == IMPL_DOT) {
        emit_row_sums(&body, e, op, M, K, O);
    } else {
        bool packed = pack(e, op, op->in.items[1]);
        split_rows(&body, O, packed, op->impl.pack_width);
        buf_puts(&body, gemm_scratch_for(e, M, O, K, false, packed));
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
    if (x->layout == LAYOUT_NCHW16C) {   /* choose_layouts.c */
        long long blocks = x->dims[0] * x->dims[1] / NNK_CB;
        parallel_call(e, op, format("%s\n"
                                    "    nnk_batchnorm_nchwc(a->y, a->in[0], a->in[1], a->in[2], a->in[3], a->in[4], %lld, %lld, %s, b0, b1);\n",
                                    share("b0", "b1", blocks, 1), (long long)x->dims[1], (long long)(x->dims[2] * x->dims[3]), c_float(op->a.eps)));
        return;
    }
    char *body = format("    nnk_batchnorm(y, x, gamma, beta, mean, var, %lld, %lld, %lld, %s);\n", (long long)x->dims[0],
                        (long long)x->dims[1], (long long)prod(x, 2, x->rank), c_float(op->a.eps));
    simple_call(e, op, "float *y, const float *x, const float *gamma, const float *beta, const float *mean, const float *var", body);
}

/* layernorm over the last axis, each part a range of its rows. */
static void emit_layernorm(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0];
    long long D = x->dims[x->rank - 1], rows = tensor_numel(x) / D;
    char *body = format("%s   /* rows of %lld */\n"
                        "    nnk_layernorm(%s, %s, a->in[1], a->in[2], r1 - r0, %lld, %s);\n",
                        share("r0", "r1", rows, 1), D, at("a->y", affine(D, "r0", 0, NULL)), at("a->in[0]", affine(D, "r0", 0, NULL)), D, c_float(op->a.eps));
    parallel_call(e, op, body);
}

/* The kernels' name of an attention's mask kind. */
static const char *mask_enum(int kind) {
    static const char *const names[] = {"NNK_MASK_NONE", "NNK_MASK_ADD", "NNK_MASK_KEEP", "NNK_MASK_DROP"};
    return names[kind];
}

/* The step between the attn_mask matrices of an nn.MultiheadAttention's (batch, head) units: 0 for one [L, S] mask. */
static long long mha_mask_step(const Op *op) {
    const Tensor *m = op->in.items[op->in.len - 1];
    return op->a.mask && m->rank == 3 ? m->dims[1] * m->dims[2] : 0;
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
    const char *masked = op->a.mask ? format("_masked(y, x, %s, in_w, in_b, out_w, out_b, %lld, %lld, %lld, %lld, %d, %d, mask, %lld, %s, scratch",
                                             cross ? "mem" : "x", N, L, S, D, op->a.heads, op->a.causal, mha_mask_step(op), mask_enum(op->a.mask))
                                    : format("(y, x, %s, in_w, in_b, out_w, out_b, %lld, %lld, %lld, %lld, %d, %d, scratch", cross ? "mem" : "x", N, L,
                                             S, D, op->a.heads, op->a.causal);
    char *body = format("    _Static_assert(NNK_MHA_SCRATCH(%lld, %lld, %lld, %lld) <= %lld, \"scratch planned too small\");\n"
                        "    nnk_mha%s);\n", N, L, S, D, (long long)op->impl.scratch_floats, masked);
    const char *params = format("%s%s, float *scratch",
                                cross ? "float *y, const float *x, const float *mem, const float *in_w, const float *in_b, const float *out_w, "
                                        "const float *out_b"
                                      : "float *y, const float *x, const float *in_w, const float *in_b, const float *out_w, "
                                        "const float *out_b",
                                op->a.mask ? ", const float *mask" : "");
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
    buf_puts(&project, gemm_scratch_for(e, N * (L > S ? L : S), D, D, false, in_packed));
    const char *what[3] = {"Q", "K", "V"};
    const long long at_[3] = {0, k_at, v_at}, rows[3] = {N * L, N * S, N * S};
    for (int j = 0; j < 3; j++)
        buf_printf(&project, "    nnk_linear_gemm(%s, %lld, a->in[%d], a->in[%d], %d, %lld, (int)%s, a->in[%d] + %s, NULL, NNK_ACT_NONE,\n"
                             "                    NNK_ACT_NONE, %lld, %lld, (int)(o1 - o0), scratch);   /* %s */\n",
                   at("a->y", plus_o0(at_[j])), D, j == 0 || !cross ? 0 : 1, wi, in_packed, 3 * D, plus_o0(j * D), wi + 1,
                   plus_o0(j * D), rows[j], D, what[j]);
    const char *fn1 = specialise_stage(e, op, "project", "const nnrt_op_args *a, int part, int parts", project.buf);

    need_scratch(e, NNK_ATTEND_SCRATCH(S), format("NNK_ATTEND_SCRATCH(%lld)", S));
    const char *mask = op->a.mask ? format("a->in[2], %lld, %s, ", mha_mask_step(op), mask_enum(op->a.mask)) : "";
    char *attend = format("%s\n"
                          "    nnk_mha_attend%s(a->y, a->in[0], a->in[1], %lld, %lld, %lld, %lld, %d, %su0, u1,\n"
                          "                   a->scratch + (long)part * SCRATCH_FLOATS);\n",
                          share("u0", "u1", N * heads, 1), op->a.mask ? "_masked" : "", L, S, D, heads, op->a.causal, mask);
    const char *fn2 = specialise_stage(e, op, "attend", "const nnrt_op_args *a, int part, int parts", attend);

    Buf output = {0};
    split_rows(&output, D, out_packed, op->impl.pack_width);
    buf_puts(&output, gemm_scratch_for(e, N * L, D, D, false, out_packed));
    buf_printf(&output, "    nnk_linear_gemm(a->y + o0, %lld, a->in[0], a->in[1], %d, %lld, (int)o0, a->in[2] + o0, NULL, NNK_ACT_NONE, NNK_ACT_NONE,\n"
                        "                    %lld, %lld, (int)(o1 - o0), scratch);\n", D, out_packed, D, N * L, D);
    const char *fn3 = specialise_stage(e, op, "output", "const nnrt_op_args *a, int part, int parts", output.buf);

    e->parallel = true;
    call_comment(e, op);
    buf_printf(&e->body, "    PARALLEL(%s, %s, %s%s%s, %s, %s);\n", fn1, scratch, ptr(e, x), cross ? ", " : "", cross ? ptr(e, mem) : "",
               ptr(e, op->in.items[wi]), ptr(e, op->in.items[wi + 1]));
    buf_printf(&e->body, "    PARALLEL(%s, %s, %s, %s%s);\n", fn2, scratch, scratch_ref(e, op, k_at), scratch_ref(e, op, v_at),
               op->a.mask ? format(", %s", ptr(e, op->in.items[op->in.len - 1])) : "");
    buf_printf(&e->body, "    PARALLEL(%s, %s, %s, %s, %s);\n    TICK(%d);\n", fn3, ptr(e, op->out), scratch, ptr(e, op->in.items[wi + 2]),
               ptr(e, op->in.items[wi + 3]), op->id);
}

static void emit_clamp(Emitter *e, const Op *op) {
    simple_call(e, op, "float *y, const float *x",
                format("    nnk_clamp(y, x, %lld, %s, %s);\n", (long long)tensor_numel(op->out), c_float(op->a.lo), c_float(op->a.hi)));
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
    case OP_EQ: return "NNK_EQ";   /* (a comparison is never reversed: build_scalar mirrored it) */
    case OP_NE: return "NNK_NE";
    case OP_LT: return "NNK_LT";
    case OP_LE: return "NNK_LE";
    case OP_GT: return "NNK_GT";
    case OP_GE: return "NNK_GE";
    default: return reversed ? "NNK_RDIV" : "NNK_DIV";
    }
}

static void emit_binary(Emitter *e, const Op *op) {
    static const Operator ops[] = {[OPK_ADD] = OP_ADD, [OPK_SUB] = OP_SUB, [OPK_MUL] = OP_MUL, [OPK_DIV] = OP_DIV, [OPK_EQ] = OP_EQ,
                                   [OPK_NE] = OP_NE, [OPK_LT] = OP_LT, [OPK_LE] = OP_LE, [OPK_GT] = OP_GT, [OPK_GE] = OP_GE};
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
    bool blocked = x->layout == LAYOUT_NCHW16C;   /* (choose_layouts blocks only the average pools nnk_avgpool_nchwc computes) */
    char *shape = format("    static const nnk_pool_params shape = {.N = %lld, .C = %lld, .H = %lld, .W = %lld, .OH = %lld, .OW = %lld,\n"
                         "                                         .kh = %d, .kw = %d, .sh = %d, .sw = %d, .pt = %d, .pl = %d, .pb = %d, .pr = %d%s%s};\n",
                         (long long)x->dims[0], (long long)x->dims[1], (long long)x->dims[2], (long long)x->dims[3], (long long)y->dims[2],
                         (long long)y->dims[3], a->kernel[0], a->kernel[1], a->stride[0], a->stride[1], a->pad[0], a->pad[1], a->pad[2],
                         a->pad[3], a->ceil_mode ? ", .ceil_mode = 1" : "",
                         op->kind == OPK_AVGPOOL && a->count_include_pad ? ", .count_include_pad = 1" : "");
    if (blocked) {   /* blocks of 16 channels, split between the threads as plane_share says */
        parallel_call(e, op, format("%s%s    nnk_%spool_nchwc(a->y, a->in[0], &shape, (int)b0, (int)b1, (int)r0, (int)r1);\n", shape,
                                    plane_share(x, x->dims[0] * x->dims[1] / NNK_CB, y->dims[2]), op->kind == OPK_MAXPOOL ? "max" : "avg"));
        return;
    }
    simple_call(e, op, "float *restrict y, const float *restrict x",
                format("%s    %s(y, x, &shape);\n", shape, op->kind == OPK_MAXPOOL ? "nnk_maxpool" : "nnk_avgpool"));
}

static void emit_adaptive_avgpool(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0], *y = op->out;
    if (x->layout == LAYOUT_NCHW16C) {   /* to 1×1 (choose_layouts.c): the result [N, C, 1, 1] is plain */
        long long blocks = x->dims[0] * x->dims[1] / NNK_CB;
        parallel_call(e, op, format("%s   /* blocks of 16 channels */\n"
                                    "    nnk_global_avgpool_nchwc(a->y, a->in[0], %lld, (int)b0, (int)b1);\n",
                                    share("b0", "b1", blocks, 1), (long long)(x->dims[2] * x->dims[3])));
        return;
    }
    long long planes = x->dims[0] * x->dims[1];
    parallel_call(e, op, format("%s   /* planes */\n"
                                "    nnk_adaptive_avgpool2d_planes(a->y, a->in[0], %lld, %lld, %lld, %lld, p0, p1);\n", share("p0", "p1", planes, 1),
                                (long long)x->dims[2], (long long)x->dims[3], (long long)y->dims[2], (long long)y->dims[3]));
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
    long long last = x->rank ? x->dims[op->a.perm[x->rank - 1]] : 1, rows = last ? tensor_numel(x) / last : 0;
    char *body = format("    static const int dims[] = %s, perm[] = %s;\n"
                        "%s   /* rows of the result */\n"
                        "    nnk_transpose_rows(a->y, a->in[0], %d, dims, perm, r0, r1);\n",
                        int_array(x->rank, x->dims), int_array(x->rank, perm), share("r0", "r1", rows, 1), x->rank);
    parallel_call(e, op, body);
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
    Buf body = {0};
    const char *mask = "NULL, 0, 0";
    if (op->a.mask) {   /* the mask read as the scores [batch..., L, S]: its offset for batch b, then its row and column strides */
        const Tensor *m = op->in.items[3];
        Tensor scores = *q;
        scores.dims[r - 1] = S;
        int64_t st[MAX_RANK], s = 1;
        for (int i = r - 1; i >= 0; i--) {
            int j = m->rank - r + i;
            int64_t d = j >= 0 ? m->dims[j] : 1;
            st[i] = d == 1 ? 0 : s;
            s *= d;
        }
        if (r > 2)
            buf_printf(&body, "    static const int bdims[] = %s;\n    static const long mstrides[] = %s;\n", int_array(r - 2, scores.dims),
                       int_array(r - 2, st));
        mask = format("a->in[3]%s, %lld, %lld", r > 2 ? format(" + nnk__offset(b, %d, bdims, mstrides)", r - 2) : "", (long long)st[r - 2],
                      (long long)st[r - 1]);
    }
    buf_printf(&body, "%s\n"
                      "    for (long b = b0; b < b1; b++)\n"
                      "        nnk_attend_blocked(a->y + b * %lld, %lld, a->in[0] + b * %lld, %lld, a->in[1] + b * %lld, %lld, a->in[2] + b * %lld, %lld,\n"
                      "                           %lld, %lld, %lld, %lld, %s, %d, %s, %s, a->scratch + (long)part * SCRATCH_FLOATS);\n",
               share("b0", "b1", B, 1), L * Dv, Dv, L * D, D, S * D, D, S * Dv, Dv, L, S, D, Dv, format("1.0f / sqrtf(%lld.0f)", D), op->a.causal, mask,
               mask_enum(op->a.mask));
    const char *fn = specialise(e, op, "const nnrt_op_args *a, int part, int parts", body.buf);
    e->parallel = true;
    call_comment(e, op);
    buf_printf(&e->body, "    PARALLEL(%s, %s, %s, %s, %s%s);\n    TICK(%d);\n", fn, ptr(e, op->out), ptr(e, q), ptr(e, k), ptr(e, v),
               op->a.mask ? format(", %s", ptr(e, op->in.items[3])) : "", op->id);
}

static void emit_index_select(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0], *index = op->in.items[1];
    int ax = op->a.axis;
    char *body = format("    nnk_index_select(y, x, index, %lld, %lld, %lld, %lld);\n", (long long)prod(x, 0, ax), (long long)x->dims[ax],
                        (long long)prod(x, ax + 1, x->rank), (long long)tensor_numel(index));
    simple_call(e, op, "float *restrict y, const float *restrict x, const float *restrict index", body);
}

static void emit_full(Emitter *e, const Op *op) {
    simple_call(e, op, "float *y", format("    nnk_full(y, %s, %lld);\n", c_float(op->a.value), (long long)tensor_numel(op->out)));
}

static void emit_arange(Emitter *e, const Op *op) {
    simple_call(e, op, "float *y", format("    nnk_arange(y, %.17g, %.17g, %lld);\n", op->a.value, op->a.lo, (long long)tensor_numel(op->out)));
}

static void emit_where(Emitter *e, const Op *op) {
    const Tensor *y = op->out;
    int sc = op->a.scalars;
    const Tensor *a = sc & 1 ? NULL : op->in.items[1], *b = sc & 2 ? NULL : op->in.items[sc & 1 ? 1 : 2];
    Buf body = {0}, params = {0};
    buf_printf(&body, "    static const int dims[] = %s;\n    static const long c_strides[] = %s", int_array(y->rank, y->dims),
               broadcast_strides(op->in.items[0], y));
    buf_printf(&body, "%s%s%s%s;\n", a ? ", a_strides[] = " : "", a ? broadcast_strides(a, y) : "", b ? ", b_strides[] = " : "",
               b ? broadcast_strides(b, y) : "");
    buf_printf(&body, "    nnk_where(y, c, %s, %s, %s, %s, %d, dims, c_strides, %s, %s);\n", a ? "a" : "NULL", b ? "b" : "NULL",
               c_float(sc & 1 ? op->a.lo : 0), c_float(sc & 2 ? op->a.hi : 0), y->rank, a ? "a_strides" : "NULL", b ? "b_strides" : "NULL");
    buf_printf(&params, "float *restrict y, const float *restrict c%s%s", a ? ", const float *restrict a" : "", b ? ", const float *restrict b" : "");
    simple_call(e, op, params.buf, body.buf);
}

static void emit_reduce(Emitter *e, const Op *op) {
    const Tensor *x = op->in.items[0];
    int ax = op->a.axis;
    const char *kind = op->a.reduce == OPK_SUM ? "NNK_REDUCE_SUM" : op->a.reduce == OPK_MEAN ? "NNK_REDUCE_MEAN"
                     : op->a.reduce == OPK_MAX ? "NNK_REDUCE_MAX" : "NNK_REDUCE_MIN";
    char *body = format("    nnk_reduce(y, x, %lld, %lld, %lld, %s);\n", (long long)prod(x, 0, ax), (long long)x->dims[ax],
                        (long long)prod(x, ax + 1, x->rank), kind);
    simple_call(e, op, "float *restrict y, const float *restrict x", body);
}

/* The emitters by op kind, from ops.def (0 for the rows that lower to other ops). */
static EmitFn *const emit_fn[OPK_COUNT] = {
#define OP(id, name, user, props, act, sig, build, emit) [OPK_##id] = emit,
#include "ops.def"
#undef OP
};

bool op_has_emitter(OpKind kind) { return emit_fn[kind] != NULL; }
EmitFn *emitter_of(OpKind kind) { return emit_fn[kind]; }
