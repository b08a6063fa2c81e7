/*
 * nnk_conv_nchwc.h — direct convolution on channel-blocked activations (the NCHWc layout of oneDNN and
 * ONNX Runtime's MLAS), with its reorders, zero padding and pools.
 *
 * The layout. A tensor [N, C, H, W] with C a multiple of NNK_CB = 16 is stored as [N][C/16][H][W][16]:
 * the 16 channels of one block and one pixel are one vector. It is the same on every ISA (a block is one
 * zmm, two ymm, four NEON q registers), so generated C does not depend on the path it is built with.
 * With H·W = 1 it is byte for byte the plain layout.
 *
 * The convolution. Output channels lie across the vector lanes and pixels across registers: a tile of
 * NW output pixels (of one row, or gathered from a narrow plane's next rows) × NB blocks of 16 output channels is NW·NB vector accumulators. For each
 * input channel, kernel tap and pixel it broadcasts one input value and multiplies it with NB vectors of
 * weights, so there is no gather (no im2col): the input is read where it lies. The input is already
 * zero-padded (nnk_pad_plane makes the copy), so no tap needs a test. The input may also be plain NCHW
 * (a model's image with 3 channels): then a "block" is one channel.
 *
 * Weights are rearranged once at load (nnk_pack_conv_nchwc): w[ob][cb][kh][kw][ic][16], the 16 output
 * channels of block ob for input channel ic of block cb, so that a tile reads them as one stream.
 *
 * Groups. A grouped convolution whose groups fill whole blocks (16 | channels a group, ResNeXt's later
 * stages) reads, for output block ob, only its group's input blocks; one whose groups fit in a block
 * with as many input as output channels a group (4 or 8: ResNeXt's first stages) reads, for block ob,
 * input block ob, with a 16×16 weight per tap that is zero between different groups (nnk__conv_inputs).
 * The tiles compute 16 / (channels a group) times the products such a layer needs; on AVX-512 and AVX2 a
 * 3×3 one has tiles of its own, which compute only its products from the same packed weights (groups
 * within a block, below).
 *
 * Every output element is the bias plus the sum over (input block, kh, kw, input channel) in that order,
 * one fused multiply-add at a time, whichever tile, row or thread computes it: the result does not
 * depend on the thread count, and the AVX-512 and AVX2 paths give the same bits. The portable path
 * computes the same sums with a multiply and an add (unless the compiler contracts them).
 *
 * The work is cut into units of a run of up to NNK_CONV_RUN output pixels (in row order; nnk__conv_run_len)
 * of NNK_CONV_GROUP blocks, the runs outer: nnk_conv2d_nchwc computes units [u0, u1), and
 * nnk_conv_nchwc_units says how many an image has.
 */
#ifndef NNK_CONV_NCHWC_H
#define NNK_CONV_NCHWC_H

#include "nnk_base.h"
#include "nnk_conv.h"
#include "nnk_elementwise.h"
#include "nnk_gemm.h"   /* nnk__fusable, NNK__UNROLL */
#include "nnk_pool.h"

enum {
    NNK_CB = 16,            /* channels of a block */
    NNK_CONV_GROUP = 4,     /* output blocks of a unit of work */
    NNK_CONV_RUN = 196,     /* output pixels of a unit at most (a 14×14 plane) */
    NNK_CONV_MIN_UNITS = 8,    /* units an image has at least, where its plane has as many pixels: one for each of 8 threads */
    NNK_CONV_CHUNK_BYTES = 384 * 1024,   /* a unit's weights, at most, for a chunk of its input blocks (half an L2) */
    NNK_CONV_PREFETCH_PLANE = 49,        /* output pixels of a plane, at most, whose tiles prefetch their next weights */
};

/* ---------------------------------------------------------------- the vector of one block, per ISA */

#if defined(__AVX512F__) && !defined(NNK_PORTABLE) && !defined(NNK_SCALAR)
#include <immintrin.h>
#define NNK_CONV_NCHWC_AVX512F 1
typedef __m512 nnk__v16;
#define NNK__V_LOAD(p)          _mm512_loadu_ps(p)
#define NNK__V_STORE(p, v)      _mm512_storeu_ps(p, v)
#define NNK__V_ZERO()           _mm512_setzero_ps()
#define NNK__V_FMA(acc, s, w)   ((acc) = _mm512_fmadd_ps(_mm512_set1_ps(s), w, acc))
#define NNK__V_ADD(a, b)        _mm512_add_ps(a, b)
#define NNK__V_RELU_IN(v)       ((v) = _mm512_max_ps(_mm512_setzero_ps(), v))
enum { NNK__NW = 14, NNK__NW4 = 7 };   /* 14 × 2 blocks: 28 of the 32 zmm; or 7 × 4 blocks */
#define NNK__NB 2
#elif defined(__AVX2__) && defined(__FMA__) && !defined(NNK_PORTABLE) && !defined(NNK_SCALAR)
#include <immintrin.h>
#define NNK_CONV_NCHWC_AVX2_FMA 1
typedef struct { __m256 lo, hi; } nnk__v16;
static inline nnk__v16 nnk__v_load(const float *p) { nnk__v16 v = {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; return v; }
static inline void nnk__v_store(float *p, nnk__v16 v) { _mm256_storeu_ps(p, v.lo); _mm256_storeu_ps(p + 8, v.hi); }
static inline nnk__v16 nnk__v_zero(void) { nnk__v16 v = {_mm256_setzero_ps(), _mm256_setzero_ps()}; return v; }
static inline nnk__v16 nnk__v_fma(nnk__v16 acc, float s, nnk__v16 w)
{
    __m256 b = _mm256_set1_ps(s);
    nnk__v16 v = {_mm256_fmadd_ps(b, w.lo, acc.lo), _mm256_fmadd_ps(b, w.hi, acc.hi)};
    return v;
}
static inline nnk__v16 nnk__v_add(nnk__v16 a, nnk__v16 b) { nnk__v16 v = {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; return v; }
static inline nnk__v16 nnk__v_max(nnk__v16 a, nnk__v16 b) { nnk__v16 v = {_mm256_max_ps(a.lo, b.lo), _mm256_max_ps(a.hi, b.hi)}; return v; }
#define NNK__V_LOAD(p)          nnk__v_load(p)
#define NNK__V_STORE(p, v)      nnk__v_store(p, v)
#define NNK__V_ZERO()           nnk__v_zero()
#define NNK__V_FMA(acc, s, w)   ((acc) = nnk__v_fma(acc, s, w))
#define NNK__V_ADD(a, b)        nnk__v_add(a, b)
#define NNK__V_RELU_IN(v)       ((v) = nnk__v_max(nnk__v_zero(), v))
enum { NNK__NW = 6, NNK__NW4 = 3 };    /* 6 × 1 block: 12 of the 16 ymm; or 3 × 2 blocks */
#define NNK__NB 1
#define NNK__NB4 2
#elif defined(__GNUC__) && !defined(NNK_SCALAR)
#define NNK_CONV_NCHWC_VECTOR 1
/* (no function takes or returns one by value: that would change the ABI with the target's vector width) */
typedef float nnk__v16 __attribute__((vector_size(64)));
typedef float nnk__v16u __attribute__((vector_size(64), aligned(4), may_alias));
typedef int32_t nnk__m16 __attribute__((vector_size(64)));
static inline void nnk__v_relu_in(nnk__v16 *v)   /* 0 > x ? 0 : x, as nnk_relu: keeps NaN and -0 */
{
    nnk__m16 keep = ~((nnk__v16){0} > *v), bits;
    memcpy(&bits, v, sizeof bits);
    bits &= keep;
    memcpy(v, &bits, sizeof bits);
}
#define NNK__V_LOAD(p)          (*(const nnk__v16u *)(const void *)(p))
#define NNK__V_STORE(p, v)      (*(nnk__v16u *)(void *)(p) = (v))
#define NNK__V_ZERO()           ((nnk__v16){0})
#define NNK__V_FMA(acc, s, w)   ((acc) += (s) * (w))
#define NNK__V_ADD(a, b)        ((a) + (b))
#define NNK__V_RELU_IN(v)       nnk__v_relu_in(&(v))
#if defined(__aarch64__)
enum { NNK__NW = 6, NNK__NW4 = 3 };   /* a vector of 16 is 4 q registers: 6 × 1 block or 3 × 2 are 24 of the 32 */
#else
enum { NNK__NW = 2, NNK__NW4 = 1 };   /* SSE's 16 xmm: 2 × 1 block or 1 × 2 are 8 */
#endif
#define NNK__NB 1
#define NNK__NB4 2
#else
#define NNK_CONV_NCHWC_SCALAR 1
typedef struct { float f[16]; } nnk__v16;
static inline nnk__v16 nnk__v_load(const float *p) { nnk__v16 v; memcpy(v.f, p, sizeof v.f); return v; }
static inline void nnk__v_store(float *p, nnk__v16 v) { memcpy(p, v.f, sizeof v.f); }
static inline nnk__v16 nnk__v_zero(void) { nnk__v16 v = {{0}}; return v; }
static inline nnk__v16 nnk__v_fma(nnk__v16 acc, float s, nnk__v16 w) { for (int i = 0; i < 16; i++) acc.f[i] += s * w.f[i]; return acc; }
static inline nnk__v16 nnk__v_add(nnk__v16 a, nnk__v16 b) { for (int i = 0; i < 16; i++) a.f[i] += b.f[i]; return a; }
static inline nnk__v16 nnk__v_max(nnk__v16 a, nnk__v16 b) { for (int i = 0; i < 16; i++) a.f[i] = a.f[i] > b.f[i] ? a.f[i] : b.f[i]; return a; }
#define NNK__V_LOAD(p)          nnk__v_load(p)
#define NNK__V_STORE(p, v)      nnk__v_store(p, v)
#define NNK__V_ZERO()           nnk__v_zero()
#define NNK__V_FMA(acc, s, w)   ((acc) = nnk__v_fma(acc, s, w))
#define NNK__V_ADD(a, b)        nnk__v_add(a, b)
#define NNK__V_RELU_IN(v)       ((v) = nnk__v_max(nnk__v_zero(), v))
enum { NNK__NW = 1, NNK__NW4 = 1 };
#define NNK__NB 1
#define NNK__NB4 1
#endif
#ifndef NNK__NB4
#define NNK__NB4 4
#endif

/* Whether the tiles of a run may gather their pixels from anywhere (across the rows of a plane, so that a
   7-pixel row does not end in a tile of one): everywhere but AVX-512, whose tiles of 14 and 7 fit the
   rows of ResNet's planes and leave no register for the offsets; there, and with NNK_CONV_ROWS (tests),
   a run is cut where its rows end. */
#if NNK_CONV_NCHWC_AVX512F || defined(NNK_CONV_ROWS)
#define NNK__GATHER 0
#else
#define NNK__GATHER 1
#endif
/* A gathered run is computed in pieces of this many pixels, each for all the blocks of its unit before the
   next: 196 pixels of 512 input channels are 392 KB, which the 4 blocks would each read from L3 (1×1
   stride 2 on 14×14, Zen 3: 69 GFLOP/s in one piece, 77-78 in pieces of 12 to 48 pixels). */
#ifndef NNK__GATHER_RUN
#define NNK__GATHER_RUN (4 * NNK__NW)
#endif

/* ---------------------------------------------------------------- the tile */

/* gcc unrolls the tile's loops fully (so that the accumulators stay in registers) only when told to.
   clang unrolls them by itself, unless its loop vectorizer takes one of them first: clang 14 with
   -march=native on Zen 3 and Zen 4 (its znver3 tuning) vectorized the loops of the tiles of one block,
   which then kept their 14 accumulators in memory. ResNeXt-50's grouped 3×3 layers (those tiles) ran at
   half speed: the whole model 97.8 → 85.6 ms on a Zen 4 core, 512 channels in 32 groups on 14×14 alone
   0.59 → 0.29 ms. So the loops are also kept from the vectorizer. */
#if defined(__clang__)
#if !__has_feature(address_sanitizer)
#define NNK__UNROLL16 _Pragma("unroll") _Pragma("clang loop vectorize(disable)")
#define NNK__NOUNROLL _Pragma("nounroll")
#endif
#elif defined(__GNUC__) && !defined(__SANITIZE_ADDRESS__)
#define NNK__UNROLL16 _Pragma("GCC unroll 16")
#endif
#ifndef NNK__UNROLL16
#define NNK__UNROLL16
#endif
#ifndef NNK__NOUNROLL
#define NNK__NOUNROLL
#endif

#if defined(__GNUC__)
#define NNK__PREFETCH(p) __builtin_prefetch(p)
#else
#define NNK__PREFETCH(p) ((void)(p))
#endif

/* Where a tile reads and writes. x points at the input value of the tile's first pixel, tap (0, 0) and
   input channel 0; xp is the step between the tile's pixels, xc between input blocks, xh and xw between
   kernel rows and columns; ic the channels of an input block (16, or 1 for plain input). w points at the
   packed weights of the first output block, wb between output blocks. y and res at the first output
   pixel of the first block, yp floats between pixels (16, or an image for a batch of 1×1 planes), yb
   between blocks. */
typedef struct {
    long xp, xc, xh, xw, wb, yb, yp;
    int cbs, kh, kw, ic;
    int partial;         /* start from y's partial sums (a later chunk of the input blocks) instead of the bias */
    const float *bias;   /* of the first output block, or NULL */
    const float *res;    /* NULL for none */
    int relu1, relu2;    /* relu in registers before and after the residual */
    long pf;             /* 0, or the floats from each weight read to one that a full tile prefetches as it reads it
                            (Winograd: the same weight of the next product, which comes from memory; a small
                            plane: the same weight of the next chunk or unit, NNK_CONV_PREFETCH_PLANE) */
    const long *xo;      /* a gathered run (the tiles compiled with XP = -1): pixel i's input at x + xo[i], not x + i·xp */
    long xr;             /* AVX-512's tiles of two rows of 7 pixels: the floats from pixel 0's input to pixel 7's */
} nnk__conv_tile;

/* Asks for the lines of the residual that a tile of NW pixels × NB blocks reads after its products, before
   it starts them: they come from L3 or memory (a 56×56 plane's are 3.2 MB), and the tile's loads of them
   would otherwise wait at its end, all at once. A warm 1×1 64→256 on 56×56 with its residual, on a Zen 5
   core: 0.70 → 0.49 ms (0.49 without a residual). */
static inline __attribute__((always_inline)) void nnk__conv_tile_prefetch(int NW, int NB, const nnk__conv_tile *t)
{
    if (t->res)
        for (int j = 0; j < NB; j++)
            for (int i = 0; i < NW; i++)
                NNK__PREFETCH(t->res + j * t->yb + t->yp * i);
}

/* NW pixels × NB blocks: the hot loop. NW and NB are constants wherever it is inlined. */
static inline __attribute__((always_inline)) void nnk__conv_tile_run(int NW, int NB, int XP, float *restrict y,
                                                                     const float *restrict x, const float *restrict w,
                                                                     const nnk__conv_tile *t)
{
    const long xp = XP > 0 ? XP : t->xp;   /* a constant step keeps every pixel's address one register plus an offset */
    nnk__v16 acc[NNK__NW > 8 ? NNK__NW : 8][NNK__NB4 > NNK__NB ? NNK__NB4 : NNK__NB];   /* (8: the widest piece) */
NNK__UNROLL16
    for (int j = 0; j < NB; j++) {
        nnk__v16 b = NNK__V_ZERO();
        if (t->bias)
            b = NNK__V_LOAD(t->bias + 16 * j);
NNK__UNROLL16
        for (int i = 0; i < NW; i++) {
            acc[i][j] = b;
            if (t->partial)
                acc[i][j] = NNK__V_LOAD(y + j * t->yb + t->yp * i);
        }
    }
    nnk__conv_tile_prefetch(NW, NB, t);
    const long taps = (long)t->kh * t->kw;
    for (int cb = 0; cb < t->cbs; cb++) {
        const float *xc = x + cb * t->xc;
        const float *wc = w + cb * taps * t->ic * 16;
        for (int kh = 0; kh < t->kh; kh++)
            for (int kw = 0; kw < t->kw; kw++) {
                const float *xt = xc + kh * t->xh + kw * t->xw;
                const float *wt = wc + (kh * t->kw + kw) * t->ic * 16;
NNK__NOUNROLL
                for (int c = 0; c < t->ic; c++, xt++, wt += 16) {
                    nnk__v16 wv[NNK__NB4 > NNK__NB ? NNK__NB4 : NNK__NB];
NNK__UNROLL16
                    for (int j = 0; j < NB; j++) {
                        wv[j] = NNK__V_LOAD(wt + j * t->wb);
                        if (NW == NNK__NW && t->pf)
                            NNK__PREFETCH(wt + j * t->wb + t->pf);
                    }
NNK__UNROLL16
                    for (int i = 0; i < NW; i++) {
                        float s = xt[XP < 0 ? t->xo[i] : i * xp];
NNK__UNROLL16
                        for (int j = 0; j < NB; j++)
                            NNK__V_FMA(acc[i][j], s, wv[j]);
                    }
                }
            }
    }
NNK__UNROLL16
    for (int j = 0; j < NB; j++)
NNK__UNROLL16
        for (int i = 0; i < NW; i++) {
            nnk__v16 v = acc[i][j];
            if (t->relu1)
                NNK__V_RELU_IN(v);
            if (t->res) {
                v = NNK__V_ADD(v, NNK__V_LOAD(t->res + j * t->yb + t->yp * i));
                if (t->relu2)
                    NNK__V_RELU_IN(v);
            }
            NNK__V_STORE(y + j * t->yb + t->yp * i, v);
        }
}

#if NNK_CONV_NCHWC_AVX2_FMA
/* The same tile on AVX2 with named accumulators, two ymm a block: clang 14 keeps the array of
   nnk__conv_tile_run in memory on this path (every FMA a load and a store, a third of the speed), gcc does
   not. Up to 8 pixels × 2 blocks; NW and NB are constants wherever it is inlined, so the tests on them
   fold away and only the NW·NB·2 accumulators used exist. */
#define NNK__AY(i, j, h) (y + (j) * t->yb + t->yp * (i) + 8 * (h))
#define NNK__A_INIT(i, j)                                                                                          \
    if (NW > (i) && NB > (j)) {                                                                                    \
        c##i##j##0 = t->partial ? _mm256_loadu_ps(NNK__AY(i, j, 0)) : b##j##0;                                      \
        c##i##j##1 = t->partial ? _mm256_loadu_ps(NNK__AY(i, j, 1)) : b##j##1;                                      \
    }
#define NNK__A_FMA(i)                                                                                              \
    if (NW > (i)) {                                                                                                \
        __m256 s = _mm256_broadcast_ss(xt + (XP < 0 ? o##i : (i) * xp));                                           \
        c##i##00 = _mm256_fmadd_ps(s, w00, c##i##00);                                                              \
        c##i##01 = _mm256_fmadd_ps(s, w01, c##i##01);                                                              \
        if (NB > 1) {                                                                                              \
            c##i##10 = _mm256_fmadd_ps(s, w10, c##i##10);                                                          \
            c##i##11 = _mm256_fmadd_ps(s, w11, c##i##11);                                                          \
        }                                                                                                          \
    }
#define NNK__A_ST1(i, j, h)                                                                                        \
    {                                                                                                              \
        __m256 v = c##i##j##h;                                                                                     \
        if (t->relu1)                                                                                              \
            v = _mm256_max_ps(zero, v);                                                                            \
        if (t->res) {                                                                                              \
            v = _mm256_add_ps(v, _mm256_loadu_ps(t->res + (j) * t->yb + t->yp * (i) + 8 * (h)));                   \
            if (t->relu2)                                                                                          \
                v = _mm256_max_ps(zero, v);                                                                        \
        }                                                                                                          \
        _mm256_storeu_ps(NNK__AY(i, j, h), v);                                                                     \
    }
#define NNK__A_ST(i, j)                                                                                            \
    if (NW > (i) && NB > (j)) {                                                                                    \
        NNK__A_ST1(i, j, 0) NNK__A_ST1(i, j, 1)                                                                    \
    }
#define NNK__A_ALL(X, j) X(0, j) X(1, j) X(2, j) X(3, j) X(4, j) X(5, j) X(6, j) X(7, j)
static inline __attribute__((always_inline)) void nnk__conv_tile_avx2(int NW, int NB, int XP, float *restrict y,
                                                                      const float *restrict x, const float *restrict w,
                                                                      const nnk__conv_tile *t)
{
    const long xp = XP > 0 ? XP : t->xp;
    /* a gathered run's offsets, in registers (x86-64 has the 16 general ones for them) */
    const long o0 = XP < 0 ? t->xo[0] : 0, o1 = XP < 0 && NW > 1 ? t->xo[1] : 0, o2 = XP < 0 && NW > 2 ? t->xo[2] : 0;
    const long o3 = XP < 0 && NW > 3 ? t->xo[3] : 0, o4 = XP < 0 && NW > 4 ? t->xo[4] : 0, o5 = XP < 0 && NW > 5 ? t->xo[5] : 0;
    const long o6 = XP < 0 && NW > 6 ? t->xo[6] : 0, o7 = XP < 0 && NW > 7 ? t->xo[7] : 0;
    const __m256 zero = _mm256_setzero_ps();
    __m256 b00 = zero, b01 = zero, b10 = zero, b11 = zero;
    if (t->bias) {
        b00 = _mm256_loadu_ps(t->bias), b01 = _mm256_loadu_ps(t->bias + 8);
        if (NB > 1)
            b10 = _mm256_loadu_ps(t->bias + 16), b11 = _mm256_loadu_ps(t->bias + 24);
    }
    __m256 c000 = zero, c001 = zero, c010 = zero, c011 = zero, c100 = zero, c101 = zero, c110 = zero, c111 = zero;
    __m256 c200 = zero, c201 = zero, c210 = zero, c211 = zero, c300 = zero, c301 = zero, c310 = zero, c311 = zero;
    __m256 c400 = zero, c401 = zero, c410 = zero, c411 = zero, c500 = zero, c501 = zero, c510 = zero, c511 = zero;
    __m256 c600 = zero, c601 = zero, c610 = zero, c611 = zero, c700 = zero, c701 = zero, c710 = zero, c711 = zero;
    NNK__A_ALL(NNK__A_INIT, 0) NNK__A_ALL(NNK__A_INIT, 1)
    nnk__conv_tile_prefetch(NW, NB, t);
    const long taps = (long)t->kh * t->kw, pf = NW == NNK__NW ? t->pf : 0, wb = t->wb;
    const int ic = t->ic;
    /* the loops twice, with and without the prefetch, so that no test is left in the hot loop (clang -O2
       does not unswitch it: ResNet-50 7 % slower than at -O3) */
#define NNK__A_TAPS(PF)                                                                                            \
    for (int cb = 0; cb < t->cbs; cb++)                                                                            \
        for (int kh = 0; kh < t->kh; kh++)                                                                         \
            for (int kw = 0; kw < t->kw; kw++) {                                                                   \
                const float *xt = x + cb * t->xc + kh * t->xh + kw * t->xw;                                        \
                const float *wt = w + (cb * taps + kh * t->kw + kw) * ic * 16;                                     \
                for (int c = 0; c < ic; c++, xt++, wt += 16) {                                                     \
                    __m256 w00 = _mm256_loadu_ps(wt), w01 = _mm256_loadu_ps(wt + 8), w10 = zero, w11 = zero;       \
                    if (NB > 1)                                                                                    \
                        w10 = _mm256_loadu_ps(wt + wb), w11 = _mm256_loadu_ps(wt + wb + 8);                        \
                    if (PF) {                                                                                      \
                        NNK__PREFETCH(wt + pf);                                                                    \
                        if (NB > 1)                                                                                \
                            NNK__PREFETCH(wt + wb + pf);                                                           \
                    }                                                                                              \
                    NNK__A_FMA(0) NNK__A_FMA(1) NNK__A_FMA(2) NNK__A_FMA(3)                                        \
                    NNK__A_FMA(4) NNK__A_FMA(5) NNK__A_FMA(6) NNK__A_FMA(7)                                        \
                }                                                                                                  \
            }
    if (pf) {
        NNK__A_TAPS(1)
    } else {
        NNK__A_TAPS(0)
    }
#undef NNK__A_TAPS
    NNK__A_ALL(NNK__A_ST, 0) NNK__A_ALL(NNK__A_ST, 1)
}
#undef NNK__AY
#undef NNK__A_INIT
#undef NNK__A_FMA
#undef NNK__A_ST1
#undef NNK__A_ST
#undef NNK__A_ALL
#define NNK__TILE_RUN nnk__conv_tile_avx2
#else
#define NNK__TILE_RUN nnk__conv_tile_run
#endif

/* Whether a run of n pixels of (at least NB4 of the) nb blocks left goes to the tiles of NB4 blocks: a
   short run, or, on AVX-512, one that the tiles of 14 do not fill (17 = 14 + 2 + 1 pieces of 4 and 2
   accumulators, latency-bound; as 7 + 7 + 2 + 1 of 4 blocks, 28, 8 and 4). */
#if NNK_CONV_NCHWC_AVX512F
#define NNK__NB4_ON_REMAINDER 1
#else
#define NNK__NB4_ON_REMAINDER 0
#endif
static inline int nnk__use_nb4(int nb, long n)
{
    return (NNK__NB4 != NNK__NB || NNK__NW4 != NNK__NW) && nb >= NNK__NB4 && (n <= NNK__NW4 || (NNK__NB4_ON_REMAINDER && n % NNK__NW));
}

/* Whether a run of n pixels of the 4 (or more) blocks left goes to AVX-512's tiles of 6 pixels × 4 blocks (where
   nnk_conv2d_nchwc offers them: along a row, at a pixel step of 16 or 32), rather than to those of 14 × 2
   blocks: n a multiple of 6, or one that leaves 4 or 5 pixels (tiles of 16 and 20 accumulators), or so long
   that a narrow piece at its end costs little (2 or 1 pixels × 4 blocks, 8 or 4 accumulators, wait for their
   FMAs' latency). Per input channel the tile loads 4 weights and broadcasts 6 input values for 24 FMAs, where
   the tile of 14 × 2 loads 2 and broadcasts 14 for 28 (0.42 loads an FMA against 0.57), and a pixel's input
   is read once for 4 blocks instead of once for each pair. The loads are what another core, or this core's
   other thread on the host, takes from a tile: on this Emerald Rapids Xeon, two copies of the bare tiles at
   once ran 6 × 4 at 118-159 GFLOP/s and 14 × 2 at 97-146, alone both at 165-178. Alone and warm (200
   alternations, medians): 1×1 256→64 on 56×56 0.71 → 0.63 ms, 64→256 with its residual 0.82 → 0.75, 128→512
   on 28×28 0.72 → 0.67, 1×1 at stride 2 256→512 from 56×56 1.71 → 1.55 and 512→1024 from 28×28 1.68 → 1.54;
   3×3 on rows of 28 and 56 no faster. In ResNet-50 with direct convolutions, 1 thread, 10 interleaved rounds:
   74.3 → 69.5 ms (medians) while the host was busy, 59.7 and 59.7 while it was not. Not for Winograd's
   products, whose runs of 14 and 28 tiles it made 4-15 % slower. */
static inline int nnk__use_six(long n) { return n >= 6 && (n % 6 == 0 || n % 6 >= 4 || n >= 96); }

typedef void nnk__tile_fn(float *restrict y, const float *restrict x, const float *restrict w, const nnk__conv_tile *t);

/* The pieces of a run that no full tile covers, 8, 4, 2 or 1 pixels wide (so that any remainder is at most
   four calls, and few instances are compiled). */
#define NNK__PIECES(NAME, NB, XP)                                                                                  \
    static __attribute__((noinline)) void NAME##_8(float *restrict y, const float *restrict x, const float *restrict w, \
                                                   const nnk__conv_tile *t) { NNK__TILE_RUN(8, NB, XP, y, x, w, t); } \
    static __attribute__((noinline)) void NAME##_4(float *restrict y, const float *restrict x, const float *restrict w, \
                                                   const nnk__conv_tile *t) { NNK__TILE_RUN(4, NB, XP, y, x, w, t); } \
    static __attribute__((noinline)) void NAME##_2(float *restrict y, const float *restrict x, const float *restrict w, \
                                                   const nnk__conv_tile *t) { NNK__TILE_RUN(2, NB, XP, y, x, w, t); } \
    static __attribute__((noinline)) void NAME##_1(float *restrict y, const float *restrict x, const float *restrict w, \
                                                   const nnk__conv_tile *t) { NNK__TILE_RUN(1, NB, XP, y, x, w, t); } \
    static nnk__tile_fn *const NAME[4] = {NAME##_8, NAME##_4, NAME##_2, NAME##_1};

/* A full tile as a function, with the pixel step XP a constant (0: t->xp). */
#define NNK__FULL(NAME, NW, NB, XP)                                                                                \
    static __attribute__((noinline)) void NAME(float *restrict y, const float *restrict x, const float *restrict w,   \
                                               const nnk__conv_tile *t) { NNK__TILE_RUN(NW, NB, XP, y, x, w, t); }

#if NNK_CONV_NCHWC_AVX512F
/* The two full tiles of AVX-512 written out, with named accumulators, so that neither compiler (at -O2
   too) spills one or computes a pointer per pixel: 14 pixels × 2 blocks and 7 pixels × 4 blocks. */
#define NNK__Y(i, j) _mm512_loadu_ps(y + (j) * t->yb + t->yp * (i))
#define NNK__Z2(i) __m512 c##i##_0 = t->partial ? NNK__Y(i, 0) : b0, c##i##_1 = t->partial ? NNK__Y(i, 1) : b1;
#define NNK__Z4(i) __m512 c##i##_0 = t->partial ? NNK__Y(i, 0) : b0, c##i##_1 = t->partial ? NNK__Y(i, 1) : b1, \
                          c##i##_2 = t->partial ? NNK__Y(i, 2) : b2, c##i##_3 = t->partial ? NNK__Y(i, 3) : b3;
#define NNK__F2(i)                                                                                                 \
    { __m512 s = _mm512_set1_ps(xt[rows && (i) >= 7 ? xr + ((i) - 7) * xp : (i) * xp]);                            \
      c##i##_0 = _mm512_fmadd_ps(s, w0, c##i##_0); c##i##_1 = _mm512_fmadd_ps(s, w1, c##i##_1); }
#define NNK__F4(i)                                                                                                 \
    { __m512 s = _mm512_set1_ps(xt[(i) * xp]); c##i##_0 = _mm512_fmadd_ps(s, w0, c##i##_0);                        \
      c##i##_1 = _mm512_fmadd_ps(s, w1, c##i##_1); c##i##_2 = _mm512_fmadd_ps(s, w2, c##i##_2);                    \
      c##i##_3 = _mm512_fmadd_ps(s, w3, c##i##_3); }
#define NNK__ST(i, j)                                                                                              \
    { __m512 v = c##i##_##j;                                                                                      \
      if (t->relu1) v = _mm512_max_ps(_mm512_setzero_ps(), v);                                                    \
      if (t->res) { v = _mm512_add_ps(v, _mm512_loadu_ps(t->res + (j) * t->yb + t->yp * (i)));                       \
                    if (t->relu2) v = _mm512_max_ps(_mm512_setzero_ps(), v); }                                    \
      _mm512_storeu_ps(y + (j) * t->yb + t->yp * (i), v); }
#define NNK__ST2(i) NNK__ST(i, 0) NNK__ST(i, 1)
#define NNK__PF(j) _mm_prefetch((const char *)(wt + (j) * t->wb + pf), _MM_HINT_T1);   /* block j's weight at t->pf, into L2 */
#define NNK__ST4(i) NNK__ST(i, 0) NNK__ST(i, 1) NNK__ST(i, 2) NNK__ST(i, 3)
#define NNK__TAPS(BODY)                                                                                            \
    const long taps = (long)t->kh * t->kw;                                                                         \
    for (int cb = 0; cb < t->cbs; cb++)                                                                            \
        for (int kh = 0; kh < t->kh; kh++)                                                                         \
            for (int kw = 0; kw < t->kw; kw++) {                                                                   \
                const float *xt = x + cb * t->xc + kh * t->xh + kw * t->xw;                                        \
                const float *wt = w + (cb * taps + kh * t->kw + kw) * t->ic * 16;                                  \
                for (int c = 0; c < t->ic; c++, xt++, wt += 16) { BODY }                                           \
            }
#define NNK__FULL14x2(NAME, XP, ROWS)                                                                              \
    static __attribute__((noinline)) void NAME(float *restrict y, const float *restrict x, const float *restrict w,   \
                                               const nnk__conv_tile *t)                                            \
    {                                                                                                              \
        const long xp = XP ? XP : t->xp, xr = ROWS ? t->xr : 0;                                                    \
        const int rows = ROWS;                                                                                     \
        __m512 b0 = t->bias ? _mm512_loadu_ps(t->bias) : _mm512_setzero_ps();                                      \
        __m512 b1 = t->bias ? _mm512_loadu_ps(t->bias + 16) : _mm512_setzero_ps();                                 \
        NNK__Z2(0) NNK__Z2(1) NNK__Z2(2) NNK__Z2(3) NNK__Z2(4) NNK__Z2(5) NNK__Z2(6)                               \
        NNK__Z2(7) NNK__Z2(8) NNK__Z2(9) NNK__Z2(10) NNK__Z2(11) NNK__Z2(12) NNK__Z2(13)                           \
        nnk__conv_tile_prefetch(14, 2, t);                                                                         \
        const long pf = t->pf;                                                                                     \
        NNK__TAPS(__m512 w0 = _mm512_loadu_ps(wt); __m512 w1 = _mm512_loadu_ps(wt + t->wb);                        \
                  if (pf) { NNK__PF(0) NNK__PF(1) }                                                                \
                  NNK__F2(0) NNK__F2(1) NNK__F2(2) NNK__F2(3) NNK__F2(4) NNK__F2(5) NNK__F2(6)                     \
                  NNK__F2(7) NNK__F2(8) NNK__F2(9) NNK__F2(10) NNK__F2(11) NNK__F2(12) NNK__F2(13))                \
        NNK__ST2(0) NNK__ST2(1) NNK__ST2(2) NNK__ST2(3) NNK__ST2(4) NNK__ST2(5) NNK__ST2(6)                        \
        NNK__ST2(7) NNK__ST2(8) NNK__ST2(9) NNK__ST2(10) NNK__ST2(11) NNK__ST2(12) NNK__ST2(13)                    \
    }
/* PIX pixels (6 or 7) × 4 blocks (NNK__P6 and NNK__P7 list the pixels): 7 for rows of 7 and what the tiles of
   14 leave, 6 for the runs of nnk__use_six */
#define NNK__P6(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define NNK__P7(X) NNK__P6(X) X(6)
#define NNK__FULLx4(NAME, XP, PIX)                                                                                 \
    static __attribute__((noinline)) void NAME(float *restrict y, const float *restrict x, const float *restrict w,   \
                                               const nnk__conv_tile *t)                                            \
    {                                                                                                              \
        const long xp = XP ? XP : t->xp;                                                                           \
        __m512 b0 = t->bias ? _mm512_loadu_ps(t->bias) : _mm512_setzero_ps();                                      \
        __m512 b1 = t->bias ? _mm512_loadu_ps(t->bias + 16) : _mm512_setzero_ps();                                 \
        __m512 b2 = t->bias ? _mm512_loadu_ps(t->bias + 32) : _mm512_setzero_ps();                                 \
        __m512 b3 = t->bias ? _mm512_loadu_ps(t->bias + 48) : _mm512_setzero_ps();                                 \
        NNK__P##PIX(NNK__Z4)                                                                                       \
        nnk__conv_tile_prefetch(PIX, 4, t);                                                                        \
        const long pf = t->pf;                                                                                     \
        NNK__TAPS(__m512 w0 = _mm512_loadu_ps(wt); __m512 w1 = _mm512_loadu_ps(wt + t->wb);                        \
                  if (pf) { NNK__PF(0) NNK__PF(1) NNK__PF(2) NNK__PF(3) }                                          \
                  __m512 w2 = _mm512_loadu_ps(wt + 2 * t->wb); __m512 w3 = _mm512_loadu_ps(wt + 3 * t->wb);        \
                  NNK__P##PIX(NNK__F4))                                                                            \
        NNK__P##PIX(NNK__ST4)                                                                                      \
    }
NNK__FULL14x2(nnk__full_nb_16, 16, 0)
NNK__FULL14x2(nnk__full_nb_32, 32, 0)
NNK__FULL14x2(nnk__full_nb_2, 2, 0)
NNK__FULL14x2(nnk__full_nb_0, 0, 0)
/* Two rows of 7 pixels (the 7×7 planes of ResNet's last stage), pixel 7 at t->xr from pixel 0: 14 × 2
   instead of the 7 × 4 tiles of one row, whose 28 accumulators and 4 weights leave the compiler one
   register short. */
NNK__FULL14x2(nnk__full_rows_16, 16, 1)
NNK__FULL14x2(nnk__full_rows_32, 32, 1)
NNK__FULLx4(nnk__full_nb4_16, 16, 7)
NNK__FULLx4(nnk__full_nb4_32, 32, 7)
NNK__FULLx4(nnk__full_nb4_2, 2, 7)
NNK__FULLx4(nnk__full_nb4_0, 0, 7)
NNK__FULLx4(nnk__full_6x4_16, 16, 6)
NNK__FULLx4(nnk__full_6x4_32, 32, 6)
#undef NNK__Y
#undef NNK__Z2
#undef NNK__Z4
#undef NNK__F2
#undef NNK__F4
#undef NNK__ST
#undef NNK__ST2
#undef NNK__PF
#undef NNK__ST4
#undef NNK__TAPS
#undef NNK__FULL14x2
#undef NNK__FULLx4
#undef NNK__P6
#undef NNK__P7
#else
NNK__FULL(nnk__full_nb_16, NNK__NW, NNK__NB, 16)
NNK__FULL(nnk__full_nb_32, NNK__NW, NNK__NB, 32)
NNK__FULL(nnk__full_nb_2, NNK__NW, NNK__NB, 2)
NNK__FULL(nnk__full_nb_0, NNK__NW, NNK__NB, 0)
NNK__FULL(nnk__full_nb4_16, NNK__NW4, NNK__NB4, 16)
NNK__FULL(nnk__full_nb4_32, NNK__NW4, NNK__NB4, 32)
NNK__FULL(nnk__full_nb4_2, NNK__NW4, NNK__NB4, 2)
NNK__FULL(nnk__full_nb4_0, NNK__NW4, NNK__NB4, 0)
#endif
NNK__FULL(nnk__full_1, NNK__NW, 1, 0)
NNK__PIECES(nnk__pieces_nb, NNK__NB, 0)
NNK__PIECES(nnk__pieces_nb4, NNK__NB4, 0)
NNK__PIECES(nnk__pieces_1, 1, 0)
NNK__PIECES(nnk__pieces_nb_16, NNK__NB, 16)   /* blocked input at stride 1, and Winograd's products */
NNK__PIECES(nnk__pieces_nb4_16, NNK__NB4, 16)
#if NNK__GATHER
NNK__FULL(nnk__full_nb_g, NNK__NW, NNK__NB, -1)   /* gathered runs: pixel i at x + t->xo[i] */
NNK__FULL(nnk__full_nb4_g, NNK__NW4, NNK__NB4, -1)
NNK__FULL(nnk__full_1_g, NNK__NW, 1, -1)
NNK__PIECES(nnk__pieces_nb_g, NNK__NB, -1)
NNK__PIECES(nnk__pieces_nb4_g, NNK__NB4, -1)
NNK__PIECES(nnk__pieces_1_g, 1, -1)
#endif
#undef NNK__FULL
#undef NNK__PIECES

/* A run of n output pixels of NB blocks: full tiles of nw pixels, then pieces of 8, 4, 2, 1. The pixels
   are t->xp apart in x, or, in a gathered run, at x + t->xo[i]. */
static inline void nnk__conv_run(nnk__tile_fn *full, int nw, nnk__tile_fn *const *piece, float *y, const float *x,
                                 const float *w, nnk__conv_tile *t, int n)
{
    const float *res = t->res;
    const long *xo = t->xo;
    for (int p = 0; p < n;) {
        int left = n - p, k = 0;
        nnk__tile_fn *f = full;
        if (left < nw) {
            f = piece[3], k = 1;
            for (int i = 0, width = 8; i < 4; i++, width /= 2)
                if (width <= nw && left >= width) {
                    f = piece[i], k = width;
                    break;
                }
        } else
            k = nw;
        t->res = res ? res + t->yp * p : NULL;
        t->xo = xo ? xo + p : NULL;
        f(y + t->yp * p, xo ? x : x + (long)p * t->xp, w, t);
        p += k;
    }
    t->res = res;
    t->xo = xo;
}

static inline nnk__tile_fn *nnk__pick(long xp, nnk__tile_fn *f16, nnk__tile_fn *f32, nnk__tile_fn *f2, nnk__tile_fn *f0)
{
    return xp == 16 ? f16 : xp == 32 ? f32 : xp == 2 ? f2 : f0;
}

/* The tiles for a pixel step xp (-1: a gathered run): full ones of NB, NB4 and 1 blocks (a constant step
   where one is compiled), and the pieces of each. */
typedef struct {
    nnk__tile_fn *full, *full4, *full1;
    nnk__tile_fn *const *pieces, *const *pieces4, *const *pieces1;
    nnk__tile_fn *six;   /* AVX-512, pixel step 16 or 32: 6 pixels × 4 blocks (nnk__use_six), or NULL */
} nnk__tiles;

static inline nnk__tiles nnk__tiles_for(long xp)
{
#if NNK__GATHER
    if (xp < 0) {
        nnk__tiles g = {nnk__full_nb_g, nnk__full_nb4_g, nnk__full_1_g, nnk__pieces_nb_g, nnk__pieces_nb4_g, nnk__pieces_1_g, NULL};
        return g;
    }
#endif
    nnk__tiles k = {nnk__pick(xp, nnk__full_nb_16, nnk__full_nb_32, nnk__full_nb_2, nnk__full_nb_0),
                    nnk__pick(xp, nnk__full_nb4_16, nnk__full_nb4_32, nnk__full_nb4_2, nnk__full_nb4_0), nnk__full_1,
                    xp == 16 ? nnk__pieces_nb_16 : nnk__pieces_nb, xp == 16 ? nnk__pieces_nb4_16 : nnk__pieces_nb4,
                    nnk__pieces_1, NULL};
    return k;
}

/* ---------------------------------------------------------------- groups within a block, AVX-512 and AVX2 */

/* A 3×3 convolution whose groups lie within a block, G = 4 or 8 channels in and out a group (ResNeXt-50's
   first two stages: 32 groups of 4 and of 8). The tiles above multiply every output lane by all 16
   channels of its input block, 16 / G times the products it needs, the others by a weight of 0. Here an
   output vector takes only its groups' G channels: for channel i of a group, the input vector is spread so
   that every lane holds channel i of its own group (G = 4: a permute within each 128-bit lane; G = 8: a
   broadcast from memory into each half), and multiplied by the vector of weight i of each lane. An input
   pixel is spread once for the up to 3 taps of a kernel row that read it. The weights of a block are
   gathered from the packed 16×16 ones for each unit. Every sum is the same (bias, then kh, kw and the
   group's channels in order, one FMA at a time) less the products with 0, so the bits are the other
   tiles' but where those products were not 0 (an infinite or NaN input of another group). One warm
   layer, an Emerald Rapids Xeon core (clang -O2, fastest of 200 runs): 128 channels on 56×56 in groups
   of 4, 0.90 → 0.27 ms on AVX-512 and 1.54 → 0.49 on AVX2; 256 on 28×28 in groups of 8, 0.46 → 0.32 and
   0.73 → 0.44; the same from 56×56 at stride 2, 0.56 → 0.40 and 0.76 → 0.47. */
typedef void nnk__sg_fn(float *restrict y, const float *restrict x, const float *restrict w, const float *b, const float *res,
                        int relu1, int relu2, const nnk_conv_params *p, int ob0, int nb, long at, long n);

#if (NNK_CONV_NCHWC_AVX512F || NNK_CONV_NCHWC_AVX2_FMA) && defined(NNK_CONV_SMALL_GROUPS)
#define NNK__SMALL_GROUPS 1
/* Per ISA: the tile's width, the spread input (lane l holds channel i of lane l's group: lane l / G * G + i
   of the block of 16 at x), and acc += a · w of two vectors. */
#if NNK_CONV_NCHWC_AVX512F
enum { NNK__SG_NW = 14 };   /* pixels a tile: 14 accumulators, one spread input and its weights */
static inline __attribute__((always_inline)) nnk__v16 nnk__sg_spread(int G, const float *x, int i)
{
    if (G == 4)   /* within each 128-bit lane */
        return _mm512_permutevar_ps(_mm512_loadu_ps(x), _mm512_set1_epi32(i));
    return _mm512_mask_broadcastss_ps(_mm512_set1_ps(x[i]), 0xFF00, _mm_load_ss(x + 8 + i));   /* two halves, from memory */
}
#define NNK__V_FMAV(acc, a, w) ((acc) = _mm512_fmadd_ps(a, w, acc))
#else
enum { NNK__SG_NW = 6 };   /* 12 of the 16 ymm, and the two halves of a spread input */
/* (a block is two halves of 8 lanes: groups of 8 are the halves, a broadcast from memory each; groups of 4
   lie within each 128-bit lane, as on AVX-512) */
static inline __attribute__((always_inline)) nnk__v16 nnk__sg_spread(int G, const float *x, int i)
{
    nnk__v16 v = {G == 8 ? _mm256_broadcast_ss(x + i) : _mm256_permutevar_ps(_mm256_loadu_ps(x), _mm256_set1_epi32(i)),
                  G == 8 ? _mm256_broadcast_ss(x + 8 + i) : _mm256_permutevar_ps(_mm256_loadu_ps(x + 8), _mm256_set1_epi32(i))};
    return v;
}
static inline nnk__v16 nnk__v_fmav(nnk__v16 acc, nnk__v16 a, nnk__v16 w)
{
    nnk__v16 v = {_mm256_fmadd_ps(a.lo, w.lo, acc.lo), _mm256_fmadd_ps(a.hi, w.hi, acc.hi)};
    return v;
}
#define NNK__V_FMAV(acc, a, w) ((acc) = nnk__v_fmav(acc, a, w))
#endif

/* An output vector after its sums: relu, the residual, relu, as the tiles above apply them. */
static inline __attribute__((always_inline)) void nnk__sg_store(float *y, nnk__v16 v, const float *res, int relu1, int relu2)
{
    if (relu1)
        NNK__V_RELU_IN(v);
    if (res) {
        v = NNK__V_ADD(v, NNK__V_LOAD(res));
        if (relu2)
            NNK__V_RELU_IN(v);
    }
    NNK__V_STORE(y, v);
}

/* Input pixel j of a kernel row (of the S·(NW - 1) + 3 it has): spread once for each channel i of a group,
   for the taps kw by which output pixel (j - kw) / S reads it. */
#define NNK__SG_J(j)                                                                                               \
    if ((j) < S * (NW - 1) + 3) {                                                                                  \
        NNK__UNROLL16 for (int i = 0; i < G; i++) {                                                                \
            const nnk__v16 xs = nnk__sg_spread(G, xr + NNK_CB * (j), i);                                           \
            NNK__UNROLL16 for (int kw = 0; kw < 3; kw++) if ((j) >= kw && ((j) - kw) % S == 0 && ((j) - kw) / S < NW) \
                NNK__V_FMAV(acc[((j) - kw) / S], xs, NNK__V_LOAD(wr + (kw * G + i) * NNK_CB));                      \
        }                                                                                                          \
    }

/* NW output pixels of one block at stride S: x at the first pixel's input for tap (0, 0), xh floats between
   kernel rows, w the block's weights [3][3][G][16] (weight i of each lane), y and res at the first output
   pixel. NW, G and S are constants wherever it is inlined. */
static inline __attribute__((always_inline)) void nnk__sg_tile(int NW, int G, int S, float *restrict y, const float *restrict x,
                                                               long xh, const float *restrict w, const float *bias,
                                                               const float *res, int relu1, int relu2)
{
    nnk__v16 acc[NNK__SG_NW];
    const nnk__v16 b = bias ? NNK__V_LOAD(bias) : NNK__V_ZERO();
NNK__UNROLL16
    for (int o = 0; o < NW; o++)
        acc[o] = b;
NNK__NOUNROLL
    for (int kh = 0; kh < 3; kh++) {
        const float *xr = x + kh * xh, *wr = w + kh * 3 * G * NNK_CB;
        /* the row's input pixels j, written out so that every index of acc is a constant (clang does not
           unroll a loop over them) */
        NNK__SG_J(0) NNK__SG_J(1) NNK__SG_J(2) NNK__SG_J(3) NNK__SG_J(4) NNK__SG_J(5) NNK__SG_J(6) NNK__SG_J(7)
        NNK__SG_J(8) NNK__SG_J(9) NNK__SG_J(10) NNK__SG_J(11) NNK__SG_J(12) NNK__SG_J(13) NNK__SG_J(14) NNK__SG_J(15)
        NNK__SG_J(16) NNK__SG_J(17) NNK__SG_J(18) NNK__SG_J(19) NNK__SG_J(20) NNK__SG_J(21) NNK__SG_J(22) NNK__SG_J(23)
        NNK__SG_J(24) NNK__SG_J(25) NNK__SG_J(26) NNK__SG_J(27) NNK__SG_J(28)
    }
NNK__UNROLL16
    for (int o = 0; o < NW; o++)
        nnk__sg_store(y + NNK_CB * o, acc[o], res ? res + NNK_CB * o : NULL, relu1, relu2);
}

/* The n < NNK__SG_NW pixels left of a row, one at a time: a chain of 9·G FMAs each, but a loop that compiles
   small (each full tile is written out: a second size of them cost gcc 1.5 s a file that includes this). */
static inline __attribute__((always_inline)) void nnk__sg_rest(int G, int S, long n, float *restrict y, const float *restrict x,
                                                               long xh, const float *restrict w, const float *bias,
                                                               const float *res, int relu1, int relu2)
{
    for (long o = 0; o < n; o++) {
        nnk__v16 acc = bias ? NNK__V_LOAD(bias) : NNK__V_ZERO();
        for (int kh = 0; kh < 3; kh++)
            for (int kw = 0; kw < 3; kw++) {
                const float *xt = x + o * S * NNK_CB + kh * xh + kw * NNK_CB, *wt = w + (kh * 3 + kw) * G * NNK_CB;
NNK__NOUNROLL
                for (int i = 0; i < G; i++)
                    NNK__V_FMAV(acc, nnk__sg_spread(G, xt, i), NNK__V_LOAD(wt + i * NNK_CB));
            }
        nnk__sg_store(y + o * NNK_CB, acc, res ? res + o * NNK_CB : NULL, relu1, relu2);
    }
}

/* Output blocks [ob0, ob0 + nb) and pixels [at, at + n) of one image: y, x, b and res the image's and the
   layer's whole tensors (res NULL, or added in registers), w packed by nnk_pack_conv_nchwc (16×16 a tap, 0
   between groups), whose weights of a block are first gathered into [3][3][G][16]. */
static inline __attribute__((always_inline)) void nnk__sg_unit(int G, int S, float *restrict y, const float *restrict x,
                                                               const float *restrict w, const float *b, const float *res,
                                                               int relu1, int relu2, const nnk_conv_params *p, int ob0,
                                                               int nb, long at, long n)
{
    const long plane_in = (long)p->H * p->W, plane_out = (long)p->OH * p->OW, xh = (long)p->dh * p->W * NNK_CB;
    float ws[9 * 8 * NNK_CB];
    for (int ob = ob0; ob < ob0 + nb; ob++) {
        const float *pk = w + (long)ob * 9 * NNK_CB * NNK_CB, *xb = x + ob * plane_in * NNK_CB, *bb = b ? b + ob * NNK_CB : NULL;
        for (int t = 0; t < 9; t++)
            for (int i = 0; i < G; i++)
                for (int l = 0; l < NNK_CB; l++)
                    ws[(t * G + i) * NNK_CB + l] = pk[(t * NNK_CB + l / G * G + i) * NNK_CB + l];
        for (long q = at, len; q < at + n; q += len) {   /* the unit's pieces of rows */
            const long oh = q / p->OW, ow = q % p->OW, yo = ob * plane_out * NNK_CB + q * NNK_CB;
            len = p->OW - ow < at + n - q ? p->OW - ow : at + n - q;
            const float *xq = xb + (oh * p->sh * p->W + ow * S) * NNK_CB;
            float *yq = y + yo;
            const float *rq = res ? res + yo : NULL;
            long o = 0;
            for (; o + NNK__SG_NW <= len; o += NNK__SG_NW)
                nnk__sg_tile(NNK__SG_NW, G, S, yq + o * NNK_CB, xq + o * S * NNK_CB, xh, ws, bb, rq ? rq + o * NNK_CB : NULL, relu1, relu2);
            if (o < len)
                nnk__sg_rest(G, S, len - o, yq + o * NNK_CB, xq + o * S * NNK_CB, xh, ws, bb, rq ? rq + o * NNK_CB : NULL, relu1, relu2);
        }
    }
}

#define NNK__SG(G, S)                                                                                              \
    static __attribute__((noinline, unused)) void nnk__sg_##G##_##S(float *restrict y, const float *restrict x,     \
                                                                     const float *restrict w, const float *b,      \
                                                                     const float *res, int relu1, int relu2,       \
                                                                     const nnk_conv_params *p, int ob0, int nb,    \
                                                                     long at, long n)                              \
    {                                                                                                              \
        nnk__sg_unit(G, S, y, x, w, b, res, relu1, relu2, p, ob0, nb, at, n);                                      \
    }
NNK__SG(4, 1)
NNK__SG(4, 2)
NNK__SG(8, 1)
NNK__SG(8, 2)
#undef NNK__SG
#undef NNK__SG_J
#undef NNK__V_FMAV
#endif

/* Whether a convolution is one whose groups lie within a block that such tiles compute, on any ISA: G = 4
   or 8 in and out, 3×3, the columns of its window next to each other, stride 1 or 2 along a row. nnc
   defines NNK_CONV_SMALL_GROUPS in a model's C where one of its layers is (their tiles, written out,
   take gcc 1.5 s more to compile, and most models have none). */
static inline int nnk_conv_nchwc_small_groups(const nnk_conv_params *p, int x_plain)
{
    int cin = p->groups > 0 ? p->C / p->groups : 0, cout = p->groups > 0 ? p->O / p->groups : 0;
    return !x_plain && p->groups > 1 && cin == cout && (cin == 4 || cin == 8) && p->kh == 3 && p->kw == 3 && p->dw == 1 &&
           (p->sw == 1 || p->sw == 2);
}

/* The kernel of such a convolution on this ISA, or NULL: the tiles above compute it. */
static inline nnk__sg_fn *nnk__small_groups(const nnk_conv_params *p, int x_plain)
{
#ifdef NNK__SMALL_GROUPS
    if (nnk_conv_nchwc_small_groups(p, x_plain))
        return p->C / p->groups == 4 ? (p->sw == 1 ? nnk__sg_4_1 : nnk__sg_4_2) : (p->sw == 1 ? nnk__sg_8_1 : nnk__sg_8_2);
#else
    (void)p, (void)x_plain;
#endif
    return NULL;
}

/* ---------------------------------------------------------------- the layer */

/* The input blocks a block of output channels reads: output block ob reads the nib blocks from
   nnk__conv_first_input(p, ob), and `share` output blocks in a row (from a multiple of share) read the same
   ones, so that a tile of several blocks must lie within one share. Dense (groups = 1): all C/16, shared
   by all O/16. Plain input (a block is one channel): groups must be 1. */
typedef struct {
    int nib, share;
} nnk__conv_inputs;

static inline nnk__conv_inputs nnk__conv_inputs_of(const nnk_conv_params *p, int x_plain)
{
    int cin = p->C / p->groups, cout = p->O / p->groups;
    nnk__conv_inputs in = {x_plain ? p->C : cin >= NNK_CB ? cin / NNK_CB : 1, cout >= NNK_CB ? cout / NNK_CB : 1};
    return in;
}

static inline int nnk__conv_first_input(const nnk_conv_params *p, int ob)
{
    int cin = p->C / p->groups, cout = p->O / p->groups;
    return (int)((long)ob * NNK_CB / cout * cin / NNK_CB);
}

/* Output blocks [ob0, ob0 + nb) of a run of n pixels: tiles of NNK__NB4, NNK__NB or 1 blocks, none across a
   share of input blocks (`share` blocks from a multiple of it read the same ones). y, w, bias and res are
   block ob0's (the next blocks t->yb, t->wb and 16 further); block ob reads x + nnk__conv_first_input(first,
   ob) · t->xc, or x itself when first is NULL (every block the same input). */
static inline void nnk__conv_blocks(const nnk__tiles *k, float *y, const float *x, const float *w, const float *bias,
                                    const float *res, nnk__conv_tile *t, const nnk_conv_params *first, int ob0, int nb,
                                    int share, int n)
{
    for (int j = 0; j < nb;) {
        int ob = ob0 + j, left = nb - j, span = share - ob % share;   /* blocks left, of this share */
        float *yo = y + j * t->yb;
        const float *xo = x + (first ? nnk__conv_first_input(first, ob) * t->xc : 0), *wo = w + j * t->wb;
        t->bias = bias ? bias + j * NNK_CB : NULL;
        t->res = res ? res + j * t->yb : NULL;
        left = left < span ? left : span;
        if (k->six && left >= NNK__NB4 && nnk__use_six(n)) {
            nnk__conv_run(k->six, 6, k->pieces4, yo, xo, wo, t, n);
            j += NNK__NB4;
        } else if (nnk__use_nb4(left, n)) {
            /* (AVX-512: a run longer than the tiles of 14 starts with them, two blocks at a time, and leaves
               its remainder to the tiles of 4 blocks: 14 × 2 runs at about 205 GFLOP/s of a warm Sapphire
               Rapids core, 7 × 4 at 150, whose 28 accumulators and 4 weights leave the compiler one
               register short) */
            const int head = NNK__NB4_ON_REMAINDER && !t->xo && n > NNK__NW ? n - n % NNK__NW : 0;
            const float *b0 = t->bias, *r0 = t->res;
            if (head)
                for (int h = 0; h < NNK__NB4; h += NNK__NB) {
                    t->bias = b0 ? b0 + h * NNK_CB : NULL;
                    t->res = r0 ? r0 + h * t->yb : NULL;
                    nnk__conv_run(k->full, NNK__NW, k->pieces, yo + h * t->yb, xo, wo + h * t->wb, t, head);
                }
            t->bias = b0;
            t->res = r0 ? r0 + t->yp * head : NULL;
            nnk__conv_run(k->full4, NNK__NW4, k->pieces4, yo + t->yp * head, xo + t->xp * head, wo, t, n - head);
            t->res = r0;
            j += NNK__NB4;
        } else if (left >= NNK__NB) {
            nnk__conv_run(k->full, NNK__NW, k->pieces, yo, xo, wo, t, n);
            j += NNK__NB;
        } else {
            nnk__conv_run(k->full1, NNK__NW, k->pieces1, yo, xo, wo, t, n);
            j += 1;
        }
    }
}

/* Whether nnk_conv2d_nchwc computes a convolution of these groups (C, O the layer's channels): 1, or groups
   that fill whole blocks, or groups within a block with as many input as output channels. */
static inline int nnk_conv_nchwc_groups_ok(int C, int O, int groups)
{
    if (groups < 1 || C % groups || O % groups || C % NNK_CB || O % NNK_CB)
        return groups == 1;
    int cin = C / groups, cout = O / groups;
    return groups == 1 || (cin % NNK_CB == 0 && cout % NNK_CB == 0) || (cin == cout && NNK_CB % cout == 0);
}

/* The units of work of a conv2d in the blocked layout (p describes it, with the input already padded:
   p->H, p->W are the padded plane, p->pt = p->pl = 0), per image. */
static inline int nnk__conv_flat(const nnk_conv_params *p)
{
    return p->kh == 1 && p->kw == 1 && p->sh == 1 && p->sw == 1 && p->OH == p->H && p->OW == p->W;
}
/* The pixels of a run: the plane in runs of NNK_CONV_RUN or fewer, of equal length but the last, and as
   many as NNK_CONV_MIN_UNITS asks for (the same on every ISA: generated code counts the units). */
static inline long nnk__conv_groups(const nnk_conv_params *p) { return (p->O / NNK_CB + NNK_CONV_GROUP - 1) / NNK_CONV_GROUP; }
static inline long nnk__conv_run_len(const nnk_conv_params *p)
{
    long groups = nnk__conv_groups(p), plane = (long)p->OH * p->OW;
    long runs = (plane + NNK_CONV_RUN - 1) / NNK_CONV_RUN, wanted = (NNK_CONV_MIN_UNITS + groups - 1) / groups;
    runs = runs > wanted ? runs : wanted < plane ? wanted : plane > 0 ? plane : 1;
    return plane > 0 ? (plane + runs - 1) / runs : 1;
}
static inline long nnk_conv_nchwc_units(const nnk_conv_params *p)
{
    long len = nnk__conv_run_len(p);
    return nnk__conv_groups(p) * (((long)p->OH * p->OW + len - 1) / len);
}

/* Units [u0, u1) of conv2d y = act2(act1(conv(x, w) + b) + res), one image (unit u: the run u / groups
   of output pixels, of the group of blocks u % groups, so that a thread's share is mostly whole runs, and
   one 1×1 convolution's share of the plane is the next one's; 2 threads on Zen 3: ResNet-50 4 % faster
   than by groups of blocks first): x blocked [C/16][H][W][16]
   (or plain [C][H][W] when x_plain), y and res blocked [O/16][OH][OW][16], w packed by
   nnk_pack_conv_nchwc. p->H and p->W are x's (padded) plane; its padding must be 0. */
static inline void nnk_conv2d_nchwc(float *restrict y, const float *restrict x, int x_plain, const float *restrict w,
                                    const float *restrict b, const float *restrict res, int act1, int act2,
                                    const nnk_conv_params *p, long u0, long u1)
{
    const int ob_all = p->O / NNK_CB, flat = nnk__conv_flat(p);
    const long plane_in = (long)p->H * p->W, plane_out = (long)p->OH * p->OW;
    const int ic = x_plain ? 1 : NNK_CB;
    const nnk__conv_inputs in = nnk__conv_inputs_of(p, x_plain);
    const long pix = x_plain ? 1 : NNK_CB;   /* floats between neighbouring input pixels */
    const int in_regs = nnk__fusable(1, res, act1, act2);
    nnk__conv_tile t = {
        .xp = pix * p->sw, .xc = plane_in * ic, .xh = (long)p->dh * p->W * pix, .xw = (long)p->dw * pix,
        .wb = (long)in.nib * p->kh * p->kw * ic * NNK_CB, .yb = plane_out * NNK_CB, .yp = NNK_CB,
        .cbs = in.nib, .kh = p->kh, .kw = p->kw, .ic = ic,
        .relu1 = in_regs && act1 == NNK_ACT_RELU, .relu2 = in_regs && act2 == NNK_ACT_RELU,
    };
    /* A flat plane is one long row. A run of pixels is cut into rows, or, where the tiles can gather and
       a row would end in a narrow piece of a tile that is a large part of it (7 and 14 on AVX2), gathered
       across its rows: a gathered tile runs 2-4 % slower than one along a row (on Zen 3), a tile of 1 or 2
       pixels at a quarter or half the speed. */
    const int gather = NNK__GATHER && !flat && p->OW % NNK__NW && p->OW < 3 * NNK__NW;
    nnk__tiles k = nnk__tiles_for(gather ? -1 : t.xp);
#if NNK_CONV_NCHWC_AVX512F
    k.six = t.xp == 16 ? nnk__full_6x4_16 : t.xp == 32 ? nnk__full_6x4_32 : NULL;   /* (along rows: nnk__use_six) */
#endif
    /* AVX-512, rows of 7 pixels (ResNet's 7×7 planes): two whole rows a tile of 14 × 2 blocks (k2), pixel 7
       at t.xr from pixel 0, where the blocks go in pairs (so that no tile of one block, which knows nothing
       of t.xr, gets such a run). A warm 3×3 512→512 on 7×7 on a Zen 5 core: 1.17-1.27 → 1.03-1.10 ms; in
       ResNet-50 (1 thread), layer4's 3×3 layers 1.47-1.49 → 1.24-1.34 ms, its 1×1 stride-2 1.42 → 1.17. */
    nnk__tiles k2 = k;
    int pairs = 0;
#if NNK_CONV_NCHWC_AVX512F
    pairs = !flat && !gather && 2 * p->OW == NNK__NW && (t.xp == 16 || t.xp == 32) && ob_all % 2 == 0 && in.share % 2 == 0;
    k2.full = t.xp == 16 ? nnk__full_rows_16 : nnk__full_rows_32;
    k2.six = NULL;   /* (the two rows of a pair are not one run) */
#endif
    t.xr = (long)p->sh * p->W * pix;
#if NNK__GATHER
    long xo[NNK_CONV_RUN];   /* a gathered run's input offsets */
#else
    long *xo = NULL;
#endif
    /* Input blocks a chunk: all, unless a group's weights would not stay in L2 from one tile to the next
       (ResNet-50's last stage: 1.2 MB for a 7×7 plane), then as many as fit, each chunk from the partial
       sums of the last. */
    const long wblock = (long)p->kh * p->kw * ic * NNK_CB * NNK_CONV_GROUP * (long)sizeof(float);   /* a chunk's bytes per input block */
    const int chunk = flat || in.nib * wblock <= NNK_CONV_CHUNK_BYTES ? in.nib : (int)(NNK_CONV_CHUNK_BYTES / wblock) + 1;
    const long groups = nnk__conv_groups(p), run = nnk__conv_run_len(p), row = flat ? plane_out : p->OW;
    /* On a small plane, whose few pixels make a weight's every use wait for it to come from memory
       (ResNet-50's last stage: 60 MB for 0.8 GFLOP), the full tiles prefetch the weights they will read
       next: the next chunk's, or the next unit's when it is the next group of blocks of the same run (not
       past the weight's end). ResNet-50 on a Sapphire Rapids core: 44.3 → 42.3 ms (layer4's 1×1
       convolutions 0.86 → 0.73 ms); 75.5 → 74.5 ms on its AVX2 path. */
    const int small = plane_out <= NNK_CONV_PREFETCH_PLANE;
    const long cw = (long)p->kh * p->kw * ic * NNK_CB;   /* a block's weights for one input block */
    nnk__sg_fn *const sg = nnk__small_groups(p, x_plain);
    for (long u = u0; u < u1; u++) {
        const int ob0 = (int)(u % groups) * NNK_CONV_GROUP, nb = ob_all - ob0 < NNK_CONV_GROUP ? ob_all - ob0 : NNK_CONV_GROUP;
        const long at = u / groups * run;   /* the unit's first output pixel, */
        const long n = plane_out - at < run ? plane_out - at : run;   /* its pixel count */
        const long out = ob0 * t.yb + at * NNK_CB;   /* block ob0's first output */
        const float *bg = b ? b + ob0 * NNK_CB : NULL;
        if (sg) {
            sg(y, x, w, b, in_regs ? res : NULL, in_regs && act1 == NNK_ACT_RELU, in_regs && act2 == NNK_ACT_RELU, p, ob0, nb, at,
               n);
        } else {
            if (gather)
                for (long i = 0, q = at; i < n; i++, q++)
                    xo[i] = (q / p->OW * p->sh * p->W + q % p->OW * p->sw) * pix;
            for (int c0 = 0; c0 < in.nib; c0 += chunk) {
                const int last = c0 + chunk >= in.nib;
                t.cbs = last ? in.nib - c0 : chunk;
                t.partial = c0 > 0;
                t.pf = !small ? 0
                       : !last ? (c0 + 2 * chunk <= in.nib ? chunk * cw : 0)
                       : u + 1 < u1 && (u + 1) % groups && ob0 + 2 * NNK_CONV_GROUP <= ob_all ? NNK_CONV_GROUP * t.wb - c0 * cw
                                                                                              : 0;
                t.relu1 = last && in_regs && act1 == NNK_ACT_RELU;
                t.relu2 = last && in_regs && act2 == NNK_ACT_RELU;
                const float *xc = x + c0 * t.xc, *wc = w + ob0 * t.wb + (long)c0 * p->kh * p->kw * ic * NNK_CB;
                const float *rs = last && res && in_regs ? res + out : NULL;
                if (gather) {
                    for (long q = 0, len; q < n; q += len) {   /* in pieces whose input stays near for every block */
                        len = n - q < NNK__GATHER_RUN ? n - q : NNK__GATHER_RUN;
                        t.xo = xo + q;
                        nnk__conv_blocks(&k, y + out + q * NNK_CB, xc, wc, bg, rs ? rs + q * NNK_CB : NULL, &t, p, ob0, nb, in.share,
                                         (int)len);
                    }
                    t.xo = NULL;
                } else {
                    for (long q = at, len; q < at + n; q += len) {   /* the run's pieces of rows (a flat plane: one row) */
                        long oh = q / row, ow = q % row;
                        len = row - ow < at + n - q ? row - ow : at + n - q;
                        const int two = pairs && ow == 0 && len == row && q + 2 * row <= at + n;
                        len = two ? 2 * row : len;
                        nnk__conv_blocks(two ? &k2 : &k, y + out + (q - at) * NNK_CB, xc + (oh * p->sh * p->W + ow * p->sw) * pix, wc, bg,
                                         rs ? rs + (q - at) * NNK_CB : NULL, &t, p, ob0, nb, in.share, (int)len);
                    }
                }
            }
        }
        if (!in_regs && (act1 || res))
            for (long o = out; o < out + nb * t.yb; o += t.yb)
                nnk_epilogue(y + o, res ? res + o : NULL, n * NNK_CB, act1, act2);
    }
}

/* A batch of small output planes (rows of NNK_CONV_IMAGES_MAX_W pixels or fewer: the last layers of a
   small-image network) is computed position by position, the images being the pixels of one run (they
   lie a whole image apart, one stride), NNK_CONV_IMAGES of them a unit, so that the tiles stay full. */
enum { NNK_CONV_IMAGES = 28, NNK_CONV_IMAGES_MAX_W = 4 };

static inline int nnk__conv_by_images(const nnk_conv_params *p, long N) { return N > 1 && p->OW <= NNK_CONV_IMAGES_MAX_W; }

static inline long nnk_conv_nchwc_batch_units(const nnk_conv_params *p, long N)
{
    if (nnk__conv_by_images(p, N))
        return nnk__conv_groups(p) * (long)p->OH * p->OW * ((N + NNK_CONV_IMAGES - 1) / NNK_CONV_IMAGES);
    return N * nnk_conv_nchwc_units(p);
}

static inline void nnk__conv2d_nchwc_images(float *restrict y, const float *restrict x, int x_plain, const float *restrict w,
                                            const float *restrict b, const float *restrict res, int act1, int act2,
                                            const nnk_conv_params *p, long N, long u0, long u1)
{
    const int ob_all = p->O / NNK_CB, ic = x_plain ? 1 : NNK_CB;
    const nnk__conv_inputs in = nnk__conv_inputs_of(p, x_plain);
    const long chunks = (N + NNK_CONV_IMAGES - 1) / NNK_CONV_IMAGES, pix = x_plain ? 1 : NNK_CB, plane = (long)p->OH * p->OW;
    const long out_img = (long)p->O * plane;
    const int in_regs = nnk__fusable(1, res, act1, act2);
    nnk__conv_tile t = {
        .xp = (long)p->C * p->H * p->W, .xc = (long)p->H * p->W * ic, .xh = (long)p->dh * p->W * pix, .xw = (long)p->dw * pix,
        .wb = (long)in.nib * p->kh * p->kw * ic * NNK_CB, .yb = plane * NNK_CB, .yp = out_img,
        .cbs = in.nib, .kh = p->kh, .kw = p->kw, .ic = ic,
        .relu1 = in_regs && act1 == NNK_ACT_RELU, .relu2 = in_regs && act2 == NNK_ACT_RELU,
    };
    const nnk__tiles k = nnk__tiles_for(t.xp);
    for (long u = u0; u < u1; u++) {
        long g = u / (plane * chunks), q = u % (plane * chunks) / chunks;   /* a group, an output pixel, */
        long n0 = u % chunks * NNK_CONV_IMAGES, n = N - n0 < NNK_CONV_IMAGES ? N - n0 : NNK_CONV_IMAGES;   /* the images */
        int ob0 = (int)g * NNK_CONV_GROUP, nb = ob_all - ob0 < NNK_CONV_GROUP ? ob_all - ob0 : NNK_CONV_GROUP;
        int oh = (int)(q / p->OW), ow = (int)(q % p->OW);
        const float *xr = x + n0 * t.xp + ((long)oh * p->sh * p->W + (long)ow * p->sw) * pix;
        long out = n0 * out_img + (long)ob0 * t.yb + q * NNK_CB;   /* image n0's, block ob0's output */
        nnk__conv_blocks(&k, y + out, xr, w + ob0 * t.wb, b ? b + ob0 * NNK_CB : NULL, res && in_regs ? res + out : NULL, &t, p, ob0, nb,
                         in.share, (int)n);
        if (!in_regs && (act1 || res))
            for (long i = 0; i < n; i++)
                for (int j = 0; j < nb; j++) {
                    long at = out + i * out_img + j * t.yb;
                    nnk_epilogue(y + at, res ? res + at : NULL, NNK_CB, act1, act2);
                }
    }
}

/* Units [u0, u1) of a batch of N images (nnk_conv_nchwc_batch_units) of nnk_conv2d_nchwc: x, y and res are
   the whole batch's. */
static inline void nnk_conv2d_nchwc_batch(float *restrict y, const float *restrict x, int x_plain, const float *restrict w,
                                          const float *restrict b, const float *restrict res, int act1, int act2,
                                          const nnk_conv_params *p, long N, long u0, long u1)
{
    if (nnk__conv_by_images(p, N)) {
        nnk__conv2d_nchwc_images(y, x, x_plain, w, b, res, act1, act2, p, N, u0, u1);
        return;
    }
    long per = nnk_conv_nchwc_units(p), in = (long)p->C * p->H * p->W, out = (long)p->O * p->OH * p->OW;
    for (long n = u0 / per; n * per < u1; n++) {
        long a = u0 > n * per ? u0 - n * per : 0, z = u1 < (n + 1) * per ? u1 - n * per : per;
        nnk_conv2d_nchwc(y + n * out, x + n * in, x_plain, w, b, res ? res + n * out : NULL, act1, act2, p, a, z);
    }
}

/* Rearranges a conv2d weight w[O][C][KH][KW] (O a multiple of 16) for nnk_conv2d_nchwc, into
   dst[O/16][C/ic][KH][KW][ic][16], ic = 16 for blocked input (C a multiple of 16), 1 for plain. */
static inline void nnk_pack_conv_nchwc(float *restrict dst, const float *restrict w, int O, int C, int KH, int KW, int groups,
                                       int x_plain)
{
    nnk_conv_params p = {.C = C * groups, .O = O, .groups = groups};
    nnk__conv_inputs in = nnk__conv_inputs_of(&p, x_plain);
    int ic = x_plain ? 1 : NNK_CB, cout = O / groups;
    long taps = (long)KH * KW;
    for (int ob = 0; ob < O / NNK_CB; ob++) {
        int first = nnk__conv_first_input(&p, ob);
        for (int cb = 0; cb < in.nib; cb++)
            for (long t = 0; t < taps; t++)
                for (int i = 0; i < ic; i++)
                    for (int l = 0; l < NNK_CB; l++) {
                        int o = ob * NNK_CB + l, c = (first + cb) * ic + i - o / cout * C;   /* in o's group, or not */
                        *dst++ = c >= 0 && c < C ? w[((long)o * C + c) * taps + t] : 0.0f;   /* 0 between groups */
                    }
    }
}

/* Floats of a weight [O, C, KH, KW] (C a group's input channels) packed by nnk_pack_conv_nchwc: its own,
   or 16 a tap for a group smaller than a block. */
#define NNK_PACK_CONV_NCHWC_FLOATS(O, C, KH, KW, x_plain) ((long)(O) * (KH) * (KW) * (!(x_plain) && (C) < NNK_CB ? NNK_CB : (C)))

/* nnk_pack_conv_nchwc in place, through tmp of O*C*KH*KW floats (w has room for NNK_PACK_CONV_NCHWC_FLOATS):
   done once, when the weights are loaded. */
static inline void nnk_pack_conv_nchwc_in_place(float *restrict w, int O, int C, int KH, int KW, int groups, int x_plain,
                                                float *restrict tmp)
{
    memcpy(tmp, w, (size_t)O * (size_t)C * (size_t)KH * (size_t)KW * sizeof *tmp);
    nnk_pack_conv_nchwc(w, tmp, O, C, KH, KW, groups, x_plain);
}

/* ---------------------------------------------------------------- reorders, padding, pools */

/* Plain [C][H][W] of one image, channels [c0, c1) (multiples of 16), to blocked [C/16][H][W][16]. */
static inline void nnk_to_nchwc(float *restrict y, const float *restrict x, int C, long HW, int c0, int c1)
{
    (void)C;
    for (int cb = c0 / NNK_CB; cb < c1 / NNK_CB; cb++)
        for (long i = 0; i < HW; i++)
            for (int c = 0; c < NNK_CB; c++)
                y[((long)cb * HW + i) * NNK_CB + c] = x[((long)cb * NNK_CB + c) * HW + i];
}

/* Blocked to plain, channels [c0, c1) of one image. */
static inline void nnk_from_nchwc(float *restrict y, const float *restrict x, int C, long HW, int c0, int c1)
{
    (void)C;
    for (int cb = c0 / NNK_CB; cb < c1 / NNK_CB; cb++)
        for (int c = 0; c < NNK_CB; c++)
            for (long i = 0; i < HW; i++)
                y[((long)cb * NNK_CB + c) * HW + i] = x[((long)cb * HW + i) * NNK_CB + c];
}

/* y = x zero-padded by pt, pl (top, left) to a plane of OH × OW: rows [r0, r1) of the padded planes of
   blocks [b0, b1) (of a batch, one image after the other); a block is 16 channels (blocked) or 1 (plain,
   v = 1). Generated code splits one image between threads by rows, so that each thread copies the rows
   of the plane it computed in the convolution before (whose units are runs of rows) and reads in the one
   after; by blocks, a thread copied planes the other core had written. ResNet-50 on 2 threads of a
   Zen 4: its pad_plane ops 1.74 ms by blocks, 0.60 by rows (0.77 on one thread); with its max pool by
   rows too, the model 43.7 -> 38.1 ms. */
static inline void nnk_pad_plane(float *restrict y, const float *restrict x, int v, int H, int W, int OH, int OW,
                                 int pt, int pl, int b0, int b1, int r0, int r1)
{
    for (int cb = b0; cb < b1; cb++) {
        float *yc = y + (long)cb * OH * OW * v;
        const float *xc = x + (long)cb * H * W * v;
        for (int oh = r0; oh < r1; oh++) {
            float *yr = yc + (long)oh * OW * v;
            int ih = oh - pt;
            if (ih < 0 || ih >= H) {
                memset(yr, 0, (size_t)OW * (size_t)v * sizeof *yr);
                continue;
            }
            /* (the plane may end before the input's last columns, or even before its first) */
            int left = pl < OW ? pl : OW, copy = OW - left < W ? OW - left : W;
            memset(yr, 0, (size_t)left * (size_t)v * sizeof *yr);
            memcpy(yr + (long)left * v, xc + (long)ih * W * v, (size_t)copy * (size_t)v * sizeof *yr);
            memset(yr + (long)(left + copy) * v, 0, (size_t)(OW - left - copy) * (size_t)v * sizeof *yr);
        }
    }
}

/* Max or average pooling in the blocked layout, blocks [b0, b1) of one batch: each window's cells in row
   order, as nnk_maxpool2d (padding ignored, a NaN wins) and nnk_avgpool2d (padding cells zeros, the
   divisor the window's size: count_include_pad without ceil_mode) compute them; output rows [r0, r1) of
   those blocks (one image is split by rows, as for nnk_pad_plane). */
static inline void nnk__pool_nchwc(float *restrict y, const float *restrict x, const nnk_pool_params *p, int b0, int b1, int r0,
                                   int r1, int max)
{
    float count = (float)(p->kh * p->kw);
    for (int cb = b0; cb < b1; cb++)
        for (int oh = r0; oh < r1; oh++)
            for (int ow = 0; ow < p->OW; ow++) {
                float a[NNK_CB];
                for (int c = 0; c < NNK_CB; c++)
                    a[c] = max ? -INFINITY : 0.0f;
                for (int kh = 0; kh < p->kh; kh++) {
                    int ih = oh * p->sh - p->pt + kh;
                    if (ih < 0 || ih >= p->H)
                        continue;
                    for (int kw = 0; kw < p->kw; kw++) {
                        int iw = ow * p->sw - p->pl + kw;
                        if (iw < 0 || iw >= p->W)
                            continue;
                        const float *xv = x + (((long)cb * p->H + ih) * p->W + iw) * NNK_CB;
                        for (int c = 0; c < NNK_CB; c++)
                            a[c] = !max ? a[c] + xv[c] : xv[c] > a[c] || xv[c] != xv[c] ? xv[c] : a[c];
                    }
                }
                float *yv = y + (((long)cb * p->OH + oh) * p->OW + ow) * NNK_CB;
                for (int c = 0; c < NNK_CB; c++)
                    yv[c] = max ? a[c] : a[c] / count;
            }
}

static inline void nnk_maxpool_nchwc(float *restrict y, const float *restrict x, const nnk_pool_params *p, int b0, int b1, int r0,
                                     int r1)
{
    nnk__pool_nchwc(y, x, p, b0, b1, r0, r1, 1);
}

static inline void nnk_avgpool_nchwc(float *restrict y, const float *restrict x, const nnk_pool_params *p, int b0, int b1, int r0,
                                     int r1)
{
    nnk__pool_nchwc(y, x, p, b0, b1, r0, r1, 0);
}

/* Batch norm in the blocked layout, blocks [b0, b1) of a batch (block b is channels 16 (b % (C/16)) on),
   as nnk_batchnorm computes each element. */
static inline void nnk_batchnorm_nchwc(float *y, const float *x, const float *restrict gamma, const float *restrict beta,
                                       const float *restrict mean, const float *restrict var, int C, long HW, float eps,
                                       long b0, long b1)
{
    for (long b = b0; b < b1; b++) {
        int c0 = (int)(b % (C / NNK_CB)) * NNK_CB;
        float scale[NNK_CB], shift[NNK_CB];
        for (int l = 0; l < NNK_CB; l++) {
            scale[l] = gamma[c0 + l] / sqrtf(var[c0 + l] + eps);
            shift[l] = beta[c0 + l] - mean[c0 + l] * scale[l];
        }
        for (long i = 0; i < HW; i++)
            for (int l = 0; l < NNK_CB; l++)
                y[(b * HW + i) * NNK_CB + l] = x[(b * HW + i) * NNK_CB + l] * scale[l] + shift[l];
    }
}

/* Mean over the plane in the blocked layout (adaptive average pool to 1×1), blocks [b0, b1) of the batch:
   y[cb][16], which is the plain layout of [N, C, 1, 1]; summed as the plain pool sums (nnk__plane_sums_1), so
   both layouts give the same bits. */
static inline void nnk_global_avgpool_nchwc(float *restrict y, const float *restrict x, long HW, int b0, int b1)
{
    for (int cb = b0; cb < b1; cb++) {
        nnk__plane_sums_16(y + (long)cb * NNK_CB, x + (long)cb * HW * NNK_CB, HW);   /* (NNK_CB is 16) */
        for (int c = 0; c < NNK_CB; c++)
            y[(long)cb * NNK_CB + c] /= (float)HW;
    }
}

#endif
