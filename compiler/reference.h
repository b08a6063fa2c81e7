/*
 * reference.h — nnc's reference evaluator: the elaborated graph (before any pass, the graph that -O0
 * builds) run by plain loop nests in double precision, sharing no code with runtime/kernels.
 *
 * It is the yardstick for the optimised code: `nnc FILE.net --reference` runs a model with it, and the
 * tests compare it with PyTorch and with the programs nnc generates. Every tensor is held in double;
 * weights and inputs are float32 values (read by the runtime's own loaders) widened exactly, and the
 * outputs are rounded to float32 only when written.
 */
#ifndef NNC_REFERENCE_H
#define NNC_REFERENCE_H

#include "nnc.h"

/* The command line of `nnc FILE.net --reference` (main.c fills it). */
typedef struct RefOptions {
    const char *weights;     /* --weights: a safetensors file; may be NULL for a model without weights */
    Vec inputs;              /* of const char *: --input, one per model input in order, or none */
    Vec outputs;             /* of const char *: --output, one per model output in order (fewer: the rest are summarised) */
} RefOptions;

/* Loads the weights, reads (or generates, as the --main program does) the inputs, evaluates the graph and
   writes or summarises the outputs. Messages are one line, `nnc: error: ...`. Returns the exit status:
   0, 1 (the weights, an input file or the evaluation failed), or 2 (a usage problem, a file that cannot be
   read or written). */
int reference_main(const Graph *g, const RefOptions *o);

/* The weights of o->weights and the inputs of o->inputs (or the generated program's pseudo-random ones) into
   vals, by tensor id, as reference_main reads them: -1 when done, else the exit status (the message printed). */
int reference_load(const Graph *g, const RefOptions *o, double **vals);

/* The evaluator itself. vals is indexed by tensor id; the caller sets vals[id] for every input and weight
   of g (numel doubles each, row-major). Each op's output is computed into a new malloc'ed array in
   vals[out->id]. With keep_all false, an intermediate is freed (and its slot set to NULL) after its last
   reader, except the model's outputs; with keep_all true every op's output stays (for per-op comparison).
   Returns false with a one-line message in err (out of memory, an op kind it cannot evaluate). */
bool reference_eval(const Graph *g, double **vals, bool keep_all, char *err, size_t err_size);

#endif
