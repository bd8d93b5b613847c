/* test_placement.c: the swarm placement grammar (placement.c), as a table of
 * cases: what is accepted and how it is normalised, what is refused and why. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "placement.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_accepted_table(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t n;
        const char *first, *last;
    } cases[] = {
        {NULL, 0, NULL, NULL},
        {"", 0, NULL, NULL},
        {"   ", 0, NULL, NULL},
        {"node.labels.zone==a", 1, "node.labels.zone==a", "node.labels.zone==a"},
        {" node.labels.zone == a ", 1, "node.labels.zone==a", "node.labels.zone==a"},
        {"node.role!=manager", 1, "node.role!=manager", "node.role!=manager"},
        {"node.labels.zone==a,node.hostname!=n3", 2, "node.labels.zone==a", "node.hostname!=n3"},
        {"engine.labels.gpu==yes, node.platform.os==linux, node.platform.arch==x86_64", 3,
         "engine.labels.gpu==yes", "node.platform.arch==x86_64"},
        {"node.id==abc123", 1, "node.id==abc123", "node.id==abc123"},
        {"node.labels.ctfd-containers.pool==web_1", 1, "node.labels.ctfd-containers.pool==web_1",
         "node.labels.ctfd-containers.pool==web_1"},
        {"a==1", 0, NULL, NULL}, /* refused below, listed here to keep the tables honest */
    };
    for (size_t i = 0; i + 1 < N(cases); i++) {
        arena_t *a = arena_new(1024);
        struct placement p;
        char why[160] = "";
        int rc = placement_parse(a, cases[i].in, &p, why, sizeof(why));
        if (rc != 0 || p.n != cases[i].n)
            fail_msg("case %zu (%s): rc %d n %zu (%s)", i, cases[i].in ? cases[i].in : "NULL", rc,
                     p.n, why);
        if (p.n > 0 && (strcmp(p.items[0], cases[i].first) != 0 ||
                        strcmp(p.items[p.n - 1], cases[i].last) != 0))
            fail_msg("case %zu: got %s .. %s", i, p.items[0], p.items[p.n - 1]);
        arena_free(a);
    }
}

static void test_refused_table(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *why; /* a word the reason must contain */
    } cases[] = {
        {"a==1", "key"},
        {"node.labels.==a", "key"},
        {"node.labels.zone=a", "KEY==VALUE"},
        {"node.labels.zone==", "value"},
        {"node.labels.zone==a b", "value"},
        {"node.labels.zone==a; rm -rf /", "value"},
        {"node.labels.zone==a,", "trailing"},
        {",node.labels.zone==a", "empty"},
        {"node.labels.zone==a,,node.role==worker", "empty"},
        {"node.labels.z\xc3\xa9==a", "key"},
        {"node.labels.zone==\"a\"", "value"},
        {"node.role==worker,node.role==worker,node.role==worker,node.role==worker,"
         "node.role==worker,node.role==worker,node.role==worker,node.role==worker,"
         "node.role==worker",
         "more than 8"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        arena_t *a = arena_new(1024);
        struct placement p;
        char why[160] = "";
        int rc = placement_parse(a, cases[i].in, &p, why, sizeof(why));
        if (rc != -1 || strstr(why, cases[i].why) == NULL)
            fail_msg("case %zu (%s): rc %d why '%s'", i, cases[i].in, rc, why);
        arena_free(a);
    }
    char longer[300];
    memset(longer, 'a', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    arena_t *a = arena_new(1024);
    struct placement p;
    char why[160] = "";
    assert_int_equal(placement_parse(a, longer, &p, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "255"));
    arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted_table),
        cmocka_unit_test(test_refused_table),
    };
    return cmocka_run_group_tests_name("placement", tests, NULL, NULL);
}
