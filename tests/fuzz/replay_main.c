/* replay_main.c: runs a fuzz target's LLVMFuzzerTestOneInput over corpora.
 *
 * Linked with each tests/fuzz/fuzz_*.c into a plain program for `make check`
 * (the libFuzzer build supplies its own main and never links this file).
 * Each argument is a corpus directory (walked recursively, dot-files skipped)
 * or a single file; it prints one TAP line per argument and exits 0 when all
 * could be read. A crash or sanitizer report fails the run by itself. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs one file; the buffer is exactly its size so ASan sees over-reads. */
static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    size_t n;
    while (buf != NULL && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            uint8_t *bigger = realloc(buf, cap *= 2);
            if (bigger == NULL)
                free(buf);
            buf = bigger;
        }
    }
    int bad = buf == NULL || ferror(f);
    fclose(f);
    uint8_t *exact = bad ? NULL : malloc(len > 0 ? len : 1);
    int r = exact != NULL ? 0 : -1;
    if (r == 0) {
        memcpy(exact, buf, len);
        LLVMFuzzerTestOneInput(exact, len);
    }
    free(exact);
    free(buf);
    return r;
}

/* Replays path (file or directory tree); adds to *count, -1 on a read error. */
static int replay_path(const char *path, size_t *count)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        if (replay_file(path) != 0)
            return -1;
        (*count)++;
        return 0;
    }
    struct dirent **names;
    int n = scandir(path, &names, NULL, alphasort); /* sorted: runs repeat */
    if (n < 0)
        return -1;
    int r = 0;
    for (int i = 0; i < n; i++) {
        char child[4096];
        if (r == 0 && names[i]->d_name[0] != '.' &&
            (size_t)snprintf(child, sizeof(child), "%s/%s", path, names[i]->d_name) <
                sizeof(child))
            r = replay_path(child, count);
        free(names[i]);
    }
    free(names);
    return r;
}

int main(int argc, char **argv)
{
    int failed = 0;
    printf("1..%d\n", argc - 1);
    for (int i = 1; i < argc; i++) {
        size_t count = 0;
        if (replay_path(argv[i], &count) == 0) {
            printf("ok %d - corpus %s (%zu inputs)\n", i, argv[i], count);
        } else {
            printf("not ok %d - corpus %s (cannot read: %s)\n", i, argv[i], strerror(errno));
            failed = 1;
        }
        fflush(stdout);
    }
    return failed;
}
