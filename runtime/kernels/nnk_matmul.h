/*
 * nnk_matmul.h — matrix products: nn.Linear and batched, broadcasting matmul.
 *
 * Linear multiplies by wᵀ with w stored [O,K], so each output is a dot product of two contiguous rows
 * (nnk__dot, four rows at a time: nnk__dot4). Matmul's b is [K,N], so each output row is built as a sum of scaled rows of b: the inner
 * loop is then a unit-stride multiply-add along N.
 */
#ifndef NNK_MATMUL_H
#define NNK_MATMUL_H

#include "nnk_base.h"

/* y[M,O] = x[M,K] · w[O,K]ᵀ + b[O]  (b may be NULL), y's rows ldy floats apart. Four rows of w at a time,
   each against every row of x, so that w is read from memory once for all M rows. */
static inline void nnk_linear_rows(float *restrict y, long ldy, const float *restrict x, const float *restrict w,
                                   const float *restrict b, int M, int K, int O)
{
    int o = 0;
    for (; o + 4 <= O; o += 4)
        for (int m = 0; m < M; m++) {
            float s[4];
            nnk__dot4(s, x + (long)m * K, w + (long)o * K, K, K);
            for (int r = 0; r < 4; r++)
                y[m * ldy + o + r] = s[r] + (b ? b[o + r] : 0.0f);
        }
    for (; o < O; o++)
        for (int m = 0; m < M; m++)
            y[m * ldy + o] = nnk__dot(x + (long)m * K, w + (long)o * K, K) + (b ? b[o] : 0.0f);
}

/* y[M,O] = x[M,K] · w[O,K]ᵀ + b[O]  (b may be NULL) */
static inline void nnk_linear(float *restrict y, const float *restrict x, const float *restrict w,
                              const float *restrict b, int M, int K, int O)
{
    nnk_linear_rows(y, O, x, w, b, M, K, O);
}

/* y[M,N] = a[M,K] @ b[K,N] for one matrix of a batch */
static inline void nnk__matmul2d(float *restrict y, const float *restrict a, const float *restrict b,
                                 int M, int K, int N)
{
    for (int m = 0; m < M; m++) {
        float *yr = y + (long)m * N;
        for (int n = 0; n < N; n++)
            yr[n] = 0.0f;
        for (int k = 0; k < K; k++) {
            float av = a[(long)m * K + k];
            const float *br = b + (long)k * N;
            for (int n = 0; n < N; n++)
                yr[n] += av * br[n];
        }
    }
}

/* y[batch..., M, N] = a[batch..., M, K] @ b[batch..., K, N]. The batch shape is bdims[brank] (brank may be
   0); astride/bstride[brank] give each operand's element stride per batch axis (0 where broadcast); each
   operand's own matrix is contiguous row-major, and y is contiguous. */
static inline void nnk_matmul(float *restrict y, const float *restrict a, const float *restrict b,
                              int brank, const int *bdims, const long *astride, const long *bstride,
                              int M, int K, int N)
{
    long batches = 1;
    for (int ax = 0; ax < brank; ax++)
        batches *= bdims[ax];
    for (long i = 0; i < batches; i++)
        nnk__matmul2d(y + i * M * N, a + nnk__offset(i, brank, bdims, astride),
                      b + nnk__offset(i, brank, bdims, bstride), M, K, N);
}

#endif
