/* template.h: a tiny, logic-less HTML template engine on the request arena.
 *
 * Syntax (the whole of it):
 *   {{name}}              the value of name, ALWAYS HTML-escaped (& < > " ' ` =
 *                         become entities, invalid UTF-8 becomes U+FFFD)
 *   {{#name}}...{{/name}} a section: once per item of a list, once for a true
 *                         flag, not at all for a false flag or an absent name
 * Names are [a-z0-9_]{1,32}; nothing else may stand between {{ and }} (no
 * spaces, no {{{raw}}}, no comments). Sections nest at most TPL_MAX_DEPTH deep;
 * a template is at most TPL_MAX_SIZE bytes of valid UTF-8. A {{name}} that the
 * context lacks is an error at render time, never an empty string.
 *
 * Unescaped output exists only as an explicit C call, tpl_set_raw(), so no
 * template can ask for it. Everything is allocated from the arena given to
 * tpl_ctx_new(); nothing outlives it. Must not: do I/O, or emit a value
 * without escaping it unless the handler called tpl_set_raw(). */
#ifndef CC_TEMPLATE_H
#define CC_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"

#define TPL_MAX_NAME 32
#define TPL_MAX_DEPTH 8
#define TPL_MAX_SIZE (256u * 1024u)
/* Caps on one render: nested lists multiply, so a page past these is a bug,
 * not a page. A step is one tag or one pass over a section's body. */
#define TPL_MAX_OUTPUT (16u * 1024u * 1024u)
#define TPL_MAX_STEPS (4u * 1024u * 1024u)

struct tpl_ctx;

/* A fresh, empty context on the arena. */
struct tpl_ctx *tpl_ctx_new(arena_t *a);

/* The setters copy name and value into the arena; setting a name again in the
 * same context replaces it. A bad name (not [a-z0-9_]{1,32}) or a NULL value is
 * a programming error: it is remembered and tpl_render() then fails with it. */
void tpl_set(struct tpl_ctx *c, const char *name, const char *value);
void tpl_set_int(struct tpl_ctx *c, const char *name, int64_t value);
void tpl_set_flag(struct tpl_ctx *c, const char *name, bool on);

/* !!! DANGER: html is emitted WITHOUT escaping. !!!
 * Only for HTML this engine rendered itself (a row list rendered by
 * tpl_render() into a strbuf, then handed to the page). NEVER pass anything
 * that contains external data: a name, a query value, a database field, an
 * engine reply. Those go through tpl_set(), which escapes. (Invalid UTF-8 is
 * still replaced, so the output stays valid UTF-8.) */
void tpl_set_raw(struct tpl_ctx *c, const char *name, const char *html);

/* Appends one item to the list list_name of c and returns its context. Names
 * the item lacks are looked up in c (and its parents), then in the enclosing
 * sections' contexts. Items render in the order they were added. */
struct tpl_ctx *tpl_add_item(struct tpl_ctx *c, const char *list_name);

/* Renders template_text with c, appending to out. Returns 0, or -1 with err
 * set to "line L, column C: reason" and out left as it was on entry. The
 * syntax is checked in full first, so a bad tag in a section that is not
 * rendered is still an error. err may be NULL (errlen is then ignored). */
int tpl_render(const struct tpl_ctx *c, const char *template_text, strbuf_t *out, char *err,
               size_t errlen);

/* Checks the syntax only (tags, names, balanced sections, depth, size, UTF-8),
 * without a context: for the unit test of every shipped template. */
int tpl_check(const char *template_text, char *err, size_t errlen);

/* The template compiled in from templates/<name> ("error.html"), or NULL. */
const char *tpl_get(const char *name);
/* The name of the i-th compiled-in template, or NULL past the end. */
const char *tpl_name(size_t i);

#endif
