/* test_route.c: route names (src/route.c).
 *
 * Generated names: length, alphabet, no repeats over many draws. The host
 * parser: a table of accepted and refused Host/SNI names (case, ports, extra
 * labels, suffix tricks, sizes, NUL-free bounds). The domain check and the
 * capability allow-list. No I/O. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "route.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define D "containers.example.org"

static void test_generate(void **state)
{
    (void)state;
    static char seen[2000][ROUTE_LEN + 1];
    for (size_t i = 0; i < N(seen); i++) {
        assert_int_equal(route_generate(seen[i], sizeof(seen[i])), 0);
        assert_int_equal(strlen(seen[i]), ROUTE_LEN);
        assert_int_equal(strspn(seen[i], "abcdefghijklmnopqrstuvwxyz234567"), ROUTE_LEN);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(seen[i], seen[j]);
    }
    char small[ROUTE_LEN];
    assert_int_equal(route_generate(small, sizeof(small)), -1);
}

static void test_parse_host(void **state)
{
    (void)state;
    static const struct {
        const char *host;
        int rc;
        const char *name;
        int port;
    } cases[] = {
        {"abcdefghijklmnop2345." D, 0, "abcdefghijklmnop2345", 0},
        {"abcdefghijklmnop2345-1337." D, 0, "abcdefghijklmnop2345", 1337},
        {"abcdefghijklmnop2345." D ":8443", 0, "abcdefghijklmnop2345", 0},
        {"abcdefghijklmnop2345." D ".", 0, "abcdefghijklmnop2345", 0},
        {"abcdefghijklmnop2345.CONTAINERS.example.org", 0, "abcdefghijklmnop2345", 0},
        {"abcdefghijklmnop2345-65535." D, 0, "abcdefghijklmnop2345", 65535},
        {"0123456789abcdef." D, 0, "0123456789abcdef", 0},
        {"Abcdefghijklmnop2345." D, -1, NULL, 0},              /* the name is lowercase */
        {"abcdefghijklmno." D, -1, NULL, 0},                   /* 15: too short */
        {"abcdefghijklmnopqrstuvwxyz0123456." D, -1, NULL, 0}, /* 33: too long */
        {"abcdefghijklmnop2345-0." D, -1, NULL, 0},
        {"abcdefghijklmnop2345-01." D, -1, NULL, 0},
        {"abcdefghijklmnop2345-65536." D, -1, NULL, 0},
        {"abcdefghijklmnop2345-." D, -1, NULL, 0},
        {"abcdefghijklmnop2345-1-2." D, -1, NULL, 0},
        {"abcdefghijklmnop2345.x." D, -1, NULL, 0}, /* two labels */
        {"x.abcdefghijklmnop2345." D, -1, NULL, 0},
        {"abcdefghijklmnop2345." D ".evil.org", -1, NULL, 0},
        {"abcdefghijklmnop2345.x" D, -1, NULL, 0}, /* suffix without the dot */
        {"abcdefghijklmnop2345" D, -1, NULL, 0},
        {D, -1, NULL, 0},
        {"." D, -1, NULL, 0},
        {"abcdefghijklmnop2345." D ":", -1, NULL, 0},
        {"abcdefghijklmnop2345." D ":0", -1, NULL, 0},
        {"abcdefghijklmnop2345." D ":x", -1, NULL, 0},
        {"abcdefghijklmnop_345." D, -1, NULL, 0},
        {"abcdefghijklmnop%345." D, -1, NULL, 0},
        {"abcdefghijklmnop2345.." D, -1, NULL, 0},
        {"", -1, NULL, 0},
    };
    for (size_t i = 0; i < N(cases); i++) {
        char name[ROUTE_NAME_MAX + 1] = "";
        int port = -1;
        int rc = route_parse_host(cases[i].host, D, name, sizeof(name), &port);
        if (rc != cases[i].rc)
            fail_msg("%s: got %d", cases[i].host, rc);
        if (rc == 0) {
            assert_string_equal(name, cases[i].name);
            assert_int_equal(port, cases[i].port);
        }
    }
    char name[ROUTE_NAME_MAX + 1];
    int port;
    assert_int_equal(route_parse_host(NULL, D, name, sizeof(name), &port), -1);
    assert_int_equal(route_parse_host("abcdefghijklmnop2345." D, "", name, sizeof(name), &port),
                     -1);
    char small[10];
    assert_int_equal(route_parse_host("abcdefghijklmnop2345." D, D, small, sizeof(small), &port),
                     -1);
    char longhost[400];
    memset(longhost, 'a', sizeof(longhost) - 1);
    longhost[sizeof(longhost) - 1] = '\0';
    assert_int_equal(route_parse_host(longhost, D, name, sizeof(name), &port), -1);
}

static void test_domain(void **state)
{
    (void)state;
    assert_true(route_domain_valid(D));
    assert_true(route_domain_valid("localhost"));
    assert_true(route_domain_valid("a-b.c9"));
    assert_false(route_domain_valid(""));
    assert_false(route_domain_valid("Containers.example.org"));
    assert_false(route_domain_valid("a..b"));
    assert_false(route_domain_valid(".a"));
    assert_false(route_domain_valid("a."));
    assert_false(route_domain_valid("-a.b"));
    assert_false(route_domain_valid("a-.b"));
    assert_false(route_domain_valid("a_b.c"));
    assert_false(route_domain_valid("*.example.org"));
}

static void test_caps(void **state)
{
    (void)state;
    char bad[32];
    assert_true(route_caps_allowed(NULL, bad, sizeof(bad)));
    assert_true(route_caps_allowed("", bad, sizeof(bad)));
    assert_true(route_caps_allowed("CHOWN,SETUID, SETGID ,NET_BIND_SERVICE", bad, sizeof(bad)));
    assert_true(route_caps_allowed("cap_net_raw,kill", bad, sizeof(bad)));
    assert_false(route_caps_allowed("CHOWN,SYS_ADMIN", bad, sizeof(bad)));
    assert_string_equal(bad, "SYS_ADMIN");
    assert_false(route_caps_allowed("ALL", bad, sizeof(bad)));
    assert_false(route_caps_allowed("NET_ADMIN", bad, sizeof(bad)));
    assert_false(route_caps_allowed("SYS_PTRACE", bad, sizeof(bad)));
    assert_false(route_caps_allowed("privileged", bad, sizeof(bad)));
    assert_false(route_caps_allowed("CAP_", bad, sizeof(bad)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate),
        cmocka_unit_test(test_parse_host),
        cmocka_unit_test(test_domain),
        cmocka_unit_test(test_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
