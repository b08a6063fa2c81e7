/*
 * elab.h — what the two halves of elaboration share: the compile-time values and the interpreter's
 * state. elaborate.c runs the program (values, blocks, expressions, statements, the top level);
 * elab_builtins.c binds a builtin's arguments to its signature in ops.def and hands the call to its
 * shape rule in shape.c (the Call interface of nnc.h).
 */
#ifndef ELAB_H
#define ELAB_H

#include "nnc.h"


typedef enum { V_NONE, V_INT, V_FLOAT, V_BOOL, V_STR, V_LIST, V_TENSOR, V_TUPLE } ValueKind;

struct Value {
    ValueKind kind;
    int64_t i;
    double f;
    bool b;
    const char *s;
    Vec items;           /* V_LIST, V_TUPLE: of Value* */
    Tensor *t;
};

typedef struct {
    Vec names;           /* of const char* */
    Vec values;          /* of Value* */
} Env;

/* One block body (or the model body) being executed. */
typedef struct {
    Env env;
    const char *prefix;  /* weight key prefix: "" in the model, "layer1.0" inside a block called so */
    bool named;          /* the block was called with `as` (so `as self` is valid) */
    const char *block;   /* the block's name, or NULL in the model */
    bool returned;
    Value *ret;
    Vec ret_nodes;       /* the expressions returned, for messages */
} Scope;

/* A string-keyed hash table, for weight keys (thousands in a big model). */
typedef struct {
    const char **keys;
    void **vals;
    size_t cap, len;
} Map;

typedef struct {
    const char *name;
    int type;            /* SigType */
    Value *def;          /* NULL: required; a V_NONE value: optional with no default */
} SigParam;

typedef struct {
    SigParam params[12];
    int n;
} Signature;

struct Elab {
    Graph *g;
    ElabOptions *opts;
    Env globals;                 /* evaluated lets */
    Vec blocks, models;          /* of Decl* */
    const CallFrame *chain;
    int depth;
    int eval_depth;              /* nesting of expressions being evaluated */
    int64_t steps;               /* loop iterations and calls, against runaway programs */
    Map weight_locs;             /* key -> CallFrame* of the call that created it */
    Signature sigs[OPK_COUNT];
};

enum { SIG_TENSOR, SIG_TENSORS, SIG_INT, SIG_FLOAT, SIG_BOOL, SIG_STR, SIG_INTS, SIG_PAIR, SIG_PAD, SIG_ANY, SIG_AXES, SIG_INDICES,
       SIG_INT_OR_INDICES, SIG_SCALAR };

enum { MAX_STEPS = 10000000, MAX_TENSOR_ELEMS_LOG2 = 40, MAX_EVAL_DEPTH = 2000 };

static inline bool is_number(const Value *v) { return v->kind == V_INT || v->kind == V_FLOAT; }

/* A parameter a call's arguments are bound to: a builtin's (from its signature) or a block's. */
typedef struct {
    const char *name;
    Loc loc;
} ParamRef;

/* elaborate.c */
Value *new_value(ValueKind kind);
Value *bool_value(bool b);
const char *kind_name(ValueKind k);
char *describe(const Value *v);
void error_at(Elab *E, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void **map_slot(Map *m, const char *key, bool insert);
Value *eval(Elab *E, Scope *S, Node *n);
bool exec_stmts(Elab *E, Scope *S, Vec *stmts);

/* elab_builtins.c */
void parse_signatures(Elab *E);
/* Positional then keyword arguments onto parameters: vals/locs per parameter (vals NULL where not given).
   Reports and returns false on any mismatch. */
bool bind_args(Elab *E, Scope *S, const char *fn, Node *call, const ParamRef *params, int nparams, Value **vals, Loc *locs);
Value *call_builtin(Elab *E, Scope *S, OpKind kind, Node *call, const char *label);
Value *build_operator(Elab *E, OpKind kind, Loc loc, Value **args, int nargs);

#endif
