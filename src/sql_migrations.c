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
    }
    *out = table;
    return n;
}
