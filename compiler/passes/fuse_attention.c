/*
 * fuse_attention.c — attention written out by hand becomes one attention op:
 *
 *   softmax((q @ transpose(k)) * s [+ bias], axis=-1) @ v      with s = 1/sqrt(D)   (or / sqrt(D))
 *
 * becomes scaled_dot_product_attention(q, k, v [, attn_mask=bias]), whose kernel walks one query row at
 * a time and never materialises the L x S score matrix. The scale may also be applied to q first, as
 * torchvision's Swin does ((q * s) @ transpose(k)); a bias (a relative position bias, a mask) is added
 * to the scaled scores and must broadcast to them. Every intermediate must feed only the next step.
 */
#include "nnc.h"

#include <math.h>
#include <string.h>

/* The op producing t, if it is of kind k and t feeds only `user`. */
static Op *producer_of(const Graph *g, const Tensor *t, OpKind k, const Op *user) {
    Op *p = t->producer;
    return p && p->kind == k && sole_consumer(g, t) == user ? p : NULL;
}

static bool swaps_last_two(const Op *tr) {
    int r = tr->out->rank;
    for (int i = 0; i < r - 2; i++)
        if (tr->a.perm[i] != i)
            return false;
    return tr->a.perm[r - 2] == r - 1 && tr->a.perm[r - 1] == r - 2;
}

static bool same_batch(const Tensor *a, const Tensor *b, int r) {
    return a->rank == r && b->rank == r && memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)(r - 2)) == 0;
}

void pass_fuse_attention(Graph *g) {
    bool changed = false;
    for (int i = 0; i < g->ops.len; i++) {
        Op *pv = g->ops.items[i];   /* probs @ v */
        if (pv->kind != OPK_MATMUL)
            continue;
        Op *sm = producer_of(g, pv->in.items[0], OPK_SOFTMAX, pv);
        if (!sm || sm->a.axis != sm->out->rank - 1)
            continue;
        Op *add = producer_of(g, sm->in.items[0], OPK_ADD, sm);   /* scores + bias, either way round */
        Tensor *bias = NULL;
        Op *scale = NULL, *qk = NULL;
        for (int side = 0; add && side < 2 && !qk; side++) {
            Tensor *t = add->in.items[side];
            scale = producer_of(g, t, OPK_SCALAR, add);
            qk = producer_of(g, scale ? scale->in.items[0] : t, OPK_MATMUL, scale ? scale : add);
            bias = add->in.items[1 - side];
        }
        if (!add) {
            scale = producer_of(g, sm->in.items[0], OPK_SCALAR, sm);
            qk = producer_of(g, scale ? scale->in.items[0] : sm->in.items[0], OPK_MATMUL, scale ? scale : sm);
        }
        if (!qk)
            continue;
        Op *kt = producer_of(g, qk->in.items[1], OPK_TRANSPOSE, qk);
        if (!kt || !swaps_last_two(kt))
            continue;
        Op *qscale = scale ? NULL : producer_of(g, qk->in.items[0], OPK_SCALAR, qk);   /* (q * s) @ kᵀ */
        if (qscale && (qscale->a.scalar_first || (qscale->a.binop != OP_MUL && qscale->a.binop != OP_DIV)))
            qscale = NULL;
        if (!scale && qscale)
            scale = qscale;
        Tensor *q = qscale ? qscale->in.items[0] : qk->in.items[0], *k = kt->in.items[0], *v = pv->in.items[1];
        int r = q->rank;
        if (r < 2 || !same_batch(q, k, r) || !same_batch(q, v, r) || k->dims[r - 1] != q->dims[r - 1])
            continue;
        if (bias && (add->out->rank != r || memcmp(add->out->dims, qk->out->dims, sizeof(int64_t) * (size_t)r) != 0 || bias->rank > r))
            continue;   /* the bias must broadcast to the scores, not widen them */
        double want = 1.0 / sqrt((double)q->dims[r - 1]), s = 1.0;
        if (scale) {
            if (scale->a.scalar_first || (scale->a.binop != OP_MUL && scale->a.binop != OP_DIV))
                continue;
            s = scale->a.binop == OP_MUL ? scale->a.value : 1.0 / scale->a.value;
        }
        if (fabs(s - want) > 1e-6 * want)
            continue;
        /* pv becomes the attention op; the others die */
        pv->kind = OPK_SDPA;
        graph_kill_op(pv);   /* its old inputs; it reads q, k and v now */
        op_add_input(pv, q);
        op_add_input(pv, k);
        op_add_input(pv, v);
        memset(&pv->a, 0, sizeof pv->a);
        if (bias) {   /* (a boolean bias is added as its 0 and 1, as the add did) */
            op_add_input(pv, bias);
            pv->a.mask = MASK_ADD;
        }
        graph_kill_op(sm);
        graph_kill_op(qk);
        graph_kill_op(kt);
        if (scale)
            graph_kill_op(scale);
        if (add)
            graph_kill_op(add);
        changed = true;
        graph_recount_uses(g);
    }
    if (changed)
        graph_remove_dead_ops(g);
}
