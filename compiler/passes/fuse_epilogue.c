/*
 * fuse_epilogue.c — fold what follows a conv2d or linear into it, as an epilogue:
 *
 *   act1(x*w + b)                    an activation right after the layer
 *   act2(act1(x*w + b) + residual)   then a residual add of a same-shaped tensor, then an activation
 *
 * so that the layer's output is finished while it is still in cache, and the ops (and the memory
 * for their results) disappear. The layer's output must feed nothing but the op being fused, and a
 * residual must already exist when the layer runs.
 */
#include "nnc.h"

#include <string.h>

static bool same_shape(const Tensor *a, const Tensor *b) {
    return a->rank == b->rank && memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->rank) == 0;
}

/* Whether t is computed before op `at` runs (inputs and weights always are). */
static bool ready_before(const Tensor *t, const Op *at) { return !t->producer || t->producer->id < at->id; }

/* Fuses the op that reads `layer`'s output into `layer`, if it can; returns whether it did. */
static bool fuse_next(Graph *g, Op *layer) {
    Tensor *y = layer->out;
    Op *next = sole_consumer(g, y);
    if (!next || !same_shape(next->out, y))
        return false;
    Attrs *a = &layer->a;
    if (next->a.act != ACT_NONE) {
        if (!a->residual && !a->act1)
            a->act1 = next->a.act;
        else if (a->residual && !a->act2)
            a->act2 = next->a.act;
        else
            return false;
    } else if (next->kind == OPK_ADD && !a->residual && !a->act2) {
        Tensor *other = next->in.items[0] == y ? next->in.items[1] : next->in.items[0];
        if (other == y || !same_shape(other, y) || !ready_before(other, layer))
            return false;
        op_add_input(layer, other);
        a->residual = layer->in.len - 1;
    } else {
        return false;
    }
    graph_replace_uses(g, next->out, y);
    graph_kill_op(next);
    graph_recount_uses(g);
    return true;
}

void pass_fuse_epilogue(Graph *g) {
    for (int i = 0; i < g->ops.len; i++) {
        Op *op = g->ops.items[i];
        if (op_info[op->kind].props & OPF_EPILOGUE)
            while (fuse_next(g, op))
                ;
    }
    graph_remove_dead_ops(g);
}
