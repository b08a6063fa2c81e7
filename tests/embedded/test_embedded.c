/* test_embedded.c — the runtime built for bare metal, checked on the host.
 *
 * Links against the runtime's files compiled with every switch: -DNNRT_NO_THREADS -DNNRT_NO_FILES
 * -DNNRT_NO_STDIO -DNNRT_NO_CLOCK -DNNRT_NO_MALLOC (this file must be compiled with the same ones; it may
 * itself use stdio). Checks what those switches promise: no clock, no files, loading from memory through
 * a caller's buffer as the heap (and a clear failure without one), error messages formatted by the
 * runtime's own formatter exactly as snprintf would, and pools on the user's threads through
 * nnrt_set_thread_hooks. Prints `ok - NAME` / `FAIL - NAME: detail`, then `N passed, N failed`.
 *
 *     cc -std=c11 $SWITCHES -Iruntime runtime/{json,program,tensorio,threads,util,weights}.c tests/embedded/test_embedded.c
 */
#include "json.h"
#include "nnrt.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#if !defined(NNRT_NO_THREADS) || !defined(NNRT_NO_FILES) || !defined(NNRT_NO_STDIO) || !defined(NNRT_NO_CLOCK) || \
    !defined(NNRT_NO_MALLOC)
#error "build with -DNNRT_NO_THREADS -DNNRT_NO_FILES -DNNRT_NO_STDIO -DNNRT_NO_CLOCK -DNNRT_NO_MALLOC"
#endif

static int passed, failed;

static void check(bool ok, const char *name, const char *fmt, ...) {
    if (ok) {
        printf("ok - %s\n", name);
        passed++;
        return;
    }
    printf("FAIL - %s: ", name);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    failed++;
}

/* ---- a safetensors image in memory ---- */

static size_t make_safetensors(unsigned char *out, size_t cap, const char *header, const unsigned char *data,
                               size_t data_len) {
    size_t n = strlen(header);
    if (8 + n + data_len > cap)
        return 0;
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(out + 8, header, n);
    memcpy(out + 8 + n, data, data_len);
    return 8 + n + data_len;
}

static void test_loading(void) {
    /* w: F32 [2, 3]; h: F16 [2] (1.0, -2.0); b: BF16 [1] (0.5) */
    unsigned char data[32];
    float w[6] = {1, 2, 3, 4, 5, 6};
    for (int i = 0; i < 6; i++) {
        uint32_t bits;
        memcpy(&bits, &w[i], 4);
        nnrt_store_le32(data + 4 * i, bits);
    }
    const unsigned char h[4] = {0x00, 0x3c, 0x00, 0xc0}, b[2] = {0x00, 0x3f};
    memcpy(data + 24, h, 4);
    memcpy(data + 28, b, 2);
    const char *header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                         "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[24,28]},"
                         "\"b\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[28,30]},"
                         "\"__metadata__\":{\"format\":\"pt\"}}";
    static unsigned char file[1024];
    size_t size = make_safetensors(file, sizeof file, header, data, 30);
    nnrt_weight_spec specs[] = {{"w", 2, {2, 3}, 0}, {"h", 1, {2}, 6}, {"b", 1, {1}, 8}};
    float dst[9];
    nnrt_error err;

    nnrt_set_allocator(NULL);
    memset(dst, 0, sizeof dst);
    int rc = nnrt_load_safetensors(file, size, specs, 3, dst, NULL, NULL, &err);
    check(rc == -1 && strstr(err.msg, "out of memory") && dst[0] == 0.0f, "NNRT_NO_MALLOC: loading without an allocator fails",
          "rc %d, message \"%s\"", rc, err.msg);

    static unsigned char heap[64 * 1024];
    nnrt_set_allocator_buffer(heap, sizeof heap);
    rc = nnrt_load_safetensors(file, size, specs, 3, dst, NULL, NULL, &err);
    bool values = rc == 0 && dst[0] == 1 && dst[5] == 6 && dst[6] == 1.0f && dst[7] == -2.0f && dst[8] == 0.5f;
    check(values, "loads F32, F16 and BF16 from memory with the heap in a caller's buffer", "rc %d: %s", rc,
          rc ? err.msg : "wrong values");
    size_t peak = nnrt_allocator_buffer_peak();
    rc = nnrt_load_safetensors(file, size, specs, 3, dst, NULL, NULL, &err);
    check(rc == 0 && nnrt_allocator_buffer_peak() == peak && peak > 0 && peak <= sizeof heap,
          "a second load reuses the buffer from its start", "peak %zu then %zu", peak, nnrt_allocator_buffer_peak());
    printf("# loading 3 tensors (header %zu bytes) took %zu bytes of heap\n", strlen(header), peak);

    static unsigned char tiny[256];
    nnrt_set_allocator_buffer(tiny, sizeof tiny);
    rc = nnrt_load_safetensors(file, size, specs, 3, dst, NULL, NULL, &err);
    check(rc == -1 && strstr(err.msg, "out of memory"), "a buffer too small fails cleanly", "rc %d, \"%s\"", rc, err.msg);

    /* the messages, formatted by the runtime's own formatter */
    nnrt_set_allocator_buffer(heap, sizeof heap);
    nnrt_weight_spec wrong[] = {{"w", 2, {3, 2}, 0}};
    rc = nnrt_load_safetensors(file, size, wrong, 1, dst, NULL, NULL, &err);
    check(rc == -1 && strcmp(err.msg, "weight 'w': expected shape [3, 2], found [2, 3]") == 0, "error message: shape",
          "\"%s\"", err.msg);
    const char *bad = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,240]}}";
    size = make_safetensors(file, sizeof file, bad, data, 24);
    rc = nnrt_load_safetensors(file, size, specs, 1, dst, NULL, NULL, &err);
    check(rc == -1 && strcmp(err.msg, "weight 'w': data_offsets [0, 240] end past the data section of 24 bytes") == 0,
          "error message: offsets", "\"%s\"", err.msg);
    size = make_safetensors(file, sizeof file, "{\"w\": [1, 2.5e3, -0.02, tru]}", data, 0);
    rc = nnrt_load_safetensors(file, size, specs, 1, dst, NULL, NULL, &err);
    check(rc == -1 && strcmp(err.msg, "safetensors header is not valid JSON: at byte 24: invalid literal (expected true, "
                                      "false or null)") == 0,
          "error message: JSON", "\"%s\"", err.msg);
    nnrt_set_allocator(NULL);
}

/* nnrt__format against the host's snprintf */
static int fmt_cmp(char *a, size_t n, const char *fmt, ...) {
    char b[256];
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int ra = nnrt__format(a, n, fmt, ap);
    int rb = vsnprintf(b, n < sizeof b ? n : sizeof b, fmt, ap2);
    va_end(ap2);
    va_end(ap);
    return ra == rb && strcmp(a, b) == 0 ? 0 : (printf("# '%s': runtime \"%s\" (%d), libc \"%s\" (%d)\n", fmt, a, ra, b, rb), 1);
}

static void test_format(void) {
    char buf[256];
    int bad = 0;
    bad += fmt_cmp(buf, sizeof buf, "plain %% text");
    bad += fmt_cmp(buf, sizeof buf, "%d %i %u %x", -42, 7, 4000000000u, 0xbeefu);
    bad += fmt_cmp(buf, sizeof buf, "%ld %lu %lld %llu", -5L, 6UL, (long long)INT64_MIN, (unsigned long long)UINT64_MAX);
    bad += fmt_cmp(buf, sizeof buf, "%zu %zd %5d|%-5d|%05d|%.3d", (size_t)123456789, (ptrdiff_t)-3, 42, 42, -42, 7);
    bad += fmt_cmp(buf, sizeof buf, "'%s' '%.3s' '%8s' '%-8s' '%c'", "key", "abcdef", "r", "l", 'x');
    bad += fmt_cmp(buf, sizeof buf, "%*d|%.*s|", 6, 12, 2, "xyz");
    bad += fmt_cmp(buf, 8, "truncated %s", "long text");
    bad += fmt_cmp(buf, 1, "%d", 12345);
    check(bad == 0, "nnrt__format matches snprintf", "%d mismatches", bad);
    nnrt_error err;
    char longkey[2000];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    nnrt_seterr(&err, "weight '%s': line\nbreak", longkey);
    size_t len = strlen(err.msg);
    check(len == sizeof err.msg - 1 && strcmp(err.msg + len - 3, "...") == 0 && !strchr(err.msg, '\n'),
          "nnrt_seterr truncates with ... and keeps one line", "length %zu", len);
    char shape[64];
    check(strcmp(nnrt_format_shape(shape, sizeof shape, 3, (const int64_t[]){1, 3, 224}), "[1, 3, 224]") == 0 &&
              strcmp(nnrt_format_shape(shape, sizeof shape, 0, NULL), "[]") == 0,
          "nnrt_format_shape", "\"%s\"", shape);
}

static void test_no_files_no_clock(void) {
    nnrt_file f;
    nnrt_error err;
    int rc = nnrt_map_file("/etc/hostname", &f, &err);
    check(rc == -1 && f.data == NULL && strcmp(err.msg, "cannot open '/etc/hostname': built without files (NNRT_NO_FILES)") == 0,
          "NNRT_NO_FILES: nnrt_map_file fails", "rc %d, \"%s\"", rc, err.msg);
    float x[2] = {1, 2};
    rc = nnrt_write_tensor_file("/tmp/x.npy", x, 1, (const int64_t[]){2}, &err);
    check(rc == -1 && strstr(err.msg, "NNRT_NO_FILES"), "NNRT_NO_FILES: nnrt_write_tensor_file fails", "\"%s\"", err.msg);
    rc = nnrt_read_tensor_file("/tmp/x.npy", x, 1, (const int64_t[]){2}, &err);
    check(rc == -1 && strstr(err.msg, "NNRT_NO_FILES"), "NNRT_NO_FILES: nnrt_read_tensor_file fails", "\"%s\"", err.msg);
    unsigned char npy[128] = "\x93NUMPY\x01\x00";
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
    size_t hl = 118;
    npy[8] = (unsigned char)hl;
    memset(npy + 10, ' ', hl);
    memcpy(npy + 10, dict, strlen(dict));
    npy[10 + hl - 1] = '\n';
    static unsigned char whole[136];
    memcpy(whole, npy, 128);
    float two[2] = {3.5f, -1.0f};
    for (int i = 0; i < 2; i++) {
        uint32_t bits;
        memcpy(&bits, &two[i], 4);
        nnrt_store_le32(whole + 128 + 4 * i, bits);
    }
    rc = nnrt_parse_npy(whole, sizeof whole, x, 1, (const int64_t[]){2}, &err);
    check(rc == 0 && x[0] == 3.5f && x[1] == -1.0f, ".npy from memory", "rc %d: %s", rc, rc ? err.msg : "values");
    check(nnrt_now_ms() == 0.0, "NNRT_NO_CLOCK: nnrt_now_ms is 0", "%g", nnrt_now_ms());
}

/* ---- the user's threads: a parallel-for that runs the tasks in reverse, recording what it was given ---- */

static int hook_calls, hook_threads, hook_ntasks;
static void reverse_parallel(void *user, int threads, int ntasks, void (*fn)(void *arg, int task), void *arg) {
    (*(int *)user)++;
    hook_calls++;
    hook_threads = threads;
    hook_ntasks = ntasks;
    for (int t = ntasks - 1; t >= 0; t--)
        fn(arg, t);
}

static int counts[100];
static void count_task(void *arg, int task) {
    (void)arg;
    counts[task]++;
}

static void test_threads(void) {
    nnrt_pool *p = nnrt_pool_create(4);
    check(p && nnrt_pool_threads(p) == 1, "NNRT_NO_THREADS: a pool without hooks has one thread", "%d",
          p ? nnrt_pool_threads(p) : -1);
    memset(counts, 0, sizeof counts);
    nnrt_pool_run(p, 100, count_task, NULL);
    int once = 0;
    for (int i = 0; i < 100; i++)
        once += counts[i] == 1;
    check(once == 100, "every task runs once on the caller", "%d of 100", once);
    nnrt_pool_destroy(p);

    int user = 0;
    nnrt_thread_hooks hooks = {reverse_parallel, 6, &user};
    nnrt_set_thread_hooks(&hooks);
    nnrt_pool *q = nnrt_pool_create(4), *q2 = nnrt_pool_create(4), *big = nnrt_pool_create(100);
    check(q && nnrt_pool_threads(q) == 4 && q == q2 && nnrt_pool_threads(big) == 6,
          "with hooks: pools of the requested threads, capped by max_threads, static", "%d %d",
          q ? nnrt_pool_threads(q) : -1, big ? nnrt_pool_threads(big) : -1);
    memset(counts, 0, sizeof counts);
    nnrt_pool_run(q, 100, count_task, NULL);
    once = 0;
    for (int i = 0; i < 100; i++)
        once += counts[i] == 1;
    check(once == 100 && hook_calls == 1 && user == 1 && hook_threads == 4 && hook_ntasks == 100,
          "a run goes through the hook once, with the user's pointer", "%d tasks once, %d calls, threads %d", once, hook_calls,
          hook_threads);
    nnrt_pool_run(q, 1, count_task, NULL);
    check(hook_calls == 1 && counts[0] == 2, "a run of one task calls it directly", "%d calls", hook_calls);
    nnrt_pool_destroy(q);
    nnrt_pool_destroy(q2);
    nnrt_pool_destroy(big);
    nnrt_set_thread_hooks(NULL);
    nnrt_pool *r = nnrt_pool_create(4);
    check(nnrt_pool_threads(r) == 1, "hooks removed: one thread again", "%d", nnrt_pool_threads(r));
}

int main(void) {
    test_loading();
    test_format();
    test_no_files_no_clock();
    test_threads();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
