/* arena.c: bump allocator in linked blocks; see arena.h. No I/O. */
#include "arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct block {
    struct block *next;
    size_t size;
    size_t used;
    max_align_t data[]; /* aligned storage follows */
};

struct arena {
    struct block *head;
    size_t block_size;
    size_t total;
};

static struct block *block_new(size_t size)
{
    struct block *b = malloc(sizeof(*b) + size);
    if (b == NULL) {
        fputs("arena: out of memory\n", stderr);
        abort();
    }
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

arena_t *arena_new(size_t block_size)
{
    arena_t *a = malloc(sizeof(*a));
    if (a == NULL) {
        fputs("arena: out of memory\n", stderr);
        abort();
    }
    a->block_size = block_size < 1024 ? 1024 : block_size;
    a->head = block_new(a->block_size);
    a->total = 0;
    return a;
}

void arena_free(arena_t *a)
{
    if (a == NULL)
        return;
    struct block *b = a->head;
    while (b != NULL) {
        struct block *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}

void arena_reset(arena_t *a)
{
    /* Keep the oldest block (the last in the list): it is the usual size.
     * Every byte handed out is wiped first: a request's secrets (the flag
     * in an engine request, a revealed flag) never outlive it in memory. */
    struct block *b = a->head;
    while (b->next != NULL) {
        struct block *next = b->next;
        explicit_bzero(b->data, b->used);
        free(b);
        b = next;
    }
    explicit_bzero(b->data, b->used);
    b->used = 0;
    a->head = b;
    a->total = 0;
}

void *arena_alloc(arena_t *a, size_t n)
{
    const size_t align = sizeof(max_align_t);
    size_t need = (n + align - 1) / align * align;
    if (need < n || need > SIZE_MAX - sizeof(struct block)) {
        fputs("arena: allocation size overflow\n", stderr);
        abort();
    }
    struct block *b = a->head;
    if (b->size - b->used < need) {
        size_t size = need > a->block_size ? need : a->block_size;
        b = block_new(size);
        b->next = a->head;
        a->head = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += need;
    a->total += need;
    memset(p, 0, n);
    return p;
}

char *arena_strndup(arena_t *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *arena_strdup(arena_t *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

char *arena_vprintf(arena_t *a, const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0)
        return arena_strdup(a, "");
    char *p = arena_alloc(a, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    return p;
}

char *arena_printf(arena_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = arena_vprintf(a, fmt, ap);
    va_end(ap);
    return p;
}

size_t arena_used(const arena_t *a)
{
    return a->total;
}

void sb_init(strbuf_t *sb, arena_t *a)
{
    sb->arena = a;
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
}

static void sb_grow(strbuf_t *sb, size_t extra)
{
    if (sb->len + extra + 1 <= sb->cap)
        return;
    size_t cap = sb->cap ? sb->cap * 2 : 256;
    while (cap < sb->len + extra + 1)
        cap *= 2;
    char *p = arena_alloc(sb->arena, cap);
    if (sb->len)
        memcpy(p, sb->data, sb->len);
    sb->data = p;
    sb->cap = cap;
}

void sb_putn(strbuf_t *sb, const char *s, size_t n)
{
    sb_grow(sb, n);
    memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
}

void sb_puts(strbuf_t *sb, const char *s)
{
    sb_putn(sb, s, strlen(s));
}

void sb_putc(strbuf_t *sb, char c)
{
    sb_putn(sb, &c, 1);
}

void sb_printf(strbuf_t *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = arena_vprintf(sb->arena, fmt, ap);
    va_end(ap);
    sb_puts(sb, p);
}

const char *sb_str(strbuf_t *sb)
{
    return sb->data ? sb->data : "";
}
