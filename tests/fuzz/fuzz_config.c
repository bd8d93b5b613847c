/* fuzz_config.c: libFuzzer target for the configuration file.
 *
 * Each input is written to one temporary file (made once per process, under
 * $TMPDIR, removed at exit) and loaded with config_load; config_free follows
 * whatever the result, and libFuzzer's per-input leak check holds it to that.
 * Checks: a refusal gives a one-line reason; an accepted file prints with the
 * password masked, and what it prints loads back to the same print. The
 * environment is never read (envp is NULL). Built with clang
 * -fsanitize=fuzzer (scripts/build-fuzzers) or as a corpus replay with
 * tests/fuzz/replay_main.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* assert() vanishes under NDEBUG; a fuzz finding must never. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_config: check failed: %s\n", #cond);                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static char input_path[256];
static char print_path[256];

static void remove_files(void)
{
    unlink(input_path);
    unlink(print_path);
}

static void make_file(char *path, size_t n, const char *what)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, n, "%s/cc-fuzz-config-%s-XXXXXX", dir && *dir ? dir : "/tmp", what);
    int fd = mkstemp(path);
    FUZZ_CHECK(fd >= 0);
    close(fd);
}

/* Creates the process's two files on first use. */
static void files_init(void)
{
    if (input_path[0] != '\0')
        return;
    make_file(input_path, sizeof(input_path), "in");
    make_file(print_path, sizeof(print_path), "print");
    atexit(remove_files);
}

static void write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(fwrite(data, 1, size, f) == size);
    FUZZ_CHECK(fclose(f) == 0);
}

/* config_print into a malloc'd string. */
static char *print_config(const struct cc_config *c, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    FUZZ_CHECK(f != NULL);
    config_print(c, f);
    FUZZ_CHECK(fclose(f) == 0);
    return buf;
}

static int has_long_line(const char *s)
{
    for (const char *line = s; line && *line;) {
        const char *nl = strchr(line, '\n');
        if ((nl ? (size_t)(nl - line) : strlen(line)) >= 4000)
            return 1;
        line = nl ? nl + 1 : NULL;
    }
    return 0;
}

static void check_accepted(const struct cc_config *c)
{
    size_t len;
    char *out = print_config(c, &len);
    const char *pw = strstr(out, "\ndatabase_password = ");
    FUZZ_CHECK(pw != NULL);
    pw += strlen("\ndatabase_password = ");
    if (c->database_password[0] != '\0')
        FUZZ_CHECK(strncmp(pw, "********\n", 9) == 0);
    else
        FUZZ_CHECK(*pw == '\n');

    /* --check-config's output is itself a valid file with the same meaning. */
    if (!has_long_line(out)) {
        struct cc_config again;
        char err[512] = "";
        write_file(print_path, out, len);
        int rc = config_load(&again, print_path, NULL, err, sizeof(err));
        if (rc != 0)
            fprintf(stderr, "fuzz_config: printed config refused: %s\n", err);
        FUZZ_CHECK(rc == 0);
        size_t len2;
        char *out2 = print_config(&again, &len2);
        FUZZ_CHECK(len2 == len && memcmp(out, out2, len) == 0);
        free(out2);
        config_free(&again);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    files_init();
    write_file(input_path, data, size);
    struct cc_config c;
    char err[512] = "";
    if (config_load(&c, input_path, NULL, err, sizeof(err)) == 0) {
        check_accepted(&c);
    } else {
        FUZZ_CHECK(err[0] != '\0');
        FUZZ_CHECK(strchr(err, '\n') == NULL);
    }
    config_free(&c);
    return 0;
}
