/* template.c: the logic-less template engine (see template.h).
 *
 * A template is checked in full (size, UTF-8, tags, balanced sections, depth)
 * before anything is rendered; rendering then walks the text again, looking
 * names up on a stack of contexts (the innermost section's item first). Every
 * value goes through put_text(), which escapes for HTML and repairs UTF-8.
 * Must not: include I/O headers (not even stdio.h: the error text is built by
 * hand), allocate outside the caller's arena, or emit a value unescaped unless
 * it was set with tpl_set_raw(). */
#include "template.h"

#include <string.h>

#include "templates_generated.h"

enum tpl_kind { TPL_TEXT, TPL_RAW, TPL_FLAG, TPL_LIST };

struct tpl_item {
    struct tpl_item *next;
    struct tpl_ctx *ctx;
};

struct tpl_var {
    struct tpl_var *next;
    const char *name;
    enum tpl_kind kind;
    const char *text;              /* TPL_TEXT, TPL_RAW */
    bool on;                       /* TPL_FLAG */
    struct tpl_item *first, *last; /* TPL_LIST */
};

/* Shared by a context and all its items: the arena and the first misuse. */
struct tpl_root {
    arena_t *arena;
    const char *misuse;
};

struct tpl_ctx {
    struct tpl_root *root;
    const struct tpl_ctx *parent;
    struct tpl_var *vars;
};

/* ---- error text, without stdio ---------------------------------------------------- */

struct errw {
    char *buf;
    size_t cap, len;
};

static void ew_puts(struct errw *w, const char *s)
{
    while (*s != '\0' && w->len + 1 < w->cap)
        w->buf[w->len++] = *s++;
    if (w->cap > 0)
        w->buf[w->len] = '\0';
}

static void ew_putu(struct errw *w, size_t v)
{
    char d[24], one[2] = {0, 0};
    size_t n = 0;
    do {
        d[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (n > 0) {
        one[0] = d[--n];
        ew_puts(w, one);
    }
}

/* The template being checked or rendered, and where its errors go. */
struct scan {
    const char *t;
    size_t len;
    char *err;
    size_t errlen;
};

/* Writes "line L, column C: a'name'b" (name may be NULL) and returns -1. */
static int fail(const struct scan *s, size_t at, const char *a, const char *name, const char *b)
{
    struct errw w = {s->err, s->err != NULL ? s->errlen : 0, 0};
    size_t line = 1, col = 1;
    for (size_t i = 0; i < at && i < s->len; i++) {
        col = s->t[i] == '\n' ? 1 : col + 1;
        line += s->t[i] == '\n';
    }
    ew_puts(&w, "line ");
    ew_putu(&w, line);
    ew_puts(&w, ", column ");
    ew_putu(&w, col);
    ew_puts(&w, ": ");
    ew_puts(&w, a);
    if (name != NULL) {
        ew_puts(&w, "'");
        ew_puts(&w, name);
        ew_puts(&w, "'");
    }
    ew_puts(&w, b);
    return -1;
}

/* An error that has no position in the template. */
static int fail_plain(char *err, size_t errlen, const char *a, const char *b)
{
    struct errw w = {err, err != NULL ? errlen : 0, 0};
    ew_puts(&w, a);
    ew_puts(&w, b);
    return -1;
}

/* ---- names and UTF-8 --------------------------------------------------------------- */

static bool name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_';
}

static bool name_ok(const char *s)
{
    size_t n = 0;
    while (n <= TPL_MAX_NAME && name_char(s[n]))
        n++;
    return n >= 1 && n <= TPL_MAX_NAME && s[n] == '\0';
}

/* Length of the well-formed UTF-8 sequence at s (1 to 4), or 0 when it is
 * ill-formed; then *bad is the length of its maximal ill-formed subpart, which
 * becomes one U+FFFD (the Unicode and WHATWG practice). s is NUL-terminated. */
static size_t utf8_len(const unsigned char *s, size_t *bad)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t need;
    *bad = 1;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        lo = c == 0xE0 ? 0xA0 : 0x80; /* no overlong forms */
        hi = c == 0xED ? 0x9F : 0xBF; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF; /* nothing past U+10FFFF */
    } else {
        return 0;
    }
    for (size_t i = 1; i <= need; i++) {
        if (s[i] < lo || s[i] > hi) {
            *bad = i;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

static const char *html_entity(unsigned char c)
{
    switch (c) {
    case '&':
        return "&amp;";
    case '<':
        return "&lt;";
    case '>':
        return "&gt;";
    case '"':
        return "&quot;";
    case '\'':
        return "&#39;";
    case '`':
        return "&#96;";
    case '=':
        return "&#61;";
    default:
        return NULL;
    }
}

/* Appends s, HTML-escaped when escape, with ill-formed UTF-8 replaced. */
static void put_text(strbuf_t *out, const char *s, bool escape)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0; /* p[run..i) is safe and not yet copied */
    while (p[i] != '\0') {
        size_t bad, n = utf8_len(p + i, &bad);
        const char *ent = escape && n == 1 ? html_entity(p[i]) : NULL;
        if (n > 0 && ent == NULL) {
            i += n;
            continue;
        }
        sb_putn(out, s + run, i - run);
        sb_puts(out, ent != NULL ? ent : "\xEF\xBF\xBD");
        i += n > 0 ? n : bad;
        run = i;
    }
    sb_putn(out, s + run, i - run);
}

/* ---- contexts ------------------------------------------------------------------------ */

struct tpl_ctx *tpl_ctx_new(arena_t *a)
{
    struct tpl_ctx *c = arena_alloc(a, sizeof(*c));
    c->root = arena_alloc(a, sizeof(*c->root));
    c->root->arena = a;
    return c;
}

static void misuse(struct tpl_ctx *c, const char *what)
{
    if (c->root->misuse == NULL)
        c->root->misuse = what;
}

static struct tpl_var *ctx_find(const struct tpl_ctx *c, const char *name)
{
    for (struct tpl_var *v = c->vars; v != NULL; v = v->next)
        if (strcmp(v->name, name) == 0)
            return v;
    return NULL;
}

/* The variable name of c, emptied (an existing one is reused: set replaces). */
static struct tpl_var *ctx_slot(struct tpl_ctx *c, const char *name, enum tpl_kind kind)
{
    struct tpl_var *v = ctx_find(c, name);
    if (v == NULL) {
        v = arena_alloc(c->root->arena, sizeof(*v));
        v->name = arena_strdup(c->root->arena, name);
        v->next = c->vars;
        c->vars = v;
    }
    v->kind = kind;
    v->text = NULL;
    v->on = false;
    v->first = v->last = NULL;
    return v;
}

static void set_text(struct tpl_ctx *c, const char *name, const char *value, enum tpl_kind kind)
{
    if (c == NULL)
        return;
    if (name == NULL || !name_ok(name)) {
        misuse(c, "a setter got a name that is not [a-z0-9_]{1,32}");
        return;
    }
    if (value == NULL) {
        misuse(c, "a setter got a NULL value");
        return;
    }
    ctx_slot(c, name, kind)->text = arena_strdup(c->root->arena, value);
}

void tpl_set(struct tpl_ctx *c, const char *name, const char *value)
{
    set_text(c, name, value, TPL_TEXT);
}

void tpl_set_raw(struct tpl_ctx *c, const char *name, const char *html)
{
    set_text(c, name, html, TPL_RAW);
}

void tpl_set_int(struct tpl_ctx *c, const char *name, int64_t value)
{
    if (c != NULL)
        set_text(c, name, arena_printf(c->root->arena, "%lld", (long long)value), TPL_TEXT);
}

void tpl_set_flag(struct tpl_ctx *c, const char *name, bool on)
{
    if (c == NULL)
        return;
    if (name == NULL || !name_ok(name)) {
        misuse(c, "tpl_set_flag got a name that is not [a-z0-9_]{1,32}");
        return;
    }
    ctx_slot(c, name, TPL_FLAG)->on = on;
}

struct tpl_ctx *tpl_add_item(struct tpl_ctx *c, const char *list_name)
{
    if (c == NULL)
        return NULL;
    struct tpl_ctx *child = arena_alloc(c->root->arena, sizeof(*child));
    child->root = c->root;
    child->parent = c;
    if (list_name == NULL || !name_ok(list_name)) {
        misuse(c, "tpl_add_item got a name that is not [a-z0-9_]{1,32}");
        return child; /* usable, but never rendered */
    }
    struct tpl_var *v = ctx_find(c, list_name);
    if (v == NULL || v->kind != TPL_LIST)
        v = ctx_slot(c, list_name, TPL_LIST);
    struct tpl_item *it = arena_alloc(c->root->arena, sizeof(*it));
    it->ctx = child;
    if (v->last != NULL)
        v->last->next = it;
    else
        v->first = it;
    v->last = it;
    return child;
}

/* ---- the scanner ------------------------------------------------------------------- */

enum tag_kind { TAG_VAR, TAG_OPEN, TAG_CLOSE };

struct tag {
    enum tag_kind kind;
    size_t at, end; /* offsets of its "{{" and just past its "}}" */
    char name[TPL_MAX_NAME + 1];
};

/* Why the tag at `at`, whose name has n characters, is malformed. */
static int bad_tag(const struct scan *s, size_t at, size_t n)
{
    if (strstr(s->t + at + 2, "}}") == NULL)
        return fail(s, at, "{{ is never closed by }}", NULL, "");
    if (n > TPL_MAX_NAME)
        return fail(s, at, "a name is at most 32 characters", NULL, "");
    return fail(s, at, "only a name [a-z0-9_]{1,32}, after an optional # or /, may stand in {{ }}",
                NULL, "");
}

/* The next tag at or after pos: 1 with *tag filled, 0 when none is left,
 * -1 with the error written when the next one is malformed. */
static int next_tag(const struct scan *s, size_t pos, struct tag *tag)
{
    const char *open = strstr(s->t + pos, "{{");
    if (open == NULL)
        return 0;
    size_t at = (size_t)(open - s->t), i = at + 2, n = 0;
    if (s->t[i] == '{')
        return fail(s, at, "{{{ is not allowed: unescaped output is tpl_set_raw() in C, only", NULL,
                    "");
    tag->kind = s->t[i] == '#' ? TAG_OPEN : s->t[i] == '/' ? TAG_CLOSE : TAG_VAR;
    i += tag->kind != TAG_VAR;
    while (n <= TPL_MAX_NAME && name_char(s->t[i + n]))
        n++;
    if (n == 0 || n > TPL_MAX_NAME || s->t[i + n] != '}' || s->t[i + n + 1] != '}')
        return bad_tag(s, at, n);
    memcpy(tag->name, s->t + i, n);
    tag->name[n] = '\0';
    tag->at = at;
    tag->end = i + n + 2;
    return 1;
}

/* Size and encoding: at most TPL_MAX_SIZE bytes, all well-formed UTF-8. */
static int check_text(struct scan *s)
{
    s->len = strnlen(s->t, TPL_MAX_SIZE + 1);
    if (s->len > TPL_MAX_SIZE)
        return fail(s, 0, "the template is larger than 256 KiB", NULL, "");
    const unsigned char *p = (const unsigned char *)s->t;
    size_t bad;
    for (size_t i = 0, n; i < s->len; i += n)
        if ((n = utf8_len(p + i, &bad)) == 0)
            return fail(s, i, "the template is not valid UTF-8", NULL, "");
    return 0;
}

/* Every tag well-formed, sections balanced and at most TPL_MAX_DEPTH deep. */
static int check_tags(const struct scan *s)
{
    struct tag open[TPL_MAX_DEPTH], tag;
    size_t depth = 0, pos = 0;
    int r;
    while ((r = next_tag(s, pos, &tag)) == 1) {
        /* NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Assign): next_tag returns 1 only with *tag filled (analyzer false positive) */
        pos = tag.end;
        if (tag.kind == TAG_OPEN) {
            if (depth == TPL_MAX_DEPTH)
                return fail(s, tag.at, "sections nest deeper than 8 at ", tag.name, "");
            open[depth++] = tag;
        } else if (tag.kind == TAG_CLOSE) {
            if (depth == 0)
                return fail(s, tag.at, "{{/", tag.name, "}} closes no open section");
            if (strcmp(open[depth - 1].name, tag.name) != 0)
                return fail(s, tag.at, "{{/", tag.name, "}} does not close the open section");
            depth--;
        }
    }
    if (r < 0)
        return -1;
    if (depth > 0)
        return fail(s, open[depth - 1].at, "section ", open[depth - 1].name, " is never closed");
    return 0;
}

static int check_all(struct scan *s)
{
    if (s->err != NULL && s->errlen > 0)
        s->err[0] = '\0';
    if (s->t == NULL)
        return fail_plain(s->err, s->errlen, "no template", "");
    return check_text(s) < 0 ? -1 : check_tags(s);
}

int tpl_check(const char *template_text, char *err, size_t errlen)
{
    struct scan s = {template_text, 0, err, errlen};
    return check_all(&s);
}

/* ---- rendering ----------------------------------------------------------------------- */

struct render {
    struct scan s;
    strbuf_t *out;
    size_t start; /* out->len on entry */
    size_t steps; /* tags and items visited: empty bodies cost time, not output */
    const struct tpl_ctx *stack[TPL_MAX_DEPTH + 1];
    size_t nstack;
};

/* Innermost section's context first; each context falls back to its parents. */
static const struct tpl_var *lookup(const struct render *r, const char *name)
{
    for (size_t i = r->nstack; i-- > 0;)
        for (const struct tpl_ctx *c = r->stack[i]; c != NULL; c = c->parent) {
            const struct tpl_var *v = ctx_find(c, name);
            if (v != NULL)
                return v;
        }
    return NULL;
}

/* The {{/name}} matching the section whose body starts at pos (the template
 * is checked, so it exists): *close_at is its "{{", *after just past it. */
static void match_close(const struct render *r, size_t pos, size_t *close_at, size_t *after)
{
    struct tag tag;
    size_t depth = 0;
    while (next_tag(&r->s, pos, &tag) == 1) {
        pos = tag.end;
        if (tag.kind == TAG_OPEN) {
            depth++;
        } else if (tag.kind == TAG_CLOSE && depth-- == 0) {
            *close_at = tag.at;
            *after = tag.end;
            return;
        }
    }
    *close_at = *after = r->s.len; /* not reached */
}

static int put_var(struct render *r, const struct tag *tag)
{
    const struct tpl_var *v = lookup(r, tag->name);
    if (v == NULL)
        return fail(&r->s, tag->at, "unknown name ", tag->name, "");
    if (v->kind == TPL_FLAG || v->kind == TPL_LIST)
        return fail(&r->s, tag->at, "", tag->name,
                    v->kind == TPL_FLAG ? " is a flag: use it as a section"
                                        : " is a list: use it as a section");
    put_text(r->out, v->text, v->kind == TPL_TEXT);
    return 0;
}

static int render_span(struct render *r, size_t pos, size_t end);

static int render_section(struct render *r, const struct tag *tag, size_t from, size_t to)
{
    const struct tpl_var *v = lookup(r, tag->name);
    if (v == NULL || (v->kind == TPL_FLAG && !v->on))
        return 0;
    if (v->kind == TPL_FLAG)
        return render_span(r, from, to);
    if (v->kind != TPL_LIST)
        return fail(&r->s, tag->at, "section ", tag->name, " is a value, not a list or a flag");
    if (r->nstack == TPL_MAX_DEPTH + 1)
        return fail(&r->s, tag->at, "sections nest too deep", NULL, ""); /* checked before */
    for (const struct tpl_item *it = v->first; it != NULL; it = it->next) {
        r->stack[r->nstack++] = it->ctx;
        int rc = render_span(r, from, to);
        r->nstack--;
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* Nested lists multiply: bound both the output and the work. */
static int over_budget(struct render *r, size_t at)
{
    if (++r->steps > TPL_MAX_STEPS)
        return fail(&r->s, at, "rendering takes more than 4 million steps", NULL, "");
    if (r->out->len - r->start > TPL_MAX_OUTPUT)
        return fail(&r->s, at, "the output is larger than 16 MiB", NULL, "");
    return 0;
}

/* Renders the template from pos to end (tags within it balanced). */
static int render_span(struct render *r, size_t pos, size_t end)
{
    struct tag tag;
    /* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult): next_tag returns 1 only with *tag filled (analyzer false positive) */
    while (next_tag(&r->s, pos, &tag) == 1 && tag.at < end) {
        sb_putn(r->out, r->s.t + pos, tag.at - pos); /* literal text: checked UTF-8 */
        pos = tag.end;
        if (tag.kind == TAG_VAR) {
            if (put_var(r, &tag) < 0)
                return -1;
        } else {
            size_t close_at;
            match_close(r, tag.end, &close_at, &pos);
            if (render_section(r, &tag, tag.end, close_at) < 0)
                return -1;
        }
        if (over_budget(r, tag.at) < 0)
            return -1;
    }
    sb_putn(r->out, r->s.t + pos, end - pos);
    return over_budget(r, end);
}

int tpl_render(const struct tpl_ctx *c, const char *template_text, strbuf_t *out, char *err,
               size_t errlen)
{
    struct render r = {.s = {template_text, 0, err, errlen}, .out = out, .start = out->len};
    if (check_all(&r.s) < 0)
        return -1;
    if (c == NULL)
        return fail_plain(err, errlen, "no context", "");
    if (c->root->misuse != NULL)
        return fail_plain(err, errlen, "context: ", c->root->misuse);
    r.stack[r.nstack++] = c;
    if (render_span(&r, 0, r.s.len) == 0)
        return 0;
    out->len = r.start; /* leave out as it was */
    if (out->data != NULL)
        out->data[out->len] = '\0';
    return -1;
}

/* ---- the compiled-in templates ---------------------------------------------------- */

const char *tpl_get(const char *name)
{
    for (unsigned i = 0; name != NULL && i < tpl_nfiles; i++)
        if (strcmp(tpl_files[i].name, name) == 0)
            return tpl_files[i].text;
    return NULL;
}

const char *tpl_name(size_t i)
{
    return i < tpl_nfiles ? tpl_files[i].name : NULL;
}
