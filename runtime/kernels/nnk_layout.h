/*
 * nnk_layout.h — kernels that only move data: pad, slice, concat pieces, expand, transpose.
 *
 * Most see a tensor as x[outer, D, inner] around the one axis they act on, so that a single kernel serves
 * every axis of every rank. expand and transpose are both "y contiguous, x read with per-axis strides".
 */
#ifndef NNK_LAYOUT_H
#define NNK_LAYOUT_H

#include "nnk_base.h"

/* y[outer, before+D+after, inner] = x[outer, D, inner] with `value` in the new rows. A negative before or
   after crops instead. */
static inline void nnk_pad(float *restrict y, const float *restrict x, long outer, int D, long inner,
                           int before, int after, float value)
{
    int Dy = before + D + after;
    for (long o = 0; o < outer; o++) {
        const float *xo = x + o * D * inner;
        float *yo = y + o * Dy * inner;
        for (int d = 0; d < Dy; d++) {
            int src = d - before;
            float *yrow = yo + d * inner;
            if (src >= 0 && src < D)
                memcpy(yrow, xo + src * inner, (size_t)inner * sizeof(float));
            else
                for (long i = 0; i < inner; i++)
                    yrow[i] = value;
        }
    }
}

/* y[outer, Dy, inner] at rows offset .. offset+Dx-1 of the middle axis = x[outer, Dx, inner]
   (one input of a concat) */
static inline void nnk_copy_axis(float *restrict y, const float *restrict x, long outer, int Dx, long inner,
                                 int Dy, int offset)
{
    long chunk = Dx * inner;
    for (long o = 0; o < outer; o++)
        memcpy(y + (o * Dy + offset) * inner, x + o * chunk, (size_t)chunk * sizeof(float));
}

/* y[outer, count, inner] = x[outer, start + i*step, inner] for i < count, x[outer, D, inner]; step > 0 */
static inline void nnk_slice(float *restrict y, const float *restrict x, long outer, int D, long inner,
                             int start, int step, int count)
{
    for (long o = 0; o < outer; o++)
        for (int i = 0; i < count; i++)
            memcpy(y + (o * count + i) * inner, x + (o * D + start + (long)i * step) * inner,
                   (size_t)inner * sizeof(float));
}

/* The rows of y[dims] (a row: its last axis) there are. */
static inline long nnk__rows(int rank, const int *dims)
{
    long rows = 1;
    for (int ax = 0; ax < rank - 1; ax++)
        rows *= dims[ax];
    return rows;
}

/* Rows [r0, r1) of y[dims] = x read with per-axis element strides xstride[rank] (0 on broadcast axes). */
static inline void nnk__broadcast_rows(float *restrict y, const float *restrict x, int rank, const int *dims,
                                       const long *xstride, long r0, long r1)
{
    int inner = rank > 0 ? dims[rank - 1] : 1;
    long xs = rank > 0 ? xstride[rank - 1] : 0;
    for (long r = r0; r < r1; r++) {
        const float *xr = x + nnk__offset(r, rank - 1, dims, xstride);
        float *yr = y + r * inner;
        for (int i = 0; i < inner; i++)
            yr[i] = xr[i * xs];
    }
}

/* y[dims] = x read with per-axis element strides xstride[rank] (0 on broadcast axes): expand. rank may be 0. */
static inline void nnk_broadcast(float *restrict y, const float *restrict x, int rank, const int *dims,
                                 const long *xstride)
{
    nnk__broadcast_rows(y, x, rank, dims, xstride, 0, nnk__rows(rank, dims));
}

/* y = x.permute(perm): x contiguous in_dims[rank], y contiguous with dims in_dims[perm[i]]; rows [r0, r1) of y
   (a row: its last axis), of nnk_transpose_rows_of(rank, in_dims, perm). Output axis i walks input axis
   perm[i], so the copy is an nnk_broadcast with x's strides permuted. */
static inline long nnk_transpose_rows_of(int rank, const int *in_dims, const int *perm)
{
    long rows = 1;
    for (int ax = 0; ax < rank - 1; ax++)
        rows *= in_dims[perm[ax]];
    return rows;
}

static inline void nnk_transpose_rows(float *restrict y, const float *restrict x, int rank, const int *in_dims,
                                      const int *perm, long r0, long r1)
{
    long in_stride[NNK_MAX_RANK], xstride[NNK_MAX_RANK];
    int dims[NNK_MAX_RANK];
    long s = 1;
    for (int ax = rank - 1; ax >= 0; ax--) {
        in_stride[ax] = s;
        s *= in_dims[ax];
    }
    for (int ax = 0; ax < rank; ax++) {
        dims[ax] = in_dims[perm[ax]];
        xstride[ax] = in_stride[perm[ax]];
    }
    nnk__broadcast_rows(y, x, rank, dims, xstride, r0, r1);
}

static inline void nnk_transpose(float *restrict y, const float *restrict x, int rank, const int *in_dims, const int *perm)
{
    nnk_transpose_rows(y, x, rank, in_dims, perm, 0, nnk_transpose_rows_of(rank, in_dims, perm));
}

#endif
