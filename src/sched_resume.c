/* sched_resume: what a run plays. Rank 0 decides which games are still to
 * play: refuses to touch existing output without --resume, and with it
 * collects the games committed in OUT and in the shards of OUT.parts/
 * (unreadable shards set aside as *.bad), checks that the spec describes the
 * same games (sweep.id), and removes the parts after the merge. Never calls
 * MPI, never writes HDF5 (out reads the shards). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bazaar/out.h"
#include "bazaar/rng.h"
#include "bazaar/sched.h"
#include "bazaar/spec.h"
#include "sched_internal.h"

#define SWEEP_ID "sweep.id"     /* the sweep's fingerprint, written once */
#define SWEEP_PROV "sweep.prov" /* provenance of the latest attempt */

static int path_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

void bz_sched_plan_cleanup(struct bz_sched_plan *p)
{
    free(p->todo);
    for (size_t i = 0; i < p->n_sources; i++)
        free(p->sources[i]);
    free(p->sources);
    for (size_t i = 0; i < p->n_bad; i++)
        free(p->bad[i]);
    free(p->bad);
    memset(p, 0, sizeof *p);
}

static int add_source(struct bz_sched_plan *p, const char *path)
{
    char **s = realloc(p->sources, (p->n_sources + 1) * sizeof *s);
    if (!s)
        return BZ_ENOMEM;
    p->sources = s;
    p->sources[p->n_sources] = strdup(path);
    if (!p->sources[p->n_sources])
        return BZ_ENOMEM;
    p->n_sources++;
    return BZ_OK;
}

/* Mark the games committed in path as done; an unreadable file is noted to
 * be set aside (bz_sched_plan_set_aside) and its games played again. */
static int scan_source(struct bz_sched_plan *p, const char *path, int quick, unsigned char *done,
                       struct bz_err *err)
{
    int64_t *ids = NULL;
    size_t n = 0;
    struct bz_err e = {0};
    int rc = quick ? bz_shard_committed_quick(path, &ids, &n, &e)
                   : bz_shard_committed(path, &ids, &n, &e);
    if (rc != BZ_OK) {
        char **b = realloc(p->bad, (p->n_bad + 1) * sizeof *b);
        if (!b)
            return bz_err_set(err, BZ_ENOMEM, "out of memory");
        p->bad = b;
        size_t len = strlen(path) + strlen(e.msg) + 2;
        if (!(p->bad[p->n_bad] = malloc(len)))
            return bz_err_set(err, BZ_ENOMEM, "out of memory");
        /* "path\0why": the reason goes with the file to the message */
        memcpy(p->bad[p->n_bad], path, strlen(path) + 1);
        memcpy(p->bad[p->n_bad] + strlen(path) + 1, e.msg, strlen(e.msg) + 1);
        p->n_bad++;
        return BZ_OK;
    }
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < p->n_games)
            done[ids[i]] = 1;
    free(ids);
    if (add_source(p, path))
        return bz_err_set(err, BZ_ENOMEM, "out of memory");
    return BZ_OK;
}

int bz_sched_plan_set_aside(struct bz_sched_plan *p, struct bz_err *err)
{
    for (; p->n_bad > 0; p->n_bad--) {
        char *path = p->bad[p->n_bad - 1];
        const char *why = path + strlen(path) + 1;
        char bad[BZ_SCHED_PATH_MAX + 16];
        int nothing = 0;
        struct bz_err je = {0};
        if (bz_shard_recorded_nothing(path, &nothing, &je) == BZ_OK && nothing) {
            /* cut off before its first commit was journaled (a kill at the
             * start of an attempt): it recorded no game, so nothing is lost
             * and there is nothing to inspect */
            snprintf(bad, sizeof bad, "%s.journal", path);
            if (unlink(path) != 0 || (unlink(bad) != 0 && errno != ENOENT))
                return bz_err_set(err, BZ_EIO, "%s cannot be read (%s) and cannot be removed: %s",
                                  path, why, strerror(errno));
            fprintf(stderr,
                    "bazaar: %s cannot be read (%s) but recorded no game (its journal "
                    "confirms none, or the file is empty): removed\n",
                    path, why);
            free(path);
            continue;
        }
        snprintf(bad, sizeof bad, "%s.bad", path);
        if (rename(path, bad) != 0)
            return bz_err_set(err, BZ_EIO, "%s cannot be read (%s) and cannot be set aside: %s",
                              path, why, strerror(errno));
        fprintf(stderr,
                "bazaar: %s cannot be read (%s); set aside as %s, its games will be played "
                "again\n",
                path, why, bad);
        free(path);
    }
    return BZ_OK;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A sweep's identity: its games' seeds (each a hash of every parameter, the
 * lineup and the repetition) in id order. Resuming with a spec that differs
 * only in things that do not change the games (budget, LLM concurrency,
 * output) is allowed; anything else is refused. */
static uint64_t sweep_fingerprint(const struct bz_grid *grid)
{
    uint64_t h = bz_hash64((uint64_t)bz_grid_count(grid));
    for (int64_t id = 0; id < bz_grid_count(grid); id++) {
        struct bz_game_config cfg;
        if (bz_grid_config(grid, id, &cfg, NULL) != BZ_OK)
            return 0;
        h = bz_hash_combine(h, bz_hash_combine(cfg.seed, cfg.env_seed));
        h = bz_hash_combine(h, bz_hash_str(cfg.ops->name));
    }
    return h;
}

/* The sweep.id of a parts folder must be this spec's; missing: *missing = 1
 * (written by bz_sched_plan_prepare). Reads only. */
static int check_sweep_id(const char *parts, uint64_t fp, int *missing, struct bz_err *err)
{
    char path[BZ_SCHED_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/" SWEEP_ID, parts);
    *missing = 0;
    FILE *f = fopen(path, "r");
    if (!f && errno == ENOENT) {
        *missing = 1;
        return BZ_OK;
    }
    if (!f)
        return bz_err_set(err, BZ_EIO, "cannot open %s: %s", path, strerror(errno));
    unsigned long long old = 0;
    int n = fscanf(f, "%llx", &old);
    fclose(f);
    if (n != 1 || old != (unsigned long long)fp)
        return bz_err_set(err, BZ_EINVAL,
                          "%s: this spec describes other games than the sweep being resumed "
                          "(only budget, llm settings and output may change); use the same "
                          "spec or choose another -o",
                          parts);
    return BZ_OK;
}

static int write_sweep_id(const char *parts, uint64_t fp, struct bz_err *err)
{
    char path[BZ_SCHED_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/" SWEEP_ID, parts);
    FILE *f = fopen(path, "wx");
    if (!f)
        return bz_err_set(err, BZ_EIO, "cannot create %s: %s", path, strerror(errno));
    fprintf(f, "%016llx\n", (unsigned long long)fp);
    return fclose(f) == 0 ? BZ_OK : bz_err_set(err, BZ_EIO, "cannot write %s", path);
}

/* mkdir -p of the folder that will hold path (a file). */
static int make_parent_dirs(const char *path, struct bz_err *err)
{
    char dir[BZ_SCHED_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return BZ_OK;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0777) != 0 && errno != EEXIST)
            return bz_err_set(err, BZ_EIO, "cannot create %s: %s", dir, strerror(errno));
        *p = '/';
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return bz_err_set(err, BZ_EIO, "cannot create %s: %s", dir, strerror(errno));
    return BZ_OK;
}

int bz_sched_plan_create(struct bz_sched_plan *p, const struct bz_run_options *opt, const char *out,
                         const struct bz_grid *grid, int quick, struct bz_err *err)
{
    int rc = BZ_OK;
    unsigned char *done = NULL;
    DIR *dir = NULL;
    char **names = NULL;
    size_t n_names = 0;

    snprintf(p->out, sizeof p->out, "%s", out);
    snprintf(p->parts, sizeof p->parts, "%s.parts", out);
    int64_t n_games = bz_grid_count(grid);
    p->n_games = n_games;
    p->attempt = 1;

    if (!opt->resume) {
        if (path_exists(p->out))
            return bz_err_set(err, BZ_EINVAL,
                              "%s exists; use --resume to continue that sweep, or choose "
                              "another -o",
                              p->out);
        if (path_exists(p->parts))
            return bz_err_set(err, BZ_EINVAL,
                              "%s exists (shards of an unfinished sweep); use --resume to "
                              "finish it, or remove it",
                              p->parts);
    }
    done = calloc((size_t)n_games + 1, 1);
    if (!done)
        return bz_err_set(err, BZ_ENOMEM, "out of memory");
    if (opt->resume && path_exists(p->out)) {
        rc = scan_source(p, p->out, quick, done, err);
        if (rc)
            goto out;
    }
    p->fingerprint = sweep_fingerprint(grid);
    p->new_parts = !path_exists(p->parts);
    p->new_id = 1;
    if (p->new_parts)
        goto todo; /* nothing recorded in parts yet */
    rc = check_sweep_id(p->parts, p->fingerprint, &p->new_id, err);
    if (rc)
        goto out;
    dir = opendir(p->parts);
    if (!dir) {
        rc = bz_err_set(err, BZ_EIO, "cannot read %s: %s", p->parts, strerror(errno));
        goto out;
    }
    for (struct dirent *de; (de = readdir(dir));) {
        int a, r, seg, used = 0;
        if (sscanf(de->d_name, "a%d-r%d-%d.h5%n", &a, &r, &seg, &used) != 3 || !used)
            continue;
        if (a >= p->attempt)
            p->attempt = a + 1;
        if (de->d_name[used] != '\0') /* .bad, .journal */
            continue;
        char **nn = realloc(names, (n_names + 1) * sizeof *nn);
        if (!nn) {
            rc = bz_err_set(err, BZ_ENOMEM, "out of memory");
            goto out;
        }
        names = nn;
        names[n_names] = malloc(strlen(p->parts) + strlen(de->d_name) + 2);
        if (!names[n_names]) {
            rc = bz_err_set(err, BZ_ENOMEM, "out of memory");
            goto out;
        }
        sprintf(names[n_names++], "%s/%s", p->parts, de->d_name);
    }
    if (n_names)
        qsort(names, n_names, sizeof *names, compare_names);
    for (size_t i = 0; i < n_names; i++) {
        rc = scan_source(p, names[i], quick, done, err);
        if (rc)
            goto out;
    }
todo:
    p->todo = malloc(((size_t)n_games + 1) * sizeof *p->todo);
    if (!p->todo) {
        rc = bz_err_set(err, BZ_ENOMEM, "out of memory");
        goto out;
    }
    for (int64_t g = 0; g < n_games; g++)
        if (!done[g])
            p->todo[p->n_todo++] = g;
    if (opt->resume && p->n_todo > 0 && bz_spec_has_llm(bz_grid_spec(grid)))
        for (size_t i = 0; i < p->n_sources && !rc; i++)
            rc = bz_sched_add_spend(p->sources[i], &p->spent_tokens, &p->spent_cost, err);
out:
    if (dir)
        closedir(dir);
    for (size_t i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    free(done);
    return rc;
}

void bz_sched_remove_parts(const char *parts)
{
    DIR *dir = opendir(parts);
    if (!dir)
        return;
    int kept = 0;
    for (struct dirent *de; (de = readdir(dir));) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        size_t len = strlen(de->d_name);
        if (len > 4 && strcmp(de->d_name + len - 4, ".bad") == 0) {
            kept++;
            continue;
        }
        char path[BZ_SCHED_PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", parts, de->d_name);
        unlink(path);
    }
    closedir(dir);
    if (kept)
        fprintf(stderr, "bazaar: %d unreadable shard(s) kept in %s for inspection\n", kept, parts);
    else
        rmdir(parts);
}

/* Which of n_ranks removes shard `name`: its writer's rank (the "-r<rank>-"
 * of a<attempt>-r<rank>-<segment>.h5) modulo n_ranks, else a hash of the
 * name: the same on every rank whenever it lists the folder. */
static int shard_remover(const char *name, int n_ranks)
{
    int attempt, rank, segment;
    if (sscanf(name, "a%d-r%d-%d.h5", &attempt, &rank, &segment) == 3 && rank >= 0)
        return rank % n_ranks;
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *c = name; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
    return (int)(h % (uint32_t)n_ranks);
}

void bz_sched_remove_shards(const char *parts, int rank, int n_ranks)
{
    DIR *dir = opendir(parts);
    if (!dir)
        return;
    for (struct dirent *de; (de = readdir(dir));) {
        size_t len = strlen(de->d_name);
        /* journals go with their shard; .bad files and the rest: rank 0 */
        if (len <= 3 || strcmp(de->d_name + len - 3, ".h5") != 0 ||
            shard_remover(de->d_name, n_ranks) != rank)
            continue;
        char path[BZ_SCHED_PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", parts, de->d_name);
        unlink(path);
        snprintf(path, sizeof path, "%s/%s.journal", parts, de->d_name);
        unlink(path);
    }
    closedir(dir);
}

/* sweep.prov: "key value" lines, then a line "spec_json" and the spec's JSON
 * to the end of the file. Written whole to a temporary name, then renamed. */
static int write_provenance(const char *parts, const struct bz_provenance *prov, struct bz_err *err)
{
    char path[BZ_SCHED_PATH_MAX + 16], tmp[BZ_SCHED_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/" SWEEP_PROV, parts);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return bz_err_set(err, BZ_EIO, "cannot create %s: %s", tmp, strerror(errno));
#define S(x) ((x) ? (x) : "")
    fprintf(f,
            "bazaar-provenance 1\nversion %s\ngit_commit %s\nhosts %s\nstarted_at %s\n"
            "ranks %lld\nn_games %lld\nspec_json\n%s",
            S(prov->version), S(prov->git_commit), S(prov->hosts), S(prov->started_at),
            (long long)prov->ranks, (long long)prov->n_games, S(prov->spec_json));
#undef S
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return bz_err_set(err, BZ_EIO, "cannot write %s: %s", path, strerror(errno));
    }
    return BZ_OK;
}

int bz_sched_plan_prepare(struct bz_sched_plan *p, const struct bz_provenance *prov,
                          struct bz_err *err)
{
    int rc = make_parent_dirs(p->out, err);
    if (rc)
        return rc;
    if (mkdir(p->parts, 0777) != 0 && errno != EEXIST)
        return bz_err_set(err, BZ_EIO, "cannot create %s: %s", p->parts, strerror(errno));
    if ((rc = bz_sched_plan_set_aside(p, err)))
        return rc;
    if (p->new_id) {
        if ((rc = write_sweep_id(p->parts, p->fingerprint, err)))
            return rc;
        p->new_id = 0;
    }
    return write_provenance(p->parts, prov, err);
}

#define PROV_MAX (16 << 20)

int bz_sched_parts_provenance(const char *parts, struct bz_provenance *prov, char **buf,
                              struct bz_err *err)
{
    char path[BZ_SCHED_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/" SWEEP_PROV, parts);
    *buf = NULL;
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT
                   ? BZ_OK
                   : bz_err_set(err, BZ_EIO, "cannot open %s: %s", path, strerror(errno));
    char *b = malloc(PROV_MAX + 1);
    size_t n = b ? fread(b, 1, PROV_MAX + 1, f) : 0;
    int read_err = ferror(f);
    fclose(f);
    if (!b)
        return bz_err_set(err, BZ_ENOMEM, "out of memory");
    if (read_err || n > PROV_MAX) {
        free(b);
        return bz_err_set(err, BZ_EIO, "%s: cannot read (or larger than %d bytes)", path, PROV_MAX);
    }
    b[n] = '\0';
    struct bz_provenance p = {0};
    int have = 0, ok = strncmp(b, "bazaar-provenance 1\n", 20) == 0;
    for (char *line = ok ? b + 20 : NULL; line && *line;) {
        char *nl = strchr(line, '\n');
        if (!nl)
            break;
        *nl = '\0';
        if (strcmp(line, "spec_json") == 0) {
            p.spec_json = nl + 1;
            have = 1;
            break;
        }
        char *sp = strchr(line, ' ');
        char *v = sp ? sp + 1 : nl;
        if (sp)
            *sp = '\0';
        if (strcmp(line, "version") == 0)
            p.version = v;
        else if (strcmp(line, "git_commit") == 0)
            p.git_commit = v;
        else if (strcmp(line, "hosts") == 0)
            p.hosts = v;
        else if (strcmp(line, "started_at") == 0)
            p.started_at = v;
        else if (strcmp(line, "ranks") == 0)
            p.ranks = strtoll(v, NULL, 10);
        else if (strcmp(line, "n_games") == 0)
            p.n_games = strtoll(v, NULL, 10);
        line = nl + 1;
    }
    if (!have || !p.version || !p.git_commit || p.n_games <= 0) {
        free(b);
        return bz_err_set(err, BZ_EINVAL,
                          "%s: not a provenance file bazaar wrote (expected \"bazaar-provenance "
                          "1\", version, git_commit, n_games and spec_json)",
                          path);
    }
    *prov = p;
    *buf = b;
    return BZ_OK;
}
