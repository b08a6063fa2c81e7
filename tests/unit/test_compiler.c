/* test_compiler.c — unit tests of the compiler's stages (lexer/parser, elaboration, shape rules, graph
 * invariants and the memory plan), driven through the functions of compiler/nnc.h.
 *
 * A standalone program: it prints "ok - NAME" or "FAIL - NAME: DETAIL" for each check and ends with
 * "N passed, N failed", exiting 1 if anything failed. Sources are strings (src_from_string) or small
 * files in a mkdtemp directory (imports); the .net files of models/ are loaded from the repository root.
 * Every call into the compiler runs with stderr redirected to a temporary file, so its diagnostics are
 * checked by their text (and counted by their "error:" lines) instead of being printed.
 *
 * Build and run: make build/tests/test_compiler && build/tests/test_compiler
 */
#include "nnc.h"
#include "kernels/nnk.h"

#include <fcntl.h>
#include <glob.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int passed, failed;

static void check(bool ok, const char *name, const char *detail_fmt, ...) __attribute__((format(printf, 3, 4)));
static void check(bool ok, const char *name, const char *detail_fmt, ...) {
    if (ok) {
        printf("ok - %s\n", name);
        passed++;
        return;
    }
    printf("FAIL - %s: ", name);
    va_list ap;
    va_start(ap, detail_fmt);
    vprintf(detail_fmt, ap);
    va_end(ap);
    printf("\n");
    failed++;
    fflush(stdout);
}

/* ---------------------------------------------------------------- capturing stderr */

static FILE *cap_file;
static int cap_saved = -1;

static void cap_begin(void) {
    fflush(stderr);
    cap_file = tmpfile();
    if (!cap_file) {
        perror("tmpfile");
        exit(2);
    }
    cap_saved = dup(2);
    dup2(fileno(cap_file), 2);
}

static char *cap_end(void) {
    fflush(stderr);
    dup2(cap_saved, 2);
    close(cap_saved);
    cap_saved = -1;
    long n = ftell(cap_file);
    if (n < 0)
        n = 0;
    char *s = calloc((size_t)n + 1, 1);
    rewind(cap_file);
    size_t got = fread(s, 1, (size_t)n, cap_file);
    s[got] = 0;
    fclose(cap_file);
    return s;
}

static int count_substr(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* The first line of s containing "error", for short FAIL details. */
static char *first_error(const char *s) {
    const char *p = strstr(s, "error");
    if (!p)
        return xstrdup(s[0] ? s : "(no message)");
    while (p > s && p[-1] != '\n')
        p--;
    const char *e = strchr(p, '\n');
    return e ? xstrndup(p, (size_t)(e - p)) : xstrdup(p);
}

/* One line, for details: newlines shown as \n. */
static char *oneline(const char *s) {
    Buf b = {0};
    buf_puts(&b, "");
    for (; *s; s++) {
        if (*s == '\n')
            buf_puts(&b, "\\n");
        else {
            char c[2] = {*s, 0};
            buf_puts(&b, c);
        }
    }
    return buf_take(&b);
}

/* ---------------------------------------------------------------- parsing helpers */

typedef struct {
    Vec decls;
    int nerr;      /* parse_file's count */
    int nlines;    /* "error:" lines on stderr */
    char *err;
} Parsed;

static Parsed parse(const char *text) {
    Parsed p = {0};
    cap_begin();
    p.nerr = parse_file(src_from_string("t.net", text), &p.decls);
    p.err = cap_end();
    p.nlines = count_substr(p.err, "error:");
    return p;
}

/* The expression of `let v = EXPR`, or NULL on a syntax error (last_parse holds the details). */
static Parsed last_parse;
static Node *expr_node(const char *expr) {
    last_parse = parse(format("let v = %s\n", expr));
    if (last_parse.nerr || last_parse.decls.len != 1)
        return NULL;
    return VEC_AT(last_parse.decls, 0, Decl *)->value;
}

static char *node_text(const Node *n) {
    Buf b = {0};
    buf_puts(&b, "");
    print_node(&b, n);
    return buf_take(&b);
}

/* Checks that EXPR parses and prints back as WANT (print_node parenthesises every binary). */
static void expr_prints(const char *name, const char *expr, const char *want) {
    Node *n = expr_node(expr);
    if (!n) {
        check(false, name, "'%s' did not parse: %s", oneline(expr), first_error(last_parse.err));
        return;
    }
    char *got = node_text(n);
    check(strcmp(got, want) == 0, name, "'%s' printed as '%s', expected '%s'", oneline(expr), got, want);
}

/* Checks that TEXT has exactly NERR syntax errors (parse_file's count and the "error:" lines). */
static Parsed syntax_errors(const char *name, const char *text, int nerr, const char *fragment) {
    Parsed p = parse(text);
    bool ok = p.nerr == nerr && p.nlines == nerr && (!fragment || strstr(p.err, fragment));
    check(ok, name, "'%s': expected %d error(s)%s%s%s, parse_file returned %d with %d error line(s): %s", oneline(text), nerr,
          fragment ? " mentioning \"" : "", fragment ? fragment : "", fragment ? "\"" : "", p.nerr, p.nlines, oneline(p.err));
    return p;
}

/* The body of `block b(x) { BODY }`, or NULL on a syntax error. */
static Vec *body_of(const char *body) {
    last_parse = parse(format("block b(x) {\n%s\n}\n", body));
    if (last_parse.nerr || last_parse.decls.len != 1)
        return NULL;
    return &VEC_AT(last_parse.decls, 0, Decl *)->body;
}

static Decl *decl_at(Parsed *p, int i) { return i < p->decls.len ? p->decls.items[i] : NULL; }

/* "t.net:L:C: error:" of the first error in text. */
static bool error_pos(const char *text, int *line, int *col) {
    const char *p = strstr(text, "t.net:");
    return p && sscanf(p, "t.net:%d:%d: error:", line, col) == 2;
}

/* A path as "seg|seg" with parts "text" or "{expr}", and a trailing "*" for `as self`. */
static char *path_shape(const Path *p) {
    Buf b = {0};
    buf_puts(&b, "");
    for (int i = 0; i < p->segs.len; i++) {
        PathSeg *seg = p->segs.items[i];
        if (i)
            buf_puts(&b, "|");
        for (int j = 0; j < seg->parts.len; j++) {
            PathPart *part = seg->parts.items[j];
            if (part->text)
                buf_puts(&b, part->text);
            else
                buf_printf(&b, "{%s}", node_text(part->expr));
        }
    }
    if (p->is_self)
        buf_puts(&b, "*");
    return buf_take(&b);
}

/* Checks that `f(x) as PATH` parses with the path split as WANT. */
static void path_parses(const char *name, const char *path, const char *want) {
    Node *n = expr_node(format("f(x) as %s", path));
    if (!n || n->kind != ND_AS) {
        check(false, name, "'as %s' did not parse to an 'as' node: %s", path, n ? node_text(n) : first_error(last_parse.err));
        return;
    }
    char *got = path_shape(n->path);
    check(strcmp(got, want) == 0 && n->lhs->kind == ND_CALL, name, "'as %s' split as '%s', expected '%s'", path, got, want);
}

/* ---------------------------------------------------------------- elaboration helpers */

static char *last_err = "";   /* stderr of the last elaboration */
static int last_nerr;         /* its "error:" lines */

/* Parses TEXT and elaborates it. DEFINES is "NAME=VALUE|NAME=VALUE" or NULL. */
static Graph *elab(const char *text, const char *model, const char *defines) {
    cap_begin();
    Vec decls = {0};
    int perr = parse_file(src_from_string("t.net", text), &decls);
    Graph *g = NULL;
    if (perr == 0) {
        ElabOptions opts = {0};
        opts.model = model;
        if (defines) {
            char *all = xstrdup(defines);
            for (char *save = NULL, *tok = strtok_r(all, "|", &save); tok; tok = strtok_r(NULL, "|", &save)) {
                Define *d = xcalloc(1, sizeof *d);
                char *eq = strchr(tok, '=');
                d->name = xstrndup(tok, (size_t)(eq - tok));
                d->value = xstrdup(eq + 1);
                vec_push(&opts.defines, d);
            }
        }
        g = elaborate(&decls, &opts);
    }
    last_err = cap_end();
    if (perr)
        last_err = format("(syntax error) %s", last_err);
    last_nerr = count_substr(last_err, "error:");
    return g;
}

/* A model around BODY, with blocks and lets in PRE. */
static const char *model_src(const char *pre, const char *inputs, const char *body) {
    return format("%s\nmodel m(%s) {\n%s\n}\n", pre, inputs, body);
}

/* Checks that elaboration fails with exactly one error whose text contains FRAGMENT. */
static void elab_fails(const char *name, const char *text, const char *model, const char *defines, const char *fragment) {
    Graph *g = elab(text, model, defines);
    if (g) {
        check(false, name, "elaboration succeeded; expected an error mentioning \"%s\"", fragment);
        return;
    }
    bool has = strstr(last_err, fragment) != NULL;
    check(has && last_nerr == 1, name, "expected one error mentioning \"%s\", got %d: %s", fragment, last_nerr, oneline(last_err));
}

/* The compile-time value of EXPR as elaboration's messages describe it ("int 3", "float 0.5", "bool true",
   "list [1, 2]"), or "error: ..." when evaluating it fails. It is passed as pad's `after` (an int):
   ints pad x [2, 3, 5, 7] (their value is read from the shape, or from the message for negatives);
   anything else is refused with a message that describes it. */
static char *value_of(const char *pre, const char *body, const char *expr) {
    const char *src = model_src(pre, "x: f32[2, 3, 5, 7]", format("%s\ny_ = pad(x, 0, 0, %s)\nreturn relu(y_)", body, expr));
    Graph *g = elab(src, NULL, NULL);
    if (g) {
        Tensor *out = g->outputs.items[0];
        return format("int %lld", (long long)(out->dims[0] - 2));
    }
    const char *p;
    long long v;
    if ((p = strstr(last_err, "found before=0 after=")) && sscanf(p, "found before=0 after=%lld", &v) == 1 && last_nerr == 1)
        return format("int %lld", v);
    if ((p = strstr(last_err, "argument 'after' of pad must be an int, found ")) && last_nerr == 1) {
        p += strlen("argument 'after' of pad must be an int, found ");
        const char *e = strchr(p, '\n');
        return xstrndup(p, e ? (size_t)(e - p) : strlen(p));
    }
    return format("error: %s", first_error(last_err));
}

static void value_is(const char *name, const char *pre, const char *body, const char *expr, const char *want) {
    char *got = value_of(pre, body, expr);
    check(strcmp(got, want) == 0, name, "'%s' is '%s', expected '%s'", oneline(expr), got, want);
}

/* Checks that evaluating EXPR fails with one error mentioning FRAGMENT. */
static void value_fails(const char *name, const char *pre, const char *body, const char *expr, const char *fragment) {
    char *got = value_of(pre, body, expr);
    bool ok = strncmp(got, "error: ", 7) == 0 && strstr(last_err, fragment) && last_nerr == 1;
    check(ok, name, "'%s': expected one error mentioning \"%s\", got '%s' (%d error(s): %s)", oneline(expr), fragment, got, last_nerr,
          oneline(last_err));
}

/* Checks that COND holds: the model returns relu(x) if it does, sigmoid(x) if not. */
static void holds(const char *name, const char *pre, const char *body, const char *cond) {
    const char *src = model_src(pre, "x: f32[2, 3, 5, 7]", format("%s\nif %s { return relu(x) }\nreturn sigmoid(x)", body, cond));
    Graph *g = elab(src, NULL, NULL);
    if (!g) {
        check(false, name, "'%s': elaboration failed: %s", oneline(cond), oneline(last_err));
        return;
    }
    Tensor *out = g->outputs.items[0];
    check(out->producer && out->producer->kind == OPK_RELU, name, "'%s' is false", oneline(cond));
}

static Tensor *find_weight(const Graph *g, const char *key) {
    for (int i = 0; i < g->weights.len; i++)
        if (strcmp(VEC_AT(g->weights, i, Tensor *)->name, key) == 0)
            return g->weights.items[i];
    return NULL;
}

/* "key [d0, d1], key [d0]" in creation order. */
static char *weights_text(const Graph *g) {
    Buf b = {0};
    buf_puts(&b, "");
    for (int i = 0; i < g->weights.len; i++) {
        Tensor *t = g->weights.items[i];
        buf_printf(&b, "%s%s %s", i ? ", " : "", t->name, shape_text(t->rank, t->dims));
    }
    return buf_take(&b);
}

static int count_ops(const Graph *g, OpKind kind) {
    int n = 0;
    for (int i = 0; i < g->ops.len; i++)
        n += VEC_AT(g->ops, i, Op *)->kind == kind;
    return n;
}

static Op *out_op(const Graph *g) { return VEC_AT(g->outputs, 0, Tensor *)->producer; }

static char *out_shape(const Graph *g) {
    Tensor *t = g->outputs.items[0];
    return shape_text(t->rank, t->dims);
}

/* Elaborates `model m(INPUTS) { return EXPR }` and checks the output's shape, and the weights when
   WEIGHTS is not NULL. Returns the graph (NULL on failure) for further checks. */
static Graph *shape_ok(const char *name, const char *inputs, const char *expr, const char *want, const char *weights) {
    Graph *g = elab(model_src("", inputs, format("return %s", expr)), NULL, NULL);
    if (!g) {
        check(false, name, "'%s' on %s: elaboration failed: %s", expr, inputs, oneline(last_err));
        return NULL;
    }
    char *got = out_shape(g);
    char *wt = weights_text(g);
    bool ok = strcmp(got, want) == 0 && (!weights || strcmp(wt, weights) == 0);
    if (weights)
        check(ok, name, "'%s' on %s: shape %s weights {%s}, expected shape %s weights {%s}", expr, inputs, got, wt, want, weights);
    else
        check(ok, name, "'%s' on %s: shape %s, expected %s", expr, inputs, got, want);
    if (ok && !verify_graph(g))
        check(false, name, "verify_graph failed");
    return g;
}

static void shape_err(const char *name, const char *inputs, const char *expr, const char *fragment) {
    elab_fails(name, model_src("", inputs, format("return %s", expr)), NULL, NULL, fragment);
}

/* ---------------------------------------------------------------- the lexer and the parser */

static void test_statements(void) {
    Parsed p = parse("let a = 1; let b = 2\nlet c = 3\n\n;\nlet d = 4");
    check(p.nerr == 0 && p.decls.len == 4, "parse: lets separated by ';' and newlines, last without newline",
          "%d errors, %d decls: %s", p.nerr, p.decls.len, oneline(p.err));

    Vec *body = body_of("y = 1; z = 2; return y");
    check(body && body->len == 3 && VEC_AT(*body, 2, Stmt *)->kind == ST_RETURN, "parse: statements separated by ';' in a block",
          "%s", body ? format("%d statements", body->len) : first_error(last_parse.err));

    body = body_of("\n\n  y = 1 ;; \n\n z = 2\n\n return z\n\n");
    check(body && body->len == 3, "parse: empty lines and empty statements", "%s",
          body ? format("%d statements", body->len) : first_error(last_parse.err));

    p = parse("block b(x) { return x }");
    check(p.nerr == 0 && p.decls.len == 1 && VEC_AT(p.decls, 0, Decl *)->body.len == 1, "parse: one-line block",
          "%s", oneline(p.err));

    body = body_of("y = f(x,\n      64,\n      stride=2)\nreturn y");
    check(body && body->len == 2 && VEC_AT(*body, 0, Stmt *)->expr->args.len == 3, "parse: newlines inside ( ) are ignored",
          "%s", body ? format("%d statements", body->len) : first_error(last_parse.err));

    Node *n = expr_node("[1,\n 2,\n\n 3,\n]");
    check(n && n->kind == ND_LIST && n->args.len == 3, "parse: newlines inside [ ] are ignored (with a trailing comma)", "%s",
          n ? node_text(n) : first_error(last_parse.err));

    n = expr_node("f([1,\n2], (3 +\n4),\n[g(5,\n6)])");
    check(n && n->kind == ND_CALL && n->args.len == 3, "parse: nested ( [ ( over several lines", "%s",
          n ? node_text(n) : first_error(last_parse.err));

    body = body_of("y = (1 +\n 2)\nz = y");
    check(body && body->len == 2, "parse: newline inside ( ) then a new statement after ')'", "%s",
          body ? format("%d statements", body->len) : first_error(last_parse.err));

    body = body_of("if c {\n  y = 1\n}\nelse if d {\n  y = 2\n}\n\n   else {\n  y = 3\n}\nreturn y");
    bool ok = body && body->len == 2;
    Stmt *s = ok ? body->items[0] : NULL;
    ok = ok && s->kind == ST_IF && s->body.len == 1 && s->els.len == 1;
    Stmt *s2 = ok ? s->els.items[0] : NULL;
    ok = ok && s2->kind == ST_IF && s2->body.len == 1 && s2->els.len == 1 && VEC_AT(s2->els, 0, Stmt *)->kind == ST_ASSIGN;
    check(ok, "parse: '}' newline 'else' and 'else if' chains", "%s", body ? "wrong tree" : first_error(last_parse.err));

    body = body_of("if c { y = 1 } else { y = 2 }\nreturn y");
    check(body && body->len == 2 && VEC_AT(*body, 0, Stmt *)->els.len == 1, "parse: if/else on one line", "%s",
          body ? "wrong tree" : first_error(last_parse.err));

    body = body_of("if c { y = 1 }\nelsewhere = 2\nreturn y");
    check(body && body->len == 3 && VEC_AT(*body, 1, Stmt *)->kind == ST_ASSIGN,
          "parse: a name beginning with 'else' on the next line is not an else", "%s",
          body ? format("%d statements", body->len) : first_error(last_parse.err));

    body = body_of("if c {\n  y = 1\n}\n# why the else\nelse {\n  y = 2\n}\nreturn y");
    check(body && body->len == 2 && VEC_AT(*body, 0, Stmt *)->els.len == 1, "parse: a comment line between '}' and 'else'", "%s",
          body ? "wrong tree" : first_error(last_parse.err));

    p = parse("let a = 1\r\nblock b(x) {\r\n  if c {\r\n    y = 1\r\n  }\r\n  else {\r\n    y = 2\r\n  }\r\n  return y # c\r\n}\r\n");
    check(p.nerr == 0 && p.decls.len == 2 && VEC_AT(VEC_AT(p.decls, 1, Decl *)->body, 0, Stmt *)->els.len == 1,
          "parse: CRLF line ends", "%s", oneline(p.err));
    p = parse("");
    Parsed p2 = parse("# only a comment");
    check(p.nerr == 0 && p.decls.len == 0 && p2.nerr == 0 && p2.decls.len == 0, "parse: an empty file and a comment-only file",
          "%s %s", oneline(p.err), oneline(p2.err));
    p = parse("let s = \"a#b}\" # c\nlet t = 1");
    check(p.nerr == 0 && p.decls.len == 2 && strcmp(VEC_AT(p.decls, 0, Decl *)->value->str, "a#b}") == 0,
          "parse: '#' and '}' inside a string", "%s", oneline(p.err));

    p = parse("# a comment\nlet a = 1 # trailing comment\n   # indented comment\nlet b = 2#no space\n");
    check(p.nerr == 0 && p.decls.len == 2, "parse: comments", "%d errors, %d decls: %s", p.nerr, p.decls.len, oneline(p.err));

    body = body_of("y = f(x, # comment inside a call\n      1)\nreturn y");
    check(body && body->len == 2, "parse: a comment inside ( ) on a continued line", "%s",
          body ? format("%d statements", body->len) : first_error(last_parse.err));

    body = body_of("for i in 0..n {\n  x = relu(x)\n}\nreturn x");
    s = body && body->len == 2 ? body->items[0] : NULL;
    check(s && s->kind == ST_FOR && strcmp(VEC_AT(s->names, 0, Node *)->str, "i") == 0 && s->lo->kind == ND_INT &&
              s->hi->kind == ND_NAME && s->body.len == 1,
          "parse: for i in 0..n { }", "%s", body ? "wrong tree" : first_error(last_parse.err));

    body = body_of("a, b = f(x)\nreturn a, b");
    ok = body && body->len == 2;
    ok = ok && VEC_AT(*body, 0, Stmt *)->names.len == 2 && VEC_AT(*body, 1, Stmt *)->values.len == 2;
    check(ok, "parse: a, b = f(x) and return a, b", "%s", body ? "wrong tree" : first_error(last_parse.err));

    body = body_of("a, b, c = f(x)\nreturn a");
    check(body && VEC_AT(*body, 0, Stmt *)->names.len == 3, "parse: three names bound at once", "%s",
          body ? "wrong tree" : first_error(last_parse.err));

    p = parse("block bottleneck(x, width: int, stride: int = 1, y = 2, t: tensor,) { return x }\n"
              "model m(image: f32[batch, 3, size, size], b: f32[4],) { return image }");
    ok = p.nerr == 0 && p.decls.len == 2;
    if (ok) {
        Decl *d = p.decls.items[0];
        ok = d->kind == DECL_BLOCK && d->params.len == 5;
        Param *p1 = d->params.items[1], *p2 = d->params.items[2], *p3 = d->params.items[3];
        ok = ok && strcmp(p1->type, "int") == 0 && !p1->def && strcmp(p2->type, "int") == 0 && p2->def && p2->def->ival == 1 &&
             !p3->type && p3->def && !VEC_AT(d->params, 0, Param *)->type;
        Decl *m = p.decls.items[1];
        Param *img = m->params.items[0];
        ok = ok && m->kind == DECL_MODEL && m->params.len == 2 && img->has_dims && img->dims.len == 4 && strcmp(img->type, "f32") == 0;
    }
    check(ok, "parse: parameters (types, defaults, f32[...] dims, trailing commas)", "%s", oneline(p.err));

    p = parse("import \"lib/x.net\"\nlet a = 1\nblock b() { return 1 }\nmodel m() { return 2 }\n");
    ok = p.nerr == 0 && p.decls.len == 4 && VEC_AT(p.decls, 0, Decl *)->kind == DECL_IMPORT &&
         strcmp(VEC_AT(p.decls, 0, Decl *)->name, "lib/x.net") == 0 && VEC_AT(p.decls, 1, Decl *)->kind == DECL_LET &&
         VEC_AT(p.decls, 2, Decl *)->kind == DECL_BLOCK && VEC_AT(p.decls, 3, Decl *)->kind == DECL_MODEL;
    check(ok, "parse: import, let, block and model declarations", "%s", oneline(p.err));
}

static void test_literals(void) {
    Node *n = expr_node("1e-5");
    check(n && n->kind == ND_FLOAT && n->fval == 1e-5, "lex: float 1e-5", "%s", n ? node_text(n) : first_error(last_parse.err));
    n = expr_node("0.5");
    check(n && n->kind == ND_FLOAT && n->fval == 0.5, "lex: float 0.5", "%s", n ? node_text(n) : first_error(last_parse.err));
    n = expr_node("2.5e3");
    check(n && n->kind == ND_FLOAT && n->fval == 2500.0, "lex: float 2.5e3", "%s", n ? node_text(n) : first_error(last_parse.err));
    n = expr_node("1E+2");
    check(n && n->kind == ND_FLOAT && n->fval == 100.0, "lex: float 1E+2", "%s", n ? node_text(n) : first_error(last_parse.err));
    n = expr_node("123");
    check(n && n->kind == ND_INT && n->ival == 123, "lex: int 123", "%s", n ? node_text(n) : first_error(last_parse.err));
    n = expr_node("9223372036854775807");
    check(n && n->kind == ND_INT && n->ival == INT64_MAX, "lex: the largest int", "%s", n ? node_text(n) : first_error(last_parse.err));
    syntax_errors("lex: an int too large is an error", "let v = 9223372036854775808\n", 1, "too large");
    Vec *body = body_of("for i in 0..4 { }");
    Stmt *s = body ? body->items[0] : NULL;
    check(s && s->lo->kind == ND_INT && s->lo->ival == 0 && s->hi->kind == ND_INT && s->hi->ival == 4,
          "lex: 0..4 is int, '..', int (not a float)", "%s", body ? "wrong tree" : first_error(last_parse.err));
    n = expr_node("true");
    Node *f = n ? expr_node("false") : NULL;
    check(n && f && n->kind == ND_BOOL && n->bval && f->kind == ND_BOOL && !f->bval, "lex: true and false", "%s",
          first_error(last_parse.err));
    n = expr_node("\"plain\"");
    check(n && n->kind == ND_STR && strcmp(n->str, "plain") == 0, "lex: string", "%s", n ? node_text(n) : first_error(last_parse.err));
    n = expr_node("\"q\\\"uote b\\\\slash n\\nl t\\tab\"");
    check(n && n->kind == ND_STR && strcmp(n->str, "q\"uote b\\slash n\nl t\tab") == 0, "lex: string escapes \\\" \\\\ \\n \\t",
          "%s", n ? oneline(n->str) : first_error(last_parse.err));
    n = expr_node("\"\"");
    check(n && n->kind == ND_STR && n->str[0] == 0, "lex: empty string", "%s", n ? node_text(n) : first_error(last_parse.err));
    syntax_errors("lex: unknown escape is an error", "let v = \"a\\qb\"\n", 1, "escape");
    syntax_errors("lex: unterminated string is an error", "let v = \"abc\nlet w = 1\n", 1, "terminating");
    syntax_errors("lex: unexpected character is one error, then parsing goes on", "let v = $1\nlet w = 2\n", 1, "'$'");
    syntax_errors("lex: invalid number '2x'", "let v = 2x\n", 1, "2x");
    n = expr_node("x_1.shape");
    check(n && n->kind == ND_ATTR && strcmp(n->str, "shape") == 0 && strcmp(n->lhs->str, "x_1") == 0, "lex: identifiers and '.'",
          "%s", n ? node_text(n) : first_error(last_parse.err));
    n = expr_node("asx + selfish + input + iffy + format");
    check(n != NULL, "lex: identifiers that begin with keywords are names", "%s", first_error(last_parse.err));
}

static void test_paths(void) {
    path_parses("path: as conv1", "conv1", "conv1");
    path_parses("path: as downsample.0 (digit segment)", "downsample.0", "downsample|0");
    path_parses("path: as features.0.0 (not a float)", "features.0.0", "features|0|0");
    path_parses("path: as a.0.5 (not a float)", "a.0.5", "a|0|5");
    path_parses("path: as block.0 (keyword segment)", "block.0", "block|0");
    path_parses("path: as for.if.model.in (keyword segments)", "for.if.model.in", "for|if|model|in");
    path_parses("path: as 0 (digits only)", "0", "0");
    path_parses("path: as layer{s+1}.{i}", "layer{s+1}.{i}", "layer{(s + 1)}|{i}");
    path_parses("path: as encoder.layers.encoder_layer_{i}", "encoder.layers.encoder_layer_{i}",
                "encoder|layers|encoder_layer_{i}");
    path_parses("path: as a{i}_b{j}c", "a{i}_b{j}c", "a{i}_b{j}c");
    path_parses("path: as {i}", "{i}", "{i}");
    path_parses("path: as {[1, 2][i] * (j + 1)}", "{[1, 2][i] * (j + 1)}", "{([1, 2][i] * (j + 1))}");
    path_parses("path: as self", "self", "self*");
    path_parses("path: as selfie is not self", "selfie", "selfie");
    path_parses("path: as self.x is not self", "self.x", "self|x");

    Node *n = expr_node("g(f(x) as a.b, 1)");
    check(n && n->kind == ND_CALL && n->args.len == 2 && VEC_AT(n->args, 0, Arg *)->value->kind == ND_AS,
          "path: ends at ',' inside a call", "%s", n ? node_text(n) : first_error(last_parse.err));
    n = expr_node("relu(f(x) as a.0)");
    check(n && n->kind == ND_CALL && VEC_AT(n->args, 0, Arg *)->value->kind == ND_AS &&
              strcmp(path_shape(VEC_AT(n->args, 0, Arg *)->value->path), "a|0") == 0,
          "path: ends at ')'", "%s", n ? node_text(n) : first_error(last_parse.err));
    n = expr_node("f(x) as a # comment");
    check(n && n->kind == ND_AS, "path: followed by a comment", "%s", n ? node_text(n) : first_error(last_parse.err));
    n = expr_node("f(x) as a.b + g(y) as c");
    check(n && n->kind == ND_BINARY && n->lhs->kind == ND_AS && n->rhs->kind == ND_AS, "path: f(x) as a.b + g(y) as c", "%s",
          n ? node_text(n) : first_error(last_parse.err));
    n = expr_node("f(x,\n  g(y) as l{i},\n  z)");
    check(n && n->kind == ND_CALL && n->args.len == 3, "path: interpolation inside a multi-line call keeps ( ) depth", "%s",
          n ? node_text(n) : first_error(last_parse.err));
    Vec *body = body_of("for i in 0..2 {\n  x = f(x) as layer{i}.conv\n  y = x\n}\nreturn y");
    Stmt *s = body && body->len == 2 ? body->items[0] : NULL;
    check(s && s->kind == ST_FOR && s->body.len == 2, "path: interpolation inside a { } body, newline after the path", "%s",
          body ? "wrong tree" : first_error(last_parse.err));
    n = expr_node("relu(f(x) as\n     fc)");
    check(n && n->kind == ND_CALL && VEC_AT(n->args, 0, Arg *)->value->kind == ND_AS, "path: a newline after 'as' inside ( ) is ignored",
          "%s", n ? node_text(n) : first_error(last_parse.err));
    syntax_errors("path: 'as' with no path is an error", "let v = f(x) as\n", 1, NULL);
}

static void test_precedence(void) {
    expr_prints("prec: * over +", "1 + 2 * 3", "(1 + (2 * 3))");
    expr_prints("prec: - is left-associative", "1 - 2 - 3", "((1 - 2) - 3)");
    expr_prints("prec: // % * @ one level, left to right", "a // b % c * d @ e", "((((a // b) % c) * d) @ e)");
    expr_prints("prec: @ over +", "a @ b + c", "((a @ b) + c)");
    expr_prints("prec: -2 ** 2 is -(2 ** 2)", "-2 ** 2", "-(2 ** 2)");
    expr_prints("prec: ** is right-associative", "2 ** 3 ** 2", "(2 ** (3 ** 2))");
    expr_prints("prec: 2 ** -1", "2 ** -1", "(2 ** -1)");
    expr_prints("prec: unary - over *", "-a * b", "(-a * b)");
    expr_prints("prec: ! over &&", "!a && b", "(!a && b)");
    expr_prints("prec: ! over ==", "!a == b", "(!a == b)");
    expr_prints("prec: && over ||", "a || b && c", "(a || (b && c))");
    expr_prints("prec: && over || (left)", "a && b || c", "((a && b) || c)");
    expr_prints("prec: comparisons over &&", "a == b && c < d", "((a == b) && (c < d))");
    expr_prints("prec: + over comparisons", "a + b >= c * d", "((a + b) >= (c * d))");
    expr_prints("prec: parentheses", "(1 + 2) * 3", "((1 + 2) * 3)");
    expr_prints("prec: x - -1", "x - -1", "(x - -1)");
    expr_prints("prec: index and attribute are tightest", "-x.shape[-1] ** 2", "-(x.shape[-1] ** 2)");
    expr_prints("prec: call, index, attribute chain", "f(x)[0].y", "f(x)[0].y");

    Node *n = expr_node("a + f(x) as n");
    check(n && n->kind == ND_BINARY && n->op == OP_ADD && n->rhs->kind == ND_AS && n->rhs->lhs->kind == ND_CALL,
          "prec: a + f(x) as n is a + (f(x) as n)", "%s", n ? node_text(n) : first_error(last_parse.err));
    n = expr_node("f(x) as n * 2");
    check(n && n->kind == ND_BINARY && n->op == OP_MUL && n->lhs->kind == ND_AS, "prec: f(x) as n * 2 is (f(x) as n) * 2", "%s",
          n ? node_text(n) : first_error(last_parse.err));
    n = expr_node("-f(x) as n");
    check(n && n->kind == ND_UNARY && n->lhs->kind == ND_AS, "prec: -f(x) as n is -(f(x) as n)", "%s",
          n ? node_text(n) : first_error(last_parse.err));
    n = expr_node("a ** f(x) as n");
    check(n && n->kind == ND_BINARY && n->op == OP_POW && n->rhs->kind == ND_AS, "prec: as binds tighter than **", "%s",
          n ? node_text(n) : first_error(last_parse.err));
    n = expr_node("g(f(x) as n)[0]");
    check(n && n->kind == ND_INDEX && n->lhs->kind == ND_CALL, "prec: call and index bind tighter than as", "%s",
          n ? node_text(n) : first_error(last_parse.err));

    n = expr_node("a ? b : c ? d : e");
    check(n && n->kind == ND_COND && n->rhs->kind == ND_COND && n->lhs->kind == ND_NAME, "prec: ?: is right-associative", "%s",
          n ? node_text(n) : first_error(last_parse.err));
    n = expr_node("a ? b ? c : d : e");
    check(n && n->kind == ND_COND && n->lhs->kind == ND_COND && n->rhs->kind == ND_NAME, "prec: ?: nested in the middle", "%s",
          n ? node_text(n) : first_error(last_parse.err));
    n = expr_node("a || b ? c + 1 : d && e");
    check(n && n->kind == ND_COND && n->cond->kind == ND_BINARY && n->cond->op == OP_OR && n->lhs->op == OP_ADD &&
              n->rhs->op == OP_AND,
          "prec: ?: is the loosest", "%s", n ? node_text(n) : first_error(last_parse.err));

    syntax_errors("prec: comparisons do not chain (<)", "let v = 1 < 2 < 3\n", 1, NULL);
    syntax_errors("prec: comparisons do not chain (== ==)", "let v = a == b == c\n", 1, NULL);
    syntax_errors("prec: comparisons do not chain (< ==)", "let v = a < b == c\n", 1, NULL);

    n = expr_node("f(x, 64, stride=2, pad = 1)");
    bool ok = n && n->kind == ND_CALL && n->args.len == 4 && !VEC_AT(n->args, 0, Arg *)->name &&
              strcmp(VEC_AT(n->args, 2, Arg *)->name, "stride") == 0 && strcmp(VEC_AT(n->args, 3, Arg *)->name, "pad") == 0;
    check(ok, "parse: keyword arguments", "%s", n ? node_text(n) : first_error(last_parse.err));
    expr_prints("parse: keyword arguments print back", "f(x, 64, stride=2)", "f(x, 64, stride=2)");
    expr_prints("parse: keyword argument with an expression", "f(s = a == b)", "f(s=(a == b))");
    expr_prints("parse: trailing comma in a call", "f(x, y,)", "f(x, y)");
    expr_prints("parse: trailing comma in a list", "[1, 2,]", "[1, 2]");
    expr_prints("parse: empty call and list", "f([], g())", "f([], g())");
    syntax_errors("parse: a lone comma in a call is an error", "let v = f(,)\n", 1, NULL);
    syntax_errors("parse: two commas in a list are an error", "let v = [1,,2]\n", 1, NULL);
}

static void test_syntax_errors(void) {
    const char *text = "let a = 1 +\n"
                       "let b = 2\n"
                       "block f(x) {\n"
                       "    y = * 2\n"
                       "    z = x +\n"
                       "    w = (1, 2)\n"
                       "    return y\n"
                       "}\n"
                       "let e = 5 5\n"
                       "model m(x: f32[1]) { return relu(x) }\n";
    Parsed p = syntax_errors("errors: five independent syntax errors in one parse", text, 5, NULL);
    bool ok = p.decls.len == 3 && strcmp(VEC_AT(p.decls, 0, Decl *)->name, "b") == 0 &&
              strcmp(VEC_AT(p.decls, 1, Decl *)->name, "f") == 0 && strcmp(VEC_AT(p.decls, 2, Decl *)->name, "m") == 0;
    check(ok, "errors: the good declarations around them are kept", "%d decls", p.decls.len);
    ok = VEC_AT(p.decls, 1, Decl *)->body.len == 1 && VEC_AT(VEC_AT(p.decls, 1, Decl *)->body, 0, Stmt *)->kind == ST_RETURN;
    check(ok, "errors: the good statement of the block is kept", "%d statements", VEC_AT(p.decls, 1, Decl *)->body.len);
    const char *want[] = {"t.net:1:12: error:", "t.net:4:9: error:", "t.net:5:12: error:", "t.net:6:11: error:",
                          "t.net:9:11: error:"};
    for (int i = 0; i < 5; i++)
        check(strstr(p.err, want[i]) != NULL, format("errors: location of error %d (%s)", i + 1, want[i]), "%s", oneline(p.err));
    check(strstr(p.err, "t.net:1:12: error: expected") != NULL && strstr(p.err, "end of line"),
          "errors: an expression cut short names what was expected and what was found (spec 8)", "%s", first_error(p.err));
    p = parse("block f(x) {\n  for i 0..3 { }\n  return x\n}\n");
    check(strstr(p.err, "t.net:2:9: error: expected 'in', found integer") != NULL, "errors: 'expected 'in'' after 'for i'", "%s",
          first_error(p.err));
    syntax_errors("errors: a typo in an if header is one error, not a cascade",
                  "block f(x) {\n    if x.rank = 4 {\n        y = relu(x)\n    }\n    return y\n}\nmodel m(x: f32[1]) { return f(x) }\n", 1,
                  "t.net:2:15: error:");
    syntax_errors("errors: 'expected name' after 'let'", "let = 3\n", 1, "expected name");

    {
        Buf many = {0};
        for (int i = 0; i < 25; i++)
            buf_printf(&many, "let a%d = )\n", i);
        int saved_count = diag_error_count, saved_limit = diag_error_limit;
        diag_error_count = 0;   /* the limit is per compile: nnc's main sets it to 20 */
        diag_error_limit = 20;
        p = parse(many.buf);
        diag_error_count += saved_count;
        diag_error_limit = saved_limit;
        check(p.nerr == 25 && p.nlines <= diag_error_limit, "errors: at most diag_error_limit errors are printed (nnc.h)",
              "parse_file returned %d, %d error lines printed, limit %d", p.nerr, p.nlines, diag_error_limit);
    }
    p = syntax_errors("errors: missing '}' at the end of the file", "block f(x) {\n    return x\n", 1, "end of file");
    p = syntax_errors("errors: ')' without '('", "let a = 1\nlet b = (2 +)\n", 1, "')'");
    int line = 0, col = 0;
    check(error_pos(p.err, &line, &col) && line == 2 && col == 13, "errors: location of ')' (2:13)", "at %d:%d: %s", line, col,
          oneline(p.err));
    check(strstr(p.err, "let b = (2 +)\n") && strstr(p.err, "            ^"), "errors: the source line and a caret are shown",
          "%s", oneline(p.err));
    syntax_errors("errors: a statement outside a block", "x = 1\nlet a = 2\n", 1, NULL);
    p = parse("block f(x) {\n  else { y = 1 }\n  return x\n}\n");
    check(p.nerr >= 1 && error_pos(p.err, &line, &col) && line == 2 && col == 3 && strstr(p.err, "'else'"),
          "errors: 'else' without 'if'", "%d errors: %s", p.nerr, oneline(p.err));
    syntax_errors("errors: three errors on separate statements of one block (one spans two lines)",
                  "block f(x) {\n  y = (\n  )\n  z = ]\n  w = 1 +\n  return x\n}\n", 3, NULL);
    syntax_errors("errors: an error inside a nested body is one error",
                  "block f(x) {\n  for i in 0..2 {\n    if true { y = * 2 }\n    z = ) \n  }\n  return x\n}\nlet a = 1 +\n", 3, NULL);
    p = parse("block f(x) {\n  for i in 0..2 {\n    if true { y = * 2 }\n    z = )\n  }\n  return x\n}\nlet b = 2\n");
    check(p.decls.len == 2 && VEC_AT(p.decls, 0, Decl *)->body.len == 2, "errors: recovery inside nested bodies keeps the rest",
          "%d decls", p.decls.len);
    /* the lexer reports '$' and the parser stays quiet about it: one error per mistake */
    syntax_errors("errors: lexical and syntax errors together", "let a = 1 $ 2\nlet b = (\n", 2, NULL);
}

static void test_locations(void) {
    Node *n = expr_node("a + f(x)");
    bool ok = n && n->loc.line == 1 && n->loc.col == 11 && n->lhs->loc.col == 9 && n->rhs->loc.col == 13;
    check(ok, "loc: binary at its operator, operands at their start", "%s",
          n ? format("%d:%d lhs %d rhs %d", n->loc.line, n->loc.col, n->lhs->loc.col, n->rhs->loc.col) : first_error(last_parse.err));
    n = expr_node("[1,\n  22]");
    ok = n && n->loc.line == 1 && n->loc.col == 9 && VEC_AT(n->args, 1, Node *)->loc.line == 2 && VEC_AT(n->args, 1, Node *)->loc.col == 3 &&
         VEC_AT(n->args, 1, Node *)->loc.end_col == 4;
    check(ok, "loc: list element on the next line (line, col, end_col)", "%s", n ? "wrong loc" : first_error(last_parse.err));
    n = expr_node("conv2d(x) as layer1.conv");
    ok = n && n->kind == ND_AS && n->lhs->loc.col == 9 && n->path->loc.col == 22;
    check(ok, "loc: call at its name, path at its first segment", "%s",
          n ? format("call %d path %d", n->lhs->loc.col, n->path->loc.col) : first_error(last_parse.err));
    n = expr_node("x.shape[-1]");
    ok = n && n->kind == ND_INDEX && n->rhs->loc.col == 17 && n->lhs->kind == ND_ATTR && n->lhs->lhs->loc.col == 9;
    check(ok, "loc: index and attribute", "%s", n ? format("idx %d", n->rhs->loc.col) : first_error(last_parse.err));

    Parsed p = parse("let a = 1\n\nblock bb(x) {\n    y = relu(x)\n    for i in 0..2 { }\n    return y\n}\n");
    Decl *b = decl_at(&p, 1);
    ok = p.nerr == 0 && b && b->loc.line == 3 && b->loc.col == 7 && VEC_AT(p.decls, 0, Decl *)->loc.col == 5;
    check(ok, "loc: declarations at their name", "%s", oneline(p.err));
    ok = ok && b->body.len == 3;
    Stmt *s0 = ok ? b->body.items[0] : NULL, *s1 = ok ? b->body.items[1] : NULL, *s2 = ok ? b->body.items[2] : NULL;
    ok = ok && s0->loc.line == 4 && s0->loc.col == 5 && s1->loc.line == 5 && s1->loc.col == 5 && s2->loc.line == 6 && s2->loc.col == 5;
    check(ok, "loc: statements at their first token", "%s", oneline(p.err));

    p = parse("let a = 1\n\tlet b = )\n");
    int line = 0, col = 0;
    check(error_pos(p.err, &line, &col) && line == 2 && col == 10, "loc: a tab counts as one column", "at %d:%d", line, col);

    p = parse("let a = (1 +\n\n  2 +)\n");
    check(error_pos(p.err, &line, &col) && line == 3 && col == 6, "loc: error after newlines inside ( )", "at %d:%d: %s", line, col,
          oneline(p.err));

    Graph *g = elab("model m(x: f32[1, 3, 8, 8]) {\n    y = conv2d(x, 8, kernel=9) as c\n    return y\n}\n", NULL, NULL);
    check(!g && error_pos(last_err, &line, &col) && line == 2 && col == 29, "loc: elaboration error at the argument (kernel=9)",
          "at %d:%d: %s", line, col, oneline(last_err));
    g = elab("model m(x: f32[1]) {\n    y = relu(zz)\n    return y\n}\n", NULL, NULL);
    check(!g && error_pos(last_err, &line, &col) && line == 2 && col == 14 && strstr(last_err, "unknown name 'zz'"),
          "loc: unknown name at the name", "at %d:%d: %s", line, col, oneline(last_err));
    g = elab("block inner(x) {\n    return conv2d(x, 4, kernel=1)\n}\nmodel m(x: f32[1, 3, 8, 8]) {\n    return inner(x) as a\n}\n", NULL,
             NULL);
    ok = !g && error_pos(last_err, &line, &col) && line == 2 && col == 12 && strstr(last_err, "t.net:5:12: note: in expansion of inner called here");
    check(ok, "loc: an error inside a block shows the call chain", "%s", oneline(last_err));
}

/* ---------------------------------------------------------------- elaboration: compile-time values */

static void test_arithmetic(void) {
    const char *P = "", *B = "";
    value_is("value: an int", P, B, "3", "int 3");
    value_is("value: / of ints, exact, is an int", P, B, "6 / 3", "int 2");
    value_fails("value: / of ints, inexact, is an error", P, B, "7 / 2", "not a whole number");
    value_is("value: / with a float", P, B, "7.0 / 2", "float 3.5");
    value_is("value: / negative exact", P, B, "-6 / 3", "int -2");
    value_is("value: 7 // 2", P, B, "7 // 2", "int 3");
    value_is("value: -7 // 2 floors", P, B, "-7 // 2", "int -4");
    value_is("value: 7 // -2 floors", P, B, "7 // -2", "int -4");
    value_is("value: -7 // -2", P, B, "-7 // -2", "int 3");
    value_is("value: -8 // 2 exact", P, B, "-8 // 2", "int -4");
    value_is("value: 7 % 3", P, B, "7 % 3", "int 1");
    value_is("value: -7 % 3 is 2 (Python)", P, B, "-7 % 3", "int 2");
    value_is("value: 7 % -3 is -2 (Python)", P, B, "7 % -3", "int -2");
    value_is("value: -7 % -3 is -1", P, B, "-7 % -3", "int -1");
    value_is("value: -6 % 3 is 0", P, B, "-6 % 3", "int 0");
    value_is("value: -7.5 // 2 floors to a float", P, B, "-7.5 // 2", "float -4.0");
    value_is("value: -7.5 % 2 is 0.5", P, B, "-7.5 % 2", "float 0.5");
    value_is("value: 7.5 % -2 is -0.5", P, B, "7.5 % -2", "float -0.5");
    value_fails("value: 1 / 0 is an error", P, B, "1 / 0", "division by zero");
    value_fails("value: 1 // 0 is an error", P, B, "1 // 0", "division by zero");
    value_fails("value: 1 % 0 is an error", P, B, "1 % 0", "division by zero");
    value_fails("value: 1.0 / 0 is an error", P, B, "1.0 / 0", "division by zero");
    value_fails("value: 1.5 % 0.0 is an error", P, B, "1.5 % 0.0", "division by zero");
    value_is("number fns: int(2.7)", P, B, "int(2.7)", "int 2");
    value_is("number fns: int(-2.7) towards zero", P, B, "int(-2.7)", "int -2");
    value_is("number fns: int of an int", P, B, "int(5)", "int 5");
    value_is("number fns: floor(-2.5)", P, B, "floor(-2.5)", "int -3");
    value_is("number fns: ceil(2.1)", P, B, "ceil(2.1)", "int 3");
    value_is("number fns: round(2.5) half to even", P, B, "round(2.5)", "int 2");
    value_is("number fns: round(3.5) half to even", P, B, "round(3.5)", "int 4");
    value_is("number fns: float(3)", P, B, "float(3)", "float 3.0");
    value_is("number fns: min of three", P, B, "min(3, 1.5, 2)", "float 1.5");
    value_is("number fns: max of a list", P, B, "max([4, 9, 2])", "int 9");
    value_is("number fns: _make_divisible(32 * 0.75, 8)", P, B, "int(max(8, int(32 * 0.75 + 4) // 8 * 8))", "int 24");
    value_fails("number fns: round() needs an argument", P, B, "round()", "round takes one number, found 0 arguments");
    value_fails("number fns: max of one number", P, B, "max(3)", "max takes two or more numbers, or one non-empty list");
    value_fails("number fns: int of a list", P, B, "int([1])", "int takes a number, found list");
    value_fails("number fns: min of a bool", P, B, "min(1, true)", "min takes numbers");
    value_fails("number fns: int(1e300) is no int64", P, B, "int(1e300)", "is not a 64-bit integer");
    value_is("number fns: log of a number (RegNet's widths)", P, B, "round(log(27.89 / 48) / log(2.09))", "int -1");
    value_is("number fns: abs of an int stays an int", P, B, "abs(-3)", "int 3");
    value_is("number fns: sqrt(16.0)", P, B, "sqrt(16)", "float 4.0");
    value_is("number fns: exp(0)", P, B, "exp(0)", "float 1.0");
    value_fails("number fns: log(0)", P, B, "log(0)", "log of 0 is not a real number");
    value_fails("number fns: sqrt(-1)", P, B, "sqrt(-1)", "sqrt of -1 is not a real number");
    value_is("value: 2 ** 10", P, B, "2 ** 10", "int 1024");
    value_is("value: 2 ** 3 ** 2 is 512", P, B, "2 ** 3 ** 2", "int 512");
    value_is("value: -2 ** 2 is -4", P, B, "-2 ** 2", "int -4");
    value_is("value: (-2) ** 3", P, B, "(-2) ** 3", "int -8");
    value_is("value: (-1) ** 3", P, B, "(-1) ** 3", "int -1");
    value_is("value: (-1) ** 4", P, B, "(-1) ** 4", "int 1");
    value_is("value: 0 ** 0", P, B, "0 ** 0", "int 1");
    value_is("value: 7 ** 1", P, B, "7 ** 1", "int 7");
    value_is("value: 2 ** -1 is a float", P, B, "2 ** -1", "float 0.5");
    value_is("value: 4 ** 0.5", P, B, "4 ** 0.5", "float 2.0");
    value_is("value: 1.5 ** 2", P, B, "1.5 ** 2", "float 2.25");
    value_fails("value: 0 ** -1 is an error (Python: ZeroDivisionError)", P, B, "0 ** -1", "zero");
    holds("value: 2 ** 62 is exact", P, B, "2 ** 62 == 4611686018427387904");
    holds("value: (-2) ** 63 is the smallest int", P, B, "(-2) ** 63 == -9223372036854775807 - 1");
    value_fails("value: 2 ** 63 overflows", P, B, "2 ** 63", "overflow");
    value_fails("value: 10 ** 100 overflows", P, B, "10 ** 100", "overflow");
    value_fails("value: max + 1 overflows", P, B, "9223372036854775807 + 1", "overflow");
    value_fails("value: min - 1 overflows", P, B, "-9223372036854775807 - 2", "overflow");
    value_fails("value: 3037000500 * 3037000500 overflows", P, B, "3037000500 * 3037000500", "overflow");
    value_fails("value: -(min) overflows", P, B, "-(-9223372036854775807 - 1)", "overflow");
    value_fails("value: min // -1 overflows", P, B, "(-9223372036854775807 - 1) // -1", "overflow");
    holds("value: min % -1 is 0 (Python)", P, B, "(-9223372036854775807 - 1) % -1 == 0");
    value_is("value: float +", P, B, "0.5 + 0.25", "float 0.75");
    value_is("value: float -", P, B, "1 - 0.5", "float 0.5");
    value_is("value: int * float", P, B, "3 * 0.5", "float 1.5");
    value_is("value: float 1e3", P, B, "1e3", "float 1000.0");
    value_is("value: float negation", P, B, "-0.5", "float -0.5");
    holds("value: float arithmetic", P, B, "1e-5 * 1e5 == 1.0 && 0.1 + 0.2 > 0.3 && 1 / 4.0 == 0.25");

    value_is("value: 1 < 2", P, B, "1 < 2", "bool true");
    value_is("value: 2 <= 2", P, B, "2 <= 2", "bool true");
    value_is("value: 3 > 4", P, B, "3 > 4", "bool false");
    value_is("value: 3 >= 4", P, B, "3 >= 4", "bool false");
    value_is("value: 1 == 1.0", P, B, "1 == 1.0", "bool true");
    value_is("value: 1 != 2", P, B, "1 != 2", "bool true");
    value_is("value: 0.5 < 1", P, B, "0.5 < 1", "bool true");
    value_is("value: bool == bool", P, B, "true == false", "bool false");
    value_is("value: list == list", P, B, "[1, 2] == [1, 2]", "bool true");
    value_is("value: list != list", P, B, "[1, 2] != [1, 3]", "bool true");
    value_is("value: string == string", P, B, "\"a\" == \"a\"", "bool true");
    value_fails("value: comparing a bool with an int is an error", P, B, "true == 1", "cannot compare");
    value_is("value: &&", P, B, "true && false", "bool false");
    value_is("value: ||", P, B, "false || true", "bool true");
    value_is("value: !", P, B, "!true", "bool false");
    value_is("value: false && (1/0 == 1) short-circuits", P, B, "false && (1 / 0 == 1)", "bool false");
    value_is("value: true || (1/0 == 1) short-circuits", P, B, "true || (1 / 0 == 1)", "bool true");
    value_is("value: false && (unknown name) short-circuits", P, B, "false && nosuchname", "bool false");
    value_fails("value: true && (1/0 == 1) evaluates the right side", P, B, "true && (1 / 0 == 1)", "division by zero");
    value_fails("value: && wants bools (left)", P, B, "1 && true", "must be a bool");
    value_fails("value: || wants bools (right)", P, B, "false || 1", "must be a bool");
    value_fails("value: ! wants a bool", P, B, "!1", "must be a bool");
    value_is("value: ?: true", P, B, "true ? 1 : 2", "int 1");
    value_is("value: ?: false", P, B, "false ? 1 : 2", "int 2");
    value_is("value: ?: evaluates one side only", P, B, "true ? 1 : 1 / 0", "int 1");
    value_is("value: ?: chained", P, B, "false ? 1 : true ? 2 : 3", "int 2");
    value_is("value: ?: with a comparison", P, B, "2 > 1 ? 10 : 20", "int 10");
    value_fails("value: ?: wants a bool", P, B, "1 ? 2 : 3", "must be a bool");
    value_fails("value: int + bool is an error", P, B, "1 + true", "cannot apply");
    value_fails("value: unknown name", P, B, "nosuchname", "unknown name 'nosuchname'");
}

static void test_lists_and_tensors(void) {
    const char *P = "", *B = "";
    value_is("list: literal", P, B, "[1, 2, 3]", "list [1, 2, 3]");
    value_is("list: index", P, B, "[1, 2, 3][1]", "int 2");
    value_is("list: index -1", P, B, "[1, 2, 3][-1]", "int 3");
    value_is("list: index -3", P, B, "[1, 2, 3][-3]", "int 1");
    value_fails("list: index past the end", P, B, "[1, 2][2]", "out of range");
    value_fails("list: index before the start", P, B, "[1, 2][-3]", "out of range");
    value_fails("list: float index", P, B, "[1, 2][1.0]", "must be an int");
    value_is("list: len", P, B, "len([1, 2, 3])", "int 3");
    value_is("list: len of []", P, B, "len([])", "int 0");
    value_is("list: nested index", P, B, "[[1, 2], [3]][0][1]", "int 2");
    value_is("list: len of a nested list", P, B, "len([[1, 2], [3]][0])", "int 2");
    value_is("list: + concatenates", P, B, "[1] + [2, 3]", "list [1, 2, 3]");
    value_is("list: of mixed values", P, B, "[1, 0.5, true]", "list [1, 0.5, bool]");
    value_is("list: bound to a name", P, "ws = [64, 128]", "ws[1] // 2", "int 64");
    value_fails("list: len of an int", P, B, "len(5)", "len takes a list");
    value_fails("list: indexing an int", P, B, "3[0]", "only lists can be indexed");
    value_fails("list: indexing a tensor", P, B, "x[0]", "only lists can be indexed");
    value_is("tensor: x.shape", P, B, "x.shape", "list [2, 3, 5, 7]");
    value_is("tensor: x.shape[0]", P, B, "x.shape[0]", "int 2");
    value_is("tensor: x.shape[-1]", P, B, "x.shape[-1]", "int 7");
    value_is("tensor: x.shape[-4]", P, B, "x.shape[-4]", "int 2");
    value_fails("tensor: x.shape[4] is out of range", P, B, "x.shape[4]", "out of range");
    value_is("tensor: x.rank", P, B, "x.rank", "int 4");
    value_is("tensor: len(x.shape)", P, B, "len(x.shape)", "int 4");
    value_is("tensor: shape of a computed tensor", P, "y = flatten(x)", "y.shape[1]", "int 105");
    value_is("tensor: rank of a computed tensor", P, "y = flatten(x)", "y.rank", "int 2");
    value_fails("tensor: unknown property", P, B, "x.size", "no property 'size'");
    value_fails("tensor: property of an int", P, "k = 3", "k.shape", "no property");
}

static void test_statements_elab(void) {
    const char *P = "";
    value_is("for: sum over 0..5", P, "s = 0\nfor i in 0..5 { s = s + i }", "s", "int 10");
    value_is("for: empty range 3..3", P, "s = 7\nfor i in 3..3 { s = 0 }", "s", "int 7");
    value_is("for: reversed range runs no iteration", P, "s = 7\nfor i in 5..3 { s = 0 }", "s", "int 7");
    value_is("for: negative bounds", P, "s = 0\nfor i in -3..-1 { s = s * 10 + i }", "s", "int -32");
    value_is("for: nested loops", P, "s = 0\nfor i in 0..4 {\n for j in 0..i { s = s + 1 }\n}", "s", "int 6");
    value_is("for: bounds from names and lets", "let n = 3", "k = 2\ns = 0\nfor i in k..n + k { s = s + 1 }", "s", "int 3");
    value_fails("for: float bound is an error", P, "for i in 0..2.5 { }", "0", "must be an int");
    value_is("for: a name bound in the body stays bound", P, "for i in 0..3 { z = i * 10 }", "z", "int 20");
    {
        Graph *g = elab(model_src("", "x: f32[1, 4]", "for i in 0..3 { x = relu(x) }\nreturn x"), NULL, NULL);
        check(g && g->ops.len == 3 && count_ops(g, OPK_RELU) == 3, "for: the body is unrolled (3 relu ops)", "%s",
              g ? format("%d ops", g->ops.len) : oneline(last_err));
        g = elab(model_src("", "x: f32[1, 4]", "for i in 0..3 {\n  if i == 1 { return sigmoid(x) }\n  x = relu(x)\n}\nreturn x"), NULL, NULL);
        check(g && g->ops.len == 2 && out_op(g)->kind == OPK_SIGMOID, "for: a return inside a loop ends the loop", "%s",
              g ? format("%d ops", g->ops.len) : oneline(last_err));
    }
    const char *chain = "if n < 3 { r = 1 } else if n < 6 { r = 2 } else { r = 3 }";
    value_is("if: first branch", P, format("n = 1\n%s", chain), "r", "int 1");
    value_is("if: else if branch", P, format("n = 5\n%s", chain), "r", "int 2");
    value_is("if: else branch", P, format("n = 9\n%s", chain), "r", "int 3");
    value_is("if: no else and a false condition", P, "r = 0\nif false { r = 1 }", "r", "int 0");
    value_is("if: a name bound in the body stays bound", P, "if true { y = 4 }", "y", "int 4");
    value_fails("if: a name bound only in the branch not taken is unbound", P, "if false { w = 1 }", "w", "unknown name 'w'");
    value_fails("if: an int condition is an error", P, "if 1 { r = 1 }", "0", "must be a bool");
    value_is("if: the condition may use tensor shapes", P, "if x.shape[1] == 3 && x.rank == 4 { r = 1 } else { r = 2 }", "r", "int 1");
    value_is("assign: rebinding", P, "a = 1\na = a + 1\na = a * 10", "a", "int 20");
    value_is("assign: rebinding to another kind", P, "a = 1\na = [a, a]", "a", "list [1, 1]");
}

static void test_scope(void) {
    const char *P, *B = "";
    P = "block sq(v: int) { return v * v }";
    value_is("block: a block returning an int", P, B, "sq(7)", "int 49");
    P = "let k = 3\nblock addk(v: int) { return v + k }";
    value_is("scope: a block sees the lets", P, B, "addk(4)", "int 7");
    P = "let k = 3\nblock usek(v: int) { k = 10\n return v + k }";
    value_is("scope: a block's own binding shadows a let", P, B, "usek(1)", "int 11");
    value_is("scope: ... and the let is unchanged outside", P, "y = usek(1)", "k", "int 3");
    P = "let n = 1\nblock pn(n: int) { return n }";
    value_is("scope: a parameter shadows a let", P, B, "pn(5)", "int 5");
    P = "block usesk() { return kk }";
    value_fails("scope: a block does not see the caller's locals", P, "kk = 1", "usesk()", "unknown name 'kk'");
    value_fails("scope: ... and the error names the call chain", P, "kk = 1", "usesk()", "in expansion of usesk called here");
    P = "block leak(v: int) { inner = 5\n return v }";
    value_fails("scope: a block's bindings do not leak to the caller", P, "y = leak(1)", "inner", "unknown name 'inner'");
    P = "block first(v: int) { return second(v) + 1 }\nblock second(v: int) { return v * 2 }";
    value_is("scope: a block calls a block defined after it", P, B, "first(3)", "int 7");
    P = "let n = 1";
    value_is("scope: a model's binding shadows a let", P, "n = 4", "n", "int 4");
    P = "block rec(v: int) { return v <= 0 ? 0 : v + rec(v - 1) }";
    value_is("scope: recursion with a lazy ?:", P, B, "rec(4)", "int 10");
    P = "block forever(v: int) { return forever(v) }";
    value_fails("scope: unbounded recursion is an error", P, B, "forever(1)", "nested deeper");
    P = "block none(v) { w = v }";
    value_fails("block: a block that returns nothing used as a value", P, "y = none(1)", "0", "returns no value");
    value_fails("block: calling a block without ( )", "block bb(v) { return v }", B, "bb", "is a block");

    P = "block dflt(a: int, b: int = a * 2) { return a + b }";
    value_is("default: sees an earlier parameter", P, B, "dflt(3)", "int 9");
    value_is("default: overridden positionally", P, B, "dflt(3, 1)", "int 4");
    value_is("default: overridden by keyword", P, B, "dflt(3, b=5)", "int 8");
    value_is("default: evaluated at each call", P, B, "[dflt(1), dflt(2), dflt(5)]", "list [3, 6, 15]");
    P = "block ch(t, c: int = t.shape[1]) { return c }";
    value_is("default: from a tensor argument (1)", P, B, "ch(x)", "int 3");
    value_is("default: from a tensor argument (2), per call", P, B, "ch(transpose(x, [0, 3, 1, 2])) * 10 + ch(x)", "int 73");
    P = "let k = 10\nblock dk(v: int = k) { return v }";
    value_is("default: sees the lets", P, B, "dk()", "int 10");
    P = "block dl(v: int = loc) { return v }";
    value_fails("default: does not see the caller's locals", P, "loc = 1", "dl()", "unknown name 'loc'");
    P = "block counter(x, n: int = 0) { return relu(x) }";
    {
        Graph *g = elab(model_src("block lin(x, n: int = x.shape[1]) { return linear(x, n) as self }", "x: f32[2, 3]",
                                  "y = lin(x) as a\nreturn lin(flatten(reshape(y, [1, 6]))) as b"),
                        NULL, NULL);
        check(g && strcmp(weights_text(g), "a.weight [3, 3], a.bias [3], b.weight [6, 6], b.bias [6]") == 0,
              "default: a weight shape from a default, per call", "%s", g ? weights_text(g) : oneline(last_err));
    }

    P = "block kw(a: int, b: int, c: int = 100) { return a * 100 + b * 10 + c }";
    value_is("args: positional", P, B, "kw(1, 2, 3)", "int 123");
    value_is("args: all by keyword, in any order", P, B, "kw(c=3, a=1, b=2)", "int 123");
    value_is("args: positional then keyword", P, B, "kw(1, c=3, b=2)", "int 123");
    value_is("args: default used", P, B, "kw(1, 2)", "int 220");
    value_fails("args: missing argument", P, B, "kw(1)", "missing argument 'b'");
    value_fails("args: too many arguments", P, B, "kw(1, 2, 3, 4)", "too many arguments");
    value_fails("args: unknown keyword", P, B, "kw(1, 2, d=4)", "no parameter named 'd'");
    value_fails("args: given twice", P, B, "kw(1, 2, a=4)", "given twice");
    value_fails("args: positional after keyword", P, B, "kw(a=1, 2)", "positional argument after keyword");

    value_is("type: an int is accepted for a float (and becomes one)", "block tf(v: float) { return v / 4 }", B, "tf(2)", "float 0.5");
    value_fails("type: a float is refused for an int", "block ti(v: int) { return v }", B, "ti(2.0)", "must be int, found float 2");
    value_is("type: tensor accepted", "block tt(t: tensor) { return t.rank }", B, "tt(x)", "int 4");
    value_fails("type: an int is refused for a tensor", "block tt(t: tensor) { return 1 }", B, "tt(3)", "must be tensor");
    value_is("type: list accepted", "block tl(l: list) { return len(l) }", B, "tl([1, 2])", "int 2");
    value_fails("type: an int is refused for a list", "block tl(l: list) { return 1 }", B, "tl(1)", "must be list");
    value_is("type: bool accepted", "block tb(b: bool) { return b ? 1 : 0 }", B, "tb(true)", "int 1");
    value_fails("type: an int is refused for a bool", "block tb(b: bool) { return 1 }", B, "tb(1)", "must be bool");
    value_fails("type: a bool is refused for a float", "block tf(v: float) { return 1 }", B, "tf(true)", "must be float");
    value_fails("type: unknown type", "block tu(v: quux) { return v }", B, "tu(1)", "unknown type 'quux'");
    value_fails("type: a default is type-checked too", "block td(v: int = 0.5) { return v }", B, "td()", "must be int");

    shape_ok("builtin: an int is accepted for a float argument", "x: f32[2, 3]", "pad(x, 1, 0, 1, value=2)", "[2, 4]", NULL);
    shape_err("builtin: a bool is refused for a float argument", "x: f32[1, 4]", "layernorm(x, eps=true) as ln", "must be a float");
    shape_err("builtin: unknown keyword", "x: f32[1, 4]", "relu(x, foo=1)", "no parameter named 'foo'");
    shape_err("builtin: missing argument", "x: f32[1, 3, 8, 8]", "conv2d(x, 8) as c", "missing argument 'kernel'");
    shape_err("builtin: too many arguments", "x: f32[1, 4]", "relu(x, x)", "too many arguments");
    shape_err("builtin: a non-tensor for a tensor", "x: f32[1, 4]", "relu(3)", "must be a tensor");
    shape_err("builtin: a float for a pair", "x: f32[1, 3, 8, 8]", "maxpool(x, kernel=2.0)", "an int or a list of 2 ints");
    shape_err("call: unknown function", "x: f32[1, 4]", "frobnicate(x)", "unknown function 'frobnicate'");
    elab_fails("call: a model cannot be called", "model a(x: f32[1]) { return relu(x) }\nmodel b(x: f32[1]) { return a(x) }", "b",
               NULL, "models cannot be called");
    elab_fails("decl: a block named like a builtin", "block relu(x) { return x }\nmodel m(x: f32[1]) { return sigmoid(x) }", NULL,
               NULL, "builtin");
    elab_fails("decl: two blocks with one name", "block b(x) { return x }\nblock b(y) { return y }\nmodel m(x: f32[1]) { return relu(x) }",
               NULL, NULL, "defined twice");
    elab_fails("decl: a block and a model with one name", "block m(x) { return x }\nmodel m(x: f32[1]) { return relu(x) }", NULL,
               NULL, "defined twice");
    elab_fails("decl: a parameter declared twice", "block b(a, a) { return a }\nmodel m(x: f32[1]) { return relu(x) }", NULL, NULL,
               "declared twice");
    elab_fails("decl: a let defined twice", "let a = 1\nlet a = 2\nmodel m(x: f32[1]) { return relu(x) }", NULL, NULL,
               "defined twice");
    value_is("let: lets see earlier lets", "let a = 3\nlet b = a * 2\nlet c = [a, b]", B, "b + len(c)", "int 8");
    value_fails("let: a let cannot see a later let", "let a = b\nlet b = 3", B, "a", "unknown name 'b'");
    value_fails("let: a let cannot call a builtin", "let a = relu(1)", B, "a", "cannot call");
    value_is("let: len in a let", "let a = len([1, 2, 3])", B, "a", "int 3");
}

static void test_defines_models(void) {
    const char *src = "let batch = 1\nlet size = batch * 8\nmodel m(x: f32[batch, 3, size, size]) { return relu(x) }\n";
    Graph *g = elab(src, NULL, NULL);
    check(g && strcmp(out_shape(g), "[1, 3, 8, 8]") == 0, "-D: none", "%s", g ? out_shape(g) : oneline(last_err));
    g = elab(src, NULL, "batch=2");
    check(g && strcmp(out_shape(g), "[2, 3, 16, 16]") == 0, "-D batch=2: replaced in place, later lets see it", "%s",
          g ? out_shape(g) : oneline(last_err));
    g = elab(src, NULL, "size=4");
    check(g && strcmp(out_shape(g), "[1, 3, 4, 4]") == 0, "-D size=4", "%s", g ? out_shape(g) : oneline(last_err));
    g = elab(src, NULL, "batch=1 + 2|size=5");
    check(g && strcmp(out_shape(g), "[3, 3, 5, 5]") == 0, "-D: two defines, a constant expression", "%s",
          g ? out_shape(g) : oneline(last_err));
    g = elab("let a = 2\nlet b = 3\nmodel m(x: f32[b]) { return relu(x) }", NULL, "b=a * 10");
    check(g && strcmp(out_shape(g), "[20]") == 0, "-D: the value may use earlier lets", "%s", g ? out_shape(g) : oneline(last_err));
    elab_fails("-D: a name with no let is an error", src, NULL, "nope=3", "nope");
    g = elab(src, NULL, "batch=(1");
    check(!g && strstr(last_err, "batch"), "-D: a value that does not parse is an error", "%s", oneline(last_err));
    g = elab(src, NULL, "batch=relu(1)");
    check(!g && last_nerr >= 1, "-D: a value that is not constant is an error", "%s", oneline(last_err));

    const char *two = "model a(x: f32[1, 4]) { return relu(x) }\nmodel b(x: f32[1, 4]) { return sigmoid(x) }\n";
    g = elab(two, "a", NULL);
    check(g && strcmp(g->name, "a") == 0 && out_op(g)->kind == OPK_RELU, "--model a", "%s", g ? g->name : oneline(last_err));
    g = elab(two, "b", NULL);
    check(g && strcmp(g->name, "b") == 0 && out_op(g)->kind == OPK_SIGMOID, "--model b", "%s", g ? g->name : oneline(last_err));
    elab_fails("--model: required with several models", two, NULL, NULL, "--model");
    elab_fails("--model: unknown name", two, "c", NULL, "no model of that name");
    elab_fails("model: a program with no model", "let a = 1\nblock b(x) { return x }\n", NULL, NULL, "no model");
    g = elab("model only(x: f32[1, 4]) { return relu(x) }", NULL, NULL);
    check(g && strcmp(g->name, "only") == 0 && g->inputs.len == 1, "model: the only model is the default", "%s", oneline(last_err));

    elab_fails("model: an input without a type", "model m(x) { return relu(x) }", NULL, NULL, "needs a tensor type");
    elab_fails("model: an input typed int", "model m(x: int) { return relu(x) }", NULL, NULL, "needs a tensor type");
    elab_fails("model: a dimension must be positive", "model m(x: f32[1, 0]) { return relu(x) }", NULL, NULL, "must be positive");
    elab_fails("model: a dimension must be an int", "model m(x: f32[1, 2.5]) { return relu(x) }", NULL, NULL, "must be an int");
    g = elab("let c = 3\nmodel m(x: f32[1, c, c * 2], y: f32[4]) { return relu(x), sigmoid(y) }", NULL, NULL);
    bool ok = g && g->inputs.len == 2 && g->outputs.len == 2 &&
              strcmp(shape_text(VEC_AT(g->inputs, 0, Tensor *)->rank, VEC_AT(g->inputs, 0, Tensor *)->dims), "[1, 3, 6]") == 0 &&
              VEC_AT(g->outputs, 0, Tensor *)->producer->kind == OPK_RELU &&
              VEC_AT(g->outputs, 1, Tensor *)->producer->kind == OPK_SIGMOID;
    check(ok, "model: two inputs (dims from lets), two outputs in order", "%s", oneline(last_err));
    /* as in PyTorch, a model may return an input, a weight or one tensor twice: each output is then a copy */
    {
        Graph *g = elab("model m(x: f32[4]) { return x }", NULL, NULL);
        check(g && g->outputs.len == 1 && VEC_AT(g->outputs, 0, Tensor *)->kind == TK_ACT && g->ops.len == 1,
              "model: returning an input gives a copy of it", "%s", g ? "wrong graph" : "elaboration failed");
        g = elab("model m(x: f32[4]) { r = relu(x)\n return r, r }", NULL, NULL);
        check(g && g->outputs.len == 2 && g->outputs.items[0] != g->outputs.items[1], "model: returning one tensor twice gives two outputs",
              "%s", g ? "the outputs are one tensor" : "elaboration failed");
    }
    elab_fails("model: returning an int", "model m(x: f32[4]) { return 3 }", NULL, NULL, "must return tensors");
    elab_fails("model: returning nothing", "model m(x: f32[4]) { y = relu(x) }", NULL, NULL, "returns nothing");

    const char *pre = "block two(x) { return relu(x), sigmoid(x) }";
    g = elab(model_src(pre, "x: f32[4]", "a, b = two(x)\nreturn b - a"), NULL, NULL);
    ok = g && out_op(g)->kind == OPK_SUB && VEC_AT(out_op(g)->in, 0, Tensor *)->producer->kind == OPK_SIGMOID &&
         VEC_AT(out_op(g)->in, 1, Tensor *)->producer->kind == OPK_RELU;
    check(ok, "return: a, b = block returning two values", "%s", oneline(last_err));
    g = elab(model_src(pre, "x: f32[4]", "return two(x)"), NULL, NULL);
    check(g && g->outputs.len == 2, "return: a model returning a block's two values has two outputs", "%s", oneline(last_err));
    elab_fails("return: two values bound to one name", model_src(pre, "x: f32[4]", "a = two(x)\nreturn a"), NULL, NULL, "returns 2 values");
    elab_fails("return: two values bound to three names", model_src(pre, "x: f32[4]", "a, b, c = two(x)\nreturn a"), NULL, NULL,
               "3 names");
    elab_fails("return: one value bound to two names", model_src(pre, "x: f32[4]", "a, b = relu(x)\nreturn a"), NULL, NULL,
               "2 names");
}

/* ---------------------------------------------------------------- imports */

static char tmpdir[PATH_MAX];

static void write_file(const char *rel, const char *text) {
    char *path = format("%s/%s", tmpdir, rel);
    char *dir = xstrdup(path);
    *strrchr(dir, '/') = 0;
    mkdir(dir, 0700);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

static Graph *load_and_elab(const char *rel, bool *loaded) {
    Vec decls = {0};
    cap_begin();
    *loaded = load_program(format("%s/%s", tmpdir, rel), &decls);
    ElabOptions opts = {0};
    Graph *g = *loaded ? elaborate(&decls, &opts) : NULL;
    last_err = cap_end();
    last_nerr = count_substr(last_err, "error:");
    return g;
}

static void test_imports(void) {
    strcpy(tmpdir, "/tmp/nnc_test_compiler_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        check(false, "import: mkdtemp", "cannot create a temporary directory");
        return;
    }
    write_file("lib/common.net", "let width = 4\nblock stem(x) { return linear(x, width) as stem }\n");
    write_file("lib/helpers.net", "import \"common.net\"\nblock head(x) { return linear(x, width * 2) as head }\n");
    write_file("main.net", "import \"lib/common.net\"\nimport \"lib/helpers.net\"\nimport \"./lib/../lib/common.net\"\n"
                           "model m(x: f32[1, 3]) { return head(stem(x)) }\n");
    bool loaded;
    Graph *g = load_and_elab("main.net", &loaded);
    check(loaded && g && strcmp(weights_text(g), "stem.weight [4, 3], stem.bias [4], head.weight [8, 4], head.bias [8]") == 0,
          "import: relative to the importing file, each file read once", "%s", g ? weights_text(g) : oneline(last_err));

    Vec decls = {0};
    cap_begin();
    loaded = load_program(format("%s/main.net", tmpdir), &decls);
    char *err = cap_end();
    int lets = 0, blocks = 0;
    for (int i = 0; i < decls.len; i++) {
        Decl *d = decls.items[i];
        lets += d->kind == DECL_LET;
        blocks += d->kind == DECL_BLOCK;
    }
    check(loaded && decls.len == 4 && lets == 1 && blocks == 2 && VEC_AT(decls, 0, Decl *)->kind == DECL_LET &&
              VEC_AT(decls, 3, Decl *)->kind == DECL_MODEL,
          "import: declarations once each, imports first", "%d decls (%d lets, %d blocks): %s", decls.len, lets, blocks, oneline(err));

    write_file("cyc/a.net", "import \"b.net\"\nblock a(x) { return relu(x) }\n");
    write_file("cyc/b.net", "import \"a.net\"\nblock b(x) { return relu(x) }\n");
    write_file("cyc/main.net", "import \"a.net\"\nmodel m(x: f32[1]) { return a(x) }\n");
    g = load_and_elab("cyc/main.net", &loaded);
    check(!loaded && !g && strstr(last_err, "cycle") && last_nerr == 1, "import: a cycle is an error", "loaded=%d: %s", loaded,
          oneline(last_err));
    write_file("self.net", "import \"self.net\"\nmodel m(x: f32[1]) { return relu(x) }\n");
    g = load_and_elab("self.net", &loaded);
    check(!loaded && strstr(last_err, "cycle"), "import: a file importing itself is a cycle", "loaded=%d: %s", loaded, oneline(last_err));
    write_file("missing.net", "import \"nothere.net\"\nmodel m(x: f32[1]) { return relu(x) }\n");
    g = load_and_elab("missing.net", &loaded);
    check(!loaded && strstr(last_err, "nothere.net") && strstr(last_err, "missing.net:1:"), "import: a missing file is an error at the import",
          "loaded=%d: %s", loaded, oneline(last_err));
    write_file("dup/x.net", "block b(x) { return relu(x) }\n");
    write_file("dup/main.net", "import \"x.net\"\nblock b(x) { return sigmoid(x) }\nmodel m(x: f32[1]) { return b(x) }\n");
    g = load_and_elab("dup/main.net", &loaded);
    check(loaded && !g && strstr(last_err, "defined twice"), "import: one block name in two files is an error", "%s", oneline(last_err));
    write_file("bad/x.net", "let a = (\n");
    write_file("bad/main.net", "import \"x.net\"\nmodel m(x: f32[1]) { return relu(x) }\n");
    g = load_and_elab("bad/main.net", &loaded);
    check(!loaded && strstr(last_err, "x.net:"), "import: a syntax error in an imported file names that file", "%s", oneline(last_err));
    cap_begin();
    loaded = load_program(format("%s/nosuchfile.net", tmpdir), &decls);
    err = cap_end();
    check(!loaded && strstr(err, "nosuchfile.net"), "import: an unreadable main file is an error", "%s", oneline(err));

    char *cmd = format("rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", tmpdir);
}

/* ---------------------------------------------------------------- weight keys */

static void weights_are(const char *name, const char *text, const char *want) {
    Graph *g = elab(text, NULL, NULL);
    if (!g) {
        check(false, name, "elaboration failed: %s", oneline(last_err));
        return;
    }
    char *got = weights_text(g);
    check(strcmp(got, want) == 0, name, "weights {%s}, expected {%s}", got, want);
}

static void test_weight_keys(void) {
    weights_are("keys: a builtin in the model", "model m(x: f32[1, 3]) { return linear(x, 2) as fc }",
                "fc.weight [2, 3], fc.bias [2]");
    weights_are("keys: nesting through block calls; a call without 'as' adds no segment",
                "block inner(x) { return conv2d(x, 4, kernel=1) as conv }\n"
                "block outer(x) {\n    y = inner(x) as a\n    y = inner(y)\n    return inner(y) as b.{1 + 1}\n}\n"
                "model m(x: f32[1, 4, 8, 8]) { return outer(x) as top }\n",
                "top.a.conv.weight [4, 4, 1, 1], top.a.conv.bias [4], top.conv.weight [4, 4, 1, 1], top.conv.bias [4], "
                "top.b.2.conv.weight [4, 4, 1, 1], top.b.2.conv.bias [4]");
    weights_are("keys: '-' inside a segment (RegNet's block1-0), also next to an interpolation",
                "model m(x: f32[1, 3]) {\n    a = linear(x, 2) as trunk.block1-0.fc\n    return a + linear(x, 2) as b{1}-{2}\n}",
                "trunk.block1-0.fc.weight [2, 3], trunk.block1-0.fc.bias [2], b1-2.weight [2, 3], b1-2.bias [2]");
    weights_are("keys: a string interpolated", "model m(x: f32[1, 3]) {\n    n = \"block2-1\"\n    return linear(x, 2) as s.{n}\n}",
                "s.block2-1.weight [2, 3], s.block2-1.bias [2]");
    weights_are("keys: 'as a - 1' with spaces is a subtraction", "model m(x: f32[1, 3]) { return linear(x, 2) as a - 1 }",
                "a.weight [2, 3], a.bias [2]");
    weights_are("keys: a block called without 'as' at the top level",
                "block inner(x) { return linear(x, 2) as fc }\nmodel m(x: f32[1, 3]) { return inner(x) }", "fc.weight [2, 3], fc.bias [2]");
    weights_are("keys: 'as self' gives the block's own name",
                "block ln2d(x) { return layernorm(x) as self }\nmodel m(x: f32[1, 4, 8, 8]) { return ln2d(x) as norm.0 }",
                "norm.0.weight [8], norm.0.bias [8]");
    weights_are("keys: 'as self' nested in a named block",
                "block ln(x) { return layernorm(x) as self }\nblock enc(x) { return ln(x) as ln_1 }\n"
                "model m(x: f32[2, 6]) { return enc(x) as encoder }",
                "encoder.ln_1.weight [6], encoder.ln_1.bias [6]");
    weights_are("keys: param(...) as self", "block pe(x) { return x + param([x.shape[1]]) as self }\nmodel m(x: f32[2, 5]) { return pe(x) as pos }",
                "pos [5]");
    elab_fails("keys: 'as self' in a model is an error", "model m(x: f32[1, 4]) { return layernorm(x) as self }", NULL, NULL,
               "as self");
    elab_fails("keys: 'as self' in a block called without 'as' is an error",
               "block ln(x) { return layernorm(x) as self }\nmodel m(x: f32[1, 4]) { return ln(x) }", NULL, NULL, "as self");
    weights_are("keys: as layer{s+1}.{i} in nested loops",
                "model m(x: f32[1, 2]) {\n  for s in 0..2 {\n    for i in 0..2 {\n      x = linear(x, 2, bias=false) as layer{s+1}.{i}\n"
                "    }\n  }\n  return x\n}\n",
                "layer1.0.weight [2, 2], layer1.1.weight [2, 2], layer2.0.weight [2, 2], layer2.1.weight [2, 2]");
    weights_are("keys: as encoder.layers.encoder_layer_{i}",
                "model m(x: f32[1, 2]) {\n  for i in 0..2 {\n    x = linear(x, 2, bias=false) as encoder.layers.encoder_layer_{i}\n  }\n"
                "  return x\n}\n",
                "encoder.layers.encoder_layer_0.weight [2, 2], encoder.layers.encoder_layer_1.weight [2, 2]");
    weights_are("keys: interpolation of a local and of an expression",
                "model m(x: f32[1, 2]) {\n  k = 3\n  y = linear(x, 2, bias=false) as l{k}.m{k * 2 - 10}\n  return y\n}\n",
                "l3.m-4.weight [2, 2]");
    elab_fails("keys: interpolating a float is an error", "model m(x: f32[1, 2]) { return linear(x, 2) as l{1.5} }", NULL, NULL,
               "must be an int");
    weights_are("keys: digit and keyword segments", "model m(x: f32[1, 2]) { return linear(linear(x, 2, bias=false) as 0, 2, bias=false) as block.for.0 }",
                "0.weight [2, 2], block.for.0.weight [2, 2]");
    weights_are("keys: param(...) as NAME in a named block",
                "block emb(x) { return x + param([1, x.shape[1]]) as pos }\nmodel m(x: f32[2, 5]) { return emb(x) as enc }",
                "enc.pos [1, 5]");
    weights_are("keys: arguments of a call are named in the caller's scope",
                "block wrap(t) { return relu(t) }\nblock outer(x) { return wrap(linear(x, 2) as fc) as w }\n"
                "model m(x: f32[1, 3]) { return outer(x) as o }",
                "o.fc.weight [2, 3], o.fc.bias [2]");
    weights_are("keys: creation order is call order",
                "model m(x: f32[1, 3, 4, 4]) { return batchnorm(conv2d(x, 2, kernel=1, bias=false) as c) as bn }",
                "c.weight [2, 3, 1, 1], bn.weight [2], bn.bias [2], bn.running_mean [2], bn.running_var [2]");
    elab_fails("keys: a loop without {i} creates a key twice",
               "model m(x: f32[1, 2]) {\n  for i in 0..2 { x = linear(x, 2) as fc }\n  return x\n}", NULL, NULL, "created twice");
    elab_fails("keys: one name for two block calls",
               "block b(x) { return linear(x, 2) as fc }\nmodel m(x: f32[1, 2]) { return b(b(x) as a) as a }", NULL, NULL,
               "'a.fc.weight' is created twice");
    elab_fails("keys: 'as' on a name", "model m(x: f32[1, 2]) { y = x as n\n return relu(y) }", NULL, NULL, "not 'x'");
    elab_fails("keys: 'as' on relu(x)", "model m(x: f32[1, 2]) { return relu(x) as n }", NULL, NULL, "creates none");
    elab_fails("keys: 'as' on (a + b)", "model m(x: f32[1, 2]) { return (x + x) as n }", NULL, NULL, "'as' names");
    elab_fails("keys: 'as' on len", "model m(x: f32[1, 2]) { n = len([1]) as n\n return relu(x) }", NULL, NULL, "creates none");
    elab_fails("keys: a builtin with weights needs 'as'", "model m(x: f32[1, 2]) { return linear(x, 2) }", NULL, NULL,
               "must be named with 'as'");
    elab_fails("keys: param needs 'as'", "model m(x: f32[1, 2]) { return x + param([2]) }", NULL, NULL, "must be named with 'as'");
    elab_fails("keys: a let cannot name weights", "let a = f(1) as n\nmodel m(x: f32[1, 2]) { return relu(x) }", NULL, NULL,
               "cannot name weights");
    Graph *g = elab("block b(x) { return linear(x, 2) as fc }\nmodel m(x: f32[1, 3]) { return b(x) as blk.0 }", NULL, NULL);
    check(g && out_op(g)->label && strcmp(out_op(g)->label, "blk.0.fc") == 0, "keys: the op is labelled with its full path", "%s",
          g ? (out_op(g)->label ? out_op(g)->label : "(null)") : oneline(last_err));
}

/* ---------------------------------------------------------------- shape rules */

static void test_shapes_layers(void) {
    const char *X = "x: f32[1, 3, 32, 32]";
    Graph *g = shape_ok("conv2d: kernel 3", X, "conv2d(x, 8, kernel=3) as c", "[1, 8, 30, 30]", "c.weight [8, 3, 3, 3], c.bias [8]");
    if (g) {
        Op *op = out_op(g);
        check(op->kind == OPK_CONV2D && op->in.len == 3 && op->a.kernel[0] == 3 && op->a.stride[1] == 1 && op->a.groups == 1 &&
                  op->a.has_bias && op->a.dilation[0] == 1,
              "conv2d: attributes", "kind %d, %d inputs", op->kind, op->in.len);
    }
    shape_ok("conv2d: stride 2 pad 1", X, "conv2d(x, 8, kernel=3, stride=2, pad=1, bias=false) as c", "[1, 8, 16, 16]",
             "c.weight [8, 3, 3, 3]");
    shape_ok("conv2d: dilation 2", X, "conv2d(x, 4, kernel=3, dilation=2) as c", "[1, 4, 28, 28]", "c.weight [4, 3, 3, 3], c.bias [4]");
    shape_ok("conv2d: dilation [2, 1]", X, "conv2d(x, 4, kernel=3, dilation=[2, 1]) as c", "[1, 4, 28, 30]", NULL);
    shape_ok("conv2d: dilation 2 pad 2 keeps the size", X, "conv2d(x, 4, kernel=3, pad=2, dilation=2) as c", "[1, 4, 32, 32]", NULL);
    shape_ok("conv2d: groups 3 (depthwise)", X, "conv2d(x, 6, kernel=3, groups=3, bias=false) as c", "[1, 6, 30, 30]",
             "c.weight [6, 1, 3, 3]");
    shape_ok("conv2d: groups 2", "x: f32[2, 4, 9, 9]", "conv2d(x, 6, kernel=1, groups=2) as c", "[2, 6, 9, 9]",
             "c.weight [6, 2, 1, 1], c.bias [6]");
    g = shape_ok("conv2d: asymmetric pad [top, left, bottom, right]", X, "conv2d(x, 2, kernel=3, pad=[1, 2, 3, 4]) as c", "[1, 2, 34, 36]",
                 NULL);
    if (g) {
        Op *op = out_op(g);
        check(op->a.pad[0] == 1 && op->a.pad[1] == 2 && op->a.pad[2] == 3 && op->a.pad[3] == 4, "conv2d: pad attribute order",
              "pad %d %d %d %d", op->a.pad[0], op->a.pad[1], op->a.pad[2], op->a.pad[3]);
    }
    shape_ok("conv2d: kernel [3, 5], stride [1, 2], pad [1, 2]", X, "conv2d(x, 2, kernel=[3, 5], stride=[1, 2], pad=[1, 2]) as c",
             "[1, 2, 32, 16]", "c.weight [2, 3, 3, 5], c.bias [2]");
    shape_ok("conv2d: patchify (kernel = stride = 16)", "x: f32[2, 3, 224, 224]", "conv2d(x, 8, kernel=16, stride=16) as p",
             "[2, 8, 14, 14]", NULL);
    shape_ok("conv2d: floor of a strided size", "x: f32[1, 3, 8, 8]", "conv2d(x, 2, kernel=2, stride=3) as c", "[1, 2, 3, 3]", NULL);
    shape_err("conv2d: rank-3 input", "x: f32[3, 32, 32]", "conv2d(x, 8, kernel=3) as c", "rank-4");
    {
        int before = diag_error_count;
        Graph *bad = elab(model_src("", "x: f32[3, 32, 32]", "return conv2d(x, 8, kernel=3) as c"), NULL, NULL);
        check(!bad && diag_error_count == before + 1 && strstr(last_err, "conv2d") && strstr(last_err, "found [3, 32, 32]"),
              "conv2d: the error names the expected rank and the found shape; diag_error_count + 1", "count +%d: %s",
              diag_error_count - before, first_error(last_err));
    }
    shape_err("conv2d: groups not dividing the channels", X, "conv2d(x, 8, kernel=3, groups=2) as c", "groups");
    shape_err("conv2d: kernel larger than the input", "x: f32[1, 3, 4, 4]", "conv2d(x, 8, kernel=5) as c", "does not fit");
    shape_err("conv2d: negative padding", X, "conv2d(x, 8, kernel=3, pad=-1) as c", "negative");
    shape_err("conv2d: stride 0", X, "conv2d(x, 8, kernel=3, stride=0) as c", "stride must be positive");
    shape_err("conv2d: pad of 3 ints", X, "conv2d(x, 8, kernel=3, pad=[1, 2, 3]) as c", "an int, [h, w] or [top, left, bottom, right]");

    g = shape_ok("linear: on rank 3", "x: f32[2, 5, 16]", "linear(x, 8) as fc", "[2, 5, 8]", "fc.weight [8, 16], fc.bias [8]");
    if (g)
        check(out_op(g)->kind == OPK_LINEAR && out_op(g)->a.has_bias, "linear: op and bias attribute", "kind %d", out_op(g)->kind);
    shape_ok("linear: bias=false on rank 1", "x: f32[16]", "linear(x, 4, bias=false) as fc", "[4]", "fc.weight [4, 16]");
    shape_err("linear: out 0", "x: f32[2, 16]", "linear(x, 0) as fc", "must be positive");

    g = shape_ok("batchnorm: 2d", X, "batchnorm(x) as bn", "[1, 3, 32, 32]",
                 "bn.weight [3], bn.bias [3], bn.running_mean [3], bn.running_var [3]");
    if (g)
        check(out_op(g)->a.eps == 1e-5, "batchnorm: default eps 1e-5", "eps %g", out_op(g)->a.eps);
    g = shape_ok("batchnorm: 1d [N, C], eps", "x: f32[4, 6]", "batchnorm(x, eps=0.001) as bn", "[4, 6]",
                 "bn.weight [6], bn.bias [6], bn.running_mean [6], bn.running_var [6]");
    if (g)
        check(out_op(g)->a.eps == 0.001, "batchnorm: eps attribute", "eps %g", out_op(g)->a.eps);
    shape_err("batchnorm: rank 1", "x: f32[6]", "batchnorm(x) as bn", "channel");
    shape_err("batchnorm: negative eps", X, "batchnorm(x, eps=-1e-5) as bn", "eps must be zero or positive");
    g = shape_ok("batchnorm: eps 0 (as PyTorch allows)", X, "batchnorm(x, eps=0.0) as bn", "[1, 3, 32, 32]",
                 "bn.weight [3], bn.bias [3], bn.running_mean [3], bn.running_var [3]");
    if (g)
        check(out_op(g)->a.eps == 0, "batchnorm: eps 0 kept", "eps %g", out_op(g)->a.eps);
    shape_ok("layernorm: eps 0 (as PyTorch allows)", "x: f32[2, 16]", "layernorm(x, eps=0.0) as ln", "[2, 16]", "ln.weight [16], ln.bias [16]");

    g = shape_ok("layernorm: last axis", "x: f32[2, 5, 16]", "layernorm(x, eps=1e-6) as ln", "[2, 5, 16]", "ln.weight [16], ln.bias [16]");
    if (g)
        check(out_op(g)->a.eps == 1e-6, "layernorm: eps attribute", "eps %g", out_op(g)->a.eps);
    shape_err("layernorm: negative eps", "x: f32[2, 16]", "layernorm(x, eps=-1.0) as ln", "eps must be zero or positive");

    const char *mha_w = "a.in_proj_weight [48, 16], a.in_proj_bias [48], a.out_proj.weight [16, 16], a.out_proj.bias [16]";
    g = shape_ok("multihead_attention: [N, L, D]", "x: f32[2, 10, 16]", "multihead_attention(x, 4) as a", "[2, 10, 16]", mha_w);
    if (g)
        check(out_op(g)->kind == OPK_MHA && out_op(g)->a.heads == 4 && !out_op(g)->a.causal && out_op(g)->in.len == 5,
              "multihead_attention: attributes and inputs", "heads %d, %d inputs", out_op(g)->a.heads, out_op(g)->in.len);
    g = shape_ok("multihead_attention: causal", "x: f32[2, 10, 16]", "multihead_attention(x, heads=2, causal=true) as a", "[2, 10, 16]",
                 mha_w);
    if (g)
        check(out_op(g)->a.causal && out_op(g)->a.heads == 2, "multihead_attention: causal attribute", "causal %d", out_op(g)->a.causal);
    shape_err("multihead_attention: heads not dividing D", "x: f32[2, 10, 16]", "multihead_attention(x, 5) as a", "heads=5");
    shape_err("multihead_attention: rank 2", "x: f32[10, 16]", "multihead_attention(x, 4) as a", "rank-3");

    g = shape_ok("cross_attention: queries [2, 10, 16], memory [2, 7, 16]", "x: f32[2, 10, 16], mem: f32[2, 7, 16]",
                 "cross_attention(x, mem, 4) as a", "[2, 10, 16]", mha_w);
    if (g)
        check(out_op(g)->kind == OPK_CROSS_ATTENTION && out_op(g)->in.len == 6 && VEC_AT(out_op(g)->in, 1, Tensor *)->kind == TK_INPUT,
              "cross_attention: inputs (x, memory, 4 weights)", "%d inputs", out_op(g)->in.len);
    shape_err("cross_attention: memory of another width", "x: f32[2, 10, 16], mem: f32[2, 7, 8]", "cross_attention(x, mem, 4) as a",
              "memory");

    g = shape_ok("param: a learned tensor used in arithmetic", "x: f32[2, 5, 8]", "x + param([1, 5, 8]) as pos", "[2, 5, 8]", "pos [1, 5, 8]");
    if (g)
        check(out_op(g)->kind == OPK_ADD && VEC_AT(out_op(g)->in, 1, Tensor *)->kind == TK_WEIGHT, "param: no op of its own, a weight input",
              "kind %d", out_op(g)->kind);
    shape_err("param: empty shape", "x: f32[2]", "x + param([]) as p", "at least one dimension");
    shape_err("param: zero dimension", "x: f32[2]", "x + param([0]) as p", "positive");
    {
        Graph *g = elab(model_src("", "x: f32[2]", "return param([2]) as p"), NULL, NULL);
        check(g && g->outputs.len == 1 && VEC_AT(g->outputs, 0, Tensor *)->kind == TK_ACT && g->weights.len == 1,
              "param: returned unchanged is a copy of the weight", "%s", g ? "wrong graph" : "elaboration failed");
    }
}

static void test_shapes_elementwise(void) {
    const char *X = "x: f32[2, 3, 4]";
    /* every activation builtin (a row of ops.def with an ACT column) keeps the shape and runs its row of nnk_acts.def */
    int activations = 0;
    for (int k = 0; k < OPK_COUNT; k++) {
        if (!op_info[k].user || op_info[k].act == ACT_NONE)
            continue;
        const char *name = op_info[k].name;
        Graph *g = shape_ok(format("%s: same shape", name), X, format("%s(x)", name), "[2, 3, 4]", "");
        if (g)
            check(out_op(g)->kind == (OpKind)k && g->ops.len == 1 && out_op(g)->a.act == op_info[k].act,
                  format("%s: one op of its kind, running act %s", name, act_name[op_info[k].act]), "kind %d, act %d", out_op(g)->kind,
                  out_op(g)->a.act);
        activations++;
    }
    check(activations >= 5, "activation builtins: relu, gelu, sigmoid, tanh, silu at least", "%d found", activations);
    Graph *g = shape_ok("gelu: approximate=\"tanh\"", X, "gelu(x, approximate=\"tanh\")", "[2, 3, 4]", NULL);
    if (g)
        check(out_op(g)->a.act == ACT_GELU_TANH, "gelu: tanh form runs gelu_tanh", "act %d", out_op(g)->a.act);
    g = shape_ok("gelu: default is exact", X, "gelu(x)", "[2, 3, 4]", NULL);
    if (g)
        check(out_op(g)->a.act == ACT_GELU, "gelu: exact by default", "act %d", out_op(g)->a.act);
    shape_err("gelu: unknown approximation", X, "gelu(x, approximate=\"fast\")", "approximate");
    shape_err("relu: an int argument", X, "relu(3)", "must be a tensor");
    shape_err("sigmoid: a list argument", X, "sigmoid([x])", "must be a tensor");
    shape_err("tanh: no argument", X, "tanh()", "missing argument 'x'");
    shape_err("silu: two arguments", X, "silu(x, 1)", "too many arguments");

    g = shape_ok("softmax: default axis -1", X, "softmax(x)", "[2, 3, 4]", NULL);
    if (g)
        check(out_op(g)->a.axis == 2, "softmax: axis -1 normalised to 2", "axis %d", out_op(g)->a.axis);
    g = shape_ok("softmax: axis=1", X, "softmax(x, axis=1)", "[2, 3, 4]", NULL);
    if (g)
        check(out_op(g)->a.axis == 1, "softmax: axis attribute", "axis %d", out_op(g)->a.axis);
    shape_err("softmax: axis 3 of rank 3", X, "softmax(x, axis=3)", "out of range");

    g = shape_ok("dropout: the identity", X, "relu(dropout(x, p=0.1))", "[2, 3, 4]", NULL);
    if (g)
        check(g->ops.len == 1 && VEC_AT(out_op(g)->in, 0, Tensor *)->kind == TK_INPUT, "dropout: no op in the graph", "%d ops", g->ops.len);
    shape_err("dropout: p=1", X, "relu(dropout(x, p=1))", "p must be in [0, 1)");

    g = shape_ok("broadcast: [2, 1, 4] + [3, 1]", "a: f32[2, 1, 4], b: f32[3, 1]", "a + b", "[2, 3, 4]", NULL);
    if (g)
        check(out_op(g)->kind == OPK_ADD, "broadcast: + is an add op", "kind %d", out_op(g)->kind);
    g = shape_ok("broadcast: [4] - [2, 3, 4]", "a: f32[4], b: f32[2, 3, 4]", "a - b", "[2, 3, 4]", NULL);
    if (g)
        check(out_op(g)->kind == OPK_SUB && VEC_AT(out_op(g)->in, 0, Tensor *)->rank == 1, "broadcast: - keeps operand order",
              "kind %d", out_op(g)->kind);
    g = shape_ok("broadcast: [5, 1] * [1, 6]", "a: f32[5, 1], b: f32[1, 6]", "a * b", "[5, 6]", NULL);
    if (g)
        check(out_op(g)->kind == OPK_MUL, "broadcast: * is a mul op", "kind %d", out_op(g)->kind);
    g = shape_ok("broadcast: [2, 3] / [2, 3]", "a: f32[2, 3], b: f32[2, 3]", "a / b", "[2, 3]", NULL);
    if (g)
        check(out_op(g)->kind == OPK_DIV, "broadcast: / is a div op", "kind %d", out_op(g)->kind);
    shape_err("broadcast: [2, 3] + [4]", "a: f32[2, 3], b: f32[4]", "a + b", "cannot broadcast shapes [2, 3] and [4]");

    g = shape_ok("scalar: x * 0.125", X, "x * 0.125", "[2, 3, 4]", NULL);
    if (g) {
        Op *op = out_op(g);
        check(op->kind == OPK_SCALAR && op->a.value == 0.125 && op->a.binop == OP_MUL && !op->a.scalar_first && op->in.len == 1,
              "scalar: x * 0.125 attributes", "kind %d value %g op %d first %d", op->kind, op->a.value, op->a.binop, op->a.scalar_first);
    }
    g = shape_ok("scalar: 2 - x (int scalar first)", X, "2 - x", "[2, 3, 4]", NULL);
    if (g) {
        Op *op = out_op(g);
        check(op->kind == OPK_SCALAR && op->a.value == 2.0 && op->a.binop == OP_SUB && op->a.scalar_first, "scalar: 2 - x attributes",
              "kind %d value %g op %d first %d", op->kind, op->a.value, op->a.binop, op->a.scalar_first);
    }
    g = elab(model_src("", X, "s = 0.5\nreturn x / s"), NULL, NULL);
    check(g && out_op(g)->kind == OPK_SCALAR && out_op(g)->a.binop == OP_DIV && out_op(g)->a.value == 0.5,
          "scalar: a float variable broadcasts", "%s", oneline(last_err));
    g = elab(model_src("", X, "return 1 + x.shape[2] + x"), NULL, NULL);
    check(g && out_op(g)->kind == OPK_SCALAR && out_op(g)->a.value == 5.0 && out_op(g)->a.binop == OP_ADD,
          "scalar: an int expression broadcasts", "%s", oneline(last_err));
    shape_err("scalar: x + true", X, "x + true", "cannot apply");
    shape_err("scalar: x ** 2 is not a tensor operator", X, "x ** 2", "not defined on tensors");
    g = shape_ok("compare: x < x is a boolean tensor", X, "relu(x < x)", "[2, 3, 4]", NULL);
    if (g)
        check(VEC_AT(out_op(g)->in, 0, Tensor *)->dtype == DT_BOOL && VEC_AT(out_op(g)->in, 0, Tensor *)->producer->kind == OPK_LT,
              "compare: a lt op giving booleans", "kind %d", VEC_AT(out_op(g)->in, 0, Tensor *)->producer->kind);
    g = shape_ok("compare: 0.5 < x is x > 0.5", X, "0.5 < x", "[2, 3, 4]", NULL);
    if (g)
        check(out_op(g)->kind == OPK_SCALAR && out_op(g)->a.binop == OP_GT && !out_op(g)->a.scalar_first && out_op(g)->out->dtype == DT_BOOL,
              "compare: a scalar comparison mirrored", "op %d first %d", out_op(g)->a.binop, out_op(g)->a.scalar_first);
    shape_err("compare: x % 2 is not a tensor operator", X, "x % 2", "not defined on tensors");
    g = shape_ok("neg: -x", X, "-x", "[2, 3, 4]", NULL);
    if (g)
        check(out_op(g)->kind == OPK_NEG, "neg: unary minus is a neg op", "kind %d", out_op(g)->kind);
    shape_err("neg: !x is an error", X, "!x", "must be a bool");
}

static void test_shapes_pool(void) {
    const char *X = "x: f32[1, 3, 32, 32]";
    Graph *g = shape_ok("maxpool: kernel 2, stride defaults to kernel", X, "maxpool(x, kernel=2)", "[1, 3, 16, 16]", "");
    if (g)
        check(out_op(g)->kind == OPK_MAXPOOL && out_op(g)->a.stride[0] == 2 && out_op(g)->a.stride[1] == 2, "maxpool: stride attribute",
              "stride %d %d", out_op(g)->a.stride[0], out_op(g)->a.stride[1]);
    shape_ok("maxpool: kernel 3 stride 2 pad 1 (ResNet stem)", "x: f32[1, 64, 112, 112]", "maxpool(x, kernel=3, stride=2, pad=1)",
             "[1, 64, 56, 56]", NULL);
    shape_ok("maxpool: kernel 3, default stride 3, floor", X, "maxpool(x, 3)", "[1, 3, 10, 10]", NULL);
    shape_ok("maxpool: ceil_mode keeps the partial window (GoogLeNet 112 -> 56)", "x: f32[1, 64, 112, 112]",
             "maxpool(x, 3, stride=2, ceil_mode=true)", "[1, 64, 56, 56]", NULL);
    shape_ok("maxpool: ceil_mode, 7 -> 4 with stride 2", "x: f32[1, 2, 7, 7]", "maxpool(x, 3, stride=2, ceil_mode=true)", "[1, 2, 3, 3]", NULL);
    shape_ok("maxpool: ceil_mode, 8 -> 4 with kernel 3 stride 2", "x: f32[1, 2, 8, 8]", "maxpool(x, 3, stride=2, ceil_mode=true)", "[1, 2, 4, 4]",
             NULL);
    shape_ok("maxpool: ceil_mode drops a window starting in the right padding", "x: f32[1, 2, 5, 5]",
             "maxpool(x, 2, stride=2, pad=1, ceil_mode=true)", "[1, 2, 3, 3]", NULL);
    shape_err("maxpool: no count_include_pad", X, "maxpool(x, 2, count_include_pad=false)", "count_include_pad");
    g = shape_ok("avgpool: count_include_pad=false kept", X, "avgpool(x, 3, stride=2, pad=1, count_include_pad=false)", "[1, 3, 16, 16]", NULL);
    if (g)
        check(!out_op(g)->a.count_include_pad && !out_op(g)->a.ceil_mode, "avgpool: its flags", "%d %d", out_op(g)->a.count_include_pad,
              out_op(g)->a.ceil_mode);
    g = shape_ok("clamp: same shape", X, "clamp(x, -1, 1)", "[1, 3, 32, 32]", "");
    if (g)
        check(out_op(g)->kind == OPK_CLAMP && out_op(g)->a.lo == -1 && out_op(g)->a.hi == 1, "clamp: its bounds", "%g %g", out_op(g)->a.lo,
              out_op(g)->a.hi);
    g = shape_ok("clamp: (0, 6) is relu6", X, "clamp(x, 0, 6)", "[1, 3, 32, 32]", "");
    if (g)
        check(out_op(g)->kind == OPK_RELU6, "clamp(x, 0, 6): a relu6 op (fusable)", "kind %s", op_info[out_op(g)->kind].name);
    g = shape_ok("hardtanh: a clamp of -1, 1", X, "hardtanh(x)", "[1, 3, 32, 32]", "");
    if (g)
        check(out_op(g)->kind == OPK_CLAMP && out_op(g)->a.lo == -1 && out_op(g)->a.hi == 1, "hardtanh: clamp -1, 1", "%g %g", out_op(g)->a.lo,
              out_op(g)->a.hi);
    shape_err("clamp: no bound", X, "clamp(x)", "needs min, max or both");
    shape_err("maxpool: padding more than half the kernel", X, "maxpool(x, kernel=2, pad=2)", "half the kernel");
    shape_err("maxpool: rank 3", "x: f32[3, 32, 32]", "maxpool(x, kernel=2)", "rank-4");
    g = shape_ok("avgpool: kernel [2, 4]", X, "avgpool(x, kernel=[2, 4])", "[1, 3, 16, 8]", "");
    if (g)
        check(out_op(g)->kind == OPK_AVGPOOL, "avgpool: op kind", "kind %d", out_op(g)->kind);
    shape_ok("avgpool: stride 1 pad [0, 1]", X, "avgpool(x, kernel=3, stride=1, pad=[0, 1])", "[1, 3, 30, 32]", NULL);
    shape_err("avgpool: window larger than the input", "x: f32[1, 3, 2, 2]", "avgpool(x, kernel=3)", "does not fit");
    g = shape_ok("adaptive_avgpool: smaller", X, "adaptive_avgpool(x, 7)", "[1, 3, 7, 7]", "");
    if (g)
        check(out_op(g)->kind == OPK_ADAPTIVE_AVGPOOL, "adaptive_avgpool: op kind", "kind %d", out_op(g)->kind);
    shape_ok("adaptive_avgpool: [h, w], larger than the input", X, "adaptive_avgpool(x, size=[2, 50])", "[1, 3, 2, 50]", NULL);
    shape_err("adaptive_avgpool: size 0", X, "adaptive_avgpool(x, 0)", "size must be positive");
    g = shape_ok("global_avgpool: [N, C, 1, 1]", X, "global_avgpool(x)", "[1, 3, 1, 1]", "");
    if (g)
        check(out_op(g)->kind == OPK_ADAPTIVE_AVGPOOL && g->ops.len == 1, "global_avgpool: lowered to adaptive_avgpool", "kind %d",
              out_op(g)->kind);
    shape_err("global_avgpool: rank 2", "x: f32[3, 32]", "global_avgpool(x)", "rank-4");
}

static void test_shapes_shape_ops(void) {
    const char *X = "x: f32[2, 3, 4, 5]";
    Graph *g = shape_ok("pad: axis 1 before 2 after 3", X, "pad(x, 1, 2, 3)", "[2, 8, 4, 5]", "");
    if (g)
        check(out_op(g)->kind == OPK_PAD && out_op(g)->a.axis == 1 && out_op(g)->a.before == 2 && out_op(g)->a.after == 3 &&
                  out_op(g)->a.value == 0.0,
              "pad: attributes", "axis %d", out_op(g)->a.axis);
    g = shape_ok("pad: axis -1 with a value", X, "pad(x, axis=-1, before=0, after=1, value=0.25)", "[2, 3, 4, 6]", NULL);
    if (g)
        check(out_op(g)->a.axis == 3 && out_op(g)->a.value == 0.25, "pad: axis -1 normalised, value", "axis %d value %g", out_op(g)->a.axis,
              out_op(g)->a.value);
    shape_err("pad: negative before", X, "pad(x, 1, -1, 0)", "negative");
    shape_err("pad: axis out of range", X, "pad(x, 4, 1, 1)", "out of range");

    g = shape_ok("flatten: default start 1", X, "flatten(x)", "[2, 60]", "");
    if (g)
        check(out_op(g)->kind == OPK_RESHAPE && g->ops.len == 1, "flatten: lowered to one reshape", "kind %d", out_op(g)->kind);
    shape_ok("flatten: start=2", X, "flatten(x, start=2)", "[2, 3, 20]", NULL);
    shape_ok("flatten: start=0", X, "flatten(x, 0)", "[120]", NULL);
    shape_ok("flatten: start=-2", X, "flatten(x, -2)", "[2, 3, 20]", NULL);
    shape_ok("flatten: start=-1 keeps the shape", X, "flatten(x, -1)", "[2, 3, 4, 5]", NULL);
    shape_err("flatten: start 4 of rank 4", X, "flatten(x, 4)", "out of range");

    shape_ok("reshape: [-1, 4]", X, "reshape(x, [-1, 4])", "[30, 4]", NULL);
    shape_ok("reshape: [4, -1, 2]", "x: f32[2, 3, 4]", "reshape(x, shape=[4, -1, 2])", "[4, 3, 2]", NULL);
    shape_ok("reshape: no -1", X, "reshape(x, [6, 20])", "[6, 20]", NULL);
    shape_err("reshape: -1 that does not divide", X, "reshape(x, [7, -1])", "cannot reshape");
    shape_err("reshape: two -1", X, "reshape(x, [-1, -1, 10])", "more than one -1");
    shape_err("reshape: wrong element count", X, "reshape(x, [5, 5])", "cannot reshape");
    shape_err("reshape: a zero dimension", X, "reshape(x, [0, -1])", "must be positive");

    g = shape_ok("transpose: [2, 0, 1]", "x: f32[2, 3, 4]", "transpose(x, [2, 0, 1])", "[4, 2, 3]", "");
    if (g)
        check(out_op(g)->kind == OPK_TRANSPOSE && out_op(g)->a.perm[0] == 2 && out_op(g)->a.perm[1] == 0 && out_op(g)->a.perm[2] == 1,
              "transpose: perm attribute", "perm %d %d %d", out_op(g)->a.perm[0], out_op(g)->a.perm[1], out_op(g)->a.perm[2]);
    g = shape_ok("transpose: negative axes", "x: f32[2, 3, 4]", "transpose(x, perm=[0, -1, -2])", "[2, 4, 3]", NULL);
    if (g)
        check(out_op(g)->a.perm[1] == 2 && out_op(g)->a.perm[2] == 1, "transpose: negative axes normalised", "perm %d %d",
              out_op(g)->a.perm[1], out_op(g)->a.perm[2]);
    shape_err("transpose: an axis twice", "x: f32[2, 3, 4]", "transpose(x, [0, 0, 1])", "twice");
    shape_err("transpose: too few axes", "x: f32[2, 3, 4]", "transpose(x, [1, 0])", "perm must list all 3 axes");

    g = shape_ok("concat: axis 1", "a: f32[2, 3, 4], b: f32[2, 5, 4]", "concat([a, b], axis=1)", "[2, 8, 4]", "");
    if (g)
        check(out_op(g)->kind == OPK_CONCAT && out_op(g)->in.len == 2 && out_op(g)->a.axis == 1, "concat: inputs and axis", "%d inputs",
              out_op(g)->in.len);
    shape_ok("concat: default axis 0, three tensors", "a: f32[2, 3], b: f32[1, 3]", "concat([a, b, a])", "[5, 3]", NULL);
    g = shape_ok("concat: axis -1", "a: f32[2, 3], b: f32[2, 1]", "concat([a, b], -1)", "[2, 4]", NULL);
    if (g)
        check(out_op(g)->a.axis == 1, "concat: axis -1 normalised", "axis %d", out_op(g)->a.axis);
    shape_err("concat: mismatched shapes", "a: f32[2, 3], b: f32[3, 3]", "concat([a, b], axis=1)", "does not match");
    shape_err("concat: mismatched ranks", "a: f32[2, 3], b: f32[2, 3, 1]", "concat([a, b], axis=0)", "does not match");
    shape_err("concat: empty list", "a: f32[2, 3]", "concat([])", "non-empty list of tensors");

    const char *S = "x: f32[2, 10]";
    g = shape_ok("slice: [2:8]", S, "slice(x, 1, 2, 8)", "[2, 6]", "");
    if (g)
        check(out_op(g)->kind == OPK_SLICE && out_op(g)->a.start == 2 && out_op(g)->a.step == 1 && out_op(g)->a.axis == 1,
              "slice: attributes", "start %lld step %lld", (long long)out_op(g)->a.start, (long long)out_op(g)->a.step);
    shape_ok("slice: [2:8:3]", S, "slice(x, 1, 2, 8, step=3)", "[2, 2]", NULL);
    shape_ok("slice: [1:10:2]", S, "slice(x, 1, 1, 10, 2)", "[2, 5]", NULL);
    g = shape_ok("slice: [-3:100] clamps", S, "slice(x, -1, -3, 100)", "[2, 3]", NULL);
    if (g)
        check(out_op(g)->a.start == 7 && out_op(g)->a.axis == 1, "slice: negative start normalised", "start %lld axis %d",
              (long long)out_op(g)->a.start, out_op(g)->a.axis);
    g = shape_ok("slice: [-100:3] clamps", S, "slice(x, 1, -100, 3)", "[2, 3]", NULL);
    if (g)
        check(out_op(g)->a.start == 0, "slice: start clamped to 0", "start %lld", (long long)out_op(g)->a.start);
    shape_ok("slice: [0:-1]", S, "slice(x, 1, 0, -1)", "[2, 9]", NULL);
    shape_ok("slice: [-4:-1:2]", S, "slice(x, 1, -4, -1, step=2)", "[2, 2]", NULL);
    shape_ok("slice: axis 0 [1:2]", S, "slice(x, axis=0, start=1, end=2)", "[1, 10]", NULL);
    shape_err("slice: [5:2] selects nothing", S, "slice(x, 1, 5, 2)", "selects nothing");
    shape_err("slice: step 0", S, "slice(x, 1, 0, 5, step=0)", "step must be positive");
    shape_err("slice: axis out of range", S, "slice(x, 2, 0, 1)", "out of range");

    const char *T = "x: f32[2, 10, 4]";
    g = shape_ok("take: drops the axis", T, "take(x, 1, 0)", "[2, 4]", "");
    if (g)
        check(g->ops.len == 2 && count_ops(g, OPK_SLICE) == 1 && count_ops(g, OPK_RESHAPE) == 1 &&
                  VEC_AT(g->ops, 0, Op *)->a.start == 0,
              "take: lowered to slice and reshape", "%d ops", g->ops.len);
    g = shape_ok("take: negative index", T, "take(x, axis=1, index=-1)", "[2, 4]", NULL);
    if (g)
        check(VEC_AT(g->ops, 0, Op *)->a.start == 9, "take: index -1 is 9", "start %lld", (long long)VEC_AT(g->ops, 0, Op *)->a.start);
    shape_ok("take: axis -1", T, "take(x, -1, 3)", "[2, 10]", NULL);
    shape_err("take: index out of range", T, "take(x, 1, 10)", "out of range");
    shape_err("take: index below range", T, "take(x, 1, -11)", "out of range");

    g = shape_ok("expand: [1, 3, 1] to [2, -1, 4]", "x: f32[1, 3, 1]", "expand(x, [2, -1, 4])", "[2, 3, 4]", "");
    if (g)
        check(out_op(g)->kind == OPK_EXPAND, "expand: op kind", "kind %d", out_op(g)->kind);
    shape_ok("expand: new leading dims", "x: f32[3, 1]", "expand(x, shape=[5, 2, 3, 4])", "[5, 2, 3, 4]", NULL);
    shape_ok("expand: class token [1, 1, 8] to [2, -1, -1]", "x: f32[1, 1, 8]", "expand(x, [2, -1, -1])", "[2, 1, 8]", NULL);
    shape_err("expand: 3 cannot become 4", "x: f32[1, 3, 1]", "expand(x, [2, 4, 4])", "cannot expand");
    shape_err("expand: -1 for a new leading dim", "x: f32[3]", "expand(x, [-1, 3])", "cannot expand");
    shape_err("expand: fewer axes", "x: f32[2, 3]", "expand(x, [3])", "fewer axes");
}

static void test_shapes_matmul(void) {
    Graph *g = shape_ok("matmul: [2, 3] @ [3, 4]", "a: f32[2, 3], b: f32[3, 4]", "a @ b", "[2, 4]", "");
    if (g)
        check(out_op(g)->kind == OPK_MATMUL, "matmul: '@' is a matmul op", "kind %d", out_op(g)->kind);
    shape_ok("matmul: the builtin", "a: f32[2, 3], b: f32[3, 4]", "matmul(a, b)", "[2, 4]", NULL);
    shape_ok("matmul: 1-D left [3] @ [3, 4]", "a: f32[3], b: f32[3, 4]", "a @ b", "[4]", NULL);
    shape_ok("matmul: 1-D right [2, 3] @ [3]", "a: f32[2, 3], b: f32[3]", "a @ b", "[2]", NULL);
    shape_ok("matmul: 1-D left with batch [3] @ [5, 3, 4]", "a: f32[3], b: f32[5, 3, 4]", "a @ b", "[5, 4]", NULL);
    shape_ok("matmul: 1-D right with batch [5, 2, 3] @ [3]", "a: f32[5, 2, 3], b: f32[3]", "a @ b", "[5, 2]", NULL);
    shape_ok("matmul: broadcast batch [5, 1, 2, 3] @ [4, 3, 6]", "a: f32[5, 1, 2, 3], b: f32[4, 3, 6]", "a @ b", "[5, 4, 2, 6]", NULL);
    shape_ok("matmul: batch [2, 3, 4] @ [4, 5]", "a: f32[2, 3, 4], b: f32[4, 5]", "a @ b", "[2, 3, 5]", NULL);
    shape_err("matmul: inner dimensions differ", "a: f32[2, 3], b: f32[4, 5]", "a @ b", "[2, 3] @ [4, 5]");
    shape_ok("matmul: vector @ vector is a 0-d tensor, as in torch.matmul", "a: f32[3], b: f32[3]", "a @ b", "[]", NULL);
    shape_err("matmul: batch dims do not broadcast", "a: f32[2, 2, 3], b: f32[3, 3, 4]", "a @ b", "cannot broadcast");
    shape_err("matmul: @ with an int", "a: f32[2, 3]", "a @ 2", "'@' multiplies two tensors");

    g = shape_ok("sdpa: q [2, 4, 10, 8], k [2, 4, 12, 8], v [2, 4, 12, 16]",
                 "q: f32[2, 4, 10, 8], k: f32[2, 4, 12, 8], v: f32[2, 4, 12, 16]", "scaled_dot_product_attention(q, k, v)",
                 "[2, 4, 10, 16]", "");
    if (g)
        check(out_op(g)->kind == OPK_SDPA && !out_op(g)->a.causal && out_op(g)->in.len == 3, "sdpa: op and inputs", "kind %d",
              out_op(g)->kind);
    g = shape_ok("sdpa: causal, rank 2", "q: f32[5, 8]", "scaled_dot_product_attention(q, q, q, causal=true)", "[5, 8]", NULL);
    if (g)
        check(out_op(g)->a.causal, "sdpa: causal attribute", "causal false");
    shape_err("sdpa: k of another depth", "q: f32[2, 10, 8], k: f32[2, 12, 4], v: f32[2, 12, 8]", "scaled_dot_product_attention(q, k, v)",
              "expects q");
    shape_err("sdpa: ranks differ", "q: f32[2, 10, 8], k: f32[12, 8]", "scaled_dot_product_attention(q, k, k)", "same rank");
    g = shape_ok("sdpa: an additive attn_mask [L, S]", "q: f32[2, 4, 10, 8], m: f32[10, 10]", "scaled_dot_product_attention(q, q, q, attn_mask=m)",
                 "[2, 4, 10, 8]", NULL);
    if (g)
        check(out_op(g)->a.mask == MASK_ADD && out_op(g)->in.len == 4, "sdpa: the mask is its last input", "mask %d", out_op(g)->a.mask);
    g = shape_ok("sdpa: a boolean attn_mask keeps", "q: f32[2, 10, 8], m: f32[10, 1]", "scaled_dot_product_attention(q, q, q, attn_mask=m > 0)",
                 "[2, 10, 8]", NULL);
    if (g)
        check(out_op(g)->a.mask == MASK_KEEP, "sdpa: keep where true", "mask %d", out_op(g)->a.mask);
    shape_err("sdpa: a mask that does not broadcast", "q: f32[2, 10, 8], m: f32[3, 10, 10]", "scaled_dot_product_attention(q, q, q, attn_mask=m)",
              "must broadcast to the attention scores [2, 10, 10]");
    g = shape_ok("mha: a boolean attn_mask masks", "x: f32[2, 5, 8], m: f32[4, 5, 5]", "multihead_attention(x, 2, attn_mask=m > 0) as a",
                 "[2, 5, 8]", NULL);
    if (g)
        check(out_op(g)->a.mask == MASK_DROP && out_op(g)->in.len == 6, "mha: masked where true", "mask %d", out_op(g)->a.mask);
    shape_err("mha: a mask of the wrong shape", "x: f32[2, 5, 8], m: f32[5, 4]", "multihead_attention(x, 2, attn_mask=m) as a",
              "[L, S] = [5, 5] or [N * heads, L, S] = [4, 5, 5]");
}

/* Index tensors, constant tensors, where, roll, reductions and normalize. */
static void test_shapes_tensors(void) {
    const char *T = "x: f32[7, 5]";
    Graph *g = shape_ok("index_select: [7, 5] by [9]", T, "index_select(x, 0, buffer([9], dtype=\"i64\") as i)", "[9, 5]", NULL);
    if (g) {
        Tensor *i = VEC_AT(out_op(g)->in, 1, Tensor *);
        check(i->dtype == DT_INDEX && i->index_limit == 7 && i->kind == TK_WEIGHT, "index_select: the index's limit is the axis",
              "dtype %d limit %lld", i->dtype, (long long)i->index_limit);
    }
    shape_ok("take: by an index tensor of rank 2", T, "take(x, 1, buffer([2, 3], dtype=\"i32\") as i)", "[7, 2, 3]", NULL);
    shape_err("index_select: a rank-2 index", T, "index_select(x, 0, buffer([2, 3], dtype=\"i64\") as i)", "one-dimensional");
    shape_err("index_select: a float index", T, "index_select(x, 0, x)", "must be an index tensor");
    shape_err("index: arithmetic on indices", T, "x + (buffer([5], dtype=\"i64\") as i)", "not defined on index tensors");
    shape_err("index: relu of indices", T, "relu(buffer([5], dtype=\"i64\") as i)", "must be a float tensor");
    shape_err("buffer: an unknown dtype", T, "x + (buffer([5], dtype=\"u8\") as i)", "dtype must be");
    shape_err("buffer: without as", T, "x + buffer([5])", "must be named with 'as'");
    shape_ok("full: [2, 3]", T, "full([2, 3], 1.5)", "[2, 3]", NULL);
    shape_ok("zeros, ones", T, "zeros([4]) + ones([3, 1])", "[3, 4]", NULL);
    shape_err("full: an empty shape", T, "full([], 1.0)", "at least one dimension");
    shape_ok("arange: end", T, "arange(5)", "[5]", NULL);
    shape_ok("arange: start, end, step", T, "arange(1, 2, 0.3)", "[4]", NULL);
    shape_err("arange: step 0", T, "arange(0, 3, 0)", "step non-zero");
    shape_err("arange: empty", T, "arange(3, 1)", "elements");
    shape_ok("where: broadcast", "c: f32[2, 1, 5], a: f32[3, 5]", "where(c > 0, a, 1.0)", "[2, 3, 5]", NULL);
    shape_err("where: shapes", "c: f32[2, 5], a: f32[3, 5]", "where(c > 0, a, 1.0)", "cannot broadcast");
    shape_ok("masked_fill", T, "masked_fill(x, x > 0, -100.0)", "[7, 5]", NULL);
    shape_err("masked_fill: a mask larger than x", "x: f32[5], m: f32[2, 5]", "masked_fill(x, m, 0.0)", "must broadcast to the shape of x");
    shape_ok("roll: two axes", T, "roll(x, [1, -2], axis=[0, 1])", "[7, 5]", NULL);
    shape_ok("roll: flattened", T, "roll(x, 3)", "[7, 5]", NULL);
    shape_err("roll: lengths differ", T, "roll(x, [1, 2], axis=0)", "same length");
    shape_ok("sum: one axis", T, "sum(x, 1)", "[7]", NULL);
    shape_ok("mean: keepdim", T, "mean(x, [0, 1], keepdim=true)", "[1, 1]", NULL);
    shape_ok("max: every axis", T, "max(x)", "[]", NULL);
    shape_ok("min: a negative axis", T, "min(x, -2)", "[5]", NULL);
    shape_err("sum: an axis twice", T, "sum(x, [1, -1])", "named twice");
    shape_ok("normalize: default axis 1", T, "normalize(x)", "[7, 5]", NULL);
    shape_err("normalize: p=3", T, "normalize(x, p=3.0)", "p must be 1 or 2");
}

/* Every builtin of ops.def that .net code may call appears in at least one shape test above. */
static void test_all_builtins_covered(void) {
    static const char *tested[] = {"conv2d", "linear", "batchnorm", "layernorm", "multihead_attention", "cross_attention", "relu",
                                   "gelu", "sigmoid", "tanh", "silu", "softmax", "maxpool", "avgpool", "global_avgpool",
                                   "adaptive_avgpool", "pad", "dropout", "flatten", "reshape", "transpose", "concat", "slice",
                                   "take", "expand", "matmul", "scaled_dot_product_attention", "param", "clamp", "hardtanh",
                                   "where", "masked_fill", "index_select", "roll", "full", "zeros", "ones", "arange", "sum", "mean",
                                   "max", "min", "normalize", "buffer"};
    Buf missing = {0};
    buf_puts(&missing, "");
    for (int k = 0; k < OPK_COUNT; k++) {
        if (!op_info[k].user)
            continue;
        bool found = op_info[k].act != ACT_NONE;   /* every activation row: test_shapes_elementwise */
        for (size_t i = 0; i < sizeof tested / sizeof *tested; i++)
            found |= strcmp(tested[i], op_info[k].name) == 0;
        if (!found)
            buf_printf(&missing, " %s", op_info[k].name);
    }
    check(missing.len == 0, "shapes: every user builtin of ops.def has a shape test", "untested:%s", missing.buf);
}

/* ---------------------------------------------------------------- graph invariants and the memory plan */

static Tensor *root_of(Tensor *t) {
    while (t->view_of)
        t = t->view_of;
    return t;
}

/* A view that only re-indexes memory (a reshape, or a slice or transpose that fold_shapes made free):
   the same data as the tensor it views. Any other tensor with view_of set was written in place over it. */
static bool is_alias(const Tensor *t) {
    return t->view_of && t->producer &&
           (t->producer->kind == OPK_RESHAPE || t->producer->kind == OPK_SLICE || t->producer->kind == OPK_TRANSPOSE);
}

/* The tensor whose op wrote the data t reads: t itself unless t is an alias. */
static Tensor *data_of(Tensor *t) {
    while (is_alias(t))
        t = t->view_of;
    return t;
}

static bool elementwise(OpKind k) { return op_info[k].props & OPF_IN_PLACE; }

/* Checks plan_memory's placement against lifetimes computed here from the op list. Every value (the
   output of an op that writes data) lives from its op to the last op that reads it or any alias of it.
   Two values whose bytes overlap may not be live together, except at the one elementwise op that reads
   the first and writes the second over it (in place). Scratch memory is live during its op only. */
static void check_plan(const char *name, Graph *g) {
    plan_memory(g);
    int nt = g->tensors.len, no = g->ops.len;
    int *first = calloc((size_t)nt + 1, sizeof *first), *last = calloc((size_t)nt + 1, sizeof *last);
    bool *arena = calloc((size_t)nt + 1, sizeof *arena);
    for (int i = 0; i < nt; i++)
        first[i] = last[i] = -1;
    char *problem = NULL;
    for (int i = 0; i < no; i++) {
        Op *op = g->ops.items[i];
        Tensor *y = op->out, *r = root_of(y);
        if (r->kind == TK_ACT && !is_graph_output(g, r)) {
            arena[y->id] = true;
            if (!is_alias(y))
                first[y->id] = last[y->id] = i;
        }
        if (is_graph_output(g, y) && y->view_of)
            problem = format("model output %s is a view of %s", y->name, y->view_of->name);
        for (int j = 0; j < op->in.len; j++) {
            Tensor *d = data_of(op->in.items[j]);
            if (first[d->id] >= 0 && last[d->id] < i)
                last[d->id] = i;
        }
    }
    /* placement of every tensor in the arena: roots aligned inside it, views inside their root */
    for (int i = 0; i < nt && !problem; i++) {
        Tensor *t = g->tensors.items[i], *r = root_of(t);
        if (!arena[i])
            continue;
        if (t == r) {
            if (t->offset < 0 || t->offset % 64 || t->offset + tensor_bytes(t) > g->arena_bytes)
                problem = format("%s at %lld (+%lld) outside the %lld-byte arena or unaligned", t->name, (long long)t->offset,
                                 (long long)tensor_bytes(t), (long long)g->arena_bytes);
        } else if (t->offset < r->offset || t->offset + tensor_bytes(t) > r->offset + tensor_bytes(r)) {
            problem = format("view %s [%lld, +%lld) outside its root %s [%lld, +%lld)", t->name, (long long)t->offset,
                             (long long)tensor_bytes(t), r->name, (long long)r->offset, (long long)tensor_bytes(r));
        } else if (!is_alias(t) && (!elementwise(t->producer->kind) || t->view_of->view_of || tensor_bytes(t) != tensor_bytes(t->view_of))) {
            problem = format("%s (%s) is written over %s, which is not an elementwise op on a whole buffer", t->name,
                             op_info[t->producer->kind].name, t->view_of->name);
        }
    }
    for (int i = 0; i < nt && !problem; i++) {
        if (!arena[i] || first[i] < 0)
            continue;
        Tensor *a = g->tensors.items[i];
        for (int j = i + 1; j < nt && !problem; j++) {
            if (!arena[j] || first[j] < 0 || first[j] > last[i] || first[i] > last[j])
                continue;
            Tensor *b = g->tensors.items[j];
            if (!(a->offset < b->offset + tensor_bytes(b) && b->offset < a->offset + tensor_bytes(a)))
                continue;
            /* in place: the op that writes one is the last reader of the other, and elementwise */
            Tensor *early = first[i] <= first[j] ? a : b, *late = early == a ? b : a;
            int ei = early->id, li = late->id;
            Op *op = late->producer;
            bool reads_early = false;
            for (int k = 0; k < op->in.len; k++)
                reads_early |= data_of(op->in.items[k]) == early;
            bool in_place = last[ei] == first[li] && reads_early && elementwise(op->kind) && a->offset == b->offset;
            if (!in_place)
                problem = format("%s [%lld, +%lld) live ops %d-%d overlaps %s [%lld, +%lld) live ops %d-%d", a->name,
                                 (long long)a->offset, (long long)tensor_bytes(a), first[i], last[i], b->name, (long long)b->offset,
                                 (long long)tensor_bytes(b), first[j], last[j]);
        }
    }
    for (int i = 0; i < no && !problem; i++) {
        Op *op = g->ops.items[i];
        int64_t sb = op->impl.scratch_floats * 4;
        if (sb <= 0)
            continue;
        if (op->scratch_offset < 0 || op->scratch_offset + sb > g->arena_bytes)
            problem = format("scratch of op %d outside the arena", i);
        for (int j = 0; j < nt && !problem; j++) {
            if (!arena[j] || first[j] < 0 || first[j] > i || last[j] < i)
                continue;
            Tensor *b = g->tensors.items[j];
            if (op->scratch_offset < b->offset + tensor_bytes(b) && b->offset < op->scratch_offset + sb)
                problem = format("scratch of op %d (%s) overlaps %s, live ops %d-%d", i, op_info[op->kind].name, b->name, first[j],
                                 last[j]);
        }
    }
    if (!problem) {
        cap_begin();
        bool ok = verify_memory_plan(g);
        char *e = cap_end();
        if (!ok)
            problem = format("verify_memory_plan refuses the plan: %s", oneline(e));
    }
    check(!problem, name, "%s", problem ? problem : "");
    free(first);
    free(last);
    free(arena);
}

static void test_graphs(void) {
    /* a small model with views, a scratch op and several live tensors */
    Graph *g = elab(model_src("", "x: f32[2, 4, 8]",
                              "a = relu(x)\nb = reshape(a, [2, 32])\nc = sigmoid(x)\nd = reshape(b, [8, 8])\n"
                              "e = scaled_dot_product_attention(x, x, x)\nf = tanh(reshape(d, [2, 4, 8])) + c + e\nreturn f, flatten(c)"),
                    NULL, NULL);
    if (g) {
        check(verify_graph(g), "graph: verify_graph on a small model", "verify failed");
        check_plan("plan: small model with views and scratch", g);
        int views = 0;
        for (int i = 0; i < g->tensors.len; i++) {
            Tensor *t = g->tensors.items[i];
            views += t->view_of && t->producer->kind == OPK_RESHAPE;
        }
        Tensor *flat = g->outputs.items[1];
        check(views == 3 && !flat->view_of, "plan: reshapes are views, except a model output", "%d reshape views, output view %d", views,
              flat->view_of != NULL);
        check(g->arena_bytes > 0 && g->arena_bytes % 64 == 0, "plan: arena size is positive and aligned", "%lld",
              (long long)g->arena_bytes);
    } else {
        check(false, "graph: small model elaborates", "%s", oneline(last_err));
    }

    g = elab(model_src("", "x: f32[4, 16]", "s = sigmoid(x)\nr = relu(s)\nreturn r * 2"), NULL, NULL);
    if (g) {
        Tensor *s = VEC_AT(g->ops, 0, Op *)->out, *r = VEC_AT(g->ops, 1, Op *)->out;
        check_plan("plan: elementwise chain", g);
        check(r->view_of == s && r->offset == s->offset, "plan: relu written in place over a sigmoid that dies there", "view_of %s",
              r->view_of ? r->view_of->name : "none");
    }
    g = elab(model_src("", "x: f32[4, 16]", "s = sigmoid(x)\nr = relu(s)\nreturn r + s"), NULL, NULL);
    if (g) {
        Tensor *s = VEC_AT(g->ops, 0, Op *)->out, *r = VEC_AT(g->ops, 1, Op *)->out;
        check_plan("plan: elementwise op whose input lives on", g);
        check(r->view_of == NULL && (r->offset + tensor_bytes(r) <= s->offset || s->offset + tensor_bytes(s) <= r->offset),
              "plan: no in-place write over an input that is read later", "view_of %s", r->view_of ? r->view_of->name : "none");
    }
    g = elab(model_src("", "x: f32[4, 16]", "s = sigmoid(x)\nr = relu(reshape(s, [16, 4]))\nreturn r + 1"), NULL, NULL);
    if (g)
        check_plan("plan: elementwise op on a reshape view", g);
    g = elab(model_src("", "x: f32[2, 8, 16]",
                       "y = relu(x)\nc = take(y, 1, 0)\nt = transpose(reshape(c, [2, 1, 16]), [1, 0, 2])\nz = sigmoid(y)\nreturn t * 2, z"),
             NULL, NULL);
    if (g) {
        run_passes(g, 1);
        check_plan("plan: fold_shapes views (slice at an offset, transpose of a size-1 axis)", g);
    }

    /* verify_graph refuses broken graphs */
    Loc nowhere = {0};
    Graph *bad = new_graph("bad");
    int64_t d[1] = {4};
    Tensor *in = new_tensor(bad, TK_INPUT, "x", 1, d, nowhere);
    Op *late = new_op(bad, OPK_RELU, nowhere, NULL);
    Op *early = new_op(bad, OPK_RELU, nowhere, NULL);
    op_add_input(early, in);
    op_set_output(bad, early, 1, d);
    Op *first = new_op(bad, OPK_RELU, nowhere, NULL);
    (void)first;
    op_add_input(late, early->out);   /* op 0 reads op 1's output */
    op_set_output(bad, late, 1, d);
    op_add_input(first, late->out);
    op_set_output(bad, first, 1, d);
    vec_push(&bad->outputs, first->out);
    cap_begin();
    bool ok = verify_graph(bad);
    char *err = cap_end();
    check(!ok && strstr(err, "before it is defined"), "graph: verify_graph finds a read before the write", "%s", oneline(err));

    Graph *bad2 = new_graph("bad2");
    Tensor *in2 = new_tensor(bad2, TK_INPUT, "x", 1, d, nowhere);
    Op *flat = new_op(bad2, OPK_FLATTEN, nowhere, NULL);
    op_add_input(flat, in2);
    op_set_output(bad2, flat, 1, d);
    vec_push(&bad2->outputs, flat->out);
    cap_begin();
    ok = verify_graph(bad2);
    err = cap_end();
    check(!ok, "graph: verify_graph refuses an op kind that only lowers (flatten)", "%s", oneline(err));

    Graph *good = new_graph("good");
    Tensor *in3 = new_tensor(good, TK_INPUT, "x", 1, d, nowhere);
    Op *r = new_op(good, OPK_RELU, nowhere, NULL);
    op_add_input(r, in3);
    op_set_output(good, r, 1, d);
    vec_push(&good->outputs, r->out);
    cap_begin();
    ok = verify_graph(good);
    err = cap_end();
    check(ok, "graph: verify_graph accepts a hand-built graph", "%s", oneline(err));
    check(r->out->producer == r && r->out->kind == TK_ACT && in3->uses == 1 && tensor_numel(r->out) == 4 && tensor_bytes(r->out) == 16,
          "graph: new_op/op_set_output bookkeeping", "uses %d", in3->uses);
    graph_recount_uses(good);
    check(in3->uses == 1 && r->out->uses == 1, "graph: graph_recount_uses counts readers and outputs", "in %d out %d", in3->uses,
          r->out->uses);

    /* every model of models/ */
    glob_t gl;
    int rc = glob("models/*.net", 0, NULL, &gl);
    check(rc == 0 && gl.gl_pathc >= 1, "models: found models/*.net", "glob rc %d (run from the repository root)", rc);
    if (rc != 0)
        return;
    for (size_t i = 0; i < gl.gl_pathc; i++) {
        const char *path = gl.gl_pathv[i];
        Vec decls = {0};
        cap_begin();
        bool loaded = load_program(path, &decls);
        ElabOptions opts = {0};
        Graph *mg = loaded ? elaborate(&decls, &opts) : NULL;
        char *e = cap_end();
        check(mg != NULL, format("models: %s elaborates", path), "%s", first_error(e));
        if (!mg)
            continue;
        cap_begin();
        bool v = verify_graph(mg);
        e = cap_end();
        check(v, format("models: %s passes verify_graph", path), "%s", oneline(e));
        int64_t total = 0;
        for (int j = 0; j < mg->tensors.len; j++) {
            Tensor *t = mg->tensors.items[j];
            if (t->kind == TK_ACT)
                total += tensor_bytes(t);
        }
        check_plan(format("plan: %s (-O0): no two live values share bytes", path), mg);
        check(mg->arena_bytes > 0 && mg->arena_bytes < total, format("plan: %s reuses memory", path), "arena %lld of %lld bytes",
              (long long)mg->arena_bytes, (long long)total);
        Vec decls2 = {0};
        cap_begin();
        Graph *og = load_program(path, &decls2) ? elaborate(&decls2, &opts) : NULL;
        if (og)
            run_passes(og, 2);
        bool ov = og && verify_graph(og);
        e = cap_end();
        check(ov, format("models: %s passes verify_graph after -O2 passes", path), "%s", oneline(e));
        if (ov)
            check_plan(format("plan: %s (-O2): no two live values share bytes", path), og);
        const char *base = strrchr(path, '/') + 1;
        if (strcmp(base, "resnet50.net") == 0) {
            Tensor *w = find_weight(mg, "layer1.0.downsample.0.weight");
            check(mg->weights.len == 267 && w && strcmp(shape_text(w->rank, w->dims), "[256, 64, 1, 1]") == 0 &&
                      strcmp(out_shape(mg), "[1, 1000]") == 0,
                  "models: resnet50 has torchvision's 267 weights", "%d weights, output %s", mg->weights.len, out_shape(mg));
        }
        if (strcmp(base, "vit_b_16.net") == 0) {
            Tensor *pos = find_weight(mg, "encoder.pos_embedding");
            Tensor *ipw = find_weight(mg, "encoder.layers.encoder_layer_11.self_attention.in_proj_weight");
            check(pos && ipw && strcmp(shape_text(pos->rank, pos->dims), "[1, 197, 768]") == 0 &&
                      strcmp(shape_text(ipw->rank, ipw->dims), "[2304, 768]") == 0 && find_weight(mg, "class_token") &&
                      find_weight(mg, "heads.head.weight") && find_weight(mg, "encoder.layers.encoder_layer_0.mlp.3.bias"),
                  "models: vit_b_16 has torchvision's keys", "%d weights", mg->weights.len);
        }
    }
    globfree(&gl);

    /* the example of the language spec, section 1 */
    const char *spec =
        "block bottleneck(x, width: int, stride: int = 1) {\n"
        "    out = width * 4\n"
        "    y = relu(batchnorm(conv2d(x, width, kernel=1, bias=false) as conv1) as bn1)\n"
        "    y = relu(batchnorm(conv2d(y, width, kernel=3, stride=stride, pad=1, bias=false) as conv2) as bn2)\n"
        "    y = batchnorm(conv2d(y, out, kernel=1, bias=false) as conv3) as bn3\n"
        "    if stride != 1 || x.shape[1] != out {\n"
        "        x = conv2d(x, out, kernel=1, stride=stride, bias=false) as downsample.0\n"
        "        x = batchnorm(x) as downsample.1\n"
        "    }\n"
        "    return relu(x + y)\n"
        "}\n"
        "let batch = 1\nlet size = 224\n"
        "model resnet50(image: f32[batch, 3, size, size]) {\n"
        "    x = conv2d(image, 64, kernel=7, stride=2, pad=3, bias=false) as conv1\n"
        "    x = relu(batchnorm(x) as bn1)\n"
        "    x = maxpool(x, kernel=3, stride=2, pad=1)\n"
        "    widths = [64, 128, 256, 512]\n"
        "    depths = [3, 4, 6, 3]\n"
        "    for s in 0..4 {\n"
        "        for i in 0..depths[s] {\n"
        "            x = bottleneck(x, widths[s], stride = (i == 0 && s > 0) ? 2 : 1) as layer{s+1}.{i}\n"
        "        }\n"
        "    }\n"
        "    x = flatten(global_avgpool(x))\n"
        "    return linear(x, 1000) as fc\n"
        "}\n";
    g = elab(spec, NULL, "batch=2|size=64");
    check(g && g->weights.len == 267 && strcmp(out_shape(g), "[2, 1000]") == 0 && find_weight(g, "layer4.2.bn3.running_var") &&
              find_weight(g, "layer2.0.downsample.1.bias") && !find_weight(g, "layer2.1.downsample.0.weight"),
          "spec example: elaborates with -D batch=2 -D size=64", "%s",
          g ? format("%d weights, %s", g->weights.len, out_shape(g)) : oneline(last_err));
    if (g) {
        cap_begin();
        bool v = verify_graph(g);
        free(cap_end());
        check(v, "spec example: verify_graph", "verify failed");
        check_plan("spec example: memory plan", g);
    }
}

/* The compiler never crashes (spec 8): every prefix of a program, and the program with each byte
   replaced, is parsed and (when it parses) elaborated, in a child process so that a crash is a FAIL. */
static void test_robustness(void) {
    const char *text =
        "import \"nothere.net\"\nlet n = 2 # comment\n"
        "block b(x, k: int = 3, s: float = 0.5) {\n"
        "    y = conv2d(x, 4, kernel=k, pad=[1, 1], bias=false) as conv{n}.0\n"
        "    if y.shape[-1] > 2 && !false { y = maxpool(y, 2) } else { y = relu(y) }\n"
        "    for i in 0..n { y = batchnorm(y) as bn.{i} }\n"
        "    return y * s, flatten(y)\n"
        "}\n"
        "model m(x: f32[1, 3, 8, 8]) {\n"
        "    a, f = b(x) as blk\n"
        "    t = transpose(reshape(a, [1, 4, -1]), [0, 2, 1])\n"
        "    q = multihead_attention(layernorm(t) as ln, 2) as attn\n"
        "    return linear(take(q, 1, -1), 10) as fc, f + (\"s\" == \"s\" ? 1 : -2 ** 2)\n"
        "}\n";
    Graph *base = elab(text, NULL, NULL);
    check(base && base->outputs.len == 2, "robustness: the base program elaborates", "%s", oneline(last_err));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 2);
        size_t len = strlen(text);
        static const char subst[] = " (\n{}[]#\"=.,0a";
        for (size_t cut = 0; cut <= len; cut++) {
            for (int k = -1; k < (int)sizeof subst - 1; k++) {
                char *t = xstrdup(text);
                if (k < 0)
                    t[cut] = 0;
                else if (cut < len)
                    t[cut] = subst[k];
                else
                    break;
                Vec decls = {0};
                if (parse_file(src_from_string("r.net", t), &decls) == 0) {
                    ElabOptions opts = {0};
                    Graph *g = elaborate(&decls, &opts);
                    if (g && verify_graph(g)) {
                        run_passes(g, 2);
                        plan_memory(g);
                    }
                }
                free(t);
            }
        }
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "robustness: prefixes and one-byte edits of a program never crash",
          "the child %s %d", WIFSIGNALED(status) ? "died of signal" : "exited with", WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

/* Run from the repository root; when started elsewhere, go to the root above build/tests/. */
static void go_to_root(const char *argv0) {
    struct stat st;
    if (stat("models", &st) == 0 && stat("compiler/nnc.h", &st) == 0)
        return;
    char *copy = xstrdup(argv0);
    char *dir = dirname(copy);
    if (chdir(dir) == 0 && chdir("../..") == 0 && stat("compiler/nnc.h", &st) == 0)
        return;
    fprintf(stderr, "test_compiler: run from the repository root\n");
}

#ifdef NNC_SANITIZE
#include <sanitizer/lsan_interface.h>
#endif

/* select_kernels: each op's implementation for a target, as --emit ir shows it. */
static const Op *selected(const char *inputs, const char *expr, const char *target, int level) {
    Graph *g = elab(model_src("", inputs, format("return %s", expr)), NULL, NULL);
    if (!g)
        return NULL;
    g->target = target_named(target);
    run_passes(g, level);
    return out_op(g);
}

/* A block may take the name of a builtin added after the language's first definition (it hides it, with
   a warning), not that of one of the first ones. */
static void test_block_hides_new_builtin(void) {
    Graph *g = elab("block sum(x) {\n    return relu(x)\n}\nmodel m(x: f32[2, 3]) {\n    return sum(x)\n}\n", NULL, NULL);
    check(g && g->ops.len == 1 && VEC_AT(g->ops, 0, Op *)->kind == OPK_RELU, "scope: block 'sum' hides the builtin sum", "%s",
          g ? "another graph" : "refused");
    g = elab("block softmax(x) {\n    return relu(x)\n}\nmodel m(x: f32[2, 3]) {\n    return softmax(x)\n}\n", NULL, NULL);
    check(!g, "scope: block 'softmax' (a builtin of the first definition) is refused", "accepted");
}

/* The kinds of g's ops in order, as "to_blocked pad_plane conv2d to_plain". */
static const char *op_kinds(const Graph *g) {
    Buf b = {0};
    for (int i = 0; i < g->ops.len; i++)
        buf_printf(&b, "%s%s", i ? " " : "", op_info[VEC_AT(g->ops, i, Op *)->kind].name);
    return b.len ? buf_take(&b) : "";
}

static Graph *passed_graph(const char *inputs, const char *expr, int level) {
    Graph *g = elab(model_src("", inputs, format("return %s", expr)), NULL, NULL);
    if (g) {
        g->target = target_named("generic");
        run_passes(g, level);
    }
    return g;
}

/* choose_layouts: which tensors are blocked, and the conversions and padding it adds. */
static void test_choose_layouts(void) {
    struct { const char *inputs, *expr; int level; const char *ops; } cases[] = {
        {"x: f32[1, 16, 32, 32]", "conv2d(x, 16, kernel=3, pad=1) as c", 2, "to_blocked pad_plane conv2d to_plain"},
        {"x: f32[2, 3, 32, 32]", "conv2d(x, 32, kernel=7, stride=2, pad=3) as c", 2, "pad_plane conv2d to_plain"},   /* RGB read plain */
        {"x: f32[1, 3, 8, 8]", "conv2d(x, 16, kernel=1) as c", 2, "conv2d to_plain"},
        {"x: f32[1, 16, 32, 32]", "conv2d(x, 16, kernel=3, pad=1) as c", 0, "conv2d"},
        {"x: f32[1, 16, 32, 32]", "conv2d(x, 12, kernel=3, pad=1) as c", 2, "conv2d"},                 /* 12 channels: plain */
        {"x: f32[1, 16, 32, 32]", "conv2d(x, 16, kernel=3, groups=4) as c", 2, "to_blocked conv2d to_plain"},   /* 4 a group */
        {"x: f32[1, 64, 8, 8]", "conv2d(x, 64, kernel=1, groups=2) as c", 2, "to_blocked conv2d to_plain"},     /* 32 a group */
        {"x: f32[1, 16, 32, 32]", "conv2d(x, 16, kernel=3, groups=8) as c", 2, "conv2d"},                       /* 2 a group: plain */
        {"x: f32[1, 16, 32, 32]", "conv2d(x, 16, kernel=3, groups=16) as c", 2, "conv2d"},                      /* depthwise: plain */
        {"x: f32[1, 32, 8, 8]", "conv2d(x, 64, kernel=3, groups=8) as c", 2, "conv2d"},                         /* 4 in, 8 out: plain */
        {"x: f32[1, 16, 8, 8]", "relu(conv2d(x, 32, kernel=1) as c) + conv2d(x, 32, kernel=1) as d", 2, "to_blocked conv2d conv2d to_plain"},
        {"x: f32[1, 3, 8, 8]", "maxpool(conv2d(x, 16, kernel=1) as c, 2)", 2, "conv2d maxpool to_plain"},
        {"x: f32[1, 3, 8, 8]", "global_avgpool(conv2d(x, 16, kernel=1) as c)", 2, "conv2d adaptive_avgpool"},
        {"x: f32[1, 3, 8, 8]", "avgpool(conv2d(x, 16, kernel=1) as c, 2)", 2, "conv2d avgpool to_plain"},
        {"x: f32[1, 3, 8, 8]", "avgpool(conv2d(x, 16, kernel=1) as c, 2, count_include_pad=false, pad=1)", 2, "conv2d to_plain avgpool"},
        {"x: f32[1, 3, 8, 8]", "concat([conv2d(x, 16, kernel=1) as c, conv2d(x, 32, kernel=1) as d], axis=1)", 2, "conv2d conv2d concat to_plain"},
        {"x: f32[1, 3, 8, 8]", "concat([conv2d(x, 16, kernel=1) as c, x], axis=1)", 2, "conv2d to_plain concat"},   /* 3 channels: plain */
        {"x: f32[1, 3, 8, 8]", "batchnorm(relu(conv2d(x, 16, kernel=1) as c)) as bn", 2, "conv2d batchnorm to_plain"},
        {"x: f32[1, 3, 8, 8]", "flatten(conv2d(x, 16, kernel=1) as c)", 2, "conv2d to_plain reshape"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        Graph *g = passed_graph(cases[i].inputs, cases[i].expr, cases[i].level);
        const char *got = g ? op_kinds(g) : "no graph";
        check(strcmp(got, cases[i].ops) == 0, format("layouts: %s at -O%d is %s", cases[i].expr, cases[i].level, cases[i].ops), "%s", got);
        if (!g)
            continue;
        for (int j = 0; j < g->ops.len; j++) {
            const Op *op = g->ops.items[j];
            if (op->kind == OPK_CONV2D && op->out->layout == LAYOUT_NCHW16C)
                check(op->impl.family == IMPL_NCHWC && op->impl.split == SPLIT_RUNS && op->impl.pack_nchwc && !op->a.pad[0] && !op->a.pad[1],
                      format("layouts: %s: a blocked conv2d runs the direct tiles by runs, unpadded", cases[i].expr), "%s", impl_text(op));
        }
        for (int j = 0; j < g->outputs.len; j++)
            check(VEC_AT(g->outputs, j, Tensor *)->layout == LAYOUT_PLAIN, format("layouts: %s: the output is plain", cases[i].expr), "blocked");
    }
    Graph *g = passed_graph("x: f32[1, 16, 32, 32]", "conv2d(x, 16, kernel=3, pad=1) as c", 2);
    if (g && g->ops.len == 4) {
        const Tensor *p = VEC_AT(g->ops, 1, Op *)->out;
        check(p->dims[2] == 34 && p->dims[3] == 34 && p->layout == LAYOUT_NCHW16C, "layouts: the padded input is 34x34, blocked", "%s",
              shape_text(p->rank, p->dims));
    }
}

static void test_select_kernels(void) {
    check(target_named("native") != NULL, "targets: native is one of the rows", "NULL");
    for (const Target *t = targets; t->name; t++)
        check(target_named(t->name) == t, format("targets: --target %s", t->name), "not found");
    check(target_named("pentium") == NULL, "targets: an unknown name is NULL", "found");
    struct { const char *target, *isa; } want[] = {{"generic", "portable"}, {"x86-64-v3", "avx2_fma"}, {"x86-64-v4", "avx512f"}};
    plain_layouts = true;   /* the blocked products (choose_layouts would give these convolutions the blocked tiles) */
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const Op *op = selected("x: f32[1, 16, 32, 32]", "conv2d(x, 16, kernel=3, pad=1) as c", want[i].target, 2);
        check(op && op->impl.family == IMPL_GEMM && op->impl.uk && strcmp(op->impl.uk->isa, want[i].isa) == 0,
              format("select: conv2d on %s runs the %s micro-kernel", want[i].target, want[i].isa), "%s", op ? impl_text(op) : "no graph");
        if (op)
            check(op->impl.split == SPLIT_PIXELS && op->impl.pack_width == op->impl.uk->mr && op->impl.thread_scratch > 0,
                  format("select: a 32x32 plane by pixels, its weight packed (%s)", want[i].target), "%s", impl_text(op));
    }
    const Op *op = selected("x: f32[1, 16, 8, 8]", "conv2d(x, 12, kernel=3, pad=1) as c", "generic", 0);
    check(op && op->impl.family == IMPL_GEMM && op->impl.split == SPLIT_CHANNELS && op->impl.pack_width == 0,
          "select: a small plane by channels; 12 channels do not fill strips of 8: unpacked (-O0 too)", "%s", op ? impl_text(op) : "-");
    plain_layouts = false;
    test_choose_layouts();
    op = selected("x: f32[1, 64, 32, 32]", "conv2d(x, 64, kernel=3, pad=1, groups=16) as c", "x86-64-v4", 2);
    op = op && op->kind == OPK_TO_PLAIN ? VEC_AT(op->in, 0, const Tensor *)->producer : NULL;   /* (the output's conversion) */
    check(op && op->kind == OPK_CONV2D && op->impl.family == IMPL_NCHWC && op->impl.split == SPLIT_RUNS && !op->impl.winograd,
          "select: conv2d of 4 channels a group, blocked: the direct tiles, no Winograd (on a 32x32 plane)", "%s", op ? impl_text(op) : "-");
    plain_layouts = true;   /* the kernels of grouped convolutions on the plain layout */
    op = selected("x: f32[1, 16, 8, 8]", "conv2d(x, 16, kernel=3, groups=4) as c", "x86-64-v4", 2);
    check(op && op->impl.family == IMPL_DWCONV && op->impl.split == SPLIT_CHANNELS && op->impl.thread_scratch == NNK_DWCONV_SCRATCH(4, 6, 6, 3, 3, 1, 1, 1, 1),
          "select: conv2d of 4 channels a group on vectorised rows, by channels", "%s", op ? impl_text(op) : "-");
    op = selected("x: f32[1, 64, 7, 7]", "conv2d(x, 64, kernel=3, pad=1, groups=2) as c", "x86-64-v4", 2);
    check(op && op->impl.family == IMPL_GEMM && op->impl.uk && op->impl.split == SPLIT_CHANNELS,
          "select: conv2d of 32 channels a group is a product a group, by channels", "%s", op ? impl_text(op) : "-");
    plain_layouts = false;
    op = selected("x: f32[1, 16, 8, 8]", "conv2d(x, 32, kernel=7, pad=3, groups=16) as c", "generic", 0);
    check(op && op->impl.family == IMPL_DWCONV && op->impl.split == SPLIT_CHANNELS && op->impl.thread_scratch == NNK_DWCONV_SCRATCH(1, 8, 8, 7, 7, 1, 1, 1, 1),
          "select: depthwise conv2d (multiplier 2) on vectorised rows, by channels (-O0 too)", "%s", op ? impl_text(op) : "-");
    op = selected("x: f32[1, 4, 40, 40]", "conv2d(x, 4, kernel=33, groups=4) as c", "generic", 2);
    check(op && op->impl.family == IMPL_DIRECT && op->impl.split == SPLIT_GROUPS, "select: depthwise with more taps than the rows' table: direct",
          "%s", op ? impl_text(op) : "-");
    op = selected("x: f32[1, 64]", "linear(x, 96) as fc", "x86-64-v4", 2);
    check(op && op->impl.family == IMPL_DOT, "select: linear of one row is a dot product per feature", "%s", op ? impl_text(op) : "-");
    op = selected("x: f32[20, 64]", "linear(x, 96) as fc", "x86-64-v4", 2);
    check(op && op->impl.family == IMPL_GEMM && op->impl.pack_width == 48, "select: linear of 20 rows is a packed product", "%s",
          op ? impl_text(op) : "-");
    op = selected("x: f32[2, 10, 96]", "multihead_attention(x, 4) as a", "generic", 2);
    check(op && op->impl.family == IMPL_BLOCKED && op->impl.scratch_floats == NNK_MHA_SCRATCH(2, 10, 10, 96) && op->impl.pack_width == 48,
          "select: attention blocked, its projections packed, Q|K|V scratch", "%s", op ? impl_text(op) : "-");
}

int main(int argc, char **argv) {
#ifdef NNC_SANITIZE
    __lsan_disable();   /* the compiler frees nothing on purpose */
#endif
    (void)argc;
    go_to_root(argv[0]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_statements();
    test_literals();
    test_paths();
    test_precedence();
    test_syntax_errors();
    test_locations();
    test_arithmetic();
    test_lists_and_tensors();
    test_statements_elab();
    test_scope();
    test_defines_models();
    test_imports();
    test_weight_keys();
    test_shapes_layers();
    test_shapes_elementwise();
    test_shapes_pool();
    test_shapes_tensors();
    test_shapes_shape_ops();
    test_shapes_matmul();
    test_all_builtins_covered();
    test_select_kernels();
    test_block_hides_new_builtin();
    test_graphs();
    test_robustness();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
