/*
 * nnk_gemv.h — nn.Linear of fewer rows than the blocked product's tile (a classifier at batch 1): each
 * output feature a sum over the whole row, from a weight rearranged once at load into panels of
 * NNK_GEMV_W features, wp[panel][k][NNK_GEMV_W], so that it streams from memory in one run (ResNet-50's
 * classifier is 8 MB, read once per inference, and nothing else needs it: its time is that of the stream).
 *
 * A panel's NNK_GEMV_W sums are four vectors of 16 (zmm on AVX-512, two ymm each on AVX2, the compiler's
 * vector types or floats elsewhere), each the bias plus x[k] · w[k] for k in increasing order, one fused
 * multiply-add at a time: the sums of nnk_gemm, so that a row gets the same bits at batch 1 as in a
 * batch of 8 or more. The weight's rows past O are zeros, and a part [o0, o1) of the features starts
 * at a panel's edge. On one Zen 5 core, ResNet-50's 2048 → 1000 classifier from memory: 0.42-0.50 ms as
 * dot products of four rows of the weight as loaded (nnk_linear_rows), 0.20-0.26 from the panels.
 */
#ifndef NNK_GEMV_H
#define NNK_GEMV_H

#include "nnk_conv_nchwc.h"   /* nnk__v16 and its operations, per ISA */

enum { NNK_GEMV_W = 64 };   /* output features a panel */

/* Floats of a weight [O, K] packed by nnk_pack_gemv: O rounded up to whole panels. */
#define NNK_GEMV_FLOATS(O, K) (((long)(O) + NNK_GEMV_W - 1) / NNK_GEMV_W * NNK_GEMV_W * (long)(K))

/* w[O][K] → w[panel][k][NNK_GEMV_W] in place, features past O zero: w has room for NNK_GEMV_FLOATS(O, K)
   floats, tmp holds O·K. */
static inline void nnk_pack_gemv(float *restrict w, int O, long K, float *restrict tmp)
{
    memcpy(tmp, w, (size_t)O * (size_t)K * sizeof *tmp);
    long panels = (O + NNK_GEMV_W - 1) / NNK_GEMV_W;
    for (long p = 0; p < panels; p++)
        for (long k = 0; k < K; k++)
            for (int j = 0; j < NNK_GEMV_W; j++) {
                long o = p * NNK_GEMV_W + j;
                w[(p * K + k) * NNK_GEMV_W + j] = o < O ? tmp[o * K + k] : 0.0f;
            }
}

/* y[m][o] = b[o] + Σ_k x[m][k] · w[o][k] for the M rows of x (K floats apart) and the features [o0, o1) of
   the weight in wp (nnk_pack_gemv), o0 a multiple of NNK_GEMV_W and o1 one too or the last feature's end;
   y's rows are ldy floats apart, b may be NULL. A panel is read once per row (from L2 after the first: half a megabyte for K = 2048). */
static inline void nnk_linear_gemv(float *restrict y, long ldy, const float *restrict x, const float *restrict wp,
                                   const float *restrict b, int M, long K, int o0, int o1)
{
    for (int p0 = o0; p0 < o1; p0 += NNK_GEMV_W) {
        const float *w = wp + (long)(p0 / NNK_GEMV_W) * K * NNK_GEMV_W;
        const int n = o1 - p0 < NNK_GEMV_W ? o1 - p0 : NNK_GEMV_W;
        float bias[NNK_GEMV_W], out[NNK_GEMV_W];
        for (int j = 0; j < NNK_GEMV_W; j++)
            bias[j] = b && j < n ? b[p0 + j] : 0.0f;
        for (int m = 0; m < M; m++) {
            const float *xr = x + (long)m * K;
            nnk__v16 a0 = NNK__V_LOAD(bias), a1 = NNK__V_LOAD(bias + 16), a2 = NNK__V_LOAD(bias + 32), a3 = NNK__V_LOAD(bias + 48);
            const float *wk = w;
            for (long k = 0; k < K; k++, wk += NNK_GEMV_W) {
                NNK__PREFETCH(wk + 16 * NNK_GEMV_W);   /* 4 KB ahead: the prefetchers start each page late */
                float s = xr[k];
                NNK__V_FMA(a0, s, NNK__V_LOAD(wk));
                NNK__V_FMA(a1, s, NNK__V_LOAD(wk + 16));
                NNK__V_FMA(a2, s, NNK__V_LOAD(wk + 32));
                NNK__V_FMA(a3, s, NNK__V_LOAD(wk + 48));
            }
            NNK__V_STORE(out, a0);
            NNK__V_STORE(out + 16, a1);
            NNK__V_STORE(out + 32, a2);
            NNK__V_STORE(out + 48, a3);
            memcpy(y + (long)m * ldy + p0, out, (size_t)n * sizeof *out);
        }
    }
}

#endif
