/*
 * nnk_norm.h — normalisations: eval-mode batch norm, layer norm, softmax.
 *
 * Batch norm folds its four vectors into one scale and shift per channel, as PyTorch does on the CPU.
 * Layer norm uses two passes (mean, then the mean of squared deviations) accumulated in double, so a large
 * common offset in a row does not eat the variance. Softmax subtracts the row maximum before exponentiating.
 */
#ifndef NNK_NORM_H
#define NNK_NORM_H

#include "nnk_base.h"

/* y[N,C,S] = (x - mean[C]) / √(var[C] + eps) · gamma[C] + beta[C]  (S: product of spatial dims, may be 1) */
static inline void nnk_batchnorm(float *y, const float *x, const float *restrict gamma,
                                 const float *restrict beta, const float *restrict mean,
                                 const float *restrict var, int N, int C, long S, float eps)
{
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            float scale = gamma[c] / sqrtf(var[c] + eps);
            float shift = beta[c] - mean[c] * scale;
            long base = ((long)n * C + c) * S;
            for (long s = 0; s < S; s++)
                y[base + s] = x[base + s] * scale + shift;
        }
}

/* y[M,D] = (x - mean) / √(var + eps) · gamma[D] + beta[D], mean and biased var over each row of x[M,D] */
static inline void nnk_layernorm(float *y, const float *x, const float *restrict gamma,
                                 const float *restrict beta, long M, int D, float eps)
{
    for (long m = 0; m < M; m++) {
        const float *xr = x + m * D;
        float *yr = y + m * D;
        /* the sums in double, in 8 lanes so that they vectorise */
        double sum[8] = {0}, ss[8] = {0};
        int body = D - D % 8;
        for (int d = 0; d < body; d += 8)
            for (int j = 0; j < 8; j++)
                sum[j] += (double)xr[d + j];
        for (int d = body; d < D; d++)
            sum[0] += (double)xr[d];
        double mean = (((sum[0] + sum[1]) + (sum[2] + sum[3])) + ((sum[4] + sum[5]) + (sum[6] + sum[7]))) / D;
        /* (mean kept in double: rounding it to float costs accuracy when |mean| >> std) */
        for (int d = 0; d < body; d += 8)
            for (int j = 0; j < 8; j++) {
                double dev = (double)xr[d + j] - mean;
                ss[j] += dev * dev;
            }
        for (int d = body; d < D; d++) {
            double dev = (double)xr[d] - mean;
            ss[0] += dev * dev;
        }
        double var = (((ss[0] + ss[1]) + (ss[2] + ss[3])) + ((ss[4] + ss[5]) + (ss[6] + ss[7]))) / D;
        double rstd = 1.0 / sqrt(var + (double)eps);
        for (int d = 0; d < D; d++)
            yr[d] = (float)(((double)xr[d] - mean) * rstd) * gamma[d] + beta[d];
    }
}

/* y[outer,D,inner] = softmax of x[outer,D,inner] over the middle axis: e^(x - max) / Σ e^(x - max) */
static inline void nnk_softmax(float *y, const float *x, long outer, int D, long inner)
{
    for (long o = 0; o < outer; o++)
        for (long i = 0; i < inner; i++) {
            const float *xr = x + o * D * inner + i;
            float *yr = y + o * D * inner + i;
            float max = xr[0];
            for (int d = 1; d < D; d++)
                max = xr[d * inner] > max ? xr[d * inner] : max;
            float sum = 0.0f;
            for (int d = 0; d < D; d++)   /* (apart from the sum, so that this loop vectorises) */
                yr[d * inner] = nnk__exp(xr[d * inner] - max);
            for (int d = 0; d < D; d++)
                sum += yr[d * inner];
            float inv = 1.0f / sum;
            for (int d = 0; d < D; d++)
                yr[d * inner] *= inv;
        }
}

/* Folds an eval-mode batch norm into the layer before it, once at load time:
   s = gamma / sqrt(var + eps);  w[O, per] *= s[o];  b[o] = (b[o] - mean[o]) * s[o] + beta[o].
   (b holds the layer's bias, or zeros when it had none.) */
static inline void nnk_fold_batchnorm(float *w, float *b, const float *gamma, const float *beta, const float *mean,
                                      const float *var, int O, long per, float eps)
{
    for (int o = 0; o < O; o++) {
        double s = (double)gamma[o] / sqrt((double)var[o] + (double)eps);
        for (long i = 0; i < per; i++)
            w[(long)o * per + i] = (float)(w[(long)o * per + i] * s);
        b[o] = (float)(((double)b[o] - mean[o]) * s + beta[o]);
    }
}

#endif
