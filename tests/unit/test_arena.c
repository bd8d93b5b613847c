/* test_arena.c: the per-request arena and the string buffer on it.
 *
 * Alignment, zeroing, allocations larger than a block, reset, strbuf growth
 * and printf, strndup. The overflow guard is checked in a forked child (it
 * aborts by design). No I/O beyond that fork; nothing sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arena.h"

static int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return 0;
    return 1;
}

static int aligned(const void *p)
{
    return ((uintptr_t)p % _Alignof(max_align_t)) == 0;
}

/* ---- alloc ------------------------------------------------------------------ */

static void test_alloc_aligned_for_any_type(void **state)
{
    static const size_t sizes[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63, 100, 1000, 1023};
    arena_t *a = arena_new(1024);
    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            void *p = arena_alloc(a, sizes[i]);
            assert_non_null(p);
            assert_true(aligned(p));
            /* Usable as the most demanding scalar types. */
            if (sizes[i] >= sizeof(long double))
                *(long double *)p = 1.5L;
            if (sizes[i] >= sizeof(int64_t))
                *(int64_t *)p = -1;
        }
    }
    arena_free(a);
}

static void test_alloc_zeroed_even_after_reuse(void **state)
{
    arena_t *a = arena_new(4096);
    for (int round = 0; round < 3; round++) {
        unsigned char *p = arena_alloc(a, 3000);
        assert_true(all_zero(p, 3000));
        memset(p, 0xA5, 3000); /* dirty the block for the next round */
        unsigned char *q = arena_alloc(a, 1000);
        assert_true(all_zero(q, 1000));
        memset(q, 0x5A, 1000);
        arena_reset(a);
    }
    arena_free(a);
}

static void test_alloc_distinct_and_nonoverlapping(void **state)
{
    arena_t *a = arena_new(1024);
    unsigned char *ptrs[200];
    for (int i = 0; i < 200; i++) {
        ptrs[i] = arena_alloc(a, 40);
        memset(ptrs[i], i, 40);
    }
    for (int i = 0; i < 200; i++)
        for (int j = 0; j < 40; j++)
            assert_int_equal(ptrs[i][j], (unsigned char)i);
    arena_free(a);
}

static void test_alloc_zero_bytes(void **state)
{
    arena_t *a = arena_new(1024);
    void *p = arena_alloc(a, 0);
    assert_non_null(p);
    assert_true(aligned(p));
    assert_int_equal(arena_used(a), 0);
    arena_free(a);
}

/* Sizes over the block size get a block of their own; small ones go on. */
static void test_alloc_larger_than_block(void **state)
{
    static const size_t sizes[] = {1025, 4096, 65536, 1u << 20, 3u << 20};
    arena_t *a = arena_new(1024);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char *small1 = arena_alloc(a, 10);
        unsigned char *big = arena_alloc(a, sizes[i]);
        char *small2 = arena_alloc(a, 10);
        assert_true(aligned(big));
        assert_true(all_zero(big, sizes[i]));
        memset(big, 0xFF, sizes[i]); /* ASan: the whole range is ours */
        memcpy(small1, "before", 7);
        memcpy(small2, "after", 6);
        assert_string_equal(small1, "before");
        assert_string_equal(small2, "after");
        assert_int_equal(big[0], 0xFF);
        assert_int_equal(big[sizes[i] - 1], 0xFF);
    }
    arena_free(a);
}

static void test_block_size_floor(void **state)
{
    /* A tiny block size is raised to 1 KiB; allocations still work. */
    arena_t *a = arena_new(1);
    char *p = arena_alloc(a, 1000);
    memset(p, 'x', 1000);
    char *q = arena_alloc(a, 1000);
    memset(q, 'y', 1000);
    assert_int_equal(p[999], 'x');
    arena_free(a);
}

static void test_used_counts_and_reset(void **state)
{
    arena_t *a = arena_new(2048);
    assert_int_equal(arena_used(a), 0);
    arena_alloc(a, 10);
    size_t u1 = arena_used(a);
    assert_true(u1 >= 10);
    arena_alloc(a, 100000);
    assert_true(arena_used(a) >= u1 + 100000);
    arena_reset(a);
    assert_int_equal(arena_used(a), 0);
    arena_free(a);
}

/* Many request cycles on one arena: reset keeps it usable and bounded. */
static void test_reset_keeps_working(void **state)
{
    arena_t *a = arena_new(1024);
    for (int req = 0; req < 500; req++) {
        size_t n = (size_t)(req % 7) * 700 + 1;
        char *s = arena_alloc(a, n);
        assert_true(all_zero(s, n));
        memset(s, 'r', n);
        char *t = arena_printf(a, "request %d", req);
        char want[32];
        snprintf(want, sizeof(want), "request %d", req);
        assert_string_equal(t, want);
        arena_reset(a);
        assert_int_equal(arena_used(a), 0);
    }
    arena_free(a);
}

static void test_free_null_is_noop(void **state)
{
    arena_free(NULL);
}

/* A size whose rounding overflows must stop the process (arena.h: aborts
 * on exhaustion), in a child so the test survives. */
static int dies_by_abort(size_t n)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Silence the child's diagnostics; they are expected. */
        if (freopen("/dev/null", "w", stderr) == NULL)
            _exit(3);
        arena_t *a = arena_new(1024);
        arena_alloc(a, n);
        _exit(0); /* survived: wrong */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static void test_alloc_overflow_aborts(void **state)
{
    assert_true(dies_by_abort(SIZE_MAX));
    assert_true(dies_by_abort(SIZE_MAX - 1));
    assert_true(dies_by_abort(SIZE_MAX - 30));
}

/* A size that rounds without overflow but overflows with the block header
 * (sizeof(struct block) + need would wrap to a tiny malloc) must abort too. */
static void test_alloc_header_overflow_aborts(void **state)
{
    assert_true(dies_by_abort(SIZE_MAX - 40));
    assert_true(dies_by_abort(SIZE_MAX - 63));
}

/* ---- strdup / strndup / printf ----------------------------------------------- */

static void test_strndup_table(void **state)
{
    static const struct {
        const char *in;
        size_t n;
        const char *want;
    } cases[] = {
        {"hello", 5, "hello"}, {"hello", 3, "hel"}, {"hello", 0, ""},
        {"", 0, ""},           {"a\0b", 3, "a"},    {"tab\there", 8, "tab\there"},
    };
    arena_t *a = arena_new(1024);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *s = arena_strndup(a, cases[i].in, cases[i].n);
        assert_string_equal(s, cases[i].want);
        assert_int_equal(s[cases[i].n], '\0'); /* terminated right after n bytes */
        assert_ptr_not_equal(s, cases[i].in);
    }
    arena_free(a);
}

static void test_strndup_copies_exactly_n(void **state)
{
    /* The source need not be terminated within n: only n bytes are read. */
    char buf[4] = {'a', 'b', 'c', 'd'};
    arena_t *a = arena_new(1024);
    char *s = arena_strndup(a, buf, sizeof(buf));
    assert_string_equal(s, "abcd");
    arena_free(a);
}

static void test_strdup_and_printf(void **state)
{
    arena_t *a = arena_new(1024);
    char *s = arena_strdup(a, "copy me");
    assert_string_equal(s, "copy me");
    assert_string_equal(arena_strdup(a, ""), "");
    assert_string_equal(arena_printf(a, "%s-%d-%05.1f", "x", 42, 3.14159), "x-42-003.1");
    assert_string_equal(arena_printf(a, "%s", ""), "");
    /* Longer than a block. */
    char *long_s = arena_printf(a, "%3000d|", 7);
    assert_int_equal(strlen(long_s), 3001);
    assert_int_equal(long_s[2999], '7');
    assert_int_equal(long_s[3000], '|');
    arena_free(a);
}

/* ---- strbuf ---------------------------------------------------------------- */

static void test_sb_empty(void **state)
{
    arena_t *a = arena_new(1024);
    strbuf_t sb;
    sb_init(&sb, a);
    assert_string_equal(sb_str(&sb), "");
    assert_int_equal(sb.len, 0);
    sb_puts(&sb, "");
    assert_string_equal(sb_str(&sb), "");
    assert_int_equal(sb.len, 0);
    arena_free(a);
}

static void test_sb_growth_keeps_content(void **state)
{
    arena_t *a = arena_new(1024);
    strbuf_t sb;
    sb_init(&sb, a);
    /* Cross the first capacity (256) and several doublings and block sizes. */
    for (int i = 0; i < 5000; i++)
        sb_putc(&sb, (char)('a' + i % 26));
    assert_int_equal(sb.len, 5000);
    assert_true(sb.cap > sb.len);
    const char *s = sb_str(&sb);
    assert_int_equal(strlen(s), 5000);
    for (int i = 0; i < 5000; i++)
        assert_int_equal(s[i], 'a' + i % 26);
    /* One put bigger than the current capacity at once. */
    static char chunk[20000];
    memset(chunk, 'Z', sizeof(chunk));
    sb_putn(&sb, chunk, sizeof(chunk));
    assert_int_equal(sb.len, 25000);
    s = sb_str(&sb);
    assert_int_equal(s[4999], 'a' + 4999 % 26);
    assert_int_equal(s[5000], 'Z');
    assert_int_equal(s[24999], 'Z');
    assert_int_equal(s[25000], '\0');
    arena_free(a);
}

static void test_sb_puts_putn_printf(void **state)
{
    arena_t *a = arena_new(1024);
    strbuf_t sb;
    sb_init(&sb, a);
    sb_puts(&sb, "id=");
    sb_printf(&sb, "%lld", (long long)INT64_MAX);
    sb_putc(&sb, ',');
    sb_putn(&sb, "name=xyz", 6);
    sb_printf(&sb, "%s", "");
    sb_printf(&sb, ";%c%c", 'o', 'k');
    assert_string_equal(sb_str(&sb), "id=9223372036854775807,name=x;ok");
    assert_int_equal(sb.len, strlen(sb_str(&sb)));
    /* printf output larger than a block */
    strbuf_t big;
    sb_init(&big, a);
    sb_printf(&big, "%*s", 5000, "end");
    assert_int_equal(big.len, 5000);
    assert_string_equal(sb_str(&big) + 4997, "end");
    arena_free(a);
}

static void test_sb_embedded_nul_counts_bytes(void **state)
{
    arena_t *a = arena_new(1024);
    strbuf_t sb;
    sb_init(&sb, a);
    sb_putn(&sb, "a\0b", 3);
    assert_int_equal(sb.len, 3);
    assert_memory_equal(sb.data, "a\0b", 4);
    arena_free(a);
}

static void test_sb_survives_other_allocations(void **state)
{
    /* Interleaved arena use does not corrupt a growing buffer. */
    arena_t *a = arena_new(1024);
    strbuf_t sb;
    sb_init(&sb, a);
    for (int i = 0; i < 300; i++) {
        sb_printf(&sb, "%03d,", i);
        char *noise = arena_alloc(a, 50);
        memset(noise, 'n', 50);
    }
    const char *s = sb_str(&sb);
    assert_int_equal(strlen(s), 1200);
    assert_memory_equal(s, "000,001,002,", 12);
    assert_string_equal(s + 1196, "299,");
    arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_aligned_for_any_type),
        cmocka_unit_test(test_alloc_zeroed_even_after_reuse),
        cmocka_unit_test(test_alloc_distinct_and_nonoverlapping),
        cmocka_unit_test(test_alloc_zero_bytes),
        cmocka_unit_test(test_alloc_larger_than_block),
        cmocka_unit_test(test_block_size_floor),
        cmocka_unit_test(test_used_counts_and_reset),
        cmocka_unit_test(test_reset_keeps_working),
        cmocka_unit_test(test_free_null_is_noop),
        cmocka_unit_test(test_alloc_overflow_aborts),
        cmocka_unit_test(test_alloc_header_overflow_aborts),
        cmocka_unit_test(test_strndup_table),
        cmocka_unit_test(test_strndup_copies_exactly_n),
        cmocka_unit_test(test_strdup_and_printf),
        cmocka_unit_test(test_sb_empty),
        cmocka_unit_test(test_sb_growth_keeps_content),
        cmocka_unit_test(test_sb_puts_putn_printf),
        cmocka_unit_test(test_sb_embedded_nul_counts_bytes),
        cmocka_unit_test(test_sb_survives_other_allocations),
    };
    return cmocka_run_group_tests_name("arena", tests, NULL, NULL);
}
