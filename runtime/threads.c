/* threads.c — a persistent pthread pool for the generated program's kernels.
 *
 * A forward pass runs many short parallel loops, so threads are created once and then woken for each
 * nnrt_pool_run. The protocol is a generation counter under one mutex:
 *   - run publishes (fn, arg, ntasks), resets the task counter, sets every worker busy, bumps the
 *     generation and broadcasts; then the caller itself takes tasks;
 *   - each worker that sees a new generation takes tasks from a shared atomic counter until they run
 *     out, then checks in under the mutex; the last one to check in wakes the caller;
 *   - run returns only when every worker has checked in, so no worker can still be looking at this
 *     generation's fn or counter when the next run overwrites them.
 * Tasks are claimed one at a time with an atomic fetch-add, so uneven tasks balance themselves. The mutex
 * hand-offs order everything a task writes before run returns, which is also what ThreadSanitizer checks.
 * Nothing here allocates after nnrt_pool_create.
 */
#include "nnrt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#define POOL_MAX_THREADS 1024

struct nnrt_pool {
    int nthreads;                 /* threads that run tasks, the caller included */
    int nworkers;                 /* nthreads - 1 */
    pthread_t *workers;

    pthread_mutex_t lock;
    pthread_cond_t work_ready;    /* generation advanced, or shutting down */
    pthread_cond_t work_done;     /* busy_workers reached 0 */

    /* Guarded by lock. */
    uint64_t generation;          /* bumped once per nnrt_pool_run that uses the workers */
    int busy_workers;             /* workers yet to finish the current generation */
    bool shutting_down;
    void (*fn)(void *arg, int task);
    void *arg;
    int ntasks;

    atomic_llong next_task;       /* next unclaimed task; may overshoot ntasks by one per thread */
};

static void run_tasks(nnrt_pool *p, void (*fn)(void *, int), void *arg, int ntasks) {
    for (;;) {
        long long task = atomic_fetch_add_explicit(&p->next_task, 1, memory_order_relaxed);
        if (task >= ntasks)
            return;
        fn(arg, (int)task);
    }
}

static void *worker_main(void *pool) {
    nnrt_pool *p = pool;
    uint64_t seen = 0;   /* the pool starts at generation 0, before any run */
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->generation == seen && !p->shutting_down)
            pthread_cond_wait(&p->work_ready, &p->lock);
        if (p->shutting_down)
            break;
        seen = p->generation;
        void (*fn)(void *, int) = p->fn;
        void *arg = p->arg;
        int ntasks = p->ntasks;
        pthread_mutex_unlock(&p->lock);

        run_tasks(p, fn, arg, ntasks);

        pthread_mutex_lock(&p->lock);
        if (--p->busy_workers == 0)
            pthread_cond_signal(&p->work_done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Stops and joins the first nstarted workers, then frees the pool. */
static void shut_down(nnrt_pool *p, int nstarted) {
    pthread_mutex_lock(&p->lock);
    p->shutting_down = true;
    pthread_cond_broadcast(&p->work_ready);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < nstarted; i++)
        pthread_join(p->workers[i], NULL);
    pthread_cond_destroy(&p->work_done);
    pthread_cond_destroy(&p->work_ready);
    pthread_mutex_destroy(&p->lock);
    free(p->workers);
    free(p);
}

nnrt_pool *nnrt_pool_create(int nthreads) {
    if (nthreads < 1)
        nthreads = 1;
    if (nthreads > POOL_MAX_THREADS)
        nthreads = POOL_MAX_THREADS;
    nnrt_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->nthreads = nthreads;
    p->nworkers = nthreads - 1;
    p->workers = calloc((size_t)nthreads, sizeof *p->workers);   /* nthreads >= 1: never calloc(0) */
    if (!p->workers || pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p->workers);
        free(p);
        return NULL;
    }
    pthread_cond_init(&p->work_ready, NULL);
    pthread_cond_init(&p->work_done, NULL);
    atomic_init(&p->next_task, 0);
    for (int i = 0; i < p->nworkers; i++) {
        if (pthread_create(&p->workers[i], NULL, worker_main, p) != 0) {
            shut_down(p, i);
            return NULL;
        }
    }
    return p;
}

void nnrt_pool_run(nnrt_pool *p, int ntasks, void (*fn)(void *arg, int task), void *arg) {
    if (ntasks <= 0)
        return;
    if (p->nworkers == 0 || ntasks == 1) {   /* waking workers would cost more than it gives */
        for (int task = 0; task < ntasks; task++)
            fn(arg, task);
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->arg = arg;
    p->ntasks = ntasks;
    atomic_store_explicit(&p->next_task, 0, memory_order_relaxed);
    p->busy_workers = p->nworkers;
    p->generation++;
    pthread_cond_broadcast(&p->work_ready);
    pthread_mutex_unlock(&p->lock);

    run_tasks(p, fn, arg, ntasks);

    pthread_mutex_lock(&p->lock);
    while (p->busy_workers > 0)
        pthread_cond_wait(&p->work_done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

int nnrt_pool_threads(const nnrt_pool *p) {
    return p->nthreads;
}

void nnrt_pool_destroy(nnrt_pool *p) {
    if (p)
        shut_down(p, p->nworkers);
}

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
