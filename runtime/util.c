/* util.c — errors, shapes, timing and reproducible random fill.
 *
 * Error messages are built with nnrt_seterr and travel back to the generated program's main(), which
 * prints them. They often quote text from files (weight keys), so nnrt_seterr keeps them on one line
 * whatever those bytes are, and marks truncation instead of silently cutting.
 *
 * nnrt_fill_random is the source of the generated program's default inputs; it must give the same floats
 * on every machine, so it uses integer arithmetic only (splitmix64) and converts 24 bits to a float exactly.
 */
#include "nnrt.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void nnrt_seterr(nnrt_error *err, const char *fmt, ...) {
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    int needed = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (needed < 0) {
        snprintf(err->msg, sizeof err->msg, "(unformattable error message)");
        return;
    }
    if ((size_t)needed >= sizeof err->msg) {
        /* Mark the cut, moving it back to the start of a UTF-8 character so as not to split one. */
        size_t cut = sizeof err->msg - 4;
        while (cut > 0 && ((unsigned char)err->msg[cut] & 0xc0) == 0x80)
            cut--;
        memcpy(err->msg + cut, "...", 4);
    }
    size_t len = strlen(err->msg);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)err->msg[i] < 0x20 || err->msg[i] == 0x7f)
            err->msg[i] = ' ';
    while (len > 0 && err->msg[len - 1] == ' ')
        err->msg[--len] = '\0';
}

const char *nnrt_format_shape(char *buf, size_t size, int rank, const int64_t *dims) {
    if (size == 0)
        return buf;
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i <= rank && used < size; i++) {
        int n;
        if (i == rank)
            n = snprintf(buf + used, size - used, "%s]", rank == 0 ? "[" : "");
        else
            n = snprintf(buf + used, size - used, "%s%lld", i == 0 ? "[" : ", ", (long long)dims[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    return buf;
}

int nnrt_shape_numel(int rank, const int64_t *dims, size_t *numel) {
    if (rank < 0 || rank > NNRT_MAX_RANK)
        return -1;
    size_t count = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0)
            return -1;
        if (dims[i] != 0 && count > SIZE_MAX / sizeof(float) / (uint64_t)dims[i])
            return -1;
        count *= (size_t)dims[i];
    }
    *numel = count;
    return 0;
}

double nnrt_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* splitmix64 (Steele, Lea and Flood; Vigna's public-domain reference): a 64-bit counter passed
 * through a bijective mixer. Seed 0 gives 0xe220a8397b1dcdaf first. */
static uint64_t splitmix64_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

void nnrt_fill_random(float *dst, size_t n, uint64_t seed) {
    uint64_t state = seed;
    for (size_t i = 0; i < n; i++) {
        /* k * 2^-23 - 1 for k in [0, 2^24) is a multiple of 2^-23 in [-1, 1): exact in float. */
        uint32_t k = (uint32_t)(splitmix64_next(&state) >> 40);
        dst[i] = (float)k * 0x1p-23f - 1.0f;
    }
}
