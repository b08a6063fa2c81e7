/* bare_link.c — the runtime linked for a Cortex-M with nothing but itself, libgcc and the memcpy and memset
 * below: no libc, no startup files (run_cross.py links it with -nostdlib -nostartfiles ... -lgcc and all
 * five NNRT_NO_* switches). It calls the runtime's loader, pool, random fill, formatting, .npy parser and
 * clock, so that each of them is linked; it is linked, never run.
 */
#include "nnrt.h"

#include <stddef.h>

void *memcpy(void *dst, const void *src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

void *memset(void *dst, int c, size_t n) {
    unsigned char *d = dst;
    while (n--)
        *d++ = (unsigned char)c;
    return dst;
}

static unsigned char heap[8192];
static const unsigned char file[16];

static void task(void *arg, int t) {
    ((float *)arg)[t] = (float)t;
}

static int use_everything(float *weights, float *out) {
    nnrt_set_allocator_buffer(heap, sizeof heap);
    nnrt_weight_spec spec = {"w", 1, {2}, 0};
    nnrt_error err;
    int rc = nnrt_load_safetensors(file, sizeof file, &spec, 1, weights, NULL, NULL, &err);
    nnrt_pool *pool = nnrt_pool_create(2);
    nnrt_pool_run(pool, 4, task, out);
    nnrt_pool_destroy(pool);
    float x[4];
    nnrt_fill_random(x, 4, 1);
    char shape[32];
    nnrt_format_shape(shape, sizeof shape, 1, (const int64_t[]){3});
    rc += nnrt_parse_npy(file, sizeof file, x, 1, (const int64_t[]){4}, &err);
    nnrt_file f;
    rc += nnrt_map_file("weights", &f, &err);
    return rc + (int)nnrt_now_ms();
}

void _start(void);
void _start(void) {
    static float weights[2], out[4];
    use_everything(weights, out);
    for (;;)
        ;
}
