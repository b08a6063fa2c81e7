/*
 * reference.c — the reference evaluator (see reference.h): the graph as elaborated, one op at a time, each
 * written as the plain loop nest of its definition in PyTorch's documentation, every value in double.
 *
 * Nothing here is shared with runtime/kernels, on purpose: the point is a second, independent statement of
 * what every op computes, simple enough to be checked by reading. Speed is not a goal beyond running
 * the test models in a second or two: no blocking, no vectorisation, no threads, indices recomputed
 * from scratch where that reads more clearly. Only the runtime's file readers are reused (the safetensors
 * loader with its checks and F16/BF16 conversion, the .npy reader and writer, the generated program's
 * pseudo-random inputs), so that the reference sees exactly the bytes the generated program sees.
 */
#include "reference.h"

#include "nnrt.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */

static int64_t numel(const Tensor *t) { return tensor_numel(t); }   /* 1 for a rank-0 tensor */

/* Product of dims[from..to). */
static int64_t span(const Tensor *t, int from, int to) {
    int64_t n = 1;
    for (int i = from; i < to; i++)
        n *= t->dims[i];
    return n;
}

static double *alloc_values(int64_t n) {
    if (n < 0 || (uint64_t)n > SIZE_MAX / sizeof(double))
        return NULL;
    return malloc((size_t)(n ? n : 1) * sizeof(double));
}

/* The strides of `t` read as a tensor of shape `out` under NumPy broadcasting: t's axes aligned with
   out's from the right, stride 0 on an axis where t has size 1 or no axis at all. */
static void broadcast_strides(const Tensor *t, const Tensor *out, int64_t *strides) {
    int64_t s = 1;
    for (int i = out->rank - 1; i >= 0; i--) {
        int j = t->rank - out->rank + i;
        int64_t d = j >= 0 ? t->dims[j] : 1;
        strides[i] = d == 1 ? 0 : s;
        s *= d;
    }
}

/* The offset, under `strides`, of the element whose flat (row-major) index in `out` is `flat`. */
static int64_t offset_of(const Tensor *out, int64_t flat, const int64_t *strides) {
    int64_t off = 0;
    for (int i = out->rank - 1; i >= 0; i--) {
        off += flat % out->dims[i] * strides[i];
        flat /= out->dims[i];
    }
    return off;
}

static double sigmoid(double v) { return 1.0 / (1.0 + exp(-v)); }

/* The activations, from their definitions (PyTorch's documentation). relu keeps a NaN, as torch.relu does. */
static double activate(OpKind kind, bool tanh_form, double v) {
    switch (kind) {
    case OPK_RELU: return v < 0 ? 0.0 : v;
    case OPK_GELU:
        if (tanh_form)
            return 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
        return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
    case OPK_SIGMOID: return sigmoid(v);
    case OPK_TANH: return tanh(v);
    case OPK_SILU: return v * sigmoid(v);
    case OPK_NEG: return -v;
    case OPK_RELU6: return isnan(v) ? v : fmin(fmax(v, 0.0), 6.0);
    case OPK_HARDSIGMOID: return isnan(v) ? v : fmin(fmax(v + 3.0, 0.0), 6.0) / 6.0;
    case OPK_HARDSWISH: return isnan(v) ? v : v * fmin(fmax(v + 3.0, 0.0), 6.0) / 6.0;
    case OPK_SQRT: return sqrt(v);
    case OPK_RSQRT: return 1.0 / sqrt(v);
    case OPK_EXP: return exp(v);
    case OPK_LOG: return log(v);
    case OPK_ABS: return fabs(v);
    default: return v;
    }
}


/* Whether a gelu op is the tanh approximation (the activation the op runs is in its attributes). */
static bool is_tanh_gelu(const Op *op) { return op->kind == OPK_GELU && op->a.act == ACT_GELU_TANH; }

/* A number of the .net source meeting a tensor becomes float32 (docs/language.md, section 6). */
static double as_f32(double v) { return (double)(float)v; }

/* softmax over `len` values `stride` apart, in place */
static void softmax_line(double *x, int64_t len, int64_t stride) {
    double m = -INFINITY;
    for (int64_t j = 0; j < len; j++)
        m = x[j * stride] > m || isnan(x[j * stride]) ? x[j * stride] : m;
    double sum = 0;
    for (int64_t j = 0; j < len; j++) {
        x[j * stride] = exp(x[j * stride] - m);
        sum += x[j * stride];
    }
    for (int64_t j = 0; j < len; j++)
        x[j * stride] /= sum;
}

/* One head of attention for one query row: out[0..dv) = softmax(q . k_j * scale (+ mask) over j < n_keys) @ v,
   with k_j at k + j * k_stride, v_j at v + j * v_stride and the mask's element j at mask + j * mask_stride.
   scores has room for n_keys doubles. */
static void attend_row(double *out, int64_t out_stride, const double *q, const double *k, int64_t k_stride, const double *v,
                       int64_t v_stride, int64_t d, int64_t dv, int64_t n_keys, double scale, const double *mask, int64_t mask_stride,
                       int mask_kind, double *scores) {
    for (int64_t j = 0; j < n_keys; j++) {
        double s = 0;
        for (int64_t e = 0; e < d; e++)
            s += q[e] * k[j * k_stride + e];
        scores[j] = s * scale;
        if (mask_kind == MASK_ADD)   /* attn_mask: added, or a boolean that keeps (or masks) the key where true */
            scores[j] += mask[j * mask_stride];
        else if (mask_kind == MASK_KEEP || mask_kind == MASK_DROP)
            scores[j] = (mask[j * mask_stride] != 0) == (mask_kind == MASK_KEEP) ? scores[j] : -INFINITY;
    }
    softmax_line(scores, n_keys, 1);
    for (int64_t e = 0; e < dv; e++) {
        double s = 0;
        for (int64_t j = 0; j < n_keys; j++)
            s += scores[j] * v[j * v_stride + e];
        out[e * out_stride] = s;
    }
}

/* ---------------------------------------------------------------- the ops */

/* Each evaluates one op: y is its output (numel(op->out) doubles), in[i] its inputs' values. Returns
   false only for an internal problem, with a message in err. */
typedef struct {
    const Op *op;
    double *y;
    double **in;
    char *err;
    size_t err_size;
} Ctx;

static const Tensor *IN(const Ctx *c, int i) { return c->op->in.items[i]; }

/* nn.Conv2d: y[n, o, i, j] = b[o] + sum over the channels c of o's group and the taps (p, q) of
   x[n, c, i*sh - pad_top + p*dh, j*sw - pad_left + q*dw] * w[o, c - group start, p, q], cells outside x being 0,
   multiplied as PyTorch multiplies its padding (0 * inf and 0 * NaN are NaN). */
static void ref_conv2d(Ctx *c) {
    const Tensor *x = IN(c, 0), *w = IN(c, 1), *y = c->op->out;
    const Attrs *a = &c->op->a;
    const double *X = c->in[0], *Wt = c->in[1], *B = a->has_bias ? c->in[2] : NULL;
    int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    int64_t O = y->dims[1], OH = y->dims[2], OW = y->dims[3], KH = w->dims[2], KW = w->dims[3];
    int64_t G = a->groups, Cg = C / G, Og = O / G;
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++) {
            int64_t g = o / Og;
            for (int64_t i = 0; i < OH; i++)
                for (int64_t j = 0; j < OW; j++) {
                    double s = B ? B[o] : 0.0;
                    for (int64_t cc = 0; cc < Cg; cc++) {
                        int64_t ci = g * Cg + cc;
                        for (int64_t p = 0; p < KH; p++) {
                            int64_t h = i * a->stride[0] - a->pad[0] + p * a->dilation[0];
                            for (int64_t q = 0; q < KW; q++) {
                                int64_t v = j * a->stride[1] - a->pad[1] + q * a->dilation[1];
                                double xv = h < 0 || h >= H || v < 0 || v >= W ? 0.0 : X[((n * C + ci) * H + h) * W + v];
                                s += xv * Wt[((o * Cg + cc) * KH + p) * KW + q];
                            }
                        }
                    }
                    c->y[((n * O + o) * OH + i) * OW + j] = s;
                }
        }
}

/* nn.Linear on the last axis: y[m, o] = b[o] + sum_k x[m, k] * w[o, k] */
static void ref_linear(Ctx *c) {
    const Tensor *x = IN(c, 0);
    const double *X = c->in[0], *Wt = c->in[1], *B = c->op->a.has_bias ? c->in[2] : NULL;
    int64_t K = x->dims[x->rank - 1], M = numel(x) / K, O = c->op->out->dims[c->op->out->rank - 1];
    for (int64_t m = 0; m < M; m++)
        for (int64_t o = 0; o < O; o++) {
            double s = B ? B[o] : 0.0;
            for (int64_t k = 0; k < K; k++)
                s += X[m * K + k] * Wt[o * K + k];
            c->y[m * O + o] = s;
        }
}

/* BatchNorm in eval mode, channel axis 1: (x - mean[c]) / sqrt(var[c] + eps) * weight[c] + bias[c] */
static void ref_batchnorm(Ctx *c) {
    const Tensor *x = IN(c, 0);
    const double *X = c->in[0], *gamma = c->in[1], *beta = c->in[2], *mean = c->in[3], *var = c->in[4];
    int64_t N = x->dims[0], C = x->dims[1], R = span(x, 2, x->rank);
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < C; ch++)
            for (int64_t r = 0; r < R; r++) {
                int64_t i = (n * C + ch) * R + r;
                c->y[i] = (X[i] - mean[ch]) / sqrt(var[ch] + c->op->a.eps) * gamma[ch] + beta[ch];
            }
}

/* LayerNorm over the last axis, with the biased variance: (x - mean) / sqrt(var + eps) * weight + bias */
static void ref_layernorm(Ctx *c) {
    const Tensor *x = IN(c, 0);
    const double *X = c->in[0], *gamma = c->in[1], *beta = c->in[2];
    int64_t D = x->dims[x->rank - 1], M = numel(x) / D;
    for (int64_t m = 0; m < M; m++) {
        const double *row = X + m * D;
        double mean = 0, var = 0;
        for (int64_t d = 0; d < D; d++)
            mean += row[d];
        mean /= (double)D;
        for (int64_t d = 0; d < D; d++)
            var += (row[d] - mean) * (row[d] - mean);
        var /= (double)D;
        for (int64_t d = 0; d < D; d++)
            c->y[m * D + d] = (row[d] - mean) / sqrt(var + c->op->a.eps) * gamma[d] + beta[d];
    }
}

/* rows x [R, K] @ w[O, K]^T + b -> y [R, O] (the projections of attention) */
static void project(double *y, const double *x, const double *w, const double *b, int64_t R, int64_t K, int64_t O) {
    for (int64_t r = 0; r < R; r++)
        for (int64_t o = 0; o < O; o++) {
            double s = b[o];
            for (int64_t k = 0; k < K; k++)
                s += x[r * K + k] * w[o * K + k];
            y[r * O + o] = s;
        }
}

/* nn.MultiheadAttention(D, heads, batch_first=True) called (x, mem, mem): q = x Wq^T + bq, k = mem Wk^T + bk,
   v = mem Wv^T + bv (Wq, Wk, Wv the thirds of in_proj_weight); each head h takes features [h*dh, (h+1)*dh)
   and computes softmax(q k^T / sqrt(dh)) v, key j > query i masked when causal; the heads' outputs side
   by side go through out_proj. */
static bool ref_mha(Ctx *c) {
    bool cross = c->op->kind == OPK_CROSS_ATTENTION;
    const Tensor *x = IN(c, 0), *mem = cross ? IN(c, 1) : x;
    int wi = cross ? 2 : 1;
    const double *X = c->in[0], *Mem = cross ? c->in[1] : X;
    const double *in_w = c->in[wi], *in_b = c->in[wi + 1], *out_w = c->in[wi + 2], *out_b = c->in[wi + 3];
    int64_t N = x->dims[0], L = x->dims[1], D = x->dims[2], S = mem->dims[1], heads = c->op->a.heads, dh = D / heads;
    double *q = alloc_values(N * L * D), *k = alloc_values(N * S * D), *v = alloc_values(N * S * D), *o = alloc_values(N * L * D);
    double *scores = alloc_values(S);
    bool ok = q && k && v && o && scores;
    if (ok) {
        project(q, X, in_w, in_b, N * L, D, D);
        project(k, Mem, in_w + D * D, in_b + D, N * S, D, D);
        project(v, Mem, in_w + 2 * D * D, in_b + 2 * D, N * S, D, D);
        for (int64_t n = 0; n < N; n++)
            for (int64_t h = 0; h < heads; h++)
                for (int64_t i = 0; i < L; i++) {
                    int64_t keys = c->op->a.causal ? (i + 1 < S ? i + 1 : S) : S;
                    const Tensor *m = c->op->a.mask ? IN(c, c->op->in.len - 1) : NULL;   /* [L, S] or [N * heads, L, S] */
                    const double *mrow = m ? c->in[c->op->in.len - 1] + (m->rank == 3 ? (n * heads + h) * L * S : 0) + i * S : NULL;
                    attend_row(o + (n * L + i) * D + h * dh, 1, q + (n * L + i) * D + h * dh, k + n * S * D + h * dh, D,
                               v + n * S * D + h * dh, D, dh, dh, keys, 1.0 / sqrt((double)dh), mrow, 1, c->op->a.mask, scores);
                }
        project(c->y, o, out_w, out_b, N * L, D, D);
    } else {
        snprintf(c->err, c->err_size, "out of memory evaluating %s", op_info[c->op->kind].name);
    }
    free(q);
    free(k);
    free(v);
    free(o);
    free(scores);
    return ok;
}

/* torch.clamp: min(max(x, lo), hi), a NaN kept */
static void ref_clamp(Ctx *c) {
    for (int64_t i = 0; i < numel(c->op->out); i++) {
        double v = c->in[0][i];
        c->y[i] = isnan(v) ? v : fmin(fmax(v, c->op->a.lo), c->op->a.hi);
    }
}

static void ref_unary(Ctx *c) {
    bool tanh_form = is_tanh_gelu(c->op);
    for (int64_t i = 0; i < numel(c->op->out); i++)
        c->y[i] = activate(c->op->kind, tanh_form, c->in[0][i]);
}

static double binop(Operator op, double a, double b) {
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_EQ: return a == b;   /* comparisons: 1 where true, 0 where false */
    case OP_NE: return a != b;
    case OP_LT: return a < b;
    case OP_LE: return a <= b;
    case OP_GT: return a > b;
    case OP_GE: return a >= b;
    default: return a / b;
    }
}

/* a OP b elementwise, both broadcast to the output's shape */
static void ref_binary(Ctx *c) {
    static const Operator ops[] = {[OPK_ADD] = OP_ADD, [OPK_SUB] = OP_SUB, [OPK_MUL] = OP_MUL, [OPK_DIV] = OP_DIV, [OPK_EQ] = OP_EQ,
                                   [OPK_NE] = OP_NE, [OPK_LT] = OP_LT, [OPK_LE] = OP_LE, [OPK_GT] = OP_GT, [OPK_GE] = OP_GE};
    const Tensor *y = c->op->out;
    int64_t sa[MAX_RANK], sb[MAX_RANK];
    broadcast_strides(IN(c, 0), y, sa);
    broadcast_strides(IN(c, 1), y, sb);
    for (int64_t i = 0; i < numel(y); i++)
        c->y[i] = binop(ops[c->op->kind], c->in[0][offset_of(y, i, sa)], c->in[1][offset_of(y, i, sb)]);
}

/* x OP s, or s OP x when the number came first (`1 - x`, `2 / x`) */
static void ref_scalar(Ctx *c) {
    double s = as_f32(c->op->a.value);
    for (int64_t i = 0; i < numel(c->op->out); i++)
        c->y[i] = c->op->a.scalar_first ? binop(c->op->a.binop, s, c->in[0][i]) : binop(c->op->a.binop, c->in[0][i], s);
}

static void ref_softmax(Ctx *c) {
    const Tensor *x = IN(c, 0);
    int ax = c->op->a.axis;
    int64_t outer = span(x, 0, ax), len = x->dims[ax], inner = span(x, ax + 1, x->rank);
    memcpy(c->y, c->in[0], (size_t)numel(x) * sizeof(double));
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++)
            softmax_line(c->y + o * len * inner + i, len, inner);
}

/* nn.MaxPool2d / nn.AvgPool2d: over each window of the input padded by pad[0] rows on top and pad[1]
   columns on the left (pad[2], pad[3] at the bottom and right); padded cells are ignored by max (-inf).
   The average divides by the window's cells within the padded input (count_include_pad) or within the
   input alone; a window that ceil_mode keeps past the padding counts only what it covers. */
static void ref_pool(Ctx *c) {
    const Tensor *x = IN(c, 0), *y = c->op->out;
    const Attrs *a = &c->op->a;
    bool is_max = c->op->kind == OPK_MAXPOOL;
    int64_t NC = x->dims[0] * x->dims[1], H = x->dims[2], W = x->dims[3], OH = y->dims[2], OW = y->dims[3];
    for (int64_t p = 0; p < NC; p++)
        for (int64_t i = 0; i < OH; i++)
            for (int64_t j = 0; j < OW; j++) {
                double acc = is_max ? -INFINITY : 0.0;
                for (int64_t u = 0; u < a->kernel[0]; u++)
                    for (int64_t v = 0; v < a->kernel[1]; v++) {
                        int64_t h = i * a->stride[0] - a->pad[0] + u, w = j * a->stride[1] - a->pad[1] + v;
                        if (h < 0 || h >= H || w < 0 || w >= W)
                            continue;
                        double e = c->in[0][(p * H + h) * W + w];
                        if (is_max)
                            acc = e > acc || isnan(e) ? e : acc;
                        else
                            acc += e;
                    }
                int64_t h0 = i * a->stride[0] - a->pad[0], w0 = j * a->stride[1] - a->pad[1];
                int64_t h1 = h0 + a->kernel[0] < H + a->pad[2] ? h0 + a->kernel[0] : H + a->pad[2];
                int64_t w1 = w0 + a->kernel[1] < W + a->pad[3] ? w0 + a->kernel[1] : W + a->pad[3];
                int64_t cells = a->count_include_pad ? (h1 - h0) * (w1 - w0)
                                                     : ((h1 < H ? h1 : H) - (h0 > 0 ? h0 : 0)) * ((w1 < W ? w1 : W) - (w0 > 0 ? w0 : 0));
                c->y[(p * OH + i) * OW + j] = is_max ? acc : acc / (double)cells;
            }
}

/* nn.AdaptiveAvgPool2d: output row i averages input rows floor(i*H/OH) .. ceil((i+1)*H/OH) - 1, likewise columns */
static void ref_adaptive_avgpool(Ctx *c) {
    const Tensor *x = IN(c, 0), *y = c->op->out;
    int64_t NC = x->dims[0] * x->dims[1], H = x->dims[2], W = x->dims[3], OH = y->dims[2], OW = y->dims[3];
    for (int64_t p = 0; p < NC; p++)
        for (int64_t i = 0; i < OH; i++)
            for (int64_t j = 0; j < OW; j++) {
                int64_t h0 = i * H / OH, h1 = ((i + 1) * H + OH - 1) / OH, w0 = j * W / OW, w1 = ((j + 1) * W + OW - 1) / OW;
                double s = 0;
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++)
                        s += c->in[0][(p * H + h) * W + w];
                c->y[(p * OH + i) * OW + j] = s / (double)((h1 - h0) * (w1 - w0));
            }
}

/* F.pad on one axis with a constant */
static void ref_pad(Ctx *c) {
    const Tensor *x = IN(c, 0);
    int ax = c->op->a.axis;
    int64_t outer = span(x, 0, ax), len = x->dims[ax], inner = span(x, ax + 1, x->rank);
    int64_t before = c->op->a.before, olen = len + before + c->op->a.after;
    double value = as_f32(c->op->a.value);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < olen; j++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t src = j - before;
                c->y[(o * olen + j) * inner + i] = src >= 0 && src < len ? c->in[0][(o * len + src) * inner + i] : value;
            }
}

/* reshape (and the copies made for outputs that are inputs, weights or repeats): the same elements */
static void ref_reshape(Ctx *c) { memcpy(c->y, c->in[0], (size_t)numel(c->op->out) * sizeof(double)); }

/* x.permute(perm): output axis i is input axis perm[i] */
static void ref_transpose(Ctx *c) {
    const Tensor *x = IN(c, 0), *y = c->op->out;
    int64_t xs[MAX_RANK], s[MAX_RANK], stride = 1;
    for (int i = x->rank - 1; i >= 0; i--) {
        xs[i] = stride;
        stride *= x->dims[i];
    }
    for (int i = 0; i < y->rank; i++)
        s[i] = xs[c->op->a.perm[i]];   /* a step along output axis i is a step along input axis perm[i] */
    for (int64_t i = 0; i < numel(y); i++)
        c->y[i] = c->in[0][offset_of(y, i, s)];
}

static void ref_concat(Ctx *c) {
    const Tensor *y = c->op->out;
    int ax = c->op->a.axis;
    int64_t outer = span(y, 0, ax), inner = span(y, ax + 1, y->rank), ylen = y->dims[ax], at = 0;
    for (int t = 0; t < c->op->in.len; t++) {
        int64_t len = IN(c, t)->dims[ax];
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < len; j++)
                for (int64_t i = 0; i < inner; i++)
                    c->y[(o * ylen + at + j) * inner + i] = c->in[t][(o * len + j) * inner + i];
        at += len;
    }
}

/* x[..., start : start + count*step : step, ...] on the axis (start already normalised and clamped) */
static void ref_slice(Ctx *c) {
    const Tensor *x = IN(c, 0), *y = c->op->out;
    int ax = c->op->a.axis;
    int64_t outer = span(x, 0, ax), len = x->dims[ax], inner = span(x, ax + 1, x->rank), count = y->dims[ax];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < count; j++)
            for (int64_t i = 0; i < inner; i++)
                c->y[(o * count + j) * inner + i] = c->in[0][(o * len + c->op->a.start + j * c->op->a.step) * inner + i];
}

static void ref_expand(Ctx *c) {
    const Tensor *y = c->op->out;
    int64_t s[MAX_RANK];
    broadcast_strides(IN(c, 0), y, s);
    for (int64_t i = 0; i < numel(y); i++)
        c->y[i] = c->in[0][offset_of(y, i, s)];
}

/* torch.matmul: a 1-D left operand is a row, a 1-D right one a column (their axis is then absent from the
   result, which does not change its element order); the batch axes broadcast. */
static void ref_matmul(Ctx *c) {
    Tensor a2, b2;
    matmul_operands(IN(c, 0), IN(c, 1), &a2, &b2);
    int64_t M = a2.dims[a2.rank - 2], K = a2.dims[a2.rank - 1], N = b2.dims[b2.rank - 1];
    /* the batch axes: out_batch is the broadcast shape, as a tensor, to index a and b's batches with */
    Tensor ba = a2, bb = b2, batch = {0};
    ba.rank -= 2;
    bb.rank -= 2;
    batch.rank = ba.rank > bb.rank ? ba.rank : bb.rank;
    for (int i = 0; i < batch.rank; i++) {
        int ia = ba.rank - batch.rank + i, ib = bb.rank - batch.rank + i;
        int64_t da = ia >= 0 ? ba.dims[ia] : 1, db = ib >= 0 ? bb.dims[ib] : 1;
        batch.dims[i] = da == 1 ? db : da;
    }
    int64_t sa[MAX_RANK], sb[MAX_RANK];
    broadcast_strides(&ba, &batch, sa);
    broadcast_strides(&bb, &batch, sb);
    for (int64_t t = 0; t < numel(&batch); t++) {
        const double *A = c->in[0] + offset_of(&batch, t, sa) * M * K, *B = c->in[1] + offset_of(&batch, t, sb) * K * N;
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += A[m * K + k] * B[k * N + n];
                c->y[(t * M + m) * N + n] = s;
            }
    }
}

/* F.scaled_dot_product_attention: softmax(q k^T / sqrt(D)) v over the last two axes, key j > query i
   masked when causal (torch's is_causal: the top-left triangle, also when L != S) */
static bool ref_sdpa(Ctx *c) {
    const Tensor *q = IN(c, 0), *k = IN(c, 1), *v = IN(c, 2);
    int r = q->rank;
    int64_t B = span(q, 0, r - 2), L = q->dims[r - 2], D = q->dims[r - 1], S = k->dims[r - 2], Dv = v->dims[r - 1];
    double *scores = alloc_values(S);
    if (!scores) {
        snprintf(c->err, c->err_size, "out of memory evaluating %s", op_info[c->op->kind].name);
        return false;
    }
    Tensor sc = *q;   /* the scores [batch..., L, S], which the mask broadcasts to */
    sc.dims[r - 1] = S;
    int64_t ms[MAX_RANK] = {0};
    if (c->op->a.mask)
        broadcast_strides(IN(c, 3), &sc, ms);
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < L; i++) {
            int64_t keys = c->op->a.causal ? (i + 1 < S ? i + 1 : S) : S;
            const double *mrow = c->op->a.mask ? c->in[3] + offset_of(&sc, (b * L + i) * S, ms) : NULL;
            attend_row(c->y + (b * L + i) * Dv, 1, c->in[0] + (b * L + i) * D, c->in[1] + b * S * D, D, c->in[2] + b * S * Dv, Dv, D, Dv,
                       keys, 1.0 / sqrt((double)D), mrow, ms[r - 1], c->op->a.mask, scores);
        }
    free(scores);
    return true;
}

/* torch.index_select / numpy.take: y[o, i..., k] = x[o, index[i...], k] (indices checked on load) */
static void ref_index_select(Ctx *c) {
    const Tensor *x = IN(c, 0);
    int ax = c->op->a.axis;
    int64_t outer = span(x, 0, ax), len = x->dims[ax], inner = span(x, ax + 1, x->rank), n = numel(IN(c, 1));
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < inner; k++)
                c->y[(o * n + i) * inner + k] = c->in[0][(o * len + (int64_t)c->in[1][i]) * inner + k];
}

/* torch.full, and torch.arange's start + i * step rounded to float32 */
static void ref_constant(Ctx *c) {
    for (int64_t i = 0; i < numel(c->op->out); i++)
        c->y[i] = c->op->kind == OPK_FULL ? as_f32(c->op->a.value) : as_f32(c->op->a.value + (double)i * c->op->a.lo);
}

/* torch.where(cond, a, b), a number standing for either operand */
static void ref_where(Ctx *c) {
    const Tensor *y = c->op->out;
    int sc = c->op->a.scalars, bi = sc & 1 ? 1 : 2;
    int64_t scs[MAX_RANK], sa[MAX_RANK], sb[MAX_RANK];
    broadcast_strides(IN(c, 0), y, scs);
    if (!(sc & 1))
        broadcast_strides(IN(c, 1), y, sa);
    if (!(sc & 2))
        broadcast_strides(IN(c, bi), y, sb);
    for (int64_t i = 0; i < numel(y); i++) {
        bool cond = c->in[0][offset_of(y, i, scs)] != 0;
        if (cond)
            c->y[i] = sc & 1 ? as_f32(c->op->a.lo) : c->in[1][offset_of(y, i, sa)];
        else
            c->y[i] = sc & 2 ? as_f32(c->op->a.hi) : c->in[bi][offset_of(y, i, sb)];
    }
}

/* sum, mean, amax or amin over one axis, kept with size 1; max and min keep a NaN */
static void ref_reduce(Ctx *c) {
    const Tensor *x = IN(c, 0);
    int ax = c->op->a.axis, kind = c->op->a.reduce;
    int64_t outer = span(x, 0, ax), len = x->dims[ax], inner = span(x, ax + 1, x->rank);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < inner; k++) {
            double acc = c->in[0][o * len * inner + k];
            for (int64_t j = 1; j < len; j++) {
                double v = c->in[0][(o * len + j) * inner + k];
                if (kind == OPK_SUM || kind == OPK_MEAN)
                    acc += v;
                else if (isnan(v) || (kind == OPK_MAX ? v > acc : v < acc))
                    acc = isnan(acc) ? acc : v;
            }
            c->y[o * inner + k] = kind == OPK_MEAN ? acc / (double)len : acc;
        }
}

static bool eval_op(Ctx *c) {
    const Op *op = c->op;
    if (op->a.act1 != 0 || op->a.act2 != 0 || op->a.residual != 0) {
        snprintf(c->err, c->err_size, "op %d (%s) has a fused epilogue: the reference evaluates the graph before any pass", op->id,
                 op_info[op->kind].name);
        return false;
    }
    switch (op->kind) {
    case OPK_CONV2D: ref_conv2d(c); return true;
    case OPK_LINEAR: ref_linear(c); return true;
    case OPK_BATCHNORM: ref_batchnorm(c); return true;
    case OPK_LAYERNORM: ref_layernorm(c); return true;
    case OPK_MHA:
    case OPK_CROSS_ATTENTION: return ref_mha(c);
    case OPK_RELU:
    case OPK_GELU:
    case OPK_SIGMOID:
    case OPK_TANH:
    case OPK_SILU:
    case OPK_NEG:
    case OPK_RELU6:
    case OPK_HARDSIGMOID:
    case OPK_HARDSWISH:
    case OPK_SQRT:
    case OPK_RSQRT:
    case OPK_EXP:
    case OPK_LOG:
    case OPK_ABS: ref_unary(c); return true;
    case OPK_CLAMP: ref_clamp(c); return true;
    case OPK_ADD:
    case OPK_SUB:
    case OPK_MUL:
    case OPK_DIV: ref_binary(c); return true;
    case OPK_SCALAR: ref_scalar(c); return true;
    case OPK_SOFTMAX: ref_softmax(c); return true;
    case OPK_MAXPOOL:
    case OPK_AVGPOOL: ref_pool(c); return true;
    case OPK_ADAPTIVE_AVGPOOL: ref_adaptive_avgpool(c); return true;
    case OPK_PAD: ref_pad(c); return true;
    case OPK_RESHAPE: ref_reshape(c); return true;
    case OPK_TRANSPOSE: ref_transpose(c); return true;
    case OPK_CONCAT: ref_concat(c); return true;
    case OPK_SLICE: ref_slice(c); return true;
    case OPK_EXPAND: ref_expand(c); return true;
    case OPK_MATMUL: ref_matmul(c); return true;
    case OPK_SDPA: return ref_sdpa(c);
    case OPK_EQ:
    case OPK_NE:
    case OPK_LT:
    case OPK_LE:
    case OPK_GT:
    case OPK_GE: ref_binary(c); return true;
    case OPK_WHERE: ref_where(c); return true;
    case OPK_INDEX_SELECT: ref_index_select(c); return true;
    case OPK_FULL:
    case OPK_ARANGE: ref_constant(c); return true;
    case OPK_REDUCE: ref_reduce(c); return true;
    /* rows of ops.def that lower to other ops while elaborating: never in a graph */
    case OPK_GLOBAL_AVGPOOL:
    case OPK_HARDTANH:
    case OPK_DROPOUT:
    case OPK_FLATTEN:
    case OPK_TAKE:
    case OPK_PARAM:
    /* ops that passes make (choose_layouts.c): not in a graph as elaborated */
    case OPK_PAD_PLANE:
    case OPK_TO_BLOCKED:
    case OPK_TO_PLAIN:
    case OPK_BUFFER:
    case OPK_MASKED_FILL:
    case OPK_ROLL:
    case OPK_ZEROS:
    case OPK_ONES:
    case OPK_SUM:
    case OPK_MEAN:
    case OPK_MAX:
    case OPK_MIN:
    case OPK_NORMALIZE:
    case OPK_COUNT: break;
    }
    /* no default: a new op kind without a case here is a compiler warning (-Wswitch) */
    snprintf(c->err, c->err_size, "op %d is %s, which the reference evaluator cannot run", op->id,
             (unsigned)op->kind < OPK_COUNT ? op_info[op->kind].name : "of an unknown kind");
    return false;
}

bool reference_eval(const Graph *g, double **vals, bool keep_all, char *err, size_t err_size) {
    /* the last op that reads each tensor, so that intermediates can go once read for the last time */
    int *last = xcalloc((size_t)g->tensors.len + 1, sizeof *last);
    for (int i = 0; i < g->tensors.len; i++)
        last[i] = -1;
    for (int i = 0; i < g->ops.len; i++) {
        const Op *op = g->ops.items[i];
        for (int j = 0; j < op->in.len; j++)
            last[VEC_AT(op->in, j, Tensor *)->id] = i;
    }
    bool ok = true;
    double *in[256 + 8];
    for (int i = 0; i < g->ops.len && ok; i++) {
        const Op *op = g->ops.items[i];
        if (op->in.len > (int)(sizeof in / sizeof in[0])) {
            snprintf(err, err_size, "op %d (%s) has %d inputs, more than the reference evaluator takes", i, op_info[op->kind].name, op->in.len);
            ok = false;
            break;
        }
        for (int j = 0; j < op->in.len; j++) {
            in[j] = vals[VEC_AT(op->in, j, Tensor *)->id];
            if (!in[j]) {
                snprintf(err, err_size, "op %d (%s) reads %s, which has no value", i, op_info[op->kind].name, VEC_AT(op->in, j, Tensor *)->name);
                ok = false;
            }
        }
        double *y = ok ? alloc_values(numel(op->out)) : NULL;
        if (ok && !y) {
            snprintf(err, err_size, "out of memory: %s %s of op %d (%s) needs %lld bytes in double", op->out->name, shape_text(op->out->rank, op->out->dims),
                     i, op_info[op->kind].name, (long long)numel(op->out) * 8);
            ok = false;
        }
        if (!ok)
            break;
        Ctx c = {op, y, in, err, err_size};
        ok = eval_op(&c);
        free(vals[op->out->id]);
        vals[op->out->id] = y;
        if (!keep_all) {   /* intermediates read for the last time */
            for (int j = 0; j < op->in.len; j++) {
                const Tensor *t = op->in.items[j];
                if (t->kind == TK_ACT && last[t->id] == i && !is_graph_output(g, t) && vals[t->id]) {
                    free(vals[t->id]);
                    vals[t->id] = NULL;
                }
            }
            if (last[op->out->id] < 0 && !is_graph_output(g, op->out)) {   /* dead: nothing reads it */
                free(vals[op->out->id]);
                vals[op->out->id] = NULL;
            }
        }
    }
    free(last);
    return ok;
}

/* ---------------------------------------------------------------- the command line */

typedef struct {
    int count;
} Warnings;

static void warn_unused(void *user, const char *message) {
    Warnings *w = user;
    if (++w->count <= 3)
        fprintf(stderr, "nnc: warning: --weights: %s\n", message);
}

/* Loads every weight of g with the runtime's loader (every key, shape and dtype checked; F16, BF16
   converted) and widens it into vals. Returns the exit status on failure, -1 on success. */
static int load_weights(const Graph *g, const char *path, double **vals) {
    size_t nspecs = 0;
    int64_t floats = 0;
    nnrt_weight_spec *specs = xcalloc((size_t)g->weights.len + 1, sizeof *specs);
    int64_t *limits = xcalloc((size_t)g->weights.len + 1, sizeof *limits);   /* of index tensors */
    for (int i = 0; i < g->weights.len; i++) {
        const Tensor *t = g->weights.items[i];
        if (t->derived)   /* computed by a pass at load time: not in the file (and not before the passes) */
            continue;
        specs[nspecs] = (nnrt_weight_spec){.key = t->name, .rank = t->rank, .offset = (size_t)floats};
        limits[nspecs] = t->index_limit;
        memcpy(specs[nspecs].dims, t->dims, sizeof(int64_t) * (size_t)t->rank);
        nspecs++;
        floats += numel(t);
    }
    if (nspecs == 0 && !path)
        return -1;
    if (!path) {
        fprintf(stderr, "nnc: error: model '%s' has %zu weights: give them with --weights FILE.safetensors (see nnc --help)\n", g->name, nspecs);
        return 2;
    }
    nnrt_error err;
    nnrt_file file;
    if (nnrt_map_file(path, &file, &err) != 0) {
        fprintf(stderr, "nnc: error: --weights: %s\n", err.msg);
        return 2;
    }
    float *block = (uint64_t)floats < SIZE_MAX / sizeof(float) ? malloc((size_t)(floats ? floats : 1) * sizeof(float)) : NULL;
    if (!block) {
        nnrt_unmap_file(&file);
        fprintf(stderr, "nnc: error: out of memory: the weights need %lld bytes\n", (long long)floats * 4);
        return 1;
    }
    Warnings w = {0};
    int status = nnrt_load_safetensors_indexed(file.data, file.size, specs, nspecs, limits, block, warn_unused, &w, &err);
    nnrt_unmap_file(&file);
    if (status != 0) {
        free(block);
        fprintf(stderr, "nnc: error: --weights %s: %s\n", path, err.msg);
        return 1;
    }
    if (w.count > 3)
        fprintf(stderr, "nnc: warning: --weights: and %d more unused weights\n", w.count - 3);
    for (size_t s = 0, i = 0; i < (size_t)g->weights.len; i++) {
        const Tensor *t = g->weights.items[i];
        if (t->derived)
            continue;
        double *v = alloc_values(numel(t));
        if (!v) {
            free(block);
            fprintf(stderr, "nnc: error: out of memory: weight '%s' needs %lld bytes in double\n", t->name, (long long)numel(t) * 8);
            return 1;
        }
        for (int64_t k = 0; k < numel(t); k++)
            v[k] = block[specs[s].offset + (size_t)k];
        vals[t->id] = v;
        s++;
    }
    free(block);
    free(specs);
    free(limits);
    return -1;
}

/* The inputs from --input files (.npy or raw f32, the runtime's reader and checks), or without any the
   generated program's deterministic pseudo-random values: input i filled by nnrt_fill_random with seed i + 1. */
static int read_inputs(const Graph *g, const RefOptions *o, double **vals) {
    for (int i = 0; i < g->inputs.len; i++) {
        const Tensor *t = g->inputs.items[i];
        int64_t n = numel(t);
        float *f = (uint64_t)n < SIZE_MAX / sizeof(float) ? malloc((size_t)n * sizeof(float)) : NULL;
        double *v = alloc_values(n);
        if (!f || !v) {
            free(f);
            free(v);
            fprintf(stderr, "nnc: error: out of memory: input '%s' %s\n", t->name, shape_text(t->rank, t->dims));
            return 1;
        }
        if (o->inputs.len == 0) {
            nnrt_fill_random(f, (size_t)n, (uint64_t)i + 1);
        } else {
            const char *path = o->inputs.items[i];
            nnrt_error err;
            if (access(path, R_OK) != 0) {
                fprintf(stderr, "nnc: error: --input '%s' (input '%s'): %s\n", path, t->name, strerror(errno));
                free(f);
                free(v);
                return 2;
            }
            if (nnrt_read_tensor_file(path, f, t->rank, t->dims, &err) != 0) {
                fprintf(stderr, "nnc: error: input '%s': %s\n", t->name, err.msg);
                free(f);
                free(v);
                return 1;
            }
        }
        for (int64_t k = 0; k < n; k++)
            v[k] = f[k];
        free(f);
        vals[t->id] = v;
    }
    return -1;
}

/* Outputs with a file are written as float32 (.npy by extension, else raw); the others are summarised as the
   generated program does: `output I f32[SHAPE]: argmax J (VALUE)`, on the values rounded to float32. */
static int write_outputs(const Graph *g, const RefOptions *o, double **vals) {
    for (int i = 0; i < g->outputs.len; i++) {
        const Tensor *t = g->outputs.items[i];
        int64_t n = numel(t);
        float *f = (uint64_t)n < SIZE_MAX / sizeof(float) ? malloc((size_t)(n ? n : 1) * sizeof(float)) : NULL;
        if (!f) {
            fprintf(stderr, "nnc: error: out of memory writing output %d\n", i);
            return 1;
        }
        for (int64_t k = 0; k < n; k++)
            f[k] = (float)vals[t->id][k];
        if (i < o->outputs.len) {
            nnrt_error err;
            if (nnrt_write_tensor_file(o->outputs.items[i], f, t->rank, t->dims, &err) != 0) {
                fprintf(stderr, "nnc: error: output %d: %s\n", i, err.msg);
                free(f);
                return 2;
            }
        } else {
            long best = 0;
            for (long k = 1; k < n; k++)
                if (f[k] > f[best])
                    best = k;
            printf("output %d f32%s: argmax %ld (%g)\n", i, shape_text(t->rank, t->dims), best, f[best]);
        }
        free(f);
    }
    return 0;
}

int reference_load(const Graph *g, const RefOptions *o, double **vals) {
    int status = load_weights(g, o->weights, vals);
    return status < 0 ? read_inputs(g, o, vals) : status;
}

int reference_main(const Graph *g, const RefOptions *o) {
    if (o->inputs.len != 0 && o->inputs.len != g->inputs.len) {
        fprintf(stderr, "nnc: error: model '%s' has %d input%s, found %d --input: give one for each, in order, or none (see nnc --help)\n",
                g->name, g->inputs.len, g->inputs.len == 1 ? "" : "s", o->inputs.len);
        return 2;
    }
    if (o->outputs.len > g->outputs.len) {
        fprintf(stderr, "nnc: error: model '%s' has %d output%s, found %d --output (see nnc --help)\n", g->name, g->outputs.len,
                g->outputs.len == 1 ? "" : "s", o->outputs.len);
        return 2;
    }
    if (!verify_graph(g)) {
        fprintf(stderr, "nnc: internal error: the graph is inconsistent\n");
        return 3;
    }
    double **vals = xcalloc((size_t)g->tensors.len + 1, sizeof *vals);
    int status = load_weights(g, o->weights, vals);
    if (status < 0)
        status = read_inputs(g, o, vals);
    if (status < 0) {
        char err[512];
        if (!reference_eval(g, vals, false, err, sizeof err)) {
            fprintf(stderr, "nnc: error: --reference: %s\n", err);
            status = 1;
        } else {
            status = write_outputs(g, o, vals);
        }
    }
    for (int i = 0; i < g->tensors.len; i++)
        free(vals[i]);
    free(vals);
    return status;
}
