/* sql_migrations.c: the numbered files of src/sql, compiled in as strings
 * (src/sql_generated.h is made by scripts/embed-files at build time). */
#include <stdlib.h>

#include "sql_generated.h"

struct migration {
    int version;
    const char *name;
    const char *text;
};

size_t store_migrations(const struct migration **out);

size_t store_migrations(const struct migration **out)
{
    static struct migration table[64];
    static size_t n;
    if (n == 0) {
        for (unsigned i = 0; i < sql_nfiles && i < 64; i++) {
            table[n].version = atoi(sql_files[i].name); /* "001_initial.sql" -> 1 */
            table[n].name = sql_files[i].name;
            table[n].text = sql_files[i].text;
            n++;
        }
        /* In number order, whatever the order of the build's file list. */
        for (size_t i = 1; i < n; i++)
            for (size_t j = i; j > 0 && table[j - 1].version > table[j].version; j--) {
                struct migration t = table[j];
                table[j] = table[j - 1];
                table[j - 1] = t;
            }
    }
    *out = table;
    return n;
}
