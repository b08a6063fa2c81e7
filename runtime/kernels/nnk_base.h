/*
 * nnk_base.h — what every nnk kernel header shares: the libc/libm includes and three small helpers.
 *
 * Names starting with `nnk__` are internal to the kernels; generated code calls only the `nnk_` ones.
 * Conventions for the whole library: float32 tensors, contiguous, NCHW; outputs first, dimensions last;
 * `long` for flat element counts and offsets, `int` for a single dimension. Kernels never allocate: a
 * kernel that needs scratch memory takes a pointer to it and its header gives a size macro in floats.
 */
#ifndef NNK_BASE_H
#define NNK_BASE_H

#include <math.h>
#include <stddef.h>
#include <string.h>

/* Largest rank nnk_transpose accepts (it keeps per-axis strides in local arrays); other kernels take any. */
#define NNK_MAX_RANK 8

/* a[n] · b[n]. Eight independent partial sums: without -ffast-math a compiler may not reorder one running
   sum, but it can vectorise eight of them, and the shorter chains are also a little more accurate. */
static inline float nnk__dot(const float *restrict a, const float *restrict b, long n)
{
    float acc[8] = {0};
    long body = n - n % 8;   /* (a split written so that gcc 12 sees the tail's trip count is below 8) */
    for (long i = 0; i < body; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += a[i + j] * b[i + j];
    float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (long i = body; i < n; i++)
        sum += a[i] * b[i];
    return sum;
}

/* Element offset of flat index i of a tensor of shape dims[rank] read with per-axis strides stride[rank]:
   i is split into one index per axis (last axis fastest) and each is weighted by its axis' stride. */
static inline long nnk__offset(long i, int rank, const int *dims, const long *stride)
{
    long off = 0;
    for (int ax = rank - 1; ax >= 0; ax--) {
        off += (i % dims[ax]) * stride[ax];
        i /= dims[ax];
    }
    return off;
}

/* The outputs o in [*lo, *hi) of a sliding window whose input position o*step + shift lies in [0, n),
   clipped to [0, outs). Convolution and pooling use it to take the zero-padding test out of their inner
   loops: only the valid range is visited, and padded cells are simply never read. */
static inline void nnk__valid_range(int *lo, int *hi, int outs, int n, int step, int shift)
{
    int first = shift >= 0 ? 0 : (-shift + step - 1) / step;   /* ceil(-shift / step) */
    int end = shift >= n ? 0 : (n - 1 - shift) / step + 1;      /* floor((n-1-shift) / step) + 1 */
    *lo = first;
    *hi = end < outs ? end : outs;
}

#endif
