/* threads.c — a persistent pthread pool for the generated program's kernels, or the user's own threads.
 *
 * A forward pass runs many short parallel loops, one after another, so threads are created once, and
 * between loops they poll rather than sleep (a sleeping thread takes tens of microseconds to wake on a
 * virtual machine, a few times per layer). The protocol:
 *   - run publishes (fn, arg), then the task word: the task count and the next task, 0, in one atomic_uint
 *     (a release), and bumps the generation, which tells idle workers to look; then the caller itself
 *     takes tasks;
 *   - a thread takes a task by a fetch-add on the task word (an acquire): the count it reads with the index
 *     is the one published with it, so a task below the count is one of this run's, and only then does the
 *     thread read fn and arg (which run does not overwrite before all of its tasks are done); it counts
 *     each task it finishes in `done` (a release);
 *   - run returns when `done` reaches the count. It does not wait for the workers themselves: a worker that
 *     the host descheduled before it took a task (a virtual machine whose other core is busy elsewhere)
 *     holds nothing up, as the caller takes the tasks it left, and when it wakes it finds none, or the
 *     next run's.
 * A thread that has polled for POOL_SPINS pauses in vain sleeps on a condition variable (a worker between
 * runs, or the caller while a worker is descheduled in the middle of a task), and whoever changes what it
 * waits for wakes it. The task word and the counters are atomic_uint (32 bits: lock-free wherever there
 * are threads, 32-bit PowerPC and ARM included, so no -latomic): its upper 16 bits the count, its lower 16
 * the next task, so a run takes at most POOL_MAX_TASKS tasks at a time (more go in rounds), and the index
 * passes the count by at most one a thread. Tasks are claimed one at a time, so uneven tasks balance
 * themselves. The release and acquire pairs order everything a task writes before run returns, which is
 * also what ThreadSanitizer checks. Nothing here allocates after nnrt_pool_create.
 *
 * A pool on the user's threads (nnrt_set_thread_hooks), and every pool of an NNRT_NO_THREADS build, holds
 * nothing but its thread count: it is a static object, one per count, shared by every pool of that count
 * and never freed, so creating one needs no heap.
 */
#if !defined(NNRT_NO_THREADS) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "nnrt.h"

#include <stdbool.h>
#include <string.h>
#ifndef NNRT_NO_THREADS
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#endif

/* ---------------------------------------------------------------- the user's threads */

static nnrt_thread_hooks hooks;
static bool hooks_set;

void nnrt_set_thread_hooks(const nnrt_thread_hooks *h) {
    hooks_set = h != NULL && h->parallel != NULL;
    if (hooks_set)
        hooks = *h;
}

/* A pool that runs on the user's threads, or on the caller alone. */
typedef struct {
    int nthreads;
} hooked_pool;

#define HOOKED_1(n) {n}
#define HOOKED_8(n) HOOKED_1(n), HOOKED_1(n + 1), HOOKED_1(n + 2), HOOKED_1(n + 3), HOOKED_1(n + 4), \
                    HOOKED_1(n + 5), HOOKED_1(n + 6), HOOKED_1(n + 7)
static hooked_pool hooked_pools[NNRT_HOOK_MAX_THREADS] = {
    HOOKED_8(1), HOOKED_8(9), HOOKED_8(17), HOOKED_8(25), HOOKED_8(33), HOOKED_8(41), HOOKED_8(49), HOOKED_8(57),
};
#undef HOOKED_1
#undef HOOKED_8

/* The static pool for nthreads requested: min(nthreads, max_threads, NNRT_HOOK_MAX_THREADS) threads with
   hooks, 1 without. */
static hooked_pool *hooked_pool_for(int nthreads) {
    int n = 1;
    if (hooks_set) {
        n = nthreads;
        if (n > hooks.max_threads)
            n = hooks.max_threads;
        if (n > NNRT_HOOK_MAX_THREADS)
            n = NNRT_HOOK_MAX_THREADS;
        if (n < 1)
            n = 1;
    }
    return &hooked_pools[n - 1];
}

static void hooked_run(const hooked_pool *p, int ntasks, void (*fn)(void *arg, int task), void *arg) {
    if (ntasks <= 0)
        return;
    if (hooks_set && p->nthreads > 1 && ntasks > 1) {
        hooks.parallel(hooks.user, p->nthreads, ntasks, fn, arg);
        return;
    }
    for (int task = 0; task < ntasks; task++)
        fn(arg, task);
}

#ifdef NNRT_NO_THREADS

/* ---------------------------------------------------------------- no threads of the runtime's own */

struct nnrt_pool {
    hooked_pool h;
};

nnrt_pool *nnrt_pool_create(int nthreads) {
    return (nnrt_pool *)(void *)hooked_pool_for(nthreads);   /* a struct and its first member share an address */
}

void nnrt_pool_run(nnrt_pool *p, int ntasks, void (*fn)(void *arg, int task), void *arg) {
    hooked_run(&p->h, ntasks, fn, arg);
}

int nnrt_pool_threads(const nnrt_pool *p) {
    return p->h.nthreads;
}

void nnrt_pool_destroy(nnrt_pool *p) {
    (void)p;
}

#else

/* ---------------------------------------------------------------- pthreads */

#define POOL_MAX_THREADS 1024
#define POOL_TASK_BITS 16                                   /* the task word: count << 16 | next task */
#define POOL_MAX_TASKS ((1u << (POOL_TASK_BITS - 1)) - 1)   /* tasks a round: 32767, with room above for the index */

/* How long an idle thread polls before it sleeps: about 50 us to a few hundred (a pause is 10-150 cycles,
   depending on the CPU). A forward pass starts its next loop within microseconds of the last one, so
   workers never sleep inside a run; between runs they sleep after this. Every 64th poll yields the CPU,
   so that with more threads than cores the one being waited for gets to run. */
#define POOL_SPINS 20000

static inline void cpu_relax(int i) {
    if (i % 64 == 63) {
        sched_yield();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || (defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 7)
    __asm__ __volatile__("yield");
#endif
}

struct nnrt_pool {
    hooked_pool h;                /* first: a pool on the user's threads is only this */
    int nworkers;                 /* h.nthreads - 1 */
    pthread_t *workers;

    /* The run's job: written by run before it publishes the task word (a release), read by a thread only
       after it took one of the run's tasks from the word (an acquire), and not written again before every
       task is done. */
    void (*fn)(void *arg, int task);
    void *arg;

    atomic_uint tasks;            /* the task word: count << 16 | next unclaimed task (may pass the count) */
    atomic_uint done;             /* tasks of the current run finished */
    atomic_uint generation;       /* bumped once per run that uses the workers (compared, may wrap) */
    atomic_bool shutting_down;

    /* The slow path, for threads that polled in vain. */
    pthread_mutex_t lock;
    pthread_cond_t work_ready;    /* generation advanced, or shutting down */
    pthread_cond_t work_done;     /* done reached the count */
    atomic_int sleepers;          /* workers asleep on work_ready, or about to be */
    atomic_bool caller_sleeping;  /* run asleep on work_done, or about to be */
};

/* Takes the current run's tasks until there are none left; the one that finishes the last wakes the caller
   if it went to sleep (the same handshake as wait_for_work's). */
static void run_tasks(nnrt_pool *p) {
    for (;;) {
        unsigned word = atomic_fetch_add_explicit(&p->tasks, 1u, memory_order_acquire);
        unsigned count = word >> POOL_TASK_BITS, task = word & ((1u << POOL_TASK_BITS) - 1);
        if (task >= count)
            return;
        p->fn(p->arg, (int)task);
        if (atomic_fetch_add(&p->done, 1u) + 1 == count && atomic_load(&p->caller_sleeping)) {   /* (both sequentially consistent) */
            pthread_mutex_lock(&p->lock);
            pthread_cond_signal(&p->work_done);
            pthread_mutex_unlock(&p->lock);
        }
    }
}

/* A worker's wait for a generation after `seen` (or for shutdown): polls, then sleeps. A sleeper counts
   itself in sleepers and then looks at generation, and run bumps generation and then looks at sleepers,
   all sequentially consistent, so at least one of them sees the other: a new generation is never missed. */
static unsigned wait_for_work(nnrt_pool *p, unsigned seen) {
    unsigned g;
    for (int i = 0; i < POOL_SPINS; i++) {
        g = atomic_load_explicit(&p->generation, memory_order_acquire);
        if (g != seen || atomic_load_explicit(&p->shutting_down, memory_order_relaxed))
            return g;
        cpu_relax(i);
    }
    pthread_mutex_lock(&p->lock);
    atomic_fetch_add(&p->sleepers, 1);
    while ((g = atomic_load(&p->generation)) == seen && !atomic_load(&p->shutting_down))
        pthread_cond_wait(&p->work_ready, &p->lock);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->lock);
    return g;
}

static void *worker_main(void *pool) {
    nnrt_pool *p = pool;
    unsigned seen = 0;   /* the pool starts at generation 0, before any run */
    for (;;) {
        seen = wait_for_work(p, seen);
        if (atomic_load(&p->shutting_down))
            break;
        run_tasks(p);
    }
    return NULL;
}

/* The caller's wait for the run's `count` tasks to be done (the last ones by workers): polls, then sleeps. */
static void wait_for_tasks(nnrt_pool *p, unsigned count) {
    for (int i = 0; i < POOL_SPINS; i++) {
        if (atomic_load_explicit(&p->done, memory_order_acquire) == count)
            return;
        cpu_relax(i);
    }
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->caller_sleeping, true);
    while (atomic_load(&p->done) != count)
        pthread_cond_wait(&p->work_done, &p->lock);
    atomic_store(&p->caller_sleeping, false);
    pthread_mutex_unlock(&p->lock);
}

/* Stops and joins the first nstarted workers, then frees the pool. */
static void shut_down(nnrt_pool *p, int nstarted) {
    atomic_store(&p->shutting_down, true);
    pthread_mutex_lock(&p->lock);
    pthread_cond_broadcast(&p->work_ready);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < nstarted; i++)
        pthread_join(p->workers[i], NULL);
    pthread_cond_destroy(&p->work_done);
    pthread_cond_destroy(&p->work_ready);
    pthread_mutex_destroy(&p->lock);
    nnrt_release(p->workers);
    nnrt_release(p);
}

/* Whether p is one of the static pools on the user's threads (of which only the member h exists). */
static bool is_hooked(const nnrt_pool *p) {
    const void *addr = p;
    for (int i = 0; i < NNRT_HOOK_MAX_THREADS; i++)
        if (addr == (const void *)&hooked_pools[i])
            return true;
    return false;
}

nnrt_pool *nnrt_pool_create(int nthreads) {
    if (hooks_set)
        return (nnrt_pool *)(void *)hooked_pool_for(nthreads);
    if (nthreads < 1)
        nthreads = 1;
    if (nthreads > POOL_MAX_THREADS)
        nthreads = POOL_MAX_THREADS;
    nnrt_pool *p = nnrt_alloc(sizeof *p);
    if (!p)
        return NULL;
    memset(p, 0, sizeof *p);
    p->h.nthreads = nthreads;
    p->nworkers = nthreads - 1;
    p->workers = nnrt_alloc((size_t)nthreads * sizeof *p->workers);   /* nthreads >= 1: never 0 bytes */
    if (!p->workers || pthread_mutex_init(&p->lock, NULL) != 0) {
        nnrt_release(p->workers);
        nnrt_release(p);
        return NULL;
    }
    pthread_cond_init(&p->work_ready, NULL);
    pthread_cond_init(&p->work_done, NULL);
    atomic_init(&p->generation, 0u);
    atomic_init(&p->tasks, 0u);   /* a count of 0: nothing to take */
    atomic_init(&p->done, 0u);
    atomic_init(&p->shutting_down, false);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->caller_sleeping, false);
    for (int i = 0; i < p->nworkers; i++) {
        if (pthread_create(&p->workers[i], NULL, worker_main, p) != 0) {
            shut_down(p, i);
            return NULL;
        }
    }
    return p;
}

/* One round of a run of more than POOL_MAX_TASKS tasks: tasks first, first + 1, ... of the whole. */
typedef struct {
    void (*fn)(void *arg, int task);
    void *arg;
    int first;
} round_job;

static void run_round(void *job, int task) {
    const round_job *r = job;
    r->fn(r->arg, r->first + task);
}

void nnrt_pool_run(nnrt_pool *p, int ntasks, void (*fn)(void *arg, int task), void *arg) {
    if (is_hooked(p)) {
        hooked_run(&p->h, ntasks, fn, arg);
        return;
    }
    if (ntasks <= 0)
        return;
    if (p->nworkers == 0 || ntasks == 1) {   /* waking workers would cost more than it gives */
        for (int task = 0; task < ntasks; task++)
            fn(arg, task);
        return;
    }
    if ((unsigned)ntasks > POOL_MAX_TASKS) {   /* rounds of POOL_MAX_TASKS */
        const int most = (int)POOL_MAX_TASKS;
        round_job r = {fn, arg, 0};
        for (; r.first < ntasks; r.first += most)
            nnrt_pool_run(p, ntasks - r.first < most ? ntasks - r.first : most, run_round, &r);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->done, 0u, memory_order_relaxed);
    atomic_store_explicit(&p->tasks, (unsigned)ntasks << POOL_TASK_BITS, memory_order_release);   /* publishes the job */
    atomic_fetch_add(&p->generation, 1u);   /* and tells the idle workers */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->lock);
        pthread_cond_broadcast(&p->work_ready);
        pthread_mutex_unlock(&p->lock);
    }

    run_tasks(p);
    wait_for_tasks(p, (unsigned)ntasks);
}

int nnrt_pool_threads(const nnrt_pool *p) {
    return p->h.nthreads;
}

void nnrt_pool_destroy(nnrt_pool *p) {
    if (p && !is_hooked(p))
        shut_down(p, p->nworkers);
}

#endif

/* ---------------------------------------------------------------- a generated op's parts */

typedef struct {
    void (*fn)(const nnrt_op_args *a, int part, int parts);
    const nnrt_op_args *args;
    int parts;
} parallel_job;

static void run_part(void *job, int part) {
    const parallel_job *j = job;
    j->fn(j->args, part, j->parts);
}

void nnrt_run_parallel(nnrt_pool *pool, void (*fn)(const nnrt_op_args *a, int part, int parts), const nnrt_op_args *args) {
    parallel_job job = {fn, args, nnrt_pool_threads(pool)};
    nnrt_pool_run(pool, job.parts, run_part, &job);
}
