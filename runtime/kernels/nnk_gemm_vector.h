/*
 * nnk_gemm_vector.h — the portable register tile of nnk_gemm.h, in GCC/Clang vector types instead of
 * intrinsics, which nnk_gemm.h includes for a GNU C compiler on a target with 128-bit or wider SIMD when
 * no intrinsic tile applies (not a header to include on its own).
 *
 * The 8×48 tile is cut into sub-tiles of NNK__VROWS rows × NNK__VNV vectors of NNK__VLEN floats, sized so
 * that the accumulators, the vectors of B, a broadcast of A (and on SSE2, whose instructions overwrite an
 * operand, a product) fit the target's registers:
 *
 *     AVX-512 (32 zmm)        8 × 48: 24 accumulators, the whole tile      (only under NNK_PORTABLE)
 *     AVX (16 ymm)            4 × 24: 12 accumulators, 4 sub-tiles
 *     aarch64 (32 q)          8 × 12: 24 accumulators, 4 sub-tiles
 *     SSE2 (16 xmm)           4 × 8:   8 accumulators, 12 sub-tiles      (32-bit x86, 8 xmm: 4 × 4)
 *     others (16 registers)   4 × 12: 12 accumulators, 8 sub-tiles
 *
 * (On one Zen 5 core, baseline x86-64: 4×8 runs ResNet-50's products at 38–45 GFLOP/s under both gcc
 * and clang; 4×12 needs 17 registers, and clang then spills: 28–32.) Each sub-tile runs over the whole
 * kc with named accumulators, out of line. On aarch64 the 8 values of A are two vectors, so that fmla
 * takes them by element: 24 + 3 + 2 registers, no spill under gcc 12 or clang 14 (8 scalars spilled
 * under gcc). `acc + a * b` is a multiply and an add, or one FMA where the compiler contracts (gcc in
 * its GNU modes, clang by default, on a target with FMA): the same operations as the scalar loop, and
 * the same bits (checked on x86-64 with and without FMA, and on aarch64 under qemu).
 * Full tiles apply relu and the residual in registers. An edge tile is computed on a copy: the rows and
 * columns it has are copied into an 8×48 tile on the stack, padded with zeros, only the sub-tiles (and
 * vectors) they touch are computed there, the result is copied back and nnk_gemm applies the epilogue.
 */

#if defined(__AVX512F__)
#define NNK__VLEN 16
#define NNK__VROWS 8
#define NNK__VNV 3
#elif defined(__AVX__)
#define NNK__VLEN 8
#define NNK__VROWS 4
#define NNK__VNV 3
#elif defined(__aarch64__)
#define NNK__VLEN 4
#define NNK__VROWS 8
#define NNK__VNV 3
#elif defined(__SSE2__) && defined(__x86_64__)
#define NNK__VLEN 4
#define NNK__VROWS 4
#define NNK__VNV 2
#elif defined(__SSE2__)   /* 32-bit x86: 8 xmm */
#define NNK__VLEN 4
#define NNK__VROWS 4
#define NNK__VNV 1
#else
#define NNK__VLEN 4
#define NNK__VROWS 4
#define NNK__VNV 3
#endif
#define NNK__VCOLS (NNK__VNV * NNK__VLEN)   /* columns of a sub-tile */

typedef float nnk__vf __attribute__((vector_size(4 * NNK__VLEN)));
typedef int32_t nnk__vi __attribute__((vector_size(4 * NNK__VLEN)));

static inline nnk__vf nnk__vload(const float *p)
{
    nnk__vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void nnk__vstore(float *p, nnk__vf v) { memcpy(p, &v, sizeof v); }

/* relu as nnk_relu computes it, v < 0 ? 0 : v (NaN and -0 pass): the lanes below zero cleared */
static inline nnk__vf nnk__vrelu(nnk__vf v)
{
    const nnk__vf zero = {0};
    return (nnk__vf)((nnk__vi)v & ~(nnk__vi)(v < zero));
}

/* act (relu, relu6 or none, nnk__gemm_fusable) of v, as nnk_relu and nnk_relu6 compute it: relu, then the
   lanes above 6 set to 6 (NaN passes) */
static inline nnk__vf nnk__vact(nnk__vf v, int act)
{
    if (act == NNK_ACT_RELU || act == NNK_ACT_RELU6)
        v = nnk__vrelu(v);
    if (act == NNK_ACT_RELU6) {
        const nnk__vf zero = {0}, six = zero + 6.0f;
        nnk__vi above = (nnk__vi)(v > six);
        v = (nnk__vf)(((nnk__vi)v & ~above) | ((nnk__vi)six & above));
    }
    return v;
}

#if NNK__VROWS == 8
#define NNK__VROWS_DO(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#else
#define NNK__VROWS_DO(X) X(0) X(1) X(2) X(3)
#endif
#define NNK__V_DECL(r) nnk__vf c##r##0 = zero, c##r##1 = zero, c##r##2 = zero;
#define NNK__V_INIT1(r, v)                                                                      \
    if (nv > (v))                                                                               \
        c##r##v = !first ? nnk__vload(c + (long)(r) * ldc + (v) * NNK__VLEN)                    \
                : rbias ? zero + rbias[r]                                                       \
                : cbias ? nnk__vload(cbias + (v) * NNK__VLEN) : zero;
#define NNK__V_INIT(r) NNK__V_INIT1(r, 0) NNK__V_INIT1(r, 1) NNK__V_INIT1(r, 2)
#if NNK__VROWS == 8 && NNK__VLEN == 4   /* aarch64: A as two vectors, for fmla by element (29 registers) */
#define NNK__V_LOAD_A nnk__vf alo = nnk__vload(ap), ahi = nnk__vload(ap + 4);
#define NNK__V_A(r) ((r) < 4 ? alo[(r) & 3] : ahi[(r) & 3])
#else   /* x86: each value broadcast from memory */
#define NNK__V_LOAD_A
#define NNK__V_A(r) ap[r]
#endif
#define NNK__V_FMA(r)                                                                           \
    {                                                                                           \
        float a = NNK__V_A(r);                                                                  \
        c##r##0 = c##r##0 + a * b0;                                                             \
        if (nv > 1)                                                                             \
            c##r##1 = c##r##1 + a * b1;                                                         \
        if (nv > 2)                                                                             \
            c##r##2 = c##r##2 + a * b2;                                                         \
    }
#define NNK__V_STORE1(r, v)                                                                     \
    if (nv > (v)) {                                                                             \
        if (epilogue) {                                                                         \
            c##r##v = nnk__vact(c##r##v, act1);                                                 \
            if (res)                                                                            \
                c##r##v = nnk__vact(c##r##v + nnk__vload(res + (long)(r) * ldc + (v) * NNK__VLEN), act2); \
        }                                                                                       \
        nnk__vstore(c + (long)(r) * ldc + (v) * NNK__VLEN, c##r##v);                            \
    }
#define NNK__V_STORE(r) NNK__V_STORE1(r, 0) NNK__V_STORE1(r, 1) NNK__V_STORE1(r, 2)

/* C[VROWS][nv·VLEN] (+)= ap · bp over kc, then the epilogue when `epilogue` is set; ap and bp point into a
   strip and a panel (strides NNK_MR and NNK_NR). */
static inline __attribute__((always_inline)) void nnk__vsub(int nv, const float *restrict ap, const float *restrict bp,
                                                            int kc, float *restrict c, long ldc, const float *rbias,
                                                            const float *cbias, int first, int epilogue,
                                                            const float *res, int act1, int act2)
{
    const nnk__vf zero = {0};
    NNK__VROWS_DO(NNK__V_DECL)
    NNK__VROWS_DO(NNK__V_INIT)
    for (int k = 0; k < kc; k++, ap += NNK_MR, bp += NNK_NR) {
        nnk__vf b0 = nnk__vload(bp), b1 = zero, b2 = zero;
        NNK__V_LOAD_A
        if (nv > 1)
            b1 = nnk__vload(bp + NNK__VLEN);
        if (nv > 2)
            b2 = nnk__vload(bp + 2 * NNK__VLEN);
        NNK__VROWS_DO(NNK__V_FMA)
    }
    NNK__VROWS_DO(NNK__V_STORE)
}
#undef NNK__VROWS_DO
#undef NNK__V_DECL
#undef NNK__V_INIT1
#undef NNK__V_INIT
#undef NNK__V_LOAD_A
#undef NNK__V_A
#undef NNK__V_FMA
#undef NNK__V_STORE1
#undef NNK__V_STORE

/* The sub-tile of 3, 2 or 1 vectors, each out of line (named accumulators, kept in registers by gcc -O2). */
#define NNK__VSUB_N(NV)                                                                                         \
    static __attribute__((noinline, unused)) void nnk__vsub##NV(const float *restrict ap, const float *restrict bp, \
                                                                int kc, float *restrict c, long ldc,               \
                                                                const float *rbias, const float *cbias, int first, \
                                                                int epilogue, const float *res, int act1, int act2) \
    {                                                                                                           \
        nnk__vsub(NV, ap, bp, kc, c, ldc, rbias, cbias, first, epilogue, res, act1, act2);                      \
    }
NNK__VSUB_N(1)
NNK__VSUB_N(2)
NNK__VSUB_N(3)
#undef NNK__VSUB_N
#if NNK__VNV == 3
#define NNK__VSUBF nnk__vsub3
#elif NNK__VNV == 2
#define NNK__VSUBF nnk__vsub2
#endif

static __attribute__((unused)) int nnk__tile_8x48(const float *restrict ap, long ars, long aks, const float *restrict bp,
                                                  int kc, float *restrict c, long ldc, const float *rbias,
                                                  const float *cbias, int first, int last, const float *res, int act1,
                                                  int act2)
{
    (void)ars, (void)aks;   /* a packed strip: nnk_gemm packs A for this path */
    int epilogue = nnk__gemm_fusable(last, res, act1, act2);
    for (int j = 0; j < NNK_NR; j += NNK__VCOLS)
        for (int i = 0; i < NNK_MR; i += NNK__VROWS)
            NNK__VSUBF(ap + i, bp + j, kc, c + (long)i * ldc + j, ldc, rbias ? rbias + i : NULL,
                       cbias ? cbias + j : NULL, first, epilogue, res ? res + (long)i * ldc + j : NULL, act1, act2);
    return epilogue;
}

/* An edge tile, on a copy: the sub-tiles covering rows [0, rows) and columns [0, cols), each with only the
   vectors it needs, computed in an 8×48 tile on the stack; nnk_gemm applies the epilogue. */
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
    for (int j = 0; j < cols; j += NNK__VCOLS) {
        int nv = (nnk__min(NNK__VCOLS, cols - j) + NNK__VLEN - 1) / NNK__VLEN;
        for (int i = 0; i < rows; i += NNK__VROWS) {
            float *ct = t + i * NNK_NR + j;
            const float *rt = rbias ? rb + i : NULL, *ctb = cbias ? cb + j : NULL;
            if (nv == 3)
                nnk__vsub3(ap + i, bp + j, kc, ct, NNK_NR, rt, ctb, first, 0, NULL, 0, 0);
            else if (nv == 2)
                nnk__vsub2(ap + i, bp + j, kc, ct, NNK_NR, rt, ctb, first, 0, NULL, 0, 0);
            else
                nnk__vsub1(ap + i, bp + j, kc, ct, NNK_NR, rt, ctb, first, 0, NULL, 0, 0);
        }
    }
    for (int r = 0; r < rows; r++)
        memcpy(c + (long)r * ldc, t + r * NNK_NR, (size_t)cols * sizeof *c);
    return 0;
}
