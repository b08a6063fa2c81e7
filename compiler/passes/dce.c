/*
 * dce.c — remove dead ops and common subexpressions.
 *
 * An op is dead when nothing reads its output and it is not a model output; removing one can make
 * its inputs' producers dead, so the walk goes backwards. Two ops are the same computation when
 * they have the same kind, the same inputs and the same attributes: the later one's readers are
 * pointed at the earlier one's output.
 */
#include "nnc.h"

#include <string.h>

static bool same_computation(const Op *a, const Op *b) {
    if (a->kind != b->kind || a->in.len != b->in.len || a->out->rank != b->out->rank)
        return false;
    for (int i = 0; i < a->in.len; i++)
        if (a->in.items[i] != b->in.items[i])
            return false;
    if (memcmp(a->out->dims, b->out->dims, sizeof(int64_t) * (size_t)a->out->rank) != 0)
        return false;
    return memcmp(&a->a, &b->a, sizeof a->a) == 0;
}

void pass_dce(Graph *g) {
    /* common subexpressions first: merging makes the duplicate dead */
    for (int i = 0; i < g->ops.len; i++) {
        Op *later = g->ops.items[i];
        for (int j = 0; j < i; j++) {
            Op *earlier = g->ops.items[j];
            if (earlier->out->uses > 0 && same_computation(earlier, later) && !is_graph_output(g, later->out)) {
                graph_replace_uses(g, later->out, earlier->out);
                graph_recount_uses(g);
                break;
            }
        }
    }
    graph_remove_dead_ops(g);
}
