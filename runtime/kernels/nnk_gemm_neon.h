/*
 * nnk_gemm_neon.h — the NEON register tile of nnk_gemm.h for aarch64, which includes it on __aarch64__
 * unless NNK_PORTABLE or NNK_SCALAR is defined (not a header to include on its own).
 *
 * The packed layouts are those of every path (strips of A ap[k][8], panels of B bp[k][48]), because the
 * generated C computes its splits from NNK_MR = 8 and NNK_NR = 48. aarch64 has 32 q registers of 4
 * floats: the 8×48 tile (96 vectors) is computed as four 8×12 sub-tiles one after the other, left to
 * right, each over the whole kc. A sub-tile holds 24 accumulators (8 rows × 3 vectors) + 3 vectors of B
 * + 2 of A = 29 registers; for every k, 5 loads (A as two vectors, B as three) and 24 independent
 * fmla by element (vfmaq_laneq_f32: the lane of A is an operand, so nothing is broadcast), 96
 * multiply-adds, with k unrolled by 2 (gcc) or 4 (clang). At -O2 the hot loop is, per 192 multiply-adds,
 * 61 instructions with gcc 12 (48 fmla, 6 loads as ldp/ldr, 2 register moves, loop control) and 56.5
 * with clang 14 (113 per 384), without a spill: 0.32 and 0.29 instructions per multiply-add
 * (tests/cross/run_cross.sh counts them in the object code). Loading A and B with ld1 {x2}/{x3}
 * would save 3 instructions per k, but the consecutive registers they need make both compilers spill.
 *
 * Every element of C is its bias (or C), then one fused multiply-add per k in increasing order, as in
 * the AVX-512 and AVX2 tiles, so results are the same bits as theirs and as the scalar loop compiled
 * with contraction, whichever tile, edge or thread computes an element. nnk__neon_8x12 applies relu and
 * the residual in registers (relu as nnk_relu: the lanes below zero cleared, so NaN and -0 pass). An edge
 * tile (rows < 8 or cols < 48) is computed on a copy: the rows and columns it has, padded with zeros, in
 * an 8×48 tile on the stack, only the sub-tiles (and vectors) they touch, then copied back; nnk_gemm then
 * applies the epilogue.
 */

#include <arm_neon.h>

#define NNK_GEMM_NEON 1

#if defined(__clang__)
#define NNK__N_UNROLL 4
#else
#define NNK__N_UNROLL 2
#endif
#define NNK__N_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define NNK__N_DECL(r) float32x4_t c##r##0 = zero, c##r##1 = zero, c##r##2 = zero;
#define NNK__N_INIT1(r, v)                                                                      \
    if (nv > (v))                                                                               \
        c##r##v = !first ? vld1q_f32(c + (long)(r) * ldc + 4 * (v))                             \
                : rbias ? vdupq_n_f32(rbias[r])                                                 \
                : cbias ? vld1q_f32(cbias + 4 * (v)) : zero;
#define NNK__N_INIT(r) NNK__N_INIT1(r, 0) NNK__N_INIT1(r, 1) NNK__N_INIT1(r, 2)
#define NNK__N_FMA(r)                                                                           \
    c##r##0 = vfmaq_laneq_f32(c##r##0, b0, (r) < 4 ? a0 : a1, (r) & 3);                         \
    if (nv > 1)                                                                                 \
        c##r##1 = vfmaq_laneq_f32(c##r##1, b1, (r) < 4 ? a0 : a1, (r) & 3);                     \
    if (nv > 2)                                                                                 \
        c##r##2 = vfmaq_laneq_f32(c##r##2, b2, (r) < 4 ? a0 : a1, (r) & 3);
#define NNK__N_STEP(AOFF, BOFF)                                                                 \
    {                                                                                           \
        float32x4_t a0 = vld1q_f32(ap + (AOFF)), a1 = vld1q_f32(ap + (AOFF) + 4);               \
        float32x4_t b0 = vld1q_f32(bp + (BOFF)), b1 = zero, b2 = zero;                          \
        if (nv > 1)                                                                             \
            b1 = vld1q_f32(bp + (BOFF) + 4);                                                    \
        if (nv > 2)                                                                             \
            b2 = vld1q_f32(bp + (BOFF) + 8);                                                    \
        NNK__N_ROWS(NNK__N_FMA)                                                                 \
    }
#define NNK__N_STORE1(r, v)                                                                     \
    if (nv > (v)) {                                                                             \
        if (epilogue) {                                                                         \
            c##r##v = nnk__neon_act(c##r##v, act1);                                             \
            if (res)                                                                            \
                c##r##v = nnk__neon_act(vaddq_f32(c##r##v, vld1q_f32(res + (long)(r) * ldc + 4 * (v))), act2); \
        }                                                                                       \
        vst1q_f32(c + (long)(r) * ldc + 4 * (v), c##r##v);                                      \
    }
#define NNK__N_STORE(r) NNK__N_STORE1(r, 0) NNK__N_STORE1(r, 1) NNK__N_STORE1(r, 2)

/* relu as nnk_relu computes it, v < 0 ? 0 : v: the lanes below zero cleared (NaN and -0 pass) */
static inline float32x4_t nnk__neon_relu(float32x4_t v)
{
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(v), vcltzq_f32(v)));
}

/* act (relu, relu6 or none, nnk__gemm_fusable) of v, as nnk_relu and nnk_relu6 compute it: relu, then the
   lanes above 6 set to 6 (NaN passes) */
static inline float32x4_t nnk__neon_act(float32x4_t v, int act)
{
    if (act == NNK_ACT_RELU || act == NNK_ACT_RELU6)
        v = nnk__neon_relu(v);
    if (act == NNK_ACT_RELU6) {
        const float32x4_t six = vdupq_n_f32(6.0f);
        v = vbslq_f32(vcgtq_f32(v, six), six, v);
    }
    return v;
}

/* C[8][4·nv] (+)= ap · bp over kc, then the epilogue when `epilogue` is set; ap and bp point into a strip
   and a panel (strides NNK_MR and NNK_NR). */
static inline __attribute__((always_inline)) void nnk__neon_sub(int nv, const float *restrict ap,
                                                                const float *restrict bp, int kc, float *restrict c,
                                                                long ldc, const float *rbias, const float *cbias,
                                                                int first, int epilogue, const float *res, int act1,
                                                                int act2)
{
    const float32x4_t zero = vdupq_n_f32(0.0f);
    NNK__N_ROWS(NNK__N_DECL)
    NNK__N_ROWS(NNK__N_INIT)
    /* two k a round, so that the loop control is paid once for 192 multiply-adds */
    /* NNK__N_UNROLL values of k a round, so that the loop control is paid once for 192 or 384 multiply-adds
       (gcc 12 spills at 4, clang 14 does not) */
    for (int n = kc / NNK__N_UNROLL; n > 0; n--, ap += NNK__N_UNROLL * NNK_MR, bp += NNK__N_UNROLL * NNK_NR) {
        NNK__N_STEP(0, 0)
        NNK__N_STEP(NNK_MR, NNK_NR)
#if NNK__N_UNROLL == 4
        NNK__N_STEP(2 * NNK_MR, 2 * NNK_NR)
        NNK__N_STEP(3 * NNK_MR, 3 * NNK_NR)
#endif
    }
    for (int k = 0; k < kc % NNK__N_UNROLL; k++, ap += NNK_MR, bp += NNK_NR) {
        NNK__N_STEP(0, 0)
    }
    NNK__N_ROWS(NNK__N_STORE)
}
#undef NNK__N_UNROLL
#undef NNK__N_ROWS
#undef NNK__N_DECL
#undef NNK__N_INIT1
#undef NNK__N_INIT
#undef NNK__N_FMA
#undef NNK__N_STEP
#undef NNK__N_STORE1
#undef NNK__N_STORE

/* The sub-tile of 3, 2 or 1 vectors (12, 8 or 4 columns), each out of line with its accumulators in
   registers. */
#define NNK__NEON_SUB_N(NV)                                                                                      \
    static __attribute__((noinline, unused)) void nnk__neon_8x##NV(const float *restrict ap, const float *restrict bp, \
                                                                   int kc, float *restrict c, long ldc,             \
                                                                   const float *rbias, const float *cbias, int first, \
                                                                   int epilogue, const float *res, int act1, int act2) \
    {                                                                                                            \
        nnk__neon_sub(NV / 4, ap, bp, kc, c, ldc, rbias, cbias, first, epilogue, res, act1, act2);               \
    }
NNK__NEON_SUB_N(4)
NNK__NEON_SUB_N(8)
NNK__NEON_SUB_N(12)
#undef NNK__NEON_SUB_N

/* The full tile: the four 8×12 sub-tiles, left to right. */
static __attribute__((unused)) int nnk__tile_8x48(const float *restrict ap, long ars, long aks, const float *restrict bp,
                                                  int kc, float *restrict c, long ldc, const float *rbias,
                                                  const float *cbias, int first, int last, const float *res, int act1,
                                                  int act2)
{
    (void)ars, (void)aks;   /* a packed strip: nnk_gemm packs A for this path */
    int epilogue = nnk__gemm_fusable(last, res, act1, act2);
    for (int j = 0; j < NNK_NR; j += 12)
        nnk__neon_8x12(ap, bp + j, kc, c + j, ldc, rbias, cbias ? cbias + j : NULL, first, epilogue,
                       res ? res + j : NULL, act1, act2);
    return epilogue;
}

/* An edge tile, on a copy: the sub-tiles covering columns [0, cols) of an 8×48 tile on the stack, each
   with only the vectors it needs (all 8 rows: those past `rows` come from A's zero padding and are not
   copied back); nnk_gemm applies the epilogue. */
static __attribute__((noinline, unused)) int nnk__tile_edge(const float *restrict ap, long ars, long aks,
                                                              const float *restrict bp, int kc, float *restrict c,
                                                              long ldc, int rows, int cols, const float *rbias,
                                                              const float *cbias, int first, int last,
                                                              const float *res, int act1, int act2)
{
    (void)ars, (void)aks;
    float t[NNK_MR * NNK_NR], rb[NNK_MR], cb[NNK_NR];
    (void)last, (void)res, (void)act1, (void)act2;
    for (int r = 0; r < NNK_MR; r++)
        for (int j = 0; j < NNK_NR; j++)
            t[r * NNK_NR + j] = !first && r < rows && j < cols ? c[(long)r * ldc + j] : 0.0f;
    for (int r = 0; r < NNK_MR; r++)
        rb[r] = rbias && r < rows ? rbias[r] : 0.0f;
    for (int j = 0; j < NNK_NR; j++)
        cb[j] = cbias && j < cols ? cbias[j] : 0.0f;
    const float *rt = rbias ? rb : NULL;
    for (int j = 0; j < cols; j += 12) {
        int w = nnk__min(12, cols - j);
        const float *ctb = cbias ? cb + j : NULL;
        if (w > 8)
            nnk__neon_8x12(ap, bp + j, kc, t + j, NNK_NR, rt, ctb, first, 0, NULL, 0, 0);
        else if (w > 4)
            nnk__neon_8x8(ap, bp + j, kc, t + j, NNK_NR, rt, ctb, first, 0, NULL, 0, 0);
        else
            nnk__neon_8x4(ap, bp + j, kc, t + j, NNK_NR, rt, ctb, first, 0, NULL, 0, 0);
    }
    for (int r = 0; r < rows; r++)
        memcpy(c + (long)r * ldc, t + r * NNK_NR, (size_t)cols * sizeof *c);
    return 0;
}
