/* test_config.c: the option table, the file, the environment, the checks.
 *
 * Defaults (the DESIGN keys among them), "key = value" parsing, environment
 * over file, refusals that name the key (or file:line), the password file and
 * masking in config_print. Files live in a fresh mkdtemp directory that each
 * test removes; the environment is an envp array, never the real one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

/* ---- fixture: a temporary directory and the files written in it ----------- */

#define MAX_FILES 8

struct tmp {
    char dir[64];
    char paths[MAX_FILES][128];
    int n;
};

static int tmp_setup(void **state)
{
    struct tmp *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -1;
    const char *base = getenv("TMPDIR");
    snprintf(t->dir, sizeof(t->dir), "%s/cc-config-XXXXXX", base && *base ? base : "/tmp");
    if (strlen(t->dir) >= sizeof(t->dir) - 1 || mkdtemp(t->dir) == NULL) {
        snprintf(t->dir, sizeof(t->dir), "/tmp/cc-config-XXXXXX");
        if (mkdtemp(t->dir) == NULL) {
            free(t);
            return -1;
        }
    }
    *state = t;
    return 0;
}

static int tmp_teardown(void **state)
{
    struct tmp *t = *state;
    for (int i = 0; i < t->n; i++)
        unlink(t->paths[i]);
    int r = rmdir(t->dir);
    free(t);
    return r;
}

/* Write content to dir/name; returns the path (owned by the fixture). */
static const char *tmp_file(struct tmp *t, const char *name, const char *content)
{
    assert_true(t->n < MAX_FILES);
    char *path = t->paths[t->n], dir[sizeof(t->dir)];
    memcpy(dir, t->dir, sizeof(dir)); /* a separate source keeps -Wrestrict quiet */
    assert_true((size_t)snprintf(path, sizeof(t->paths[0]), "%s/%s", dir, name) <
                sizeof(t->paths[0]));
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, strlen(content), f), strlen(content));
    assert_int_equal(fclose(f), 0);
    t->n++;
    return path;
}

/* config_print into a malloc'd string (free it). */
static char *printed(const struct cc_config *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    config_print(c, f);
    assert_int_equal(fclose(f), 0);
    return buf;
}

/* The value printed for key, into out; 0 if the key is there. */
static int printed_value(const char *text, const char *key, char *out, size_t n)
{
    size_t klen = strlen(key);
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len >= klen + 3 && strncmp(line, key, klen) == 0 &&
            strncmp(line + klen, " = ", 3) == 0) {
            size_t vlen = len - klen - 3;
            assert_true(vlen < n);
            memcpy(out, line + klen + 3, vlen);
            out[vlen] = '\0';
            return 0;
        }
        line = nl ? nl + 1 : NULL;
    }
    return -1;
}

/* ---- defaults ----------------------------------------------------------------- */

static void test_defaults(void **state)
{
    struct cc_config c;
    char err[256] = "";
    assert_int_equal(config_load(&c, NULL, NULL, err, sizeof(err)), 0);
    /* The keys DESIGN.md names, with its defaults. */
    assert_int_equal(c.workers, 4);
    assert_int_equal(c.port_min, 30000);
    assert_int_equal(c.port_max, 60000);
    assert_int_equal(c.max_containers_per_account, 1);
    assert_int_equal(c.max_renewals, 5);
    assert_int_equal(c.cooldown_seconds, 300);
    assert_int_equal(c.timeout_seconds, 3600);
    assert_int_equal(c.extend_seconds, 3600);
    assert_string_equal(c.docker_endpoint, "unix:///var/run/docker.sock");
    assert_string_equal(c.backend, "docker");
    /* The rest, as documented. */
    assert_string_equal(c.database_host, "127.0.0.1");
    assert_int_equal(c.database_port, 3306);
    assert_string_equal(c.database_socket, "");
    assert_string_equal(c.database_user, "ctfd");
    assert_string_equal(c.database_password, "");
    assert_string_equal(c.database_name, "ctfd");
    assert_true(c.listen[0] == '/');
    assert_int_equal(c.listen_mode, 0660);
    assert_int_equal(c.max_body_bytes, 16384);
    assert_string_equal(c.log_level, "info");
    assert_true(c.default_cpus > 0.49 && c.default_cpus < 0.51);
    assert_int_equal(c.max_containers, 0);
    assert_true(c.flag_key_file[0] != '\0');
    config_free(&c);
}

/* Same defaults seen through config_print: the printed form is the contract
 * of --check-config. */
static void test_defaults_printed(void **state)
{
    static const struct {
        const char *key, *value;
    } want[] = {
        {"workers", "4"},
        {"port_range", "30000-60000"},
        {"max_containers_per_account", "1"},
        {"max_renewals", "5"},
        {"cooldown_seconds", "300"},
        {"timeout_seconds", "3600"},
        {"extend_seconds", "3600"},
        {"docker_endpoint", "unix:///var/run/docker.sock"},
        {"backend", "docker"},
        {"database_port", "3306"},
        {"listen_mode", "0660"},
        {"default_cpus", "0.5"},
        {"database_password", ""},
        {"public_host", "localhost"},
    };
    struct cc_config c;
    char err[256] = "", v[512];
    assert_int_equal(config_load(&c, NULL, NULL, err, sizeof(err)), 0);
    char *out = printed(&c);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(printed_value(out, want[i].key, v, sizeof(v)), 0);
        assert_string_equal(v, want[i].value);
    }
    free(out);
    config_free(&c);
}

/* ---- the file --------------------------------------------------------------- */

static void test_file_parsing(void **state)
{
    struct tmp *t = *state;
    const char *path = tmp_file(t, "ok.conf",
                                "# a comment\n"
                                "\n"
                                "   \n"
                                "workers=2\n"
                                "  max_renewals   =   9  \n"
                                "\tcooldown_seconds\t=\t0\t\n"
                                "   # an indented comment = with equals\n"
                                "database_user = player one\n"
                                "database_password = a=b#c\n"
                                "port_range = 40000-40100\r\n"
                                "public_host = ctf.example.org");
    struct cc_config c;
    char err[256] = "";
    assert_int_equal(config_load(&c, path, NULL, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_int_equal(c.workers, 2);
    assert_int_equal(c.max_renewals, 9);
    assert_int_equal(c.cooldown_seconds, 0);
    assert_string_equal(c.database_user, "player one");
    assert_string_equal(c.database_password, "a=b#c"); /* '#' only starts a comment line */
    assert_int_equal(c.port_min, 40000);
    assert_int_equal(c.port_max, 40100);
    assert_string_equal(c.public_host, "ctf.example.org"); /* last line without newline */
    assert_int_equal(c.timeout_seconds, 3600);             /* untouched keys keep defaults */
    config_free(&c);
}

static void test_file_later_line_wins(void **state)
{
    struct tmp *t = *state;
    const char *path = tmp_file(t, "twice.conf", "workers = 2\nworkers = 3\n");
    struct cc_config c;
    char err[256];
    assert_int_equal(config_load(&c, path, NULL, err, sizeof(err)), 0);
    assert_int_equal(c.workers, 3);
    config_free(&c);
}

static void test_file_missing(void **state)
{
    struct tmp *t = *state;
    char path[200];
    snprintf(path, sizeof(path), "%s/absent.conf", t->dir);
    struct cc_config c;
    char err[256] = "";
    assert_int_equal(config_load(&c, path, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, path));
    config_free(&c);
}

/* Line errors name file:line. */
static void test_file_line_errors(void **state)
{
    static const struct {
        const char *content;
        int line;
        const char *needle;
    } cases[] = {
        {"workers = 2\n# fine\nbogus_key = 1\n", 3, "unknown key 'bogus_key'"},
        {"\n\nWORKERS = 2\n", 3, "unknown key 'WORKERS'"},
        {"workers 2\n", 1, "expected 'key = value'"},
        {"workers = 2\njust words\n", 2, "expected 'key = value'"},
        {"= 5\n", 1, "unknown key ''"},
    };
    struct tmp *t = *state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char name[32], want[200];
        snprintf(name, sizeof(name), "bad%zu.conf", i);
        const char *path = tmp_file(t, name, cases[i].content);
        struct cc_config c;
        char err[512] = "";
        assert_int_equal(config_load(&c, path, NULL, err, sizeof(err)), -1);
        snprintf(want, sizeof(want), "%s:%d: ", path, cases[i].line);
        if (strncmp(err, want, strlen(want)) != 0 || strstr(err, cases[i].needle) == NULL)
            fail_msg("case %zu: got '%s', want '%s...%s'", i, err, want, cases[i].needle);
        config_free(&c);
    }
}

static void test_file_line_too_long(void **state)
{
    struct tmp *t = *state;
    static char content[6000];
    memcpy(content, "public_host = ", 14);
    memset(content + 14, 'h', 5000);
    memcpy(content + 5014, "\n", 2);
    const char *path = tmp_file(t, "long.conf", content);
    struct cc_config c;
    char err[512] = "";
    assert_int_equal(config_load(&c, path, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, ":1: line too long"));
    config_free(&c);
}

/* ---- the environment ---------------------------------------------------------- */

static void test_env_beats_file(void **state)
{
    struct tmp *t = *state;
    const char *path = tmp_file(t, "w.conf", "workers = 3\nmax_renewals = 2\n");
    char *envp[] = {"PATH=/usr/bin", "CTFD_CONTAINERS_WORKERS=7", NULL};
    struct cc_config c;
    char err[256] = "";
    assert_int_equal(config_load(&c, path, envp, err, sizeof(err)), 0);
    assert_int_equal(c.workers, 7);
    assert_int_equal(c.max_renewals, 2); /* the file still counts where env is silent */
    config_free(&c);
}

static void test_env_without_file(void **state)
{
    char *envp[] = {"CTFD_CONTAINERS_BACKEND=swarm",
                    "CTFD_CONTAINERS_PORT_RANGE=2000-3000",
                    "CTFD_CONTAINERS_DOCKER_ENDPOINT=tcp://10.0.0.2:2376",
                    "CTFD_CONTAINERS_DEFAULT_CPUS=1.25",
                    "CTFD_CONTAINERS_LISTEN_MODE=0600",
                    "CTFD_CONTAINERS_DATABASE_PASSWORD=with = equals",
                    NULL};
    struct cc_config c;
    char err[256] = "";
    assert_int_equal(config_load(&c, NULL, envp, err, sizeof(err)), 0);
    assert_string_equal(c.backend, "swarm");
    assert_int_equal(c.port_min, 2000);
    assert_int_equal(c.port_max, 3000);
    assert_string_equal(c.docker_endpoint, "tcp://10.0.0.2:2376");
    assert_true(c.default_cpus > 1.24 && c.default_cpus < 1.26);
    assert_int_equal(c.listen_mode, 0600);
    assert_string_equal(c.database_password, "with = equals");
    config_free(&c);
}

/* Other tools share the prefix: unknown names and malformed entries are ignored. */
static void test_env_unknown_ignored(void **state)
{
    char *envp[] = {"CTFD_CONTAINERS_NOT_A_KEY=1",
                    "CTFD_CONTAINERS_=x",
                    "CTFD_CONTAINERS_WORKERS",
                    "CTFD_CONTAINERS_PLUGIN_SETTING=anything at all",
                    "CTFD_CONTAINERSWORKERS=9",
                    "WORKERS=9",
                    "workers=9",
                    "CTFD_CONTAINERS_"
                    "AN_EXTREMELY_LONG_NAME_THAT_DOES_NOT_FIT_IN_THE_KEY_BUFFER_AT_ALL_X=1",
                    NULL};
    struct cc_config c;
    char err[256] = "";
    assert_int_equal(config_load(&c, NULL, envp, err, sizeof(err)), 0);
    assert_int_equal(c.workers, 4);
    config_free(&c);
}

/* ---- refusals name the key ------------------------------------------------------ */

static const struct {
    const char *key, *value;
} bad_values[] = {
    {"workers", "0"},
    {"workers", "abc"},
    {"workers", "257"},
    {"workers", "4x"},
    {"workers", ""},
    {"workers", "99999999999999999999999"},
    {"port_range", "5-3"},
    {"port_range", "100-200"},
    {"port_range", "40000-30000"},
    {"port_range", "30000"},
    {"port_range", "30000-65536"},
    {"port_range", "-30000"},
    {"port_range", "30000-"},
    {"port_range", "123456789012345678-2"},
    {"backend", "k8s"},
    {"backend", "Docker"},
    {"docker_endpoint", "http://x"},
    {"docker_endpoint", "unix:/var/run/docker.sock"},
    {"docker_endpoint", ""},
    {"listen", "relative"},
    {"listen", "run/fcgi.sock"},
    {"listen", ""},
    {"log_level", "loud"},
    {"log_level", ""},
    {"default_cpus", "-1"},
    {"default_cpus", "0"},
    {"default_cpus", "abc"},
    {"default_cpus", "1025"},
    {"default_cpus", "inf"},
    {"database_port", "0"},
    {"database_port", "65536"},
    {"listen_mode", "0999"},
    {"listen_mode", "01000"},
    {"max_body_bytes", "10"},
    {"timeout_seconds", "29"},
    {"max_containers_per_account", "0"},
    {"cooldown_seconds", "-1"},
    {"flag_key_file", ""},
    /* swarm backend */
    {"swarm_endpoint", "http://manager:2375"},
    {"swarm_node_endpoints", "unix:///a.sock, http://b:2375"},
    {"swarm_placement", "zone==a"},
    {"swarm_placement", "node.labels.zone==a,"},
    {"swarm_network_per_container", "2"},
    /* exposure and isolation (docs/exposure.md) */
    {"route_domain", "Containers.example.org"},
    {"route_domain", "*.example.org"},
    {"route_domain", "a..b"},
    {"route_scheme", "ftp"},
    {"network_mode", "host"},
    {"network_pool", "10.213.0.0"},
    {"network_pool", "10.213.0.1/16"},
    {"network_pool", "10.213.0.0/30"},
    {"network_pool", "300.0.0.0/16"},
    {"network_prefix", "30"},
    {"tls_port", "65536"},
    {"cap_add", "CHOWN,SYS_ADMIN"},
    {"cap_add", "ALL"},
};

static void check_refused(const char *how, size_t i, int rc, const char *err)
{
    char want[64];
    snprintf(want, sizeof(want), "%s: ", bad_values[i].key);
    if (rc != -1 || strncmp(err, want, strlen(want)) != 0)
        fail_msg("%s %s='%s': rc %d, err '%s'", how, bad_values[i].key, bad_values[i].value, rc,
                 err);
}

static void test_bad_values_in_file(void **state)
{
    struct tmp *t = *state;
    for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
        char path[200];
        snprintf(path, sizeof(path), "%s/bad.conf", t->dir);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fprintf(f, "# line one\n%s = %s\n", bad_values[i].key, bad_values[i].value);
        assert_int_equal(fclose(f), 0);
        struct cc_config c;
        char err[512] = "";
        int rc = config_load(&c, path, NULL, err, sizeof(err));
        check_refused("file", i, rc, err);
        config_free(&c);
        assert_int_equal(unlink(path), 0);
    }
}

static void test_bad_values_in_env(void **state)
{
    for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
        char var[256];
        snprintf(var, sizeof(var), "CTFD_CONTAINERS_%s=%s", bad_values[i].key, bad_values[i].value);
        for (char *p = var; *p != '='; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 'a' + 'A');
        char *envp[] = {var, NULL};
        struct cc_config c;
        char err[512] = "";
        int rc = config_load(&c, NULL, envp, err, sizeof(err));
        check_refused("env", i, rc, err);
        config_free(&c);
    }
}

static void test_good_values_table(void **state)
{
    static const struct {
        const char *key, *value, *printed;
    } cases[] = {
        {"workers", "1", "1"},
        {"workers", "256", "256"},
        {"workers", "007", "7"},
        {"port_range", "1024-65535", "1024-65535"},
        {"port_range", "30000-30000", "30000-30000"},
        {"backend", "swarm", "swarm"},
        {"docker_endpoint", "tcp://docker:2376", "tcp://docker:2376"},
        {"docker_endpoint", "unix:///run/docker.sock", "unix:///run/docker.sock"},
        {"log_level", "debug", "debug"},
        {"log_level", "error", "error"},
        {"listen_mode", "0600", "0600"},
        {"listen_mode", "777", "0777"},
        {"default_cpus", "2", "2"},
        {"default_cpus", "0.01", "0.01"},
        {"max_containers", "0", "0"},
        {"cooldown_seconds", "86400", "86400"},
        {"route_domain", "containers.example.org", "containers.example.org"},
        {"network_pool", "172.30.0.0/16", "172.30.0.0/16"},
        {"network_pool", "", ""},
        {"network_mode", "bridge", "bridge"},
        {"cap_add", "cap_net_raw, KILL", "cap_net_raw, KILL"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char var[256], v[512];
        snprintf(var, sizeof(var), "CTFD_CONTAINERS_%s=%s", cases[i].key, cases[i].value);
        for (char *p = var; *p != '='; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 'a' + 'A');
        char *envp[] = {var, NULL};
        struct cc_config c;
        char err[512] = "";
        if (config_load(&c, NULL, envp, err, sizeof(err)) != 0)
            fail_msg("%s='%s' refused: %s", cases[i].key, cases[i].value, err);
        char *out = printed(&c);
        assert_int_equal(printed_value(out, cases[i].key, v, sizeof(v)), 0);
        if (strcmp(v, cases[i].printed) != 0)
            fail_msg("%s='%s' printed '%s'", cases[i].key, cases[i].value, v);
        free(out);
        config_free(&c);
    }
}

/* NaN fails every comparison, so a plain `d < min || d > max` range check
 * would let default_cpus=nan through (and into an int64 conversion). */
static void test_nan_refused(void **state)
{
    static const char *const nans[] = {"CTFD_CONTAINERS_DEFAULT_CPUS=nan",
                                       "CTFD_CONTAINERS_DEFAULT_CPUS=NAN(123)",
                                       "CTFD_CONTAINERS_DEFAULT_CPUS=-nan"};
    for (size_t i = 0; i < sizeof(nans) / sizeof(nans[0]); i++) {
        char *envp[] = {(char *)nans[i], NULL};
        struct cc_config c;
        char err[512] = "";
        int rc = config_load(&c, NULL, envp, err, sizeof(err));
        config_free(&c);
        assert_int_equal(rc, -1);
        assert_non_null(strstr(err, "default_cpus: "));
    }
}

/* ---- secrets ------------------------------------------------------------------- */

static void test_password_file(void **state)
{
    static const struct {
        const char *content, *want;
    } cases[] = {
        {"s3cret-pw\nsecond line\n", "s3cret-pw"},
        {"crlf-pw\r\n", "crlf-pw"},
        {"no-newline", "no-newline"},
        {"", ""},
        {"\nafter-blank\n", ""},
        {"  spaced pw  \n", "  spaced pw  "}, /* a password is taken verbatim */
    };
    struct tmp *t = *state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char name[32], conf[300];
        snprintf(name, sizeof(name), "pw%zu", i);
        const char *pw = tmp_file(t, name, cases[i].content);
        /* The file overrides a password given inline. */
        snprintf(conf, sizeof(conf), "CTFD_CONTAINERS_DATABASE_PASSWORD_FILE=%s", pw);
        char *envp[] = {"CTFD_CONTAINERS_DATABASE_PASSWORD=inline", conf, NULL};
        struct cc_config c;
        char err[512] = "";
        if (config_load(&c, NULL, envp, err, sizeof(err)) != 0)
            fail_msg("case %zu refused: %s", i, err);
        assert_string_equal(c.database_password, cases[i].want);
        config_free(&c);
    }
}

static void test_password_file_missing(void **state)
{
    struct tmp *t = *state;
    char conf[300];
    snprintf(conf, sizeof(conf), "CTFD_CONTAINERS_DATABASE_PASSWORD_FILE=%s/none", t->dir);
    char *envp[] = {conf, NULL};
    struct cc_config c;
    char err[512] = "";
    assert_int_equal(config_load(&c, NULL, envp, err, sizeof(err)), -1);
    assert_true(strncmp(err, "database_password_file: ", 24) == 0);
    config_free(&c);
}

static void test_print_masks_password(void **state)
{
    struct tmp *t = *state;
    const char *pw = tmp_file(t, "pw", "Tr0ub4dor&3-from-file\n");
    char conf[300];
    snprintf(conf, sizeof(conf), "database_password_file = %s\n", pw);
    const char *path = tmp_file(t, "c.conf", conf);
    struct cc_config c;
    char err[512] = "", v[512];
    assert_int_equal(config_load(&c, path, NULL, err, sizeof(err)), 0);
    assert_string_equal(c.database_password, "Tr0ub4dor&3-from-file");
    char *out = printed(&c);
    assert_int_equal(printed_value(out, "database_password", v, sizeof(v)), 0);
    assert_string_equal(v, "********");
    assert_null(strstr(out, "Tr0ub4dor"));
    assert_non_null(strstr(out, pw)); /* the path is not secret */
    free(out);
    config_free(&c);

    /* Inline, through the environment. */
    char *envp[] = {"CTFD_CONTAINERS_DATABASE_PASSWORD=hunter2-inline", NULL};
    assert_int_equal(config_load(&c, NULL, envp, err, sizeof(err)), 0);
    out = printed(&c);
    assert_null(strstr(out, "hunter2"));
    assert_int_equal(printed_value(out, "database_password", v, sizeof(v)), 0);
    assert_string_equal(v, "********");
    free(out);
    config_free(&c);
}

/* Every option of the table (as config_print_doc lists it) is printed once. */
static void test_print_lists_every_key(void **state)
{
    char *doc = NULL;
    size_t doclen = 0;
    FILE *f = open_memstream(&doc, &doclen);
    assert_non_null(f);
    config_print_doc(f);
    assert_int_equal(fclose(f), 0);

    struct cc_config c;
    char err[256], v[512];
    assert_int_equal(config_load(&c, NULL, NULL, err, sizeof(err)), 0);
    char *out = printed(&c);
    size_t nkeys = 0, nlines = 0;
    for (const char *p = doc; (p = strstr(p, "| `")) != NULL;) {
        p += 3;
        const char *e = strchr(p, '`');
        assert_non_null(e);
        char key[64];
        assert_true((size_t)(e - p) < sizeof(key));
        memcpy(key, p, (size_t)(e - p));
        key[e - p] = '\0';
        if (printed_value(out, key, v, sizeof(v)) != 0)
            fail_msg("config_print lacks '%s'", key);
        nkeys++;
        p = strchr(e, '\n'); /* skip the default column */
        if (p == NULL)
            break;
    }
    for (const char *p = out; *p; p++)
        nlines += *p == '\n';
    assert_int_equal(nkeys, nlines);
    /* DESIGN.md's keys, at least. */
    static const char *const design[] = {
        "database_host",     "database_port",    "database_socket", "database_user",
        "database_password", "database_name",    "listen",          "workers",
        "backend",           "docker_endpoint",  "docker_tls_ca",   "docker_tls_cert",
        "docker_tls_key",    "public_host",      "port_range",      "max_containers_per_account",
        "max_renewals",      "cooldown_seconds", "timeout_seconds", "extend_seconds",
        "flag_key_file",
    };
    for (size_t i = 0; i < sizeof(design) / sizeof(design[0]); i++)
        if (printed_value(out, design[i], v, sizeof(v)) != 0)
            fail_msg("config_print lacks DESIGN key '%s'", design[i]);
    free(out);
    free(doc);
    config_free(&c);
}

/* What --check-config prints loads back to the same configuration. */
static void test_print_round_trips(void **state)
{
    struct tmp *t = *state;
    char *envp[] = {"CTFD_CONTAINERS_WORKERS=9", "CTFD_CONTAINERS_PORT_RANGE=31000-32000",
                    "CTFD_CONTAINERS_DEFAULT_CPUS=0.75", "CTFD_CONTAINERS_LISTEN_MODE=0640", NULL};
    struct cc_config c;
    char err[256] = "";
    assert_int_equal(config_load(&c, NULL, envp, err, sizeof(err)), 0);
    char *first = printed(&c);
    config_free(&c);
    const char *path = tmp_file(t, "printed.conf", first);
    if (config_load(&c, path, NULL, err, sizeof(err)) != 0)
        fail_msg("printed config refused: %s", err);
    char *second = printed(&c);
    assert_string_equal(first, second);
    free(first);
    free(second);
    config_free(&c);
}

static void test_free_is_idempotent(void **state)
{
    struct cc_config c;
    char err[256];
    assert_int_equal(config_load(&c, NULL, NULL, err, sizeof(err)), 0);
    config_free(&c);
    assert_null(c.database_host);
    config_free(&c);
}

/* ---- switch, canary, fallback: whale_enabled and fallback_backend ---------- */

static void test_switch_table(void **state)
{
    (void)state;
    static const struct {
        const char *env[4];
        const char *backend;   /* the effective backend, or NULL: refused */
        const char *err_key;   /* the key a refusal names */
    } cases[] = {
        {{NULL}, "docker", NULL},
        {{"CTFD_CONTAINERS_WHALE_ENABLED=true", "CTFD_CONTAINERS_WHALE_URL=http://ctfd:8000",
          NULL}, "whale", NULL},
        {{"CTFD_CONTAINERS_WHALE_ENABLED=TRUE", "CTFD_CONTAINERS_WHALE_URL=http://ctfd:8000",
          NULL}, "whale", NULL},
        {{"CTFD_CONTAINERS_WHALE_ENABLED=false", NULL}, "docker", NULL},
        {{"CTFD_CONTAINERS_WHALE_ENABLED=0", "CTFD_CONTAINERS_BACKEND=docker", NULL}, "docker",
         NULL},
        {{"CTFD_CONTAINERS_WHALE_ENABLED=true", "CTFD_CONTAINERS_WHALE_URL=http://c:1",
          "CTFD_CONTAINERS_BACKEND=whale", NULL}, "whale", NULL},
        {{"CTFD_CONTAINERS_WHALE_ENABLED=true", "CTFD_CONTAINERS_BACKEND=docker", NULL}, NULL,
         "whale_enabled:"},
        {{"CTFD_CONTAINERS_WHALE_ENABLED=false", "CTFD_CONTAINERS_BACKEND=swarm", NULL}, NULL,
         "whale_enabled:"},
        {{"CTFD_CONTAINERS_WHALE_ENABLED=yes please", NULL}, NULL, "whale_enabled:"},
        {{"CTFD_CONTAINERS_WHALE_ENABLED=true", NULL}, NULL, "whale_url:"},
        {{"CTFD_CONTAINERS_BACKEND=whale", "CTFD_CONTAINERS_WHALE_URL=ftp://x", NULL}, NULL,
         "whale_url:"},
        {{"CTFD_CONTAINERS_FALLBACK_BACKEND=docker", NULL}, NULL, "fallback_backend:"},
        {{"CTFD_CONTAINERS_FALLBACK_BACKEND=kubernetes", NULL}, NULL, "fallback_backend:"},
        {{"CTFD_CONTAINERS_FALLBACK_BACKEND=whale", NULL}, NULL, "whale_url:"},
        {{"CTFD_CONTAINERS_BACKEND=swarm", "CTFD_CONTAINERS_FALLBACK_BACKEND=docker", NULL},
         "swarm", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cc_config c;
        char err[512] = "";
        int rc = config_load(&c, NULL, (char *const *)cases[i].env, err, sizeof(err));
        if (cases[i].backend != NULL) {
            if (rc != 0)
                fail_msg("case %zu refused: %s", i, err);
            assert_string_equal(c.backend, cases[i].backend);
        } else {
            if (rc == 0)
                fail_msg("case %zu accepted (backend %s)", i, c.backend);
            if (strncmp(err, cases[i].err_key, strlen(cases[i].err_key)) != 0)
                fail_msg("case %zu: error '%s' does not start with %s", i, err,
                         cases[i].err_key);
        }
        config_free(&c);
    }
}

static void test_whale_token_file(void **state)
{
    struct tmp *t = *state;
    const char *path = tmp_file(t, "tok", "ctfd_0123abcd\n");
    char var[600];
    snprintf(var, sizeof(var), "CTFD_CONTAINERS_WHALE_ADMIN_TOKEN_FILE=%s", path);
    char *envp[] = {var, NULL};
    struct cc_config c;
    char err[256] = "";
    assert_int_equal(config_load(&c, NULL, envp, err, sizeof(err)), 0);
    assert_string_equal(c.whale_admin_token, "ctfd_0123abcd");
    char *out = printed(&c);
    assert_null(strstr(out, "ctfd_0123abcd")); /* a secret: masked */
    free(out);
    config_free(&c);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, tmp_setup, tmp_teardown)
    const struct CMUnitTest tests[] = {
        T(test_defaults),
        T(test_defaults_printed),
        T(test_file_parsing),
        T(test_file_later_line_wins),
        T(test_file_missing),
        T(test_file_line_errors),
        T(test_file_line_too_long),
        T(test_env_beats_file),
        T(test_env_without_file),
        T(test_env_unknown_ignored),
        T(test_bad_values_in_file),
        T(test_bad_values_in_env),
        T(test_good_values_table),
        T(test_nan_refused),
        T(test_password_file),
        T(test_password_file_missing),
        T(test_print_masks_password),
        T(test_print_lists_every_key),
        T(test_print_round_trips),
        T(test_free_is_idempotent),
        T(test_switch_table),
        T(test_whale_token_file),
    };
#undef T
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
