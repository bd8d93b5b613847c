/* errors.c: the error table (see errors.h). No I/O. */
#define CC_ERRORS_IMPL /* errors.h: no analyzer macro over the definition */
#include "errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *code;
    int status;
    const char *message;
} table[ERR__MAX] = {
#define CC_ERR_ROW(e, code, status, msg) [e] = {code, status, msg},
    CC_ERRORS(CC_ERR_ROW)
#undef CC_ERR_ROW
};

static enum cc_err clamp(enum cc_err e)
{
    return (unsigned)e < ERR__MAX ? e : ERR_INTERNAL;
}

const char *err_code_str(enum cc_err e)
{
    return table[clamp(e)].code;
}

int err_status(enum cc_err e)
{
    return table[clamp(e)].status;
}

const char *err_default_message(enum cc_err e)
{
    return table[clamp(e)].message;
}

const char *err_message(const struct cc_error *err)
{
    return err->message[0] ? err->message : err_default_message(err->code);
}

int err_set(struct cc_error *err, enum cc_err code, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    err->code = clamp(code);
    err->temporary = err_status(code) == 503;
    err->retry_after = 0;
    err->message[0] = '\0';
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    }
    return -1;
}

void err_clear(struct cc_error *err)
{
    memset(err, 0, sizeof(*err));
}

enum cc_err err_from_str(const char *code)
{
    for (int i = 0; i < ERR__MAX; i++)
        if (strcmp(table[i].code, code) == 0)
            return (enum cc_err)i;
    return ERR__MAX;
}
