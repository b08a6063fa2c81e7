/* util.c — errors, shapes, timing, the runtime's heap and reproducible random fill.
 *
 * Error messages are built with nnrt_seterr and travel back to the generated program's main(), which
 * prints them. They often quote text from files (weight keys), so nnrt_seterr keeps them on one line
 * whatever those bytes are, and marks truncation instead of silently cutting.
 *
 * nnrt_fill_random is the source of the generated program's default inputs; it must give the same floats
 * on every machine, so it uses integer arithmetic only (splitmix64) and converts 24 bits to a float exactly.
 *
 * The switches (nnrt.h): NNRT_NO_CLOCK makes nnrt_now_ms 0, so no POSIX clock is needed; NNRT_NO_STDIO
 * formats messages with nnrt__format below instead of vsnprintf (the same text for the conversions the
 * runtime uses); NNRT_NO_MALLOC leaves the heap empty until nnrt_set_allocator or
 * nnrt_set_allocator_buffer gives it one.
 */
#if !defined(NNRT_NO_CLOCK) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L   /* clock_gettime and CLOCK_MONOTONIC */
#endif

#include "json.h"
#include "nnrt.h"

#include <stdalign.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#ifndef NNRT_NO_STDIO
#include <stdio.h>
#endif
#ifndef NNRT_NO_MALLOC
#include <stdlib.h>
#endif
#ifndef NNRT_NO_CLOCK
#include <time.h>
#endif

/* ---------------------------------------------------------------- formatting without stdio */

#ifdef NNRT_NO_STDIO
typedef struct {
    char *buf;
    size_t size, len;   /* len counts every character, also those past size (as vsnprintf returns) */
} out_buf;

static void put_char(out_buf *o, char c) {
    if (o->len + 1 < o->size)
        o->buf[o->len] = c;
    o->len++;
}

static void put_text(out_buf *o, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        put_char(o, s[i]);
}

/* An unsigned value in base 10 or 16, at least `precision` digits, right-aligned in `width`. */
static void put_unsigned(out_buf *o, unsigned long long v, unsigned base, bool negative, int width, int precision,
                         bool left, char pad) {
    char digits[24];
    int n = 0;
    do {
        digits[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (n < precision && n < (int)sizeof digits)
        digits[n++] = '0';
    int len = n + negative;
    if (!left && pad == '0' && negative)
        put_char(o, '-');
    for (int i = len; !left && i < width; i++)
        put_char(o, pad);
    if (negative && !(!left && pad == '0'))
        put_char(o, '-');
    while (n > 0)
        put_char(o, digits[--n]);
    for (int i = len; left && i < width; i++)
        put_char(o, ' ');
}

/* vsnprintf for the conversions the runtime's messages use: %s (with a precision), %c, %%, and %d %i %u %x
   with the length modifiers hh h l ll z j t, flags '-' and '0', a width and a precision (also as '*').
   Returns the length the whole text needs; buf holds as much as fits, NUL-terminated. Another conversion
   prints as "%?" and ends the message. */
int nnrt__format(char *buf, size_t size, const char *fmt, va_list ap) {
    out_buf o = {buf, size, 0};
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') {
            put_char(&o, *f);
            continue;
        }
        f++;
        bool left = false;
        char pad = ' ';
        for (;; f++) {
            if (*f == '-')
                left = true;
            else if (*f == '0')
                pad = '0';
            else if (*f != ' ' && *f != '+' && *f != '#')
                break;
        }
        int width = 0, precision = -1;
        if (*f == '*') {
            width = va_arg(ap, int);
            if (width < 0)
                left = true, width = -width;
            f++;
        }
        for (; *f >= '0' && *f <= '9'; f++)
            width = width * 10 + (*f - '0');
        if (*f == '.') {
            f++;
            precision = 0;
            if (*f == '*') {
                precision = va_arg(ap, int);
                f++;
            }
            for (; *f >= '0' && *f <= '9'; f++)
                precision = precision * 10 + (*f - '0');
        }
        int length = 0;   /* 0 int, 1 long, 2 long long, 3 size_t, 4 intmax_t, 5 ptrdiff_t */
        if (*f == 'h') {
            f += f[1] == 'h' ? 2 : 1;
        } else if (*f == 'l') {
            length = f[1] == 'l' ? 2 : 1;
            f += length;
        } else if (*f == 'z' || *f == 'j' || *f == 't') {
            length = *f == 'z' ? 3 : *f == 'j' ? 4 : 5;
            f++;
        }
        char conv = *f;
        if (conv == 'd' || conv == 'i') {
            long long v = length == 0 ? va_arg(ap, int) : length == 1 ? va_arg(ap, long)
                        : length == 2 ? va_arg(ap, long long) : length == 3 ? (long long)va_arg(ap, size_t)
                        : length == 4 ? (long long)va_arg(ap, intmax_t) : (long long)va_arg(ap, ptrdiff_t);
            unsigned long long magnitude = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
            put_unsigned(&o, magnitude, 10, v < 0, width, precision, left, precision >= 0 ? ' ' : pad);
        } else if (conv == 'u' || conv == 'x') {
            unsigned long long v = length == 0 ? va_arg(ap, unsigned) : length == 1 ? va_arg(ap, unsigned long)
                                 : length == 2 ? va_arg(ap, unsigned long long) : length == 3 ? va_arg(ap, size_t)
                                 : length == 4 ? (unsigned long long)va_arg(ap, uintmax_t)
                                 : (unsigned long long)va_arg(ap, ptrdiff_t);
            put_unsigned(&o, v, conv == 'x' ? 16 : 10, false, width, precision, left, precision >= 0 ? ' ' : pad);
        } else if (conv == 's') {
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            size_t n = 0;
            while (s[n] && (precision < 0 || n < (size_t)precision))
                n++;
            for (size_t i = n; !left && i < (size_t)width; i++)
                put_char(&o, ' ');
            put_text(&o, s, n);
            for (size_t i = n; left && i < (size_t)width; i++)
                put_char(&o, ' ');
        } else if (conv == 'c') {
            put_char(&o, (char)va_arg(ap, int));
        } else if (conv == '%') {
            put_char(&o, '%');
        } else {
            put_text(&o, "%?", 2);
            break;
        }
    }
    if (size > 0)
        buf[o.len < size ? o.len : size - 1] = '\0';
    return o.len > INT32_MAX ? INT32_MAX : (int)o.len;
}

int nnrt__snprintf(char *buf, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = nnrt__format(buf, size, fmt, ap);
    va_end(ap);
    return n;
}
#define vsnprintf nnrt__format
#define snprintf nnrt__snprintf
#endif

/* ---------------------------------------------------------------- errors and shapes */

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
    size_t len = nnrt__strlen(err->msg);
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
#ifdef NNRT_NO_CLOCK
    return 0.0;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
#endif
}

/* ---------------------------------------------------------------- the heap */

#ifndef NNRT_NO_MALLOC
static void *libc_alloc(void *user, size_t size) {
    (void)user;
    return malloc(size ? size : 1);
}
static void libc_release(void *user, void *p) {
    (void)user;
    free(p);
}
static const nnrt_allocator default_allocator = {libc_alloc, libc_release, NULL};
#else
static const nnrt_allocator default_allocator = {NULL, NULL, NULL};
#endif
static nnrt_allocator allocator = {0};
static bool allocator_set;

void nnrt_set_allocator(const nnrt_allocator *a) {
    allocator_set = a != NULL;
    if (a)
        allocator = *a;
}

/* The bump allocator of nnrt_set_allocator_buffer: blocks are taken one after the other from the buffer,
   and the buffer starts again from its beginning once every block taken from it has been released. */
static struct {
    unsigned char *base;
    size_t size, used, live, peak;
} bump;

static void *bump_alloc(void *user, size_t size) {
    (void)user;
    size_t align = alignof(max_align_t), start = (bump.used + align - 1) / align * align;
    uintptr_t at = (uintptr_t)(bump.base + start);
    start += (align - at % align) % align;   /* the buffer itself may be less aligned */
    if (start > bump.size || size > bump.size - start)
        return NULL;
    bump.used = start + size;
    bump.peak = bump.used > bump.peak ? bump.used : bump.peak;
    bump.live++;
    return bump.base + start;
}

static void bump_release(void *user, void *p) {
    (void)user;
    if (p && bump.live > 0 && --bump.live == 0)
        bump.used = 0;
}

void nnrt_set_allocator_buffer(void *buf, size_t size) {
    bump.base = buf;
    bump.size = buf ? size : 0;
    bump.used = bump.live = bump.peak = 0;
    nnrt_allocator a = {bump_alloc, bump_release, NULL};
    nnrt_set_allocator(&a);
}

size_t nnrt_allocator_buffer_peak(void) {
    return bump.peak;
}

void *nnrt_alloc(size_t size) {
    const nnrt_allocator *a = allocator_set ? &allocator : &default_allocator;
    return a->alloc ? a->alloc(a->user, size) : NULL;
}

void nnrt_release(void *p) {
    const nnrt_allocator *a = allocator_set ? &allocator : &default_allocator;
    if (p && a->release)
        a->release(a->user, p);
}

/* ---------------------------------------------------------------- random inputs */

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

/* ---------------------------------------------------------------- without stdio, the --profile table */

#ifdef NNRT_NO_STDIO
/* program.c, which prints it, is not built without stdio; a model's NAME_profile_report then prints nothing. */
void nnrt_profile_report(const nnrt_op_info *ops, const double *op_ms, int n, int runs) {
    (void)ops, (void)op_ms, (void)n, (void)runs;
}
#endif
