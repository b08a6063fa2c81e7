/*
 * fold_bn.c — fold an eval-mode batch norm into the conv2d or linear layer that feeds it.
 *
 *   y = gamma * (x*w + b - mean) / sqrt(var + eps) + beta
 *     = x * (w * s) + ((b - mean) * s + beta),      s = gamma / sqrt(var + eps) per output channel
 *
 * Only when the layer's output feeds nothing but the batch norm. The arithmetic is done once when the
 * weights are loaded (the generated code's prepare step), so weight files keep PyTorch's keys and
 * layouts; a layer without a bias gets a derived bias weight to hold the folded shift.
 */
#include "nnc.h"

void pass_fold_bn(Graph *g) {
    bool changed = false;
    for (int i = 0; i < g->ops.len; i++) {
        Op *bn = g->ops.items[i];
        if (bn->kind != OPK_BATCHNORM)
            continue;
        Tensor *x = bn->in.items[0];
        Op *layer = x->producer;
        if (!layer || sole_consumer(g, x) != bn)
            continue;
        if (layer->kind != OPK_CONV2D && !(layer->kind == OPK_LINEAR && x->rank == 2))
            continue;
        if (layer->a.act1 || layer->a.residual)
            continue;
        BnFold *f = xcalloc(1, sizeof *f);
        f->weight = layer->in.items[1];
        f->bias_from_file = layer->a.has_bias;
        if (!layer->a.has_bias) {
            int64_t channels = x->dims[1];
            const char *base = layer->label ? layer->label : format("%s%d", op_info[layer->kind].name, layer->id);
            Tensor *b = new_tensor(g, TK_WEIGHT, format("%s.bias(folded)", base), 1, &channels, layer->loc);
            b->derived = true;
            op_add_input(layer, b);
            layer->a.has_bias = true;
        }
        f->bias = layer->in.items[2];
        f->gamma = bn->in.items[1];
        f->beta = bn->in.items[2];
        f->mean = bn->in.items[3];
        f->var = bn->in.items[4];
        f->eps = bn->a.eps;
        vec_push(&g->folds, f);
        graph_replace_uses(g, bn->out, x);
        graph_kill_op(bn);
        changed = true;
    }
    if (changed) {
        graph_recount_uses(g);
        graph_remove_dead_ops(g);
    }
}
