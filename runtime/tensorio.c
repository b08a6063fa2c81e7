/* tensorio.c — mapping files, and the tensor files of a generated program's --input and --output.
 *
 * Two formats, chosen by extension. ".npy" is what NumPy and PyTorch users have at hand; anything else
 * is raw little-endian f32, the simplest thing a C program or `tofile` writes. Both are strict about
 * size: a raw file must hold exactly the tensor, and an .npy file must declare exactly the expected
 * shape, because a silently reshaped or truncated input gives wrong answers that look plausible.
 *
 * Files are read through nnrt_map_file and parsed in memory with explicit bounds, like safetensors.
 * An .npy file is a 6-byte magic "\x93NUMPY", a version (major, minor), a little-endian header length
 * (2 bytes in version 1, 4 bytes in versions 2 and 3), and a header that is a Python dict literal such as
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 224, 224), }
 * padded with spaces and a newline; the data follows. The small parser below accepts exactly that
 * grammar (either quote style, any whitespace, optional trailing commas), which is all NumPy writes.
 */
#if !defined(NNRT_NO_FILES) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L   /* open, fstat, mmap, O_CLOEXEC */
#endif

#include "json.h"
#include "nnrt.h"

#include <stdbool.h>
#include <string.h>
#ifndef NNRT_NO_FILES
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif
#ifdef NNRT_NO_STDIO
#define snprintf nnrt__snprintf
#else
#include <stdio.h>
#endif

#define NPY_MAX_DIMS 64   /* NumPy 2 allows 64; more is certainly not our tensor */

/* ---- Mapping ---- */

#ifdef NNRT_NO_FILES
int nnrt_map_file(const char *path, nnrt_file *f, nnrt_error *err) {
    f->data = NULL;
    f->size = 0;
    nnrt_seterr(err, "cannot open '%s': built without files (NNRT_NO_FILES)", path);
    return -1;
}

void nnrt_unmap_file(nnrt_file *f) {
    f->data = NULL;
    f->size = 0;
}
#else
int nnrt_map_file(const char *path, nnrt_file *f, nnrt_error *err) {
    f->data = NULL;
    f->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        nnrt_seterr(err, "cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        nnrt_seterr(err, "cannot stat '%s': %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        nnrt_seterr(err, "cannot map '%s': %s", path, strerror(S_ISDIR(st.st_mode) ? EISDIR : EINVAL));
        close(fd);
        return -1;
    }
    if ((uintmax_t)st.st_size > SIZE_MAX) {
        nnrt_seterr(err, "cannot map '%s': %s", path, strerror(EFBIG));
        close(fd);
        return -1;
    }
    if (st.st_size > 0) {
        void *data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (data == MAP_FAILED) {
            nnrt_seterr(err, "cannot map '%s': %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        f->data = data;
        f->size = (size_t)st.st_size;
    }
    close(fd);   /* the mapping stays valid without the descriptor */
    return 0;
}

void nnrt_unmap_file(nnrt_file *f) {
    if (f->data)
        munmap(f->data, f->size);
    f->data = NULL;
    f->size = 0;
}
#endif

/* ---- .npy header ---- */

typedef struct {
    const char *path;          /* for messages */
    const unsigned char *text;
    size_t len, pos;
    nnrt_error *err;
} npy_parser;

typedef struct {
    char descr[16];
    bool has_descr, has_fortran_order, has_shape;
    bool fortran_order;
    int rank;
    int64_t dims[NPY_MAX_DIMS];
} npy_header;

static int npy_fail(npy_parser *p, const char *what) {
    nnrt_seterr(p->err, "'%s': invalid .npy header at byte %zu: %s", p->path, p->pos, what);
    return -1;
}

static int npy_peek(const npy_parser *p) {
    return p->pos < p->len ? p->text[p->pos] : -1;
}

static void npy_skip_whitespace(npy_parser *p) {
    for (int c = npy_peek(p); c == ' ' || c == '\t' || c == '\n' || c == '\r'; c = npy_peek(p))
        p->pos++;
}

static bool npy_accept(npy_parser *p, char c) {
    npy_skip_whitespace(p);
    if (npy_peek(p) != c)
        return false;
    p->pos++;
    return true;
}

static bool npy_accept_word(npy_parser *p, const char *word) {
    size_t n = nnrt__strlen(word);
    npy_skip_whitespace(p);
    if (p->len - p->pos < n || nnrt__memcmp(p->text + p->pos, word, n) != 0)
        return false;
    p->pos += n;
    return true;
}

/* A quoted string without escapes (NumPy's keys and dtype strings have none), into buf. */
static int npy_string(npy_parser *p, char *buf, size_t size) {
    npy_skip_whitespace(p);
    int quote = npy_peek(p);
    if (quote != '\'' && quote != '"')
        return npy_fail(p, "expected a quoted string");
    p->pos++;
    size_t n = 0;
    for (int c = npy_peek(p); c != quote; c = npy_peek(p)) {
        if (c < 0)
            return npy_fail(p, "unterminated string");
        if (c < 0x20 || c == '\\')
            return npy_fail(p, "unsupported character in string");
        if (n + 1 >= size)
            return npy_fail(p, "string too long");
        buf[n++] = (char)c;
        p->pos++;
    }
    p->pos++;
    buf[n] = '\0';
    return 0;
}

/* A tuple of non-negative integers: "()", "(3,)", "(2, 3)". */
static int npy_shape(npy_parser *p, npy_header *h) {
    if (!npy_accept(p, '('))
        return npy_fail(p, "expected '(' to start the shape");
    h->rank = 0;
    while (!npy_accept(p, ')')) {
        if (h->rank == NPY_MAX_DIMS)
            return npy_fail(p, "too many dimensions");
        int c = npy_peek(p);
        if (c < '0' || c > '9')
            return npy_fail(p, "expected a non-negative integer in the shape");
        int64_t dim = 0;
        for (; c >= '0' && c <= '9'; c = npy_peek(p)) {
            if (dim > (INT64_MAX - (c - '0')) / 10)
                return npy_fail(p, "dimension too large");
            dim = dim * 10 + (c - '0');
            p->pos++;
        }
        h->dims[h->rank++] = dim;
        if (!npy_accept(p, ',')) {
            if (!npy_accept(p, ')'))
                return npy_fail(p, "expected ',' or ')' in the shape");
            break;
        }
    }
    return 0;
}

/* The header dict: exactly the keys descr, fortran_order and shape, each once. */
static int npy_parse_header(npy_parser *p, npy_header *h) {
    *h = (npy_header){0};
    if (!npy_accept(p, '{'))
        return npy_fail(p, "expected '{'");
    while (!npy_accept(p, '}')) {
        char key[32];
        if (npy_string(p, key, sizeof key) < 0)
            return -1;
        if (!npy_accept(p, ':'))
            return npy_fail(p, "expected ':' after key");
        bool *seen;
        if (nnrt__streq(key, "descr")) {
            seen = &h->has_descr;
            if (npy_string(p, h->descr, sizeof h->descr) < 0)
                return -1;
        } else if (nnrt__streq(key, "fortran_order")) {
            seen = &h->has_fortran_order;
            if (npy_accept_word(p, "True"))
                h->fortran_order = true;
            else if (!npy_accept_word(p, "False"))
                return npy_fail(p, "expected True or False for fortran_order");
        } else if (nnrt__streq(key, "shape")) {
            seen = &h->has_shape;
            if (npy_shape(p, h) < 0)
                return -1;
        } else {
            return npy_fail(p, "unexpected key (expected descr, fortran_order and shape)");
        }
        if (*seen)
            return npy_fail(p, "duplicate key");
        *seen = true;
        if (!npy_accept(p, ',')) {
            if (!npy_accept(p, '}'))
                return npy_fail(p, "expected ',' or '}'");
            break;
        }
    }
    npy_skip_whitespace(p);
    if (p->pos != p->len)
        return npy_fail(p, "unexpected text after the dict");
    if (!h->has_descr || !h->has_fortran_order || !h->has_shape)
        return npy_fail(p, "missing one of descr, fortran_order, shape");
    return 0;
}

/* ---- Reading ---- */

static int read_npy(const char *path, const unsigned char *bytes, size_t size, float *dst, int rank,
                    const int64_t *dims, size_t numel, nnrt_error *err) {
    static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (size < 8 || nnrt__memcmp(bytes, magic, 6) != 0) {
        nnrt_seterr(err, "'%s': not a .npy file (expected the magic \\x93NUMPY)", path);
        return -1;
    }
    int major = bytes[6], minor = bytes[7];
    if (major < 1 || major > 3) {
        nnrt_seterr(err, "'%s': expected .npy format version 1.0, 2.0 or 3.0, found %d.%d", path, major, minor);
        return -1;
    }
    size_t header_start = major == 1 ? 10 : 12;   /* version 1 has a 2-byte header length, later ones 4 */
    if (size < header_start) {
        nnrt_seterr(err, "'%s': .npy file truncated in its preamble (%zu bytes)", path, size);
        return -1;
    }
    size_t header_len = major == 1 ? nnrt_load_le16(bytes + 8) : nnrt_load_le32(bytes + 8);
    if (header_len > size - header_start) {
        nnrt_seterr(err, "'%s': .npy header length %zu runs past the end of the file (%zu bytes)", path,
                    header_len, size);
        return -1;
    }

    npy_parser parser = {.path = path, .text = bytes + header_start, .len = header_len, .err = err};
    npy_header h;
    if (npy_parse_header(&parser, &h) < 0)
        return -1;
    size_t item_size;
    if (nnrt__streq(h.descr, "<f4")) {
        item_size = 4;
    } else if (nnrt__streq(h.descr, "<f8")) {
        item_size = 8;
    } else {
        nnrt_seterr(err, "'%s': expected dtype '<f4' (or '<f8'), found '%s'", path, h.descr);
        return -1;
    }
    if (h.fortran_order) {
        nnrt_seterr(err, "'%s': expected fortran_order False (C order), found True", path);
        return -1;
    }
    bool same_shape = h.rank == rank;
    for (int i = 0; same_shape && i < rank; i++)
        same_shape = h.dims[i] == dims[i];
    if (!same_shape) {
        char expected[256], found[1024];
        nnrt_seterr(err, "'%s': expected shape %s, found %s", path,
                    nnrt_format_shape(expected, sizeof expected, rank, dims),
                    nnrt_format_shape(found, sizeof found, h.rank, h.dims));
        return -1;
    }

    const unsigned char *data = bytes + header_start + header_len;
    size_t data_size = size - header_start - header_len;
    if (data_size % item_size != 0 || data_size / item_size != numel) {
        nnrt_seterr(err, "'%s': expected %zu bytes of data after the .npy header, found %zu", path,
                    numel * item_size, data_size);
        return -1;
    }
    for (size_t i = 0; i < numel; i++) {
        if (item_size == 4) {
            uint32_t bits = nnrt_load_le32(data + 4 * i);
            memcpy(&dst[i], &bits, 4);
        } else {
            uint64_t bits = nnrt_load_le64(data + 8 * i);
            double value;
            memcpy(&value, &bits, 8);
            dst[i] = (float)value;   /* IEEE rounding; beyond float's range gives +-inf */
        }
    }
    return 0;
}

static int read_raw(const char *path, const unsigned char *bytes, size_t size, float *dst, int rank,
                    const int64_t *dims, size_t numel, nnrt_error *err) {
    if (size != numel * 4) {
        char shape[256];
        nnrt_seterr(err, "'%s': expected %zu bytes (f32 of shape %s), found %zu", path, numel * 4,
                    nnrt_format_shape(shape, sizeof shape, rank, dims), size);
        return -1;
    }
    for (size_t i = 0; i < numel; i++) {
        uint32_t bits = nnrt_load_le32(bytes + 4 * i);
        memcpy(&dst[i], &bits, 4);
    }
    return 0;
}

int nnrt_parse_npy(const void *data, size_t size, float *dst, int rank, const int64_t *dims, nnrt_error *err) {
    size_t numel;
    if (nnrt_shape_numel(rank, dims, &numel) != 0) {
        nnrt_seterr(err, "the expected shape is too large");
        return -1;
    }
    return read_npy("<memory>", data, size, dst, rank, dims, numel, err);
}

static bool is_npy_path(const char *path) {
    size_t n = nnrt__strlen(path);
    return n >= 4 && nnrt__streq(path + n - 4, ".npy");
}

int nnrt_read_tensor_file(const char *path, float *dst, int rank, const int64_t *dims, nnrt_error *err) {
    size_t numel;
    if (nnrt_shape_numel(rank, dims, &numel) < 0) {
        nnrt_seterr(err, "'%s': invalid tensor shape (rank %d)", path, rank);
        return -1;
    }
    nnrt_file f;
    if (nnrt_map_file(path, &f, err) < 0)
        return -1;
    int status = is_npy_path(path) ? read_npy(path, f.data, f.size, dst, rank, dims, numel, err)
                                   : read_raw(path, f.data, f.size, dst, rank, dims, numel, err);
    nnrt_unmap_file(&f);
    return status;
}

/* ---- Writing ---- */

#ifdef NNRT_NO_FILES
int nnrt_write_tensor_file(const char *path, const float *src, int rank, const int64_t *dims, nnrt_error *err) {
    (void)src, (void)rank, (void)dims;
    nnrt_seterr(err, "cannot open '%s' for writing: built without files (NNRT_NO_FILES)", path);
    return -1;
}
#else
/* The version 1.0 preamble and header for a '<f4' C-order array, padded with spaces so that the data
 * starts at a multiple of 64 bytes, as NumPy does. Returns its length. */
static size_t format_npy_header(unsigned char *out, size_t size, int rank, const int64_t *dims) {
    char shape[256] = "(";
    size_t used = 1;
    for (int i = 0; i < rank; i++)
        used += (size_t)snprintf(shape + used, sizeof shape - used, "%lld%s", (long long)dims[i],
                                 rank == 1 ? "," : i + 1 < rank ? ", " : "");
    snprintf(shape + used, sizeof shape - used, ")");

    char dict[384];
    int dict_len = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape);
    size_t total = (10 + (size_t)dict_len + 1 + 63) / 64 * 64;   /* + 1 for the closing newline */
    if (total > size)
        return 0;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (unsigned char)(total - 10);
    out[9] = (unsigned char)((total - 10) >> 8);
    memcpy(out + 10, dict, (size_t)dict_len);
    memset(out + 10 + dict_len, ' ', total - 10 - (size_t)dict_len - 1);
    out[total - 1] = '\n';
    return total;
}

/* write(2) until all n bytes are out (it may write fewer, or be interrupted); false with errno set. */
static bool write_all(int fd, const unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t done = write(fd, p, n);
        if (done < 0 && errno == EINTR)
            continue;
        if (done <= 0) {
            if (done == 0)
                errno = EIO;
            return false;
        }
        p += done;
        n -= (size_t)done;
    }
    return true;
}

/* Written with open/write rather than stdio, so that a build with files but NNRT_NO_STDIO has them. */
int nnrt_write_tensor_file(const char *path, const float *src, int rank, const int64_t *dims, nnrt_error *err) {
    size_t numel;
    if (nnrt_shape_numel(rank, dims, &numel) < 0) {
        nnrt_seterr(err, "'%s': invalid tensor shape (rank %d)", path, rank);
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        nnrt_seterr(err, "cannot open '%s' for writing: %s", path, strerror(errno));
        return -1;
    }
    /* Large enough for an .npy header of rank NNRT_MAX_RANK (under 512 bytes), and a multiple of 4. */
    unsigned char buf[16384];
    bool ok = true;
    if (is_npy_path(path)) {
        size_t n = format_npy_header(buf, sizeof buf, rank, dims);
        if (n == 0)
            errno = EINVAL;
        ok = n > 0 && write_all(fd, buf, n);
    }
    for (size_t done = 0; ok && done < numel;) {
        size_t chunk = numel - done < sizeof buf / 4 ? numel - done : sizeof buf / 4;
        for (size_t i = 0; i < chunk; i++) {
            uint32_t bits;
            memcpy(&bits, &src[done + i], 4);
            nnrt_store_le32(buf + 4 * i, bits);
        }
        ok = write_all(fd, buf, chunk * 4);
        done += chunk;
    }
    int saved_errno = errno;
    if (close(fd) != 0 && ok) {
        ok = false;
        saved_errno = errno;
    }
    if (!ok) {
        nnrt_seterr(err, "cannot write '%s': %s", path, strerror(saved_errno));
        return -1;
    }
    return 0;
}
#endif
