/*
 * nnk_gemm_avx2.h — the AVX2 + FMA register tile of nnk_gemm.h, which includes it when __AVX2__ and
 * __FMA__ are defined and __AVX512F__ is not (not a header to include on its own).
 *
 * The packed layouts are those of every path (strips of A ap[k][8], panels of B bp[k][48]), because the
 * generated C computes its splits from NNK_MR = 8 and NNK_NR = 48. AVX2 has 16 ymm registers of 8
 * floats: the 8×48 tile, 48 vectors, cannot stay in them, so it is computed as four 4×24 sub-tiles one
 * after the other, each over the whole run of k (NNK__KC_RUN). A sub-tile holds 12 accumulators (4 rows × 3 vectors) + 3
 * vectors of B + 1 broadcast of A = all 16 registers; for every k, 3 loads of B, 4 broadcasts and 12
 * independent FMAs, enough chains for two FMA pipes of latency 4 to 5. Order: top left, bottom left, top
 * right, bottom right, so that the second sub-tile of each column half finds those 24 columns of the
 * panel in L1.
 *
 * Measured on one Zen 5 core at -march=x86-64-v3 (AVX2 FMA peak 133 GFLOP/s), ResNet-50's products, clang
 * 14 and gcc 12: 4×24 as above 108–128 GFLOP/s on 1×1 convolutions, 85–106 on 3×3 (the im2col gather
 * included); 2×48 sub-tiles (12 accumulators, but 6 loads of B and 2 broadcasts a k) 3–4 % slower; the
 * sub-tiles row half first 2–4 % slower; kc cut into chunks of 64 or 128 (C stored and reloaded between
 * chunks, which changes no bit, so that a chunk of the panel stays in L1 for all four) within ±2 % there,
 * with Zen 5's 48 KB L1 (but see NNK__KC_RUN below for Zen 3's 32 KB). The results are bit-identical to the AVX-512 tile's: the same FMAs in the same order.
 *
 * nnk__sub_4x24 is the full sub-tile, written out with named accumulators and out of line, so that gcc
 * at -O2 spills none; nnk__sub4 is the edge sub-tile (rows < 4 or cols < 24), with masked loads and
 * stores. Both apply relu and the residual in registers, like the AVX-512 tile, and every element is the
 * same chain of FMAs from the bias in either, so the result does not depend on the tile split.
 *
 * As on AVX-512, A is read where it lies, element (r, k) at ap[r·ars + k·aks] (a packed strip, or a
 * matrix's rows), and nnk_gemm packs none; an edge sub-tile reads its last row again for those past `rows`.
 */
#define NNK__GEMM_A_DIRECT 1

/* Runs of 128 of a block's 256 rows: a 48-column panel of them (24 KB) and the 4 rows of A stay in a
   32 KB L1 for all the tiles of a block of rows. On one Zen 3 core (102.6 GFLOP/s), ViT-B/16's products
   (197 × 768 × 3072 and 197 × 3072 × 768), clang 14 -O3: 82-84 GFLOP/s in runs of 256, 90-92 in runs of
   128, 87-90 in runs of 192. */
#define NNK__KC_RUN 128

#include <immintrin.h>
NNK__X86_ACT(nnk__act8, __m256, _mm256_max_ps, _mm256_min_ps, _mm256_setzero_ps, _mm256_set1_ps)

/* Keeps three vectors in registers: gcc 12 otherwise folds each load of B into the four FMAs that use it
   (12 loads and 4 broadcasts a k where 2 loads a cycle are the limit: 64 GFLOP/s instead of 90 on Zen 3).
   An empty asm that "changes" them; it emits nothing (clang, which also defines __GNUC__, keeps them in
   registers anyway). */
#if defined(__GNUC__)
#define NNK__IN_REGS(a, b, c) __asm__("" : "+x"(a), "+x"(b), "+x"(c))
#else
#define NNK__IN_REGS(a, b, c) ((void)0)
#endif

/* C[4][24] (+)= A · bp over kc, A(r, k) at ap[r·ars + k·aks]; bp points into a panel (stride NNK_NR). */
#define NNK__Y_INIT(r)                                                                          \
    if (!first) {                                                                               \
        c##r##0 = _mm256_loadu_ps(c + (long)(r) * ldc);                                         \
        c##r##1 = _mm256_loadu_ps(c + (long)(r) * ldc + 8);                                     \
        c##r##2 = _mm256_loadu_ps(c + (long)(r) * ldc + 16);                                    \
    } else if (rbias) {                                                                         \
        c##r##0 = c##r##1 = c##r##2 = _mm256_set1_ps(rbias[r]);                                 \
    } else if (cbias) {                                                                         \
        c##r##0 = _mm256_loadu_ps(cbias);                                                       \
        c##r##1 = _mm256_loadu_ps(cbias + 8);                                                   \
        c##r##2 = _mm256_loadu_ps(cbias + 16);                                                  \
    } else {                                                                                    \
        c##r##0 = c##r##1 = c##r##2 = _mm256_setzero_ps();                                      \
    }
#define NNK__Y_FMA(r)                                                                           \
    {                                                                                           \
        __m256 a = _mm256_broadcast_ss(a##r + o);                                               \
        c##r##0 = _mm256_fmadd_ps(a, b0, c##r##0);                                              \
        c##r##1 = _mm256_fmadd_ps(a, b1, c##r##1);                                              \
        c##r##2 = _mm256_fmadd_ps(a, b2, c##r##2);                                              \
    }
#define NNK__Y_ACT3(r, act)                                                                     \
    c##r##0 = nnk__act8(c##r##0, act);                                                          \
    c##r##1 = nnk__act8(c##r##1, act);                                                          \
    c##r##2 = nnk__act8(c##r##2, act);
#define NNK__Y_STORE(r)                                                                         \
    if (epilogue) {                                                                             \
        NNK__Y_ACT3(r, act1)                                                                    \
        if (res) {                                                                              \
            c##r##0 = _mm256_add_ps(c##r##0, _mm256_loadu_ps(res + (long)(r) * ldc));           \
            c##r##1 = _mm256_add_ps(c##r##1, _mm256_loadu_ps(res + (long)(r) * ldc + 8));       \
            c##r##2 = _mm256_add_ps(c##r##2, _mm256_loadu_ps(res + (long)(r) * ldc + 16));      \
            NNK__Y_ACT3(r, act2)                                                                \
        }                                                                                       \
    }                                                                                           \
    _mm256_storeu_ps(c + (long)(r) * ldc, c##r##0);                                             \
    _mm256_storeu_ps(c + (long)(r) * ldc + 8, c##r##1);                                         \
    _mm256_storeu_ps(c + (long)(r) * ldc + 16, c##r##2);

static __attribute__((noinline, unused)) void nnk__sub_4x24(const float *restrict ap, long ars, long aks,
                                                              const float *restrict bp, int kc, float *restrict c,
                                                              long ldc, const float *rbias, const float *cbias,
                                                              int first, int epilogue, const float *res, int act1,
                                                              int act2)
{
    __m256 c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31, c32;
    const float *a0 = ap, *a1 = ap + ars, *a2 = ap + 2 * ars, *a3 = ap + 3 * ars;
    NNK__Y_INIT(0) NNK__Y_INIT(1) NNK__Y_INIT(2) NNK__Y_INIT(3)
    for (long k = 0, o = 0; k < kc; k++, o += aks, bp += NNK_NR) {
        __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8), b2 = _mm256_loadu_ps(bp + 16);
        NNK__IN_REGS(b0, b1, b2);
        NNK__Y_FMA(0) NNK__Y_FMA(1) NNK__Y_FMA(2) NNK__Y_FMA(3)
    }
    NNK__Y_STORE(0) NNK__Y_STORE(1) NNK__Y_STORE(2) NNK__Y_STORE(3)
}
#undef NNK__Y_INIT
#undef NNK__Y_FMA
#undef NNK__Y_ACT3
#undef NNK__Y_STORE

/* The full tile: the four sub-tiles. */
static __attribute__((unused)) int nnk__tile_8x48(const float *restrict ap, long ars, long aks, const float *restrict bp,
                                                  int kc, float *restrict c, long ldc, const float *rbias,
                                                  const float *cbias, int first, int last, const float *res, int act1,
                                                  int act2)
{
    int epilogue = nnk__gemm_fusable(last, res, act1, act2);
    for (int j = 0; j < NNK_NR; j += 24)
        for (int i = 0; i < NNK_MR; i += 4)
            nnk__sub_4x24(ap + i * ars, ars, aks, bp + j, kc, c + (long)i * ldc + j, ldc, rbias ? rbias + i : NULL,
                          cbias ? cbias + j : NULL, first, epilogue, res ? res + (long)i * ldc + j : NULL, act1, act2);
    return epilogue;
}

/* An edge sub-tile: C[rows][cols] (+)= A · bp over kc for rows <= 4 and cols <= 8·nv <= 24, the rows past
   `rows` computed from A's last row again and not stored, the columns past `cols` masked. Written out with
   named accumulators too: clang 14 keeps an array of them in memory even when every index is constant. */
#define NNK__E_INIT(r, v)                                                                       \
    if (nv > (v))                                                                               \
        c##r##v = !first ? ((r) < rows ? _mm256_maskload_ps(c + (long)(r) * ldc + 8 * (v), m##v) : zero) \
                : rbias ? _mm256_set1_ps((r) < rows ? rbias[r] : 0.0f)                          \
                : cbias ? _mm256_maskload_ps(cbias + 8 * (v), m##v) : zero;
#define NNK__E_FMA(r)                                                                           \
    {                                                                                           \
        __m256 a = _mm256_broadcast_ss(a##r + o);                                               \
        c##r##0 = _mm256_fmadd_ps(a, b0, c##r##0);                                              \
        if (nv > 1)                                                                             \
            c##r##1 = _mm256_fmadd_ps(a, b1, c##r##1);                                          \
        if (nv > 2)                                                                             \
            c##r##2 = _mm256_fmadd_ps(a, b2, c##r##2);                                          \
    }
#define NNK__E_STORE(r, v)                                                                      \
    if (nv > (v) && (r) < rows) {                                                               \
        if (epilogue) {                                                                         \
            c##r##v = nnk__act8(c##r##v, act1);                                                 \
            if (res)                                                                            \
                c##r##v = nnk__act8(_mm256_add_ps(c##r##v, _mm256_maskload_ps(res + (long)(r) * ldc + 8 * (v), m##v)), act2); \
        }                                                                                       \
        _mm256_maskstore_ps(c + (long)(r) * ldc + 8 * (v), m##v, c##r##v);                      \
    }
#define NNK__E_ROW(X, r) X(r, 0) X(r, 1) X(r, 2)

static inline __attribute__((always_inline)) void nnk__sub4(int nv, const float *restrict ap, long ars, long aks,
                                                            const float *restrict bp, int kc, float *restrict c,
                                                            long ldc, int rows, int cols, const float *rbias,
                                                            const float *cbias, int first, int epilogue,
                                                            const float *res, int act1, int act2)
{
    const float *a0 = ap, *a1 = ap + (rows > 1 ? 1 : 0) * ars, *a2 = ap + (rows > 2 ? 2 : rows - 1) * ars;
    const float *a3 = ap + (rows > 3 ? 3 : rows - 1) * ars;
    const __m256 zero = _mm256_setzero_ps();
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);
    __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), lane);
    __m256i m2 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 16), lane);
    __m256 c00 = zero, c01 = zero, c02 = zero, c10 = zero, c11 = zero, c12 = zero;
    __m256 c20 = zero, c21 = zero, c22 = zero, c30 = zero, c31 = zero, c32 = zero;
    NNK__E_ROW(NNK__E_INIT, 0) NNK__E_ROW(NNK__E_INIT, 1) NNK__E_ROW(NNK__E_INIT, 2) NNK__E_ROW(NNK__E_INIT, 3)
    for (long k = 0, o = 0; k < kc; k++, o += aks, bp += NNK_NR) {
        __m256 b0 = _mm256_loadu_ps(bp), b1 = zero, b2 = zero;
        if (nv > 1)
            b1 = _mm256_loadu_ps(bp + 8);
        if (nv > 2)
            b2 = _mm256_loadu_ps(bp + 16);
        NNK__E_FMA(0) NNK__E_FMA(1) NNK__E_FMA(2) NNK__E_FMA(3)
    }
    NNK__E_ROW(NNK__E_STORE, 0) NNK__E_ROW(NNK__E_STORE, 1) NNK__E_ROW(NNK__E_STORE, 2) NNK__E_ROW(NNK__E_STORE, 3)
}
#undef NNK__E_INIT
#undef NNK__E_FMA
#undef NNK__E_STORE
#undef NNK__E_ROW

/* A tile with rows < MR or cols < NR: the sub-tiles it overlaps, each with only the vectors it has (and
   a full sub-tile where one fits). */
static __attribute__((noinline, unused)) int nnk__tile_edge(const float *restrict ap, long ars, long aks,
                                                              const float *restrict bp, int kc, float *restrict c,
                                                              long ldc, int rows, int cols, const float *rbias,
                                                              const float *cbias, int first, int last,
                                                              const float *res, int act1, int act2)
{
    int epilogue = nnk__gemm_fusable(last, res, act1, act2);
    for (int j = 0; j < cols; j += 24)
        for (int i = 0; i < rows; i += 4) {
            int h = nnk__min(4, rows - i), w = nnk__min(24, cols - j);
            const float *a = ap + i * ars, *b = bp + j, *rb = rbias ? rbias + i : NULL, *cb = cbias ? cbias + j : NULL;
            const float *rt = res ? res + (long)i * ldc + j : NULL;
            float *ct = c + (long)i * ldc + j;
            if (h == 4 && w == 24)
                nnk__sub_4x24(a, ars, aks, b, kc, ct, ldc, rb, cb, first, epilogue, rt, act1, act2);
            else if (w > 16)
                nnk__sub4(3, a, ars, aks, b, kc, ct, ldc, h, w, rb, cb, first, epilogue, rt, act1, act2);
            else if (w > 8)
                nnk__sub4(2, a, ars, aks, b, kc, ct, ldc, h, w, rb, cb, first, epilogue, rt, act1, act2);
            else
                nnk__sub4(1, a, ars, aks, b, kc, ct, ldc, h, w, rb, cb, first, epilogue, rt, act1, act2);
        }
    return epilogue;
}
