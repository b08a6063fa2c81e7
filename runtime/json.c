/* json.c — a small, strict JSON parser for safetensors headers.
 *
 * Generated programs may depend on libc only, so the runtime carries its own parser. It is a plain
 * recursive-descent parser over a byte buffer with an explicit length: every read goes through peek()
 * or a check against p->len, so no input, however malformed or truncated, makes it read out of bounds,
 * and JSON_MAX_DEPTH bounds the recursion. Strings are scanned twice: once to find their end (and so the
 * size of the decoded text, which is never longer than the source), then again to decode escapes and
 * check UTF-8 into an arena buffer of that size.
 *
 * All nodes and strings come from an arena of large blocks that is freed as a whole: a header is parsed
 * once, looked at, and thrown away; the blocks come from the runtime's heap (nnrt_alloc). Numbers are
 * converted with strtod, which reads the decimal point of the C locale that generated programs run in (they
 * never call setlocale), or under NNRT_NO_STDIO by decimal_to_double below; integers are also parsed
 * exactly, since shapes and byte offsets need every digit of an int64.
 */
#include "json.h"

#include <stdalign.h>
#include <string.h>
#ifdef NNRT_NO_STDIO
#include <math.h>     /* HUGE_VAL */
#else
#include <stdlib.h>   /* strtod */
#endif

/* ---- Arena ---- */

struct json_block {
    json_block *prev;
    size_t used, cap;
    alignas(max_align_t) unsigned char data[];
};

/* Blocks start at 1 KiB and double up to 64 KiB, so that a small header takes little memory (which
   matters when the heap is a caller's buffer) and a large one few blocks. */
enum { ARENA_FIRST_BLOCK = 1024, ARENA_BLOCK_SIZE = 64 * 1024 };

static void *arena_alloc(json_doc *doc, size_t size) {
    size_t align = alignof(max_align_t);
    if (size > SIZE_MAX / 2)
        return NULL;
    size = (size + align - 1) / align * align;
    json_block *b = doc->blocks;
    if (!b || b->cap - b->used < size) {
        size_t cap = !b ? ARENA_FIRST_BLOCK : b->cap >= ARENA_BLOCK_SIZE / 2 ? ARENA_BLOCK_SIZE : 2 * b->cap;
        cap = size > cap ? size : cap;
        b = nnrt_alloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->prev = doc->blocks;
        b->used = 0;
        b->cap = cap;
        doc->blocks = b;
    }
    void *mem = b->data + b->used;
    b->used += size;
    return mem;
}

void nnrt_json_free(json_doc *doc) {
    json_block *b = doc->blocks;
    while (b) {
        json_block *prev = b->prev;
        nnrt_release(b);
        b = prev;
    }
    doc->blocks = NULL;
    doc->root = NULL;
}

/* ---- Parser ---- */

typedef struct {
    const unsigned char *text;
    size_t len, pos;
    json_doc *doc;
    nnrt_error *err;
    int depth;
} parser;

static int fail(parser *p, const char *what) {
    if (p->pos < p->len)
        nnrt_seterr(p->err, "at byte %zu: %s", p->pos, what);
    else
        nnrt_seterr(p->err, "at byte %zu (end of input): %s", p->pos, what);
    return -1;
}

/* The byte at pos, or -1 past the end: the only way the parser looks at input outside string scanning. */
static int peek(const parser *p) {
    return p->pos < p->len ? p->text[p->pos] : -1;
}

static void skip_whitespace(parser *p) {
    for (int c = peek(p); c == ' ' || c == '\t' || c == '\n' || c == '\r'; c = peek(p))
        p->pos++;
}

static json_value *new_value(parser *p, json_type type) {
    json_value *v = arena_alloc(p->doc, sizeof *v);
    if (!v) {
        fail(p, "out of memory");
        return NULL;
    }
    memset(v, 0, sizeof *v);
    v->type = type;
    v->offset = p->pos;
    return v;
}

static int parse_value(parser *p, json_value **out);

/* literal = "true" / "false" / "null" */
static int parse_literal(parser *p, const char *word, json_type type, json_value **out) {
    size_t n = nnrt__strlen(word);
    if (p->len - p->pos < n || nnrt__memcmp(p->text + p->pos, word, n) != 0)
        return fail(p, "invalid literal (expected true, false or null)");
    if (!(*out = new_value(p, type)))
        return -1;
    p->pos += n;
    return 0;
}

static bool is_digit(int c) {
    return c >= '0' && c <= '9';
}

#ifdef NNRT_NO_STDIO
/* A JSON number (already checked) as the nearest double when its significant digits fit in 15 and its
   decimal exponent in +-22 (Clinger's fast path: both exact in double, one correctly rounded operation),
   otherwise within a few ulp. Safetensors headers hold integers, which are also parsed exactly. */
static double decimal_to_double(const char *s) {
    bool negative = *s == '-';
    s += negative;
    uint64_t digits = 0;
    int ndigits = 0, exp10 = 0;
    for (; is_digit(*s); s++) {
        if (ndigits < 19) {
            digits = digits * 10 + (uint64_t)(*s - '0');
            ndigits += digits > 0;
        } else {
            exp10++;
        }
    }
    if (*s == '.')
        for (s++; is_digit(*s); s++)
            if (ndigits < 19) {
                digits = digits * 10 + (uint64_t)(*s - '0');
                ndigits += digits > 0;
                exp10--;
            }
    if (*s == 'e' || *s == 'E') {
        s++;
        bool eneg = *s == '-';
        s += *s == '-' || *s == '+';
        int e = 0;
        for (; is_digit(*s); s++)
            e = e < 100000 ? e * 10 + (*s - '0') : e;
        exp10 += eneg ? -e : e;
    }
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    double v = (double)digits;
    if (digits == 0) {
        v = 0.0;
    } else if (exp10 >= -22 && exp10 <= 22) {
        v = exp10 < 0 ? v / pow10[-exp10] : v * pow10[exp10];
    } else {
        for (; exp10 > 22 && v < 1e308; exp10 -= 22)
            v *= 1e22;
        for (; exp10 < -22 && v > 0.0; exp10 += 22)
            v /= 1e22;
        if (exp10 > 0 && exp10 <= 22)
            v *= pow10[exp10];
        else if (exp10 < 0 && exp10 >= -22)
            v /= pow10[-exp10];
        else if (exp10 > 0)
            v = HUGE_VAL;
        else if (exp10 < 0)
            v = 0.0;
    }
    return negative ? -v : v;
}
#endif

/* number = [ "-" ] ( "0" / digit1-9 *digit ) [ "." 1*digit ] [ ( "e" / "E" ) [ "+" / "-" ] 1*digit ] */
static int parse_number(parser *p, json_value **out) {
    size_t start = p->pos;
    bool negative = peek(p) == '-';
    if (negative)
        p->pos++;
    if (!is_digit(peek(p)))
        return fail(p, "expected a digit");

    /* The integer part, accumulated as a magnitude that may reach 2^63 (for INT64_MIN). */
    bool fits = true;
    uint64_t magnitude = 0, limit = (uint64_t)INT64_MAX + negative;
    if (peek(p) == '0') {
        p->pos++;
        if (is_digit(peek(p)))
            return fail(p, "leading zeros are not allowed in numbers");
    } else {
        for (; is_digit(peek(p)); p->pos++) {
            unsigned digit = (unsigned)(peek(p) - '0');
            if (magnitude > (limit - digit) / 10)
                fits = false;
            else
                magnitude = magnitude * 10 + digit;
        }
    }
    bool integral = true;
    if (peek(p) == '.') {
        integral = false;
        p->pos++;
        if (!is_digit(peek(p)))
            return fail(p, "expected a digit after the decimal point");
        while (is_digit(peek(p)))
            p->pos++;
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        integral = false;
        p->pos++;
        if (peek(p) == '+' || peek(p) == '-')
            p->pos++;
        if (!is_digit(peek(p)))
            return fail(p, "expected a digit in the exponent");
        while (is_digit(peek(p)))
            p->pos++;
    }

    size_t n = p->pos - start;
    char *copy = arena_alloc(p->doc, n + 1);   /* strtod needs a terminated string */
    json_value *v = new_value(p, JSON_NUMBER);
    if (!copy || !v)
        return fail(p, "out of memory");
    memcpy(copy, p->text + start, n);
    copy[n] = '\0';
    v->offset = start;
#ifdef NNRT_NO_STDIO
    v->number = decimal_to_double(copy);
#else
    v->number = strtod(copy, NULL);
#endif
    v->is_int = integral && fits;
    if (v->is_int && !negative)
        v->integer = (int64_t)magnitude;
    else if (v->is_int && magnitude > 0)
        v->integer = -(int64_t)(magnitude - 1) - 1;   /* reaches INT64_MIN without overflow */
    *out = v;
    return 0;
}

static int hex_digit(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The four hex digits of a \u escape starting at pos; advances past them. */
static int parse_hex4(parser *p, uint32_t *unit) {
    *unit = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(peek(p));
        if (d < 0)
            return fail(p, "expected four hex digits after \\u");
        *unit = *unit << 4 | (uint32_t)d;
        p->pos++;
    }
    return 0;
}

static size_t put_utf8(char *dst, uint32_t cp) {
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xc0 | cp >> 6);
        dst[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xe0 | cp >> 12);
        dst[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        dst[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    dst[0] = (char)(0xf0 | cp >> 18);
    dst[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    dst[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    dst[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Length of the well-formed UTF-8 sequence at pos (1..4), or 0 if it is malformed, overlong, a surrogate,
 * above U+10FFFF or cut off by the end of input. */
static size_t utf8_sequence_length(const parser *p) {
    const unsigned char *s = p->text + p->pos;
    size_t avail = p->len - p->pos;
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint32_t cp, min;
    if ((c & 0xe0) == 0xc0) n = 2, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0) n = 3, cp = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0) n = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* string = quotation-mark *char quotation-mark; pos is at the opening quote. */
static int parse_string_text(parser *p, const char **out, size_t *out_len) {
    p->pos++;
    size_t start = p->pos, end = start;
    while (end < p->len && p->text[end] != '"')
        end += p->text[end] == '\\' ? 2 : 1;
    if (end >= p->len) {
        p->pos = p->len;
        return fail(p, "unterminated string");
    }

    char *buf = arena_alloc(p->doc, end - start + 1);
    if (!buf)
        return fail(p, "out of memory");
    size_t n = 0;
    while (p->pos < end) {
        unsigned char c = p->text[p->pos];
        if (c < 0x20)
            return fail(p, "control character in string (must be escaped)");
        if (c >= 0x80) {
            size_t seq = utf8_sequence_length(p);
            if (seq == 0)
                return fail(p, "invalid UTF-8 in string");
            memcpy(buf + n, p->text + p->pos, seq);
            n += seq;
            p->pos += seq;
            continue;
        }
        if (c != '\\') {
            buf[n++] = (char)c;
            p->pos++;
            continue;
        }
        p->pos++;
        int escape = peek(p);
        p->pos++;
        switch (escape) {
        case '"':  buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case '/':  buf[n++] = '/'; break;
        case 'b':  buf[n++] = '\b'; break;
        case 'f':  buf[n++] = '\f'; break;
        case 'n':  buf[n++] = '\n'; break;
        case 'r':  buf[n++] = '\r'; break;
        case 't':  buf[n++] = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (parse_hex4(p, &cp) < 0)
                return -1;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return fail(p, "unpaired low surrogate in \\u escape");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                uint32_t low;
                if (p->len - p->pos < 2 || p->text[p->pos] != '\\' || p->text[p->pos + 1] != 'u')
                    return fail(p, "high surrogate not followed by a \\u low surrogate");
                p->pos += 2;
                if (parse_hex4(p, &low) < 0)
                    return -1;
                if (low < 0xdc00 || low > 0xdfff)
                    return fail(p, "high surrogate not followed by a low surrogate");
                cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
            }
            n += put_utf8(buf + n, cp);
            break;
        }
        default:
            p->pos--;
            return fail(p, "invalid escape in string");
        }
    }
    /* An escape may have consumed the closing quote found by the scan ("\\u12\""), so check again. */
    if (p->pos != end)
        return fail(p, "unterminated string");
    p->pos = end + 1;
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return 0;
}

static int parse_string(parser *p, json_value **out) {
    json_value *v = new_value(p, JSON_STRING);
    if (!v || parse_string_text(p, &v->str, &v->len) < 0)
        return -1;
    *out = v;
    return 0;
}

/* array = begin-array [ value *( value-separator value ) ] end-array
 * object = begin-object [ member *( value-separator member ) ] end-object
 * member = string name-separator value
 * Both are parsed here: they differ only in the key before each child. */
static int parse_container(parser *p, json_type type, json_value **out) {
    bool is_object = type == JSON_OBJECT;
    char close = is_object ? '}' : ']';
    if (++p->depth > JSON_MAX_DEPTH)
        return fail(p, "nesting too deep");
    json_value *v = new_value(p, type);
    if (!v)
        return -1;
    p->pos++;
    skip_whitespace(p);
    json_value **link = &v->first;
    if (peek(p) == close) {
        p->pos++;
    } else {
        for (;;) {
            const char *key = NULL;
            size_t key_len = 0;
            if (is_object) {
                skip_whitespace(p);
                if (peek(p) != '"')
                    return fail(p, "expected a string key");
                if (parse_string_text(p, &key, &key_len) < 0)
                    return -1;
                skip_whitespace(p);
                if (peek(p) != ':')
                    return fail(p, "expected ':' after object key");
                p->pos++;
            }
            json_value *child;
            if (parse_value(p, &child) < 0)
                return -1;
            child->key = key;
            child->key_len = key_len;
            *link = child;
            link = &child->next;
            v->len++;
            skip_whitespace(p);
            if (peek(p) == ',') {
                p->pos++;
                continue;
            }
            if (peek(p) == close) {
                p->pos++;
                break;
            }
            return fail(p, is_object ? "expected ',' or '}' in object" : "expected ',' or ']' in array");
        }
    }
    p->depth--;
    *out = v;
    return 0;
}

/* value = false / null / true / object / array / number / string, with surrounding whitespace */
static int parse_value(parser *p, json_value **out) {
    skip_whitespace(p);
    switch (peek(p)) {
    case '{': return parse_container(p, JSON_OBJECT, out);
    case '[': return parse_container(p, JSON_ARRAY, out);
    case '"': return parse_string(p, out);
    case 't': return parse_literal(p, "true", JSON_TRUE, out);
    case 'f': return parse_literal(p, "false", JSON_FALSE, out);
    case 'n': return parse_literal(p, "null", JSON_NULL, out);
    case -1:  return fail(p, "expected a value");
    default:
        if (peek(p) == '-' || is_digit(peek(p)))
            return parse_number(p, out);
        return fail(p, "expected a value");
    }
}

int nnrt_json_parse(json_doc *doc, const char *text, size_t len, nnrt_error *err) {
    doc->root = NULL;
    doc->blocks = NULL;
    parser p = {.text = (const unsigned char *)text, .len = len, .doc = doc, .err = err};
    json_value *root;
    if (parse_value(&p, &root) < 0) {
        nnrt_json_free(doc);
        return -1;
    }
    skip_whitespace(&p);
    if (p.pos != len) {
        fail(&p, "unexpected data after the JSON value");
        nnrt_json_free(doc);
        return -1;
    }
    doc->root = root;
    return 0;
}

const json_value *nnrt_json_get(const json_value *object, const char *key) {
    size_t n = nnrt__strlen(key);
    for (const json_value *m = object->first; m; m = m->next)
        if (m->key_len == n && nnrt__memcmp(m->key, key, n) == 0)
            return m;
    return NULL;
}

const char *nnrt_json_type_name(json_type type) {
    static const char *const names[] = {"null", "false", "true", "number", "string", "array", "object"};
    return names[type];
}
