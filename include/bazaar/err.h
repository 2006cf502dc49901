/* err: return codes and the caller-owned error struct every fallible call fills.
 * Never a global: the message lives in the struct the caller passes. */
#ifndef BAZAAR_ERR_H
#define BAZAAR_ERR_H

#include <stddef.h>

enum bz_rc {
    BZ_OK = 0,
    BZ_EINVAL,   /* bad input: spec, registry, prompts, data, arguments */
    BZ_EIO,      /* file system / HDF5 failure */
    BZ_ENOMEM,   /* allocation failed or a cap on input size was hit */
    BZ_ENET,     /* network failure that retries could not fix */
    BZ_ESTOP,    /* clean, resumable stop (signal, budget) */
    BZ_EINTERNAL /* a bug: a broken invariant */
};

#define BZ_ERR_MSG_MAX 768

struct bz_err {
    int code;
    char msg[BZ_ERR_MSG_MAX];
};

/* Set code and a printf-style message (truncated to fit); returns code so that
 * `return bz_err_set(err, BZ_EINVAL, "...")` reads naturally. err may be NULL. */
int bz_err_set(struct bz_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix the existing message with "prefix: " (e.g. a file name). */
void bz_err_prefix(struct bz_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reset to BZ_OK with an empty message. */
void bz_err_clear(struct bz_err *err);

const char *bz_rc_name(int code);

#endif
