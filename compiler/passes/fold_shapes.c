/*
 * fold_shapes.c — ops that only re-index memory become views, costing nothing at run time.
 *
 * A reshape is always a view (plan_memory makes it one). Here: a slice whose selected elements are
 * one contiguous run (nothing outside the axis varies before it, step 1) is a view at an offset —
 * `take(x, 1, 0)` of a ViT's class token, say — and a transpose that only moves axes of size 1 keeps
 * the element order, so it is a view too. A view of a model output or a view that is a model output
 * stays a copy, since outputs live in the caller's buffers.
 */
#include "nnc.h"

static int64_t outer_size(const Tensor *t, int axis) {
    int64_t n = 1;
    for (int i = 0; i < axis; i++)
        n *= t->dims[i];
    return n;
}

static bool keeps_order(const Op *op) {
    const Tensor *x = op->in.items[0];
    int last = -1;
    for (int i = 0; i < x->rank; i++) {
        int axis = op->a.perm[i];
        if (x->dims[axis] == 1)
            continue;
        if (axis < last)
            return false;
        last = axis;
    }
    return true;
}

void pass_fold_shapes(Graph *g) {
    for (int i = 0; i < g->ops.len; i++) {
        Op *op = g->ops.items[i];
        if (op->kind != OPK_SLICE && op->kind != OPK_TRANSPOSE)
            continue;
        Tensor *x = op->in.items[0], *y = op->out;
        if (is_graph_output(g, y) || is_graph_output(g, x))
            continue;
        if (op->kind == OPK_SLICE && op->a.step == 1 && outer_size(x, op->a.axis) == 1) {
            int64_t inner = tensor_numel(x) / x->dims[op->a.axis];
            y->view_of = x;
            y->view_offset = op->a.start * inner * 4;
        } else if (op->kind == OPK_TRANSPOSE && keeps_order(op)) {
            y->view_of = x;
            y->view_offset = 0;
        }
    }
}
