/* file: whole-file reads with a size cap. Never interprets the contents. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bazaar/file.h"

/* "16 MiB" or "1000 bytes": the cap as a reader would say it. */
static void size_text(size_t n, char *buf, size_t cap)
{
    if (n >= (1u << 20) && n % (1u << 20) == 0)
        snprintf(buf, cap, "%zu MiB", n >> 20);
    else
        snprintf(buf, cap, "%zu bytes", n);
}

int bz_file_load(const char *path, size_t max_bytes, const char *what, char **text, size_t *len,
                 struct bz_err *err)
{
    int rc = BZ_OK;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    *text = NULL;
    /* O_NONBLOCK: a FIFO must be refused, not waited on; a folder, device or
     * a file over the cap is refused before anything is read. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return bz_err_set(err, BZ_EINVAL, "%s: cannot open %s: %s", path, what, strerror(errno));
    struct stat st;
    char limit[32];
    size_text(max_bytes, limit, sizeof limit);
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (unsigned long long)st.st_size > max_bytes) {
        int regular = S_ISREG(st.st_mode);
        close(fd);
        return regular ? bz_err_set(err, BZ_EINVAL, "%s: the %s is larger than the %s limit", path,
                                    what, limit)
                       : bz_err_set(err, BZ_EINVAL, "%s: the %s is not a regular file", path, what);
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return bz_err_set(err, BZ_EIO, "%s: cannot open %s: %s", path, what, strerror(errno));
    }
    for (;;) {
        if (n == cap) {
            if (cap > max_bytes)
                break; /* read no further: it is too large */
            cap = cap ? 2 * cap : 65536;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                rc = bz_err_set(err, BZ_ENOMEM, "%s: out of memory reading the %s", path, what);
                goto out;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        rc = bz_err_set(err, BZ_EIO, "%s: cannot read the %s: %s", path, what, strerror(errno));
        goto out;
    }
    if (n > max_bytes) {
        rc =
            bz_err_set(err, BZ_ENOMEM, "%s: the %s is larger than the %s limit", path, what, limit);
        goto out;
    }
    buf[n] = '\0';
    *text = buf;
    buf = NULL;
    if (len)
        *len = n;
out:
    free(buf);
    fclose(f);
    return rc;
}
