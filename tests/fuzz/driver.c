/* driver: a deterministic mutation fuzzer for the targets of fuzz_targets.c,
 * for compilers without libFuzzer and for ctest: the same seeds, the same
 * mutations (xorshift from a fixed seed) on every run, so a finding
 * reproduces. Usage:
 *   bz_fuzz_driver TARGET ITERATIONS [--known FILE] SEED_FILE...
 * Each input runs in a child process (a fault cannot hide in state left by
 * an earlier input) with a time limit. A crash, sanitizer report or hang is
 * a finding: its input is saved as $BZ_FUZZ_TMP/<kind>-<target>-<hash> and
 * the driver exits 1. FILE lists findings already traced to a library (one
 * "<target> <hash> <why>" per line): reported, not failed. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz_targets.h"

#define MAX_INPUT (1u << 20)
#define LIMIT_S 10 /* per input: a hang, not a slow input */

static uint64_t rng_state = 0x62617a6161722d66ULL;

static uint64_t next(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static size_t below(size_t n)
{
    return n ? (size_t)(next() % n) : 0;
}

/* Tokens that parsers of JSON, templates and numbers trip on. */
static const char *const dict[] = {
    "{",   "}",     "[",      "]",      "\"",   ":",    ",",       "null", "true", "-1",
    "0",   "1e400", "-1e400", "9.3e18", "1e19", "NaN",  "\\u0000", "{{",   "}}",   "{{#",
    "{{/", "{{^",   "\\",     "1.5",    "\"\"", "[[[[", "}}}}",    "\xff", "\x00", "2147483648",
};

static size_t mutate(uint8_t *buf, size_t len, size_t cap, const uint8_t *other, size_t olen)
{
    int rounds = 1 + (int)below(4);
    for (int r = 0; r < rounds; r++) {
        switch (below(8)) {
        case 0: /* flip a bit */
            if (len)
                buf[below(len)] ^= (uint8_t)(1u << below(8));
            break;
        case 1: { /* an interesting byte */
            static const uint8_t v[] = {0, 0xff, 0x7f, 0x80, 0x01, 0x20, 0x22, 0x7b};
            if (len)
                buf[below(len)] = v[below(sizeof v)];
            break;
        }
        case 2: { /* an interesting 64-bit value (sizes, offsets, ranks) */
            static const uint64_t v[] = {
                0,         1, 32, 33, 0xffffffffULL, 0xffffffffffffffffULL, 0x8000000000000000ULL,
                1ULL << 40};
            if (len >= 8) {
                uint64_t x = v[below(sizeof v / sizeof v[0])];
                memcpy(buf + below(len - 7), &x, below(2) ? 8 : 4);
            }
            break;
        }
        case 3: { /* insert a dictionary token */
            const char *t = dict[below(sizeof dict / sizeof dict[0])];
            size_t tl = strlen(t) ? strlen(t) : 1, at = below(len + 1);
            if (len + tl <= cap) {
                memmove(buf + at + tl, buf + at, len - at);
                memcpy(buf + at, t, tl);
                len += tl;
            }
            break;
        }
        case 4: { /* delete a range */
            if (len) {
                size_t at = below(len), n = 1 + below(len - at < 64 ? len - at : 64);
                memmove(buf + at, buf + at + n, len - at - n);
                len -= n;
            }
            break;
        }
        case 5: { /* duplicate a range */
            if (len) {
                size_t at = below(len), n = 1 + below(len - at < 64 ? len - at : 64);
                size_t to = below(len + 1);
                if (len + n <= cap) {
                    uint8_t tmp[64];
                    memcpy(tmp, buf + at, n);
                    memmove(buf + to + n, buf + to, len - to);
                    memcpy(buf + to, tmp, n);
                    len += n;
                }
            }
            break;
        }
        case 6: /* truncate */
            if (len)
                len = below(len + 1);
            break;
        default: { /* splice in a piece of another seed */
            if (olen && len) {
                size_t from = below(olen), n = 1 + below(olen - from < 256 ? olen - from : 256);
                size_t at = below(len);
                if (at + n > len)
                    n = len - at;
                memcpy(buf + at, other + from, n);
            }
            break;
        }
        }
    }
    return len;
}

static uint8_t *load(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *b = malloc(MAX_INPUT);
    *len = b ? fread(b, 1, MAX_INPUT, f) : 0;
    fclose(f);
    return b;
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* Whether target/hash is listed in the known-findings file. */
static int known(const char *file, const char *target, uint64_t hash)
{
    FILE *f = file ? fopen(file, "r") : NULL;
    char line[512], t[64];
    unsigned long long h;
    int found = 0;
    while (f && !found && fgets(line, sizeof line, f))
        found = line[0] != '#' && sscanf(line, "%63s %llx", t, &h) == 2 && strcmp(t, target) == 0 &&
                h == hash;
    if (f)
        fclose(f);
    return found;
}

/* Run one input in a child. 0 fine, 1 crash, 2 hang. */
static int run_isolated(const struct bz_fuzz_target *t, const uint8_t *buf, size_t len)
{
    pid_t pid = fork();
    if (pid < 0)
        return t->run(buf, len), 0;
    if (pid == 0) {
        alarm(LIMIT_S);
        t->run(buf, len);
        _exit(0);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        ;
    if (WIFSIGNALED(st))
        return WTERMSIG(st) == SIGALRM ? 2 : 1;
    return WEXITSTATUS(st) ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s TARGET ITERATIONS [--known FILE] SEED_FILE...\n", argv[0]);
        return 2;
    }
    const struct bz_fuzz_target *t = bz_fuzz_find(argv[1]);
    if (!t) {
        fprintf(stderr, "unknown target %s\n", argv[1]);
        return 2;
    }
    long iterations = strtol(argv[2], NULL, 10);
    const char *known_file = NULL;
    int first = 3;
    if (argc > 5 && strcmp(argv[3], "--known") == 0) {
        known_file = argv[4];
        first = 5;
    }
    int n_seeds = argc - first;
    uint8_t **seeds = calloc((size_t)n_seeds, sizeof *seeds);
    size_t *lens = calloc((size_t)n_seeds, sizeof *lens);
    uint8_t *buf = malloc(MAX_INPUT);
    if (!seeds || !lens || !buf)
        return 1;
    for (int i = 0; i < n_seeds; i++)
        if (!(seeds[i] = load(argv[first + i], &lens[i]))) {
            fprintf(stderr, "cannot read seed %s\n", argv[first + i]);
            return 2;
        }
    const char *dir = getenv("BZ_FUZZ_TMP");
    if (!dir || !dir[0])
        dir = "/tmp";
    long findings = 0, known_findings = 0;
    for (long it = -n_seeds; it < iterations; it++) {
        size_t len;
        if (it < 0) { /* the seeds themselves first */
            len = lens[-it - 1];
            memcpy(buf, seeds[-it - 1], len);
        } else {
            int s = (int)(it % n_seeds), o = (int)below((size_t)n_seeds);
            memcpy(buf, seeds[s], lens[s]);
            len = mutate(buf, lens[s], MAX_INPUT, seeds[o], lens[o]);
        }
        int r = run_isolated(t, buf, len);
        if (!r)
            continue;
        uint64_t h = fnv1a(buf, len);
        const char *kind = r == 2 ? "hang" : "crash";
        char path[600];
        snprintf(path, sizeof path, "%s/%s-%s-%016llx", dir, kind, t->name, (unsigned long long)h);
        FILE *f = fopen(path, "wb");
        if (f) {
            fwrite(buf, 1, len, f);
            fclose(f);
        }
        if (known(known_file, t->name, h)) {
            known_findings++;
            printf("%s: input %ld: known %s (%016llx, listed in %s), saved as %s\n", t->name, it,
                   kind, (unsigned long long)h, known_file, path);
        } else {
            findings++;
            printf("%s: input %ld: %s (%016llx), saved as %s\n", t->name, it, kind,
                   (unsigned long long)h, path);
        }
    }
    printf("%s: %ld mutated inputs from %d seed(s): %ld finding(s), %ld known\n", t->name,
           iterations, n_seeds, findings, known_findings);
    for (int i = 0; i < n_seeds; i++)
        free(seeds[i]);
    free(seeds);
    free(lens);
    free(buf);
    return findings ? 1 : 0;
}
