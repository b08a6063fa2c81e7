/*
 * graph.c — the flat graph that elaboration builds and every later stage reads.
 *
 * A tensor is a value with a static shape: a model input, a weight (named by its safetensors key) or
 * the one output of an op. Ops are kept in execution order; each records its inputs (activations
 * first, then weights), its attributes, and where in the source it came from.
 */
#include "nnc.h"

#include <stdlib.h>
#include <string.h>

const char *const act_name[ACT_COUNT] = {
    [ACT_NONE] = "",
#define ACT(ID, NAME, ZMM, EXPR) [ACT_##ID] = #NAME,
#include "kernels/nnk_acts.def"
#undef ACT
};

const OpInfo op_info[OPK_COUNT] = {
#define OP(id, name, user, props, act, sig, build, emit) [OPK_##id] = {name, user, sig, props, ACT_##act},
#include "ops.def"
#undef OP
};

Graph *new_graph(const char *name) {
    Graph *g = xcalloc(1, sizeof *g);
    g->name = name;
    return g;
}

Tensor *new_tensor(Graph *g, TensorKind kind, const char *name, int rank, const int64_t *dims, Loc loc) {
    Tensor *t = xcalloc(1, sizeof *t);
    t->id = g->tensors.len;
    t->kind = kind;
    t->name = name;
    t->rank = rank;
    memcpy(t->dims, dims, sizeof(int64_t) * (size_t)rank);
    t->loc = loc;
    t->offset = -1;
    t->ref_id = t->id;
    vec_push(&g->tensors, t);
    if (kind == TK_INPUT)
        vec_push(&g->inputs, t);
    else if (kind == TK_WEIGHT)
        vec_push(&g->weights, t);
    return t;
}

Op *new_op(Graph *g, OpKind kind, Loc loc, const CallFrame *chain) {
    Op *op = xcalloc(1, sizeof *op);
    op->id = g->ops.len;
    op->kind = kind;
    op->a.act = op_info[kind].act;
    op->loc = loc;
    op->chain = chain;
    vec_push(&g->ops, op);
    return op;
}

void op_add_input(Op *op, Tensor *t) {
    vec_push(&op->in, t);
    t->uses++;
}

Tensor *op_set_output(Graph *g, Op *op, int rank, const int64_t *dims) {
    const char *name = op->label ? op->label : format("%s%d", op_info[op->kind].name, op->id);
    op->out = new_tensor(g, TK_ACT, name, rank, dims, op->loc);
    op->out->producer = op;
    return op->out;
}

int64_t tensor_numel(const Tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= t->dims[i];
    return n;
}

int64_t tensor_bytes(const Tensor *t) { return tensor_numel(t) * 4; }

char *shape_text(int rank, const int64_t *dims) {
    Buf b = {0};
    buf_puts(&b, "[");
    for (int i = 0; i < rank; i++)
        buf_printf(&b, i ? ", %lld" : "%lld", (long long)dims[i]);
    buf_puts(&b, "]");
    return buf_take(&b);
}

int64_t graph_weight_floats(const Graph *g) {
    int64_t n = 0;
    for (int i = 0; i < g->weights.len; i++)
        n += tensor_numel(g->weights.items[i]);
    return n;
}

void graph_recount_uses(Graph *g) {
    for (int i = 0; i < g->tensors.len; i++)
        VEC_AT(g->tensors, i, Tensor *)->uses = 0;
    for (int i = 0; i < g->ops.len; i++) {
        Op *op = g->ops.items[i];
        for (int j = 0; j < op->in.len; j++)
            VEC_AT(op->in, j, Tensor *)->uses++;
    }
    for (int i = 0; i < g->outputs.len; i++)
        VEC_AT(g->outputs, i, Tensor *)->uses++;
}

/* The invariants every stage may rely on: ops in execution order, each op's inputs defined before
   it, one producer per activation, only emitted kinds. */
bool verify_graph(const Graph *g) {
    bool ok = true;
    char *defined = xcalloc((size_t)g->tensors.len + 1, 1);
    for (int i = 0; i < g->tensors.len; i++) {
        Tensor *t = g->tensors.items[i];
        if (t->id != i) {
            fprintf(stderr, "verify: tensor %s has id %d at index %d\n", t->name, t->id, i);
            ok = false;
        }
        if (t->kind != TK_ACT)
            defined[i] = 1;
    }
    for (int i = 0; i < g->ops.len; i++) {
        Op *op = g->ops.items[i];
        if (!op_has_emitter(op->kind)) {
            fprintf(stderr, "verify: op %d is %s, which only lowers to other ops\n", i, op_info[op->kind].name);
            ok = false;
        }
        for (int j = 0; j < op->in.len; j++) {
            Tensor *t = op->in.items[j];
            if (!defined[t->id]) {
                fprintf(stderr, "verify: op %d (%s) reads %s before it is defined\n", i, op_info[op->kind].name, t->name);
                ok = false;
            }
        }
        if (!op->out || op->out->producer != op) {
            fprintf(stderr, "verify: op %d (%s) has no output of its own\n", i, op_info[op->kind].name);
            ok = false;
        } else {
            defined[op->out->id] = 1;
        }
    }
    for (int i = 0; i < g->outputs.len; i++) {
        Tensor *t = g->outputs.items[i];
        if (!defined[t->id]) {
            fprintf(stderr, "verify: output %s is never computed\n", t->name);
            ok = false;
        }
    }
    free(defined);
    return ok;
}

bool is_graph_output(const Graph *g, const Tensor *t) {
    for (int i = 0; i < g->outputs.len; i++)
        if (g->outputs.items[i] == t)
            return true;
    return false;
}

Op *sole_consumer(const Graph *g, const Tensor *t) {
    if (is_graph_output(g, t))
        return NULL;
    Op *found = NULL;
    for (int i = 0; i < g->ops.len; i++) {
        Op *op = g->ops.items[i];
        for (int j = 0; j < op->in.len; j++) {
            if (op->in.items[j] != t)
                continue;
            if (found)
                return NULL;
            found = op;
        }
    }
    return found;
}

void graph_replace_uses(Graph *g, Tensor *from, Tensor *to) {
    to->ref_id = from->ref_id;   /* `to` now stands for the value `from` had in the graph as written */
    for (int i = 0; i < g->ops.len; i++) {
        Op *op = g->ops.items[i];
        for (int j = 0; j < op->in.len; j++)
            if (op->in.items[j] == from)
                op->in.items[j] = to;
    }
    for (int i = 0; i < g->outputs.len; i++)
        if (g->outputs.items[i] == from)
            g->outputs.items[i] = to;
}

/* Drops every op whose result nothing reads (and is not a model output), back to front so that an
   op feeding only dead ops dies too; keeps the rest in order and renumbers them. */
/* An op a pass has made redundant: it stops reading its inputs, so that it counts as a reader of
   nothing, and graph_remove_dead_ops (once its result has no reader either) takes it out. */
bool op_is_view(const Op *op) { return op->out->view_of && (op_info[op->kind].props & OPF_VIEW); }

void graph_kill_op(Op *op) {
    for (int j = 0; j < op->in.len; j++)
        VEC_AT(op->in, j, Tensor *)->uses--;
    op->in.len = 0;
}

void graph_remove_dead_ops(Graph *g) {
    graph_recount_uses(g);
    bool *dead = xcalloc((size_t)g->ops.len + 1, sizeof *dead);
    for (int i = g->ops.len - 1; i >= 0; i--) {
        Op *op = g->ops.items[i];
        if (op->out->uses > 0)
            continue;
        dead[i] = true;
        for (int j = 0; j < op->in.len; j++)
            VEC_AT(op->in, j, Tensor *)->uses--;
    }
    int n = 0;
    for (int i = 0; i < g->ops.len; i++) {
        Op *op = g->ops.items[i];
        if (!dead[i]) {
            op->id = n;
            g->ops.items[n++] = op;
        }
    }
    g->ops.len = n;
    free(dead);
    graph_recount_uses(g);
}

/* torch.matmul's view of its operands: a 1-D left operand is a row [1, K], a 1-D right one a
   column [K, 1] (the shape rule then drops that axis from the result). */
void matmul_operands(const Tensor *a, const Tensor *b, Tensor *a2, Tensor *b2) {
    *a2 = *a;
    *b2 = *b;
    if (a->rank == 1) {
        a2->rank = 2;
        a2->dims[0] = 1;
        a2->dims[1] = a->dims[0];
    }
    if (b->rank == 1) {
        b2->rank = 2;
        b2->dims[0] = b->dims[0];
        b2->dims[1] = 1;
    }
}
