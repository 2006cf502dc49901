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
    /* head + ": " + the old message, cut to fit */
    char old[BZ_ERR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    size_t h = strnlen(head, sizeof head), o = strnlen(old, sizeof old);
    size_t cap = sizeof err->msg - 1;
    size_t n = 0;
    memcpy(err->msg, head, h < cap ? h : cap);
    n = h < cap ? h : cap;
    for (const char *sep = ": "; *sep && n < cap; sep++)
        err->msg[n++] = *sep;
    size_t take = o < cap - n ? o : cap - n;
    memcpy(err->msg + n, old, take);
    err->msg[n + take] = '\0';
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
