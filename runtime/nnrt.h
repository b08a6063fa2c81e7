/* nnrt.h — the runtime library that every nnc-generated program links against.
 *
 * A generated program is one C file holding the model's forward pass; everything it needs beyond the
 * kernels lives here: loading weights from a safetensors file into the model's single weight block,
 * reading and writing the --input/--output tensor files, a persistent thread pool for the kernels,
 * and small utilities (errors, timing, reproducible random inputs).
 *
 * Conventions:
 *  - Functions that can fail return 0 on success and -1 on failure, filling an nnrt_error with a
 *    one-line message that names what was wrong (the file, the weight key, expected vs found).
 *    Nothing here prints or exits: the caller decides what to do with the message.
 *  - Only libc, libm and pthreads are used, so a generated program builds anywhere with a C11 compiler.
 *  - Files are little-endian whatever the host: every multi-byte value is read and written byte by byte
 *    (the helpers at the end of this header), which compilers turn into plain loads on little-endian hosts.
 *  - Memory is allocated only while loading (nnrt_load_safetensors, nnrt_pool_create); the run-time path
 *    (nnrt_pool_run) never allocates.
 *
 * Switches for bare metal and RTOSes, each a -D the user sets when compiling the runtime (and the generated
 * file, which includes this header); any combination works:
 *   NNRT_NO_THREADS  no pthreads and no atomics: a pool runs every task on the caller, or on the user's own
 *                    threads through nnrt_set_thread_hooks (below)
 *   NNRT_NO_FILES    no open/mmap/write: nnrt_map_file, nnrt_read_tensor_file and nnrt_write_tensor_file fail
 *                    with "built without files (NNRT_NO_FILES)"; weights load from memory
 *                    (nnrt_load_safetensors, NAME_load_memory, embedded weights)
 *   NNRT_NO_STDIO    no printf family and no other libc beyond memcpy and memset: messages are formatted by the
 *                    runtime itself (%s %c %d %i %u %x with l ll z j t, width and precision: the same text),
 *                    JSON numbers converted by it (integers exactly, as always; other numbers correctly
 *                    rounded when they have at most 15 significant digits and |exponent| <= 22, otherwise
 *                    within a few ulp); program.c (the --main program) compiles to nothing, and
 *                    nnrt_profile_report prints nothing
 *   NNRT_NO_CLOCK    nnrt_now_ms returns 0 (no POSIX clock; --profile times are then 0)
 *   NNRT_NO_MALLOC   no malloc/free: the runtime's heap (nnrt_alloc) is empty until nnrt_set_allocator or
 *                    nnrt_set_allocator_buffer gives it memory, so loading a safetensors image fails with
 *                    "out of memory" until then; pools of NNRT_NO_THREADS need none
 * With all five, the runtime's objects need from libc only memcpy, memset and (through the kernels) libm,
 * plus the compiler's own support library (libgcc: __aeabi_* on ARM). The POSIX parts define
 * _POSIX_C_SOURCE themselves, so every file builds with plain -std=c11.
 */
#ifndef NNRT_H
#define NNRT_H

#include <stddef.h>
#include <stdint.h>

#define NNRT_MAX_RANK 8

/* Filled on failure: NUL-terminated, one line, no trailing newline. */
typedef struct { char msg[1024]; } nnrt_error;

/* ---- Weights (weights.c) ---------------------------------------------------------------------- */

/* A weight the generated model expects: its key, shape, and where its floats go in the model's weight block. */
typedef struct {
    const char *key;
    int rank;
    int64_t dims[NNRT_MAX_RANK];
    size_t offset;              /* in floats, into dst */
} nnrt_weight_spec;

typedef void (*nnrt_warn_fn)(void *user, const char *msg);

/* Parse a safetensors image (data, size) and copy every spec'ed tensor into dst + spec.offset, converting
 * F16 and BF16 to F32. The whole header and every spec are checked before anything is copied, so on failure
 * dst is untouched. Errors (each naming the key and the expected vs found value): header length past the end
 * of the file or over 100 MiB; header not valid JSON, not an object, or an entry without a string "dtype", a
 * "shape" of non-negative integers, or "data_offsets" [begin, end] inside the data section and spanning exactly
 * numel * dtype size bytes; two tensors' byte ranges overlapping; duplicate keys; a spec'ed key missing, with
 * another shape, or of a dtype other than F32/F16/BF16. "__metadata__" is ignored, and so are the dtypes of
 * keys no spec uses (an unknown dtype only skips the size check). Each unused key is reported through
 * warn(user, "unused weight 'KEY'") when warn != NULL. Never reads outside data[0..size); data may be unaligned.
 * Returns 0 on success, -1 with err filled. */
int nnrt_load_safetensors(const void *data, size_t size, const nnrt_weight_spec *specs, size_t nspecs,
                          float *dst, nnrt_warn_fn warn, void *user, nnrt_error *err);

/* The same, where index_limits[i] > 0 makes spec i an integer index tensor (dtype I64 or I32, not a float one):
 * each value must be in [0, index_limits[i]) (below 2^24), else an error names the key and the first value out of
 * range; the values are stored as exact floats. index_limits may be NULL (every spec a float weight). */
int nnrt_load_safetensors_indexed(const void *data, size_t size, const nnrt_weight_spec *specs, size_t nspecs,
                                  const int64_t *index_limits, float *dst, nnrt_warn_fn warn, void *user, nnrt_error *err);

/* Exact conversions of IEEE half precision and bfloat16 to float (subnormals, infinities and NaN payloads kept). */
float nnrt_f16_to_f32(uint16_t h);
float nnrt_bf16_to_f32(uint16_t b);

/* ---- Files (tensorio.c) ----------------------------------------------------------------------- */

/* Read-only whole-file mapping. An empty file maps to size 0 with data NULL, and unmapping it is a no-op. */
typedef struct { void *data; size_t size; } nnrt_file;
int nnrt_map_file(const char *path, nnrt_file *f, nnrt_error *err);   /* error names the path and strerror */
void nnrt_unmap_file(nnrt_file *f);

/* Tensor files for the generated program's --input/--output, chosen by extension.
 * ".npy": NumPy format, header versions 1.0, 2.0 and 3.0, fortran_order False, dtype '<f4'; '<f8' is also
 *   read (rounded to float) because NumPy creates float64 arrays by default. Its shape must equal dims exactly.
 *   Written files are version 1.0, '<f4'.
 * anything else: raw little-endian f32, exactly prod(dims) * 4 bytes.
 * Errors name the path and the expected vs found shape or byte count. */
int nnrt_read_tensor_file(const char *path, float *dst, int rank, const int64_t *dims, nnrt_error *err);
/* The .npy parser of nnrt_read_tensor_file, on bytes in memory (same checks and messages). */
int nnrt_parse_npy(const void *data, size_t size, float *dst, int rank, const int64_t *dims, nnrt_error *err);
int nnrt_write_tensor_file(const char *path, const float *src, int rank, const int64_t *dims, nnrt_error *err);

/* ---- Utilities (util.c) ----------------------------------------------------------------------- */

/* Deterministic fill, uniform in [-1, 1): dst[i] comes from the i-th output of splitmix64 seeded with seed
 * (its top 24 bits, so every value is exact in float and the stream is the same on every platform). */
void nnrt_fill_random(float *dst, size_t n, uint64_t seed);
double nnrt_now_ms(void);                                      /* monotonic clock in milliseconds */

/* printf-style into err->msg; truncates safely (ending in "..."), and turns control characters such as
 * newlines (which may come from keys in a file) into spaces so the message stays on one line.
 * err may be NULL. */
void nnrt_seterr(nnrt_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Writes "[d0, d1, ...]" ("[]" for rank 0) into buf, truncating safely, and returns buf so that it can be
 * used directly as a printf argument. */
const char *nnrt_format_shape(char *buf, size_t size, int rank, const int64_t *dims);

/* Number of elements of a shape: 0 on success, -1 if a dim is negative, rank is outside 0..NNRT_MAX_RANK,
 * or the count (or its size in bytes as floats) does not fit in size_t. */
int nnrt_shape_numel(int rank, const int64_t *dims, size_t *numel);

/* ---- The runtime's heap (util.c) -------------------------------------------------------------- */

/* Where nnrt_load_safetensors (its JSON tree and key tables, all released before it returns) and the thread
   pool of a pthreads build take memory. alloc(user, size) returns memory aligned for any type (max_align_t)
   or NULL; release(user, p) takes back what alloc gave. By default malloc and free, or nothing under
   NNRT_NO_MALLOC. nnrt_set_allocator(NULL) restores the default. Set it before loading, not during. */
typedef struct {
    void *(*alloc)(void *user, size_t size);
    void (*release)(void *user, void *p);
    void *user;
} nnrt_allocator;
void nnrt_set_allocator(const nnrt_allocator *a);
/* The heap becomes buf[size]: blocks are taken from it one after the other, and it is reused from its start
   once everything taken has been released (so one load after another needs no more than the largest).
   Loading a safetensors image needs about 1.1 KB per tensor on a 64-bit host (ResNet-18's 128 tensors:
   140 KB), somewhat less on a 32-bit one, and a model's NAME_load then takes a copy of its largest packed
   weight while it rearranges the weights (embedded weights need neither); nnrt_allocator_buffer_peak tells
   the most used so far. */
void nnrt_set_allocator_buffer(void *buf, size_t size);
size_t nnrt_allocator_buffer_peak(void);
void *nnrt_alloc(size_t size);    /* from the allocator above; NULL when it has none or is out of memory */
void nnrt_release(void *p);       /* NULL is a no-op */

/* ---- Thread pool (threads.c) ------------------------------------------------------------------ */

/* Persistent thread pool. Workers are created once; nnrt_pool_run does not allocate. nthreads <= 1 creates
 * no threads and runs tasks inline. fn(arg, task) is called exactly once for each task = 0..ntasks-1, spread
 * over the calling thread plus the workers; nnrt_pool_run returns when all are done, and everything the
 * tasks wrote is then visible to the caller. One thread at a time may call nnrt_pool_run, and tasks must not
 * call it themselves. */
typedef struct nnrt_pool nnrt_pool;
nnrt_pool *nnrt_pool_create(int nthreads);                     /* NULL on failure */
void nnrt_pool_run(nnrt_pool *p, int ntasks, void (*fn)(void *arg, int task), void *arg);
int nnrt_pool_threads(const nnrt_pool *p);                     /* threads that run tasks, caller included */
void nnrt_pool_destroy(nnrt_pool *p);                          /* NULL is a no-op */

/* Threads of the user's own, for an RTOS (or any scheduler): a parallel-for that calls fn(arg, task) exactly
   once for each task = 0..ntasks-1 on at most `threads` threads (the calling one included, which should take
   tasks too), and returns when all are done with everything they wrote visible to the caller. Results do
   not depend on which thread runs which task. Once hooks are set, nnrt_pool_create(n) makes pools of
   min(n, max_threads) threads (at most NNRT_HOOK_MAX_THREADS) whose runs call hooks->parallel (a run of
   one task, or a pool of one thread, calls fn directly), and starts no pthreads; without hooks, a pool of
   an NNRT_NO_THREADS build has one thread. Set them (or NULL, to go back) before creating the pools (the
   models) that are to use them, and not while one runs; the struct is copied. E.g. with FreeRTOS: workers
   blocked on a semaphore each, woken by parallel(), taking task numbers from a shared counter, and a
   counting semaphore to wait for them. */
#define NNRT_HOOK_MAX_THREADS 64
typedef struct {
    void (*parallel)(void *user, int threads, int ntasks, void (*fn)(void *arg, int task), void *arg);
    int max_threads;
    void *user;
} nnrt_thread_hooks;
void nnrt_set_thread_hooks(const nnrt_thread_hooks *hooks);

/* ---- Little-endian loads and stores, independent of the host's byte order --------------------- */

/* The instructions that the file including this was compiled to use and that the CPU running it lacks
   ("AVX-512F"), or NULL. A model checks it when it is created, so that a program built with
   -march=native on one machine refuses clearly on another instead of dying of SIGILL. */
static inline const char *nnrt_cpu_missing(void) {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
#if defined(__AVX512F__)
    if (!__builtin_cpu_supports("avx512f"))
        return "AVX-512F";
#endif
#if defined(__AVX2__)
    if (!__builtin_cpu_supports("avx2"))
        return "AVX2";
#endif
#if defined(__FMA__)
    if (!__builtin_cpu_supports("fma"))
        return "FMA";
#endif
#endif
    return NULL;
}

/* ---------------------------------------------------------------- the --main program (program.c) */

typedef struct {
    const char *name;        /* an input's name; NULL for an output */
    int rank;
    const int64_t *dims;
    long size;               /* elements */
} nnrt_tensor_desc;

/* What a generated file with --main tells the runtime's program about its model: the shapes, and its
   functions behind a `void *` model. */
typedef struct {
    const char *model;
    int n_inputs, n_outputs;
    const nnrt_tensor_desc *inputs, *outputs;
    int default_threads;
    const char *(*cpu_missing)(void);    /* nnrt_cpu_missing as the generated file was compiled */
    void *(*create)(int threads);
    int (*load)(void *m, const char *path);
    int (*load_embedded)(void *m);       /* NULL without --embed-weights: then --weights is required */
    void (*on_warning)(void *m, void (*fn)(void *user, const char *message), void *user);
    int (*run)(void *m, const float *const *in, float *const *out);
    const char *(*last_error)(const void *m);
    void (*profile)(void *m, int on);
    void (*profile_report)(const void *m, int runs);
    void (*destroy)(void *m);
    /* built for nnc --bisect only (else NULL): calls fn with every op's result as it is computed */
    void (*on_dump)(void *m, void (*fn)(void *user, int op, const float *y, long n), void *user);
    /* built with nnc --emit-test only (else NULL): --self-test's expected outputs and their tolerances */
    const float *const *expected;
    const double *tolerance;
} nnrt_program;

/* The whole program: parses the options, loads, runs, benchmarks, writes. Returns the exit status. */
int nnrt_main(int argc, char **argv, const nnrt_program *p);
/* The same after the options: what nnrt_main runs (runs 0: no benchmark; self_test: the outputs are compared
   with p->expected instead of written, 0 when all are within tolerance). */
int nnrt_run_program(const nnrt_program *p, const char *weights, const char *const *inputs, int n_in, const char *const *outputs,
                     int n_out, int threads, int runs, int profile, const char *dump_dir, int self_test);

/* Per-op name and floating-point work, and the --profile table made of them and their times. */
typedef struct {
    const char *name;
    double flops;
} nnrt_op_info;
void nnrt_profile_report(const nnrt_op_info *ops, const double *op_ms, int n, int runs);

/* ---------------------------------------------------------------- what a model does to its weights once */

/* A batch norm folded into the conv2d or linear before it: offsets (in floats) into the weight block of the
   layer's weight and bias and of the norm's weight, bias, running mean and variance (nnk_fold_batchnorm). */
typedef struct {
    long weight, bias, gamma, beta, mean, var;
    int channels;
    long per_channel;
    float eps;
} nnrt_bn_fold;

/* A weight rearranged into strips of `width` rows for the blocked products (nnk_pack_weight). */
typedef struct {
    long at;
    int rows;
    long cols;
    int width;
} nnrt_packing;

/* ---------------------------------------------------------------- ops on the thread pool */

/* A parallel op's pointers: its output, up to 6 inputs and the threads' scratch. */
typedef struct {
    float *y;
    const float *in[6];
    float *scratch;
} nnrt_op_args;

/* Runs fn(args, part, parts) for every part of the pool's thread count, one part per thread. */
void nnrt_run_parallel(nnrt_pool *pool, void (*fn)(const nnrt_op_args *a, int part, int parts), const nnrt_op_args *args);

static inline uint16_t nnrt_load_le16(const unsigned char *p) {
    return (uint16_t)(p[0] | p[1] << 8);
}
static inline uint32_t nnrt_load_le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t nnrt_load_le64(const unsigned char *p) {
    return (uint64_t)nnrt_load_le32(p) | (uint64_t)nnrt_load_le32(p + 4) << 32;
}
static inline void nnrt_store_le32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

#endif
