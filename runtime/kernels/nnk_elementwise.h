/*
 * nnk_elementwise.h — activations, broadcasting binary ops and tensor-scalar ops.
 *
 * Activations follow PyTorch's formulas (gelu is the erf form, gelu_tanh the approximate="tanh" form,
 * relu passes NaN through), with e^x and erf from nnk_base.h's branch-free versions (within 2 ulp and
 * 7e-7), so that the loops vectorise. They may run in place (y == x), so y and x are not `restrict`.
 * Binary ops walk the output row by row: the last axis is the inner loop, every other axis is folded into
 * a row index whose operand offsets are recomputed once per row (see nnk__offset).
 */
#ifndef NNK_ELEMENTWISE_H
#define NNK_ELEMENTWISE_H

#include "nnk_base.h"

/* Binary and tensor-scalar operators. For nnk_scalar, x OP s with RSUB = s - x and RDIV = s / x;
   for nnk_binary, a OP b with RSUB = b - a and RDIV = b / a. The comparisons give 1 where true, 0 where false. */
enum { NNK_ADD, NNK_SUB, NNK_MUL, NNK_DIV, NNK_RSUB, NNK_RDIV, NNK_EQ, NNK_NE, NNK_LT, NNK_LE, NNK_GT, NNK_GE };

#define NNK_SQRT2_PI 0.79788456080286535588f    /* √(2/π) */

NNK__NO_TRAPS_BEGIN

/* min(max(v, lo), hi), as torch.clamp: a NaN stays NaN; lo > hi gives hi. */
static inline float nnk__clampf(float v, float lo, float hi)
{
    float t = v < lo ? lo : v;
    return t > hi ? hi : t;
}

/* y[n] = clamp(x, lo, hi) (torch.clamp, hardtanh); y may equal x */
static inline void nnk_clamp(float *y, const float *x, long n, float lo, float hi)
{
    for (long i = 0; i < n; i++)
        y[i] = nnk__clampf(x[i], lo, hi);
}

/* Activations a layer's epilogue may apply, and the builtins that run them (nnk_acts.def). */
enum {
    NNK_ACT_NONE,
#define ACT(ID, NAME, ZMM, EXPR) NNK_ACT_##ID,
#include "nnk_acts.def"
#undef ACT
    NNK_ACT_COUNT
};

/* Compilers vectorise loops for AVX-512 CPUs in 8-float ymm unless told otherwise (clang and gcc tune
   -march=native on Intel's for 256 bits); the loops of the activations that cost more than their memory
   (ZMM W or W1 in nnk_acts.def) are told to use the 16-float zmm, whose gelu runs at 0.49 ns an element
   against 0.62 (a Sapphire Rapids core, clang 14 and gcc 12): ConvNeXt-T applies it to 8.5 million. Not where clang could
   fail to (it warns then): at -Os or -O0, under the sanitizers, or with -DNNK_NO_ZMM_LOOP. The others (N)
   stay inlinable (gcc inlines no function of other target options). */
#if defined(__clang__) && defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(undefined_behavior_sanitizer)
#define NNK__SANITIZED 1
#endif
#elif defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define NNK__SANITIZED 1
#endif
#if defined(__AVX512F__) && defined(__OPTIMIZE__) && !defined(__OPTIMIZE_SIZE__) && !defined(NNK__SANITIZED) && \
    !defined(NNK_NO_ZMM_LOOP)
#if defined(__clang__)
#define NNK__ZMM_FN_W __attribute__((min_vector_width(512)))   /* (without it, the loop below runs in pairs of ymm) */
#define NNK__ZMM_LOOP_W _Pragma("clang loop vectorize_width(16)")
#define NNK__ZMM_LOOP_W1 _Pragma("clang loop vectorize_width(16) interleave_count(1)")
#elif defined(__GNUC__)
#define NNK__ZMM_FN_W __attribute__((target("prefer-vector-width=512")))
#endif
#endif
#ifndef NNK__ZMM_FN_W
#define NNK__ZMM_FN_W
#endif
#ifndef NNK__ZMM_LOOP_W
#define NNK__ZMM_LOOP_W
#endif
#ifndef NNK__ZMM_LOOP_W1
#define NNK__ZMM_LOOP_W1
#endif
#define NNK__ZMM_FN_W1 NNK__ZMM_FN_W
#define NNK__ZMM_FN_N
#define NNK__ZMM_LOOP_N

/* y[n] = NAME(x[n]) for every row of nnk_acts.def: nnk_relu, nnk_gelu, ... */
#define ACT(ID, NAME, ZMM, EXPR)                                                    \
    static inline NNK__ZMM_FN_##ZMM void nnk_##NAME(float *y, const float *x, long n) \
    {                                                                          \
        NNK__ZMM_LOOP_##ZMM                                                    \
        for (long i = 0; i < n; i++) {                                         \
            float v = x[i];                                                    \
            y[i] = EXPR;                                                       \
        }                                                                      \
    }
#include "nnk_acts.def"
#undef ACT

NNK__NO_TRAPS_END

/* y[n] = act(y[n]), in place; NNK_ACT_NONE leaves y as it is */
static inline void nnk_activate(float *y, long n, int act)
{
    switch (act) {
#define ACT(ID, NAME, ZMM, EXPR) case NNK_ACT_##ID: nnk_##NAME(y, y, n); break;
#include "nnk_acts.def"
#undef ACT
    default: break;
    }
}

/* The epilogue of a conv2d or linear, on the part of its output y[n] just computed:
   y = act2(act1(y) + res), or y = act1(y) when res is NULL. */
static inline void nnk_epilogue(float *restrict y, const float *restrict res, long n, int act1, int act2)
{
    nnk_activate(y, n, act1);
    if (res) {
        for (long i = 0; i < n; i++)
            y[i] += res[i];
        nnk_activate(y, n, act2);
    }
}

/* y[n] = a[i*as] OP b[i*bs]: one row of a binary op. The switch sits outside the loops, so each loop is a
   plain vectorisable stream (and vanishes entirely when op is a compile-time constant). */
static inline void nnk__binary_row(float *y, const float *a, long as, const float *b, long bs, int op, long n)
{
    switch (op) {
    case NNK_ADD:  for (long i = 0; i < n; i++) y[i] = a[i * as] + b[i * bs]; break;
    case NNK_SUB:  for (long i = 0; i < n; i++) y[i] = a[i * as] - b[i * bs]; break;
    case NNK_MUL:  for (long i = 0; i < n; i++) y[i] = a[i * as] * b[i * bs]; break;
    case NNK_DIV:  for (long i = 0; i < n; i++) y[i] = a[i * as] / b[i * bs]; break;
    case NNK_RSUB: for (long i = 0; i < n; i++) y[i] = b[i * bs] - a[i * as]; break;
    case NNK_RDIV: for (long i = 0; i < n; i++) y[i] = b[i * bs] / a[i * as]; break;
    case NNK_EQ:   for (long i = 0; i < n; i++) y[i] = a[i * as] == b[i * bs]; break;
    case NNK_NE:   for (long i = 0; i < n; i++) y[i] = a[i * as] != b[i * bs]; break;
    case NNK_LT:   for (long i = 0; i < n; i++) y[i] = a[i * as] < b[i * bs]; break;
    case NNK_LE:   for (long i = 0; i < n; i++) y[i] = a[i * as] <= b[i * bs]; break;
    case NNK_GT:   for (long i = 0; i < n; i++) y[i] = a[i * as] > b[i * bs]; break;
    case NNK_GE:   for (long i = 0; i < n; i++) y[i] = a[i * as] >= b[i * bs]; break;
    }
}

/* y[dims] = a OP b, broadcasting: a and b are read with per-axis element strides astride/bstride[rank]
   (0 on broadcast axes). y may alias a or b when that operand is not broadcast. rank may be 0. */
static inline void nnk_binary(float *y, const float *a, const float *b, int op,
                              int rank, const int *dims, const long *astride, const long *bstride)
{
    int inner = rank > 0 ? dims[rank - 1] : 1;
    long as = rank > 0 ? astride[rank - 1] : 0, bs = rank > 0 ? bstride[rank - 1] : 0;
    long rows = 1;
    for (int ax = 0; ax < rank - 1; ax++)
        rows *= dims[ax];
    for (long r = 0; r < rows; r++)
        nnk__binary_row(y + r * inner, a + nnk__offset(r, rank - 1, dims, astride), as,
                        b + nnk__offset(r, rank - 1, dims, bstride), bs, op, inner);
}

/* y[n] = x OP s  (RSUB: s - x, RDIV: s / x); y may equal x */
static inline void nnk_scalar(float *y, const float *x, float s, int op, long n)
{
    switch (op) {
    case NNK_ADD:  for (long i = 0; i < n; i++) y[i] = x[i] + s; break;
    case NNK_SUB:  for (long i = 0; i < n; i++) y[i] = x[i] - s; break;
    case NNK_MUL:  for (long i = 0; i < n; i++) y[i] = x[i] * s; break;
    case NNK_DIV:  for (long i = 0; i < n; i++) y[i] = x[i] / s; break;
    case NNK_RSUB: for (long i = 0; i < n; i++) y[i] = s - x[i]; break;
    case NNK_RDIV: for (long i = 0; i < n; i++) y[i] = s / x[i]; break;
    case NNK_EQ:   for (long i = 0; i < n; i++) y[i] = x[i] == s; break;
    case NNK_NE:   for (long i = 0; i < n; i++) y[i] = x[i] != s; break;
    case NNK_LT:   for (long i = 0; i < n; i++) y[i] = x[i] < s; break;
    case NNK_LE:   for (long i = 0; i < n; i++) y[i] = x[i] <= s; break;
    case NNK_GT:   for (long i = 0; i < n; i++) y[i] = x[i] > s; break;
    case NNK_GE:   for (long i = 0; i < n; i++) y[i] = x[i] >= s; break;
    }
}

#endif
