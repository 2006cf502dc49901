/* cache: the response cache, a folder with one file per request key
 * (<dir>/<2 hex>/<32 hex>.json holding the provider's reply body as
 * received). Written atomically (tmp file + link) so a killed rank leaves
 * either the whole entry or none, and exclusively: the first writer of a key
 * wins across ranks and runs, later writers keep the stored entry. Never stores a request header
 * (no key). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bazaar/rng.h"
#include "llm/llm_internal.h"

#define CACHE_ENTRY_MAX BZ_LLM_REPLY_MAX

/* Two independent 64-bit lanes over the bytes: a 128-bit key, so that
 * collisions across a sweep's millions of requests are out of reach. */
static void hash128(const char *s, size_t n, uint64_t h[2])
{
    uint64_t a = 0xcbf29ce484222325ULL, b = 0x84222325cbf29ce4ULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        a = (a ^ c) * 0x100000001b3ULL;
        b = (b ^ c) * 0x00000100000001b3ULL + 0x9e3779b97f4a7c15ULL;
        b ^= b >> 29;
    }
    h[0] = bz_hash_combine(h[0], bz_hash64(a + n));
    h[1] = bz_hash_combine(h[1], bz_hash64(b ^ (uint64_t)n));
}

void bz_cache_key(const struct bz_model *m, const char *body, uint64_t sample,
                  char hex[BZ_CACHE_KEY_HEX])
{
    uint64_t h[2] = {0x62617a6161726331ULL, 0x6c6c6d6361636865ULL};
    const char *prov = m->provider == BZ_PROVIDER_ANTHROPIC ? "anthropic" : "openai";
    char head[32], *e = head + sizeof head, *q = e; /* "v1|<sample in decimal>|" */
    *--q = '|';
    do
        *--q = (char)('0' + sample % 10);
    while (sample /= 10);
    memcpy(q -= 3, "v1|", 3);
    hash128(q, (size_t)(e - q), h);
    hash128(prov, strlen(prov), h);
    hash128("|", 1, h);
    hash128(m->model, strlen(m->model), h);
    hash128("|", 1, h);
    hash128(body, strlen(body), h);
    bz_llm_hex128(h[0], h[1], hex);
}

static int mkdirs(const char *dir)
{
    char p[1024];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            return -1;
        *s = '/';
    }
    if (mkdir(p, 0777) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

int bz_cache_open(const char *dir, struct bz_err *err)
{
    struct stat st;
    if (mkdirs(dir) != 0 || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
        access(dir, W_OK | X_OK) != 0)
        return bz_err_set(err, BZ_EIO, "%s: cannot create or write the LLM cache folder (%s)", dir,
                          strerror(errno));
    return BZ_OK;
}

static void entry_path(const char *dir, const char *hex, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%.2s/%s.json", dir, hex, hex);
}

int bz_cache_get(const char *dir, const char *hex, char **body, size_t *len)
{
    char path[1024];
    *body = NULL;
    *len = 0;
    entry_path(dir, hex, path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    int hit = 0;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n > 0 && (unsigned long)n <= CACHE_ENTRY_MAX && fseek(f, 0, SEEK_SET) == 0 &&
            (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
            buf[n] = '\0';
            *body = buf;
            *len = (size_t)n;
            buf = NULL;
            hit = 1;
        }
    }
    free(buf);
    fclose(f);
    return hit;
}

int bz_cache_put(const char *dir, const char *hex, const char *body, size_t len, struct bz_err *err)
{
    return bz_cache_put_first(dir, hex, body, len, NULL, err);
}

/* First writer wins: the entry is published with link(2), which fails with
 * EEXIST when another rank (or an earlier run) stored the key first; the
 * stored entry is then kept and *won is 0. */
int bz_cache_put_first(const char *dir, const char *hex, const char *body, size_t len, int *won,
                       struct bz_err *err)
{
    if (won)
        *won = 0;
    char sub[1024], path[1100], tmp[1200];
    static unsigned counter;
    snprintf(sub, sizeof sub, "%s/%.2s", dir, hex);
    if (mkdir(sub, 0777) != 0 && errno != EEXIST)
        return bz_err_set(err, BZ_EIO, "%s: cannot create cache folder (%s)", sub, strerror(errno));
    entry_path(dir, hex, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", path, (long)getpid(), counter++);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0)
        return bz_err_set(err, BZ_EIO, "%s: cannot write cache entry (%s)", tmp, strerror(errno));
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, body + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return bz_err_set(err, BZ_EIO, "%s: cannot write cache entry (%s)", tmp, strerror(e));
        }
        off += (size_t)w;
    }
    if (close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return bz_err_set(err, BZ_EIO, "%s: cannot store cache entry (%s)", path, strerror(e));
    }
    if (link(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        if (e == EEXIST)
            return BZ_OK; /* an earlier writer won: its reply is the one */
        return bz_err_set(err, BZ_EIO, "%s: cannot store cache entry (%s)", path, strerror(e));
    }
    unlink(tmp);
    if (won)
        *won = 1;
    return BZ_OK;
}
