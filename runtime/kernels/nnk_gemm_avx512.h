/*
 * nnk_gemm_avx512.h — the AVX-512 register tile of nnk_gemm.h, which includes it when __AVX512F__ is
 * defined (not a header to include on its own).
 *
 * The 8×48 tile is 24 zmm accumulators (8 rows × 3 vectors of 16 floats) of the 32 registers; for every
 * k, 3 loads of B, 8 broadcasts of A and 24 independent FMAs. nnk__tile_8x48 is the full tile, written
 * out with named accumulators and out of line; nnk__tile is every edge tile (rows < 8 or cols < 48), with
 * masked loads and stores, for 1, 2 or 3 vectors of columns. Both apply relu and the residual in
 * registers.
 *
 * A is read where it lies, element (r, k) at ap[r·ars + k·aks]: a packed strip (1, NNK_MR), or the rows
 * of a matrix (its row stride, 1), which a broadcast reads as cheaply, so nnk_gemm packs no A here
 * (NNK__GEMM_A_DIRECT). A linear layer's 3136×384 by 384×96 product went from 180 to 255 GFLOP/s on a
 * Zen 5 core, ViT-B's from 218 to 230: the copy cost as much as the product where N is small, and every
 * thread made its own. An edge tile reads its last row again in place of those past `rows`.
 *
 * The full tile prefetches the next run of B (NNK__KC_RUN rows: the rest of its panel, or the next panel)
 * as it reads its own: a linear layer's weights come from memory once per block of rows, and ViT-B's
 * products went from 224 to 232 GFLOP/s (means of 6 runs) on Zen 5. It prefetches into L2 (T1), not L1: the panel it computes on (24 KB for a run of 128 rows) is
 * what L1 must keep; on a Sapphire Rapids Xeon, ViT-B took 211 ms with T0 and 204 with T1 (215 with no
 * prefetch; medians of 5 runs, 3 rounds). (A prefetch past the end of B is only a hint, and never faults.)
 */
#define NNK__GEMM_A_DIRECT 1

/* Runs of 128 of a block's 256 rows, as on AVX2: a panel of them (24 KB) and the strip of A (4 KB) fit in
   a 48 KB L1 together, where a panel of 256 rows (48 KB) does not, and came from L2 for every tile. On
   this session's Emerald Rapids Xeon, 200-300 alternations of runs of 256 and of 128 in one process
   (medians): ViT-B/16's 197 × 768 × 3072 7.58 → 7.33 ms and 9.86 → 9.51 (the host busy), 197 × 768 × 2304
   6.57 → 6.17, 197 × 768 × 768 1.98 → 1.91; the whole model, 1 thread, 10 interleaved rounds: 308 → 289
   ms, the same on 2 threads. (A Zen 5 core had shown runs of 256 best, in one model run each.) */
#define NNK__KC_RUN 128

#include <immintrin.h>
NNK__X86_ACT(nnk__act16, __m512, _mm512_max_ps, _mm512_min_ps, _mm512_setzero_ps, _mm512_set1_ps)

static inline __attribute__((always_inline)) int nnk__tile(int nv, const float *restrict ap, long ars, long aks,
                                                           const float *restrict bp, int kc, float *restrict c, long ldc,
                                                           int rows, int cols, const float *rbias, const float *cbias,
                                                           int first, int last, const float *res, int act1, int act2)
{
    __m512 acc[NNK_MR][3];
    __mmask16 mask[3];
    long arow[NNK_MR];
NNK__UNROLL
    for (int r = 0; r < NNK_MR; r++)
        arow[r] = (r < rows ? r : rows - 1) * ars;
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
    for (int k = 0; k < kc; k++, ap += aks, bp += NNK_NR) {
        __m512 bv[3];
NNK__UNROLL
        for (int v = 0; v < nv; v++)
            bv[v] = _mm512_loadu_ps(bp + 16 * v);
NNK__UNROLL
        for (int r = 0; r < NNK_MR; r++) {
            __m512 av = _mm512_set1_ps(ap[arow[r]]);
NNK__UNROLL
            for (int v = 0; v < nv; v++)
                acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
    int epilogue = nnk__gemm_fusable(last, res, act1, act2);
    if (epilogue) {
NNK__UNROLL
        for (int r = 0; r < NNK_MR; r++)
NNK__UNROLL
            for (int v = 0; v < nv && r < rows; v++) {
                acc[r][v] = nnk__act16(acc[r][v], act1);
                if (res)
                    acc[r][v] = nnk__act16(_mm512_add_ps(acc[r][v], _mm512_maskz_loadu_ps(mask[v], res + (long)r * ldc + 16 * v)), act2);
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
        __m512 a = _mm512_set1_ps(a##r[o]);                                                     \
        c##r##0 = _mm512_fmadd_ps(a, b0, c##r##0);                                              \
        c##r##1 = _mm512_fmadd_ps(a, b1, c##r##1);                                              \
        c##r##2 = _mm512_fmadd_ps(a, b2, c##r##2);                                              \
    }
#define NNK__ACT3(r, act)                                                                       \
    c##r##0 = nnk__act16(c##r##0, act);                                                         \
    c##r##1 = nnk__act16(c##r##1, act);                                                         \
    c##r##2 = nnk__act16(c##r##2, act);
#define NNK__ROW_STORE(r)                                                                       \
    if (epilogue) {                                                                             \
        NNK__ACT3(r, act1)                                                                      \
        if (res) {                                                                              \
            c##r##0 = _mm512_add_ps(c##r##0, _mm512_loadu_ps(res + (long)(r) * ldc));           \
            c##r##1 = _mm512_add_ps(c##r##1, _mm512_loadu_ps(res + (long)(r) * ldc + 16));      \
            c##r##2 = _mm512_add_ps(c##r##2, _mm512_loadu_ps(res + (long)(r) * ldc + 32));      \
            NNK__ACT3(r, act2)                                                                  \
        }                                                                                       \
    }                                                                                           \
    _mm512_storeu_ps(c + (long)(r) * ldc, c##r##0);                                             \
    _mm512_storeu_ps(c + (long)(r) * ldc + 16, c##r##1);                                        \
    _mm512_storeu_ps(c + (long)(r) * ldc + 32, c##r##2);

static __attribute__((noinline, unused)) int nnk__tile_8x48(const float *restrict ap, long ars, long aks,
                                                              const float *restrict bp, int kc, float *restrict c,
                                                              long ldc, const float *rbias, const float *cbias, int first,
                                                              int last, const float *res, int act1, int act2)
{
    __m512 c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31, c32;
    __m512 c40, c41, c42, c50, c51, c52, c60, c61, c62, c70, c71, c72;
    const float *a0 = ap, *a1 = ap + ars, *a2 = ap + 2 * ars, *a3 = ap + 3 * ars;
    const float *a4 = ap + 4 * ars, *a5 = ap + 5 * ars, *a6 = ap + 6 * ars, *a7 = ap + 7 * ars;
    NNK__ROW_INIT(0) NNK__ROW_INIT(1) NNK__ROW_INIT(2) NNK__ROW_INIT(3)
    NNK__ROW_INIT(4) NNK__ROW_INIT(5) NNK__ROW_INIT(6) NNK__ROW_INIT(7)
    const long next = (long)NNK_NR * kc;   /* the same row of the next run: of this panel, or at its end of the next panel */
    for (long k = 0, o = 0; k < kc; k++, o += aks, bp += NNK_NR) {
        __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16), b2 = _mm512_loadu_ps(bp + 32);
        _mm_prefetch((const char *)(bp + next), _MM_HINT_T1);
        _mm_prefetch((const char *)(bp + next + 16), _MM_HINT_T1);
        _mm_prefetch((const char *)(bp + next + 32), _MM_HINT_T1);
        NNK__ROW_FMA(0) NNK__ROW_FMA(1) NNK__ROW_FMA(2) NNK__ROW_FMA(3)
        NNK__ROW_FMA(4) NNK__ROW_FMA(5) NNK__ROW_FMA(6) NNK__ROW_FMA(7)
    }
    int epilogue = nnk__gemm_fusable(last, res, act1, act2);
    NNK__ROW_STORE(0) NNK__ROW_STORE(1) NNK__ROW_STORE(2) NNK__ROW_STORE(3)
    NNK__ROW_STORE(4) NNK__ROW_STORE(5) NNK__ROW_STORE(6) NNK__ROW_STORE(7)
    return epilogue;
}
#undef NNK__ROW_INIT
#undef NNK__ROW_FMA
#undef NNK__ACT3
#undef NNK__ROW_STORE

/* A tile with rows < MR or cols < NR: only the vectors of columns it has. */
static inline __attribute__((always_inline)) int nnk__tile_edge(const float *restrict ap, long ars, long aks,
                                                                const float *restrict bp, int kc, float *restrict c,
                                                                long ldc, int rows, int cols, const float *rbias,
                                                                const float *cbias, int first, int last,
                                                                const float *res, int act1, int act2)
{
    if (cols > 32)
        return nnk__tile(3, ap, ars, aks, bp, kc, c, ldc, rows, cols, rbias, cbias, first, last, res, act1, act2);
    if (cols > 16)
        return nnk__tile(2, ap, ars, aks, bp, kc, c, ldc, rows, cols, rbias, cbias, first, last, res, act1, act2);
    return nnk__tile(1, ap, ars, aks, bp, kc, c, ldc, rows, cols, rbias, cbias, first, last, res, act1, act2);
}
