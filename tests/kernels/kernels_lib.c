/*
 * kernels_lib.c — non-inline wrappers around every nnk kernel, built into a shared library that
 * test_kernels.py loads with ctypes. Each wrapper has the kernel's name with the prefix nnkt_.
 */
#define NNK_CONV_SMALL_GROUPS 1   /* the tiles of groups within a block too, as nnc asks for them where a model has such layers */
#include "nnk.h"

#include <stdlib.h>

void nnkt_conv2d(float *y, const float *x, const float *w, const float *b, int N, int C, int H, int W, int O,
                 int OH, int OW, int KH, int KW, int SH, int SW, int PT, int PL, int DH, int DW, int G)
{
    nnk_conv2d(y, x, w, b, N, C, H, W, O, OH, OW, KH, KW, SH, SW, PT, PL, DH, DW, G);
}

void nnkt_linear(float *y, const float *x, const float *w, const float *b, int M, int K, int O)
{
    nnk_linear(y, x, w, b, M, K, O);
}

/* Output features [o0, o1) of O_all, as a part of the generated code computes them: y's rows O_all apart. */
void nnkt_linear_rows(float *y, const float *x, const float *w, const float *b, int M, int K, int O_all, int o0, int o1)
{
    nnk_linear_rows(y + o0, O_all, x, w + (long)o0 * K, b + o0, M, K, o1 - o0);
}

void nnkt_batchnorm(float *y, const float *x, const float *gamma, const float *beta, const float *mean,
                    const float *var, int N, int C, long S, float eps)
{
    nnk_batchnorm(y, x, gamma, beta, mean, var, N, C, S, eps);
}

void nnkt_layernorm(float *y, const float *x, const float *gamma, const float *beta, long M, int D, float eps)
{
    nnk_layernorm(y, x, gamma, beta, M, D, eps);
}

/* Every activation of nnk_acts.def (nnkt_relu, nnkt_gelu, ...), and their names by NNK_ACT_* number, so
   that the tests take the list from the runtime instead of repeating it. */
#define ACT(ID, NAME, ZMM, EXPR) \
    void nnkt_##NAME(float *y, const float *x, long n) { nnk_##NAME(y, x, n); }
#include "nnk_acts.def"
#undef ACT

const char *const nnkt_act_names[NNK_ACT_COUNT + 1] = {
    [NNK_ACT_NONE] = "none",
#define ACT(ID, NAME, ZMM, EXPR) [NNK_ACT_##ID] = #NAME,
#include "nnk_acts.def"
#undef ACT
    [NNK_ACT_COUNT] = NULL,
};

void nnkt_binary(float *y, const float *a, const float *b, int op, int rank, const int *dims,
                 const long *astride, const long *bstride)
{
    nnk_binary(y, a, b, op, rank, dims, astride, bstride);
}

void nnkt_scalar(float *y, const float *x, float s, int op, long n) { nnk_scalar(y, x, s, op, n); }

void nnkt_softmax(float *y, const float *x, long outer, int D, long inner)
{
    nnk_softmax(y, x, outer, D, inner);
}

void nnkt_maxpool2d(float *y, const float *x, int N, int C, int H, int W, int OH, int OW, int KH, int KW,
                    int SH, int SW, int PT, int PL)
{
    nnk_maxpool2d(y, x, N, C, H, W, OH, OW, KH, KW, SH, SW, PT, PL);
}

void nnkt_avgpool2d(float *y, const float *x, int N, int C, int H, int W, int OH, int OW, int KH, int KW,
                    int SH, int SW, int PT, int PL)
{
    nnk_avgpool2d(y, x, N, C, H, W, OH, OW, KH, KW, SH, SW, PT, PL);
}

void nnkt_adaptive_avgpool2d(float *y, const float *x, int N, int C, int H, int W, int OH, int OW)
{
    nnk_adaptive_avgpool2d_planes(y, x, H, W, OH, OW, 0, (long)N * C);
}

void nnkt_pad(float *y, const float *x, long outer, int D, long inner, int before, int after, float value)
{
    nnk_pad(y, x, outer, D, inner, before, after, value);
}

void nnkt_transpose(float *y, const float *x, int rank, const int *in_dims, const int *perm)
{
    nnk_transpose(y, x, rank, in_dims, perm);
}

void nnkt_copy_axis(float *y, const float *x, long outer, int Dx, long inner, int Dy, int offset)
{
    nnk_copy_axis(y, x, outer, Dx, inner, Dy, offset);
}

void nnkt_slice(float *y, const float *x, long outer, int D, long inner, int start, int step, int count)
{
    nnk_slice(y, x, outer, D, inner, start, step, count);
}

void nnkt_broadcast(float *y, const float *x, int rank, const int *dims, const long *xstride)
{
    nnk_broadcast(y, x, rank, dims, xstride);
}

void nnkt_matmul(float *y, const float *a, const float *b, int brank, const int *bdims, const long *astride,
                 const long *bstride, int M, int K, int N)
{
    nnk_matmul(y, a, b, brank, bdims, astride, bstride, M, K, N);
}

long nnkt_sdpa_scratch(int L, int S) { (void)L; return NNK_SDPA_SCRATCH(L, S); }

void nnkt_sdpa(float *y, const float *q, const float *k, const float *v, int B, int L, int S, int D, int Dv,
               int causal, float *scratch)
{
    nnk_sdpa(y, q, k, v, B, L, S, D, Dv, causal, scratch);
}

long nnkt_mha_scratch(int N, int L, int S, int D) { return NNK_MHA_SCRATCH(N, L, S, D); }

void nnkt_mha(float *y, const float *x, const float *mem, const float *in_w, const float *in_b,
              const float *out_w, const float *out_b, int N, int L, int S, int D, int heads, int causal,
              float *scratch)
{
    nnk_mha(y, x, mem, in_w, in_b, out_w, out_b, N, L, S, D, heads, causal, scratch);
}

/* nn.MultiheadAttention with the attention of the generated code: nnk_mha_attend's blocked products
   over the (batch, head) pairs, in two calls as two threads would. Scratch from the heap. */
void nnkt_mha_blocked(float *y, const float *x, const float *mem, const float *in_w, const float *in_b,
                      const float *out_w, const float *out_b, int N, int L, int S, int D, int heads, int causal)
{
    long DD = (long)D * D;
    float *Q = malloc(((long)N * (L + 2L * S) * D + NNK_ATTEND_SCRATCH(S)) * sizeof *Q);
    if (!Q)
        abort();
    float *K = Q + (long)N * L * D, *V = K + (long)N * S * D, *scratch = V + (long)N * S * D;
    nnk_linear(Q, x, in_w, in_b, N * L, D, D);
    nnk_linear(K, mem, in_w + DD, in_b + D, N * S, D, D);
    nnk_linear(V, mem, in_w + 2 * DD, in_b + 2 * D, N * S, D, D);
    long units = (long)N * heads;
    nnk_mha_attend(Q, K, V, L, S, D, heads, causal, 0, units / 2, scratch);
    nnk_mha_attend(Q, K, V, L, S, D, heads, causal, units / 2, units, scratch);
    nnk_linear(y, Q, out_w, out_b, N * L, D, D);
    free(Q);
}

/* The blocked product, one image at a time (nnk_conv2d_gemm takes one), with its scratch from the heap.
   The output is computed in four calls, as threads would: two ranges of channels (split at a strip edge
   when the weights are packed; w is the caller's copy, and is rearranged then) times two ranges of
   pixels. */
void nnkt_conv2d_gemm(float *y, const float *x, float *w, int w_packed, const float *b, const float *res, int act1,
                      int act2, int N, int C, int H, int W, int O, int OH, int OW, int KH, int KW, int SH, int SW,
                      int PT, int PL, int DH, int DW)
{
    long K = (long)C * KH * KW, plane = (long)OH * OW;
    float *scratch = malloc((NNK_GEMM_SCRATCH + O * K) * sizeof *scratch);
    if (!scratch)
        abort();
    if (w_packed)
        nnk_pack_weight(w, O, K, NNK_MR, scratch + NNK_GEMM_SCRATCH);
    int split = w_packed ? O / NNK_MR / 2 * NNK_MR : O / 2, psplit = (int)(plane / 3);
    for (int n = 0; n < N; n++)
        for (int part = 0; part < 4; part++) {
            int o0 = part & 1 ? split : 0, o1 = part & 1 ? O : split;
            int p0 = part & 2 ? psplit : 0, p1 = part & 2 ? (int)plane : psplit;
            long yo = ((long)n * O + o0) * plane;
            if (o1 > o0 && p1 > p0)
                nnk_conv2d_gemm(y + yo, x + (long)n * C * H * W, w, w_packed, O, o0, b ? b + o0 : NULL,
                                res ? res + yo : NULL, act1, act2, C, H, W, o1 - o0, OH, OW, p0, p1, KH, KW, SH, SW,
                                PT, PL, DH, DW, scratch);
        }
    free(scratch);
}

/* A batch of small planes as one product over all their pixels, in three calls as three threads would make
   them (column ranges split at panel edges). */
void nnkt_conv2d_gemm_batch(float *y, const float *x, float *w, int w_packed, const float *b, const float *res, int act1,
                            int act2, int N, int C, int H, int W, int O, int OH, int OW, int KH, int KW, int SH, int SW,
                            int PT, int PL, int DH, int DW)
{
    long K = (long)C * KH * KW, Q = (long)N * OH * OW, panels = (Q + NNK_NR - 1) / NNK_NR;
    long floats = NNK_CONV_BATCH_SCRATCH(O) > O * K ? NNK_CONV_BATCH_SCRATCH(O) : O * K;
    float *scratch = malloc((size_t)floats * sizeof *scratch);
    if (!scratch)
        abort();
    if (w_packed)
        nnk_pack_weight(w, O, K, NNK_MR, scratch);
    for (int part = 0; part < 3; part++) {
        long q0 = NNK_NR * (panels * part / 3), q1 = NNK_NR * (panels * (part + 1) / 3);
        q1 = q1 < Q ? q1 : Q;
        if (q0 < q1)
            nnk_conv2d_gemm_batch(y, x, w, w_packed, b, res, act1, act2, C, H, W, O, OH, OW, q0, q1, KH, KW, SH, SW, PT, PL, DH,
                                  DW, scratch);
    }
    free(scratch);
}

/* Output features [o0, o1) of a linear layer whose output rows have O features (w the caller's copy: it is
   rearranged when packed). */
void nnkt_linear_gemm(float *y, const float *x, float *w, int w_packed, const float *b, const float *res, int act1,
                      int act2, int M, int K, int O, int o0, int o1)
{
    float *scratch = malloc((NNK_GEMM_SCRATCH + (long)O * K) * sizeof *scratch);
    if (!scratch)
        abort();
    if (w_packed)
        nnk_pack_weight(w, O, K, NNK_NR, scratch + NNK_GEMM_SCRATCH);
    nnk_linear_gemm(y + o0, O, x, w, w_packed, O, o0, b ? b + o0 : NULL, res ? res + o0 : NULL, act1, act2, M, K,
                    o1 - o0, scratch);
    free(scratch);
}

/* nn.Linear of M rows by nnk_linear_gemv, for the features [o0, o1) (o0 a multiple of NNK_GEMV_W; o1 one
   too, or O) of a weight packed into panels here, into y[M, O]; then the same by nnk_linear_gemm (unpacked
   weight, the whole of O) into y2, whose sums nnk_linear_gemv must give to the bit. */
void nnkt_linear_gemv(float *y, float *y2, const float *x, const float *w, const float *b, int M, int K, int O, int o0, int o1)
{
    float *wp = malloc((size_t)(NNK_GEMV_FLOATS(O, K) + (long)O * K + NNK_GEMM_SCRATCH) * sizeof *wp);
    if (!wp)
        abort();
    float *tmp = wp + NNK_GEMV_FLOATS(O, K), *scratch = tmp + (long)O * K;
    memcpy(wp, w, (size_t)O * K * sizeof *wp);
    nnk_pack_gemv(wp, O, K, tmp);
    nnk_linear_gemv(y, O, x, wp, b, M, K, o0, o1);
    nnk_linear_gemm(y2, O, x, w, 0, O, 0, b, NULL, NNK_ACT_NONE, NNK_ACT_NONE, M, K, O, scratch);
    free(wp);
}

/* Which path of nnk_dwconv.h this build took (the suite checks it against the ISA path of nnk_gemm.h). */
const char *nnkt_dwconv_path(void)
{
#if defined(NNK_DWCONV_AVX512F)
    return "avx512f";
#elif defined(NNK_DWCONV_AVX2_FMA)
    return "avx2";
#elif defined(NNK_DWCONV_NEON)
    return "neon";
#elif defined(NNK_DWCONV_VECTOR)
    return "vector";
#else
    return "plain";
#endif
}

static nnk_conv_params conv_shape(int C, int H, int W, int O, int OH, int OW, int KH, int KW, int SH, int SW, int PT, int PL,
                                  int DH, int DW, int G)
{
    nnk_conv_params p = {C, H, W, O, OH, OW, KH, KW, SH, SW, PT, PL, DH, DW, G};
    return p;
}

/* A depthwise or grouped conv2d on vectorised rows, each image's output channels in `parts` calls as that many threads would make them,
   each with its own scratch (from the heap, NaN-filled so that a read of an unwritten float shows). */
void nnkt_dwconv2d(float *y, const float *x, const float *w, const float *b, const float *res, int act1, int act2, int N, int C,
                   int H, int W, int O, int OH, int OW, int KH, int KW, int SH, int SW, int PT, int PL, int DH, int DW, int G,
                   int parts)
{
    nnk_conv_params p = conv_shape(C, H, W, O, OH, OW, KH, KW, SH, SW, PT, PL, DH, DW, G);
    long floats = NNK_DWCONV_SCRATCH(C / G, OH, OW, KH, KW, SH, SW, DH, DW), plane = (long)OH * OW;
    float *scratch = malloc((size_t)floats * (size_t)parts * sizeof *scratch);
    if (!scratch)
        abort();
    for (long i = 0; i < floats * parts; i++)
        scratch[i] = NAN;
    for (int n = 0; n < N; n++)
        for (int part = 0; part < parts; part++) {
            int o0 = (int)((long)O * part / parts), o1 = (int)((long)O * (part + 1) / parts);
            nnk_dwconv2d_part(y + (long)n * O * plane, x + (long)n * C * H * W, w, b, res ? res + (long)n * O * plane : NULL, act1,
                              act2, &p, o0, o1, scratch + floats * part);
        }
    free(scratch);
}

/* A grouped conv2d as a product per group, each image's output channels in `parts` calls as that many
   threads would make them (the ranges cut groups anywhere). */
void nnkt_conv2d_gemm_groups(float *y, const float *x, const float *w, const float *b, const float *res, int act1, int act2, int N,
                             int C, int H, int W, int O, int OH, int OW, int KH, int KW, int SH, int SW, int PT, int PL, int DH,
                             int DW, int G, int parts)
{
    nnk_conv_params p = conv_shape(C, H, W, O, OH, OW, KH, KW, SH, SW, PT, PL, DH, DW, G);
    long plane = (long)OH * OW;
    float *scratch = malloc(NNK_GEMM_SCRATCH * sizeof *scratch);
    if (!scratch)
        abort();
    for (int n = 0; n < N; n++)
        for (int part = 0; part < parts; part++)
            nnk_conv2d_gemm_groups(y + (long)n * O * plane, x + (long)n * C * H * W, w, b, res ? res + (long)n * O * plane : NULL,
                                   act1, act2, &p, O * part / parts, O * (part + 1) / parts, scratch);
    free(scratch);
}

/* Which path of nnk_conv_nchwc.h this build took. */
const char *nnkt_nchwc_path(void)
{
#if defined(NNK_CONV_NCHWC_AVX512F)
    return "avx512f";
#elif defined(NNK_CONV_NCHWC_AVX2_FMA)
    return "avx2";
#elif defined(NNK_CONV_NCHWC_VECTOR)
    return "vector";
#else
    return "plain";
#endif
}

/* The global average pool on the blocked layout (C a multiple of 16): the plain x reordered to blocked, and
   the blocks split into `parts` ranges run one after the other as threads would. y is [N, C]. */
void nnkt_global_avgpool_nchwc(float *y, const float *x, int N, int C, int H, int W, int parts)
{
    long in = (long)C * H * W;
    float *xb = malloc((size_t)(N * in) * sizeof(float));
    if (!xb)
        abort();
    for (int n = 0; n < N; n++)
        nnk_to_nchwc(xb + n * in, x + n * in, C, (long)H * W, 0, C);
    int blocks = N * C / NNK_CB;
    for (int part = 0; part < parts; part++)
        nnk_global_avgpool_nchwc(y, xb, (long)H * W, blocks * part / parts, blocks * (part + 1) / parts);
    free(xb);
}

/* conv2d (O a multiple of 16, groups as nnk_conv_nchwc_groups_ok takes them) on the blocked layout, as the
   generated code runs it: the plain input reordered to blocked (or read plain when C is not a multiple of
   16) and zero-padded, the weight [O, C/G, KH, KW] packed (for the direct tiles, or for Winograd's F(4x4, 3x3)
   when `winograd` is 1, F(2x2, 3x3) when it is 2), the units split into `parts` ranges run one after the other as threads would, and the
   blocked result (and residual) reordered from and to the caller's plain arrays. */
void nnkt_conv2d_nchwc(float *y, const float *x, const float *w, const float *b, const float *res, int act1, int act2, int N,
                       int C, int H, int W, int O, int OH, int OW, int KH, int KW, int SH, int SW, int PT, int PL, int DH, int DW,
                       int G, int winograd, int parts)
{
    int plain = C % NNK_CB != 0, m = winograd == 2 ? 2 : winograd ? 4 : 0;   /* Winograd's F(m×m, 3×3) */
    int how = m ? NNK_PACK_FOR_WINOGRAD(m) : plain ? NNK_PACK_PLAIN : NNK_PACK_BLOCKED;
    int Hp = (OH - 1) * SH + (KH - 1) * DH + 1, Wp = (OW - 1) * SW + (KW - 1) * DW + 1;
    long in = (long)C * H * W, pin = (long)C * Hp * Wp, out = (long)O * OH * OW, wn = (long)O * (C / G) * KH * KW;
    long packed = NNK_PACK_CONV_FLOATS(O, C / G, KH, KW, how);
    float *xb = malloc((size_t)(N * in + N * pin + 2 * N * out + packed + wn + NNK_WINO_SCRATCH(C)) * sizeof(float));
    if (!xb)
        abort();
    float *xp = xb + N * in, *yb = xp + N * pin, *rb = yb + N * out, *wp = rb + N * out, *tmp = wp + packed,
          *scratch = tmp + wn;
    for (int n = 0; n < N; n++) {
        if (plain)
            memcpy(xb + n * in, x + n * in, (size_t)in * sizeof *xb);
        else
            nnk_to_nchwc(xb + n * in, x + n * in, C, (long)H * W, 0, C);
        if (res)
            nnk_to_nchwc(rb + n * out, res + n * out, O, (long)OH * OW, 0, O);
    }
    int v = plain ? 1 : NNK_CB;
    nnk_pad_plane(xp, xb, v, H, W, Hp, Wp, PT, PL, 0, N * C / v, 0, Hp);
    memcpy(wp, w, (size_t)wn * sizeof *wp);
    nnk_pack_conv(wp, O, C / G, KH, KW, G, how, tmp);
    nnk_conv_params p = {.C = C, .H = Hp, .W = Wp, .O = O, .OH = OH, .OW = OW, .kh = KH, .kw = KW, .sh = SH, .sw = SW,
                         .dh = DH, .dw = DW, .groups = G};
    long units = m ? nnk_winograd_units(&p, N, m) : nnk_conv_nchwc_batch_units(&p, N);
    for (int part = 0; part < parts; part++) {
        long u0 = units * part / parts, u1 = units * (part + 1) / parts;
        if (m)
            nnk_conv2d_winograd_batch(m, yb, xp, wp, b, res ? rb : NULL, act1, act2, &p, N, u0, u1, scratch);
        else
            nnk_conv2d_nchwc_batch(yb, xp, plain, wp, b, res ? rb : NULL, act1, act2, &p, N, u0, u1);
    }
    for (int n = 0; n < N; n++)
        nnk_from_nchwc(y + n * out, yb + n * out, O, (long)OH * OW, 0, O);
    free(xb);
}
