/* test_template.c: the template engine (src/template.c).
 *
 * Escaping (every special character, script and attribute breakers, Unicode
 * kept intact, ill-formed UTF-8 replaced), sections (lists of 0, 1 and 300
 * items, flags, nesting, fallback to parents and to enclosing items), errors
 * (syntax, depth, size, unknown names, misuse of setters, budgets), raw output
 * only through tpl_set_raw(), and every compiled-in template checked and
 * rendered. No I/O. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static int arena_setup(void **state)
{
    *state = arena_new(4096);
    return 0;
}

static int arena_teardown(void **state)
{
    arena_free(*state);
    return 0;
}

/* Renders tpl with c and returns the output; fails the test on an error. */
static const char *render(arena_t *a, const struct tpl_ctx *c, const char *tpl)
{
    strbuf_t out;
    char err[256];
    sb_init(&out, a);
    if (tpl_render(c, tpl, &out, err, sizeof(err)) != 0)
        fail_msg("render of '%.60s' failed: %s", tpl, err);
    return sb_str(&out);
}

/* Expects tpl to fail with an error containing want; out must be unchanged. */
static void render_fails(arena_t *a, const struct tpl_ctx *c, const char *tpl, const char *want)
{
    strbuf_t out;
    char err[256];
    sb_init(&out, a);
    sb_puts(&out, "before");
    if (tpl_render(c, tpl, &out, err, sizeof(err)) != -1)
        fail_msg("render of '%.60s' succeeded: '%.60s'", tpl, sb_str(&out));
    if (strstr(err, want) == NULL)
        fail_msg("render of '%.60s': error '%s' lacks '%s'", tpl, err, want);
    assert_string_equal(sb_str(&out), "before");
    assert_int_equal(out.len, 6);
}

static void check_fails(const char *tpl, const char *want)
{
    char err[256];
    if (tpl_check(tpl, err, sizeof(err)) != -1)
        fail_msg("tpl_check accepted '%.60s'", tpl);
    if (strstr(err, want) == NULL)
        fail_msg("tpl_check '%.60s': error '%s' lacks '%s'", tpl, err, want);
}

/* Output of {{v}} for one value. */
static const char *escaped(arena_t *a, const char *value)
{
    struct tpl_ctx *c = tpl_ctx_new(a);
    tpl_set(c, "v", value);
    return render(a, c, "{{v}}");
}

/* ---- escaping ---------------------------------------------------------------------- */

static void test_escape_table(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", ""},
        {"plain text 123", "plain text 123"},
        {"&", "&amp;"},
        {"<", "&lt;"},
        {">", "&gt;"},
        {"\"", "&quot;"},
        {"'", "&#39;"},
        {"`", "&#96;"},
        {"=", "&#61;"},
        {"&<>\"'`=", "&amp;&lt;&gt;&quot;&#39;&#96;&#61;"},
        {"&amp;", "&amp;amp;"}, /* no double-unescaping tricks */
        {"<script>alert(\"x\")</script>", "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"},
        {"\" onmouseover=\"alert(1)", "&quot; onmouseover&#61;&quot;alert(1)"},
        {"' autofocus onfocus='x", "&#39; autofocus onfocus&#61;&#39;x"},
        {"x` y=`z", "x&#96; y&#61;&#96;z"},
        {"{{title}}", "{{title}}"}, /* values are not templates */
        {"tab\there\nline", "tab\there\nline"},
        {"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89",
         "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89"},
        {"\xef\xbf\xbd", "\xef\xbf\xbd"},         /* U+FFFD itself */
        {"\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf"}, /* U+10FFFF */
        {"\xed\x9f\xbf", "\xed\x9f\xbf"},         /* U+D7FF */
        {"\xee\x80\x80", "\xee\x80\x80"},         /* U+E000 */
    };
    for (size_t i = 0; i < N(cases); i++) {
        const char *got = escaped(*state, cases[i].in);
        if (strcmp(got, cases[i].out) != 0)
            fail_msg("case %zu: '%s' -> '%s', want '%s'", i, cases[i].in, got, cases[i].out);
    }
}

static void test_escape_invalid_utf8(void **state)
{
#define FFFD "\xef\xbf\xbd"
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"\x80", FFFD}, /* lone continuation */
        {"a\xbf"
         "b",
         "a" FFFD "b"},
        {"\xc0\xaf", FFFD FFFD}, /* overlong '/' */
        {"\xc1\xbf", FFFD FFFD},
        {"\xe0\x80\xaf", FFFD FFFD FFFD}, /* overlong, 3 bytes */
        {"\xed\xa0\x80", FFFD FFFD FFFD}, /* surrogate U+D800 */
        {"\xf0\x80\x80\xaf", FFFD FFFD FFFD FFFD},
        {"\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD}, /* past U+10FFFF */
        {"\xf5\x80", FFFD FFFD},
        {"\xff", FFFD},
        {"\xe2\x82", FFFD}, /* truncated euro: one maximal subpart */
        {"\xe2\x82<", FFFD "&lt;"},
        {"\xf0\x9f\x8e", FFFD},
        {"\xf0\x9f\x8e"
         "a\xe2\x82\xac",
         FFFD "a\xe2\x82\xac"},
        {"\xc3", FFFD},
        {"\xc3\xc3\xa9", FFFD "\xc3\xa9"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        const char *got = escaped(*state, cases[i].in);
        if (strcmp(got, cases[i].out) != 0)
            fail_msg("case %zu: got '%s', want '%s'", i, got, cases[i].out);
    }
#undef FFFD
}

static void test_escape_long_unicode(void **state)
{
    static const char piece[] = "h\xc3\xa9llo w\xc3\xb6rld \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e "
                                "\xf0\x9f\x8e\x89 \xd0\x9f\xd1\x80\xd0\xb8 ";
    strbuf_t in;
    sb_init(&in, *state);
    for (int i = 0; i < 2000; i++)
        sb_puts(&in, piece);
    const char *got = escaped(*state, sb_str(&in));
    assert_int_equal(strlen(got), in.len);
    assert_string_equal(got, sb_str(&in));
}

static void test_set_int(void **state)
{
    static const struct {
        int64_t v;
        const char *out;
    } cases[] = {{0, "0"},
                 {42, "42"},
                 {-7, "-7"},
                 {INT64_MAX, "9223372036854775807"},
                 {INT64_MIN, "-9223372036854775808"}};
    for (size_t i = 0; i < N(cases); i++) {
        struct tpl_ctx *c = tpl_ctx_new(*state);
        tpl_set_int(c, "n", cases[i].v);
        assert_string_equal(render(*state, c, "[{{n}}]"),
                            arena_printf(*state, "[%s]", cases[i].out));
    }
}

static void test_template_text_is_literal(void **state)
{
    struct tpl_ctx *c = tpl_ctx_new(*state);
    tpl_set(c, "x", "<b>");
    /* The template's own markup is trusted and kept; single braces and a
     * stray }} are text. */
    assert_string_equal(render(*state, c, "<p class=\"a\">{ {{x}} }}</p>"),
                        "<p class=\"a\">{ &lt;b&gt; }}</p>");
    assert_string_equal(render(*state, c, ""), "");
    assert_string_equal(render(*state, c, "no tags"), "no tags");
    assert_string_equal(render(*state, c, "{{x}}{{x}}"), "&lt;b&gt;&lt;b&gt;");
}

static void test_set_replaces(void **state)
{
    struct tpl_ctx *c = tpl_ctx_new(*state);
    tpl_set(c, "x", "one");
    tpl_set(c, "x", "two");
    assert_string_equal(render(*state, c, "{{x}}"), "two");
    tpl_set_flag(c, "x", true);
    assert_string_equal(render(*state, c, "{{#x}}on{{/x}}"), "on");
    tpl_add_item(c, "x");
    tpl_add_item(c, "x");
    assert_string_equal(render(*state, c, "{{#x}}i{{/x}}"), "ii");
    tpl_set(c, "x", "three");
    assert_string_equal(render(*state, c, "{{x}}"), "three");
}

static void test_value_copied(void **state)
{
    char buf[8] = "first";
    struct tpl_ctx *c = tpl_ctx_new(*state);
    tpl_set(c, "x", buf);
    strcpy(buf, "later");
    assert_string_equal(render(*state, c, "{{x}}"), "first");
}

/* ---- raw ----------------------------------------------------------------------------- */

static void test_raw_only_via_set_raw(void **state)
{
    struct tpl_ctx *c = tpl_ctx_new(*state);
    tpl_set(c, "esc", "<i>x</i>");
    tpl_set_raw(c, "raw", "<i>x</i>");
    assert_string_equal(render(*state, c, "{{esc}}|{{raw}}"), "&lt;i&gt;x&lt;/i&gt;|<i>x</i>");
    /* No template syntax asks for raw output. */
    render_fails(*state, c, "{{{raw}}}", "{{{");
    render_fails(*state, c, "{{&raw}}", "only a name");
    /* Raw output still never carries ill-formed UTF-8. */
    tpl_set_raw(c, "raw", "<b>\xff</b>");
    assert_string_equal(render(*state, c, "{{raw}}"), "<b>\xef\xbf\xbd</b>");
}

static void test_raw_fragment_composition(void **state)
{
    /* The intended use: render rows with the engine, hand them to the page. */
    struct tpl_ctx *rows = tpl_ctx_new(*state);
    tpl_set(tpl_add_item(rows, "row"), "name", "<alice>");
    tpl_set(tpl_add_item(rows, "row"), "name", "bob & co");
    strbuf_t frag;
    char err[128];
    sb_init(&frag, *state);
    assert_int_equal(
        tpl_render(rows, "{{#row}}<tr><td>{{name}}</td></tr>{{/row}}", &frag, err, sizeof(err)), 0);
    struct tpl_ctx *page = tpl_ctx_new(*state);
    tpl_set_raw(page, "rows", sb_str(&frag));
    assert_string_equal(render(*state, page, "<table>{{rows}}</table>"),
                        "<table><tr><td>&lt;alice&gt;</td></tr>"
                        "<tr><td>bob &amp; co</td></tr></table>");
}

/* ---- sections ------------------------------------------------------------------------ */

static void test_list_sizes(void **state)
{
    const char *tpl = "<ul>{{#items}}<li>{{text}}</li>{{/items}}</ul>";
    struct tpl_ctx *c = tpl_ctx_new(*state);
    assert_string_equal(render(*state, c, tpl), "<ul></ul>"); /* 0 items: absent */
    tpl_set(tpl_add_item(c, "items"), "text", "a<b");
    assert_string_equal(render(*state, c, tpl), "<ul><li>a&lt;b</li></ul>");
}

/* 300 items, against a reference built by hand. */
static void test_list_300_reference(void **state)
{
    struct tpl_ctx *c = tpl_ctx_new(*state);
    strbuf_t want;
    sb_init(&want, *state);
    sb_puts(&want, "<table>\n");
    for (int i = 0; i < 300; i++) {
        struct tpl_ctx *it = tpl_add_item(c, "rows");
        tpl_set_int(it, "id", i);
        tpl_set(it, "name", arena_printf(*state, "user<%d> & \"%d\"", i, i * 7));
        tpl_set_flag(it, "odd", i % 2 == 1);
        sb_printf(&want, "<tr data-id=\"%d\"><td>user&lt;%d&gt; &amp; &quot;%d&quot;</td>%s</tr>\n",
                  i, i, i * 7, i % 2 == 1 ? "<td>odd</td>" : "");
    }
    sb_puts(&want, "</table>\n");
    const char *got =
        render(*state, c,
               "<table>\n{{#rows}}<tr data-id=\"{{id}}\"><td>{{name}}</td>{{#odd}}<td>odd</td>"
               "{{/odd}}</tr>\n{{/rows}}</table>\n");
    assert_string_equal(got, sb_str(&want));
}

static void test_flags(void **state)
{
    struct tpl_ctx *c = tpl_ctx_new(*state);
    tpl_set_flag(c, "yes", true);
    tpl_set_flag(c, "no", false);
    assert_string_equal(
        render(*state, c, "a{{#yes}}Y{{/yes}}b{{#no}}N{{/no}}c{{#absent}}A{{/absent}}"), "aYbc");
    /* A false or absent section's body is not rendered, so its unknown names
     * are not looked up; its syntax is still checked. */
    assert_string_equal(render(*state, c, "{{#no}}{{unknown}}{{/no}}"), "");
    render_fails(*state, c, "{{#no}}{{ bad }}{{/no}}", "only a name");
}

static void test_nested_sections(void **state)
{
    struct tpl_ctx *c = tpl_ctx_new(*state);
    for (int g = 0; g < 3; g++) {
        struct tpl_ctx *grp = tpl_add_item(c, "groups");
        tpl_set_int(grp, "g", g);
        for (int m = 0; m < g; m++)
            tpl_set_int(tpl_add_item(grp, "members"), "m", m);
        tpl_set_flag(grp, "first", g == 0);
    }
    const char *got = render(*state, c,
                             "{{#groups}}[{{g}}{{#first}}*{{/first}}:"
                             "{{#members}}{{g}}.{{m}} {{/members}}]{{/groups}}");
    assert_string_equal(got, "[0*:][1:1.0 ][2:2.0 2.1 ]");
}

static void test_parent_fallback(void **state)
{
    struct tpl_ctx *c = tpl_ctx_new(*state);
    tpl_set(c, "site", "CTF");
    tpl_set(c, "name", "root");
    struct tpl_ctx *a = tpl_add_item(c, "items");
    tpl_set(a, "name", "A");
    tpl_add_item(c, "items"); /* lacks name: falls back to the parent's */
    assert_string_equal(render(*state, c, "{{#items}}{{site}}:{{name}};{{/items}}{{name}}"),
                        "CTF:A;CTF:root;root");
}

static void test_enclosing_item_visible(void **state)
{
    /* A list defined at the root, iterated inside another list's item: the
     * enclosing item's names are found (the section stack), the root's too. */
    struct tpl_ctx *c = tpl_ctx_new(*state);
    tpl_set(c, "sep", "/");
    tpl_set(tpl_add_item(c, "outer"), "o", "x");
    tpl_set(tpl_add_item(c, "outer"), "o", "y");
    tpl_set(tpl_add_item(c, "inner"), "i", "1");
    tpl_set(tpl_add_item(c, "inner"), "i", "2");
    assert_string_equal(
        render(*state, c, "{{#outer}}{{#inner}}{{o}}{{sep}}{{i}} {{/inner}}{{/outer}}"),
        "x/1 x/2 y/1 y/2 ");
    /* Rendering a child context directly falls back to its parent. */
    struct tpl_ctx *it = tpl_add_item(c, "other");
    tpl_set(it, "own", "mine");
    assert_string_equal(render(*state, it, "{{own}}{{sep}}"), "mine/");
}

static void test_depth_8_ok(void **state)
{
    struct tpl_ctx *c = tpl_ctx_new(*state);
    tpl_set_flag(c, "f", true);
    tpl_set(c, "v", "<>");
    strbuf_t t;
    sb_init(&t, *state);
    for (int i = 0; i < TPL_MAX_DEPTH; i++)
        sb_puts(&t, "{{#f}}");
    sb_puts(&t, "{{v}}");
    for (int i = 0; i < TPL_MAX_DEPTH; i++)
        sb_puts(&t, "{{/f}}");
    assert_int_equal(tpl_check(sb_str(&t), NULL, 0), 0);
    assert_string_equal(render(*state, c, sb_str(&t)), "&lt;&gt;");
    /* Eight nested lists push eight item contexts. */
    struct tpl_ctx *p = c;
    strbuf_t t2;
    sb_init(&t2, *state);
    for (int i = 0; i < TPL_MAX_DEPTH; i++) {
        p = tpl_add_item(p, arena_printf(*state, "l%d", i));
        sb_printf(&t2, "{{#l%d}}", i);
    }
    tpl_set(p, "deep", "bottom");
    sb_puts(&t2, "{{deep}}");
    for (int i = TPL_MAX_DEPTH - 1; i >= 0; i--)
        sb_printf(&t2, "{{/l%d}}", i);
    assert_string_equal(render(*state, c, sb_str(&t2)), "bottom");
}

/* ---- errors -------------------------------------------------------------------------- */

static void test_syntax_errors(void **state)
{
    static const struct {
        const char *tpl, *want;
    } cases[] = {
        {"{{", "never closed"},
        {"abc {{title", "never closed"},
        {"{{title}", "never closed"},
        {"{{title} }", "never closed"},
        {"{{}}", "only a name"},
        {"{{ title }}", "only a name"},
        {"{{Title}}", "only a name"},
        {"{{ti tle}}", "only a name"},
        {"{{a-b}}", "only a name"},
        {"{{a.b}}", "only a name"},
        {"{{#}}", "only a name"},
        {"{{/}}", "only a name"},
        {"{{^x}}{{/x}}", "only a name"},
        {"{{!comment}}", "only a name"},
        {"{{>partial}}", "only a name"},
        {"{{x\xc3\xa9}}", "only a name"},
        {"{{abcdefghijabcdefghijabcdefghijabc}}", "at most 32"},
        {"{{{x}}}", "{{{ is not allowed"},
        {"{{{", "{{{ is not allowed"},
        {"{{#x}}", "section 'x' is never closed"},
        {"{{#x}}{{#y}}{{/y}}", "section 'x' is never closed"},
        {"{{/x}}", "closes no open section"},
        {"{{#x}}{{/y}}", "does not close"},
        {"{{#x}}{{#y}}{{/x}}{{/y}}", "does not close"},
        {"{{#x}}{{/x}}{{/x}}", "closes no open section"},
        {"ok\xff", "not valid UTF-8"},
        {"\xed\xa0\x80", "not valid UTF-8"},
    };
    struct tpl_ctx *c = tpl_ctx_new(*state);
    tpl_set(c, "title", "t");
    for (size_t i = 0; i < N(cases); i++) {
        check_fails(cases[i].tpl, cases[i].want);
        render_fails(*state, c, cases[i].tpl, cases[i].want);
    }
}

static void test_name_lengths(void **state)
{
    const char *n32 = "abcdefghijabcdefghijabcdefghij_9";
    struct tpl_ctx *c = tpl_ctx_new(*state);
    tpl_set(c, n32, "ok");
    assert_string_equal(render(*state, c, arena_printf(*state, "{{%s}}", n32)), "ok");
    tpl_set(c, "a", "1");
    assert_string_equal(render(*state, c, "{{a}}"), "1");
}

static void test_error_position(void **state)
{
    char err[128];
    assert_int_equal(tpl_check("line one\nab{{ x }}", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "line 2, column 3:"));
    struct tpl_ctx *c = tpl_ctx_new(*state);
    strbuf_t out;
    sb_init(&out, *state);
    assert_int_equal(tpl_render(c, "a\nb\n  {{missing}}", &out, err, sizeof(err)), -1);
    assert_string_equal(err, "line 3, column 3: unknown name 'missing'");
    /* A short buffer is truncated, never overrun; NULL is allowed. */
    char tiny[6];
    assert_int_equal(tpl_check("{{", tiny, sizeof(tiny)), -1);
    assert_string_equal(tiny, "line ");
    assert_int_equal(tpl_check("{{", NULL, 0), -1);
    assert_int_equal(tpl_render(c, "{{missing}}", &out, NULL, 0), -1);
    assert_int_equal(tpl_check("{{ok}}", err, sizeof(err)), 0);
    assert_string_equal(err, "");
}

static void test_depth_9_refused(void **state)
{
    strbuf_t t;
    sb_init(&t, *state);
    for (int i = 0; i <= TPL_MAX_DEPTH; i++)
        sb_printf(&t, "{{#s%d}}", i);
    for (int i = TPL_MAX_DEPTH; i >= 0; i--)
        sb_printf(&t, "{{/s%d}}", i);
    check_fails(sb_str(&t), "deeper than 8 at 's8'");
    render_fails(*state, tpl_ctx_new(*state), sb_str(&t), "deeper than 8");
}

static void test_render_errors(void **state)
{
    struct tpl_ctx *c = tpl_ctx_new(*state);
    tpl_set(c, "text", "t");
    tpl_set_flag(c, "flag", true);
    tpl_add_item(c, "list");
    render_fails(*state, c, "ok {{nope}}", "unknown name 'nope'");
    render_fails(*state, c, "{{flag}}", "'flag' is a flag");
    render_fails(*state, c, "{{list}}", "'list' is a list");
    render_fails(*state, c, "{{#text}}x{{/text}}", "section 'text' is a value");
    render_fails(*state, c, "{{#list}}{{nope}}{{/list}}", "unknown name 'nope'");
    /* Output written before the error is taken back (render_fails checks). */
    render_fails(*state, c, "lots of text {{text}} then {{nope}}", "unknown name");
    /* A name set only in an item is not visible outside its section. */
    tpl_set(tpl_add_item(c, "rows"), "cell", "c");
    render_fails(*state, c, "{{#rows}}{{cell}}{{/rows}}{{cell}}", "unknown name 'cell'");
}

static void test_setter_misuse(void **state)
{
    static const char *const bad[] = {"",    "Title", "a b",
                                      "a-b", "{{x}}", "abcdefghijabcdefghijabcdefghijabc"};
    for (size_t i = 0; i < N(bad); i++) {
        struct tpl_ctx *c = tpl_ctx_new(*state);
        switch (i % 4) {
        case 0:
            tpl_set(c, bad[i], "v");
            break;
        case 1:
            tpl_set_flag(c, bad[i], true);
            break;
        case 2:
            tpl_set_raw(c, bad[i], "v");
            break;
        default:
            assert_non_null(tpl_add_item(c, bad[i]));
            break;
        }
        render_fails(*state, c, "static", "context: ");
    }
    struct tpl_ctx *c = tpl_ctx_new(*state);
    tpl_set(c, "x", NULL);
    render_fails(*state, c, "static", "NULL value");
    c = tpl_ctx_new(*state);
    tpl_set(tpl_add_item(c, "rows"), NULL, "v"); /* misuse in an item reaches the root */
    render_fails(*state, c, "static", "context: ");
    /* NULL contexts and templates do not crash. */
    tpl_set(NULL, "x", "v");
    tpl_set_int(NULL, "x", 1);
    tpl_set_flag(NULL, "x", true);
    tpl_set_raw(NULL, "x", "v");
    assert_null(tpl_add_item(NULL, "x"));
    render_fails(*state, NULL, "static", "no context");
    render_fails(*state, tpl_ctx_new(*state), NULL, "no template");
    assert_int_equal(tpl_check(NULL, NULL, 0), -1);
}

static void test_size_limit(void **state)
{
    char *big = malloc(TPL_MAX_SIZE + 2);
    assert_non_null(big);
    memset(big, 'a', TPL_MAX_SIZE);
    big[TPL_MAX_SIZE] = '\0';
    assert_int_equal(tpl_check(big, NULL, 0), 0);
    big[TPL_MAX_SIZE] = 'a';
    big[TPL_MAX_SIZE + 1] = '\0';
    check_fails(big, "larger than 256 KiB");
    render_fails(*state, tpl_ctx_new(*state), big, "larger than 256 KiB");
    free(big);
}

static void test_output_budget(void **state)
{
    /* 300 items of a 64 KiB value: over 16 MiB. */
    struct tpl_ctx *c = tpl_ctx_new(*state);
    char *v = arena_alloc(*state, 64 * 1024 + 1);
    memset(v, 'x', 64 * 1024);
    tpl_set(c, "v", v);
    for (int i = 0; i < 300; i++)
        tpl_add_item(c, "items");
    render_fails(*state, c, "{{#items}}{{v}}{{/items}}", "larger than 16 MiB");
    /* Eight nested lists of 10 empty-bodied items: 10^8 passes, no output. */
    struct tpl_ctx *d = tpl_ctx_new(*state);
    for (int i = 0; i < 10; i++)
        tpl_add_item(d, "l");
    render_fails(*state, d,
                 "{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}{{/l}}{{/l}}{{/l}}{{/l}}"
                 "{{/l}}{{/l}}{{/l}}{{/l}}",
                 "4 million steps");
}

/* ---- the compiled-in templates ---------------------------------------------------- */

static void test_embedded_templates_check(void **state)
{
    (void)state;
    size_t n = 0;
    bool have_error = false;
    for (const char *name; (name = tpl_name(n)) != NULL; n++) {
        char err[256];
        const char *text = tpl_get(name);
        assert_non_null(text);
        if (tpl_check(text, err, sizeof(err)) != 0)
            fail_msg("templates/%s: %s", name, err);
        have_error |= strcmp(name, "error.html") == 0;
    }
    assert_true(n >= 1);
    assert_true(have_error);
    assert_null(tpl_name(n));
    assert_null(tpl_get("nope.html"));
    assert_null(tpl_get(""));
    assert_null(tpl_get(NULL));
}

static void test_error_page(void **state)
{
    struct tpl_ctx *c = tpl_ctx_new(*state);
    tpl_set(c, "title", "Not found <script>");
    tpl_set(c, "message", "No container \"x\" here <img src=x onerror=alert(1)>");
    tpl_set(c, "code", "NOT_FOUND");
    tpl_set_int(c, "status", 404);
    const char *page = render(*state, c, tpl_get("error.html"));
    assert_non_null(strstr(page, "<h4 class=\"alert-heading\">Not found &lt;script&gt;</h4>"));
    assert_non_null(strstr(page, "No container &quot;x&quot; here &lt;img src&#61;x "
                                 "onerror&#61;alert(1)&gt;"));
    assert_non_null(strstr(page, "Code NOT_FOUND · HTTP 404"));
    assert_null(strstr(page, "<script"));
    assert_null(strstr(page, "<img"));
    assert_null(strstr(page, "{{"));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, arena_setup, arena_teardown)
    const struct CMUnitTest tests[] = {
        T(test_escape_table),
        T(test_escape_invalid_utf8),
        T(test_escape_long_unicode),
        T(test_set_int),
        T(test_template_text_is_literal),
        T(test_set_replaces),
        T(test_value_copied),
        T(test_raw_only_via_set_raw),
        T(test_raw_fragment_composition),
        T(test_list_sizes),
        T(test_list_300_reference),
        T(test_flags),
        T(test_nested_sections),
        T(test_parent_fallback),
        T(test_enclosing_item_visible),
        T(test_depth_8_ok),
        T(test_syntax_errors),
        T(test_name_lengths),
        T(test_error_position),
        T(test_depth_9_refused),
        T(test_render_errors),
        T(test_setter_misuse),
        T(test_size_limit),
        T(test_output_budget),
        T(test_embedded_templates_check),
        T(test_error_page),
    };
#undef T
    return cmocka_run_group_tests_name("template", tests, NULL, NULL);
}
