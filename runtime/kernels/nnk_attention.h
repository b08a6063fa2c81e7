/*
 * nnk_attention.h — scaled dot-product attention and nn.MultiheadAttention.
 *
 * The reference versions (nnk_sdpa, nnk_mha) take one query row at a time (nnk__attend): scores against
 * every visible key, a stable softmax, then a weighted sum of value rows. Generated code uses
 * nnk_attend_blocked, which does the same for a block of rows with two blocked products (nnk_gemm). A
 * causal mask (-inf where key j > query i) is the same as letting row i see only keys 0..i, so it shortens
 * the row instead of adding -inf. An attn_mask is applied to each row of scaled scores before the softmax
 * (nnk__mask_row). Scratch is one row of scores for sdpa; MHA also keeps its projected Q, K and V there.
 */
#ifndef NNK_ATTENTION_H
#define NNK_ATTENTION_H

#include "nnk_base.h"
#include "nnk_gemm.h"
#include "nnk_matmul.h"

NNK__NO_TRAPS_BEGIN

/* p[n] = softmax(p[n]), in place and stable: e^(p - max) / Σ e^(p - max). */
static inline void nnk__softmax_row(float *p, int n)
{
    float max = nnk__max(p, n);
    for (int j = 0; j < n; j++)
        p[j] = nnk__exp_neg(p[j] - max);
    float inv = 1.0f / nnk__sum(p, n);
    for (int j = 0; j < n; j++)
        p[j] *= inv;
}

NNK__NO_TRAPS_END

/* An attn_mask: added to the scaled scores, or a boolean (0 or 1) that keeps the keys where it is true
   (F.scaled_dot_product_attention) or masks them (nn.MultiheadAttention's attn_mask); a masked score is
   -inf, so a row with every key masked gives NaN, as in PyTorch. */
enum { NNK_MASK_NONE, NNK_MASK_ADD, NNK_MASK_KEEP, NNK_MASK_DROP };

/* p[n] with the mask row m (element j at m[j * cs]) applied. */
static inline void nnk__mask_row(float *p, int n, const float *m, long cs, int kind)
{
    switch (kind) {
    case NNK_MASK_ADD: for (int j = 0; j < n; j++) p[j] += m[j * cs]; break;
    case NNK_MASK_KEEP: for (int j = 0; j < n; j++) p[j] = m[j * cs] != 0.0f ? p[j] : -INFINITY; break;
    case NNK_MASK_DROP: for (int j = 0; j < n; j++) p[j] = m[j * cs] != 0.0f ? -INFINITY : p[j]; break;
    default: break;
    }
}

/* o[Dv] = softmax_j(scale · q[D]·k_j) · v_j over keys j < S; key j is at k + j*ks, its value at v + j*vs.
   p[S] is scratch. o may alias q: q is only read before o is written. */
static inline void nnk__attend(float *o, const float *q, const float *restrict k, long ks,
                               const float *restrict v, long vs, int S, int D, int Dv, float scale,
                               const float *mask, long mcs, int mask_kind, float *restrict p)
{
    for (int j = 0; j < S; j++)
        p[j] = nnk__dot(q, k + j * ks, D) * scale;
    nnk__mask_row(p, S, mask, mcs, mask_kind);
    nnk__softmax_row(p, S);
    for (int d = 0; d < Dv; d++)
        o[d] = 0.0f;
    for (int j = 0; j < S; j++) {
        float pj = p[j];
        const float *vr = v + j * vs;
        for (int d = 0; d < Dv; d++)
            o[d] += pj * vr[d];
    }
}

/* Scratch floats for nnk_sdpa: one row of scores. */
#define NNK_SDPA_SCRATCH(L, S) ((long)(S))

/* y[B,L,Dv] = softmax(q[B,L,D] · k[B,S,D]ᵀ / √D  [+ causal mask: -inf where j > i]) · v[B,S,Dv].
   scratch: NNK_SDPA_SCRATCH(L,S) floats. */
static inline void nnk_sdpa(float *restrict y, const float *restrict q, const float *restrict k,
                            const float *restrict v, int B, int L, int S, int D, int Dv, int causal,
                            float *restrict scratch)
{
    float scale = 1.0f / sqrtf((float)D);
    for (int bi = 0; bi < B; bi++)
        for (int i = 0; i < L; i++) {
            int keys = causal && i + 1 < S ? i + 1 : S;
            nnk__attend(y + ((long)bi * L + i) * Dv, q + ((long)bi * L + i) * D, k + (long)bi * S * D, D,
                        v + (long)bi * S * Dv, Dv, keys, D, Dv, scale, NULL, 0, NNK_MASK_NONE, scratch);
        }
}

/* Rows of queries nnk_attend_blocked takes at a time, and the scratch it needs for S keys. */
#define NNK_ATTEND_ROWS 256
#define NNK_ATTEND_SCRATCH(S) (NNK_GEMM_SCRATCH + (long)NNK_ATTEND_ROWS * (S))

/* One head of attention as two blocked products: for each block of up to NNK_ATTEND_ROWS queries,
   P = softmax(scale · q kᵀ + mask) (keys past the diagonal zero when causal), then o = P v. q[L, D], k[S, D],
   v[S, Dv] and o[L, Dv] have row strides qs, ks, vs and os; the mask's element (i, j) is at
   mask[i * mrs + j * mcs] (strides 0 where it broadcasts; mask_kind NNK_MASK_NONE: no mask). o may be q
   itself: a block of q is read before that block of o is written. scratch: NNK_ATTEND_SCRATCH(S) floats. */
static inline void nnk_attend_blocked(float *o, long os, const float *q, long qs, const float *restrict k, long ks,
                                      const float *restrict v, long vs, int L, int S, int D, int Dv, float scale,
                                      int causal, const float *mask, long mrs, long mcs, int mask_kind, float *restrict scratch)
{
    float *P = scratch + NNK_GEMM_SCRATCH;
    nnk_bsrc kt = {NNK_B_COLS, k, ks, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    nnk_bsrc vr = {NNK_B_ROWS, v, vs, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (int i0 = 0; i0 < L; i0 += NNK_ATTEND_ROWS) {
        int rows = L - i0 < NNK_ATTEND_ROWS ? L - i0 : NNK_ATTEND_ROWS;
        nnk_asrc qa = {q + (long)i0 * qs, qs, 0, 0};
        nnk_gemm(P, S, rows, S, D, &qa, &kt, NULL, NULL, NULL, 0, 0, scratch);
        for (int r = 0; r < rows; r++) {
            float *p = P + (long)r * S;
            int keys = causal && i0 + r + 1 < S ? i0 + r + 1 : S;
            for (int j = 0; j < keys; j++)
                p[j] *= scale;
            if (mask_kind)
                nnk__mask_row(p, keys, mask + (long)(i0 + r) * mrs, mcs, mask_kind);
            nnk__softmax_row(p, keys);
            for (int j = keys; j < S; j++)
                p[j] = 0.0f;
        }
        nnk_asrc pa = {P, S, 0, 0};
        nnk_gemm(o + (long)i0 * os, os, rows, Dv, S, &pa, &vr, NULL, NULL, NULL, 0, 0, scratch);
    }
}

/* The attention of nn.MultiheadAttention after its input projections, for the (batch, head) pairs
   u in [u0, u1) (u = n*heads + h): q[N,L,D], k[N,S,D] and v[N,S,D] hold the projected queries, keys and
   values, and each head's output overwrites that head's slice of q, which then holds the concatenated
   heads for the output projection. causal: mask -inf where j > i. The attn_mask of unit u is the [L, S] matrix
   at mask + u * mask_step (mask_step 0: one for all). scratch: NNK_ATTEND_SCRATCH(S) floats. */
static inline void nnk_mha_attend_masked(float *q, const float *restrict k, const float *restrict v, int L, int S, int D,
                                         int heads, int causal, const float *mask, long mask_step, int mask_kind, long u0, long u1,
                                         float *restrict scratch)
{
    int hd = D / heads;
    float scale = 1.0f / sqrtf((float)hd);
    for (long u = u0; u < u1; u++) {
        long n = u / heads, h = u % heads;
        float *qh = q + n * L * D + h * hd;
        nnk_attend_blocked(qh, D, qh, D, k + n * S * D + h * hd, D, v + n * S * D + h * hd, D, L, S, hd, hd, scale,
                           causal, mask_kind ? mask + u * mask_step : NULL, S, 1, mask_kind, scratch);
    }
}

static inline void nnk_mha_attend(float *q, const float *restrict k, const float *restrict v, int L, int S, int D,
                                  int heads, int causal, long u0, long u1, float *restrict scratch)
{
    nnk_mha_attend_masked(q, k, v, L, S, D, heads, causal, NULL, 0, NNK_MASK_NONE, u0, u1, scratch);
}

/* Scratch floats for nnk_mha: projected Q[N,L,D], K[N,S,D], V[N,S,D] and one row of scores. */
#define NNK_MHA_SCRATCH(N, L, S, D) ((long)(N) * ((long)(L) + 2L * (S)) * (D) + (S))

/* y[N,L,D] = nn.MultiheadAttention(D, heads, batch_first=True) in eval mode: queries from x[N,L,D], keys
   and values from mem[N,S,D] (mem == x, S == L for self-attention). in_w[3D,D] = [Wq; Wk; Wv], in_b[3D],
   out_w[D,D], out_b[D] (biases may be NULL). causal: mask -inf where j > i; the attn_mask as nnk_mha_attend_masked's.
   scratch: NNK_MHA_SCRATCH(N,L,S,D) floats. */
static inline void nnk_mha_masked(float *restrict y, const float *x, const float *mem, const float *restrict in_w,
                                  const float *restrict in_b, const float *restrict out_w, const float *restrict out_b, int N,
                                  int L, int S, int D, int heads, int causal, const float *mask, long mask_step, int mask_kind,
                                  float *restrict scratch)
{
    long DD = (long)D * D;
    float *Q = scratch, *K = Q + (long)N * L * D, *V = K + (long)N * S * D, *p = V + (long)N * S * D;
    nnk_linear(Q, x, in_w, in_b, N * L, D, D);
    nnk_linear(K, mem, in_w + DD, in_b ? in_b + D : NULL, N * S, D, D);
    nnk_linear(V, mem, in_w + 2 * DD, in_b ? in_b + 2 * D : NULL, N * S, D, D);
    int hd = D / heads;
    float scale = 1.0f / sqrtf((float)hd);
    for (int n = 0; n < N; n++)
        for (int h = 0; h < heads; h++) {
            const float *Kh = K + (long)n * S * D + h * hd, *Vh = V + (long)n * S * D + h * hd;
            for (int i = 0; i < L; i++) {   /* each head's output overwrites its slice of the query row */
                float *qo = Q + ((long)n * L + i) * D + h * hd;
                int keys = causal && i + 1 < S ? i + 1 : S;
                const float *m = mask_kind ? mask + ((long)n * heads + h) * mask_step + (long)i * S : NULL;
                nnk__attend(qo, qo, Kh, D, Vh, D, keys, hd, hd, scale, m, 1, mask_kind, p);
            }
        }
    nnk_linear(y, Q, out_w, out_b, N * L, D, D);
}

static inline void nnk_mha(float *restrict y, const float *x, const float *mem, const float *restrict in_w,
                           const float *restrict in_b, const float *restrict out_w,
                           const float *restrict out_b, int N, int L, int S, int D, int heads, int causal,
                           float *restrict scratch)
{
    nnk_mha_masked(y, x, mem, in_w, in_b, out_w, out_b, N, L, S, D, heads, causal, NULL, 0, NNK_MASK_NONE, scratch);
}

#endif
