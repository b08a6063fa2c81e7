/*
 * nnk_conv.h — direct 2-D convolution (any stride, padding, dilation, groups).
 *
 * The loop nest accumulates into a whole output plane: for each input channel and kernel tap, add
 * w · (the input row shifted by the tap) to every output row the tap reaches. The innermost loop runs
 * along an output row (unit stride in y), and nnk__valid_range trims it to the columns whose input lies
 * inside the image, so zero padding costs nothing and needs no branch.
 */
#ifndef NNK_CONV_H
#define NNK_CONV_H

#include "nnk_base.h"

/* The shape of one conv2d, as generated code writes it: a static const struct with designated
   initialisers (.kh = 3, .sh = 1, ...). */
typedef struct {
    int C, H, W;             /* input channels and plane */
    int O, OH, OW;           /* output channels and plane */
    int kh, kw, sh, sw;      /* kernel and stride */
    int pt, pl;              /* top and left zero padding (the bottom and right follow from OH and OW) */
    int dh, dw, groups;      /* dilation, groups */
} nnk_conv_params;

/* For small output planes (the deep layers of a network: 7x7, 4x4, 1x1) the row loops above are too
   short to pay; instead each output pixel gathers its input patch (zeros where padded) once, and every
   output channel is one dot product of its contiguous weight row with that patch. */
enum { NNK_CONV_SMALL_PLANE = 256, NNK_CONV_MAX_PATCH = 8192 };

static inline void nnk__conv2d_small(float *restrict y, const float *restrict x, const float *restrict w,
                                     const float *restrict b, int N, int C, int H, int W, int O, int OH, int OW,
                                     int KH, int KW, int SH, int SW, int PT, int PL, int DH, int DW, int G)
{
    int Cg = C / G, Og = O / G;
    long plane = (long)OH * OW, patch_len = (long)Cg * KH * KW;
    float patch[NNK_CONV_MAX_PATCH];
    for (int n = 0; n < N; n++)
        for (int g = 0; g < G; g++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    long k = 0;
                    for (int c = 0; c < Cg; c++) {
                        const float *xp = x + ((long)n * C + (long)g * Cg + c) * H * W;
                        for (int kh = 0; kh < KH; kh++) {
                            int ih = oh * SH + kh * DH - PT;
                            for (int kw = 0; kw < KW; kw++, k++) {
                                int iw = ow * SW + kw * DW - PL;
                                patch[k] = ih >= 0 && ih < H && iw >= 0 && iw < W ? xp[(long)ih * W + iw] : 0.0f;
                            }
                        }
                    }
                    for (int o = g * Og; o < (g + 1) * Og; o++)
                        y[((long)n * O + o) * plane + (long)oh * OW + ow] =
                            nnk__dot(w + (long)o * patch_len, patch, patch_len) + (b ? b[o] : 0.0f);
                }
}

/* y[N,O,OH,OW] = conv(x[N,C,H,W], w[O,C/G,KH,KW]) + b[O] (b may be NULL). Stride SH,SW; zero padding PT
   (top), PL (left) — bottom/right padding is implied by OH/OW; dilation DH,DW; groups G. */
static inline void nnk_conv2d(float *restrict y, const float *restrict x, const float *restrict w,
                              const float *restrict b, int N, int C, int H, int W, int O, int OH, int OW,
                              int KH, int KW, int SH, int SW, int PT, int PL, int DH, int DW, int G)
{
    int Cg = C / G, Og = O / G;
    long plane = (long)OH * OW;
    if (plane <= NNK_CONV_SMALL_PLANE && (long)Cg * KH * KW <= NNK_CONV_MAX_PATCH) {
        nnk__conv2d_small(y, x, w, b, N, C, H, W, O, OH, OW, KH, KW, SH, SW, PT, PL, DH, DW, G);
        return;
    }
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            float *yp = y + ((long)n * O + o) * plane;
            float bias = b ? b[o] : 0.0f;
            for (long i = 0; i < plane; i++)
                yp[i] = bias;
            for (int c = 0; c < Cg; c++) {
                const float *xp = x + ((long)n * C + (long)(o / Og) * Cg + c) * H * W;
                const float *wp = w + ((long)o * Cg + c) * KH * KW;
                for (int kh = 0; kh < KH; kh++) {
                    int hoff = kh * DH - PT, oh0, oh1;    /* output row oh reads input row oh*SH + hoff */
                    nnk__valid_range(&oh0, &oh1, OH, H, SH, hoff);
                    for (int kw = 0; kw < KW; kw++) {
                        int woff = kw * DW - PL, ow0, ow1;
                        nnk__valid_range(&ow0, &ow1, OW, W, SW, woff);
                        float wv = wp[kh * KW + kw];
                        for (int oh = oh0; oh < oh1; oh++) {
                            float *yr = yp + (long)oh * OW;
                            const float *xr = xp + (long)(oh * SH + hoff) * W;
                            for (int ow = ow0; ow < ow1; ow++)
                                yr[ow] += wv * xr[(long)ow * SW + woff];
                        }
                        if (!isfinite(wv))   /* where the tap reads padding, PyTorch's wv · 0: NaN */
                            for (int oh = 0; oh < OH; oh++)
                                for (int ow = 0; ow < OW; ow++)
                                    if (oh < oh0 || oh >= oh1 || ow < ow0 || ow >= ow1)
                                        yp[(long)oh * OW + ow] += wv * 0.0f;
                    }
                }
            }
        }
}

/* Groups [g0, g1) of a grouped convolution of one image (x, y, w and b the whole image's and layer's). */
static inline void nnk_conv2d_groups(float *restrict y, const float *restrict x, const float *restrict w, const float *restrict b,
                                     const nnk_conv_params *p, int g0, int g1)
{
    int Cg = p->C / p->groups, Og = p->O / p->groups;
    long plane = (long)p->OH * p->OW;
    nnk_conv2d(y + (long)g0 * Og * plane, x + (long)g0 * Cg * p->H * p->W, w + (long)g0 * Og * Cg * p->kh * p->kw, b ? b + g0 * Og : NULL,
               1, (g1 - g0) * Cg, p->H, p->W, (g1 - g0) * Og, p->OH, p->OW, p->kh, p->kw, p->sh, p->sw, p->pt, p->pl, p->dh, p->dw,
               g1 - g0);
}

#endif
