/*
 * shape.c — one build function per row of ops.def: the shape rule of each builtin.
 *
 * A build function receives its arguments bound and type-checked against the signature in ops.def
 * (argument i is parameter i), checks everything PyTorch would refuse, creates the weights with
 * their torch names, and appends the op to the graph. Messages name what was expected and what was
 * found, shapes included. A few builtins only lower to others (flatten to reshape, take to slice and
 * reshape, global_avgpool to adaptive_avgpool, dropout to nothing).
 */
#include "nnc.h"

#include <math.h>
#include <string.h>

static char *shape_of(const Tensor *t) { return shape_text(t->rank, t->dims); }

/* Normalises a possibly negative axis against rank; reports and returns -1 when out of range. */
static int norm_axis(Call *c, int arg, int64_t axis, int rank) {
    if (axis < -rank || axis >= rank) {
        call_error(c, arg, "axis %lld is out of range for a rank-%d tensor (valid: %d to %d)", (long long)axis, rank, -rank, rank - 1);
        return -1;
    }
    return (int)(axis < 0 ? axis + rank : axis);
}

static bool want_rank(Call *c, Tensor *x, int rank, const char *layout) {
    if (x->rank != rank) {
        call_error(c, 0, "expects a rank-%d input %s, found %s", rank, layout, shape_of(x));
        return false;
    }
    return true;
}

static bool want_positive(Call *c, int arg, const char *what, int64_t v) {
    if (v <= 0) {
        call_error(c, arg, "%s must be positive, found %lld", what, (long long)v);
        return false;
    }
    return true;
}

static bool broadcast_shape(const Tensor *a, const Tensor *b, int *rank, int64_t *dims);
static Tensor *reshape_to(Call *c, Tensor *x, int rank, const int64_t *dims);

/* Indices are read as floats, exact below 2^24. */
enum { MAX_INDEXED = 1 << 24 };

static Op *unary_op(Call *c, OpKind kind, Tensor *x) {
    Op *op = call_op(c, kind);
    op_add_input(op, x);
    return op;
}

/* ---------------------------------------------------------------- layers with weights */

Tensor *build_conv2d(Call *c) {
    Tensor *x = call_tensor(c, 0);
    int64_t out = call_int(c, 1);
    int k[2], s[2], p[4], d[2];
    call_pair(c, 2, k);
    call_pair(c, 3, s);
    call_pad(c, 4, p);
    call_pair(c, 5, d);
    int64_t groups = call_int(c, 6);
    bool bias = call_bool(c, 7);
    if (!want_rank(c, x, 4, "[N, C, H, W]") || !want_positive(c, 1, "the number of output channels", out))
        return NULL;
    if (!want_positive(c, 2, "kernel", k[0]) || !want_positive(c, 2, "kernel", k[1]) ||
        !want_positive(c, 3, "stride", s[0]) || !want_positive(c, 3, "stride", s[1]) ||
        !want_positive(c, 5, "dilation", d[0]) || !want_positive(c, 5, "dilation", d[1]) ||
        !want_positive(c, 6, "groups", groups))
        return NULL;
    for (int i = 0; i < 4; i++) {
        if (p[i] < 0) {
            call_error(c, 4, "padding must not be negative, found %d", p[i]);
            return NULL;
        }
    }
    int64_t C = x->dims[1], H = x->dims[2], W = x->dims[3];
    if (C % groups || out % groups) {
        call_error(c, 6, "groups=%lld must divide both the input channels (%lld) and the output channels (%lld)",
                   (long long)groups, (long long)C, (long long)out);
        return NULL;
    }
    int64_t eh = (int64_t)d[0] * (k[0] - 1) + 1, ew = (int64_t)d[1] * (k[1] - 1) + 1;
    if (H + p[0] + p[2] < eh || W + p[1] + p[3] < ew) {
        call_error(c, 2, "the %lldx%lld kernel (with dilation) does not fit the padded %lldx%lld input %s",
                   (long long)eh, (long long)ew, (long long)(H + p[0] + p[2]), (long long)(W + p[1] + p[3]), shape_of(x));
        return NULL;
    }
    int64_t dims[4] = {x->dims[0], out, (H + p[0] + p[2] - eh) / s[0] + 1, (W + p[1] + p[3] - ew) / s[1] + 1};
    Tensor *w = call_weight(c, "weight", 4, (int64_t[]){out, C / groups, k[0], k[1]});
    Tensor *b = w && bias ? call_weight(c, "bias", 1, &out) : NULL;
    if (!w || (bias && !b))
        return NULL;
    Op *op = unary_op(c, OPK_CONV2D, x);
    op_add_input(op, w);
    if (b)
        op_add_input(op, b);
    memcpy(op->a.kernel, k, sizeof k);
    memcpy(op->a.stride, s, sizeof s);
    memcpy(op->a.pad, p, sizeof p);
    memcpy(op->a.dilation, d, sizeof d);
    op->a.groups = (int)groups;
    op->a.has_bias = bias;
    return call_output(c, op, 4, dims);
}

Tensor *build_linear(Call *c) {
    Tensor *x = call_tensor(c, 0);
    int64_t out = call_int(c, 1);
    bool bias = call_bool(c, 2);
    if (!want_positive(c, 1, "the number of output features", out))
        return NULL;
    if (x->rank < 1) {
        call_error(c, 0, "expects an input with at least one axis, found %s", shape_of(x));
        return NULL;
    }
    int64_t in = x->dims[x->rank - 1];
    Tensor *w = call_weight(c, "weight", 2, (int64_t[]){out, in});
    Tensor *b = w && bias ? call_weight(c, "bias", 1, &out) : NULL;
    if (!w || (bias && !b))
        return NULL;
    Op *op = unary_op(c, OPK_LINEAR, x);
    op_add_input(op, w);
    if (b)
        op_add_input(op, b);
    op->a.has_bias = bias;
    int64_t dims[MAX_RANK];
    memcpy(dims, x->dims, sizeof(int64_t) * (size_t)x->rank);
    dims[x->rank - 1] = out;
    return call_output(c, op, x->rank, dims);
}

static Tensor *norm_layer(Call *c, OpKind kind, int64_t channels, const char *const *names, int nweights) {
    Tensor *x = call_tensor(c, 0);
    double eps = call_float(c, 1);
    if (!(eps >= 0)) {   /* PyTorch accepts eps = 0; a negative (or NaN) one cannot be a variance's guard */
        call_error(c, 1, "eps must be zero or positive, found %g", eps);
        return NULL;
    }
    Tensor *w[4];
    for (int i = 0; i < nweights; i++)
        if (!(w[i] = call_weight(c, names[i], 1, &channels)))
            return NULL;
    Op *op = unary_op(c, kind, x);
    for (int i = 0; i < nweights; i++)
        op_add_input(op, w[i]);
    op->a.eps = eps;
    return call_output(c, op, x->rank, x->dims);
}

Tensor *build_batchnorm(Call *c) {
    Tensor *x = call_tensor(c, 0);
    static const char *const names[] = {"weight", "bias", "running_mean", "running_var"};
    if (x->rank < 2) {
        call_error(c, 0, "expects an input [N, C, ...] with a channel axis 1, found %s", shape_of(x));
        return NULL;
    }
    return norm_layer(c, OPK_BATCHNORM, x->dims[1], names, 4);
}

Tensor *build_layernorm(Call *c) {
    Tensor *x = call_tensor(c, 0);
    static const char *const names[] = {"weight", "bias"};
    if (x->rank < 1) {
        call_error(c, 0, "expects an input with at least one axis, found %s", shape_of(x));
        return NULL;
    }
    return norm_layer(c, OPK_LAYERNORM, x->dims[x->rank - 1], names, 2);
}

/* An attn_mask: a float one is added to the scores, a boolean one keeps (SDPA) or masks (nn.MultiheadAttention)
   the keys where it is true. It must broadcast to the scores [batch..., L, S]; it becomes the op's last input. */
static bool attn_mask(Call *c, Op *op, int arg, int rank, const int64_t *scores, bool true_masks) {
    if (!call_given(c, arg))
        return true;
    Tensor *m = call_tensor(c, arg);
    Tensor s = {.rank = rank};
    memcpy(s.dims, scores, sizeof(int64_t) * (size_t)rank);
    int r;
    int64_t dims[MAX_RANK];
    if (!broadcast_shape(&s, m, &r, dims) || r != rank || memcmp(dims, scores, sizeof(int64_t) * (size_t)rank) != 0) {
        call_error(c, arg, "the mask %s must broadcast to the attention scores %s", shape_of(m), shape_text(rank, scores));
        return false;
    }
    op_add_input(op, m);
    op->a.mask = m->dtype != DT_BOOL ? MASK_ADD : true_masks ? MASK_DROP : MASK_KEEP;
    return true;
}

static Tensor *attention(Call *c, OpKind kind, Tensor *x, Tensor *mem, int heads_arg, bool causal) {
    int64_t heads = call_int(c, heads_arg);
    if (!want_rank(c, x, 3, "[N, L, D]"))
        return NULL;
    if (mem->rank != 3 || mem->dims[0] != x->dims[0] || mem->dims[2] != x->dims[2]) {
        call_error(c, 1, "memory must be [N, S, D] with N=%lld and D=%lld as the queries %s, found %s",
                   (long long)x->dims[0], (long long)x->dims[2], shape_of(x), shape_of(mem));
        return NULL;
    }
    int64_t D = x->dims[2];
    if (!want_positive(c, heads_arg, "heads", heads))
        return NULL;
    if (D % heads) {
        call_error(c, heads_arg, "heads=%lld must divide the embedding size %lld", (long long)heads, (long long)D);
        return NULL;
    }
    Tensor *w[4] = {
        call_weight(c, "in_proj_weight", 2, (int64_t[]){3 * D, D}),
        call_weight(c, "in_proj_bias", 1, (int64_t[]){3 * D}),
        call_weight(c, "out_proj.weight", 2, (int64_t[]){D, D}),
        call_weight(c, "out_proj.bias", 1, &D),
    };
    if (!w[0] || !w[1] || !w[2] || !w[3])
        return NULL;
    Op *op = unary_op(c, kind, x);
    if (kind == OPK_CROSS_ATTENTION)
        op_add_input(op, mem);
    for (int i = 0; i < 4; i++)
        op_add_input(op, w[i]);
    op->a.heads = (int)heads;
    op->a.causal = causal;
    /* nn.MultiheadAttention's attn_mask: [L, S], or [N * heads, L, S] for each (batch, head) */
    int mask_arg = heads_arg + (kind == OPK_MHA ? 2 : 1);
    if (call_given(c, mask_arg)) {
        Tensor *m = call_tensor(c, mask_arg);
        int64_t L = x->dims[1], S = mem->dims[1], NH = x->dims[0] * heads;
        if (!(m->rank == 2 && m->dims[0] == L && m->dims[1] == S) && !(m->rank == 3 && m->dims[0] == NH && m->dims[1] == L && m->dims[2] == S)) {
            call_error(c, mask_arg, "the mask must be [L, S] = [%lld, %lld] or [N * heads, L, S] = [%lld, %lld, %lld], found %s", (long long)L,
                       (long long)S, (long long)NH, (long long)L, (long long)S, shape_of(m));
            return NULL;
        }
        if (!attn_mask(c, op, mask_arg, m->rank, m->dims, true))
            return NULL;
    }
    return call_output(c, op, 3, x->dims);
}

Tensor *build_mha(Call *c) {
    Tensor *x = call_tensor(c, 0);
    return attention(c, OPK_MHA, x, x, 1, call_bool(c, 2));
}

Tensor *build_cross_attention(Call *c) {
    return attention(c, OPK_CROSS_ATTENTION, call_tensor(c, 0), call_tensor(c, 1), 2, false);
}

Tensor *build_param(Call *c) {
    int64_t dims[MAX_RANK];
    int rank = call_ints(c, 0, dims, MAX_RANK);
    if (rank == 0) {
        call_error(c, 0, "a parameter needs at least one dimension");
        return NULL;
    }
    for (int i = 0; i < rank; i++)
        if (!want_positive(c, 0, "every dimension", dims[i]))
            return NULL;
    return call_weight(c, NULL, rank, dims);
}

/* A registered buffer of the module: floats like a param, or integer indices (dtype "i64" or "i32": the file
   may hold either) that only index_select and take read. */
Tensor *build_buffer(Call *c) {
    const char *dtype = call_str(c, 1);
    bool index = strcmp(dtype, "i64") == 0 || strcmp(dtype, "i32") == 0;
    if (!index && strcmp(dtype, "f32") != 0) {
        call_error(c, 1, "dtype must be \"f32\", \"i64\" or \"i32\", found \"%s\"", dtype);
        return NULL;
    }
    Tensor *t = build_param(c);
    if (t && index) {
        t->dtype = DT_INDEX;
        t->index_limit = MAX_INDEXED;   /* until an index_select or take narrows it */
    }
    return t;
}

/* ---------------------------------------------------------------- constant tensors */

static bool want_shape(Call *c, int64_t *dims, int *rank) {
    *rank = call_ints(c, 0, dims, MAX_RANK);
    if (*rank == 0) {
        call_error(c, 0, "the shape needs at least one dimension");
        return false;
    }
    for (int i = 0; i < *rank; i++)
        if (!want_positive(c, 0, "every dimension", dims[i]))
            return false;
    return true;
}

/* torch.full(shape, value) */
Tensor *build_full(Call *c) {
    int64_t dims[MAX_RANK];
    int rank;
    if (!want_shape(c, dims, &rank))
        return NULL;
    Op *op = call_op(c, OPK_FULL);
    op->a.value = call_float(c, 1);
    return call_output(c, op, rank, dims);
}

static Tensor *filled(Call *c, double value) {
    Value *args[2] = {c->args[0], float_value(value)};
    return call_build(c, OPK_FULL, args, 2);
}

Tensor *build_zeros(Call *c) { return filled(c, 0.0); }
Tensor *build_ones(Call *c) { return filled(c, 1.0); }

/* torch.arange(end) or arange(start, end, step): start + i * step for i < ceil((end - start) / step). */
Tensor *build_arange(Call *c) {
    double start = call_float(c, 0), end = call_given(c, 1) ? call_float(c, 1) : start, step = call_float(c, 2);
    if (!call_given(c, 1))
        start = 0;
    if (!(step != 0) || !isfinite(step) || !isfinite(start) || !isfinite(end)) {
        call_error(c, 2, "start, end and step must be finite and step non-zero, found %g, %g and %g", start, end, step);
        return NULL;
    }
    double n = ceil((end - start) / step);
    if (!(n >= 1) || n > (double)(INT64_C(1) << 40)) {
        call_error(c, -1, "arange(%g, %g, %g) would have %g elements", start, end, step, n);
        return NULL;
    }
    Op *op = call_op(c, OPK_ARANGE);
    op->a.value = start;
    op->a.lo = step;
    return call_output(c, op, 1, (int64_t[]){(int64_t)n});
}

/* ---------------------------------------------------------------- elementwise */

Tensor *build_unary(Call *c) {
    Tensor *x = call_tensor(c, 0);
    return call_output(c, unary_op(c, c->kind, x), x->rank, x->dims);
}

/* torch.clamp(x, min, max): at least one bound; clamp(x, 0, 6) is relu6, which a layer's epilogue can apply. */
Tensor *build_clamp(Call *c) {
    Tensor *x = call_tensor(c, 0);
    if (!call_given(c, 1) && !call_given(c, 2)) {
        call_error(c, -1, "needs min, max or both");
        return NULL;
    }
    double lo = call_given(c, 1) ? call_float(c, 1) : -INFINITY, hi = call_given(c, 2) ? call_float(c, 2) : INFINITY;
    if (isnan(lo) || isnan(hi)) {
        call_error(c, isnan(lo) ? 1 : 2, "clamp's bounds must be numbers, found NaN");
        return NULL;
    }
    if (lo == 0 && hi == 6)
        return call_output(c, unary_op(c, OPK_RELU6, x), x->rank, x->dims);
    Op *op = unary_op(c, OPK_CLAMP, x);
    op->a.lo = lo;
    op->a.hi = hi;
    return call_output(c, op, x->rank, x->dims);
}

/* nn.Hardtanh(min_val, max_val): a clamp. */
Tensor *build_hardtanh(Call *c) {
    Value *args[3] = {tensor_value(call_tensor(c, 0)), float_value(call_float(c, 1)), float_value(call_float(c, 2))};
    return call_build(c, OPK_CLAMP, args, 3);
}

Tensor *build_gelu(Call *c) {
    Tensor *x = call_tensor(c, 0);
    const char *approx = call_str(c, 1);
    if (strcmp(approx, "none") != 0 && strcmp(approx, "tanh") != 0) {
        call_error(c, 1, "approximate must be \"none\" or \"tanh\", found \"%s\"", approx);
        return NULL;
    }
    Op *op = unary_op(c, OPK_GELU, x);
    if (approx[0] == 't')
        op->a.act = ACT_GELU_TANH;
    return call_output(c, op, x->rank, x->dims);
}

/* NumPy broadcasting: align from the right; each pair of sizes equal, or one of them 1. */
static bool broadcast_shape(const Tensor *a, const Tensor *b, int *rank, int64_t *dims) {
    *rank = a->rank > b->rank ? a->rank : b->rank;
    for (int i = 0; i < *rank; i++) {
        int ia = a->rank - *rank + i, ib = b->rank - *rank + i;
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return false;
        dims[i] = da == 1 ? db : da;
    }
    return true;
}

Tensor *build_binary(Call *c) {
    Tensor *a = call_tensor(c, 0), *b = call_tensor(c, 1);
    int rank;
    int64_t dims[MAX_RANK];
    if (!broadcast_shape(a, b, &rank, dims)) {
        static const char *symbol[] = {[OPK_ADD] = "+", [OPK_SUB] = "-", [OPK_MUL] = "*", [OPK_DIV] = "/", [OPK_EQ] = "==",
                                       [OPK_NE] = "!=", [OPK_LT] = "<", [OPK_LE] = "<=", [OPK_GT] = ">", [OPK_GE] = ">="};
        call_error(c, -1, "cannot broadcast shapes %s and %s in '%s'", shape_of(a), shape_of(b), symbol[c->kind]);
        return NULL;
    }
    Op *op = unary_op(c, c->kind, a);
    op_add_input(op, b);
    Tensor *y = call_output(c, op, rank, dims);
    if (y && c->kind >= OPK_EQ && c->kind <= OPK_GE)
        y->dtype = DT_BOOL;   /* a comparison: 1 where true, 0 where false */
    return y;
}

Tensor *build_scalar(Call *c) {
    Tensor *x = call_tensor(c, 0);
    Op *op = unary_op(c, OPK_SCALAR, x);
    op->a.value = call_float(c, 1);
    op->a.binop = (Operator)call_int(c, 2);
    op->a.scalar_first = call_bool(c, 3);
    bool compare = op->a.binop >= OP_EQ && op->a.binop <= OP_GE;
    if (compare && op->a.scalar_first) {   /* s < x is x > s */
        static const Operator mirror[] = {[OP_EQ] = OP_EQ, [OP_NE] = OP_NE, [OP_LT] = OP_GT, [OP_LE] = OP_GE, [OP_GT] = OP_LT, [OP_GE] = OP_LE};
        op->a.binop = mirror[op->a.binop];
        op->a.scalar_first = false;
    }
    Tensor *y = call_output(c, op, x->rank, x->dims);
    if (y && compare)
        y->dtype = DT_BOOL;
    return y;
}

/* torch.where(cond, a, b): a where cond is true (non-zero), else b; a and b tensors or numbers, every
   tensor broadcast together. */
Tensor *build_where(Call *c) {
    Tensor *cond = call_tensor(c, 0), *ts[3] = {cond, NULL, NULL};
    int rank = cond->rank;
    int64_t dims[MAX_RANK];
    memcpy(dims, cond->dims, sizeof dims);
    Op *op = unary_op(c, OPK_WHERE, cond);
    bool all_bool = true;
    for (int i = 1; i <= 2; i++) {
        if (!call_is_tensor(c, i)) {
            *(i == 1 ? &op->a.lo : &op->a.hi) = call_float(c, i);
            op->a.scalars |= i;
            all_bool = false;
            continue;
        }
        ts[i] = call_tensor(c, i);
        all_bool &= ts[i]->dtype == DT_BOOL;
        Tensor sofar = {.rank = rank};
        memcpy(sofar.dims, dims, sizeof dims);
        if (!broadcast_shape(&sofar, ts[i], &rank, dims)) {
            call_error(c, i, "cannot broadcast %s with the condition%s %s", shape_of(ts[i]), i == 2 && ts[1] ? " and the first operand" : "",
                       shape_text(sofar.rank, sofar.dims));
            return NULL;
        }
        op_add_input(op, ts[i]);
    }
    Tensor *y = call_output(c, op, rank, dims);
    if (y && all_bool)
        y->dtype = DT_BOOL;
    return y;
}

/* Tensor.masked_fill(mask, value): value where mask is true; the mask broadcasts to x's shape. */
Tensor *build_masked_fill(Call *c) {
    Tensor *x = call_tensor(c, 0), *mask = call_tensor(c, 1);
    int rank;
    int64_t dims[MAX_RANK];
    if (!broadcast_shape(x, mask, &rank, dims) || rank != x->rank || memcmp(dims, x->dims, sizeof(int64_t) * (size_t)rank) != 0) {
        call_error(c, 1, "the mask %s must broadcast to the shape of x %s", shape_of(mask), shape_of(x));
        return NULL;
    }
    Value *args[3] = {tensor_value(mask), float_value(call_float(c, 2)), tensor_value(x)};
    return call_build(c, OPK_WHERE, args, 3);
}

Tensor *build_softmax(Call *c) {
    Tensor *x = call_tensor(c, 0);
    int axis = norm_axis(c, 1, call_int(c, 1), x->rank);
    if (axis < 0)
        return NULL;
    Op *op = unary_op(c, OPK_SOFTMAX, x);
    op->a.axis = axis;
    return call_output(c, op, x->rank, x->dims);
}

Tensor *build_dropout(Call *c) {
    double p = call_float(c, 1);
    if (!(p >= 0 && p < 1)) {
        call_error(c, 1, "p must be in [0, 1), found %g", p);
        return NULL;
    }
    return call_tensor(c, 0);   /* the identity at inference */
}

/* ---------------------------------------------------------------- pooling */

/* PyTorch's output size of a pooling window k with stride s over `padded` cells: with ceil_mode a last,
   partial window is kept, unless it would start past the input and its leading padding (`limit`). */
static int64_t pool_size(int64_t padded, int k, int s, bool ceil_mode, int64_t limit) {
    int64_t num = padded - k + (ceil_mode ? s - 1 : 0);
    int64_t n = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;   /* rounding down, as PyTorch does */
    if (ceil_mode && (n - 1) * s >= limit)
        n--;
    return n;
}

Tensor *build_pool(Call *c) {
    Tensor *x = call_tensor(c, 0);
    int k[2], s[2], p[4];
    call_pair(c, 1, k);
    if (call_given(c, 2))
        call_pair(c, 2, s);
    else
        memcpy(s, k, sizeof s);
    call_pad(c, 3, p);
    if (!want_rank(c, x, 4, "[N, C, H, W]") || !want_positive(c, 1, "kernel", k[0]) || !want_positive(c, 1, "kernel", k[1]) ||
        !want_positive(c, 2, "stride", s[0]) || !want_positive(c, 2, "stride", s[1]))
        return NULL;
    for (int i = 0; i < 4; i++) {
        if (p[i] < 0 || p[i] > k[i % 2] / 2) {
            call_error(c, 3, "padding must be between 0 and half the kernel size (%d), found %d", k[i % 2] / 2, p[i]);
            return NULL;
        }
    }
    int64_t H = x->dims[2] + p[0] + p[2], W = x->dims[3] + p[1] + p[3];
    bool ceil_mode = call_bool(c, 4);
    int64_t dims[4] = {x->dims[0], x->dims[1], pool_size(H, k[0], s[0], ceil_mode, x->dims[2] + p[0]),
                       pool_size(W, k[1], s[1], ceil_mode, x->dims[3] + p[1])};
    if (dims[2] < 1 || dims[3] < 1) {   /* (with ceil_mode a window may overhang the input, as in PyTorch) */
        call_error(c, 1, "the %dx%d window does not fit the padded %lldx%lld input %s", k[0], k[1], (long long)H, (long long)W, shape_of(x));
        return NULL;
    }
    Op *op = unary_op(c, c->kind, x);
    memcpy(op->a.kernel, k, sizeof k);
    memcpy(op->a.stride, s, sizeof s);
    memcpy(op->a.pad, p, sizeof p);
    op->a.ceil_mode = ceil_mode;
    op->a.count_include_pad = c->kind == OPK_AVGPOOL ? call_bool(c, 5) : true;
    return call_output(c, op, 4, dims);
}

Tensor *build_adaptive_avgpool(Call *c) {
    Tensor *x = call_tensor(c, 0);
    int size[2];
    call_pair(c, 1, size);
    if (!want_rank(c, x, 4, "[N, C, H, W]") || !want_positive(c, 1, "size", size[0]) || !want_positive(c, 1, "size", size[1]))
        return NULL;
    int64_t dims[4] = {x->dims[0], x->dims[1], size[0], size[1]};
    return call_output(c, unary_op(c, OPK_ADAPTIVE_AVGPOOL, x), 4, dims);
}

Tensor *build_global_avgpool(Call *c) {
    Tensor *x = call_tensor(c, 0);
    if (!want_rank(c, x, 4, "[N, C, H, W]"))
        return NULL;
    return call_build(c, OPK_ADAPTIVE_AVGPOOL, (Value *[]){tensor_value(x), int_value(1)}, 2);
}

/* ---------------------------------------------------------------- shape ops */

Tensor *build_pad(Call *c) {
    Tensor *x = call_tensor(c, 0);
    int axis = norm_axis(c, 1, call_int(c, 1), x->rank);
    int64_t before = call_int(c, 2), after = call_int(c, 3);
    if (axis < 0)
        return NULL;
    if (before < 0 || after < 0) {
        call_error(c, before < 0 ? 2 : 3, "padding must not be negative, found before=%lld after=%lld", (long long)before, (long long)after);
        return NULL;
    }
    if (before > (INT64_C(1) << 40) || after > (INT64_C(1) << 40)) {
        call_error(c, before > after ? 2 : 3, "padding of %lld elements is too large", (long long)(before > after ? before : after));
        return NULL;
    }
    Op *op = unary_op(c, OPK_PAD, x);
    op->a.axis = axis;
    op->a.before = before;
    op->a.after = after;
    op->a.value = call_float(c, 4);
    int64_t dims[MAX_RANK];
    memcpy(dims, x->dims, sizeof dims);
    dims[axis] += before + after;
    return call_output(c, op, x->rank, dims);
}

static Tensor *reshape_to(Call *c, Tensor *x, int rank, const int64_t *dims) {
    Op *op = unary_op(c, OPK_RESHAPE, x);
    return call_output(c, op, rank, dims);
}

Tensor *build_reshape(Call *c) {
    Tensor *x = call_tensor(c, 0);
    int64_t dims[MAX_RANK];
    int rank = call_ints(c, 1, dims, MAX_RANK);
    int infer = -1;
    int64_t known = 1;
    if (rank == 0) {
        call_error(c, 1, "the new shape needs at least one dimension");
        return NULL;
    }
    for (int i = 0; i < rank; i++) {
        if (dims[i] == -1 && infer >= 0) {
            call_error(c, 1, "the new shape %s has more than one -1 (only one dimension can be inferred)", shape_text(rank, dims));
            return NULL;
        } else if (dims[i] == -1) {
            infer = i;
        } else if (dims[i] <= 0) {
            call_error(c, 1, "dimension %d of the new shape must be positive%s, found %lld", i, infer >= 0 ? "" : " or -1", (long long)dims[i]);
            return NULL;
        } else if (__builtin_mul_overflow(known, dims[i], &known)) {
            call_error(c, 1, "the new shape %s is too large", shape_text(rank, dims));
            return NULL;
        }
    }
    int64_t n = tensor_numel(x);
    if (infer >= 0) {
        if (n % known) {
            call_error(c, 1, "cannot reshape %s (%lld elements) into %s", shape_of(x), (long long)n, shape_text(rank, dims));
            return NULL;
        }
        dims[infer] = n / known;
    } else if (known != n) {
        call_error(c, 1, "cannot reshape %s (%lld elements) into %s (%lld elements)", shape_of(x), (long long)n,
                   shape_text(rank, dims), (long long)known);
        return NULL;
    }
    return reshape_to(c, x, rank, dims);
}

Tensor *build_flatten(Call *c) {
    Tensor *x = call_tensor(c, 0);
    int start = norm_axis(c, 1, call_int(c, 1), x->rank);
    if (start < 0)
        return NULL;
    int64_t dims[MAX_RANK];
    memcpy(dims, x->dims, sizeof dims);
    for (int i = start + 1; i < x->rank; i++)
        dims[start] *= x->dims[i];
    return reshape_to(c, x, start + 1, dims);
}

Tensor *build_transpose(Call *c) {
    Tensor *x = call_tensor(c, 0);
    int64_t perm[MAX_RANK];
    int n = call_ints(c, 1, perm, MAX_RANK);
    if (n != x->rank) {
        call_error(c, 1, "perm must list all %d axes of %s, found %d", x->rank, shape_of(x), n);
        return NULL;
    }
    bool seen[MAX_RANK] = {0};
    Op *op = unary_op(c, OPK_TRANSPOSE, x);
    int64_t dims[MAX_RANK];
    for (int i = 0; i < n; i++) {
        int a = norm_axis(c, 1, perm[i], x->rank);
        if (a < 0)
            return NULL;
        if (seen[a]) {
            call_error(c, 1, "perm names axis %d twice; it must be a permutation of 0..%d", a, x->rank - 1);
            return NULL;
        }
        seen[a] = true;
        op->a.perm[i] = a;
        dims[i] = x->dims[a];
    }
    return call_output(c, op, n, dims);
}

Tensor *build_concat(Call *c) {
    Tensor *ts[256];
    int n = call_tensors(c, 0, ts, 256);
    if (n < 0) {
        call_error(c, 0, "at most 256 tensors can be concatenated at once");
        return NULL;
    }
    int axis = norm_axis(c, 1, call_int(c, 1), ts[0]->rank);
    if (axis < 0)
        return NULL;
    int64_t dims[MAX_RANK];
    memcpy(dims, ts[0]->dims, sizeof dims);
    for (int i = 1; i < n; i++) {
        bool ok = ts[i]->rank == ts[0]->rank;
        for (int d = 0; ok && d < ts[0]->rank; d++)
            ok = d == axis || ts[i]->dims[d] == ts[0]->dims[d];
        if (!ok) {
            call_error(c, 0, "tensor %d has shape %s, which does not match %s except on axis %d", i, shape_of(ts[i]), shape_of(ts[0]), axis);
            return NULL;
        }
        dims[axis] += ts[i]->dims[axis];
    }
    Op *op = call_op(c, OPK_CONCAT);
    for (int i = 0; i < n; i++)
        op_add_input(op, ts[i]);
    op->a.axis = axis;
    return call_output(c, op, ts[0]->rank, dims);
}

/* Python's slice rules for a positive step: negative bounds count from the end, then clamp. */
static int64_t clamp_bound(int64_t v, int64_t len) {
    if (v < 0)
        v += len;
    return v < 0 ? 0 : v > len ? len : v;
}

static Tensor *slice_of(Call *c, Tensor *x, int axis, int64_t start, int64_t count, int64_t step) {
    Op *op = unary_op(c, OPK_SLICE, x);
    op->a.axis = axis;
    op->a.start = start;
    op->a.step = step;
    int64_t dims[MAX_RANK];
    memcpy(dims, x->dims, sizeof dims);
    dims[axis] = count;
    return call_output(c, op, x->rank, dims);
}

Tensor *build_slice(Call *c) {
    Tensor *x = call_tensor(c, 0);
    int axis = norm_axis(c, 1, call_int(c, 1), x->rank);
    int64_t step = call_int(c, 4);
    if (axis < 0 || !want_positive(c, 4, "step", step))
        return NULL;
    int64_t len = x->dims[axis];
    int64_t start = clamp_bound(call_int(c, 2), len), end = clamp_bound(call_int(c, 3), len);
    int64_t count = end > start ? (end - start + step - 1) / step : 0;
    if (count == 0) {
        call_error(c, -1, "slice [%lld:%lld:%lld] of axis %d (size %lld) selects nothing", (long long)call_int(c, 2),
                   (long long)call_int(c, 3), (long long)step, axis, (long long)len);
        return NULL;
    }
    return slice_of(c, x, axis, start, count, step);
}

/* x's slices along axis at the positions an index tensor holds: x.shape[:axis] + index.shape + x.shape[axis+1:]
   (numpy.take). The index tensor's values are checked against the axis when the weights are loaded. */
static Tensor *gather(Call *c, Tensor *x, int axis, Tensor *index) {
    int64_t len = x->dims[axis], dims[MAX_RANK];
    if (x->rank - 1 + index->rank > MAX_RANK) {
        call_error(c, 2, "indexing %s with %s would give more than %d axes", shape_of(x), shape_of(index), MAX_RANK);
        return NULL;
    }
    if (len > MAX_INDEXED) {
        call_error(c, 1, "axis %d has %lld elements, more than indices can address (2^24)", axis, (long long)len);
        return NULL;
    }
    if (index->kind != TK_WEIGHT) {
        call_error(c, 2, "indices must come from the weights file (buffer(shape, dtype=\"i64\") as NAME)");
        return NULL;
    }
    if (index->index_limit > len)
        index->index_limit = len;
    int rank = 0;
    for (int i = 0; i < axis; i++)
        dims[rank++] = x->dims[i];
    for (int i = 0; i < index->rank; i++)
        dims[rank++] = index->dims[i];
    for (int i = axis + 1; i < x->rank; i++)
        dims[rank++] = x->dims[i];
    Op *op = unary_op(c, OPK_INDEX_SELECT, x);
    op_add_input(op, index);
    op->a.axis = axis;
    return call_output(c, op, rank, dims);
}

/* torch.index_select(x, axis, index): index one-dimensional. */
Tensor *build_index_select(Call *c) {
    Tensor *x = call_tensor(c, 0), *index = call_tensor(c, 2);
    int axis = norm_axis(c, 1, call_int(c, 1), x->rank);
    if (axis < 0)
        return NULL;
    if (index->rank != 1) {
        call_error(c, 2, "the index must be one-dimensional, found %s (take(x, axis, index) takes any shape)", shape_of(index));
        return NULL;
    }
    return gather(c, x, axis, index);
}

Tensor *build_take(Call *c) {
    Tensor *x = call_tensor(c, 0);
    int axis = norm_axis(c, 1, call_int(c, 1), x->rank);
    if (axis < 0)
        return NULL;
    if (call_is_tensor(c, 2))
        return gather(c, x, axis, call_tensor(c, 2));
    int64_t index = call_int(c, 2), len = x->dims[axis];
    if (index < -len || index >= len) {
        call_error(c, 2, "index %lld is out of range for axis %d of size %lld", (long long)index, axis, (long long)len);
        return NULL;
    }
    if (x->rank == 1) {
        call_error(c, 0, "take from a rank-1 tensor %s would leave no axes", shape_of(x));
        return NULL;
    }
    Tensor *one = slice_of(c, x, axis, index < 0 ? index + len : index, 1, 1);
    if (!one)
        return NULL;
    int64_t dims[MAX_RANK];
    for (int i = 0, j = 0; i < x->rank; i++)
        if (i != axis)
            dims[j++] = x->dims[i];
    return reshape_to(c, one, x->rank - 1, dims);
}

Tensor *build_expand(Call *c) {
    Tensor *x = call_tensor(c, 0);
    int64_t dims[MAX_RANK];
    int rank = call_ints(c, 1, dims, MAX_RANK);
    if (rank < x->rank) {
        call_error(c, 1, "the new shape %s has fewer axes than the input %s", shape_text(rank, dims), shape_of(x));
        return NULL;
    }
    int lead = rank - x->rank;
    for (int i = 0; i < rank; i++) {
        int64_t have = i >= lead ? x->dims[i - lead] : 1;
        if (dims[i] == -1 && i >= lead) {
            dims[i] = have;
        } else if (dims[i] <= 0 || (have != 1 && have != dims[i])) {
            call_error(c, 1, "cannot expand %s to %s: axis %d has size %lld, which can only become %s", shape_of(x),
                       shape_text(rank, dims), i, (long long)have, have == 1 ? "a positive size" : "itself (or -1)");
            return NULL;
        }
    }
    return call_output(c, unary_op(c, OPK_EXPAND, x), rank, dims);
}

/* torch.roll(x, shifts, axis): each axis shifted cyclically (element i goes to i + shift), as two slices
   concatenated; without axis, the flattened tensor is rolled and reshaped back. */
Tensor *build_roll(Call *c) {
    Tensor *x = call_tensor(c, 0);
    int64_t shifts[MAX_RANK], axes[MAX_RANK];
    int n = call_axes(c, 1, shifts), na = call_given(c, 2) ? call_axes(c, 2, axes) : 0;
    if (!call_given(c, 2)) {
        if (n != 1) {
            call_error(c, 1, "without axis, roll takes one shift (of the flattened tensor), found %d", n);
            return NULL;
        }
        Tensor *flat = reshape_to(c, x, 1, (int64_t[]){tensor_numel(x)});
        Value *args[3] = {tensor_value(flat), int_value(shifts[0]), int_value(0)};
        Tensor *y = flat ? call_build(c, OPK_ROLL, args, 3) : NULL;
        return y ? reshape_to(c, y, x->rank, x->dims) : NULL;
    }
    if (n != na) {
        call_error(c, 1, "shifts and axis must have the same length, found %d and %d", n, na);
        return NULL;
    }
    Tensor *y = x;
    for (int i = 0; i < n && y; i++) {
        int axis = norm_axis(c, 2, axes[i], x->rank);
        if (axis < 0)
            return NULL;
        int64_t len = y->dims[axis], s = (shifts[i] % len + len) % len;
        if (s == 0)
            continue;
        Tensor *tail = slice_of(c, y, axis, len - s, s, 1), *head = slice_of(c, y, axis, 0, len - s, 1);
        if (!tail || !head)
            return NULL;
        Op *op = call_op(c, OPK_CONCAT);
        op_add_input(op, tail);
        op_add_input(op, head);
        op->a.axis = axis;
        y = call_output(c, op, y->rank, y->dims);
    }
    if (y == x)   /* every shift a whole turn: a copy still, as torch.roll returns a new tensor */
        y = reshape_to(c, x, x->rank, x->dims);
    return y;
}

/* ---------------------------------------------------------------- reductions */

/* One axis of a reduction, kept with size 1 (kind OPK_SUM, OPK_MEAN, OPK_MAX or OPK_MIN). */
Tensor *build_reduce(Call *c) {
    Tensor *x = call_tensor(c, 0);
    Op *op = unary_op(c, OPK_REDUCE, x);
    op->a.axis = (int)call_int(c, 1);
    op->a.reduce = (int)call_int(c, 2);
    int64_t dims[MAX_RANK];
    memcpy(dims, x->dims, sizeof dims);
    dims[op->a.axis] = 1;
    return call_output(c, op, x->rank, dims);
}

/* torch.sum / mean / amax / amin(x, axis, keepdim): over the axes given (all when none), one axis at a time
   from the last; then without keepdim the reduced axes are dropped (a full reduction gives a rank-0 tensor). */
Tensor *build_reduction(Call *c) {
    Tensor *x = call_tensor(c, 0);
    int64_t axes[MAX_RANK];
    int n = call_given(c, 1) ? call_axes(c, 1, axes) : x->rank;
    bool reduced[MAX_RANK] = {0};
    for (int i = 0; i < n; i++) {
        int a = call_given(c, 1) ? norm_axis(c, 1, axes[i], x->rank) : i;
        if (a < 0)
            return NULL;
        if (reduced[a]) {
            call_error(c, 1, "axis %d is named twice", a);
            return NULL;
        }
        reduced[a] = true;
    }
    Tensor *y = x;
    for (int a = x->rank - 1; a >= 0 && y; a--)
        if (reduced[a])
            y = call_build(c, OPK_REDUCE, (Value *[]){tensor_value(y), int_value(a), int_value(c->kind)}, 3);
    if (!y || call_bool(c, 2))
        return y;
    int64_t dims[MAX_RANK];
    int rank = 0;
    for (int a = 0; a < x->rank; a++)
        if (!reduced[a])
            dims[rank++] = x->dims[a];
    return reshape_to(c, y, rank, dims);
}

/* F.normalize(x, p, axis, eps): x / max(‖x‖_p over axis, eps), for p = 1 or 2. */
Tensor *build_normalize(Call *c) {
    Tensor *x = call_tensor(c, 0);
    double p = call_float(c, 1), eps = call_float(c, 3);
    int axis = norm_axis(c, 2, call_int(c, 2), x->rank);
    if (axis < 0)
        return NULL;
    if (p != 1 && p != 2) {
        call_error(c, 1, "p must be 1 or 2, found %g", p);
        return NULL;
    }
    if (!(eps >= 0)) {
        call_error(c, 3, "eps must be zero or positive, found %g", eps);
        return NULL;
    }
    Tensor *m = p == 2 ? call_build(c, OPK_MUL, (Value *[]){tensor_value(x), tensor_value(x)}, 2)
                       : call_build(c, OPK_ABS, (Value *[]){tensor_value(x)}, 1);
    Tensor *norm = m ? call_build(c, OPK_SUM, (Value *[]){tensor_value(m), int_value(axis), bool_value(true)}, 3) : NULL;
    if (norm && p == 2)
        norm = call_build(c, OPK_SQRT, (Value *[]){tensor_value(norm)}, 1);
    if (norm)
        norm = call_build(c, OPK_CLAMP, (Value *[]){tensor_value(norm), float_value(eps)}, 2);
    return norm ? call_build(c, OPK_DIV, (Value *[]){tensor_value(x), tensor_value(norm)}, 2) : NULL;
}

/* ---------------------------------------------------------------- matmul and attention */

Tensor *build_matmul(Call *c) {
    Tensor *a = call_tensor(c, 0), *b = call_tensor(c, 1);
    Tensor a2, b2;
    matmul_operands(a, b, &a2, &b2);
    int64_t M = a2.dims[a2.rank - 2], K = a2.dims[a2.rank - 1], K2 = b2.dims[b2.rank - 2], N = b2.dims[b2.rank - 1];
    if (K != K2) {
        call_error(c, -1, "the inner dimensions of %s @ %s differ (%lld vs %lld)", shape_of(a), shape_of(b), (long long)K, (long long)K2);
        return NULL;
    }
    Tensor ba = a2, bb = b2;   /* batch parts */
    ba.rank -= 2;
    bb.rank -= 2;
    int brank;
    int64_t dims[MAX_RANK + 2];
    if (!broadcast_shape(&ba, &bb, &brank, dims)) {
        call_error(c, -1, "the batch dimensions of %s and %s cannot broadcast", shape_of(a), shape_of(b));
        return NULL;
    }
    int rank = brank;
    if (a->rank > 1)
        dims[rank++] = M;
    if (b->rank > 1)
        dims[rank++] = N;
    if (rank > MAX_RANK) {
        call_error(c, -1, "the result would have more than %d axes", MAX_RANK);
        return NULL;
    }
    Op *op = unary_op(c, OPK_MATMUL, a);
    op_add_input(op, b);
    return call_output(c, op, rank, dims);
}

Tensor *build_sdpa(Call *c) {
    Tensor *q = call_tensor(c, 0), *k = call_tensor(c, 1), *v = call_tensor(c, 2);
    if (q->rank < 2 || k->rank != q->rank || v->rank != q->rank) {
        call_error(c, -1, "q, k and v must have the same rank (at least 2), found %s, %s and %s", shape_of(q), shape_of(k), shape_of(v));
        return NULL;
    }
    int r = q->rank;
    for (int i = 0; i < r - 2; i++) {
        if (k->dims[i] != q->dims[i] || v->dims[i] != q->dims[i]) {
            call_error(c, -1, "q, k and v must have equal batch dimensions, found %s, %s and %s", shape_of(q), shape_of(k), shape_of(v));
            return NULL;
        }
    }
    if (k->dims[r - 1] != q->dims[r - 1] || v->dims[r - 2] != k->dims[r - 2]) {
        call_error(c, -1, "expects q [..., L, D], k [..., S, D], v [..., S, Dv], found %s, %s and %s", shape_of(q), shape_of(k), shape_of(v));
        return NULL;
    }
    Op *op = unary_op(c, OPK_SDPA, q);
    op_add_input(op, k);
    op_add_input(op, v);
    op->a.causal = call_bool(c, 3);
    int64_t scores[MAX_RANK];
    memcpy(scores, q->dims, sizeof scores);
    scores[r - 1] = k->dims[r - 2];
    if (!attn_mask(c, op, 4, r, scores, false))
        return NULL;
    int64_t dims[MAX_RANK];
    memcpy(dims, q->dims, sizeof dims);
    dims[r - 1] = v->dims[r - 1];
    return call_output(c, op, r, dims);
}

/* The ops that passes make (layout changes, a convolution's padding): no source can call them. */
Tensor *build_internal(Call *c) {
    internal_error(NULL, "%s is made by passes only, never called", op_info[c->kind].name);
}
