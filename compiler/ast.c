/*
 * ast.c — constructors for the syntax tree (the parser's actions call only these), and printing of
 * expressions back to source text for messages.
 */
#include "nnc.h"

#include <string.h>

Node *new_node(NodeKind kind, Loc loc) {
    Node *n = xcalloc(1, sizeof *n);
    n->kind = kind;
    n->loc = loc;
    return n;
}

Node *new_binary(Operator op, Node *lhs, Node *rhs, Loc loc) {
    Node *n = new_node(ND_BINARY, loc);
    n->op = op;
    n->lhs = lhs;
    n->rhs = rhs;
    return n;
}

Node *new_unary(Operator op, Node *operand, Loc loc) {
    Node *n = new_node(ND_UNARY, loc);
    n->op = op;
    n->lhs = operand;
    return n;
}

Node *paren_node(Node *inner, Loc loc) {
    inner->paren = loc;
    return inner;
}

Arg *new_arg(const char *name, Node *value, Loc loc) {
    Arg *a = xcalloc(1, sizeof *a);
    a->name = name;
    a->value = value;
    a->loc = name ? loc : value->loc;
    return a;
}

Stmt *new_stmt(StmtKind kind, Loc loc) {
    Stmt *s = xcalloc(1, sizeof *s);
    s->kind = kind;
    s->loc = loc;
    return s;
}

Param *new_param(const char *name, Loc loc) {
    Param *p = xcalloc(1, sizeof *p);
    p->name = name;
    p->loc = loc;
    return p;
}

Decl *new_decl(DeclKind kind, const char *name, Loc loc) {
    Decl *d = xcalloc(1, sizeof *d);
    d->kind = kind;
    d->name = name;
    d->loc = loc;
    return d;
}

Path *new_path(Loc loc) {
    Path *p = xcalloc(1, sizeof *p);
    p->loc = loc;
    return p;
}

PathSeg *new_path_seg(Loc loc) {
    PathSeg *s = xcalloc(1, sizeof *s);
    s->loc = loc;
    return s;
}

PathPart *new_path_part(const char *text, Node *expr) {
    PathPart *p = xcalloc(1, sizeof *p);
    p->text = text;
    p->expr = expr;
    return p;
}

/* `as self` is the one-segment path "self"; the lexer sees paths as plain segments. */
Path *path_finish(Path *p) {
    p->is_self = false;
    if (p->segs.len == 1) {
        PathSeg *seg = p->segs.items[0];
        if (seg->parts.len == 1) {
            PathPart *part = seg->parts.items[0];
            p->is_self = part->text && strcmp(part->text, "self") == 0;
        }
    }
    return p;
}

const char *operator_text(Operator op) {
    static const char *text[] = {
        [OP_ADD] = "+", [OP_SUB] = "-", [OP_MUL] = "*", [OP_DIV] = "/", [OP_IDIV] = "//",
        [OP_MOD] = "%", [OP_POW] = "**", [OP_MATMUL] = "@", [OP_EQ] = "==", [OP_NE] = "!=",
        [OP_LT] = "<", [OP_LE] = "<=", [OP_GT] = ">", [OP_GE] = ">=", [OP_AND] = "&&",
        [OP_OR] = "||", [OP_NEG] = "-", [OP_NOT] = "!",
    };
    return text[op];
}

static void print_path(Buf *b, const Path *p) {
    for (int i = 0; i < p->segs.len; i++) {
        PathSeg *seg = p->segs.items[i];
        if (i > 0)
            buf_puts(b, ".");
        for (int j = 0; j < seg->parts.len; j++) {
            PathPart *part = seg->parts.items[j];
            if (part->text) {
                buf_puts(b, part->text);
            } else {
                buf_puts(b, "{");
                print_node(b, part->expr);
                buf_puts(b, "}");
            }
        }
    }
}

void print_node(Buf *b, const Node *n) {
    switch (n->kind) {
    case ND_INT: buf_printf(b, "%lld", n->ival); break;
    case ND_FLOAT: buf_printf(b, "%g", n->fval); break;
    case ND_STR: buf_printf(b, "\"%s\"", n->str); break;
    case ND_BOOL: buf_puts(b, n->bval ? "true" : "false"); break;
    case ND_NAME: buf_puts(b, n->str); break;
    case ND_LIST:
        buf_puts(b, "[");
        for (int i = 0; i < n->args.len; i++) {
            if (i)
                buf_puts(b, ", ");
            print_node(b, n->args.items[i]);
        }
        buf_puts(b, "]");
        break;
    case ND_BINARY:
        buf_puts(b, "(");
        print_node(b, n->lhs);
        buf_printf(b, " %s ", operator_text(n->op));
        print_node(b, n->rhs);
        buf_puts(b, ")");
        break;
    case ND_UNARY:
        buf_puts(b, operator_text(n->op));
        print_node(b, n->lhs);
        break;
    case ND_COND:
        print_node(b, n->cond);
        buf_puts(b, " ? ");
        print_node(b, n->lhs);
        buf_puts(b, " : ");
        print_node(b, n->rhs);
        break;
    case ND_CALL:
        buf_printf(b, "%s(", n->str);
        for (int i = 0; i < n->args.len; i++) {
            Arg *a = n->args.items[i];
            if (i)
                buf_puts(b, ", ");
            if (a->name)
                buf_printf(b, "%s=", a->name);
            print_node(b, a->value);
        }
        buf_puts(b, ")");
        break;
    case ND_INDEX:
        print_node(b, n->lhs);
        buf_puts(b, "[");
        print_node(b, n->rhs);
        buf_puts(b, "]");
        break;
    case ND_ATTR:
        print_node(b, n->lhs);
        buf_printf(b, ".%s", n->str);
        break;
    case ND_AS:
        print_node(b, n->lhs);
        buf_puts(b, " as ");
        print_path(b, n->path);
        break;
    case ND_VALUE: buf_puts(b, "(a value)"); break;
    }
}
