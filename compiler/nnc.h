/*
 * nnc.h — the one header that every stage of nnc shares.
 *
 * The compiler is a straight pipeline, one file per stage:
 *
 *   lexer.l      source text  -> tokens            (flex, reentrant, with locations)
 *   parser.y     tokens       -> AST               (bison, pure; actions only build nodes)
 *   elaborate.c  AST          -> one flat Graph     (blocks expanded, loops unrolled, weights keyed)
 *   shape.c      the shape rule of every op, called while elaborating
 *   passes/      Graph        -> Graph              (each pass one file; -O0 runs none)
 *   emit_*.c     Graph        -> C, IR text, Graphviz
 *
 * Data flows one way. Every AST node and every op keeps the Loc of the source that made it, so any
 * later stage can point at the user's text with a caret. Memory is allocated and never freed: nnc is
 * a short-lived program, and an arena-free design keeps every stage simple.
 */
#ifndef NNC_H
#define NNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define NNC_VERSION "0.1.0"
#define MAX_RANK 8

/* ---------------------------------------------------------------- memory and strings (util.c) */

void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A growable array of pointers; the only container nnc needs. */
typedef struct {
    void **items;
    int len, cap;
} Vec;
void vec_push(Vec *v, void *item);
#define VEC_AT(v, i, T) ((T)(v).items[i])

/* A string builder, used by every emitter. */
typedef struct {
    char *buf;
    size_t len, cap;
} Buf;
void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_puts(Buf *b, const char *s);
char *buf_take(Buf *b);

/* ---------------------------------------------------------------- source files and diagnostics (diag.c) */

typedef struct {
    const char *path;   /* as the user wrote it, or relative to the importing file */
    const char *text;   /* NUL-terminated contents */
    size_t len;
    const char *cmdline;   /* text made from a command-line option ("-D batch=2"): its errors are usage errors */
} SrcFile;

typedef struct {
    const SrcFile *file;
    int line, col;       /* 1-based */
    int end_col;         /* last column of the token or node on `line` (>= col), for the ~~~ underline */
} Loc;

/* A block call being expanded: the chain of these is printed under an error ("in expansion of ..."). */
typedef struct CallFrame {
    const char *block;
    Loc loc;
    const struct CallFrame *parent;
} CallFrame;

const SrcFile *src_load(const char *path);      /* NULL if unreadable (errno set) */
const SrcFile *src_from_string(const char *name, const char *text);

extern int diag_error_count;
extern FILE *diag_file;                          /* where diagnostics go; NULL: stderr */
extern int diag_error_limit;                     /* stop after this many errors */
void diag_error(Loc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void diag_warning(Loc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void diag_note(Loc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void diag_chain(const CallFrame *chain);         /* the notes for a block expansion chain */
void diag_plain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));  /* "nnc: error: ..." */
void diag_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));  /* the same, and exit status 2 */
extern bool diag_usage_error;
void diag_set_color(bool on);
Loc loc_span(Loc from, Loc to);                  /* from's start to to's end when on one line */

/* ---------------------------------------------------------------- AST (ast.c builds, parser.y calls) */

typedef enum {
    ND_INT, ND_FLOAT, ND_STR, ND_BOOL,
    ND_NAME,      /* str */
    ND_LIST,      /* args: the elements */
    ND_BINARY,    /* op, lhs, rhs */
    ND_UNARY,     /* op, lhs */
    ND_COND,      /* cond ? lhs : rhs */
    ND_CALL,      /* str (callee), args */
    ND_INDEX,     /* lhs[rhs] */
    ND_ATTR,      /* lhs.str */
    ND_AS,        /* lhs as path */
    ND_VALUE,     /* value: made by elaboration, never by the parser (an argument already evaluated) */
} NodeKind;

/* Operators, shared by AST and tensor arithmetic. */
typedef enum {
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_IDIV, OP_MOD, OP_POW, OP_MATMUL,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_AND, OP_OR,
    OP_NEG, OP_NOT,
} Operator;
const char *operator_text(Operator op);

typedef struct Node Node;
typedef struct Path Path;

typedef struct {
    const char *name;    /* keyword name, or NULL when positional */
    Node *value;
    Loc loc;
} Arg;

struct Node {
    NodeKind kind;
    Loc loc;
    Operator op;
    long long ival;
    double fval;
    bool bval;
    const char *str;
    Node *lhs, *rhs, *cond;
    Vec args;            /* of Arg* (calls) or Node* (lists) */
    Path *path;
    Loc paren;           /* when written in parentheses: their span (line 0 otherwise) */
    struct Value *value; /* ND_VALUE */
};

/* `as layer{s+1}.{i}`: segments split at dots; each segment is text and {expr} parts. */
typedef struct {
    const char *text;    /* literal text, or NULL */
    Node *expr;          /* interpolation, or NULL */
} PathPart;

typedef struct {
    Vec parts;           /* of PathPart* */
    Loc loc;
} PathSeg;

struct Path {
    Vec segs;            /* of PathSeg* */
    bool is_self;        /* `as self` */
    Loc loc;
};

typedef enum { ST_ASSIGN, ST_FOR, ST_IF, ST_RETURN } StmtKind;

typedef struct Stmt Stmt;
struct Stmt {
    StmtKind kind;
    Loc loc;
    Vec names;           /* ST_ASSIGN: of Node* (ND_NAME), one or several; ST_FOR: the loop variable */
    Node *expr;          /* ST_ASSIGN value, ST_IF condition */
    Node *lo, *hi;       /* ST_FOR range */
    Vec body;            /* of Stmt* */
    Vec els;             /* ST_IF else branch, of Stmt* (an else-if is one ST_IF here) */
    Vec values;          /* ST_RETURN: of Node* */
};

typedef struct {
    const char *name;
    Loc loc;
    const char *type;    /* "int", "tensor", "f32", ... as written (checked when elaborating), or NULL */
    Loc type_loc;
    bool has_dims;       /* f32[...] */
    Vec dims;            /* of Node* */
    Node *def;           /* default value, or NULL */
} Param;

typedef enum { DECL_IMPORT, DECL_LET, DECL_BLOCK, DECL_MODEL } DeclKind;

typedef struct {
    DeclKind kind;
    Loc loc;
    const char *name;    /* let/block/model name, import path */
    Node *value;         /* let */
    Vec params;          /* of Param* */
    Vec body;            /* of Stmt* */
} Decl;

/* parser.y: parse one file's declarations into `out`. Returns the number of syntax errors. */
int parse_file(const SrcFile *src, Vec *out);

/* ast.c: node constructors (the parser's actions call only these) */
Node *new_node(NodeKind kind, Loc loc);
Node *new_binary(Operator op, Node *lhs, Node *rhs, Loc loc);
Node *new_unary(Operator op, Node *operand, Loc loc);
Node *paren_node(Node *inner, Loc loc);   /* (inner): remembers the parentheses' span */
Arg *new_arg(const char *name, Node *value, Loc loc);
Stmt *new_stmt(StmtKind kind, Loc loc);
Param *new_param(const char *name, Loc loc);
Decl *new_decl(DeclKind kind, const char *name, Loc loc);
Path *new_path(Loc loc);
PathSeg *new_path_seg(Loc loc);
PathPart *new_path_part(const char *text, Node *expr);
Path *path_finish(Path *p);   /* marks `as self` */
void print_node(Buf *b, const Node *n);   /* back to source text, for messages */

/* load.c: a file and everything it imports, imports first, each file once; cycles are errors. */
bool load_program(const char *path, Vec *decls);

/* ---------------------------------------------------------------- the graph (graph.c) */

/* What the passes may do with an op kind: the PROPS column of ops.def. */
enum {
    OPF_ELEMENTWISE = 1,   /* each output element depends on the inputs' elements at its index only */
    OPF_IN_PLACE = 2,      /* the kernel may write its output over an input of the same shape */
    OPF_VIEW = 4,          /* the output may be a view of the input's memory (no code) */
    OPF_EPILOGUE = 8,      /* may absorb an activation and a residual add (passes/fuse_epilogue.c) */
};

/* The activations of runtime/kernels/nnk_acts.def, numbered as the runtime's NNK_ACT_* (the ACT column of
   ops.def; a layer's fused epilogue). */
typedef enum {
    ACT_NONE,
#define ACT(ID, NAME, ZMM, EXPR) ACT_##ID,
#include "kernels/nnk_acts.def"
#undef ACT
    ACT_COUNT
} ActKind;
extern const char *const act_name[ACT_COUNT];   /* "relu", "gelu_tanh", ...; "" for ACT_NONE */

typedef enum {
#define OP(id, name, user, props, act, sig, build, emit) OPK_##id,
#include "ops.def"
#undef OP
    OPK_COUNT
} OpKind;

typedef enum { TK_INPUT, TK_WEIGHT, TK_ACT } TensorKind;

/* How a tensor's elements lie in memory (passes/choose_layouts.c): plain row-major, or, for an activation
   [N, C, H, W] with C a multiple of 16, channel-blocked [N][C/16][H][W][16] (runtime/kernels/nnk_conv_nchwc.h). */
typedef enum { LAYOUT_PLAIN, LAYOUT_NCHW16C } Layout;

/* What a tensor's elements mean. Every tensor is stored as floats: a boolean as 0 or 1 (a comparison's
   result; arithmetic reads it as those numbers, as PyTorch promotes bool), an index as an exact integer
   (an I64/I32 buffer of the weights file, converted and range-checked on load: see index_limit). */
typedef enum { DT_F32, DT_BOOL, DT_INDEX } DType;

/* An attention's attn_mask (Attrs.mask), as the kernels' NNK_MASK_*: added to the scores, or a boolean that
   keeps the keys where it is true (scaled_dot_product_attention) or masks them (nn.MultiheadAttention). */
enum { MASK_NONE, MASK_ADD, MASK_KEEP, MASK_DROP };

typedef struct Op Op;

typedef struct Tensor {
    int id;
    TensorKind kind;
    const char *name;        /* input name, weight key, or a readable name for an activation */
    int rank;
    int64_t dims[MAX_RANK];
    Op *producer;            /* NULL for inputs and weights */
    int uses;                /* number of op inputs that read it, plus 1 if a model output */
    Loc loc;
    bool derived;            /* a weight computed at load time (a folded bias), not read from the file */
    Layout layout;           /* LAYOUT_PLAIN but where choose_layouts blocked it */
    DType dtype;
    int64_t index_limit;     /* DT_INDEX: every value must be in [0, index_limit) (the smallest axis it indexes), checked on load */
    /* memory plan (plan_memory.c) */
    int64_t offset;          /* bytes into the arena; -1 until planned */
    struct Tensor *view_of;  /* a free reshape or contiguous slice: shares that tensor's memory... */
    int64_t view_offset;     /* ...starting this many bytes in */
    struct Tensor *inplace_of;   /* an elementwise op's output written over its input */
    int ref_id;              /* the tensor of the graph as elaborated whose value this one holds (--bisect):
                                its own id, or, after a pass replaced one tensor by another, the one replaced */
} Tensor;

/* Attributes of every op kind in one struct: each kind reads the fields its shape rule set. */
typedef struct {
    int kernel[2], stride[2], pad[4], dilation[2], groups;   /* conv2d, pools: pad is top, left, bottom, right */
    int axis;                                                /* softmax, concat, slice, pad */
    int64_t start, step;                                     /* slice */
    int64_t before, after;                                   /* pad */
    double value;                                            /* pad value; the scalar of OPK_SCALAR */
    double lo, hi;                                           /* clamp: the bounds (-inf, inf when not given); where: its
                                                                numbers; arange: lo is the step (value the start) */
    int scalars;                                             /* where: 1 if its first operand is the number lo, 2 if the second is hi */
    int reduce;                                              /* OPK_REDUCE: OPK_SUM, OPK_MEAN, OPK_MAX or OPK_MIN */
    bool ceil_mode, count_include_pad;                       /* pools: PyTorch's flags */
    Operator binop;                                          /* OPK_SCALAR: ADD, SUB, MUL, DIV */
    bool scalar_first;                                       /* OPK_SCALAR: s OP x rather than x OP s */
    double eps;
    int heads;
    bool causal;
    int mask;                                                /* attention: an attn_mask, the last input (NNK_MASK_*: 0 none) */
    ActKind act;                                             /* an activation op: what it runs (gelu: GELU or GELU_TANH) */
    int perm[MAX_RANK];                                      /* transpose */
    bool has_bias;                                           /* conv2d, linear */
    /* epilogue of conv2d and linear (fuse_epilogue.c): y = act2(act1(x*w + b) + residual) */
    ActKind act1, act2;                                      /* ACT_NONE for none */
    int residual;                                            /* index in `in` of the residual, or 0 for none */
} Attrs;

/* ---------------------------------------------------------------- targets and kernels (passes/select_kernels.c) */

/* A row of runtime/kernels/nnk_ukernels.def. */
typedef struct {
    const char *family, *isa, *name;
    int mr, nr;
} Ukernel;

/* A row of targets.def. */
typedef struct {
    const char *name, *isa, *macros, *cflags, *about;
} Target;

const Target *target_named(const char *name);   /* "native" is the host's best; NULL if unknown */
const Target *target_native(void);
extern const Target targets[];                  /* ends with a row of NULL name */

/* How an op is computed, chosen by select_kernels for the target; emitters only print it. */
typedef enum {
    IMPL_NONE,       /* no code: a view, or an op of no cost */
    IMPL_LOOP,       /* its one kernel of runtime/kernels (elementwise, pools, norms, ...) */
    IMPL_DIRECT,     /* depthwise conv2d of more taps than nnk_dwconv.h takes: the direct loop nest, threads by groups */
    IMPL_DWCONV,     /* conv2d, depthwise or few channels a group: nnk_dwconv.h's vectorised rows, threads by channels */
    IMPL_GEMM,       /* the blocked product of nnk_gemm.h on a micro-kernel */
    IMPL_DOT,        /* linear with fewer rows than the tile: one sum over the row per output (nnk_gemv.h) */
    IMPL_BLOCKED,    /* attention: blocked products and a laned softmax, in stages on the threads */
    IMPL_SERIAL,     /* attention with too many keys for a thread's scratch: one thread */
    IMPL_NCHWC,      /* conv2d on channel-blocked activations: the direct tiles of nnk_conv_nchwc.h */
} ImplFamily;

typedef enum { SPLIT_NONE, SPLIT_PIXELS, SPLIT_CHANNELS, SPLIT_GROUPS, SPLIT_FEATURES, SPLIT_BATCH, SPLIT_RUNS } SplitKind;

typedef struct {
    ImplFamily family;
    const Ukernel *uk;       /* IMPL_GEMM and IMPL_BLOCKED: the micro-kernel (a grouped conv2d: one product a group) */
    SplitKind split;         /* how the threads share it */
    int pack_width;          /* >0: the weights are rearranged once at load into strips of this width,
                                and the threads split them at strip edges */
    bool pack_nchwc;         /* IMPL_NCHWC: the weight is rearranged once at load for its tiles (nnk_pack_conv_nchwc) */
    bool pack_gemv;          /* IMPL_DOT: the weight is rearranged once at load into panels of NNK_GEMV_W features
                                (nnk_pack_gemv), and the threads split it at panel edges */
    int winograd;            /* IMPL_NCHWC: 0, or by Winograd's F(m x m, 3x3), m = 4 or 2 (nnk_winograd.h); the packed
                                weight is 4x or 16/9 as large */
    int tap0[2], taps[2];    /* IMPL_NCHWC, taps[0] > 0: only the window of taps[0] x taps[1] taps from tap0 ever reads the
                                input (the others read only its zero padding), and the layer runs as that window
                                (nnk_pack_conv_taps) */
    int64_t scratch_floats;  /* arena memory the op needs while it runs (attention's Q|K|V) */
    int64_t thread_scratch;  /* floats each thread needs (packed blocks, a row of scores) */
} Impl;

struct Op {
    int id;
    OpKind kind;
    Vec in;                  /* of Tensor*: activations first, then weights */
    Tensor *out;
    Attrs a;
    const char *label;       /* the `as` path of the call that made it, if any */
    Loc loc;
    const CallFrame *chain;  /* the block calls around it */
    int64_t scratch_offset;  /* bytes into the arena of the kernel's scratch memory, if it needs any */
    Impl impl;               /* select_kernels.c */
};

/* A weight transformation done once after loading (passes/fold_bn.c): batch norm folded into the
   weights and bias of the layer before it. */
typedef struct {
    Tensor *weight, *bias;                     /* of the conv2d or linear, rewritten in place */
    Tensor *gamma, *beta, *mean, *var;         /* of the batch norm */
    double eps;
    bool bias_from_file;                       /* the layer had a bias of its own (else it starts at 0) */
} BnFold;

typedef struct {
    const char *name;        /* the model's name */
    Vec inputs;              /* of Tensor* */
    Vec outputs;             /* of Tensor* */
    Vec weights;             /* of Tensor*, in creation order */
    Vec ops;                 /* of Op*, in a valid execution order */
    Vec tensors;             /* of Tensor*, all of them */
    Vec folds;               /* of BnFold*: done at load time, in order */
    int64_t arena_bytes;     /* after plan_memory */
    int64_t lower_bound;     /* the largest total of simultaneously live bytes */
    int peak_op;             /* the op at which that total is reached */
    const Target *target;    /* what the kernels are chosen for (NULL until select_kernels: native) */
} Graph;

typedef struct {
    const char *name;
    bool user;               /* callable from .net source */
    const char *signature;
    unsigned props;          /* OPF_* */
    ActKind act;             /* the activation it runs (before the gelu's approximate= is known) */
} OpInfo;
extern const OpInfo op_info[OPK_COUNT];

Graph *new_graph(const char *name);
Tensor *new_tensor(Graph *g, TensorKind kind, const char *name, int rank, const int64_t *dims, Loc loc);
Op *new_op(Graph *g, OpKind kind, Loc loc, const CallFrame *chain);
void op_add_input(Op *op, Tensor *t);
Tensor *op_set_output(Graph *g, Op *op, int rank, const int64_t *dims);
int64_t tensor_numel(const Tensor *t);
int64_t tensor_bytes(const Tensor *t);
char *shape_text(int rank, const int64_t *dims);   /* "[1, 3, 224, 224]" */
int64_t graph_weight_floats(const Graph *g);
void graph_recount_uses(Graph *g);
Op *sole_consumer(const Graph *g, const Tensor *t);   /* the one op reading t, if t is not an output */
bool is_graph_output(const Graph *g, const Tensor *t);
void graph_replace_uses(Graph *g, Tensor *from, Tensor *to);
void graph_remove_dead_ops(Graph *g);                 /* ops whose result nothing reads */
void graph_kill_op(Op *op);                           /* made redundant by a pass: it reads nothing now */
bool op_is_view(const Op *op);                        /* its result is a view of its input (no code; an in-place op is not) */
bool verify_graph(const Graph *g);
/* diag.c: nnc's own bug (a missing table row, an inconsistent graph): a message naming op, exit status 3 */
_Noreturn void internal_error(const Op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void matmul_operands(const Tensor *a, const Tensor *b, Tensor *a2, Tensor *b2);                 /* invariants; prints what is broken */

/* ---------------------------------------------------------------- elaboration (elaborate.c, shape.c) */

typedef struct {
    const char *name;
    const char *value;       /* source text of a constant expression */
    bool used;
} Define;

typedef struct {
    Vec defines;             /* of Define*: -D NAME=VALUE */
    const char *model;       /* --model, or NULL */
    int max_call_depth;
    int64_t max_ops;
    int64_t max_steps;       /* loop iterations and block calls (default 10 million) */
} ElabOptions;

Graph *elaborate(Vec *decls, ElabOptions *opts);

/* A builtin call being built: what shape.c's build functions see. The arguments are already bound to
   the op's signature (ops.def) and type-checked; accessors read them by parameter index. */
typedef struct Value Value;
typedef struct Elab Elab;
typedef struct {
    Elab *E;
    Graph *g;
    OpKind kind;
    Loc loc;                 /* the whole call */
    Value **args;            /* in signature order; NULL where not given and no default */
    Loc *arg_locs;
    const char *label;       /* the weight prefix from `as`, or NULL */
    const CallFrame *chain;
} Call;

Tensor *call_tensor(Call *c, int i);
int64_t call_int(Call *c, int i);
double call_float(Call *c, int i);
bool call_bool(Call *c, int i);
const char *call_str(Call *c, int i);
bool call_given(Call *c, int i);
bool call_is_tensor(Call *c, int i);                      /* a `scalar` argument given as a tensor */
int call_axes(Call *c, int i, int64_t out[MAX_RANK]);     /* `axes`: an int or a list; their count */
int call_ints(Call *c, int i, int64_t *out, int max);     /* list length, or -1 if longer than max */
void call_pair(Call *c, int i, int out[2]);               /* `pair`: an int or [h, w] */
void call_pad(Call *c, int i, int out[4]);                /* `pad`: top, left, bottom, right */
int call_tensors(Call *c, int i, Tensor **out, int max);
void call_error(Call *c, int arg, const char *fmt, ...) __attribute__((format(printf, 3, 4)));   /* arg -1: the call */
Tensor *call_weight(Call *c, const char *suffix, int rank, const int64_t *dims);  /* NULL on error (reported) */
Op *call_op(Call *c, OpKind kind);                        /* a new op at the call's location */
Tensor *call_output(Call *c, Op *op, int rank, const int64_t *dims);   /* NULL if the shape is refused */
Tensor *call_build(Call *c, OpKind kind, Value **args, int nargs);  /* lower to another builtin */
Value *tensor_value(Tensor *t);
Value *int_value(int64_t v);
Value *float_value(double v);
Value *ints_value(int n, const int64_t *v);
Value *bool_value(bool b);
Value *list_value(int n, Value **items);

/* ---------------------------------------------------------------- passes and emitters */

typedef struct {
    int opt_level;
    int threads;
    bool main_program;
    const char *weights_path;    /* for --embed-weights */
    bool embed_weights;
    int embed_dtype;             /* the embedded weights' type: EMBED_F32, EMBED_F16, EMBED_BF16 (--embed-weights=) */
    const char *weights_bin_path;   /* --embed-weights: the file of their bytes for the assembler (.incbin), or NULL */
    const char *weights_inc_path;   /* ...and that of the same as a C array, written there (NULL: in the C) */
    const char *weights_inc_name;   /* ...as the C #includes it */
    const char *source_path;
    const char *header_name;     /* "resnet50.h" */
    bool dumps;                  /* a hook that sees every op's result (NAME_on_dump; --bisect builds with it) */
    const char *break_op;        /* tests of --bisect: this op's result is perturbed on purpose (its `as` name or kindN) */
    /* --emit-test: what the reference evaluator computed for the program's pseudo-random inputs, per output,
       and how far the program's outputs may be from it */
    double **test_expected;
    double *test_tolerance;
} EmitOptions;

enum { EMBED_F32, EMBED_F16, EMBED_BF16 };

/* passes/: each takes the graph and rewrites it; each keeps what it computes the same. */
void pass_dce(Graph *g);               /* dead ops and common subexpressions */
void pass_fold_bn(Graph *g);           /* batch norm into the conv2d / linear before it */
void pass_fuse_epilogue(Graph *g);     /* activation and residual add into conv2d / linear */
void pass_fold_shapes(Graph *g);       /* free slices and transposes become views */
void pass_fuse_attention(Graph *g);    /* softmax(q @ kT * s) @ v becomes one attention op */
void pass_choose_layouts(Graph *g);    /* channel-blocked activations between the convolutions that can use them */
void pass_select_kernels(Graph *g);    /* each op's implementation for g->target (at every -O level) */
const char *impl_text(const Op *op);   /* "gemm nnk_f32_gemm_ukernel_8x48__avx512f, packed 8, by pixels" */
void run_passes(Graph *g, int opt_level);
extern bool plain_layouts;             /* --no-blocked-layout: every tensor plain (choose_layouts does not run) */
extern bool no_winograd;               /* --no-winograd: 3x3 convolutions by the direct tiles only */
extern const char *dump_after_pass;    /* --dump-after: print the IR after this pass ("all": each), or NULL */
extern const char *const pass_names[]; /* NULL-terminated */

void plan_memory(Graph *g);
bool verify_memory_plan(const Graph *g);
void emit_ir(FILE *out, const Graph *g);
void emit_dot(FILE *out, const Graph *g);
void emit_weight_list(FILE *out, const Graph *g);
bool op_has_emitter(OpKind kind);     /* false for rows of ops.def that lower to other ops */
bool emit_c(const Graph *g, const EmitOptions *opts, Buf *c_file, Buf *h_file);

/* build.c: the C written to a temporary directory and built into the program `output` with $CC $CFLAGS
   (default clang -O2 and the target's -march). 0, or the exit status after the message. */
int build_c_program(const char *output, const char *header_name, const Target *target, const char *c_text, const char *h_text);
const char *nnc_cflags(void);   /* `nnc --cflags`: -I of the runtime next to this nnc */
const char *nnc_libs(void);     /* `nnc --libs`: its libnnrt.a, -lm, -lpthread */

struct RefOptions;
/* bisect.c: `nnc FILE.net --bisect`: ref is the graph as elaborated, opt a second elaboration of it that
   is optimised, built with per-op dumps and run; the first op whose result leaves its tolerance of the
   reference is reported. Returns the exit status (0 when every op agrees). */
int bisect_main(Graph *ref, Graph *opt, const Target *target, const EmitOptions *emit, const struct RefOptions *o);
/* The relative tolerance of every tensor of a graph as elaborated (by tensor id), as --bisect judges. */
double *reference_tolerances(const Graph *g);

#endif
