/* err: filling the caller's error struct. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bazaar/err.h"

int bz_err_set(struct bz_err *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

void bz_err_prefix(struct bz_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    char head[BZ_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    char old[BZ_ERR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", head, old);
}

void bz_err_clear(struct bz_err *err)
{
    if (!err)
        return;
    err->code = BZ_OK;
    err->msg[0] = '\0';
}

const char *bz_rc_name(int code)
{
    switch (code) {
    case BZ_OK: return "ok";
    case BZ_EINVAL: return "invalid input";
    case BZ_EIO: return "I/O error";
    case BZ_ENOMEM: return "out of memory";
    case BZ_ENET: return "network error";
    case BZ_ESTOP: return "stopped";
    case BZ_EINTERNAL: return "internal error";
    default: return "unknown error";
    }
}
