/* placement.c: the placement constraint parser (see placement.h). It must
 * stay pure (no I/O, no clock) and must refuse anything outside its small
 * grammar: the result goes verbatim into the engine's service spec. */
#include "placement.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define PLACEMENT_MAX_WORD 100

static const char *const placement_keys[] = {
    "node.role", "node.hostname", "node.id", "node.platform.os", "node.platform.arch",
};
static const char *const placement_prefixes[] = {"node.labels.", "engine.labels."};

static bool placement_word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/* [A-Za-z0-9._-]{1,100} over s[0..n). */
static bool placement_word(const char *s, size_t n)
{
    if (n == 0 || n > PLACEMENT_MAX_WORD)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!placement_word_char(s[i]))
            return false;
    return true;
}

static bool placement_key(const char *k, size_t n)
{
    for (size_t i = 0; i < sizeof(placement_keys) / sizeof(placement_keys[0]); i++)
        if (strlen(placement_keys[i]) == n && memcmp(placement_keys[i], k, n) == 0)
            return true;
    for (size_t i = 0; i < sizeof(placement_prefixes) / sizeof(placement_prefixes[0]); i++) {
        size_t p = strlen(placement_prefixes[i]);
        if (n > p && memcmp(placement_prefixes[i], k, p) == 0 && placement_word(k + p, n - p))
            return true;
    }
    return false;
}

static int placement_fail(char *why, size_t whylen, const char *reason)
{
    if (why != NULL && whylen > 0)
        snprintf(why, whylen, "%s", reason);
    return -1;
}

static bool placement_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* One item s[0..n), blanks around it allowed: KEY (==|!=) VALUE. */
static int placement_item(arena_t *a, const char *s, size_t n, const char **out, char *why,
                          size_t whylen)
{
    while (n > 0 && placement_blank(*s))
        s++, n--;
    while (n > 0 && placement_blank(s[n - 1]))
        n--;
    const char *op = NULL;
    for (size_t i = 0; i + 1 < n; i++)
        if ((s[i] == '=' || s[i] == '!') && s[i + 1] == '=') {
            op = s + i;
            break;
        }
    if (op == NULL)
        return placement_fail(why, whylen, "each constraint is KEY==VALUE or KEY!=VALUE");
    size_t klen = (size_t)(op - s), vlen = n - klen - 2;
    const char *v = op + 2;
    while (klen > 0 && placement_blank(s[klen - 1]))
        klen--;
    while (vlen > 0 && placement_blank(*v))
        v++, vlen--;
    if (!placement_key(s, klen))
        return placement_fail(why, whylen,
                              "the key must be node.labels.NAME, engine.labels.NAME, node.role, "
                              "node.hostname, node.id or node.platform.os/arch");
    if (!placement_word(v, vlen))
        return placement_fail(
            why, whylen, "the value must be 1 to 100 characters of A-Z, a-z, 0-9, '.', '_', '-'");
    *out = arena_printf(a, "%.*s%c=%.*s", (int)klen, s, op[0], (int)vlen, v);
    return 0;
}

int placement_parse(arena_t *a, const char *text, struct placement *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof(*out));
    if (text == NULL)
        return 0;
    size_t len = strlen(text);
    if (len > PLACEMENT_MAX_TEXT)
        return placement_fail(why, whylen, "longer than 255 characters");
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma != NULL ? comma : end;
        const char *q = p;
        while (q < stop && placement_blank(*q))
            q++;
        if (q == stop) {
            if (comma == NULL && out->n > 0)
                return placement_fail(why, whylen, "a trailing comma");
            if (comma != NULL || out->n > 0)
                return placement_fail(why, whylen, "an empty constraint between commas");
            return 0; /* all blank: no constraint */
        }
        if (out->n == PLACEMENT_MAX)
            return placement_fail(why, whylen, "more than 8 constraints");
        if (placement_item(a, p, (size_t)(stop - p), &out->items[out->n], why, whylen) < 0)
            return -1;
        out->n++;
        p = comma != NULL ? comma + 1 : end;
        if (comma != NULL && p == end)
            return placement_fail(why, whylen, "a trailing comma");
    }
    return 0;
}
