/*
 * elaborate.c — AST to one flat graph.
 *
 * Everything but tensor arithmetic happens here, at compile time: `let`s are evaluated (with -D
 * overrides), the chosen model's body is executed as a little interpreter over compile-time values
 * (ints, floats, bools, strings, lists, tensors), block calls are expanded in place, `for` loops are
 * unrolled and `if`s decided. What remains is a list of ops over tensors of static shape.
 *
 * Weight keys are built as the interpreter goes: a block called `as layer1.0` makes `layer1.0` the
 * prefix for every `as` inside it, so `conv2d(...) as conv1` there creates `layer1.0.conv1.weight`.
 *
 * Errors are reported where they are found (with the chain of block calls) and travel up as NULL
 * values or false results; elaboration stops at the first one, since later errors would mostly be
 * echoes of it.
 */
#include "elab.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>


/* ---------------------------------------------------------------- values */

Value *new_value(ValueKind kind) {
    Value *v = xcalloc(1, sizeof *v);
    v->kind = kind;
    return v;
}

Value *int_value(int64_t i) {
    Value *v = new_value(V_INT);
    v->i = i;
    return v;
}

Value *float_value(double f) {
    Value *v = new_value(V_FLOAT);
    v->f = f;
    return v;
}

Value *bool_value(bool b) {
    Value *v = new_value(V_BOOL);
    v->b = b;
    return v;
}

Value *tensor_value(Tensor *t) {
    Value *v = new_value(V_TENSOR);
    v->t = t;
    return v;
}

Value *ints_value(int n, const int64_t *xs) {
    Value *v = new_value(V_LIST);
    for (int i = 0; i < n; i++)
        vec_push(&v->items, int_value(xs[i]));
    return v;
}

Value *list_value(int n, Value **items) {
    Value *v = new_value(V_LIST);
    for (int i = 0; i < n; i++)
        vec_push(&v->items, items[i]);
    return v;
}

/* A float as a reader would write it: 1.0, not 1. */
static const char *float_text(double f) {
    char *s = format("%g", f);
    return strpbrk(s, ".enia") ? s : format("%s.0", s);
}

const char *kind_name(ValueKind k) {
    static const char *names[] = {"nothing", "int", "float", "bool", "string", "list", "tensor", "several values"};
    return names[k];
}

/* How a value is described in a message: its kind, and the value itself when short. */
char *describe(const Value *v) {
    switch (v->kind) {
    case V_INT: return format("int %lld", (long long)v->i);
    case V_FLOAT: return format("float %s", float_text(v->f));
    case V_BOOL: return format("bool %s", v->b ? "true" : "false");
    case V_STR: return format("string \"%s\"", v->s);
    case V_TENSOR:
        return format("%stensor %s", v->t->dtype == DT_INDEX ? "index " : v->t->dtype == DT_BOOL ? "bool " : "", shape_text(v->t->rank, v->t->dims));
    case V_LIST: {
        Buf b = {0};
        buf_puts(&b, "list [");
        for (int i = 0; i < v->items.len && i < 8; i++) {
            Value *x = v->items.items[i];
            if (i)
                buf_puts(&b, ", ");
            if (x->kind == V_INT)
                buf_printf(&b, "%lld", (long long)x->i);
            else if (x->kind == V_FLOAT)
                buf_puts(&b, float_text(x->f));
            else
                buf_puts(&b, kind_name(x->kind));
        }
        buf_puts(&b, v->items.len > 8 ? ", ...]" : "]");
        return buf_take(&b);
    }
    default: return xstrdup(kind_name(v->kind));
    }
}

/* ---------------------------------------------------------------- environments and the key map */

static void env_set(Env *env, const char *name, Value *v) {
    for (int i = env->names.len - 1; i >= 0; i--) {
        if (strcmp(env->names.items[i], name) == 0) {
            env->values.items[i] = v;
            return;
        }
    }
    vec_push(&env->names, (void *)name);
    vec_push(&env->values, v);
}

static Value *env_get(const Env *env, const char *name) {
    for (int i = env->names.len - 1; i >= 0; i--)
        if (strcmp(env->names.items[i], name) == 0)
            return env->values.items[i];
    return NULL;
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

void **map_slot(Map *m, const char *key, bool insert) {
    if (insert && (m->len + 1) * 2 > m->cap) {
        Map bigger = {.cap = m->cap ? m->cap * 2 : 64};
        bigger.keys = xcalloc(bigger.cap, sizeof(char *));
        bigger.vals = xcalloc(bigger.cap, sizeof(void *));
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i])
                *map_slot(&bigger, m->keys[i], true) = m->vals[i];
        free(m->keys);
        free(m->vals);
        *m = bigger;
    }
    if (m->cap == 0)
        return NULL;
    for (size_t i = hash_str(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->keys[i]) {
            if (!insert)
                return NULL;
            m->keys[i] = key;
            m->len++;
            return &m->vals[i];
        }
        if (strcmp(m->keys[i], key) == 0)
            return &m->vals[i];
    }
}

/* ---------------------------------------------------------------- errors */

void error_at(Elab *E, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void error_at(Elab *E, Loc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    diag_error(loc, "%s", msg);
    diag_chain(E->chain);
}

/* ---------------------------------------------------------------- block calls */

static Decl *find_decl(const Vec *decls, const char *name) {
    for (int i = 0; i < decls->len; i++)
        if (strcmp(VEC_AT(*decls, i, Decl *)->name, name) == 0)
            return decls->items[i];
    return NULL;
}

/* The types a block parameter may declare. */
static const struct {
    const char *name;
    ValueKind kind;
} block_types[] = {
    {"tensor", V_TENSOR}, {"int", V_INT}, {"float", V_FLOAT}, {"bool", V_BOOL}, {"list", V_LIST}, {"str", V_STR},
};
enum { N_BLOCK_TYPES = sizeof block_types / sizeof *block_types };

static int block_type(const char *name) {
    for (int i = 0; i < N_BLOCK_TYPES; i++)
        if (strcmp(name, block_types[i].name) == 0)
            return i;
    return -1;
}

/* Checks a value against a block parameter's declared type (int is accepted for float); the type
   name itself was checked with the declaration. */
static Value *check_block_arg(Elab *E, Decl *block, Param *p, Value *v, Loc loc) {
    if (!p->type)
        return v;
    ValueKind want = block_types[block_type(p->type)].kind;
    if (want == V_FLOAT && v->kind == V_INT)
        return float_value((double)v->i);
    if (v->kind != want) {
        error_at(E, loc, "argument '%s' of block '%s' must be %s, found %s", p->name, block->name, p->type, describe(v));
        return NULL;
    }
    return v;
}

static const char *eval_path(Elab *E, Scope *S, Path *path);

static Value *call_block(Elab *E, Scope *S, Decl *block, Node *call, const char *label) {
    if (E->depth >= E->opts->max_call_depth) {
        error_at(E, call->loc, "block calls nested deeper than %d (does '%s' call itself?)", E->opts->max_call_depth, block->name);
        return NULL;
    }
    if (++E->steps > E->opts->max_steps) {
        error_at(E, call->loc, "the program runs more than %lld loop iterations and calls", (long long)E->opts->max_steps);
        return NULL;
    }
    int n = block->params.len;
    ParamRef *params = xcalloc((size_t)n + 1, sizeof *params);
    for (int i = 0; i < n; i++)
        params[i] = (ParamRef){VEC_AT(block->params, i, Param *)->name, VEC_AT(block->params, i, Param *)->loc};
    Value **vals = xcalloc((size_t)n + 1, sizeof *vals);
    Loc *locs = xcalloc((size_t)n + 1, sizeof *locs);
    char *fn = format("block '%s'", block->name);
    if (!bind_args(E, S, fn, call, params, n, vals, locs))
        return NULL;

    CallFrame *frame = xcalloc(1, sizeof *frame);
    *frame = (CallFrame){block->name, call->loc, E->chain};
    Scope inner = {.prefix = label ? label : S->prefix, .named = label != NULL, .block = block->name};
    const CallFrame *saved = E->chain;
    E->chain = frame;
    E->depth++;
    Value *result = NULL;
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        Param *p = block->params.items[i];
        Value *v = vals[i];
        Loc loc = locs[i];
        if (!v) {
            if (!p->def) {
                E->chain = saved;   /* the error is at the call, outside the block */
                error_at(E, call->loc, "missing argument '%s' in call to block '%s'", p->name, block->name);
                E->chain = frame;
                ok = false;
                break;
            }
            v = eval(E, &inner, p->def);   /* defaults are evaluated at each call, seeing earlier parameters */
            loc = p->def->loc;
            if (!v) {
                ok = false;
                break;
            }
        }
        if (vals[i])
            E->chain = saved;   /* a given argument is the caller's: no note for this call */
        v = check_block_arg(E, block, p, v, loc);
        E->chain = frame;
        if (!v)
            ok = false;
        else
            env_set(&inner.env, p->name, v);
    }
    if (ok && exec_stmts(E, &inner, &block->body))
        result = inner.ret ? inner.ret : new_value(V_NONE);
    E->depth--;
    E->chain = saved;
    return result;
}

/* ---------------------------------------------------------------- expressions */

static bool want_int(Elab *E, Value *v, Loc loc, const char *what) {
    if (v->kind != V_INT) {
        error_at(E, loc, "%s must be an int, found %s", what, describe(v));
        return false;
    }
    return true;
}

static bool want_bool(Elab *E, Value *v, Loc loc, const char *what) {
    if (v->kind != V_BOOL) {
        error_at(E, loc, "%s must be a bool, found %s%s", what, describe(v),
                 v->kind == V_TENSOR ? " (tensors are compared at run time: select with where or masked_fill)" : "");
        return false;
    }
    return true;
}

static double as_double(const Value *v) { return v->kind == V_INT ? (double)v->i : v->f; }

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static int64_t floor_mod(int64_t a, int64_t b) {
    int64_t r = a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

static Value *int_arith(Elab *E, Node *n, int64_t a, int64_t b) {
    int64_t r = 0;
    bool overflow = false;
    switch (n->op) {
    case OP_ADD: overflow = __builtin_add_overflow(a, b, &r); break;
    case OP_SUB: overflow = __builtin_sub_overflow(a, b, &r); break;
    case OP_MUL: overflow = __builtin_mul_overflow(a, b, &r); break;
    case OP_DIV:
    case OP_IDIV:
    case OP_MOD:
        if (b == 0) {
            error_at(E, n->loc, "division by zero");
            return NULL;
        }
        if (a == INT64_MIN && b == -1) {   /* the one quotient that does not fit; the remainder is 0 */
            if (n->op == OP_MOD)
                return int_value(0);
            overflow = true;
            break;
        }
        if (n->op == OP_DIV) {
            if (a % b != 0) {
                error_at(E, n->loc, "%lld / %lld is not a whole number (use // for floor division, or write a float)", (long long)a, (long long)b);
                return NULL;
            }
            r = a / b;
        } else {
            r = n->op == OP_IDIV ? floor_div(a, b) : floor_mod(a, b);
        }
        break;
    case OP_POW:
        if (b < 0) {
            if (a == 0) {
                error_at(E, n->loc, "division by zero (0 to a negative power)");
                return NULL;
            }
            return float_value(pow((double)a, (double)b));
        }
        r = 1;
        for (int64_t i = 0; i < b && !overflow; i++) {
            overflow = __builtin_mul_overflow(r, a, &r);
            if (r == 0 || r == 1)
                break;
        }
        if (!overflow && r == 1 && a == -1 && b % 2 == 1)
            r = -1;
        break;
    default: break;
    }
    if (overflow) {
        error_at(E, n->loc, "integer overflow in %lld %s %lld", (long long)a, operator_text(n->op), (long long)b);
        return NULL;
    }
    return int_value(r);
}

static Value *float_arith(Elab *E, Node *n, double a, double b) {
    switch (n->op) {
    case OP_ADD: return float_value(a + b);
    case OP_SUB: return float_value(a - b);
    case OP_MUL: return float_value(a * b);
    case OP_POW:
        if (a == 0 && b < 0) {
            error_at(E, n->loc, "division by zero (0 to a negative power)");
            return NULL;
        }
        if (a < 0 && b != floor(b)) {
            error_at(E, n->loc, "%g ** %g is not a real number", a, b);
            return NULL;
        }
        return float_value(pow(a, b));
    case OP_DIV:
    case OP_IDIV:
    case OP_MOD:
        if (b == 0) {
            error_at(E, n->loc, "division by zero");
            return NULL;
        }
        if (n->op == OP_DIV)
            return float_value(a / b);
        if (n->op == OP_IDIV)
            return float_value(floor(a / b));
        return float_value(a - floor(a / b) * b);
    default: return NULL;
    }
}

static Value *compare(Elab *E, Node *n, Value *a, Value *b) {
    int cmp;
    if (is_number(a) && is_number(b)) {
        if (a->kind == V_INT && b->kind == V_INT)
            cmp = (a->i > b->i) - (a->i < b->i);
        else
            cmp = (as_double(a) > as_double(b)) - (as_double(a) < as_double(b));
    } else if (a->kind == V_STR && b->kind == V_STR) {
        cmp = strcmp(a->s, b->s);
    } else if (a->kind == V_BOOL && b->kind == V_BOOL && (n->op == OP_EQ || n->op == OP_NE)) {
        cmp = a->b != b->b;
    } else if (a->kind == V_LIST && b->kind == V_LIST && (n->op == OP_EQ || n->op == OP_NE)) {
        bool same = a->items.len == b->items.len;
        for (int i = 0; same && i < a->items.len; i++) {
            Node eq = *n;
            eq.op = OP_EQ;
            Value *r = compare(E, &eq, a->items.items[i], b->items.items[i]);
            if (!r)
                return NULL;
            same = r->b;
        }
        cmp = !same;
    } else {
        error_at(E, n->loc, "cannot compare %s with %s using '%s'", describe(a), describe(b), operator_text(n->op));
        return NULL;
    }
    switch (n->op) {
    case OP_EQ: return bool_value(cmp == 0);
    case OP_NE: return bool_value(cmp != 0);
    case OP_LT: return bool_value(cmp < 0);
    case OP_LE: return bool_value(cmp <= 0);
    case OP_GT: return bool_value(cmp > 0);
    default: return bool_value(cmp >= 0);
    }
}

static Value *tensor_arith(Elab *E, Node *n, Value *a, Value *b) {
    static const OpKind binary_kind[] = {[OP_ADD] = OPK_ADD, [OP_SUB] = OPK_SUB, [OP_MUL] = OPK_MUL, [OP_DIV] = OPK_DIV, [OP_EQ] = OPK_EQ,
                                         [OP_NE] = OPK_NE, [OP_LT] = OPK_LT, [OP_LE] = OPK_LE, [OP_GT] = OPK_GT, [OP_GE] = OPK_GE};
    if ((a->kind == V_TENSOR && a->t->dtype == DT_INDEX) || (b->kind == V_TENSOR && b->t->dtype == DT_INDEX)) {
        error_at(E, n->loc, "operator '%s' is not defined on index tensors (found %s and %s): they are only read by index_select and take",
                 operator_text(n->op), describe(a), describe(b));
        return NULL;
    }
    if (n->op == OP_MATMUL) {
        if (a->kind != V_TENSOR || b->kind != V_TENSOR) {
            error_at(E, n->loc, "'@' multiplies two tensors, found %s @ %s", describe(a), describe(b));
            return NULL;
        }
        return build_operator(E, OPK_MATMUL, n->loc, (Value *[]){a, b}, 2);
    }
    if (n->op == OP_AND || n->op == OP_OR || n->op == OP_IDIV || n->op == OP_MOD || n->op == OP_POW) {
        error_at(E, n->loc, "operator '%s' is not defined on tensors (only + - * / and @ are, and comparisons)", operator_text(n->op));
        return NULL;
    }
    if (a->kind == V_TENSOR && b->kind == V_TENSOR)
        return build_operator(E, binary_kind[n->op], n->loc, (Value *[]){a, b}, 2);
    Value *t = a->kind == V_TENSOR ? a : b, *s = a->kind == V_TENSOR ? b : a;
    if (!is_number(s)) {
        error_at(E, n->loc, "cannot apply '%s' to %s and %s", operator_text(n->op), describe(a), describe(b));
        return NULL;
    }
    Value *args[] = {t, float_value(as_double(s)), int_value(n->op), bool_value(s == a)};
    return build_operator(E, OPK_SCALAR, n->loc, args, 4);
}

static Value *eval_binary(Elab *E, Scope *S, Node *n) {
    if (n->op == OP_AND || n->op == OP_OR) {
        Value *a = eval(E, S, n->lhs);
        if (!a || !want_bool(E, a, n->lhs->loc, format("the left operand of '%s'", operator_text(n->op))))
            return NULL;
        if (a->b == (n->op == OP_OR))
            return a;
        Value *b = eval(E, S, n->rhs);
        if (!b || !want_bool(E, b, n->rhs->loc, format("the right operand of '%s'", operator_text(n->op))))
            return NULL;
        return b;
    }
    Value *a = eval(E, S, n->lhs);
    if (!a)
        return NULL;
    Value *b = eval(E, S, n->rhs);
    if (!b)
        return NULL;
    if (a->kind == V_TENSOR || b->kind == V_TENSOR)
        return tensor_arith(E, n, a, b);
    if (n->op >= OP_EQ && n->op <= OP_GE)
        return compare(E, n, a, b);
    if (n->op == OP_ADD && a->kind == V_LIST && b->kind == V_LIST) {
        Value *r = new_value(V_LIST);
        for (int i = 0; i < a->items.len; i++)
            vec_push(&r->items, a->items.items[i]);
        for (int i = 0; i < b->items.len; i++)
            vec_push(&r->items, b->items.items[i]);
        return r;
    }
    if (!is_number(a) || !is_number(b) || n->op == OP_MATMUL) {
        error_at(E, n->loc, "cannot apply '%s' to %s and %s", operator_text(n->op), describe(a), describe(b));
        return NULL;
    }
    if (a->kind == V_INT && b->kind == V_INT)
        return int_arith(E, n, a->i, b->i);
    return float_arith(E, n, as_double(a), as_double(b));
}

static Value *eval_unary(Elab *E, Scope *S, Node *n) {
    Value *v = eval(E, S, n->lhs);
    if (!v)
        return NULL;
    if (n->op == OP_NOT) {
        if (!want_bool(E, v, n->lhs->loc, "the operand of '!'"))
            return NULL;
        return bool_value(!v->b);
    }
    switch (v->kind) {
    case V_INT:
        if (v->i == INT64_MIN) {
            error_at(E, n->loc, "integer overflow in -(%lld)", (long long)v->i);
            return NULL;
        }
        return int_value(-v->i);
    case V_FLOAT: return float_value(-v->f);
    case V_TENSOR: return build_operator(E, OPK_NEG, n->loc, &v, 1);
    default:
        error_at(E, n->loc, "cannot negate %s", describe(v));
        return NULL;
    }
}

static bool list_index(Elab *E, Node *n, int64_t len, Value *idx, int64_t *out) {
    if (!want_int(E, idx, n->rhs->loc, "an index"))
        return false;
    int64_t i = idx->i < 0 ? idx->i + len : idx->i;
    if (i < 0 || i >= len) {
        error_at(E, n->rhs->loc, "index %lld is out of range for a list of length %lld", (long long)idx->i, (long long)len);
        return false;
    }
    *out = i;
    return true;
}

static Value *shape_list(const Tensor *t) { return ints_value(t->rank, t->dims); }

/* The compile-time functions of numbers: int (towards zero, as Python's), float, floor, ceil, round
   (half to even, as Python's), min and max of two or more numbers or of one list of them. What
   `_make_divisible` in MobileNet and EfficientNet needs: int(max(8, int(c * w + 4) // 8 * 8)). */
static const char *const number_fns[] = {"int", "float", "floor", "ceil", "round", "min", "max", NULL};

static bool is_number_fn(const char *name) {
    for (int i = 0; number_fns[i]; i++)
        if (strcmp(number_fns[i], name) == 0)
            return true;
    return false;
}

static Value *number_of(double f, bool as_int) { return as_int ? int_value((int64_t)f) : float_value(f); }

static Value *eval_number_fn(Elab *E, Scope *S, Node *n, const char *label) {
    const char *name = n->str;
    bool extremum = name[0] == 'm';
    if (label) {
        error_at(E, n->loc, "'as' names the weights a call creates, and %s creates none", name);
        return NULL;
    }
    Vec vals = {0};
    bool one_list = false;
    for (int i = 0; i < n->args.len; i++) {
        Arg *a = n->args.items[i];
        if (a->name) {
            error_at(E, a->loc, "%s takes no keyword arguments", name);
            return NULL;
        }
        Value *v = eval(E, S, a->value);
        if (!v)
            return NULL;
        if (extremum && n->args.len == 1 && v->kind == V_LIST) {
            one_list = true;
            for (int j = 0; j < v->items.len; j++)
                vec_push(&vals, v->items.items[j]);
        } else {
            vec_push(&vals, v);
        }
        for (int j = 0; j < vals.len; j++)
            if (!is_number(VEC_AT(vals, j, Value *))) {
                error_at(E, a->value->loc, "%s takes %s, found %s", name, extremum ? "numbers (or one list of them)" : "a number",
                         describe(VEC_AT(vals, j, Value *)));
                return NULL;
            }
    }
    if (extremum && n->args.len == 1 && !one_list) {
        error_at(E, n->loc, "%s takes two or more numbers, or one non-empty list, found one number", name);
        return NULL;
    }
    if (extremum ? vals.len < (n->args.len == 1 ? 1 : 2) : n->args.len != 1) {
        error_at(E, n->loc, "%s takes %s, found %d argument%s", name, extremum ? "two or more numbers, or one non-empty list" : "one number",
                 n->args.len, n->args.len == 1 ? "" : "s");
        return NULL;
    }
    Value *x = vals.items[0];
    double f = x->kind == V_INT ? (double)x->i : x->f;
    if (extremum) {
        Value *best = x;
        for (int j = 1; j < vals.len; j++) {
            Value *v = vals.items[j];
            double a = best->kind == V_INT ? (double)best->i : best->f, b = v->kind == V_INT ? (double)v->i : v->f;
            if (name[1] == 'a' ? b > a : b < a)
                best = v;
        }
        return best;
    }
    if (strcmp(name, "float") == 0)
        return float_value(f);
    if (x->kind == V_INT)
        return x;
    if (!isfinite(f) || fabs(f) >= 9.2e18) {
        error_at(E, VEC_AT(n->args, 0, Arg *)->value->loc, "%s of %g is not a 64-bit integer", name, f);
        return NULL;
    }
    switch (name[0]) {
    case 'i': return number_of(trunc(f), true);
    case 'f': return number_of(floor(f), true);
    case 'c': return number_of(ceil(f), true);
    default: return number_of(nearbyint(f), true);   /* round: the default rounding mode, half to even */
    }
}

/* log, exp, sqrt and abs are builtins of tensors and, of a number, compile-time functions (RegNet's
   widths: round(log(w / w_0) / log(w_m))). The argument is evaluated once; a tensor goes on to the
   builtin as that value. */
static Value *eval_dual_fn(Elab *E, Scope *S, Node *n, const char *label, OpKind kind) {
    if (n->args.len != 1 || VEC_AT(n->args, 0, Arg *)->name)
        return call_builtin(E, S, kind, n, label);
    Arg *arg = n->args.items[0];
    Value *v = eval(E, S, arg->value);
    if (!v)
        return NULL;
    if (!is_number(v) && !S) {
        error_at(E, n->loc, "a 'let' is a constant: %s takes a number there, found %s", n->str, describe(v));
        return NULL;
    }
    if (!is_number(v)) {
        Node *given = new_node(ND_VALUE, arg->value->loc), *call = xcalloc(1, sizeof *call);
        given->value = v;
        *call = *n;
        call->args = (Vec){0};
        vec_push(&call->args, new_arg(NULL, given, arg->loc));
        return call_builtin(E, S, kind, call, label);
    }
    if (label) {
        error_at(E, n->loc, "'as' names the weights a call creates, and %s of a number creates none", n->str);
        return NULL;
    }
    double f = v->kind == V_INT ? (double)v->i : v->f;
    switch (kind) {
    case OPK_ABS: return v->kind == V_INT ? int_value(v->i < 0 ? -v->i : v->i) : float_value(fabs(f));
    case OPK_EXP: return float_value(exp(f));
    default:
        if (kind == OPK_LOG ? !(f > 0) : !(f >= 0)) {
            error_at(E, arg->value->loc, "%s of %g is not a real number", n->str, f);
            return NULL;
        }
        return float_value(kind == OPK_LOG ? log(f) : sqrt(f));
    }
}

/* min and max of a tensor are reductions (torch.amin, amax); of numbers, compile-time functions. The first
   argument is evaluated once and handed on as that value. */
static Value *eval_extremum(Elab *E, Scope *S, Node *n, const char *label) {
    Arg *first = n->args.len > 0 ? n->args.items[0] : NULL;
    if (!first || first->name || !S)
        return eval_number_fn(E, S, n, label);
    Value *v = eval(E, S, first->value);
    if (!v)
        return NULL;
    Node *given = new_node(ND_VALUE, first->value->loc), *call = xcalloc(1, sizeof *call);
    given->value = v;
    *call = *n;
    call->args = (Vec){0};
    vec_push(&call->args, new_arg(NULL, given, first->loc));
    for (int i = 1; i < n->args.len; i++)
        vec_push(&call->args, n->args.items[i]);
    if (v->kind == V_TENSOR)
        return call_builtin(E, S, n->str[1] == 'a' ? OPK_MAX : OPK_MIN, call, label);
    return eval_number_fn(E, S, call, label);
}

static Value *eval_call(Elab *E, Scope *S, Node *n, const char *label) {
    const char *name = n->str;
    if ((strcmp(name, "min") == 0 || strcmp(name, "max") == 0) && !find_decl(&E->blocks, name))
        return eval_extremum(E, S, n, label);
    if (is_number_fn(name) && !find_decl(&E->blocks, name))
        return eval_number_fn(E, S, n, label);
    static const OpKind dual[] = {OPK_LOG, OPK_EXP, OPK_SQRT, OPK_ABS};
    for (size_t i = 0; i < sizeof dual / sizeof *dual; i++)
        if (strcmp(name, op_info[dual[i]].name) == 0 && !find_decl(&E->blocks, name))
            return eval_dual_fn(E, S, n, label, dual[i]);
    if (strcmp(name, "len") == 0 && !find_decl(&E->blocks, name)) {
        if (n->args.len != 1 || VEC_AT(n->args, 0, Arg *)->name) {
            error_at(E, n->loc, "len takes one list, found %d arguments", n->args.len);
            return NULL;
        }
        Value *v = eval(E, S, VEC_AT(n->args, 0, Arg *)->value);
        if (!v)
            return NULL;
        if (v->kind != V_LIST) {
            error_at(E, VEC_AT(n->args, 0, Arg *)->value->loc, "len takes a list, found %s", describe(v));
            return NULL;
        }
        if (label) {
            error_at(E, n->loc, "'as' names the weights a call creates, and len creates none");
            return NULL;
        }
        return int_value(v->items.len);
    }
    if (!S) {
        error_at(E, n->loc, "a 'let' is a constant and cannot call '%s'", name);
        return NULL;
    }
    Decl *block = find_decl(&E->blocks, name);
    if (block)
        return call_block(E, S, block, n, label);
    for (int k = 0; k < OPK_COUNT; k++)
        if (op_info[k].user && strcmp(op_info[k].name, name) == 0)
            return call_builtin(E, S, (OpKind)k, n, label);
    if (find_decl(&E->models, name))
        error_at(E, n->loc, "'%s' is a model, and models cannot be called; make it a block", name);
    else
        error_at(E, n->loc, "unknown function '%s' (not a builtin or a block)", name);
    return NULL;
}

/* A string that may stand in a weight key: letters, digits, '_', '-' and '.', not empty, no empty segment. */
static bool valid_key_text(const char *s) {
    if (!s[0] || s[0] == '.' || s[strlen(s) - 1] == '.' || strstr(s, ".."))
        return false;
    for (const char *p = s; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '.'))
            return false;
    return true;
}

static const char *eval_path(Elab *E, Scope *S, Path *path) {
    if (path->is_self) {
        if (!S->named) {
            error_at(E, path->loc, "'as self' is only valid inside a block that was called with 'as'");
            return NULL;
        }
        return S->prefix;
    }
    Buf b = {0};
    if (S->prefix[0])
        buf_printf(&b, "%s.", S->prefix);
    for (int i = 0; i < path->segs.len; i++) {
        PathSeg *seg = path->segs.items[i];
        if (i)
            buf_puts(&b, ".");
        for (int j = 0; j < seg->parts.len; j++) {
            PathPart *part = seg->parts.items[j];
            if (part->text) {
                buf_puts(&b, part->text);
                continue;
            }
            Value *v = eval(E, S, part->expr);
            if (!v)
                return NULL;
            if (v->kind == V_STR && valid_key_text(v->s)) {   /* a name computed as a string: "block1-0" */
                buf_puts(&b, v->s);
                continue;
            }
            if (v->kind != V_INT) {
                error_at(E, part->expr->loc, "a {...} in a weight name must be an int or a string of letters, digits, '_', '-' and '.', found %s",
                         describe(v));
                return NULL;
            }
            buf_printf(&b, "%lld", (long long)v->i);
        }
    }
    return buf_take(&b);
}

static Value *eval_as(Elab *E, Scope *S, Node *n) {
    Node *target = n->lhs;
    if (!S) {
        error_at(E, n->loc, "a 'let' is a constant and cannot name weights");
        return NULL;
    }
    if (target->kind != ND_CALL) {
        Buf b = {0};
        print_node(&b, target);
        error_at(E, target->paren.line ? target->paren : target->loc,
                 "'as' names the weights of a call (a builtin with weights, param(...) or a block), not '%s'", b.buf);
        return NULL;
    }
    const char *label = eval_path(E, S, n->path);
    if (!label)
        return NULL;
    return eval_call(E, S, target, label);
}

static Value *eval_node(Elab *E, Scope *S, Node *n);

/* A list literal or several return values: each expression must give one value. */
static Value *eval_each(Elab *E, Scope *S, Vec *nodes, ValueKind kind, const char *not_a_value) {
    Value *all = new_value(kind);
    for (int i = 0; i < nodes->len; i++) {
        Node *n = nodes->items[i];
        Value *v = eval(E, S, n);
        if (!v)
            return NULL;
        if (v->kind == V_TUPLE || v->kind == V_NONE) {
            error_at(E, n->loc, not_a_value, kind_name(v->kind));
            return NULL;
        }
        vec_push(&all->items, v);
    }
    return all;
}

Value *eval(Elab *E, Scope *S, Node *n) {
    if (E->eval_depth >= MAX_EVAL_DEPTH) {
        error_at(E, n->loc, "expression nested too deeply (more than %d levels)", MAX_EVAL_DEPTH);
        return NULL;
    }
    E->eval_depth++;
    Value *v = eval_node(E, S, n);
    E->eval_depth--;
    return v;
}

static Value *eval_node(Elab *E, Scope *S, Node *n) {
    switch (n->kind) {
    case ND_INT: return int_value(n->ival);
    case ND_FLOAT: return float_value(n->fval);
    case ND_BOOL: return bool_value(n->bval);
    case ND_STR: {
        Value *v = new_value(V_STR);
        v->s = n->str;
        return v;
    }
    case ND_NAME: {
        Value *v = S ? env_get(&S->env, n->str) : NULL;
        if (!v)
            v = env_get(&E->globals, n->str);
        if (v)
            return v;
        if (find_decl(&E->blocks, n->str))
            error_at(E, n->loc, "'%s' is a block; call it with (...)", n->str);
        else
            error_at(E, n->loc, "unknown name '%s'", n->str);
        return NULL;
    }
    case ND_LIST: return eval_each(E, S, &n->args, V_LIST, "a list element must be a value, found %s");
    case ND_BINARY: return eval_binary(E, S, n);
    case ND_UNARY: return eval_unary(E, S, n);
    case ND_COND: {
        Value *c = eval(E, S, n->cond);
        if (!c || !want_bool(E, c, n->cond->loc, "the condition of '?:'"))
            return NULL;
        return eval(E, S, c->b ? n->lhs : n->rhs);
    }
    case ND_CALL: return eval_call(E, S, n, NULL);
    case ND_AS: return eval_as(E, S, n);
    case ND_VALUE: return n->value;
    case ND_INDEX: {
        Value *base = eval(E, S, n->lhs);
        if (!base)
            return NULL;
        Value *idx = eval(E, S, n->rhs);
        if (!idx)
            return NULL;
        if (base->kind != V_LIST) {
            error_at(E, n->loc, "only lists can be indexed, found %s%s", describe(base),
                     base->kind == V_TENSOR ? " (use take(x, axis, index) or slice for tensors)" : "");
            return NULL;
        }
        int64_t i;
        if (!list_index(E, n, base->items.len, idx, &i))
            return NULL;
        return base->items.items[i];
    }
    case ND_ATTR: {
        Value *base = eval(E, S, n->lhs);
        if (!base)
            return NULL;
        if (base->kind == V_TENSOR && strcmp(n->str, "shape") == 0)
            return shape_list(base->t);
        if (base->kind == V_TENSOR && strcmp(n->str, "rank") == 0)
            return int_value(base->t->rank);
        error_at(E, n->loc, "%s has no property '%s' (tensors have .shape and .rank)", describe(base), n->str);
        return NULL;
    }
    }
    return NULL;
}

/* ---------------------------------------------------------------- statements */

static bool bind_names(Elab *E, Scope *S, Stmt *s, Value *v) {
    if (v->kind == V_NONE) {
        error_at(E, s->expr->loc, "this call returns no value");
        return false;
    }
    if (s->names.len == 1) {
        if (v->kind == V_TUPLE) {
            error_at(E, s->expr->loc, "this returns %d values; bind them with %d names (a, b = ...)", v->items.len, v->items.len);
            return false;
        }
        env_set(&S->env, VEC_AT(s->names, 0, Node *)->str, v);
        return true;
    }
    int have = v->kind == V_TUPLE ? v->items.len : 1;
    if (have != s->names.len) {
        error_at(E, s->expr->loc, "%d names to bind, but the value has %d", s->names.len, have);
        return false;
    }
    for (int i = 0; i < have; i++)
        env_set(&S->env, VEC_AT(s->names, i, Node *)->str, v->items.items[i]);
    return true;
}

static bool exec_stmt(Elab *E, Scope *S, Stmt *s) {
    switch (s->kind) {
    case ST_ASSIGN: {
        Value *v = eval(E, S, s->expr);
        return v && bind_names(E, S, s, v);
    }
    case ST_FOR: {
        Value *lo = eval(E, S, s->lo);
        if (!lo || !want_int(E, lo, s->lo->loc, "the start of a range"))
            return false;
        Value *hi = eval(E, S, s->hi);
        if (!hi || !want_int(E, hi, s->hi->loc, "the end of a range"))
            return false;
        const char *var = VEC_AT(s->names, 0, Node *)->str;
        int64_t limit = E->opts->max_steps;
        if (hi->i > lo->i && (hi->i - lo->i > limit || (uint64_t)(hi->i - lo->i) + (uint64_t)E->steps > (uint64_t)limit)) {
            error_at(E, s->loc, "the loop runs %lld iterations, more than the limit of %lld loop iterations and calls",
                     (long long)(hi->i - lo->i), (long long)limit);
            return false;
        }
        for (int64_t i = lo->i; i < hi->i && !S->returned; i++) {
            if (++E->steps > E->opts->max_steps) {
                error_at(E, s->loc, "the program runs more than %lld loop iterations and calls", (long long)E->opts->max_steps);
                return false;
            }
            env_set(&S->env, var, int_value(i));
            if (!exec_stmts(E, S, &s->body))
                return false;
        }
        return true;
    }
    case ST_IF: {
        Value *c = eval(E, S, s->expr);
        if (!c || !want_bool(E, c, s->expr->loc, "an 'if' condition"))
            return false;
        return exec_stmts(E, S, c->b ? &s->body : &s->els);
    }
    case ST_RETURN: {
        Value *ret;
        if (s->values.len == 1) {
            ret = eval(E, S, s->values.items[0]);
            if (!ret)
                return false;
        } else {
            ret = eval_each(E, S, &s->values, V_TUPLE, "cannot return %s as one of several values");
            if (!ret)
                return false;
        }
        S->ret = ret;
        S->ret_nodes = s->values;
        S->returned = true;
        return true;
    }
    }
    return false;
}

bool exec_stmts(Elab *E, Scope *S, Vec *stmts) {
    for (int i = 0; i < stmts->len && !S->returned; i++)
        if (!exec_stmt(E, S, stmts->items[i]))
            return false;
    return true;
}

/* ---------------------------------------------------------------- top level */

/* The builtins of the language's first definition: a block may not take their names. Builtins added
   since (clamp, sum, where, ...) may be: a block of that name hides the builtin, so that a program
   written before it still means what it did. */
static bool is_core_builtin(const char *name) {
    static const char *const core[] = {
        "conv2d", "linear", "batchnorm", "layernorm", "multihead_attention", "cross_attention", "relu", "gelu", "sigmoid", "tanh",
        "silu", "softmax", "maxpool", "avgpool", "global_avgpool", "adaptive_avgpool", "pad", "dropout", "flatten", "reshape",
        "transpose", "concat", "slice", "take", "expand", "matmul", "scaled_dot_product_attention", "param",
    };
    for (size_t i = 0; i < sizeof core / sizeof *core; i++)
        if (strcmp(core[i], name) == 0)
            return true;
    return false;
}

/* The VALUE of -D NAME=VALUE, parsed as the expression of a `let`. Its errors are the command
   line's: one line each, exit status 2. */
static Node *parse_define(Define *d) {
    SrcFile *src = (SrcFile *)src_from_string(format("-D %s", d->name), format("let %s = %s\n", d->name, d->value));
    src->cmdline = format("-D %s=%s", d->name, d->value);
    Vec decls = {0};
    int errors = parse_file(src, &decls);
    if (errors == 0 && (decls.len != 1 || VEC_AT(decls, 0, Decl *)->kind != DECL_LET)) {
        diag_usage("-D %s=%s: the value must be one constant expression", d->name, d->value);
        return NULL;
    }
    return errors ? NULL : VEC_AT(decls, 0, Decl *)->value;
}

static bool collect_decls(Elab *E, Vec *decls) {
    for (int i = 0; i < decls->len; i++) {
        Decl *d = decls->items[i];
        if (d->kind != DECL_BLOCK && d->kind != DECL_MODEL)
            continue;
        Decl *prev = find_decl(&E->blocks, d->name);
        if (!prev)
            prev = find_decl(&E->models, d->name);
        if (prev) {
            diag_error(d->loc, "'%s' is defined twice", d->name);
            diag_note(prev->loc, "first defined here");
            return false;
        }
        for (int k = 0; k < OPK_COUNT; k++) {
            if (!op_info[k].user || strcmp(op_info[k].name, d->name) != 0)
                continue;
            if (is_core_builtin(d->name)) {
                diag_error(d->loc, "'%s' is a builtin and cannot be redefined", d->name);
                return false;
            }
            /* a builtin nnc added since: a program written before it keeps its own block */
            diag_warning(d->loc, "block '%s' hides the builtin of that name in this program", d->name);
        }
        for (int p = 0; p < d->params.len; p++) {
            Param *param = d->params.items[p];
            if (d->kind == DECL_BLOCK && param->type && block_type(param->type) < 0) {
                diag_error(param->type_loc, "unknown type '%s' (block parameters are tensor, int, float, bool, list or str)", param->type);
                return false;
            }
            if (d->kind == DECL_BLOCK && param->has_dims) {
                diag_error(param->type_loc, "a block parameter's type has no shape: write '%s: tensor'", param->name);
                return false;
            }
            for (int q = 0; q < p; q++) {
                if (strcmp(VEC_AT(d->params, q, Param *)->name, param->name) == 0) {
                    diag_error(param->loc, "parameter '%s' is declared twice", param->name);
                    return false;
                }
            }
        }
        vec_push(d->kind == DECL_BLOCK ? &E->blocks : &E->models, d);
    }
    return true;
}

static bool eval_lets(Elab *E, Vec *decls) {
    Vec seen = {0};
    for (int i = 0; i < decls->len; i++) {
        Decl *d = decls->items[i];
        if (d->kind != DECL_LET)
            continue;
        Decl *prev = find_decl(&seen, d->name);
        if (prev) {
            diag_error(d->loc, "'let %s' is defined twice", d->name);
            diag_note(prev->loc, "first defined here");
            return false;
        }
        vec_push(&seen, d);
        Node *expr = d->value;
        for (int j = 0; j < E->opts->defines.len; j++) {
            Define *def = E->opts->defines.items[j];
            if (strcmp(def->name, d->name) == 0) {
                def->used = true;
                expr = parse_define(def);
                if (!expr)
                    return false;
            }
        }
        Value *v = eval(E, NULL, expr);
        if (!v)
            return false;
        if (v->kind == V_TENSOR || v->kind == V_TUPLE || v->kind == V_NONE) {
            diag_error(expr->loc, "'let %s' must be a compile-time constant, found %s", d->name, kind_name(v->kind));
            return false;
        }
        env_set(&E->globals, d->name, v);
    }
    for (int j = 0; j < E->opts->defines.len; j++) {
        Define *def = E->opts->defines.items[j];
        if (!def->used) {
            diag_usage("-D %s: the program has no 'let %s' to override", def->name, def->name);
            return false;
        }
    }
    return true;
}

static Decl *choose_model(Elab *E) {
    if (E->opts->model) {
        Decl *m = find_decl(&E->models, E->opts->model);
        if (!m)
            diag_usage("--model %s: no model of that name in the program", E->opts->model);
        return m;
    }
    if (E->models.len == 1)
        return E->models.items[0];
    if (E->models.len == 0) {
        diag_plain("the program defines no model (write 'model NAME(input: f32[...]) { ... }')");
        return NULL;
    }
    Buf b = {0};
    for (int i = 0; i < E->models.len; i++)
        buf_printf(&b, i ? ", %s" : "%s", VEC_AT(E->models, i, Decl *)->name);
    diag_usage("the program defines %d models (%s); choose one with --model NAME", E->models.len, b.buf);
    return NULL;
}

static bool make_inputs(Elab *E, Decl *model, Scope *S) {
    for (int i = 0; i < model->params.len; i++) {
        Param *p = model->params.items[i];
        if (!p->type || strcmp(p->type, "f32") != 0 || !p->has_dims) {
            if (p->type)
                diag_error(p->type_loc, "model input '%s' needs a tensor type such as f32[1, 3, 224, 224], found %s%s", p->name, p->type,
                           p->has_dims ? "[...]" : "");
            else
                diag_error(p->loc, "model input '%s' needs a tensor type such as f32[1, 3, 224, 224]", p->name);
            return false;
        }
        if (p->def) {
            diag_error(p->def->loc, "model input '%s' cannot have a default value", p->name);
            return false;
        }
        if (p->dims.len == 0 || p->dims.len > MAX_RANK) {
            diag_error(p->type_loc, "model input '%s' must have between 1 and %d dimensions, found %d", p->name, MAX_RANK, p->dims.len);
            return false;
        }
        int64_t dims[MAX_RANK], numel = 1;
        for (int j = 0; j < p->dims.len; j++) {
            Node *dn = p->dims.items[j];
            Value *v = eval(E, S, dn);
            if (!v || !want_int(E, v, dn->loc, "a dimension"))
                return false;
            if (v->i <= 0) {
                diag_error(dn->loc, "dimension %d of input '%s' must be positive, found %lld", j, p->name, (long long)v->i);
                return false;
            }
            dims[j] = v->i;
            if (j > 0 && dims[j] > (INT64_C(1) << MAX_TENSOR_ELEMS_LOG2) / numel) {
                diag_error(p->type_loc, "model input '%s' would have shape %s, more than 2^%d elements", p->name,
                           shape_text(j + 1, dims), MAX_TENSOR_ELEMS_LOG2);
                return false;
            }
            numel *= dims[j];
        }
        Tensor *t = new_tensor(E->g, TK_INPUT, p->name, p->dims.len, dims, p->loc);
        env_set(&S->env, p->name, tensor_value(t));
    }
    return true;
}

Graph *elaborate(Vec *decls, ElabOptions *opts) {
    Elab *E = xcalloc(1, sizeof *E);
    E->opts = opts;
    if (opts->max_call_depth <= 0)
        opts->max_call_depth = 256;
    if (opts->max_ops <= 0)
        opts->max_ops = 100000;   /* 20 times the largest real network; refusing a runaway loop stays cheap */
    if (opts->max_steps <= 0)
        opts->max_steps = MAX_STEPS;
    parse_signatures(E);
    if (!collect_decls(E, decls) || !eval_lets(E, decls))
        return NULL;
    Decl *model = choose_model(E);
    if (!model)
        return NULL;
    E->g = new_graph(model->name);
    Scope S = {.prefix = ""};
    if (!make_inputs(E, model, &S) || !exec_stmts(E, &S, &model->body))
        return NULL;
    if (!S.ret) {
        diag_error(model->loc, "model '%s' returns nothing (end it with 'return' and its output tensors)", model->name);
        return NULL;
    }
    Vec outs = {0};
    if (S.ret->kind == V_TUPLE)
        outs = S.ret->items;
    else
        vec_push(&outs, S.ret);
    for (int i = 0; i < outs.len; i++) {
        Value *v = outs.items[i];
        Loc at = i < S.ret_nodes.len ? VEC_AT(S.ret_nodes, i, Node *)->loc : model->loc;
        if (v->kind != V_TENSOR || v->t->dtype == DT_INDEX) {
            diag_error(at, "model '%s' must return %stensors, but output %d is %s", model->name, v->kind == V_TENSOR ? "float " : "", i, describe(v));
            return NULL;
        }
        Tensor *t = v->t;
        bool repeated = false;
        for (int j = 0; j < i; j++)
            repeated |= VEC_AT(E->g->outputs, j, Tensor *) == t;
        if (t->kind != TK_ACT || repeated) {   /* an input, a weight or a repeat: the output is a copy */
            Op *copy = new_op(E->g, OPK_RESHAPE, at, NULL);
            op_add_input(copy, t);
            t = op_set_output(E->g, copy, t->rank, t->dims);
        }
        vec_push(&E->g->outputs, t);
    }
    graph_recount_uses(E->g);
    return E->g;
}
