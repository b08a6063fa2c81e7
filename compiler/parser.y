/*
 * parser.y — tokens to AST (bison; a pure parser with locations, driving the reentrant lexer).
 *
 * The grammar is the language of docs/language.md. Actions only call the AST constructors of ast.c:
 * every check of meaning (types, names, shapes) waits for elaboration. Error recovery resynchronises
 * at the end of a statement or a declaration, so one run reports every independent syntax error.
 */
%define api.pure full
%define api.location.type {Loc}
%define parse.error custom
%define parse.lac full
%locations
%expect 0
%parse-param {ParseCtx *ctx}
%lex-param {void *SCANNER}

%code requires {
#include "nnc.h"
typedef struct {
    const SrcFile *src;
    Vec *decls;
    void *scanner;
    int line, col;
    int depth;              /* open ( and [: newlines inside them do not end a statement */
    int saved_depth;
    bool in_interp;         /* inside {expr} of a weight path */
    bool eof_newline_sent;
    int errors;
} ParseCtx;

/* A rule's location is its first symbol's start through its last symbol's end, when on one line. */
#define YYLLOC_DEFAULT(Cur, Rhs, N)                                   \
    do {                                                              \
        if (N) {                                                      \
            (Cur) = YYRHSLOC(Rhs, 1);                                 \
            (Cur) = loc_span((Cur), YYRHSLOC(Rhs, N));                \
        } else {                                                      \
            (Cur) = YYRHSLOC(Rhs, 0);                                 \
            (Cur).col = (Cur).end_col + 1;                            \
        }                                                             \
    } while (0)
}

%code provides {
int yylex(YYSTYPE *lval, YYLTYPE *lloc, void *scanner);
}

%code {
#include <string.h>
#define SCANNER ctx->scanner
static void yyerror(YYLTYPE *loc, ParseCtx *ctx, const char *msg);
static Node *name_node(const char *name, Loc loc);
}

%union {
    long long ival;
    double fval;
    char *str;
    Node *node;
    Stmt *stmt;
    Decl *decl;
    Param *param;
    Path *path;
    PathSeg *seg;
    PathPart *part;
    Arg *arg;
    Vec vec;
}

%token <str> NAME "name" STRING "string" PSEG "path segment"
%token <ival> INT "integer"
%token <fval> FLOAT "float"
%token BLOCK "'block'" MODEL "'model'" LET "'let'" IMPORT "'import'" FOR "'for'" IN "'in'" IF "'if'"
%token ELSE "'else'" RETURN "'return'" AS "'as'" SELF "'self'" TRUE "'true'" FALSE "'false'"
%token NEWLINE "end of line"
%token EQ "'=='" NE "'!='" LE "'<='" GE "'>='" ANDAND "'&&'" OROR "'||'" IDIV "'//'" POW "'**'"
%token DOTDOT "'..'" PDOT "'.' in a path" PLBRACE "'{' in a path" PRBRACE "'}' in a path"
%token LEXERROR "invalid character"   /* after the lexer reported one: no rule accepts it */

%type <node> expr postfix primary
%type <stmt> stmt if_stmt
%type <decl> decl
%type <param> param
%type <path> path
%type <seg> path_seg
%type <part> path_part
%type <arg> arg
%type <vec> stmts body names params params_opt exprs exprs_opt args args_opt

%right '?' ':'
%left OROR
%left ANDAND
%nonassoc EQ NE '<' LE '>' GE
%left '+' '-'
%left '*' '/' IDIV '%' '@'
%precedence UNARY
%right POW
%precedence AS

%%

program
    : %empty
    | program NEWLINE
    | program decl            { vec_push(ctx->decls, $2); }
    | program error NEWLINE   { yyerrok; }
    | program error '}'       { yyerrok; }
    ;

decl
    : IMPORT STRING NEWLINE   { $$ = new_decl(DECL_IMPORT, $2, @2); }
    | LET NAME '=' expr NEWLINE {
          $$ = new_decl(DECL_LET, $2, @2);
          $$->value = $4;
      }
    | BLOCK NAME '(' params_opt ')' body {
          $$ = new_decl(DECL_BLOCK, $2, @2);
          $$->params = $4;
          $$->body = $6;
      }
    | MODEL NAME '(' params_opt ')' body {
          $$ = new_decl(DECL_MODEL, $2, @2);
          $$->params = $4;
          $$->body = $6;
      }
    | BLOCK NAME '(' error ')' body { $$ = new_decl(DECL_BLOCK, $2, @2); }
    | MODEL NAME '(' error ')' body { $$ = new_decl(DECL_MODEL, $2, @2); }
    ;

params_opt
    : %empty                  { $$ = (Vec){0}; }
    | params
    | params ','
    ;

params
    : param                   { $$ = (Vec){0}; vec_push(&$$, $1); }
    | params ',' param        { $$ = $1; vec_push(&$$, $3); }
    ;

param
    : NAME                    { $$ = new_param($1, @1); }
    | NAME '=' expr           { $$ = new_param($1, @1); $$->def = $3; }
    | NAME ':' NAME           { $$ = new_param($1, @1); $$->type = $3; $$->type_loc = @3; }
    | NAME ':' NAME '=' expr  { $$ = new_param($1, @1); $$->type = $3; $$->type_loc = @3; $$->def = $5; }
    | NAME ':' NAME '[' exprs_opt ']' {
          $$ = new_param($1, @1);
          $$->type = $3;
          $$->type_loc = @3;
          $$->has_dims = true;
          $$->dims = $5;
      }
    | NAME ':' NAME '[' exprs_opt ']' '=' expr {   /* an error for a model input, reported when elaborating */
          $$ = new_param($1, @1);
          $$->type = $3;
          $$->type_loc = @3;
          $$->has_dims = true;
          $$->dims = $5;
          $$->def = $8;
      }
    ;

body
    : '{' stmts '}'           { $$ = $2; }
    | '{' stmts stmt '}'      { $$ = $2; vec_push(&$$, $3); }
    | '{' stmts error '}'     { $$ = $2; yyerrok; }
    ;

stmts
    : %empty                  { $$ = (Vec){0}; }
    | stmts NEWLINE
    | stmts stmt NEWLINE      { $$ = $1; vec_push(&$$, $2); }
    | stmts error NEWLINE     { $$ = $1; yyerrok; }
    ;

stmt
    : names '=' expr {
          $$ = new_stmt(ST_ASSIGN, @1);
          $$->names = $1;
          $$->expr = $3;
      }
    | FOR NAME IN expr DOTDOT expr body {
          $$ = new_stmt(ST_FOR, @1);
          vec_push(&$$->names, name_node($2, @2));
          $$->lo = $4;
          $$->hi = $6;
          $$->body = $7;
      }
    | FOR error body          { $$ = new_stmt(ST_FOR, @1); }
    | error body              { $$ = new_stmt(ST_IF, @2); }
    | if_stmt
    | RETURN exprs {
          $$ = new_stmt(ST_RETURN, @1);
          $$->values = $2;
      }
    ;

if_stmt
    : IF expr body {
          $$ = new_stmt(ST_IF, @1);
          $$->expr = $2;
          $$->body = $3;
      }
    | IF expr body ELSE body {
          $$ = new_stmt(ST_IF, @1);
          $$->expr = $2;
          $$->body = $3;
          $$->els = $5;
      }
    | IF expr body ELSE if_stmt {
          $$ = new_stmt(ST_IF, @1);
          $$->expr = $2;
          $$->body = $3;
          vec_push(&$$->els, $5);
      }
    | IF error body           { $$ = new_stmt(ST_IF, @1); }
    ;

names
    : NAME                    { $$ = (Vec){0}; vec_push(&$$, name_node($1, @1)); }
    | names ',' NAME          { $$ = $1; vec_push(&$$, name_node($3, @3)); }
    ;

expr
    : expr '?' expr ':' expr  { $$ = new_node(ND_COND, @$); $$->cond = $1; $$->lhs = $3; $$->rhs = $5; }
    | expr OROR expr          { $$ = new_binary(OP_OR, $1, $3, @2); }
    | expr ANDAND expr        { $$ = new_binary(OP_AND, $1, $3, @2); }
    | expr EQ expr            { $$ = new_binary(OP_EQ, $1, $3, @2); }
    | expr NE expr            { $$ = new_binary(OP_NE, $1, $3, @2); }
    | expr '<' expr           { $$ = new_binary(OP_LT, $1, $3, @2); }
    | expr LE expr            { $$ = new_binary(OP_LE, $1, $3, @2); }
    | expr '>' expr           { $$ = new_binary(OP_GT, $1, $3, @2); }
    | expr GE expr            { $$ = new_binary(OP_GE, $1, $3, @2); }
    | expr '+' expr           { $$ = new_binary(OP_ADD, $1, $3, @2); }
    | expr '-' expr           { $$ = new_binary(OP_SUB, $1, $3, @2); }
    | expr '*' expr           { $$ = new_binary(OP_MUL, $1, $3, @2); }
    | expr '/' expr           { $$ = new_binary(OP_DIV, $1, $3, @2); }
    | expr IDIV expr          { $$ = new_binary(OP_IDIV, $1, $3, @2); }
    | expr '%' expr           { $$ = new_binary(OP_MOD, $1, $3, @2); }
    | expr '@' expr           { $$ = new_binary(OP_MATMUL, $1, $3, @2); }
    | expr POW expr           { $$ = new_binary(OP_POW, $1, $3, @2); }
    | '-' expr %prec UNARY    { $$ = new_unary(OP_NEG, $2, @1); }
    | '!' expr %prec UNARY    { $$ = new_unary(OP_NOT, $2, @1); }
    | expr AS path            { $$ = new_node(ND_AS, @2); $$->lhs = $1; $$->path = $3; }
    | postfix
    ;

postfix
    : primary
    | postfix '[' expr ']'    { $$ = new_node(ND_INDEX, @2); $$->lhs = $1; $$->rhs = $3; }
    | postfix '.' NAME        { $$ = new_node(ND_ATTR, @3); $$->lhs = $1; $$->str = $3; }
    ;

primary
    : INT                     { $$ = new_node(ND_INT, @1); $$->ival = $1; }
    | FLOAT                   { $$ = new_node(ND_FLOAT, @1); $$->fval = $1; }
    | STRING                  { $$ = new_node(ND_STR, @1); $$->str = $1; }
    | TRUE                    { $$ = new_node(ND_BOOL, @1); $$->bval = true; }
    | FALSE                   { $$ = new_node(ND_BOOL, @1); $$->bval = false; }
    | NAME                    { $$ = name_node($1, @1); }
    | NAME '(' args_opt ')'   { $$ = new_node(ND_CALL, @1); $$->str = $1; $$->args = $3; }
    | '(' expr ')'            { $$ = paren_node($2, @$); }
    | '[' exprs_opt ']'       { $$ = new_node(ND_LIST, @1); $$->args = $2; }
    ;

exprs_opt
    : %empty                  { $$ = (Vec){0}; }
    | exprs
    | exprs ','
    ;

exprs
    : expr                    { $$ = (Vec){0}; vec_push(&$$, $1); }
    | exprs ',' expr          { $$ = $1; vec_push(&$$, $3); }
    ;

args_opt
    : %empty                  { $$ = (Vec){0}; }
    | args
    | args ','
    ;

args
    : arg                     { $$ = (Vec){0}; vec_push(&$$, $1); }
    | args ',' arg            { $$ = $1; vec_push(&$$, $3); }
    ;

arg
    : expr                    { $$ = new_arg(NULL, $1, @1); }
    | NAME '=' expr           { $$ = new_arg($1, $3, @1); }
    ;

path
    : path_seg                { $$ = new_path(@1); vec_push(&$$->segs, $1); $$ = path_finish($$); }
    | path PDOT path_seg      { $$ = $1; vec_push(&$$->segs, $3); $$->loc = loc_span($$->loc, @3); $$ = path_finish($$); }
    ;

path_seg
    : path_part               { $$ = new_path_seg(@1); vec_push(&$$->parts, $1); }
    | path_seg path_part      { $$ = $1; vec_push(&$$->parts, $2); $$->loc = loc_span($$->loc, @2); }
    ;

path_part
    : PSEG                    { $$ = new_path_part($1, NULL); }
    | PLBRACE expr PRBRACE    { $$ = new_path_part(NULL, $2); }
    ;

%%

static Node *name_node(const char *name, Loc loc) {
    Node *n = new_node(ND_NAME, loc);
    n->str = name;
    return n;
}

static void yyerror(YYLTYPE *loc, ParseCtx *ctx, const char *msg) {
    if (strcmp(msg, "memory exhausted") == 0)   /* bison's parse stack is full */
        msg = "expression nested too deeply";
    diag_error(*loc, "%s", msg);
    ctx->errors++;
}

/* Tokens that start an expression, or a statement: listed as one phrase in messages. */
static bool starts_expression(yysymbol_kind_t k) {
    if (k == YYSYMBOL_INT || k == YYSYMBOL_FLOAT || k == YYSYMBOL_STRING || k == YYSYMBOL_TRUE || k == YYSYMBOL_FALSE || k == YYSYMBOL_NAME)
        return true;
    const char *name = yysymbol_name(k);
    return strcmp(name, "'('") == 0 || strcmp(name, "'['") == 0 || strcmp(name, "'-'") == 0 || strcmp(name, "'!'") == 0;
}

/* Tokens that could continue an expression already read: not worth listing. ('(', '-' and '['
   also start one; they are left out here only when an expression may not start.) */
static bool continues_expression(yysymbol_kind_t k) {
    const char *name = yysymbol_name(k);
    static const char *ops[] = {"'?'", "':'", "'||'", "'&&'", "'=='", "'!='", "'<'", "'<='", "'>'", "'>='", "'+'", "'-'", "'*'",
                                "'/'", "'//'", "'%'", "'@'", "'**'", "'as'", "'['", "'.'", "'('", NULL};
    for (int i = 0; ops[i]; i++)
        if (strcmp(name, ops[i]) == 0)
            return true;
    return false;
}

static bool is_keyword(yysymbol_kind_t k) {
    switch (k) {
    case YYSYMBOL_BLOCK: case YYSYMBOL_MODEL: case YYSYMBOL_LET: case YYSYMBOL_IMPORT: case YYSYMBOL_FOR: case YYSYMBOL_IN:
    case YYSYMBOL_IF: case YYSYMBOL_ELSE: case YYSYMBOL_RETURN: case YYSYMBOL_AS: case YYSYMBOL_SELF: case YYSYMBOL_TRUE:
    case YYSYMBOL_FALSE:
        return true;
    default: return false;
    }
}

static bool is_comparison(yysymbol_kind_t k) {
    return k == YYSYMBOL_EQ || k == YYSYMBOL_NE || k == YYSYMBOL_LE || k == YYSYMBOL_GE || strcmp(yysymbol_name(k), "'<'") == 0 ||
           strcmp(yysymbol_name(k), "'>'") == 0;
}

/* Says what was expected and what was found: "expected ')' or ',', found end of line". Tokens that
   would continue an expression are left out, tokens that start one are said as "an expression", and
   some mistakes get a message of their own. */
static int yyreport_syntax_error(const yypcontext_t *pc, ParseCtx *ctx) {
    yysymbol_kind_t expected[YYNTOKENS];
    int n = yypcontext_expected_tokens(pc, expected, YYNTOKENS);
    yysymbol_kind_t found = yypcontext_token(pc);
    YYLTYPE *loc = yypcontext_location(pc);
    if (found == YYSYMBOL_LEXERROR)
        return 0;   /* the lexer has said what is wrong */
    if (found == YYSYMBOL_YYEOF && ctx->errors > 0)
        return 0;   /* running out of input after an error is that error's echo */
    const char *found_text = found == YYSYMBOL_YYEOF || (found == YYSYMBOL_NEWLINE && ctx->eof_newline_sent) ? "end of file" : yysymbol_name(found);
    bool want_name = false, want_expr = false, want_stmt = false, want_decl = false;
    for (int i = 0; i < n; i++) {
        want_name |= expected[i] == YYSYMBOL_NAME;
        want_expr |= expected[i] == YYSYMBOL_INT;
        want_stmt |= expected[i] == YYSYMBOL_RETURN;
        want_decl |= expected[i] == YYSYMBOL_BLOCK;
    }
    if (is_comparison(found) && !want_expr) {
        yyerror(loc, ctx, "comparison operators do not chain (write a < b && b < c)");
        return 0;
    }
    if (found == YYSYMBOL_ELSE) {
        yyerror(loc, ctx, "'else' without a matching 'if'");
        return 0;
    }
    bool want_close = false;
    for (int i = 0; i < n; i++)
        want_close |= strcmp(yysymbol_name(expected[i]), "'}'") == 0;
    bool declaration = found == YYSYMBOL_BLOCK || found == YYSYMBOL_MODEL || found == YYSYMBOL_LET || found == YYSYMBOL_IMPORT;
    if (want_close && (declaration || found == YYSYMBOL_YYEOF || (found == YYSYMBOL_NEWLINE && ctx->eof_newline_sent))) {
        char *msg = format("expected '}', found %s", declaration ? yysymbol_name(found) : "end of file");
        yyerror(loc, ctx, msg);   /* a body left open */
        return 0;
    }
    if (want_name && is_keyword(found) && found != YYSYMBOL_TRUE && found != YYSYMBOL_FALSE) {
        char *msg = format("%s is a keyword and cannot be used as a name", yysymbol_name(found));
        yyerror(loc, ctx, msg);
        return 0;
    }
    const char *shown[YYNTOKENS];
    int m = 0;
    if (want_stmt)
        shown[m++] = "a statement";
    else if (want_expr)
        shown[m++] = "an expression";
    for (int i = 0; i < n; i++) {
        yysymbol_kind_t k = expected[i];
        if (continues_expression(k) || (want_expr && starts_expression(k)))
            continue;
        if (want_stmt && (k == YYSYMBOL_NAME || k == YYSYMBOL_FOR || k == YYSYMBOL_IF || k == YYSYMBOL_RETURN))
            continue;
        if (want_decl && (k == YYSYMBOL_NEWLINE || k == YYSYMBOL_YYEOF))
            continue;
        shown[m++] = yysymbol_name(k);
    }
    /* before a closing bracket, ',' and a keyword argument's '=' are only ways to go on: say the bracket */
    bool closing = false;
    for (int i = 0; i < m; i++)
        closing |= strcmp(shown[i], "')'") == 0 || strcmp(shown[i], "']'") == 0;
    if (closing) {
        int kept = 0;
        for (int i = 0; i < m; i++)
            if (strcmp(shown[i], "','") != 0 && strcmp(shown[i], "'='") != 0)
                shown[kept++] = shown[i];
        m = kept;
    }
    Buf b = {0};
    if (m > 0 && m <= 5) {
        buf_puts(&b, "expected ");
        for (int i = 0; i < m; i++) {
            if (i > 0)
                buf_puts(&b, i == m - 1 ? " or " : ", ");
            buf_puts(&b, shown[i]);
        }
        buf_puts(&b, ", found ");
    } else {
        buf_puts(&b, "unexpected ");
    }
    buf_puts(&b, found_text);
    yyerror(loc, ctx, b.buf);
    return 0;
}

int yylex_init_extra(ParseCtx *extra, void **scanner);
int yylex_destroy(void *scanner);
void *yy_scan_bytes(const char *bytes, int len, void *scanner);

int parse_file(const SrcFile *src, Vec *out) {
    ParseCtx ctx = {.src = src, .decls = out, .line = 1, .col = 1};
    if (src->len > (size_t)INT32_MAX - 2) {
        diag_plain("%s: file too large", src->path);
        return 1;
    }
    yylex_init_extra(&ctx, &ctx.scanner);
    yy_scan_bytes(src->text, (int)src->len, ctx.scanner);
    int status = yyparse(&ctx);
    yylex_destroy(ctx.scanner);
    if (status == 2) {
        diag_plain("%s: out of memory while parsing", src->path);
        ctx.errors++;
    } else if (status != 0 && ctx.errors == 0) {
        ctx.errors++;
    }
    return ctx.errors;
}
