/*
 * nnk_dwconv.h — depthwise and grouped convolutions: conv2d with groups > 1.
 *
 * Depthwise (groups == C; every input channel makes M = O / C output channels, usually 1): MobileNet's
 * 3×3, ConvNeXt's 7×7; and groups of few channels (ResNeXt's 4 to 16, RegNet's 8 or 16), each output
 * channel then summing over its group's Cg input channels. The input channels of a group are first copied
 * into zero-padded planes in scratch, split by column phase for a stride: phase r of a padded row holds
 * its columns r, r + SW, r + 2·SW, ... So the input of output column ow under tap column kw, padded column
 * ow·SW + kw·DW, is element ow + t / SW of phase t % SW (t = kw·DW): for every stride, dilation and
 * padding, each tap reads a contiguous run of the padded plane, and no load needs an edge test. An output
 * row is then computed a block at a time, R rows × NV vectors of VLEN floats in registers (8 accumulators:
 * 2 rows of up to 4 vectors, 4 of 2, or 8 rows of one for the narrow planes of a network's end): from the bias,
 * one multiply-add per tap (c, kh, kw) in the order of the weight, the weight broadcast once for the
 * block's NV·R vectors. The last vector of a row may run past OW: the padded rows are wide enough (a
 * multiple of 16 columns, plus the taps' reach) that its loads stay in the plane, and only the row's own
 * columns are stored. The fused epilogue (act1, the residual, act2; nnk_epilogue) runs on each block of
 * rows just stored, while it is in L1.
 *
 * The vector is the target's widest (GNU C vector types): 16 floats with AVX-512, 8 with AVX, 4 with
 * SSE2, NEON or other 128-bit SIMD, and each multiply-add is one fused instruction on the AVX-512, AVX2 +
 * FMA and NEON paths (so those three give the same bits), a multiply and an add on the others (unless
 * the compiler contracts them). Without vector extensions (or under NNK_SCALAR) the same loops run on
 * floats. The path is the first of these whose macros are defined, named by one NNK_DWCONV_* macro:
 *
 *     NNK_DWCONV_AVX512F    __AVX512F__               16 floats, _mm512_fmadd_ps
 *     NNK_DWCONV_AVX2_FMA   __AVX2__ and __FMA__       8 floats, _mm256_fmadd_ps
 *     NNK_DWCONV_NEON       __aarch64__                4 floats, vfmaq_f32
 *     NNK_DWCONV_VECTOR     GNU C and 128-bit SIMD     4 or 8 floats, a * b + c
 *     NNK_DWCONV_SCALAR     anything else              floats
 *
 * (NNK_PORTABLE skips the first three, NNK_SCALAR all but the last, as for nnk_gemm.h.)
 *
 * Groups of many channels (K = Cg·KH·KW of a few hundred: ResNeXt's last stage) are faster as a blocked
 * product each (nnk_conv2d_gemm_groups: A = the group's weights, B = the im2col of its input channels),
 * the epilogue fused; compiler/passes/select_kernels.c chooses.
 *
 * Threads split both by output channels, anywhere; every element is computed by the same operations
 * whichever thread computes it.
 */
#ifndef NNK_DWCONV_H
#define NNK_DWCONV_H

#include "nnk_base.h"
#include "nnk_conv.h"
#include "nnk_elementwise.h"
#include "nnk_gemm.h"

#if defined(__GNUC__) && !defined(NNK_SCALAR) &&                                                         \
    (defined(__SSE2__) || defined(__ARM_NEON) || defined(__ALTIVEC__) || defined(__wasm_simd128__))
#if defined(__AVX512F__)
#define NNK__DW_VLEN 16
#elif defined(__AVX__)
#define NNK__DW_VLEN 8
#else
#define NNK__DW_VLEN 4
#endif
typedef float nnk__dwv __attribute__((vector_size(4 * NNK__DW_VLEN)));
#if defined(__AVX512F__) && !defined(NNK_PORTABLE)
#include <immintrin.h>
#define NNK_DWCONV_AVX512F 1
#define NNK__DW_FMA(acc, w, x) ((nnk__dwv)_mm512_fmadd_ps((__m512)(w), (__m512)(x), (__m512)(acc)))
#elif defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__) && !defined(NNK_PORTABLE)
#include <immintrin.h>
#define NNK_DWCONV_AVX2_FMA 1
#define NNK__DW_FMA(acc, w, x) ((nnk__dwv)_mm256_fmadd_ps((__m256)(w), (__m256)(x), (__m256)(acc)))
#elif defined(__aarch64__) && !defined(NNK_PORTABLE)
#include <arm_neon.h>
#define NNK_DWCONV_NEON 1
#define NNK__DW_FMA(acc, w, x) ((nnk__dwv)vfmaq_f32((float32x4_t)(acc), (float32x4_t)(w), (float32x4_t)(x)))
#else
#define NNK_DWCONV_VECTOR 1
#define NNK__DW_FMA(acc, w, x) ((acc) + (w) * (x))
#endif
#define NNK__DW_INLINE static inline __attribute__((always_inline))
static inline nnk__dwv nnk__dw_load(const float *p)
{
    nnk__dwv v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void nnk__dw_store(float *p, nnk__dwv v) { memcpy(p, &v, sizeof v); }
/* the first n < VLEN lanes of v (lane by lane: through a copy in memory, gcc keeps v itself on the stack) */
static inline void nnk__dw_store_part(float *p, nnk__dwv v, int n)
{
#if defined(NNK_DWCONV_AVX512F)
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), (__m512)v);
#else
    for (int l = 0; l < NNK__DW_VLEN; l++)   /* (a constant count: gcc then sees no lane past the vector) */
        if (l < n)
            p[l] = v[l];
#endif
}
static inline nnk__dwv nnk__dw_set1(float s)
{
    const nnk__dwv zero = {0};
    return zero + s;
}
#else
#define NNK_DWCONV_SCALAR 1
#define NNK__DW_VLEN 1
typedef float nnk__dwv;
#define NNK__DW_FMA(acc, w, x) ((acc) + (w) * (x))
#define NNK__DW_INLINE static inline
static inline nnk__dwv nnk__dw_load(const float *p) { return *p; }
static inline void nnk__dw_store(float *p, nnk__dwv v) { *p = v; }
static inline void nnk__dw_store_part(float *p, nnk__dwv v, int n) { (void)p, (void)v, (void)n; }   /* (never: n < VLEN = 1) */
static inline nnk__dwv nnk__dw_set1(float s) { return s; }
#endif

enum {
    NNK_DW_ACC = 8,               /* accumulators of a block: R rows × NV vectors, enough chains to hide latency */
    NNK_DWCONV_MAX_TAPS = 1024,   /* Cg·KH·KW at most (the taps' offsets are a table on the stack) */
};

/* Columns of a padded row: the output row rounded up to 16 (the widest vector), plus the taps' reach. */
#define NNK__DW_ROW(OW, KW, SW, DW) (((long)(OW) + 15) / 16 * 16 + (long)((KW) - 1) * (DW) / (SW))
/* Rows of the padded plane that the output rows reach. */
#define NNK__DW_HP(OH, KH, SH, DH) ((long)((OH) - 1) * (SH) + (long)((KH) - 1) * (DH) + 1)
/* Floats of one input channel padded (in SW phases), and of the scratch a thread needs for
   nnk_dwconv2d_part: one group's Cg input channels (1 for a depthwise conv2d) and a padded row. */
#define NNK__DW_PADDED(OH, OW, KH, KW, SH, SW, DH, DW) ((long)(SW) * NNK__DW_HP(OH, KH, SH, DH) * NNK__DW_ROW(OW, KW, SW, DW))
#define NNK_DWCONV_SCRATCH(Cg, OH, OW, KH, KW, SH, SW, DH, DW) \
    ((long)(Cg) * NNK__DW_PADDED(OH, OW, KH, KW, SH, SW, DH, DW) + (long)(SW) * NNK__DW_ROW(OW, KW, SW, DW))

/* Channel x[H][W] into the phases of its padded plane xp[SW][hp][lr]: element j of phase r of padded row i
   is x[i - PT][j·SW + r - PL]. Only the image's own elements are written: the zeros around them, the same
   for every channel, were set once (nnk_dwconv2d_part). With a stride, each row is first placed in row[SW·lr]
   (zero around the image likewise), then dealt into the phases with a constant step, which vectorises. */
static inline void nnk__dw_pad(float *restrict xp, float *restrict row, const float *restrict x, const nnk_conv_params *p, long hp,
                               long lr)
{
    long SW = p->sw, n = SW * lr - p->pl < p->W ? SW * lr - p->pl : p->W;   /* columns of the image the outputs reach */
    for (long ih = 0; ih < p->H && ih + p->pt < hp && n > 0; ih++) {
        long i = ih + p->pt;
        if (SW == 1) {
            memcpy(xp + i * lr + p->pl, x + ih * p->W, (size_t)n * sizeof *xp);
            continue;
        }
        memcpy(row + p->pl, x + ih * p->W, (size_t)n * sizeof *row);
        if (SW == 2) {
            float *d0 = xp + i * lr, *d1 = xp + (hp + i) * lr;
            for (long j = 0; j < lr; j++) {
                d0[j] = row[2 * j];
                d1[j] = row[2 * j + 1];
            }
        } else {
            for (long r = 0; r < SW; r++)
                for (long j = 0; j < lr; j++)
                    xp[(r * hp + i) * lr + j] = row[j * SW + r];
        }
    }
}

/* One block: rows [0, R) (row stride OW in y, SH·lr in the padded plane) × nv vectors from column 0 of y
   and of xp, which point at the block's first output and at its first input under tap 0; cols is how many
   columns of the block's rows are output columns (the rest of the last vector is not stored). */
NNK__DW_INLINE void nnk__dw_block(int R, int nv, float *restrict y, long ldy, const float *restrict xp, long ldx,
                                  const float *restrict wk, const long *restrict off, int taps, float bias, int cols)
{
    nnk__dwv acc[NNK_DW_ACC];   /* acc[r·nv + v] */
    if (R * nv > NNK_DW_ACC)   /* (never: the callers keep to 8; this removes the instantiations they do not take) */
        return;
NNK__UNROLL
    for (int i = 0; i < NNK_DW_ACC; i++)   /* (all 8, the unused ones too, so that gcc sees every one set) */
        acc[i] = nnk__dw_set1(bias);
    for (int k = 0; k < taps; k++) {
        nnk__dwv wv = nnk__dw_set1(wk[k]);
        const float *src = xp + off[k];
NNK__UNROLL
        for (int r = 0; r < R; r++)
NNK__UNROLL
            for (int v = 0; v < nv; v++)
                acc[r * nv + v] = NNK__DW_FMA(acc[r * nv + v], wv, nnk__dw_load(src + r * ldx + v * NNK__DW_VLEN));
    }
NNK__UNROLL
    for (int r = 0; r < R; r++)
NNK__UNROLL
        for (int v = 0; v < nv; v++) {
            float *d = y + r * ldy + v * NNK__DW_VLEN;
            int left = cols - v * NNK__DW_VLEN;
            if (left >= NNK__DW_VLEN)
                nnk__dw_store(d, acc[r * nv + v]);
            else
                nnk__dw_store_part(d, acc[r * nv + v], left);
        }
}

/* The blocks of R rows × up to NV vectors at every column of one output plane; the dispatch makes R and nv
   constants. */
NNK__DW_INLINE void nnk__dw_rows(int R, int NV, float *restrict y, int OW, const float *restrict xp, long ldx,
                                 const float *restrict wk, const long *restrict off, int taps, float bias)
{
    const int step = NV * NNK__DW_VLEN;
    for (int j = 0; j < OW; j += step) {
        int cols = OW - j < step ? OW - j : step, nv = (cols + NNK__DW_VLEN - 1) / NNK__DW_VLEN;
        float *yj = y + j;
        const float *xj = xp + j;
        if (nv == 4 && NV >= 4)
            nnk__dw_block(R, 4, yj, OW, xj, ldx, wk, off, taps, bias, cols);
        else if (nv == 3 && NV >= 3)
            nnk__dw_block(R, 3, yj, OW, xj, ldx, wk, off, taps, bias, cols);
        else if (nv == 2 && NV >= 2)
            nnk__dw_block(R, 2, yj, OW, xj, ldx, wk, off, taps, bias, cols);
        else
            nnk__dw_block(R, 1, yj, OW, xj, ldx, wk, off, taps, bias, cols);
    }
}

/* Rows [0, R) of a plane in blocks of up to NV = 8 / rb vectors (R <= rb). */
NNK__DW_INLINE void nnk__dw_rows_of(int R, int rb, float *restrict y, int OW, const float *restrict xp, long ldx,
                                    const float *restrict wk, const long *restrict off, int taps, float bias)
{
    switch (R) {
#define NNK__DW_R(n) case n: nnk__dw_rows(n, NNK_DW_ACC / rb, y, OW, xp, ldx, wk, off, taps, bias); break;
    NNK__DW_R(8) NNK__DW_R(7) NNK__DW_R(6) NNK__DW_R(5) NNK__DW_R(4) NNK__DW_R(3) NNK__DW_R(2)
#undef NNK__DW_R
    default: nnk__dw_rows(1, NNK_DW_ACC / rb, y, OW, xp, ldx, wk, off, taps, bias); break;
    }
}

/* One output plane y[OH][OW] from the padded input in xp, its taps (wk[taps], their offsets in xp off[taps]),
   from the bias, then the epilogue (res laid out like y, or NULL), block of rows by block of rows. Out of
   line on the GNU paths: one copy serves every layer. */
#if defined(__GNUC__)
__attribute__((noinline, unused))
#endif
static void nnk__dw_plane(float *restrict y, const float *restrict xp, const float *restrict wk, const long *restrict off, int taps,
                          float bias, const float *restrict res, int act1, int act2, const nnk_conv_params *p, long lr)
{
    long ldx = (long)p->sh * lr;
    /* a block of 8 accumulators: 8 rows of one vector, 4 of two, or 2 of up to four */
    int rb = p->OW <= NNK__DW_VLEN ? 8 : p->OW <= 2 * NNK__DW_VLEN ? 4 : 2;
    for (int oh = 0; oh < p->OH; oh += rb) {
        int R = p->OH - oh < rb ? p->OH - oh : rb;
        float *yr = y + (long)oh * p->OW;
        const float *xr = xp + (long)oh * ldx;
        if (rb == 8)
            nnk__dw_rows_of(R, 8, yr, p->OW, xr, ldx, wk, off, taps, bias);
        else if (rb == 4)
            nnk__dw_rows_of(R < 4 ? R : 4, 4, yr, p->OW, xr, ldx, wk, off, taps, bias);
        else
            nnk__dw_rows_of(R < 2 ? R : 2, 2, yr, p->OW, xr, ldx, wk, off, taps, bias);
        if (act1 || res)
            nnk_epilogue(yr, res ? res + (long)oh * p->OW : NULL, (long)R * p->OW, act1, act2);
    }
}

/* Output channels [o0, o1) of a depthwise or grouped conv2d of one image on vectorised rows: output channel
   o of group g = o / (O / groups) reads the group's Cg = C / groups input channels (depthwise: groups == C,
   Cg = 1, and O / C output channels from each input channel), y[o] = conv(x[g·Cg .. (g+1)·Cg], w[o]) +
   b[o] with the taps in the order of w[o][Cg][KH][KW], then y = act2(act1(y) + res) (or act1(y) without
   res). y, x, res and b are the image's and layer's whole tensors (b and res may be NULL); scratch holds
   NNK_DWCONV_SCRATCH of the shape; Cg·KH·KW is at most NNK_DWCONV_MAX_TAPS. */
static inline void nnk_dwconv2d_part(float *restrict y, const float *restrict x, const float *restrict w, const float *restrict b,
                                     const float *restrict res, int act1, int act2, const nnk_conv_params *p, int o0, int o1,
                                     float *restrict scratch)
{
    int Cg = p->C / p->groups, Og = p->O / p->groups, taps = Cg * p->kh * p->kw;
    long hp = NNK__DW_HP(p->OH, p->kh, p->sh, p->dh), lr = NNK__DW_ROW(p->OW, p->kw, p->sw, p->dw);
    long padded = NNK__DW_PADDED(p->OH, p->OW, p->kh, p->kw, p->sh, p->sw, p->dh, p->dw), plane = (long)p->OH * p->OW;
    long off[NNK_DWCONV_MAX_TAPS];   /* where each tap (c, kh, kw) reads, from the output's first input */
    for (int c = 0, k = 0; c < Cg; c++)
        for (int kh = 0; kh < p->kh; kh++)
            for (int kw = 0; kw < p->kw; kw++, k++) {
                int t = kw * p->dw;
                off[k] = c * padded + ((long)(t % p->sw) * hp + (long)kh * p->dh) * lr + t / p->sw;
            }
    if (o0 < o1)
        memset(scratch, 0, (size_t)NNK_DWCONV_SCRATCH(Cg, p->OH, p->OW, p->kh, p->kw, p->sh, p->sw, p->dh, p->dw) * sizeof *scratch);
    for (int o = o0, group = -1; o < o1; o++) {
        if (o / Og != group) {
            group = o / Og;
            for (int c = 0; c < Cg; c++)
                nnk__dw_pad(scratch + c * padded, scratch + Cg * padded, x + ((long)group * Cg + c) * p->H * p->W, p, hp, lr);
        }
        nnk__dw_plane(y + o * plane, scratch, w + (long)o * taps, off, taps, b ? b[o] : 0.0f, res ? res + o * plane : NULL, act1, act2,
                      p, lr);
    }
}

/* Output channels [o0, o1) of a grouped conv2d of one image, each group's share a blocked product
   (nnk_conv2d_gemm) of its weights' rows and the im2col of the group's input channels, with the epilogue
   fused. The range may start and end anywhere in a group: each element is the same sum either way. y, x,
   b and res are the image's and layer's whole tensors; scratch holds NNK_GEMM_SCRATCH_FOR(O/groups, OH*OW,
   C/groups*kh*kw, 0, 0) floats. */
static inline void nnk_conv2d_gemm_groups(float *restrict y, const float *restrict x, const float *restrict w, const float *restrict b,
                                          const float *restrict res, int act1, int act2, const nnk_conv_params *p, int o0, int o1,
                                          float *restrict scratch)
{
    int Cg = p->C / p->groups, Og = p->O / p->groups;
    long plane = (long)p->OH * p->OW, K = (long)Cg * p->kh * p->kw;
    for (int g = o0 / Og; g < p->groups && g * Og < o1; g++) {
        int lo = o0 > g * Og ? o0 : g * Og, hi = o1 < (g + 1) * Og ? o1 : (g + 1) * Og;
        nnk_conv2d_gemm(y + lo * plane, x + (long)g * Cg * p->H * p->W, w + (long)g * Og * K, 0, Og, lo - g * Og, b ? b + lo : NULL,
                        res ? res + lo * plane : NULL, act1, act2, Cg, p->H, p->W, hi - lo, p->OH, p->OW, 0, (int)plane, p->kh, p->kw,
                        p->sh, p->sw, p->pt, p->pl, p->dh, p->dw, scratch);
    }
}

#endif
