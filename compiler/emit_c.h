/*
 * emit_c.h — what the parts of the C emitter share (not for the rest of nnc, which calls emit_c()).
 *
 *   emit_c.c        the driver: names, pointers, specialised functions, the file's layout, lifecycle
 *   emit_ops.c      one emitter per op kind (the EMIT column of ops.def), printing what select_kernels chose
 *   emit_header.c   the header: shapes, sizes and the API
 *   emit_embed.c    --embed-weights: the weights checked, folded and packed at compile time
 *   emit_program.c  --main: the model's description for the runtime's program (runtime/program.c)
 */
#ifndef EMIT_C_H
#define EMIT_C_H

#include "nnc.h"

typedef struct {
    const char *name;
    int64_t offset;          /* in floats */
} ArenaEntry;

/* --embed-weights=f16|bf16: where each op widens the weights it reads, in floats from the arena's end
   (STAGE_AT in the generated C); each op's weights start again at 0, so the stage is the largest op's. */
typedef struct {
    int op;                  /* the op being emitted */
    int *op_of;              /* tensor id -> 1 + the op whose stage holds it */
    int64_t *at;             /* tensor id -> its offset in that stage */
    int64_t used, floats;    /* the current op's floats, the largest op's */
} Stage;

typedef struct {
    const Graph *g;
    const EmitOptions *o;
    const char *id;          /* C identifier of the model: "resnet50" */
    const char *ID;          /* the same in capitals, for macros */
    Buf fns;                 /* specialised functions */
    Buf body;                /* forward() */
    Vec fn_keys, fn_names;   /* dedup of specialised functions by their text */
    int per_kind[OPK_COUNT];
    int64_t *weight_at;      /* tensor id -> offset in floats into the weight block */
    const char **weight_name;   /* tensor id -> its offset's name in the generated C (w_NAME), or NULL */
    int64_t weight_floats;
    double *flops;           /* per op */
    bool parallel;           /* some op runs on the thread pool */
    bool gemm;               /* some op runs on nnk_gemm, whose threads each need scratch */
    bool small_groups;       /* some conv2d has groups within a block (nnk_conv_nchwc_small_groups) */
    long long scratch_floats;   /* ...this much (SCRATCH_FLOATS in the generated C), */
    const char *scratch_expr;   /* ...written with the runtime's macros */
    bool tile;               /* some op's numbers assume the micro-kernel's tile (NNK_MR x NNK_NR) */
    Vec packed;              /* of Packed*: weights that prepare() rearranges for nnk_gemm */
    const char **arena_name; /* tensor id -> its arena offset's name (a_NAME), once used */
    const char **scratch_name;   /* op id -> the name of its scratch's offset, once used */
    Vec arena_entries;       /* of ArenaEntry*: the names of arena offsets, in the order of first use */
    Vec arena_taken;         /* the names given, weights' included, so that none repeats */
    Stage *stage;            /* 16-bit embedded weights, or NULL */
    int64_t *slot_floats;    /* tensor id -> the floats of its slot among the weights: its own, or more for a
                                convolution weight packed for Winograd (4x) or for groups under 16 channels */
    long long arena_total;   /* NAME_ARENA_BYTES: the plan's arena, and the stage after it */
} Emitter;


/* A weight that prepare() rearranges (nnk_pack_weight), and the strip width nnk_gemm reads it with:
   NNK_MR rows of a convolution's A, NNK_NR columns of a linear layer's B. */
typedef struct {
    const Tensor *w;
    int width;               /* strips of this width (nnk_pack_weight), or 0: */
    int nchwc;               /* a conv2d weight for the blocked tiles (nnk_pack_conv): NNK_PACK_BLOCKED, _PLAIN, _WINOGRAD */
    int groups;              /* ...of the conv2d */
    bool gemv;               /* a linear weight in panels for nnk_linear_gemv (nnk_pack_gemv) */
    const Op *window;        /* a conv2d run as a window of its taps (its Impl.taps; nnk_pack_conv_taps), or NULL */
} Packed;

/* How prepare() rearranges a packed weight: each kind its own table and call. */
typedef enum { PACK_STRIPS, PACK_CONV, PACK_CONV_WINDOW, PACK_GEMV } PackKind;
static inline PackKind pack_kind(const Packed *p) {
    return p->gemv ? PACK_GEMV : p->window ? PACK_CONV_WINDOW : p->nchwc ? PACK_CONV : PACK_STRIPS;
}

typedef void EmitFn(Emitter *e, const Op *op);
EmitFn *emitter_of(OpKind kind);             /* emit_ops.c: the emitter of ops.def's EMIT column, or NULL */
void emit_header(Emitter *e, Buf *h);        /* emit_header.c */
bool emit_embedded(Emitter *e, Buf *c);      /* emit_embed.c: false (reported) when the weights do not fit */
void emit_main(Emitter *e, Buf *c);          /* emit_program.c */

/* emit_c.c and the others: names, pointers and calls */
char *c_ident(const char *s);
const char *input_ident(const Tensor *t);
int output_index(const Graph *g, const Tensor *t);
const char *output_name(const Graph *g, int i);
const char *wref(const Emitter *e, const Tensor *t);
const char *unique_ident(Vec *taken, const char *text, const char *fallback);
void name_weights(Emitter *e);
const char *arena_name(Emitter *e, const Tensor *t);
const char *scratch_ref(Emitter *e, const Op *op, int64_t plus);
const char *ptr(Emitter *e, const Tensor *t);
const char *c_float(double v);
const char *shape_c(const Tensor *t);
int64_t prod(const Tensor *t, int from, int to);
const char *int_array(int n, const int64_t *v);
const char *specialise_stage(Emitter *e, const Op *op, const char *stage, const char *params, const char *body);
const char *specialise(Emitter *e, const Op *op, const char *params, const char *body);
const char *source_line(Loc loc);
void call_comment(Emitter *e, const Op *op);
void call_line(Emitter *e, const Op *op, const char *fn, const char *args);
const char *op_pointers(Emitter *e, const Op *op);
void simple_call(Emitter *e, const Op *op, const char *params, const char *body);
const char *upper(const char *s);
const char *woff(const Emitter *e, const Tensor *t);
long long largest_packed(const Emitter *e);   /* floats in the largest packed weight */
int conv_pack_how(const Op *op);              /* NNK_PACK_BLOCKED, _PLAIN or _WINOGRAD: how a blocked conv2d's weight is packed */
long long state_bytes(const Emitter *e);      /* NAME_STATE_BYTES: at least sizeof the model's struct */

#endif
