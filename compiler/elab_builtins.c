/*
 * elab_builtins.c — calls of builtins while elaborating: each call's arguments bound to the builtin's
 * signature (the SIGNATURE column of ops.def) and type-checked, then handed to its shape rule (shape.c)
 * through the Call interface, which reads arguments and creates weights, ops and outputs.
 */
#include "elab.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>


#define OP(id, name, user, props, act, sig, build, emit) Tensor *build(Call *c);
#include "ops.def"
#undef OP

static Tensor *(*const build_fn[OPK_COUNT])(Call *c) = {
#define OP(id, name, user, props, act, sig, build, emit) [OPK_##id] = build,
#include "ops.def"
#undef OP
};

/* ---------------------------------------------------------------- signatures (from ops.def) */

static Value *parse_default(const char *text) {
    if (strcmp(text, "none") == 0)
        return new_value(V_NONE);
    if (strcmp(text, "true") == 0 || strcmp(text, "false") == 0)
        return bool_value(text[0] == 't');
    if (text[0] == '"') {
        Value *v = new_value(V_STR);
        v->s = xstrndup(text + 1, strlen(text) - 2);
        return v;
    }
    if (strpbrk(text, ".e"))
        return float_value(strtod(text, NULL));
    return int_value(strtoll(text, NULL, 10));
}

void parse_signatures(Elab *E) {
    static const char *type_names[] = {"tensor", "tensors", "int", "float", "bool", "str", "ints", "pair", "pad", "any", "axes", "indices",
                                        "int_or_indices", "scalar"};
    for (int k = 0; k < OPK_COUNT; k++) {
        Signature *sig = &E->sigs[k];
        char *text = xstrdup(op_info[k].signature);
        for (char *save = NULL, *tok = strtok_r(text, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
            SigParam *p = &sig->params[sig->n++];
            char *colon = strchr(tok, ':'), *eq = strchr(tok, '=');
            *colon = 0;
            if (eq) {
                *eq = 0;
                p->def = parse_default(eq + 1);
            }
            p->name = tok;
            for (int t = 0; t < (int)(sizeof type_names / sizeof *type_names); t++)
                if (strcmp(colon + 1, type_names[t]) == 0)
                    p->type = t;
        }
    }
}

/* ---------------------------------------------------------------- argument binding */


static bool is_index(const Value *v) { return v->kind == V_TENSOR && v->t->dtype == DT_INDEX; }

static bool all_ints(const Value *v, int n_lo, int n_hi) {
    if (v->kind != V_LIST || v->items.len < n_lo || v->items.len > n_hi)
        return false;
    for (int i = 0; i < v->items.len; i++)
        if (VEC_AT(v->items, i, Value *)->kind != V_INT)
            return false;
    return true;
}

/* Checks v against a builtin parameter type; returns the value to use (ints become floats where a
   float is declared), or NULL after reporting. */
static Value *check_builtin_arg(Elab *E, const char *fn, const SigParam *p, Value *v, Loc loc) {
    const char *want = NULL;
    switch (p->type) {
    case SIG_TENSOR:
        if (v->kind != V_TENSOR || is_index(v))   /* indices are only for index_select and take */
            want = is_index(v) ? "a float tensor (indices are only read by index_select and take)" : "a tensor";
        break;
    case SIG_TENSORS:
        if (v->kind != V_LIST || v->items.len == 0)
            want = "a non-empty list of tensors";
        else
            for (int i = 0; i < v->items.len; i++)
                if (VEC_AT(v->items, i, Value *)->kind != V_TENSOR || is_index(VEC_AT(v->items, i, Value *)))
                    want = is_index(VEC_AT(v->items, i, Value *)) ? "a list of float tensors" : "a list of tensors";
        break;
    case SIG_INDICES:
        if (!is_index(v))
            want = "an index tensor (buffer(shape, dtype=\"i64\") as NAME)";
        break;
    case SIG_INT_OR_INDICES:
        if (v->kind != V_INT && !is_index(v))
            want = "an int or an index tensor (buffer(shape, dtype=\"i64\") as NAME)";
        break;
    case SIG_SCALAR:
        if (v->kind == V_INT)
            return float_value((double)v->i);
        if (v->kind != V_FLOAT && (v->kind != V_TENSOR || is_index(v)))
            want = "a float tensor or a number";
        break;
    case SIG_AXES:
        if (v->kind != V_INT && !all_ints(v, 1, MAX_RANK))
            want = "an int or a list of 1 to 8 ints";
        break;
    case SIG_INT:
        if (v->kind != V_INT)
            want = "an int";
        break;
    case SIG_FLOAT:
        if (v->kind == V_INT)
            return float_value((double)v->i);
        if (v->kind != V_FLOAT)
            want = "a float";
        break;
    case SIG_BOOL:
        if (v->kind != V_BOOL)
            want = "a bool";
        break;
    case SIG_STR:
        if (v->kind != V_STR)
            want = "a string";
        break;
    case SIG_INTS:
        if (!all_ints(v, 0, MAX_RANK))
            want = v->kind == V_LIST && v->items.len > MAX_RANK ? "a list of at most 8 ints" : "a list of ints";
        break;
    case SIG_PAIR:
        if (v->kind != V_INT && !all_ints(v, 2, 2))
            want = "an int or a list of 2 ints [h, w]";
        break;
    case SIG_PAD:
        if (v->kind != V_INT && !all_ints(v, 2, 2) && !all_ints(v, 4, 4))
            want = "an int, [h, w] or [top, left, bottom, right]";
        break;
    }
    if (want) {
        error_at(E, loc, "argument '%s' of %s must be %s, found %s", p->name, fn, want, describe(v));
        return NULL;
    }
    return v;
}

/* Positional then keyword arguments onto parameters. vals/locs are filled per parameter (vals NULL
   where not given). Reports and returns false on any mismatch. */
bool bind_args(Elab *E, Scope *S, const char *fn, Node *call, const ParamRef *params, int nparams, Value **vals, Loc *locs) {
    int positional = 0;
    bool seen_keyword = false;
    for (int i = 0; i < call->args.len; i++) {
        Arg *a = call->args.items[i];
        int slot;
        if (!a->name) {
            if (seen_keyword) {
                error_at(E, a->loc, "positional argument after keyword arguments in call to %s", fn);
                return false;
            }
            if (positional >= nparams) {
                error_at(E, a->loc, "too many arguments to %s: it takes %d, found %d", fn, nparams, call->args.len);
                return false;
            }
            slot = positional++;
        } else {
            seen_keyword = true;
            for (slot = 0; slot < nparams; slot++)
                if (strcmp(params[slot].name, a->name) == 0)
                    break;
            if (slot == nparams) {
                Buf b = {0};
                for (int j = 0; j < nparams; j++)
                    buf_printf(&b, j ? ", %s" : "%s", params[j].name);
                error_at(E, a->loc, "%s has no parameter named '%s' (its parameters: %s)", fn, a->name, b.buf ? b.buf : "none");
                return false;
            }
            if (vals[slot]) {
                error_at(E, a->loc, "argument '%s' of %s is given twice", a->name, fn);
                return false;
            }
        }
        Value *v = eval(E, S, a->value);
        if (!v)
            return false;
        if (v->kind == V_TUPLE || v->kind == V_NONE) {
            error_at(E, a->value->loc, "argument '%s' of %s is %s, not a value", params[slot].name, fn, kind_name(v->kind));
            return false;
        }
        vals[slot] = v;
        locs[slot] = a->value->loc;
    }
    return true;
}

/* ---------------------------------------------------------------- builtin calls */

static Tensor *run_build(Elab *E, OpKind kind, Loc loc, const char *label, Value **vals, Loc *locs) {
    if (E->g->ops.len >= E->opts->max_ops) {
        error_at(E, loc, "the model has more than %lld ops (raise the limit with --max-ops)", (long long)E->opts->max_ops);
        return NULL;
    }
    Call c = {.E = E, .g = E->g, .kind = kind, .loc = loc, .args = vals, .arg_locs = locs, .label = label, .chain = E->chain};
    return build_fn[kind](&c);
}

/* Fill defaults and type-check bound builtin arguments. */
static bool complete_builtin_args(Elab *E, OpKind kind, Loc loc, Value **vals, Loc *locs) {
    Signature *sig = &E->sigs[kind];
    const char *fn = op_info[kind].name;
    for (int i = 0; i < sig->n; i++) {
        if (!vals[i]) {
            if (!sig->params[i].def) {
                error_at(E, loc, "missing argument '%s' in call to %s", sig->params[i].name, fn);
                return false;
            }
            vals[i] = sig->params[i].def->kind == V_NONE ? NULL : sig->params[i].def;
            locs[i] = loc;
            continue;
        }
        vals[i] = check_builtin_arg(E, fn, &sig->params[i], vals[i], locs[i]);
        if (!vals[i])
            return false;
    }
    return true;
}

Value *call_builtin(Elab *E, Scope *S, OpKind kind, Node *call, const char *label) {
    Signature *sig = &E->sigs[kind];
    ParamRef params[12];
    for (int i = 0; i < sig->n; i++)
        params[i] = (ParamRef){sig->params[i].name, call->loc};
    Value *vals[12] = {0};
    Loc locs[12] = {0};
    if (!bind_args(E, S, op_info[kind].name, call, params, sig->n, vals, locs))
        return NULL;
    if (!complete_builtin_args(E, kind, call->loc, vals, locs))
        return NULL;
    int weights_before = E->g->weights.len;
    Tensor *t = run_build(E, kind, call->loc, label, vals, locs);
    if (!t)
        return NULL;
    if (label && E->g->weights.len == weights_before) {
        error_at(E, call->loc, "'as' names the weights a call creates, and %s creates none", op_info[kind].name);
        return NULL;
    }
    return tensor_value(t);
}

/* An op made by an operator (a + b, -x, x * 0.5, a @ b): positional values, no source arguments. */
Value *build_operator(Elab *E, OpKind kind, Loc loc, Value **args, int nargs) {
    Value *vals[12] = {0};
    Loc locs[12];
    for (int i = 0; i < nargs; i++) {
        vals[i] = args[i];
        locs[i] = loc;
    }
    if (!complete_builtin_args(E, kind, loc, vals, locs))
        return NULL;
    Tensor *t = run_build(E, kind, loc, NULL, vals, locs);
    return t ? tensor_value(t) : NULL;
}

/* ---------------------------------------------------------------- the Call interface for shape.c */

Tensor *call_tensor(Call *c, int i) { return c->args[i]->t; }
int64_t call_int(Call *c, int i) { return c->args[i]->i; }
double call_float(Call *c, int i) { return c->args[i]->f; }
bool call_bool(Call *c, int i) { return c->args[i]->b; }
const char *call_str(Call *c, int i) { return c->args[i]->s; }
bool call_given(Call *c, int i) { return c->args[i] != NULL; }
bool call_is_tensor(Call *c, int i) { return c->args[i]->kind == V_TENSOR; }

int call_axes(Call *c, int i, int64_t out[MAX_RANK]) {
    Value *v = c->args[i];
    if (v->kind == V_INT) {
        out[0] = v->i;
        return 1;
    }
    return call_ints(c, i, out, MAX_RANK);
}

int call_ints(Call *c, int i, int64_t *out, int max) {
    Value *v = c->args[i];
    if (v->items.len > max)
        return -1;
    for (int j = 0; j < v->items.len; j++)
        out[j] = VEC_AT(v->items, j, Value *)->i;
    return v->items.len;
}

int call_tensors(Call *c, int i, Tensor **out, int max) {
    Value *v = c->args[i];
    if (v->items.len > max)
        return -1;
    for (int j = 0; j < v->items.len; j++)
        out[j] = VEC_AT(v->items, j, Value *)->t;
    return v->items.len;
}

static int clamp_int(int64_t v) { return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int)v; }

void call_pair(Call *c, int i, int out[2]) {
    Value *v = c->args[i];
    if (v->kind == V_INT) {
        out[0] = out[1] = clamp_int(v->i);
    } else {
        out[0] = clamp_int(VEC_AT(v->items, 0, Value *)->i);
        out[1] = clamp_int(VEC_AT(v->items, 1, Value *)->i);
    }
}

void call_pad(Call *c, int i, int out[4]) {
    Value *v = c->args[i];
    if (v->kind == V_LIST && v->items.len == 4) {
        for (int j = 0; j < 4; j++)
            out[j] = clamp_int(VEC_AT(v->items, j, Value *)->i);
        return;
    }
    int hw[2];
    call_pair(c, i, hw);
    out[0] = out[2] = hw[0];
    out[1] = out[3] = hw[1];
}

void call_error(Call *c, int arg, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (op_info[c->kind].user)
        error_at(c->E, arg >= 0 ? c->arg_locs[arg] : c->loc, "%s: %s", op_info[c->kind].name, msg);
    else   /* an op made by an operator: name the operator the user wrote */
        error_at(c->E, arg >= 0 ? c->arg_locs[arg] : c->loc, "%s", msg);
}

Tensor *call_weight(Call *c, const char *suffix, int rank, const int64_t *dims) {
    Elab *E = c->E;
    if (!c->label) {
        error_at(E, c->loc, "%s creates weights and must be named with 'as' (for example: %s(...) as %s)",
                 op_info[c->kind].name, op_info[c->kind].name, c->kind == OPK_PARAM ? "pos_embedding" : "layer1");
        return NULL;
    }
    const char *key = suffix ? (c->label[0] ? format("%s.%s", c->label, suffix) : xstrdup(suffix)) : c->label;
    void **slot = map_slot(&E->weight_locs, key, true);
    if (*slot) {
        const CallFrame *first = *slot;
        error_at(E, c->loc, "weight '%s' is created twice (weights are never shared; a loop may be missing {i} in its 'as' name)", key);
        diag_note(first->loc, "first created here");
        diag_chain(first->parent);
        return NULL;
    }
    CallFrame *where = xcalloc(1, sizeof *where);   /* where, and the block calls around it */
    *where = (CallFrame){NULL, c->loc, c->chain};
    *slot = where;
    int64_t numel = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] <= 0) {
            error_at(E, c->loc, "weight '%s' would have shape %s: every dimension must be positive", key, shape_text(rank, dims));
            return NULL;
        }
        if (dims[i] > (INT64_C(1) << MAX_TENSOR_ELEMS_LOG2) / numel) {
            error_at(E, c->loc, "weight '%s' would have shape %s, more than 2^%d elements", key, shape_text(rank, dims), MAX_TENSOR_ELEMS_LOG2);
            return NULL;
        }
        numel *= dims[i];
    }
    return new_tensor(c->g, TK_WEIGHT, key, rank, dims, c->loc);
}

Op *call_op(Call *c, OpKind kind) {
    Op *op = new_op(c->g, kind, c->loc, c->chain);
    op->label = c->label;
    return op;
}

Tensor *call_output(Call *c, Op *op, int rank, const int64_t *dims) {
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] <= 0) {
            call_error(c, -1, "the result would have shape %s, with an empty dimension", shape_text(rank, dims));
            return NULL;
        }
        if (dims[i] > (INT64_C(1) << MAX_TENSOR_ELEMS_LOG2) / n) {
            call_error(c, -1, "the result would have shape %s, more than 2^%d elements", shape_text(rank, dims), MAX_TENSOR_ELEMS_LOG2);
            return NULL;
        }
        n *= dims[i];
    }
    return op_set_output(c->g, op, rank, dims);
}

Tensor *call_build(Call *c, OpKind kind, Value **args, int nargs) {
    Value *vals[12] = {0};
    Loc locs[12];
    for (int i = 0; i < nargs; i++) {
        vals[i] = args[i];
        locs[i] = c->loc;
    }
    if (!complete_builtin_args(c->E, kind, c->loc, vals, locs))
        return NULL;
    return run_build(c->E, kind, c->loc, c->label, vals, locs);
}

