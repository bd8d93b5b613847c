/* arena.h: the per-request arena and a growable string buffer on it.
 *
 * Everything a request allocates comes from its arena; the worker resets the
 * arena after each request, so a handler never frees. Not for long-lived
 * objects (config, connections): those use malloc once per process. */
#ifndef CC_ARENA_H
#define CC_ARENA_H

#include <stdarg.h>
#include <stddef.h>

typedef struct arena arena_t;

arena_t *arena_new(size_t block_size);
void arena_free(arena_t *a);
/* Returns the arena to empty, keeping its first block for the next request;
 * everything handed out is wiped first (secrets do not outlive a request). */
void arena_reset(arena_t *a);
/* Zeroed memory, aligned for any type; aborts on exhaustion (nothing to recover). */
void *arena_alloc(arena_t *a, size_t n);
char *arena_strdup(arena_t *a, const char *s);
char *arena_strndup(arena_t *a, const char *s, size_t n);
char *arena_printf(arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *arena_vprintf(arena_t *a, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Bytes handed out since the last reset (for tests and the leak check). */
size_t arena_used(const arena_t *a);

/* A string buffer that grows inside an arena. */
typedef struct strbuf {
    arena_t *arena;
    char *data;
    size_t len;
    size_t cap;
} strbuf_t;

void sb_init(strbuf_t *sb, arena_t *a);
void sb_putn(strbuf_t *sb, const char *s, size_t n);
void sb_puts(strbuf_t *sb, const char *s);
void sb_putc(strbuf_t *sb, char c);
void sb_printf(strbuf_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Always NUL-terminated; "" for an empty buffer. */
const char *sb_str(strbuf_t *sb);

#endif
