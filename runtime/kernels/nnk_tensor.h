/*
 * nnk_tensor.h — gathers by index, constant tensors, selection and reductions over an axis.
 *
 * Indices are floats holding exact integers that the loader checked against the axis they index
 * (nnrt_load_safetensors with an index limit), so these kernels read them without checks. Booleans are
 * floats 0 and 1: a condition is true where it is not zero, as a float tensor's bool() is in PyTorch.
 */
#ifndef NNK_TENSOR_H
#define NNK_TENSOR_H

#include "nnk_base.h"

/* y[outer, n, inner] = x[outer, index[i], inner] for i < n, x[outer, D, inner]: index_select and take. */
static inline void nnk_index_select(float *restrict y, const float *restrict x, const float *restrict index, long outer, int D,
                                    long inner, long n)
{
    for (long o = 0; o < outer; o++)
        for (long i = 0; i < n; i++)
            memcpy(y + (o * n + i) * inner, x + (o * D + (long)index[i]) * inner, (size_t)inner * sizeof(float));
}

/* y[n] = value */
static inline void nnk_full(float *y, float value, long n)
{
    for (long i = 0; i < n; i++)
        y[i] = value;
}

/* y[n] = start + i * step, computed in double and rounded once (as torch.arange) */
static inline void nnk_arange(float *y, double start, double step, long n)
{
    for (long i = 0; i < n; i++)
        y[i] = (float)(start + (double)i * step);
}

/* y[dims] = c != 0 ? a : b, each operand read with per-axis element strides (0 on broadcast axes); a or b
   NULL is the number av or bv. rank may be 0. */
static inline void nnk_where(float *restrict y, const float *restrict c, const float *restrict a, const float *restrict b, float av,
                             float bv, int rank, const int *dims, const long *cstride, const long *astride, const long *bstride)
{
    int inner = rank > 0 ? dims[rank - 1] : 1;
    long cs = rank > 0 ? cstride[rank - 1] : 0, as = rank > 0 && a ? astride[rank - 1] : 0, bs = rank > 0 && b ? bstride[rank - 1] : 0;
    long rows = 1;
    for (int ax = 0; ax < rank - 1; ax++)
        rows *= dims[ax];
    for (long r = 0; r < rows; r++) {
        const float *cr = c + nnk__offset(r, rank - 1, dims, cstride);
        const float *ar = a ? a + nnk__offset(r, rank - 1, dims, astride) : NULL;
        const float *br = b ? b + nnk__offset(r, rank - 1, dims, bstride) : NULL;
        float *yr = y + r * inner;
        for (int i = 0; i < inner; i++)
            yr[i] = cr[i * cs] != 0.0f ? (ar ? ar[i * as] : av) : (br ? br[i * bs] : bv);
    }
}

enum { NNK_REDUCE_SUM, NNK_REDUCE_MEAN, NNK_REDUCE_MAX, NNK_REDUCE_MIN };

/* y[outer, inner] = the sum, mean, max or min over j of x[outer, D, inner]. Max and min keep a NaN, as
   torch.amax does. The inner axis is the inner loop, so each step is a vectorisable stream; over the last
   axis a sum is nnk__sum's, in lanes. */
static inline void nnk_reduce(float *restrict y, const float *restrict x, long outer, int D, long inner, int kind)
{
    if (inner == 1 && (kind == NNK_REDUCE_SUM || kind == NNK_REDUCE_MEAN)) {   /* the last axis: laned sums */
        for (long o = 0; o < outer; o++)
            y[o] = kind == NNK_REDUCE_MEAN ? nnk__sum(x + o * D, D) / (float)D : nnk__sum(x + o * D, D);
        return;
    }
    for (long o = 0; o < outer; o++) {
        float *yo = y + o * inner;
        const float *xo = x + o * D * inner;
        memcpy(yo, xo, (size_t)inner * sizeof(float));
        for (int j = 1; j < D; j++) {
            const float *xj = xo + j * inner;
            switch (kind) {
            case NNK_REDUCE_SUM:
            case NNK_REDUCE_MEAN: for (long k = 0; k < inner; k++) yo[k] += xj[k]; break;
            case NNK_REDUCE_MAX: for (long k = 0; k < inner; k++) yo[k] = xj[k] > yo[k] || xj[k] != xj[k] ? xj[k] : yo[k]; break;
            default: for (long k = 0; k < inner; k++) yo[k] = xj[k] < yo[k] || xj[k] != xj[k] ? xj[k] : yo[k]; break;
            }
        }
        if (kind == NNK_REDUCE_MEAN)
            for (long k = 0; k < inner; k++)
                yo[k] /= (float)D;
    }
}

#endif
