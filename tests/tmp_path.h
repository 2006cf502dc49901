/* tmp_path: scratch file paths of the cmocka tests that write results files:
 * BZ_TEST_TMP/<TMP_PATH_PREFIX>_<pid>_<name>, with nothing left there from
 * an earlier run (the file, its .journal and .lock). Define TMP_PATH_PREFIX
 * (a string) before including it. Header-only; tests only. */
#ifndef BAZAAR_TMP_PATH_H
#define BAZAAR_TMP_PATH_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void tmp_path(char *buf, size_t cap, const char *fmt, ...)
{
    char name[256], side[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    mkdir(BZ_TEST_TMP, 0755);
    snprintf(buf, cap, "%s/%s_%ld_%s", BZ_TEST_TMP, TMP_PATH_PREFIX, (long)getpid(), name);
    unlink(buf);
    snprintf(side, sizeof side, "%s.journal", buf);
    unlink(side);
    snprintf(side, sizeof side, "%s.lock", buf);
    unlink(side);
}

/* Remove a test's file and its journal. */
static inline void remove_tmp_file(const char *path)
{
    char journal[600];
    size_t n = strlen(path);
    unlink(path);
    if (n + sizeof ".journal" > sizeof journal)
        return; /* tmp_path never makes one that long */
    memcpy(journal, path, n);
    memcpy(journal + n, ".journal", sizeof ".journal");
    unlink(journal);
}

#endif
