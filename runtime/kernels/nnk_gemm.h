/*
 * nnk_gemm.h — the blocked matrix product behind conv2d and linear: C[M,N] = A[M,K] · B[K,N] + bias,
 * followed by the layer's fused epilogue.
 *
 * The loops are the classic ones of BLIS and GotoBLAS. B is copied a block of KC×NC at a time into
 * panels NR columns wide (for a convolution this copy is the im2col gather, done one block at a time, so
 * the whole patch matrix never exists); A a block of MC×KC at a time into strips MR rows high. A
 * micro-kernel then keeps an MR×NR tile of C in registers (8 × 48 = 24 vectors of 16 floats) and, for
 * every k, broadcasts MR values of A against NR/16 vectors of B: 24 independent FMAs, enough to keep the
 * FMA pipe full. Edges are handled by zero-padding the packed copies and masking the stores.
 *
 * Every element of C is the sum over k in increasing order, one FMA at a time, from the bias: the same
 * operations whichever tile, block or thread computes it, so a result does not depend on how the work
 * is split. With AVX-512 the micro-kernel uses intrinsics; elsewhere a plain C version computes the same
 * sums (without fused multiply-add unless the compiler contracts).
 *
 * A caller passes scratch memory of NNK_GEMM_SCRATCH floats, one block per thread.
 */
#ifndef NNK_GEMM_H
#define NNK_GEMM_H

#include "nnk_base.h"
#include "nnk_elementwise.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

enum {
    NNK_MR = 8,     /* rows of the register tile */
    NNK_NR = 48,    /* columns of the register tile: three vectors of 16 */
    NNK_KC = 256,   /* depth of a packed block */
    NNK_MC = 64,    /* rows of a packed block of A */
    NNK_NC = 480,   /* columns of a packed block of B (ten panels) */
};

/* Floats of scratch one nnk_gemm call needs: the packed blocks of B and A. */
#define NNK_GEMM_SCRATCH ((long)NNK_KC * NNK_NC + (long)NNK_MC * NNK_KC)

/* Where B comes from. */
enum { NNK_B_ROWS, NNK_B_COLS, NNK_B_PACKED, NNK_B_IM2COL };

typedef struct {
    int kind;
    const float *p;
    long ld;    /* ROWS: B[k][n] = p[k*ld + n]; COLS: B[k][n] = p[n*ld + k] (a weight matrix [N,K]) */
    long first; /* B's column 0 is the source's column `first` (for PACKED, p is a weight [ld,K] rearranged by
                   nnk_pack_weight with width NR, and B[k][n] is its row first+n) */
    /* IM2COL: B[(c*KH + kh)*KW + kw][oh*OW + ow] = x[c][oh*SH + kh*DH - PT][ow*SW + kw*DW - PL], 0 outside */
    int H, W, OW, KH, KW, SH, SW, PT, PL, DH, DW;
} nnk_bsrc;

static inline int nnk__min(int a, int b) { return a < b ? a : b; }

/* Packs rows [0, mc) and columns [0, kc) of A (row stride lda) into strips of MR rows: ap[strip][k][r],
   with rows past mc zero. */
static inline void nnk__pack_a(float *restrict ap, const float *restrict a, long lda, int mc, int kc)
{
    for (int i0 = 0; i0 < mc; i0 += NNK_MR, ap += (long)kc * NNK_MR) {
        int rows = nnk__min(NNK_MR, mc - i0);
        for (int r = 0; r < NNK_MR; r++) {
            if (r < rows) {
                const float *src = a + (long)(i0 + r) * lda;
                for (int k = 0; k < kc; k++)
                    ap[(long)k * NNK_MR + r] = src[k];
            } else
                for (int k = 0; k < kc; k++)
                    ap[(long)k * NNK_MR + r] = 0.0f;
        }
    }
}

/* One row of an im2col panel: B[k][n0 .. n0+w) for the tap (c, kh, kw) of k, into dst[w]. */
static inline void nnk__im2col_row(float *restrict dst, const nnk_bsrc *b, const float *xc, int kh, int kw,
                                   int n0, int w)
{
    int oh = n0 / b->OW, ow = n0 % b->OW, hoff = kh * b->DH - b->PT, woff = kw * b->DW - b->PL, lo, hi;
    nnk__valid_range(&lo, &hi, b->OW, b->W, b->SW, woff);
    for (int j = 0; j < w; oh++, ow = 0) {
        int seg = nnk__min(b->OW - ow, w - j), ih = oh * b->SH + hoff;
        if (ih < 0 || ih >= b->H) {
            for (int t = 0; t < seg; t++)
                dst[j + t] = 0.0f;
        } else {
            /* columns ow .. ow+seg: zeros left of lo, the image row, zeros from hi */
            const float *xr = xc + (long)ih * b->W;
            int end = ow + seg, a = ow > lo ? ow : lo, z = end < hi ? end : hi;
            float *d = dst + j;
            if (z < a)
                a = z = end;
            for (int o = ow; o < a; o++)
                d[o - ow] = 0.0f;
            for (int o = a; o < z; o++)
                d[o - ow] = xr[(long)o * b->SW + woff];
            for (int o = z; o < end; o++)
                d[o - ow] = 0.0f;
        }
        j += seg;
    }
}

/* Packs rows [k0, k0+kc) and columns [n0, n0+nc) of B into panels of NR columns: bp[panel][k][j], with
   columns past nc zero. */
static inline void nnk__pack_b(float *restrict bp, const nnk_bsrc *b, int k0, int kc, int n0, int nc)
{
    for (int j0 = 0; j0 < nc; j0 += NNK_NR, bp += (long)kc * NNK_NR) {
        int w = nnk__min(NNK_NR, nc - j0);
        for (int k = 0; k < kc; k++) {
            float *dst = bp + (long)k * NNK_NR;
            if (b->kind == NNK_B_ROWS) {
                memcpy(dst, b->p + (long)(k0 + k) * b->ld + b->first + n0 + j0, (size_t)w * sizeof *dst);
            } else if (b->kind == NNK_B_COLS) {
                const float *src = b->p + (b->first + n0 + j0) * b->ld + k0 + k;
                for (int j = 0; j < w; j++)
                    dst[j] = src[(long)j * b->ld];
            } else {
                int kk = k0 + k, taps = b->KH * b->KW, c = kk / taps, t = kk % taps;
                nnk__im2col_row(dst, b, b->p + (long)c * b->H * b->W, t / b->KW, t % b->KW, (int)b->first + n0 + j0, w);
            }
            for (int j = w; j < NNK_NR; j++)
                dst[j] = 0.0f;
        }
    }
}

/* Full unrolling of the small loops over a tile's rows and vectors, so that gcc at -O2 keeps the
   accumulators in registers (clang does so by itself). Not under AddressSanitizer, where unrolled code
   only makes compiling slow. */
#if defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define NNK__UNROLL _Pragma("GCC unroll 8")
#else
#define NNK__UNROLL
#endif

/* One tile: C[rows][cols] (+)= ap · bp over kc. `first` starts from the bias (rbias per row, cbias per
   column, either may be NULL) instead of from C. With `last` set, the tile applies the epilogue itself
   when it can (relu or nothing for act1 and act2, res laid out like C) and returns 1; otherwise 0. */
#if defined(__AVX512F__)
static inline __attribute__((always_inline)) int nnk__tile(int nv, const float *restrict ap, const float *restrict bp,
                                                           int kc, float *restrict c, long ldc, int rows, int cols,
                                                           const float *rbias, const float *cbias, int first, int last,
                                                           const float *res, int act1, int act2)
{
    __m512 acc[NNK_MR][3];
    __mmask16 mask[3];
NNK__UNROLL
    for (int v = 0; v < nv; v++) {
        int left = cols - 16 * v;
        mask[v] = left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
    }
NNK__UNROLL
    for (int r = 0; r < NNK_MR; r++)
NNK__UNROLL
        for (int v = 0; v < nv; v++) {
            if (!first)
                acc[r][v] = r < rows ? _mm512_maskz_loadu_ps(mask[v], c + (long)r * ldc + 16 * v) : _mm512_setzero_ps();
            else if (rbias)
                acc[r][v] = _mm512_set1_ps(r < rows ? rbias[r] : 0.0f);
            else if (cbias)
                acc[r][v] = _mm512_maskz_loadu_ps(mask[v], cbias + 16 * v);
            else
                acc[r][v] = _mm512_setzero_ps();
        }
    for (int k = 0; k < kc; k++, ap += NNK_MR, bp += NNK_NR) {
        __m512 bv[3];
NNK__UNROLL
        for (int v = 0; v < nv; v++)
            bv[v] = _mm512_loadu_ps(bp + 16 * v);
NNK__UNROLL
        for (int r = 0; r < NNK_MR; r++) {
            __m512 av = _mm512_set1_ps(ap[r]);
NNK__UNROLL
            for (int v = 0; v < nv; v++)
                acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
    int epilogue = last && (act1 == NNK_ACT_NONE || act1 == NNK_ACT_RELU) &&
                   (!res || act2 == NNK_ACT_NONE || act2 == NNK_ACT_RELU);
    if (epilogue) {   /* relu as nnk_relu computes it: 0 > x ? 0 : x keeps NaN and -0 */
        __m512 zero = _mm512_setzero_ps();
NNK__UNROLL
        for (int r = 0; r < NNK_MR; r++)
NNK__UNROLL
            for (int v = 0; v < nv && r < rows; v++) {
                if (act1 == NNK_ACT_RELU)
                    acc[r][v] = _mm512_max_ps(zero, acc[r][v]);
                if (res) {
                    acc[r][v] = _mm512_add_ps(acc[r][v], _mm512_maskz_loadu_ps(mask[v], res + (long)r * ldc + 16 * v));
                    if (act2 == NNK_ACT_RELU)
                        acc[r][v] = _mm512_max_ps(zero, acc[r][v]);
                }
            }
    }
    /* (fixed counts and full unrolling, so that acc[][] stays in registers, gcc at -O2 included) */
NNK__UNROLL
    for (int r = 0; r < NNK_MR; r++)
NNK__UNROLL
        for (int v = 0; v < nv && r < rows; v++)
            _mm512_mask_storeu_ps(c + (long)r * ldc + 16 * v, mask[v], acc[r][v]);
    return epilogue;
}

/* The full 8×48 tile, the hot loop: nnk__tile(3, ...) with rows = 8 and cols = 48, written out with 24
   named accumulators and kept out of line, so that no compiler (gcc at -O2 included) spills one to the
   stack whatever surrounds the call. */
#define NNK__ROW_INIT(r)                                                                        \
    if (!first) {                                                                               \
        c##r##0 = _mm512_loadu_ps(c + (long)(r) * ldc);                                         \
        c##r##1 = _mm512_loadu_ps(c + (long)(r) * ldc + 16);                                    \
        c##r##2 = _mm512_loadu_ps(c + (long)(r) * ldc + 32);                                    \
    } else if (rbias) {                                                                         \
        c##r##0 = c##r##1 = c##r##2 = _mm512_set1_ps(rbias[r]);                                 \
    } else if (cbias) {                                                                         \
        c##r##0 = _mm512_loadu_ps(cbias);                                                       \
        c##r##1 = _mm512_loadu_ps(cbias + 16);                                                  \
        c##r##2 = _mm512_loadu_ps(cbias + 32);                                                  \
    } else {                                                                                    \
        c##r##0 = c##r##1 = c##r##2 = _mm512_setzero_ps();                                      \
    }
#define NNK__ROW_FMA(r)                                                                         \
    {                                                                                           \
        __m512 a = _mm512_set1_ps(ap[r]);                                                       \
        c##r##0 = _mm512_fmadd_ps(a, b0, c##r##0);                                              \
        c##r##1 = _mm512_fmadd_ps(a, b1, c##r##1);                                              \
        c##r##2 = _mm512_fmadd_ps(a, b2, c##r##2);                                              \
    }
#define NNK__RELU3(r)                                                                           \
    c##r##0 = _mm512_max_ps(zero, c##r##0);                                                     \
    c##r##1 = _mm512_max_ps(zero, c##r##1);                                                     \
    c##r##2 = _mm512_max_ps(zero, c##r##2);
#define NNK__ROW_STORE(r)                                                                       \
    if (epilogue) {                                                                             \
        if (act1 == NNK_ACT_RELU) {                                                             \
            NNK__RELU3(r)                                                                       \
        }                                                                                       \
        if (res) {                                                                              \
            c##r##0 = _mm512_add_ps(c##r##0, _mm512_loadu_ps(res + (long)(r) * ldc));           \
            c##r##1 = _mm512_add_ps(c##r##1, _mm512_loadu_ps(res + (long)(r) * ldc + 16));      \
            c##r##2 = _mm512_add_ps(c##r##2, _mm512_loadu_ps(res + (long)(r) * ldc + 32));      \
            if (act2 == NNK_ACT_RELU) {                                                         \
                NNK__RELU3(r)                                                                   \
            }                                                                                   \
        }                                                                                       \
    }                                                                                           \
    _mm512_storeu_ps(c + (long)(r) * ldc, c##r##0);                                             \
    _mm512_storeu_ps(c + (long)(r) * ldc + 16, c##r##1);                                        \
    _mm512_storeu_ps(c + (long)(r) * ldc + 32, c##r##2);

static __attribute__((noinline, unused)) int nnk__tile_8x48(const float *restrict ap, const float *restrict bp, int kc,
                                                              float *restrict c, long ldc, const float *rbias,
                                                              const float *cbias, int first, int last, const float *res,
                                                              int act1, int act2)
{
    __m512 c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31, c32;
    __m512 c40, c41, c42, c50, c51, c52, c60, c61, c62, c70, c71, c72;
    NNK__ROW_INIT(0) NNK__ROW_INIT(1) NNK__ROW_INIT(2) NNK__ROW_INIT(3)
    NNK__ROW_INIT(4) NNK__ROW_INIT(5) NNK__ROW_INIT(6) NNK__ROW_INIT(7)
    for (int k = 0; k < kc; k++, ap += NNK_MR, bp += NNK_NR) {
        __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16), b2 = _mm512_loadu_ps(bp + 32);
        NNK__ROW_FMA(0) NNK__ROW_FMA(1) NNK__ROW_FMA(2) NNK__ROW_FMA(3)
        NNK__ROW_FMA(4) NNK__ROW_FMA(5) NNK__ROW_FMA(6) NNK__ROW_FMA(7)
    }
    int epilogue = last && (act1 == NNK_ACT_NONE || act1 == NNK_ACT_RELU) &&
                   (!res || act2 == NNK_ACT_NONE || act2 == NNK_ACT_RELU);
    __m512 zero = _mm512_setzero_ps();
    NNK__ROW_STORE(0) NNK__ROW_STORE(1) NNK__ROW_STORE(2) NNK__ROW_STORE(3)
    NNK__ROW_STORE(4) NNK__ROW_STORE(5) NNK__ROW_STORE(6) NNK__ROW_STORE(7)
    return epilogue;
}
#undef NNK__ROW_INIT
#undef NNK__ROW_FMA
#undef NNK__RELU3
#undef NNK__ROW_STORE
#else
static inline int nnk__tile(int nv, const float *restrict ap, const float *restrict bp, int kc, float *restrict c,
                            long ldc, int rows, int cols, const float *rbias, const float *cbias, int first, int last,
                            const float *res, int act1, int act2)
{
    float acc[NNK_MR][NNK_NR];
    (void)nv, (void)last, (void)res, (void)act1, (void)act2;
    for (int r = 0; r < NNK_MR; r++)
        for (int j = 0; j < NNK_NR; j++)
            acc[r][j] = !first ? (r < rows && j < cols ? c[(long)r * ldc + j] : 0.0f)
                      : rbias ? (r < rows ? rbias[r] : 0.0f)
                      : cbias ? (j < cols ? cbias[j] : 0.0f) : 0.0f;
    for (int k = 0; k < kc; k++, ap += NNK_MR, bp += NNK_NR)
        for (int r = 0; r < NNK_MR; r++)
            for (int j = 0; j < NNK_NR; j++)
                acc[r][j] += ap[r] * bp[j];
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++)
            c[(long)r * ldc + j] = acc[r][j];
    return 0;
}
#endif

/* Rearranges a weight matrix w[rows,K] in place for nnk_gemm (rows a multiple of width, which is NNK_MR
   for an A, NNK_NR for a B): block by block of KC columns, strips of `width` rows each stored [kc][width],
   so that the product reads every block as one sequential stream. Row r, column k then sits at
   NNK_PACKED_AT(rows, kc, k0, r - r % width) + (k - k0) * width + r % width, where k0 is k's block and kc
   its width. tmp holds rows*K floats. Done once, when the weights are loaded. */
#define NNK_PACKED_AT(rows, kc, k0, r0) ((long)(k0) * (rows) + (long)(r0) * (kc))

static inline void nnk_pack_weight(float *restrict w, int rows, long K, int width, float *restrict tmp)
{
    memcpy(tmp, w, (size_t)rows * (size_t)K * sizeof *tmp);
    for (long k0 = 0; k0 < K; k0 += NNK_KC) {
        long kc = K - k0 < NNK_KC ? K - k0 : NNK_KC;
        for (int r = 0; r < rows; r++)
            for (long k = 0; k < kc; k++)
                w[NNK_PACKED_AT(rows, kc, k0, r - r % width) + k * width + r % width] = tmp[(long)r * K + k0 + k];
    }
}

/* Where A comes from: row-major (A[m][k] = p[m*ld + k]), or, when packed, a weight rearranged by
   nnk_pack_weight with width NNK_MR, of ld rows in all, whose row `first` is A's row 0. */
typedef struct {
    const float *p;
    long ld;
    int packed;
    long first;
} nnk_asrc;

/* C[M,N] (row stride ldc) = A[M,K] · B[K,N] + rbias[M] or cbias[N] (either may be NULL), then
   C = act2(act1(C) + res) with res laid out like C (or C = act1(C) when res is NULL). A packed A needs M
   and `first` multiples of MR, a packed B (NNK_B_PACKED) N and its `first` multiples of NR.
   scratch holds NNK_GEMM_SCRATCH floats. C must not overlap A, B or res. */
static inline void nnk_gemm(float *restrict c, long ldc, int M, int N, int K, const nnk_asrc *a, const nnk_bsrc *b,
                            const float *rbias, const float *cbias, const float *res, int act1, int act2,
                            float *restrict scratch)
{
    float *bp = scratch, *ap = scratch + (long)NNK_KC * NNK_NC;
    if (M <= 0)   /* (a thread with no rows to compute need not gather B) */
        return;
    for (int n0 = 0; n0 < N; n0 += NNK_NC) {
        int nc = nnk__min(NNK_NC, N - n0);
        for (int k0 = 0; k0 == 0 || k0 < K; k0 += NNK_KC) {
            int kc = nnk__min(NNK_KC, K - k0), last = k0 + kc >= K;
            const float *bblock = b->kind == NNK_B_PACKED ? b->p + NNK_PACKED_AT(b->ld, kc, k0, b->first + n0) : bp;
            if (b->kind != NNK_B_PACKED)
                nnk__pack_b(bp, b, k0, kc, n0, nc);
            for (int m0 = 0; m0 < M; m0 += NNK_MC) {
                int mc = nnk__min(NNK_MC, M - m0);
                const float *ablock = a->packed ? a->p + NNK_PACKED_AT(a->ld, kc, k0, a->first + m0) : ap;
                if (!a->packed)
                    nnk__pack_a(ap, a->p + (long)m0 * a->ld + k0, a->ld, mc, kc);
                for (int j0 = 0; j0 < nc; j0 += NNK_NR) {
                    int cols = nnk__min(NNK_NR, nc - j0);
                    const float *bpanel = bblock + (long)j0 * kc, *cb = cbias ? cbias + n0 + j0 : NULL;
                    for (int i0 = 0; i0 < mc; i0 += NNK_MR) {
                        int rows = nnk__min(NNK_MR, mc - i0);
                        long at = (long)(m0 + i0) * ldc + n0 + j0;
                        const float *apanel = ablock + (long)i0 * kc, *rb = rbias ? rbias + m0 + i0 : NULL;
                        const float *rt = res ? res + at : NULL;
                        int done;
#if defined(__AVX512F__)
                        if (rows == NNK_MR && cols == NNK_NR)
                            done = nnk__tile_8x48(apanel, bpanel, kc, c + at, ldc, rb, cb, k0 == 0, last, rt, act1, act2);
                        else
#endif
                        if (cols > 32)
                            done = nnk__tile(3, apanel, bpanel, kc, c + at, ldc, rows, cols, rb, cb, k0 == 0, last, rt, act1, act2);
                        else if (cols > 16)
                            done = nnk__tile(2, apanel, bpanel, kc, c + at, ldc, rows, cols, rb, cb, k0 == 0, last, rt, act1, act2);
                        else
                            done = nnk__tile(1, apanel, bpanel, kc, c + at, ldc, rows, cols, rb, cb, k0 == 0, last, rt, act1, act2);
                        if (last && !done && (act1 || res))
                            for (int r = 0; r < rows; r++)
                                nnk_epilogue(c + at + (long)r * ldc, res ? res + at + (long)r * ldc : NULL, cols, act1, act2);
                    }
                }
            }
        }
    }
}

/* conv2d (groups = 1) as a product: y[O, OH*OW] = w[O, C*KH*KW] · im2col(x) + b, then the epilogue (res
   laid out like y, or NULL), for the output pixels [p0, p1) of each plane. One image; the other arguments
   are those of nnk_conv2d. The output channels computed are [o0, o0 + O) of the O_all that w has; w is
   either the whole weight as loaded, or, when w_packed, as nnk_pack_weight (width NNK_MR) left it, with O
   and o0 multiples of NNK_MR. b, y and res start at channel o0 (y and res at the plane's first pixel).
   A 1×1 convolution with stride 1 and no padding reads x directly as B. */
static inline void nnk_conv2d_gemm(float *restrict y, const float *restrict x, const float *restrict w, int w_packed,
                                   int O_all, int o0, const float *restrict b, const float *restrict res, int act1,
                                   int act2, int C, int H, int W, int O, int OH, int OW, int p0, int p1, int KH, int KW,
                                   int SH, int SW, int PT, int PL, int DH, int DW, float *restrict scratch)
{
    long K = (long)C * KH * KW;
    nnk_asrc a = {w_packed ? w : w + (long)o0 * K, w_packed ? O_all : K, w_packed, o0};
    nnk_bsrc src = {NNK_B_IM2COL, x, 0, p0, H, W, OW, KH, KW, SH, SW, PT, PL, DH, DW};
    if (KH == 1 && KW == 1 && SH == 1 && SW == 1 && PT == 0 && PL == 0 && OH == H && OW == W) {
        src.kind = NNK_B_ROWS;
        src.ld = (long)H * W;
    }
    nnk_gemm(y + p0, (long)OH * OW, O, p1 - p0, (int)K, &a, &src, b, NULL, res ? res + p0 : NULL, act1, act2, scratch);
}

/* nn.Linear as a product: y[M, O] = x[M, K] · w[O, K]ᵀ + b, then the epilogue, for the output features
   [o0, o0 + O) of the O_all that w has; y, b and res start at feature o0, and ldy is the row stride of y
   and res. w is the weight as loaded, or, when w_packed, as nnk_pack_weight (width NNK_NR) left it, with O
   and o0 multiples of NNK_NR. */
static inline void nnk_linear_gemm(float *restrict y, long ldy, const float *restrict x, const float *restrict w,
                                   int w_packed, int O_all, int o0, const float *restrict b, const float *restrict res,
                                   int act1, int act2, int M, int K, int O, float *restrict scratch)
{
    nnk_asrc a = {x, K, 0, 0};
    nnk_bsrc src = {NNK_B_COLS, w + (long)o0 * K, K, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    if (w_packed) {
        src.kind = NNK_B_PACKED;
        src.p = w;
        src.ld = O_all;
        src.first = o0;
    }
    nnk_gemm(y, ldy, M, O, K, &a, &src, NULL, b, res, act1, act2, scratch);
}

#endif
