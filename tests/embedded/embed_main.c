/* embed_main.c — a generated model on the runtime built for bare metal, run on the host.
 *
 * The runtime is compiled with -DNNRT_NO_THREADS -DNNRT_NO_FILES -DNNRT_NO_STDIO -DNNRT_NO_CLOCK
 * -DNNRT_NO_MALLOC, and this program does what an RTOS application would: it reads the weights into memory
 * itself, gives the runtime a static buffer as its heap (nnrt_set_allocator_buffer), supplies threads of its
 * own through nnrt_set_thread_hooks (here pthreads, started for each parallel run: an RTOS would keep its
 * tasks waiting on a semaphore), puts the model in its own static memory (NAME_init: state, arena, scratch
 * and weights of the header's sizes), loads with NAME_load_memory and runs on the pseudo-random input of the
 * --main program (nnrt_fill_random, seed 1), then writes the output as raw f32 for comparing with the normal
 * build's --output. Built with the model's header and names given as macros:
 *
 *     cc -DMODEL_H='"f.h"' -DMODEL=fashion_resnet18 -DIN_SIZE=FASHION_RESNET18_IMAGE_SIZE \
 *        -DOUT_SIZE=FASHION_RESNET18_OUTPUT_SIZE -DMEM=FASHION_RESNET18 $SWITCHES -Iruntime embed_main.c f.c RUNTIME.o -lm -lpthread
 *     ./a.out WEIGHTS.safetensors THREADS OUT.bin
 */
#define _POSIX_C_SOURCE 200809L

#include MODEL_H
#include "nnrt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define FN(suffix) CAT(MODEL, suffix)

/* ---- the application's threads ---- */

typedef struct {
    void (*fn)(void *arg, int task);
    void *arg;
    int ntasks;
    atomic_int next;
} job;

static void take_tasks(job *j) {
    for (int t; (t = atomic_fetch_add(&j->next, 1)) < j->ntasks;)
        j->fn(j->arg, t);
}

static void *worker(void *p) {
    take_tasks(p);
    return NULL;
}

static int parallel_calls;
static void app_parallel(void *user, int threads, int ntasks, void (*fn)(void *arg, int task), void *arg) {
    (void)user;
    parallel_calls++;
    job j = {fn, arg, ntasks, 0};
    pthread_t t[64];
    int started = 0;
    for (; started < threads - 1 && started < 64; started++)
        if (pthread_create(&t[started], NULL, worker, &j) != 0)
            break;
    take_tasks(&j);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
}

/* the runtime's heap: the file's header, and a copy of the largest packed weight while packing (9.4 MB) */
static unsigned char heap[12 << 20];

/* the model's memory, of the sizes its header gives (MEM is its prefix in capitals) */
#define BYTES(what) CAT(MEM, what)
static _Alignas(64) unsigned char state[BYTES(_STATE_BYTES)], arena[BYTES(_ARENA_BYTES)];
static _Alignas(64) unsigned char scratch[16 * (BYTES(_SCRATCH_BYTES_PER_THREAD) + 1)], weight_mem[BYTES(_WEIGHT_BYTES)];

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s WEIGHTS THREADS OUT.bin\n", argv[0]);
        return 2;
    }
    FILE *fp = fopen(argv[1], "rb");
    if (!fp) {
        perror(argv[1]);
        return 1;
    }
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *weights = malloc((size_t)size);
    if (!weights || fread(weights, 1, (size_t)size, fp) != (size_t)size) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }
    fclose(fp);

    int threads = atoi(argv[2]);
    nnrt_set_allocator_buffer(heap, sizeof heap);
    nnrt_thread_hooks hooks = {app_parallel, 16, NULL};
    if (threads > 1)
        nnrt_set_thread_hooks(&hooks);
    MODEL *m = threads <= 16 ? FN(_init)(state, arena, scratch, weight_mem, threads) : NULL;
    if (!m) {
        fprintf(stderr, "cannot create the model\n");
        return 1;
    }
    FN(_on_warning)(m, NULL, NULL);
    if (FN(_load_memory)(m, weights, (size_t)size) != 0) {
        fprintf(stderr, "error: %s\n", FN(_last_error)(m));
        return 1;
    }
    static float in[IN_SIZE], out[OUT_SIZE];
    nnrt_fill_random(in, IN_SIZE, 1);
    if (FN(_run)(m, in, out) != 0) {
        fprintf(stderr, "error: %s\n", FN(_last_error)(m));
        return 1;
    }
    fp = fopen(argv[3], "wb");
    if (!fp || fwrite(out, sizeof out, 1, fp) != 1 || fclose(fp) != 0) {
        perror(argv[3]);
        return 1;
    }
    printf("# loaded %ld bytes of weights with %zu bytes of heap from the buffer; %d parallel runs on the hooks\n",
           size, nnrt_allocator_buffer_peak(), parallel_calls);
    FN(_free)(m);
    free(weights);
    return 0;
}
