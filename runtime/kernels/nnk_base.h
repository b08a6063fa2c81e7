/*
 * nnk_base.h — what every nnk kernel header shares: the libc/libm includes and small helpers (dot
 * product, branch-free exp and gelu, laned sum and maximum, strided offsets, valid window ranges).
 *
 * Names starting with `nnk__` are internal to the kernels; generated code calls only the `nnk_` ones.
 * Conventions for the whole library: float32 tensors, contiguous, NCHW; outputs first, dimensions last;
 * `long` for flat element counts and offsets, `int` for a single dimension. Kernels never allocate: a
 * kernel that needs scratch memory takes a pointer to it and its header gives a size macro in floats.
 *
 * Floating point: which flags give which results.
 *  - Bit-identical across compilers (gcc, clang, any version) and optimisation levels, for one ISA path of
 *    nnk_gemm.h: -ffp-contract=off, FLT_EVAL_METHOD 0 (every SSE/NEON/VFP target; not x87, so -mfpmath=sse
 *    on 32-bit x86), no -ffast-math (nor -fassociative-math, -freciprocal-math, -ffinite-math-only, or
 *    flushing subnormals), and the same libm for tanhf (gelu_tanh, tanh); sqrtf is correctly rounded
 *    everywhere. Every kernel then does the same operations in the same order, which C fixes. The AVX-512
 *    and AVX2 tiles give the same bits as each other and, like the NEON tile, use fused multiply-adds
 *    whatever the flags; the portable tiles multiply and add, so across paths results agree to rounding.
 *  - Contraction (clang's default -ffp-contract=on, gcc's -ffp-contract=fast in GNU C modes, on a target
 *    with FMA): a*b + c may become one FMA, which changes the last bits of products, of sums of products
 *    and of the polynomial in nnk__exp; still within the tolerances, and still the same for every thread
 *    count (each element is computed by one sequence of operations whoever computes it).
 *  - -ffast-math: sums change order (laned sums, layer norm), nnk__exp stays within 2 ulp and layer norm
 *    within 2e-7 of float64 (gcc 12 and clang 14, -O2 and -O3, measured; both are written so that
 *    reassociation cannot fold their rounding steps), but NaN and infinity are not honoured (a relu or
 *    max pool may lose a NaN, e^x saturates at FLT_MAX) and subnormals flush to zero.
 */
#ifndef NNK_BASE_H
#define NNK_BASE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* gcc (not clang) turns the selects of nnk__exp, nnk__gelu and the clamps into vector blends, and so
   vectorises the loops that use them, only if it may assume that floating point raises no trap the program
   could see; under its default -ftrapping-math those loops ran scalar, 10x slower (silu 2.9 ns an element
   against 0.36, gcc 12 -O2, AVX-512), and EfficientNet-B0 built with gcc took 33 ms against clang's 11.
   The functions between NNK__NO_TRAPS_BEGIN and NNK__NO_TRAPS_END are compiled with -fno-trapping-math,
   which changes no value, only which floating-point exception flags may be raised, and -ftree-vectorize,
   without which gcc 12 leaves such functions unvectorised at -O2. gcc does not inline a function into one
   compiled with other options, so the regions hold only the leaves that need it and what they call: e^x
   and gelu here, the activation loops (nnk_elementwise.h), softmax and layer norm (nnk_norm.h), attention's
   softmax row (nnk_attention.h) and the max pool (nnk_pool.h); their callers make one call per row or per
   op. No function in a region is always_inline. */
#if defined(__GNUC__) && !defined(__clang__)
#define NNK__NO_TRAPS_BEGIN _Pragma("GCC push_options") _Pragma("GCC optimize(\"no-trapping-math\", \"tree-vectorize\")")
#define NNK__NO_TRAPS_END _Pragma("GCC pop_options")
#else
#define NNK__NO_TRAPS_BEGIN
#define NNK__NO_TRAPS_END
#endif

/* Largest rank nnk_transpose accepts (it keeps per-axis strides in local arrays); other kernels take any. */
#define NNK_MAX_RANK 8

/* a[n] · b[n]. Eight independent partial sums: without -ffast-math a compiler may not reorder one running
   sum, but it can vectorise eight of them, and the shorter chains are also a little more accurate. */
/* The 8 partial sums of nnk__dot and nnk__dot4, added pairwise. */
static inline float nnk__sum8(const float s[8])
{
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static inline float nnk__dot(const float *restrict a, const float *restrict b, long n)
{
    float acc[8] = {0};
    long body = n - n % 8;   /* (a split written so that gcc 12 sees the tail's trip count is below 8) */
    for (long i = 0; i < body; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += a[i + j] * b[i + j];
    float sum = nnk__sum8(acc);
    for (long i = body; i < n; i++)
        sum += a[i] * b[i];
    return sum;
}

/* nnk__dot of a with four rows of b (ldb floats apart) at once, the same sums in the same order (so the
   same bits as four calls): a is read once for the four, and the four chains of multiply-adds and the
   four streams from memory run side by side. On one Zen 5 core, VGG-11's first classifier layer (one row
   against 411 MB of weight) took 12-17 ms against nnk__dot's 17-22 (clang -O3, four alternations), and
   14-15 against 18-21 at -O2 (gcc and clang). Each row is asked for 512 floats (2 KB) ahead of where
   it is read (a hint, which never faults past the end): the hardware's prefetchers start each 8 KB row
   late. On another Zen 5 core (cold caches, medians of 20): ResNet-50's classifier 2048→1000 0.41-0.46 →
   0.32-0.37 ms, VGG-11's first 16.4 → 13.5 ms. */
#if defined(__GNUC__)
#define NNK__DOT_AHEAD(p) __builtin_prefetch((p) + 512)
#else
#define NNK__DOT_AHEAD(p) ((void)(p))
#endif
static inline void nnk__dot4(float out[4], const float *restrict a, const float *restrict b, long ldb, long n)
{
    const float *b0 = b, *b1 = b + ldb, *b2 = b + 2 * ldb, *b3 = b + 3 * ldb;
    float acc0[8] = {0}, acc1[8] = {0}, acc2[8] = {0}, acc3[8] = {0};
    long body = n - n % 8;
    for (long i = 0; i < body; i += 8) {
        NNK__DOT_AHEAD(b0 + i);
        NNK__DOT_AHEAD(b1 + i);
        NNK__DOT_AHEAD(b2 + i);
        NNK__DOT_AHEAD(b3 + i);
        for (int j = 0; j < 8; j++) {   /* (one loop of 8 lanes with the four rows in it: gcc and clang vectorise it at -O2) */
            float av = a[i + j];
            acc0[j] += av * b0[i + j];
            acc1[j] += av * b1[i + j];
            acc2[j] += av * b2[i + j];
            acc3[j] += av * b3[i + j];
        }
    }
    const float *acc[4] = {acc0, acc1, acc2, acc3};
    for (int r = 0; r < 4; r++) {
        const float *br = b + r * ldb;
        float sum = nnk__sum8(acc[r]);
        for (long i = body; i < n; i++)
            sum += a[i] * br[i];
        out[r] = sum;
    }
}

/* What e^x gives above 88.72: inf, or under -ffinite-math-only (part of -ffast-math), where an infinity is
   undefined and clang drops the code that makes one, the largest float, so that 1 / (1 + e^x) and
   x / (1 + e^x) still come out 0. */
#if defined(__FINITE_MATH_ONLY__) && __FINITE_MATH_ONLY__
#define NNK__EXP_OVERFLOW 3.40282347e38f
#else
#define NNK__EXP_OVERFLOW INFINITY
#endif

NNK__NO_TRAPS_BEGIN

/* e^x within about 2 ulp, written without branches so that the loops calling it vectorise (libm's expf
   does not). Cephes' method: x = n·ln2 + r with |r| <= ln2/2, e^r from a degree-7 polynomial, times 2^n.
   Above 88.72 the result is inf, below -104 it is 0, and NaN stays NaN (without -ffast-math).
   Written to stay right under -ffast-math (gcc 12, clang 14, -O2 and -O3, checked against libm): nothing
   in it is an identity that reassociation could fold.
    - n = round(x/ln2) comes from the low bits of x/ln2 + 1.5·2^23, converted from those bits as an integer
      (as `t - 1.5·2^23` it folded to x/ln2, and e^-1 came out 0.5).
    - r = (x - n·C1) + n·C2, ln2 = C1 - C2 in two parts so that x - n·C1 is exact: reassociated, the sum
      becomes (x + n·C2) - n·C1, which rounds at the magnitude of x (60 ulp at x = -72). So r1 = x - n·C1
      also appears on its own in the last step of the polynomial, where it is added last: a value with two
      uses is a leaf to both compilers' reassociation, which only regroups single-use chains.
    - 2^n goes into the exponent bits of e^r by an integer add where the result is normal (so no product
      2^a·2^b that could overflow when formed first), and only below that by multiplying by two powers of
      two, whose product, if the compiler forms it first, is still the exact 2^n down to 2^-149. */
static inline float nnk__exp(float x)
{
    float xc = x < -104.0f ? -104.0f : x > 88.7228394f ? 88.7228394f : x;
    float t = xc * 1.44269504088896341f + 12582912.0f;   /* 1.5·2^23: round(x/ln2) lands in t's low bits */
    uint32_t tb;
    memcpy(&tb, &t, sizeof tb);
    int32_t ni = (int32_t)(tb - 0x4B400000u);
    float n = (float)ni;                                   /* = t - 1.5·2^23 exactly, but not foldable */
    float r1 = xc - n * 0.693359375f, r2 = n * 2.12194440e-4f, r = r1 + r2;   /* ln2 in two parts, r1 exact */
    float p = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r +
               1.6666665459e-1f) * r + 5.0000001201e-1f;
    p = ((p * r * r + r2) + r1) + 1.0f;
    /* p·2^n: -125 <= n <= 128 by adding n to p's exponent (p is in [0.70, 1.42], and below 1 when n is 128);
       below, p·2^(n+126)·2^-126 rounds once into the subnormals as it should; NaN takes the second way. The
       second is computed for every lane, with n at most -125 so that the lanes that do not need it make no
       subnormal (which would cost a microcode assist each on x86). */
    int32_t nlo = ni < -125 ? ni : -125;
    uint32_t pb, hb, lb = (uint32_t)(nlo + 253) << 23;
    memcpy(&pb, &p, sizeof pb);
    hb = pb + ((uint32_t)ni << 23);
    float hi, s;
    memcpy(&hi, &hb, sizeof hi);
    memcpy(&s, &lb, sizeof s);
    float lo = p * s * 0x1p-126f;
    float y = (uint32_t)ni + 125u <= 253u ? hi : lo;   /* -125 <= ni <= 128 */
    return x < -104.0f ? 0.0f : x >= 88.7228394f ? NNK__EXP_OVERFLOW : y;
}

/* e^x for x <= 0 (softmax's x - max, gelu's -a²): nnk__exp's steps without its overflow and subnormal ways,
   so about half its operations. For x in [-86, 0] the same bits as nnk__exp; below -86 (e^x < 5e-38, where
   2^n would leave the normal floats) 0; NaN stays NaN. */
static inline float nnk__exp_neg(float x)
{
    float xc = x < -86.0f ? -86.0f : x;
    float t = xc * 1.44269504088896341f + 12582912.0f;
    uint32_t tb;
    memcpy(&tb, &t, sizeof tb);
    int32_t ni = (int32_t)(tb - 0x4B400000u);              /* -125 <= ni <= 0 */
    float n = (float)ni;
    float r1 = xc - n * 0.693359375f, r2 = n * 2.12194440e-4f, r = r1 + r2;
    float p = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r +
               1.6666665459e-1f) * r + 5.0000001201e-1f;
    p = ((p * r * r + r2) + r1) + 1.0f;
    uint32_t pb;
    memcpy(&pb, &p, sizeof pb);
    pb += (uint32_t)ni << 23;
    float y;
    memcpy(&y, &pb, sizeof y);
    return x >= -86.0f ? y : x < -86.0f ? 0.0f : x;
}

/* gelu(v) = v/2·(1 + erf(v/√2)), with erf from Abramowitz and Stegun 7.1.26 (within 7e-7) written for
   this one use: for a = |v|/√2, erfc(a) = t·P(t)·e^(-a²) with t = 1/(1 + 0.3275911a), and 1 + erf(v/√2)
   is erfc(a) when v < 0 (no cancellation) and 2 - erfc(a) otherwise. Past a = 9.2, erfc(a) < 1e-38
   counts as 0. NaN and ±inf give what PyTorch gives (NaN, inf, NaN), and the loops calling it vectorise
   (2.5 times as fast as 1 + erf through nnk__exp). */
static inline float nnk__gelu(float v)
{
    float a = fabsf(v) * 0.707106781186547524f, ac = a < 9.2f ? a : 9.2f;
    float t = 1.0f / (1.0f + 0.3275911f * ac);
    float poly = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
    float q = a < 9.2f ? poly * nnk__exp_neg(-ac * ac) : 0.0f;
    return 0.5f * v * (v < 0.0f ? q : 2.0f - q);
}

/* sigmoid(v) = 1/(1 + e^-v) and silu(v) = v/(1 + e^-v), from e = e^-|v| (nnk__exp_neg, in (0, 1], about
   half the operations of nnk__exp, whose overflow and subnormal ways both are computed for every lane):
   1/(1 + e) and v/(1 + e) for v >= 0, e/(1 + e) and v·e/(1 + e) below (no infinity in between). For v >= 0
   the bits of the formulas above; below, within 2.4 ulp (sigmoid) and 3.4 ulp (silu) of the exact values
   over every float, except below -86, where sigmoid is under 5e-38 and comes out 0 (silu -0). NaN stays NaN, sigmoid(±inf) is 1 and 0, silu(inf) inf and
   silu(-inf) NaN, as in PyTorch. silu 0.33 → 0.26 ns an element (a Zen 5 core, zmm, long rows). */
static inline float nnk__sigmoid(float v)
{
    float e = nnk__exp_neg(-fabsf(v)), d = 1.0f + e;
    return (v >= 0.0f ? 1.0f : e) / d;
}
static inline float nnk__silu(float v)
{
    float e = nnk__exp_neg(-fabsf(v)), d = 1.0f + e;
    return (v >= 0.0f ? v : v * e) / d;
}

NNK__NO_TRAPS_END

/* Σ a[n] and max a[n] (-inf when n is 0; NaNs are skipped), in 16 independent lanes so that they
   vectorise: a compiler may not reorder one running sum or maximum. */
static inline float nnk__sum(const float *a, long n)
{
    float acc[16] = {0};
    long body = n - n % 16;
    for (long i = 0; i < body; i += 16)
        for (int j = 0; j < 16; j++)
            acc[j] += a[i + j];
    float sum = 0.0f;
    for (long i = body; i < n; i++)
        sum += a[i];
    for (int j = 0; j < 16; j++)
        sum += acc[j];
    return sum;
}

static inline float nnk__max(const float *a, long n)
{
    float acc[16];
    for (int j = 0; j < 16; j++)
        acc[j] = -INFINITY;
    long body = n - n % 16;
    for (long i = 0; i < body; i += 16)
        for (int j = 0; j < 16; j++)
            acc[j] = a[i + j] > acc[j] ? a[i + j] : acc[j];
    float max = -INFINITY;
    for (long i = body; i < n; i++)
        max = a[i] > max ? a[i] : max;
    for (int j = 0; j < 16; j++)
        max = acc[j] > max ? acc[j] : max;
    return max;
}

/* Element offset of flat index i of a tensor of shape dims[rank] read with per-axis strides stride[rank]:
   i is split into one index per axis (last axis fastest) and each is weighted by its axis' stride. */
static inline long nnk__offset(long i, int rank, const int *dims, const long *stride)
{
    long off = 0;
    for (int ax = rank - 1; ax >= 0; ax--) {
        off += (i % dims[ax]) * stride[ax];
        i /= dims[ax];
    }
    return off;
}

/* The outputs o in [*lo, *hi) of a sliding window whose input position o*step + shift lies in [0, n),
   clipped to [0, outs). Convolution and pooling use it to take the zero-padding test out of their inner
   loops: only the valid range is visited, and padded cells are simply never read. */
static inline void nnk__valid_range(int *lo, int *hi, int outs, int n, int step, int shift)
{
    int first = shift >= 0 ? 0 : (-shift + step - 1) / step;   /* ceil(-shift / step) */
    int end = shift >= n ? 0 : (n - 1 - shift) / step + 1;      /* floor((n-1-shift) / step) + 1 */
    *lo = first;
    *hi = end < outs ? end : outs;
}

#endif
