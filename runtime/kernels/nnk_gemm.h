/*
 * nnk_gemm.h — the blocked matrix product behind conv2d and linear: C[M,N] = A[M,K] · B[K,N] + bias,
 * followed by the layer's fused epilogue.
 *
 * The loops are the classic ones of BLIS and GotoBLAS. B is copied a block of KC×NC at a time into
 * panels NR columns wide (for a convolution this copy is the im2col gather, done one block at a time, so
 * the whole patch matrix never exists). A is read in place on AVX-512 and AVX2, whose broadcasts take
 * its rows as they lie, and elsewhere copied a block of MC×KC at a time into strips MR rows high. A
 * micro-kernel then computes an MR×NR = 8×48 tile of C in registers: for every k it broadcasts the 8
 * values of A against the 48 of B, with as many independent FMAs as the ISA's registers hold (one
 * 8×48 tile in 24 zmm on AVX-512; four 4×24 sub-tiles of 12 ymm one after the other on AVX2; see each
 * path's header). Edges are handled by zero-padding the packed copies and masking the stores. MR, NR
 * and the packed layouts are the same on every path: the generated C computes its splits from them.
 *
 * Every element of C is the sum over k in increasing order, one FMA at a time, from the bias: the same
 * operations whichever tile, sub-tile, block or thread computes it, so a result does not depend on how
 * the work is split (and the AVX2 and AVX-512 tiles give the same bits). The intrinsic paths use fused
 * multiply-adds; the portable ones compute the same sums as a multiply and an add unless the compiler
 * contracts them.
 *
 * A caller passes each thread scratch memory for the packed blocks: NNK_GEMM_SCRATCH_FOR of the product's
 * own sizes, or NNK_GEMM_SCRATCH floats, enough for any (the same on every path, so that generated C sizes
 * it once: the paths that read A in place leave A's part unused).
 */
#ifndef NNK_GEMM_H
#define NNK_GEMM_H

#include "nnk_base.h"
#include "nnk_conv.h"
#include "nnk_elementwise.h"

enum {
    NNK_MR = 8,     /* rows of the register tile */
    NNK_NR = 48,    /* columns of the register tile: three vectors of 16 */
    NNK_KC = 256,   /* depth of a packed block */
    NNK_MC = 64,    /* rows of a packed block of A */
    NNK_NC = 480,   /* columns of a packed block of B (ten panels) */
};

/* Floats of scratch one nnk_gemm call needs: the packed blocks of B and A, at most. */
#define NNK_GEMM_SCRATCH ((long)NNK_KC * NNK_NC + (long)NNK_MC * NNK_KC)

/* The same for an M×N×K product: the block of B (none when B is packed already) of min(KC, K) rows and
   min(NC, N rounded up to NR) columns, then that of A (none when A is packed) of min(MC, M rounded up to
   MR) rows. nnk_gemm puts A's block after B's as computed from its own N and K, so scratch sized for a
   product of M, N and K serves any part of it (a thread's rows or columns). */
#define NNK__UPTO(x, step, most) ((long)(x) + (step) - 1 < (most) ? ((long)(x) + (step) - 1) / (step) * (step) : (most))
#define NNK_GEMM_B_FLOATS(N, K) ((long)NNK__UPTO(K, 1, NNK_KC) * NNK__UPTO(N, NNK_NR, NNK_NC))
#define NNK_GEMM_A_FLOATS(M, K) ((long)NNK__UPTO(M, NNK_MR, NNK_MC) * NNK__UPTO(K, 1, NNK_KC))
#define NNK_GEMM_SCRATCH_FOR(M, N, K, a_packed, b_packed) \
    (((b_packed) ? 0 : NNK_GEMM_B_FLOATS(N, K)) + ((a_packed) ? 0 : NNK_GEMM_A_FLOATS(M, K)))

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
    /* IM2COL over a batch (P > 0): column q is pixel q % P of image q / P, whose x starts q / P * img on */
    int P;
    long img;
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
            } else if (!b->P) {
                int kk = k0 + k, taps = b->KH * b->KW, c = kk / taps, t = kk % taps;
                nnk__im2col_row(dst, b, b->p + (long)c * b->H * b->W, t / b->KW, t % b->KW, (int)b->first + n0 + j0, w);
            } else {   /* the run of columns split where one image ends and the next begins */
                int kk = k0 + k, taps = b->KH * b->KW, c = kk / taps, t = kk % taps;
                for (long q = b->first + n0 + j0, end = q + w; q < end;) {
                    int pixel = (int)(q % b->P), seg = (int)(end - q < b->P - pixel ? end - q : b->P - pixel);
                    nnk__im2col_row(dst + (q - (b->first + n0 + j0)), b, b->p + q / b->P * b->img + (long)c * b->H * b->W, t / b->KW,
                                    t % b->KW, pixel, seg);
                    q += seg;
                }
            }
            for (int j = w; j < NNK_NR; j++)
                dst[j] = 0.0f;
        }
    }
}

/* Full unrolling of the small loops over a tile's rows and vectors, so that gcc at -O2 keeps the
   accumulators in registers (clang does so by itself). Not under AddressSanitizer, where unrolled code
   only makes compiling slow, nor at -O0, where gcc 12 warns that it ignores the annotation of the AVX-512
   tile's loops that stop at its rows. */
#if defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__) && defined(__OPTIMIZE__)
#define NNK__UNROLL _Pragma("GCC unroll 8")
#else
#define NNK__UNROLL
#endif

/* Whether a tile may apply the epilogue in registers: on the last block of K, with act1 and act2 (when
   there is a residual) nothing, relu, or where relu6 is set relu6 too. The convolutions' tiles
   (nnk_conv_nchwc.h, nnk_winograd.h) apply relu (nnk__fusable); the product's tiles relu6 as well
   (nnk__gemm_fusable: MobileNet-V2's 1×1 convolutions), max with 0 then min with 6, which is nnk_relu6's
   v < 0 ? 0 : v then t > 6 ? 6 : t to the bit (NaN passes both); applied after the tiles, row by row, it
   took 8 % of MobileNet-V2 (interleaved runs, a Zen 5 core). */
static inline int nnk__act_in_regs(int act, int relu6)
{
    return act == NNK_ACT_NONE || act == NNK_ACT_RELU || (relu6 && act == NNK_ACT_RELU6);
}
static inline int nnk__fusable_with(int last, const float *res, int act1, int act2, int relu6)
{
    return last && nnk__act_in_regs(act1, relu6) && (!res || nnk__act_in_regs(act2, relu6));
}
static inline int nnk__fusable(int last, const float *res, int act1, int act2) { return nnk__fusable_with(last, res, act1, act2, 0); }
static inline int nnk__gemm_fusable(int last, const float *res, int act1, int act2) { return nnk__fusable_with(last, res, act1, act2, 1); }

/* act (nothing, relu or relu6: nnk__gemm_fusable) of a vector v of type T on x86, from MAX, MIN, ZERO and
   SET1 of its width: max(0, v) is 0 > v ? 0 : v, which keeps NaN and -0; min(6, t) is 6 < t ? 6 : t (the
   AVX-512 and AVX2 tiles' nnk__act16 and nnk__act8) */
#define NNK__X86_ACT(NAME, T, MAX, MIN, ZERO, SET1)                                             \
    static inline __attribute__((always_inline)) T NAME(T v, int act)                           \
    {                                                                                           \
        if (act == NNK_ACT_RELU || act == NNK_ACT_RELU6)                                        \
            v = MAX(ZERO(), v);                                                                 \
        if (act == NNK_ACT_RELU6)                                                               \
            v = MIN(SET1(6.0f), v);                                                             \
        return v;                                                                               \
    }

/* The epilogue of rows × cols of C (row stride ldc) and of res laid out like it, after the tiles. */
static inline void nnk__epilogue_rows(float *c, const float *res, long ldc, int rows, int cols, int act1, int act2)
{
    for (int r = 0; r < rows; r++)
        nnk_epilogue(c + (long)r * ldc, res ? res + (long)r * ldc : NULL, cols, act1, act2);
}

/* The register tile, one path per ISA, each defining
       int nnk__tile_8x48(ap, ars, aks, bp, kc, c, ldc, rbias, cbias, first, last, res, act1, act2)
       int nnk__tile_edge(ap, ars, aks, bp, kc, c, ldc, rows, cols, rbias, cbias, first, last, res, act1, act2)
   C[rows][cols] (+)= A · bp over kc, for the full 8×48 tile and for one with rows <= MR, cols <= NR
   (B zero-padded past them), A(r, k) at ap[r·ars + k·aks]. A path that defines NNK__GEMM_A_DIRECT reads
   any strides (and no row past `rows`), so nnk_gemm passes the rows of a plain A as they lie; the others
   take a packed strip, zero-padded (ars = 1, aks = NNK_MR), which nnk_gemm then makes. `first` starts from the bias (rbias per row, cbias per column, either
   may be NULL) instead of from C. With `last` set, a tile applies the epilogue itself when it can
   (nnk__gemm_fusable; res laid out like C) and returns 1; otherwise 0, and nnk_gemm applies it. The path is
   the first of these whose macros are defined, and the header says which by defining one NNK_GEMM_*
   macro (the kernel tests check it):

       NNK_GEMM_AVX512F     __AVX512F__                    nnk_gemm_avx512.h  8×48 in 24 zmm
       NNK_GEMM_AVX2_FMA    __AVX2__ and __FMA__           nnk_gemm_avx2.h    4 × (4×24) in 12 ymm
       NNK_GEMM_VECTOR      GNU C and 128-bit SIMD         nnk_gemm_vector.h  vector types
       NNK_GEMM_SCALAR      anything else                  below              a plain loop

   Defining NNK_PORTABLE skips the intrinsic paths, and NNK_SCALAR every path but the last (for tests,
   and for comparing paths on one machine). */
#if defined(__AVX512F__) && !defined(NNK_PORTABLE) && !defined(NNK_SCALAR)
#define NNK_GEMM_AVX512F 1
#include "nnk_gemm_avx512.h"
#elif defined(__AVX2__) && defined(__FMA__) && !defined(NNK_PORTABLE) && !defined(NNK_SCALAR)
#define NNK_GEMM_AVX2_FMA 1
#include "nnk_gemm_avx2.h"
#elif defined(__aarch64__) && !defined(NNK_PORTABLE) && !defined(NNK_SCALAR)
#include "nnk_gemm_neon.h"   /* NNK_GEMM_NEON: 4 × (8×12) in 24 q registers */
#elif defined(__GNUC__) && !defined(NNK_SCALAR) &&                                                         \
    (defined(__SSE2__) || defined(__ARM_NEON) || defined(__ALTIVEC__) || defined(__wasm_simd128__))
#define NNK_GEMM_VECTOR 1
#include "nnk_gemm_vector.h"
#else
#define NNK_GEMM_SCALAR 1
static inline int nnk__tile_edge(const float *restrict ap, long ars, long aks, const float *restrict bp, int kc,
                                 float *restrict c, long ldc, int rows, int cols, const float *rbias, const float *cbias,
                                 int first, int last, const float *res, int act1, int act2)
{
    float acc[NNK_MR][NNK_NR];
    (void)last, (void)res, (void)act1, (void)act2;
    (void)ars, (void)aks;   /* a packed strip: nnk_gemm packs A for this path */
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

static inline int nnk__tile_8x48(const float *restrict ap, long ars, long aks, const float *restrict bp, int kc,
                                 float *restrict c, long ldc, const float *rbias, const float *cbias, int first,
                                 int last, const float *res, int act1, int act2)
{
    return nnk__tile_edge(ap, ars, aks, bp, kc, c, ldc, NNK_MR, NNK_NR, rbias, cbias, first, last, res, act1, act2);
}
#endif

/* A panel of NNK__NARROW columns or fewer (a 7×7 plane's 49 pixels are a panel of 48 and one of 1) against
   packed strips of A (ars = 1, aks = NNK_MR), on AVX2 + FMA (and AVX-512): the tiles would spend a
   vector of B, and a broadcast and an FMA for each row of A, on each of its few columns; here a column at a
   time takes one broadcast of B a k, and a ymm of each strip's 8 rows of A (8 strips at once, 8 chains
   of FMAs). Every element is the same chain of FMAs from the same start as in the tiles: the same bits.
   1×1 192 → 1152 on 7×7 alone, warm, a Zen 5 core: 150-159 → 185-190 GFLOP/s (225 on 48 pixels); in
   MNASNet its 7×7 layers 0.24 → 0.215 ms, the model 5 % faster (per-op medians, interleaved runs).
   C[mc][cols] (+)= A · bp over kc, for the mc <= NNK_MC rows (strips of 8, the last one partly past mc)
   from `a` (strip s at a + 8s · astrip); first starts from rbias (per row) or cbias (per column) or 0
   instead of from C; no epilogue. */
#if defined(__AVX2__) && defined(__FMA__) && !defined(NNK_PORTABLE) && !defined(NNK_SCALAR)
#define NNK__NARROW 4
static __attribute__((noinline, unused)) void nnk__narrow(const float *restrict a, long astrip, int mc, const float *restrict bp,
                                                        int kc, int cols, float *restrict c, long ldc, const float *rbias,
                                                        const float *cbias, int first)
{
    _Static_assert(NNK_MC <= 8 * NNK_MR, "nnk__narrow holds a block's strips in 8 accumulators");
    const int ns = (mc + NNK_MR - 1) / NNK_MR;
    for (int j = 0; j < cols; j++) {
        __m256 acc[8];
        float init[8 * NNK_MR];
        for (int r = 0; r < 8 * NNK_MR; r++)
            init[r] = r >= mc ? 0.0f : !first ? c[(long)r * ldc + j] : rbias ? rbias[r] : cbias ? cbias[j] : 0.0f;
NNK__UNROLL
        for (int s = 0; s < 8; s++)
            acc[s] = _mm256_loadu_ps(init + s * NNK_MR);
        for (int k = 0; k < kc; k++) {
            __m256 bv = _mm256_broadcast_ss(bp + (long)k * NNK_NR + j);
NNK__UNROLL
            for (int s = 0; s < 8; s++)
                if (s < ns)
                    acc[s] = _mm256_fmadd_ps(_mm256_loadu_ps(a + (long)s * NNK_MR * astrip + (long)k * NNK_MR), bv, acc[s]);
        }
NNK__UNROLL
        for (int s = 0; s < 8; s++)
            _mm256_storeu_ps(init + s * NNK_MR, acc[s]);
        for (int r = 0; r < mc; r++)
            c[(long)r * ldc + j] = init[r];
    }
}
#endif

/* The depth a tile computes over at a time, within a packed block of NNK_KC (whose layout is the same on
   every path): a path whose L1 does not hold a 48-column panel of NNK_KC rows with its A (AVX2's 32 KB
   L1 of Zen 3; 48 KB for 256 rows) defines a shorter run. */
#ifndef NNK__KC_RUN
#define NNK__KC_RUN NNK_KC
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
   scratch holds NNK_GEMM_SCRATCH_FOR(M, N, K, a->packed, b->kind == NNK_B_PACKED) floats (or more). C must not
   overlap A, B or res. */
static inline void nnk_gemm(float *restrict c, long ldc, int M, int N, int K, const nnk_asrc *a, const nnk_bsrc *b,
                            const float *rbias, const float *cbias, const float *res, int act1, int act2,
                            float *restrict scratch)
{
    float *bp = scratch, *ap = scratch + (b->kind == NNK_B_PACKED ? 0 : NNK_GEMM_B_FLOATS(N, K));
#ifdef NNK__GEMM_A_DIRECT
    const int pack_a = 0;
    (void)ap;
#else
    const int pack_a = !a->packed;
#endif
    const int direct = !a->packed && !pack_a;   /* A's rows read where they lie */
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
                const float *ablock = direct ? a->p + (long)m0 * a->ld + k0
                                    : a->packed ? a->p + NNK_PACKED_AT(a->ld, kc, k0, a->first + m0) : ap;
                long ars = direct ? a->ld : 1, aks = direct ? 1 : NNK_MR, astrip = direct ? a->ld : kc;
                if (pack_a)
                    nnk__pack_a(ap, a->p + (long)m0 * a->ld + k0, a->ld, mc, kc);
                for (int j0 = 0; j0 < nc; j0 += NNK_NR) {
                    int cols = nnk__min(NNK_NR, nc - j0);
                    const float *cb = cbias ? cbias + n0 + j0 : NULL;
                    /* the block's depth in runs of NNK__KC_RUN, each over all the rows (C stored and reloaded
                       between runs: the same sums to the bit) */
                    for (int k1 = 0; k1 == 0 || k1 < kc; k1 += NNK__KC_RUN) {
                        int kr = nnk__min(NNK__KC_RUN, kc - k1), first = k0 + k1 == 0, end = last && k1 + kr >= kc;
                        const float *bpanel = bblock + (long)j0 * kc + (long)k1 * NNK_NR;
#ifdef NNK__NARROW
                        if (cols <= NNK__NARROW && !direct) {
                            nnk__narrow(ablock + k1 * aks, astrip, mc, bpanel, kr, cols, c + (long)m0 * ldc + n0 + j0, ldc,
                                        rbias ? rbias + m0 : NULL, cb, first);
                            if (end && (act1 || res))
                                nnk__epilogue_rows(c + (long)m0 * ldc + n0 + j0, res ? res + (long)m0 * ldc + n0 + j0 : NULL, ldc, mc,
                                                   cols, act1, act2);
                            continue;
                        }
#endif
                        for (int i0 = 0; i0 < mc; i0 += NNK_MR) {
                            int rows = nnk__min(NNK_MR, mc - i0);
                            long at = (long)(m0 + i0) * ldc + n0 + j0;
                            const float *apanel = ablock + i0 * astrip + k1 * aks, *rb = rbias ? rbias + m0 + i0 : NULL;
                            const float *rt = res ? res + at : NULL;
                            int done;
                            if (rows == NNK_MR && cols == NNK_NR)
                                done = nnk__tile_8x48(apanel, ars, aks, bpanel, kr, c + at, ldc, rb, cb, first, end, rt,
                                                      act1, act2);
                            else
                                done = nnk__tile_edge(apanel, ars, aks, bpanel, kr, c + at, ldc, rows, cols, rb, cb, first,
                                                      end, rt, act1, act2);
                            if (end && !done && (act1 || res))
                                nnk__epilogue_rows(c + at, rt, ldc, rows, cols, act1, act2);
                        }
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
    nnk_bsrc src = {NNK_B_IM2COL, x, 0, p0, H, W, OW, KH, KW, SH, SW, PT, PL, DH, DW, 0, 0};
    if (KH == 1 && KW == 1 && SH == 1 && SW == 1 && PT == 0 && PL == 0 && OH == H && OW == W) {
        src.kind = NNK_B_ROWS;
        src.ld = (long)H * W;
    }
    nnk_gemm(y + p0, (long)OH * OW, O, p1 - p0, (int)K, &a, &src, b, NULL, res ? res + p0 : NULL, act1, act2, scratch);
}

/* Channels [o0, o1) and pixels [p0, p1) of a conv2d of one image as a product (nnk_conv2d_gemm), with the
   shape in p: y, x, b and res are the image's and layer's whole tensors. */
static inline void nnk_conv2d_gemm_part(float *restrict y, const float *restrict x, const float *restrict w, int w_packed,
                                        const float *restrict b, const float *restrict res, int act1, int act2,
                                        const nnk_conv_params *p, int o0, int o1, int p0, int p1, float *restrict scratch)
{
    long at = (long)o0 * p->OH * p->OW;
    nnk_conv2d_gemm(y + at, x, w, w_packed, p->O, o0, b ? b + o0 : NULL, res ? res + at : NULL, act1, act2, p->C, p->H, p->W, o1 - o0,
                    p->OH, p->OW, p0, p1, p->kh, p->kw, p->sh, p->sw, p->pt, p->pl, p->dh, p->dw, scratch);
}

/* Scratch of nnk_conv2d_gemm_batch for O output channels: the product's blocks and a block of its result;
   the same for Q columns in all and K = C*KH*KW, with the weight packed or not. */
#define NNK_CONV_BATCH_SCRATCH(O) (NNK_GEMM_SCRATCH + (long)(O) * NNK_NC)
#define NNK_CONV_BATCH_SCRATCH_FOR(O, Q, K, w_packed) \
    (NNK_GEMM_SCRATCH_FOR(O, NNK__UPTO(Q, 1, NNK_NC), K, w_packed, 0) + (long)(O) * NNK__UPTO(Q, 1, NNK_NC))

/* conv2d (groups = 1) of a batch of small planes as one product whose columns are every image's pixels,
   so that no tile is wasted on a plane narrower than NNK_NR: columns [q0, q1) of the N*OH*OW, all O
   output channels (w as loaded or packed, as for nnk_conv2d_gemm). Each block of columns is computed from
   the bias into scratch, then copied to y[N, O, OH, OW] and finished with the epilogue (res laid out like
   y), so each element gets the same sums and the same epilogue as from nnk_conv2d_gemm. x, y and res are
   the whole batch; scratch holds NNK_CONV_BATCH_SCRATCH_FOR(O, q1 - q0, C*KH*KW, w_packed) floats (or
   NNK_CONV_BATCH_SCRATCH(O), enough for any). */
static inline void nnk_conv2d_gemm_batch(float *restrict y, const float *restrict x, const float *restrict w, int w_packed,
                                         const float *restrict b, const float *restrict res, int act1, int act2, int C, int H,
                                         int W, int O, int OH, int OW, long q0, long q1, int KH, int KW, int SH, int SW, int PT,
                                         int PL, int DH, int DW, float *restrict scratch)
{
    long K = (long)C * KH * KW, P = (long)OH * OW;
    long most = q1 - q0 < NNK_NC ? q1 - q0 : NNK_NC;   /* columns of one block */
    float *block = scratch + NNK_GEMM_SCRATCH_FOR(O, most, K, w_packed, 0);
    nnk_asrc a = {w, w_packed ? O : K, w_packed, 0};
    for (long c0 = q0; c0 < q1; c0 += NNK_NC) {
        int cols = (int)(q1 - c0 < NNK_NC ? q1 - c0 : NNK_NC);
        nnk_bsrc src = {NNK_B_IM2COL, x, 0, c0, H, W, OW, KH, KW, SH, SW, PT, PL, DH, DW, (int)P, (long)C * H * W};
        nnk_gemm(block, cols, O, cols, (int)K, &a, &src, b, NULL, NULL, NNK_ACT_NONE, NNK_ACT_NONE, scratch);
        for (long q = c0; q < c0 + cols;) {   /* runs of one image's pixels */
            long n = q / P, p = q % P, len = c0 + cols - q < P - p ? c0 + cols - q : P - p;
            for (int o = 0; o < O; o++) {
                float *yr = y + (n * O + o) * P + p;
                memcpy(yr, block + (long)o * cols + (q - c0), (size_t)len * sizeof *yr);
                if (act1 || res)
                    nnk_epilogue(yr, res ? res + (n * O + o) * P + p : NULL, len, act1, act2);
            }
            q += len;
        }
    }
}

/* Columns [q0, q1) of the batch's pixels (nnk_conv2d_gemm_batch), with the shape in p. */
static inline void nnk_conv2d_batch_part(float *restrict y, const float *restrict x, const float *restrict w, int w_packed,
                                         const float *restrict b, const float *restrict res, int act1, int act2,
                                         const nnk_conv_params *p, long q0, long q1, float *restrict scratch)
{
    nnk_conv2d_gemm_batch(y, x, w, w_packed, b, res, act1, act2, p->C, p->H, p->W, p->O, p->OH, p->OW, q0, q1, p->kh, p->kw, p->sh,
                          p->sw, p->pt, p->pl, p->dh, p->dw, scratch);
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
    nnk_bsrc src = {NNK_B_COLS, w + (long)o0 * K, K, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    if (w_packed) {
        src.kind = NNK_B_PACKED;
        src.p = w;
        src.ld = O_all;
        src.first = o0;
    }
    nnk_gemm(y, ldy, M, O, K, &a, &src, NULL, b, res, act1, act2, scratch);
}

#endif
