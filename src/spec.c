/* spec: reads and validates a sweep spec (JSON, via cJSON) into struct bz_spec.
 * Refuses bad input before any game starts; every message names the origin
 * (file) and the key path. Must never run a game or touch the network.
 *
 * The spec format (strict JSON, no comments):
 *
 *   {
 *     "name": "quickstart",          optional; default: the file's stem
 *     "game": "electricity",         required; a compiled-in game
 *     "seed": 42,                    required; integer in [0, 2^53] (sweep seed)
 *     "repetitions": 20,             optional; integer >= 1, default 1
 *     "fixed": { "max_turns": 24, "n_agents": 4, "lineup": "balanced" },
 *                                    any of the game's parameters, one value each
 *     "grid":  { "scarcity": [0.8, 1.0], "communication": [true, false],
 *                "lineup": ["balanced", "gap"], "llm.memory_turns": [0, 3] },
 *                                    any parameter as a non-empty list of
 *                                    distinct values; "llm.memory_turns"
 *                                    varies the LLM agents' memory (then
 *                                    not also in "llm")
 *     "lineups": { "balanced": ["heuristic:truthful?skill=0.5", "gpt-4o"] },
 *     "output":  "results/quickstart.h5",      optional; default results/<name>.h5
 *     "models":  "sweeps/models.json",         optional (LLM models registry)
 *     "prompts": "prompts/electricity",        optional (LLM prompt templates)
 *     "llm": { "live_games": 16, "concurrency": 64, "timeout_s": 60,
 *              "max_retries": 6, "temperature": 0.7, "max_output_tokens": 512,
 *              "memory_turns": 0, "memory_max_tokens": 4000, "reasoning": false,
 *              "max_game_seconds": 0,
 *              "cache": "results/cache" },     optional; these are the defaults;
 *                                              "cache": "" switches the cache off
 *     "budget": { "max_tokens": 1000000, "max_cost_usd": 5.0 }
 *                                    optional; 0 or absent = no limit
 *   }
 *
 * Parameters: types and bounds come from the game's struct bz_param_desc:
 * NUM a number in [min,max], INT an integer in [min,max], BOOL true/false,
 * STR a string. A parameter may not be both fixed and in the grid; one the
 * spec does not name takes the game's default.
 *
 * Lineups: "lineup" is set either in "fixed" (a name from "lineups" or an
 * inline array of agent strings) or in "grid" (a list whose entries are names
 * or inline arrays); one of the two is required. An inline lineup is named by
 * its agent strings joined with ",". Agent strings:
 *   "heuristic:<policy>[?skill=<0..1>]"  a policy of the game, skill default 1
 *   anything else                        an LLM model id (from the registry)
 * A lineup shorter than n_agents is repeated cyclically to fill n_agents
 * (["a","b"] with n_agents 5 plays a,b,a,b,a); a lineup longer than n_agents
 * is an error, checked for every n_agents x lineup combination of the grid.
 *
 * Unknown or duplicate keys anywhere are errors. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bazaar/file.h"
#include "spec_internal.h"

#define PATH_MAX_LEN 256
#define GOT_MAX 48
#define MAX_EXACT_INT 9007199254740992.0 /* 2^53: larger JSON integers lose digits */

struct ctx {
    const char *origin;
    struct bz_err *err;
    struct bz_spec *s;
};

/* llm.memory_turns as a grid axis: an integer, outside the environment (a
 * treatment, like communication: games that differ only in it share
 * env_seed). */
static const struct bz_param_desc memory_desc = {
    .name = BZ_SPEC_MEMORY_KEY,
    .kind = BZ_PARAM_INT,
    .max = BZ_SPEC_MEMORY_MAX,
    .help = "earlier turns an LLM agent sees as chat history",
};

/* "origin: path: message", always BZ_EINVAL. */
__attribute__((format(printf, 3, 4))) static int fail(struct ctx *c, const char *path,
                                                      const char *fmt, ...)
{
    char msg[BZ_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (path && *path)
        return bz_err_set(c->err, BZ_EINVAL, "%s: %s: %s", c->origin, path, msg);
    return bz_err_set(c->err, BZ_EINVAL, "%s: %s", c->origin, msg);
}

/* Lookups on the ops table, local so that the parser does not pull in the
 * registry of compiled-in games (tests link it with a fake game). */
static int param_index(const struct bz_game_ops *ops, const char *name)
{
    for (size_t i = 0; i < ops->n_params; i++)
        if (strcmp(ops->params[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int find_policy(const struct bz_game_ops *ops, const char *name)
{
    for (size_t i = 0; i < ops->n_policies; i++)
        if (strcmp(ops->policies[i]->name, name) == 0)
            return 1;
    return 0;
}

/* Mark a key path cut short by snprintf with "...". */
static void mark_cut(char *buf, int r)
{
    if (r < 0 || r >= PATH_MAX_LEN)
        memcpy(buf + PATH_MAX_LEN - 4, "...", 4);
}

static void join_key(char *buf, const char *path, const char *key)
{
    int r;
    if (path && *path)
        r = snprintf(buf, PATH_MAX_LEN, "%s.%s", path, key);
    else
        r = snprintf(buf, PATH_MAX_LEN, "%s", key);
    mark_cut(buf, r);
}

static void join_index(char *buf, const char *path, int i)
{
    mark_cut(buf, snprintf(buf, PATH_MAX_LEN, "%s[%d]", path, i));
}

/* A short rendering of a JSON value for "got ..." (truncated). */
static const char *got(const cJSON *it, char *buf)
{
    char *txt = it ? cJSON_PrintUnformatted(it) : NULL;
    if (!txt) {
        snprintf(buf, GOT_MAX, "%s", it ? "?" : "nothing");
        return buf;
    }
    if (strlen(txt) >= GOT_MAX)
        snprintf(buf, GOT_MAX, "%.*s...", GOT_MAX - 4, txt);
    else
        snprintf(buf, GOT_MAX, "%s", txt);
    cJSON_free(txt);
    return buf;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static int nomem(struct ctx *c)
{
    return bz_err_set(c->err, BZ_ENOMEM, "%s: out of memory", c->origin);
}

/* "in [0,1]", "in [1,100]", ">= 0", or "" for unbounded. */
static void bounds_text(char *buf, size_t n, double min, double max)
{
    int lo = isfinite(min) && min > -1e300, hi = isfinite(max) && max < 1e300;
    if (lo && hi)
        snprintf(buf, n, " in [%.16g,%.16g]", min, max);
    else if (lo)
        snprintf(buf, n, " >= %.16g", min);
    else if (hi)
        snprintf(buf, n, " <= %.16g", max);
    else
        buf[0] = '\0';
}

/* A number (integer=1: an integral one) in [min,max]. */
static int get_number(struct ctx *c, const cJSON *it, const char *path, double min, double max,
                      int integer, double *out)
{
    char b[GOT_MAX], bounds[96];
    bounds_text(bounds, sizeof bounds, min, max);
    double v = cJSON_IsNumber(it) ? it->valuedouble : NAN;
    if (!cJSON_IsNumber(it) || !isfinite(v) || (integer && v != floor(v)) || v < min || v > max)
        return fail(c, path, "expected %s%s, got %s", integer ? "an integer" : "a number", bounds,
                    got(it, b));
    *out = v;
    return BZ_OK;
}

/* A string of 1..max_len-1 bytes (allow_empty: 0..). */
static int get_string(struct ctx *c, const cJSON *it, const char *path, size_t max_len,
                      int allow_empty, const char **out)
{
    char b[GOT_MAX];
    *out = NULL; /* set on every path: -O3 cannot see that fail() returns non-zero */
    if (!cJSON_IsString(it) || !it->valuestring)
        return fail(c, path, "expected a string, got %s", got(it, b));
    size_t n = strlen(it->valuestring);
    if (n == 0 && !allow_empty)
        return fail(c, path, "expected a non-empty string");
    if (n >= max_len)
        return fail(c, path, "string too long (%zu bytes, at most %zu)", n, max_len - 1);
    *out = it->valuestring;
    return BZ_OK;
}

static void known_list(char *buf, size_t n, const char *const *names, size_t count)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < count && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "", names[i]);
}

/* An object whose keys all belong to known (names NULL: any key) and none
 * repeats. */
static int check_object(struct ctx *c, const cJSON *obj, const char *path, const char *const *known,
                        size_t n_known)
{
    char b[GOT_MAX], p[PATH_MAX_LEN], list[512];
    if (!cJSON_IsObject(obj))
        return fail(c, path, "expected an object, got %s", got(obj, b));
    for (const cJSON *it = obj->child; it; it = it->next) {
        join_key(p, path, it->string);
        for (const cJSON *prev = obj->child; prev != it; prev = prev->next)
            if (strcmp(prev->string, it->string) == 0)
                return fail(c, p, "duplicate key");
        if (!known)
            continue;
        size_t k = 0;
        while (k < n_known && strcmp(known[k], it->string) != 0)
            k++;
        if (k == n_known) {
            known_list(list, sizeof list, known, n_known);
            return fail(c, p, "unknown key (expected one of: %s)", list);
        }
    }
    return BZ_OK;
}

/* One value of parameter d: into *num, or a copy into *str for STR params. */
static int parse_value(struct ctx *c, const struct bz_param_desc *d, const cJSON *it,
                       const char *path, double *num, char **str)
{
    char b[GOT_MAX];
    int rc;
    *num = 0;
    switch (d->kind) {
    case BZ_PARAM_NUM:
    case BZ_PARAM_INT: return get_number(c, it, path, d->min, d->max, d->kind == BZ_PARAM_INT, num);
    case BZ_PARAM_BOOL:
        if (!cJSON_IsBool(it))
            return fail(c, path, "expected true or false, got %s", got(it, b));
        *num = cJSON_IsTrue(it) ? 1.0 : 0.0;
        return BZ_OK;
    case BZ_PARAM_STR: {
        const char *v;
        if ((rc = get_string(c, it, path, 4096, 1, &v)))
            return rc;
        if (!(*str = dup_str(v)))
            return nomem(c);
        return BZ_OK;
    }
    }
    return bz_err_set(c->err, BZ_EINTERNAL, "%s: %s: parameter kind %d unknown", c->origin, path,
                      (int)d->kind);
}

static int param_alloc(struct ctx *c, struct bz_spec_param *p, const struct bz_param_desc *d, int n)
{
    p->n = n;
    p->num = calloc((size_t)n, sizeof *p->num);
    p->str = d->kind == BZ_PARAM_STR ? calloc((size_t)n, sizeof *p->str) : NULL;
    if (!p->num || (d->kind == BZ_PARAM_STR && !p->str))
        return nomem(c);
    return BZ_OK;
}

static void param_free(struct bz_spec_param *p)
{
    if (p->str)
        for (int i = 0; i < p->n; i++)
            free(p->str[i]);
    free(p->str);
    free(p->num);
    p->str = NULL;
    p->num = NULL;
    p->n = 0;
}

/* ---- agents and lineups ---- */

static const char HEUR[] = "heuristic:";

/* The query of "heuristic:<policy>?<query>": only skill=<0..1>. */
static int parse_query(struct ctx *c, const char *path, const char *label, const char *q,
                       double *skill)
{
    int seen = 0;
    while (*q) {
        const char *end = strchr(q, '&');
        size_t len = end ? (size_t)(end - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        size_t klen = eq ? (size_t)(eq - q) : len;
        if (klen != 5 || strncmp(q, "skill", 5) != 0)
            return fail(c, path, "unknown option \"%.*s\" in agent \"%s\" (known: skill)",
                        (int)klen, q, label);
        if (seen++)
            return fail(c, path, "skill given twice in agent \"%s\"", label);
        char val[64];
        size_t vlen = eq ? len - klen - 1 : 0;
        if (vlen == 0 || vlen >= sizeof val)
            return fail(c, path, "skill in agent \"%s\": expected a number in [0,1], got \"%.*s\"",
                        label, (int)vlen, eq ? eq + 1 : "");
        memcpy(val, eq + 1, vlen);
        val[vlen] = '\0';
        char *stop;
        errno = 0;
        double v = strtod(val, &stop);
        if (*stop || errno || !isfinite(v) || v < 0 || v > 1 || isspace((unsigned char)val[0]))
            return fail(c, path, "skill in agent \"%s\": expected a number in [0,1], got \"%s\"",
                        label, val);
        *skill = v;
        q += len;
        if (*q == '&')
            q++;
    }
    return BZ_OK;
}

static int parse_agent(struct ctx *c, const cJSON *it, const char *path, struct bz_agent_spec *a)
{
    char b[GOT_MAX];
    const struct bz_game_ops *ops = c->s->ops;
    memset(a, 0, sizeof *a);
    if (!cJSON_IsString(it) || !it->valuestring)
        return fail(c, path,
                    "expected an agent string (\"heuristic:<policy>?skill=<0..1>\" or a model id), "
                    "got %s",
                    got(it, b));
    const char *s = it->valuestring;
    size_t n = strlen(s);
    if (n == 0)
        return fail(c, path, "expected an agent string, got \"\"");
    if (n >= sizeof a->label)
        return fail(c, path, "agent string too long (%zu bytes, at most %zu)", n,
                    sizeof a->label - 1);
    for (size_t i = 0; i < n; i++)
        if (isspace((unsigned char)s[i]) || iscntrl((unsigned char)s[i]))
            return fail(c, path, "agent \"%s\": no white space allowed", s);
    memcpy(a->label, s, n + 1);

    if (strncmp(s, "heuristic", 9) != 0) { /* an LLM model id; the registry fills capability */
        if (n >= sizeof a->policy)
            return fail(c, path, "model id \"%s\" too long (at most %zu bytes)", s,
                        sizeof a->policy - 1);
        a->kind = BZ_AGENT_LLM;
        memcpy(a->policy, s, n + 1);
        a->skill = NAN;
        a->capability = NAN;
        return BZ_OK;
    }
    if (strncmp(s, HEUR, sizeof HEUR - 1) != 0)
        return fail(c, path, "agent \"%s\": expected \"heuristic:<policy>?skill=<0..1>\"", s);
    const char *pol = s + sizeof HEUR - 1;
    const char *q = strchr(pol, '?');
    size_t plen = q ? (size_t)(q - pol) : strlen(pol);
    if (plen == 0)
        return fail(c, path, "agent \"%s\": expected a policy name after \"heuristic:\"", s);
    if (plen >= sizeof a->policy)
        return fail(c, path, "agent \"%s\": policy name too long", s);
    memcpy(a->policy, pol, plen);
    a->policy[plen] = '\0';
    if (!find_policy(ops, a->policy)) {
        char list[512];
        size_t used = 0;
        list[0] = '\0';
        for (size_t i = 0; i < ops->n_policies && used < sizeof list; i++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                     ops->policies[i]->name);
        return fail(c, path, "unknown policy \"%s\" for game %s (known: %s)", a->policy, ops->name,
                    list);
    }
    a->kind = BZ_AGENT_HEURISTIC;
    a->skill = 1.0;
    if (q) {
        int rc = parse_query(c, path, s, q + 1, &a->skill);
        if (rc)
            return rc;
    }
    a->capability = a->skill;
    return BZ_OK;
}

/* A lineup value: a non-empty array of agent strings. */
static int parse_lineup_array(struct ctx *c, const cJSON *arr, const char *path,
                              struct bz_spec_lineup *l)
{
    char b[GOT_MAX], p[PATH_MAX_LEN];
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
    if (!cJSON_IsArray(arr) || n == 0)
        return fail(c, path, "expected a non-empty array of agent strings, got %s", got(arr, b));
    if (!(l->agents = calloc((size_t)n, sizeof *l->agents)))
        return nomem(c);
    l->n = n;
    int i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        join_index(p, path, i);
        int rc = parse_agent(c, it, p, &l->agents[i]);
        if (rc)
            return rc;
    }
    return BZ_OK;
}

static struct bz_spec_lineup *lineup_add(struct ctx *c)
{
    struct bz_spec *s = c->s;
    struct bz_spec_lineup *nl = realloc(s->lineups, (size_t)(s->n_lineups + 1) * sizeof *nl);
    if (!nl)
        return NULL;
    s->lineups = nl;
    memset(&nl[s->n_lineups], 0, sizeof *nl);
    return &nl[s->n_lineups++];
}

/* Name an inline lineup by its agents joined with ","; a long one by a hash. */
static char *inline_name(const struct bz_spec_lineup *l)
{
    char buf[256];
    size_t used = 0;
    for (int i = 0; i < l->n; i++) {
        size_t n = strlen(l->agents[i].label);
        if (used + n + 2 > sizeof buf) {
            uint64_t h = 0;
            for (int k = 0; k < l->n; k++)
                h = bz_hash_combine(h, bz_hash_str(l->agents[k].label));
            snprintf(buf, sizeof buf, "inline:%016llx", (unsigned long long)h);
            return dup_str(buf);
        }
        if (i)
            buf[used++] = ',';
        memcpy(buf + used, l->agents[i].label, n);
        used += n;
    }
    buf[used] = '\0';
    return dup_str(buf);
}

/* One lineup reference (a name from "lineups" or an inline array) at path;
 * appends its index to the lineup axis. */
static int parse_lineup_ref(struct ctx *c, const cJSON *it, const char *path, int n_named)
{
    char b[GOT_MAX];
    struct bz_spec *s = c->s;
    int idx = -1;
    if (cJSON_IsString(it) && it->valuestring) {
        for (int i = 0; i < n_named; i++)
            if (strcmp(s->lineups[i].name, it->valuestring) == 0)
                idx = i;
        if (idx < 0) {
            char list[512];
            size_t used = 0;
            list[0] = '\0';
            for (int i = 0; i < n_named && used < sizeof list; i++)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                         s->lineups[i].name);
            return fail(c, path, "unknown lineup \"%s\" (\"lineups\" defines: %s)", it->valuestring,
                        n_named ? list : "none");
        }
    } else if (cJSON_IsArray(it)) {
        struct bz_spec_lineup *l = lineup_add(c);
        if (!l)
            return nomem(c);
        int rc = parse_lineup_array(c, it, path, l);
        if (rc)
            return rc;
        if (!(l->name = inline_name(l)))
            return nomem(c);
        idx = s->n_lineups - 1;
    } else {
        return fail(c, path, "expected a lineup name or an array of agent strings, got %s",
                    got(it, b));
    }
    for (int j = 0; j < s->n_lineup_axis; j++)
        if (strcmp(s->lineups[s->lineup_axis[j]].name, s->lineups[idx].name) == 0)
            return fail(c, path, "duplicate of lineup \"%s\" (entry %d)", s->lineups[idx].name, j);
    s->lineup_axis[s->n_lineup_axis++] = idx;
    return BZ_OK;
}

static int parse_lineups(struct ctx *c, const cJSON *obj)
{
    char p[PATH_MAX_LEN];
    int rc = check_object(c, obj, "lineups", NULL, 0);
    if (rc)
        return rc;
    for (const cJSON *it = obj->child; it; it = it->next) {
        join_key(p, "lineups", it->string);
        if (!it->string[0])
            return fail(c, p, "a lineup needs a non-empty name");
        struct bz_spec_lineup *l = lineup_add(c);
        if (!l || !(l->name = dup_str(it->string)))
            return nomem(c);
        if ((rc = parse_lineup_array(c, it, p, l)))
            return rc;
    }
    return BZ_OK;
}

/* ---- parameters ---- */

static int params_init(struct ctx *c)
{
    struct bz_spec *s = c->s;
    const struct bz_game_ops *ops = s->ops;
    if (ops->n_params > BZ_MAX_PARAMS)
        return bz_err_set(c->err, BZ_EINTERNAL, "game %s has %zu parameters, at most %d", ops->name,
                          ops->n_params, BZ_MAX_PARAMS);
    s->idx_n_agents = param_index(ops, "n_agents");
    s->idx_communication = param_index(ops, "communication");
    if (s->idx_n_agents < 0 || ops->params[s->idx_n_agents].kind != BZ_PARAM_INT ||
        s->idx_communication < 0 || ops->params[s->idx_communication].kind != BZ_PARAM_BOOL)
        return bz_err_set(c->err, BZ_EINTERNAL,
                          "game %s lacks the INT parameter n_agents or the BOOL communication",
                          ops->name);
    for (size_t i = 0; i < ops->n_params; i++) {
        const struct bz_param_desc *d = &ops->params[i];
        struct bz_spec_param *p = &s->params[i];
        int rc = param_alloc(c, p, d, 1);
        if (rc)
            return rc;
        p->mode = BZ_SPEC_DEFAULT;
        p->num[0] = d->kind == BZ_PARAM_STR ? 0 : d->def;
        if (d->kind == BZ_PARAM_STR && !(p->str[0] = dup_str(d->def_str ? d->def_str : "")))
            return nomem(c);
    }
    return BZ_OK;
}

static int unknown_param(struct ctx *c, const char *path, const char *key)
{
    const struct bz_game_ops *ops = c->s->ops;
    if (strcmp(key, BZ_SPEC_MEMORY_KEY) == 0)
        return fail(c, path,
                    "set one value as \"llm\": {\"memory_turns\": k}, or vary it with "
                    "grid.\"" BZ_SPEC_MEMORY_KEY "\": [k1, k2, ...]");
    for (size_t i = 0; i < ops->n_renamed; i++)
        if (strcmp(ops->renamed[i][0], key) == 0)
            return fail(c, path, "parameter %s of game %s was renamed: use %s", key, ops->name,
                        ops->renamed[i][1]);
    char list[768];
    size_t used = 0;
    list[0] = '\0';
    for (size_t i = 0; i < ops->n_params && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s, ", ops->params[i].name);
    return fail(c, path, "unknown parameter of game %s (known: %slineup, " BZ_SPEC_MEMORY_KEY ")",
                ops->name, list);
}

static int parse_fixed(struct ctx *c, const cJSON *obj, int n_named)
{
    char p[PATH_MAX_LEN];
    struct bz_spec *s = c->s;
    int rc = check_object(c, obj, "fixed", NULL, 0);
    if (rc)
        return rc;
    for (const cJSON *it = obj->child; it; it = it->next) {
        join_key(p, "fixed", it->string);
        if (strcmp(it->string, "lineup") == 0) {
            if ((rc = parse_lineup_ref(c, it, p, n_named)))
                return rc;
            s->lineup_in_grid = 0;
            continue;
        }
        int k = param_index(s->ops, it->string);
        if (k < 0)
            return unknown_param(c, p, it->string);
        const struct bz_param_desc *d = &s->ops->params[k];
        struct bz_spec_param *sp = &s->params[k];
        param_free(sp);
        if ((rc = param_alloc(c, sp, d, 1)))
            return rc;
        sp->mode = BZ_SPEC_FIXED;
        if ((rc = parse_value(c, d, it, p, &sp->num[0], sp->str ? &sp->str[0] : NULL)))
            return rc;
    }
    return BZ_OK;
}

static int same_value(const struct bz_spec_param *p, int i, int j)
{
    if (p->str)
        return strcmp(p->str[i], p->str[j]) == 0;
    return p->num[i] == p->num[j];
}

static int parse_grid(struct ctx *c, const cJSON *obj, const cJSON *fixed, int n_named)
{
    char b[GOT_MAX], p[PATH_MAX_LEN], pi[PATH_MAX_LEN];
    struct bz_spec *s = c->s;
    int rc = check_object(c, obj, "grid", NULL, 0);
    if (rc)
        return rc;
    for (const cJSON *it = obj->child; it; it = it->next) {
        join_key(p, "grid", it->string);
        int is_lineup = strcmp(it->string, "lineup") == 0;
        int is_memory = strcmp(it->string, BZ_SPEC_MEMORY_KEY) == 0;
        int k = is_lineup || is_memory ? -1 : param_index(s->ops, it->string);
        if (!is_lineup && !is_memory && k < 0)
            return unknown_param(c, p, it->string);
        if (fixed && cJSON_GetObjectItemCaseSensitive(fixed, it->string))
            return fail(c, p, "also given in fixed.%s: a parameter is either fixed or in the grid",
                        it->string);
        int n = cJSON_IsArray(it) ? cJSON_GetArraySize(it) : 0;
        if (!cJSON_IsArray(it))
            return fail(c, p, "expected a non-empty list of values, got %s", got(it, b));
        if (n == 0)
            return fail(c, p, "expected a non-empty list of values, got []");
        if (is_lineup) {
            s->n_lineup_axis = 0;
            int i = 0;
            for (const cJSON *v = it->child; v; v = v->next, i++) {
                join_index(pi, p, i);
                if ((rc = parse_lineup_ref(c, v, pi, n_named)))
                    return rc;
            }
            s->lineup_in_grid = 1;
            continue;
        }
        const struct bz_param_desc *d = is_memory ? &memory_desc : &s->ops->params[k];
        struct bz_spec_param *sp = is_memory ? &s->memory : &s->params[k];
        param_free(sp);
        if ((rc = param_alloc(c, sp, d, n)))
            return rc;
        sp->mode = BZ_SPEC_GRID;
        int i = 0;
        for (const cJSON *v = it->child; v; v = v->next, i++) {
            join_index(pi, p, i);
            if ((rc = parse_value(c, d, v, pi, &sp->num[i], sp->str ? &sp->str[i] : NULL)))
                return rc;
            for (int j = 0; j < i; j++)
                if (same_value(sp, i, j))
                    return fail(c, pi, "duplicate of %s[%d] (%s)", p, j, got(v, b));
        }
    }
    return BZ_OK;
}

/* Every n_agents value x every lineup of the axis: the lineup must fit. */
static int check_lineup_sizes(struct ctx *c)
{
    struct bz_spec *s = c->s;
    const struct bz_spec_param *na = &s->params[s->idx_n_agents];
    char lp[PATH_MAX_LEN], np[PATH_MAX_LEN];
    for (int j = 0; j < s->n_lineup_axis; j++) {
        const struct bz_spec_lineup *l = &s->lineups[s->lineup_axis[j]];
        for (int i = 0; i < na->n; i++) {
            if (l->n <= (int)na->num[i])
                continue;
            if (s->lineup_in_grid)
                snprintf(lp, sizeof lp, "grid.lineup[%d]", j);
            else
                snprintf(lp, sizeof lp, "fixed.lineup");
            if (na->mode == BZ_SPEC_GRID)
                snprintf(np, sizeof np, "grid.n_agents[%d]", i);
            else if (na->mode == BZ_SPEC_FIXED)
                snprintf(np, sizeof np, "fixed.n_agents");
            else
                snprintf(np, sizeof np, "the game's default");
            return fail(c, lp,
                        "lineup \"%s\" has %d agents, more than n_agents = %.0f (%s); a shorter "
                        "lineup repeats cyclically, a longer one is an error",
                        l->name, l->n, na->num[i], np);
        }
    }
    return BZ_OK;
}

/* ---- llm and budget ---- */

static int copy_path(struct ctx *c, const cJSON *it, const char *path, char *dst, size_t cap,
                     int allow_empty)
{
    const char *v;
    int rc = get_string(c, it, path, cap, allow_empty, &v);
    if (rc)
        return rc;
    snprintf(dst, cap, "%s", v);
    return BZ_OK;
}

static void llm_defaults(struct bz_llm_settings *l)
{
    memset(l, 0, sizeof *l);
    l->live_games = 16;
    l->concurrency = 64;
    l->timeout_s = 60;
    l->max_retries = 6;
    l->temperature = 0.7;
    l->max_output_tokens = 512;
    l->memory_max_tokens = 4000;
    snprintf(l->cache_dir, sizeof l->cache_dir, "results/cache");
}

static int parse_llm(struct ctx *c, const cJSON *obj)
{
    static const char *const keys[] = {"live_games",  "concurrency",     "timeout_s",
                                       "max_retries", "temperature",     "max_output_tokens",
                                       "cache",       "memory_turns",    "memory_max_tokens",
                                       "reasoning",   "max_game_seconds"};
    struct bz_llm_settings *l = &c->s->llm;
    char p[PATH_MAX_LEN];
    double v;
    int rc = check_object(c, obj, "llm", keys, sizeof keys / sizeof keys[0]);
    if (rc)
        return rc;
    for (const cJSON *it = obj->child; it; it = it->next) {
        join_key(p, "llm", it->string);
        const char *k = it->string;
        if (strcmp(k, "cache") == 0) {
            rc = copy_path(c, it, p, l->cache_dir, sizeof l->cache_dir, 1);
        } else if (strcmp(k, "timeout_s") == 0) {
            if (!(rc = get_number(c, it, p, 0.001, 86400, 0, &v)))
                l->timeout_s = v;
        } else if (strcmp(k, "temperature") == 0) {
            if (!(rc = get_number(c, it, p, 0, 2, 0, &v)))
                l->temperature = v;
        } else if (strcmp(k, "max_retries") == 0) {
            if (!(rc = get_number(c, it, p, 0, 100, 1, &v)))
                l->max_retries = (int)v;
        } else if (strcmp(k, "live_games") == 0) {
            if (!(rc = get_number(c, it, p, 1, 1000000, 1, &v)))
                l->live_games = (int)v;
        } else if (strcmp(k, "memory_turns") == 0) {
            if (cJSON_IsArray(it))
                rc = fail(c, p,
                          "expected one integer in [0,%d]; to vary it, give the list as "
                          "grid.\"" BZ_SPEC_MEMORY_KEY "\"",
                          BZ_SPEC_MEMORY_MAX);
            else if (!(rc = get_number(c, it, p, 0, BZ_SPEC_MEMORY_MAX, 1, &v)))
                l->memory_turns = (int)v;
        } else if (strcmp(k, "max_game_seconds") == 0) {
            if (!(rc = get_number(c, it, p, 0, 1e9, 0, &v)))
                l->max_game_seconds = v;
        } else if (strcmp(k, "memory_max_tokens") == 0) {
            if (!(rc = get_number(c, it, p, 1, 10000000, 1, &v)))
                l->memory_max_tokens = (int)v;
        } else if (strcmp(k, "reasoning") == 0) {
            if (!cJSON_IsBool(it))
                rc = fail(c, p, "expected true or false");
            else
                l->reasoning = cJSON_IsTrue(it);
        } else if (strcmp(k, "concurrency") == 0) {
            if (!(rc = get_number(c, it, p, 1, 1000000, 1, &v)))
                l->concurrency = (int)v;
        } else { /* max_output_tokens */
            if (!(rc = get_number(c, it, p, 1, 10000000, 1, &v)))
                l->max_output_tokens = (int)v;
        }
        if (rc)
            return rc;
    }
    return BZ_OK;
}

/* s->memory: the grid's list (parsed with the grid), else llm.memory_turns's
 * one value; refuses both at once. */
static int memory_axis(struct ctx *c, const cJSON *llm)
{
    struct bz_spec *s = c->s;
    int fixed = cJSON_IsObject(llm) && cJSON_GetObjectItemCaseSensitive(llm, "memory_turns");
    if (s->memory.mode == BZ_SPEC_GRID) {
        if (fixed)
            return fail(c, "grid." BZ_SPEC_MEMORY_KEY,
                        "also given as llm.memory_turns: a setting is either fixed or in the "
                        "grid");
        return BZ_OK;
    }
    int rc = param_alloc(c, &s->memory, &memory_desc, 1);
    if (rc)
        return rc;
    s->memory.mode = fixed ? BZ_SPEC_FIXED : BZ_SPEC_DEFAULT;
    s->memory.num[0] = s->llm.memory_turns;
    return BZ_OK;
}

static int parse_budget(struct ctx *c, const cJSON *obj)
{
    static const char *const keys[] = {"max_tokens", "max_cost_usd"};
    char p[PATH_MAX_LEN];
    double v;
    int rc = check_object(c, obj, "budget", keys, 2);
    if (rc)
        return rc;
    for (const cJSON *it = obj->child; it; it = it->next) {
        join_key(p, "budget", it->string);
        if (strcmp(it->string, "max_tokens") == 0) {
            if ((rc = get_number(c, it, p, 0, MAX_EXACT_INT, 1, &v)))
                return rc;
            c->s->budget.max_tokens = (int64_t)v;
        } else {
            if ((rc = get_number(c, it, p, 0, 1e12, 0, &v)))
                return rc;
            c->s->budget.max_cost_usd = v;
        }
    }
    return BZ_OK;
}

/* ---- the whole spec ---- */

/* The file's stem: "sweeps/quick.json" -> "quick". */
static char *file_stem(const char *origin)
{
    const char *base = strrchr(origin, '/');
    base = base ? base + 1 : origin;
    size_t n = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        n = (size_t)(dot - base);
    if (n == 0)
        return dup_str("sweep");
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, base, n);
        s[n] = '\0';
    }
    return s;
}

void bz_spec_line_col(const char *text, size_t pos, int *line, int *col)
{
    int l = 1, cl = 1;
    for (size_t i = 0; i < pos && text[i]; i++) {
        if (text[i] == '\n') {
            l++;
            cl = 1;
        } else {
            cl++;
        }
    }
    *line = l;
    *col = cl;
}

static int parse_json(struct ctx *c, const char *text, cJSON **out)
{
    const char *end = NULL;
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    if (!*p)
        return fail(c, NULL, "empty spec, expected a JSON object");
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root) {
        if (!end)
            end = cJSON_GetErrorPtr();
        size_t pos = end && end >= text ? (size_t)(end - text) : strlen(text);
        int line, col;
        bz_spec_line_col(text, pos, &line, &col);
        char near[32];
        size_t k = 0;
        for (const char *q = text + pos; *q && *q != '\n' && k < 20; q++)
            near[k++] = *q;
        near[k] = '\0';
        if (k)
            return fail(c, NULL, "invalid JSON at line %d, column %d (near \"%s\")", line, col,
                        near);
        return fail(c, NULL, "invalid JSON at line %d, column %d (%s)", line, col,
                    text[pos] ? "at the end of the line" : "unexpected end of the text");
    }
    *out = root;
    return BZ_OK;
}

static int parse_root(struct ctx *c, const cJSON *root, const struct bz_game_ops *const *games,
                      size_t n_games)
{
    static const char *const keys[] = {"name",   "game",    "seed",    "repetitions",
                                       "fixed",  "grid",    "lineups", "output",
                                       "models", "prompts", "llm",     "budget"};
    struct bz_spec *s = c->s;
    char b[GOT_MAX];
    const char *str;
    double v;
    int rc;
    if (!cJSON_IsObject(root))
        return fail(c, NULL, "expected a JSON object at the top level, got %s", got(root, b));
    if ((rc = check_object(c, root, "", keys, sizeof keys / sizeof keys[0])))
        return rc;

    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, "game");
    if (!it)
        return fail(c, "game", "missing (required: the name of a game)");
    if ((rc = get_string(c, it, "game", BZ_NAME_MAX, 0, &str)))
        return rc;
    for (size_t i = 0; i < n_games && !s->ops; i++)
        if (games[i] && strcmp(games[i]->name, str) == 0)
            s->ops = games[i];
    if (!s->ops) {
        char list[512];
        size_t used = 0;
        list[0] = '\0';
        for (size_t i = 0; i < n_games && used < sizeof list; i++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                     games[i]->name);
        return fail(c, "game", "unknown game \"%s\" (known: %s)", str, list);
    }

    it = cJSON_GetObjectItemCaseSensitive(root, "seed");
    if (!it)
        return fail(c, "seed", "missing (required: an integer >= 0)");
    if ((rc = get_number(c, it, "seed", 0, MAX_EXACT_INT, 1, &v)))
        return rc;
    s->seed = (uint64_t)v;

    s->repetitions = 1;
    if ((it = cJSON_GetObjectItemCaseSensitive(root, "repetitions"))) {
        if ((rc = get_number(c, it, "repetitions", 1, 2147483647.0, 1, &v)))
            return rc;
        s->repetitions = (int)v;
    }

    if ((it = cJSON_GetObjectItemCaseSensitive(root, "name"))) {
        if ((rc = get_string(c, it, "name", 128, 0, &str)))
            return rc;
        if (strchr(str, '/'))
            return fail(c, "name", "expected a name without '/', got \"%s\"", str);
        s->name = dup_str(str);
    } else {
        s->name = file_stem(c->origin);
    }
    if (!s->name)
        return nomem(c);

    if ((rc = params_init(c)))
        return rc;

    const cJSON *lineups = cJSON_GetObjectItemCaseSensitive(root, "lineups");
    if (lineups && (rc = parse_lineups(c, lineups)))
        return rc;
    int n_named = s->n_lineups;
    /* the axis holds at most one entry per grid.lineup element (or one fixed) */
    const cJSON *fixed = cJSON_GetObjectItemCaseSensitive(root, "fixed");
    const cJSON *grid = cJSON_GetObjectItemCaseSensitive(root, "grid");
    const cJSON *gl =
        cJSON_IsObject(grid) ? cJSON_GetObjectItemCaseSensitive(grid, "lineup") : NULL;
    int cap = 1 + (cJSON_IsArray(gl) ? cJSON_GetArraySize(gl) : 0);
    if (!(s->lineup_axis = calloc((size_t)cap, sizeof *s->lineup_axis)))
        return nomem(c);
    if (fixed && (rc = parse_fixed(c, fixed, n_named)))
        return rc;
    if (grid && (rc = parse_grid(c, grid, fixed, n_named)))
        return rc;
    if (s->n_lineup_axis == 0)
        return fail(c, "lineup",
                    "no lineup: give fixed.lineup (a name from \"lineups\" or an array of agent "
                    "strings) or grid.lineup (a list of those)");
    if ((rc = check_lineup_sizes(c)))
        return rc;
    for (int j = 0; j < s->n_lineup_axis; j++) {
        const struct bz_spec_lineup *l = &s->lineups[s->lineup_axis[j]];
        for (int i = 0; i < l->n; i++)
            if (l->agents[i].kind == BZ_AGENT_LLM)
                s->has_llm = 1;
    }

    llm_defaults(&s->llm);
    if ((it = cJSON_GetObjectItemCaseSensitive(root, "llm")) && (rc = parse_llm(c, it)))
        return rc;
    if ((rc = memory_axis(c, cJSON_GetObjectItemCaseSensitive(root, "llm"))))
        return rc;
    if ((it = cJSON_GetObjectItemCaseSensitive(root, "models")) &&
        (rc = copy_path(c, it, "models", s->llm.models_path, sizeof s->llm.models_path, 0)))
        return rc;
    if ((it = cJSON_GetObjectItemCaseSensitive(root, "prompts")) &&
        (rc = copy_path(c, it, "prompts", s->llm.prompts_dir, sizeof s->llm.prompts_dir, 0)))
        return rc;
    if ((it = cJSON_GetObjectItemCaseSensitive(root, "budget")) && (rc = parse_budget(c, it)))
        return rc;

    if ((it = cJSON_GetObjectItemCaseSensitive(root, "output"))) {
        if ((rc = get_string(c, it, "output", 4096, 0, &str)))
            return rc;
        s->output = dup_str(str);
    } else {
        size_t n = strlen(s->name) + sizeof "results/.h5";
        if ((s->output = malloc(n)))
            snprintf(s->output, n, "results/%s.h5", s->name);
    }
    if (!s->output)
        return nomem(c);
    return BZ_OK;
}

int bz_spec_parse_games(const char *text, const char *origin,
                        const struct bz_game_ops *const *games, size_t n_games,
                        struct bz_spec **out, struct bz_err *err)
{
    cJSON *root = NULL;
    struct bz_spec *s = calloc(1, sizeof *s);
    struct ctx c = {origin ? origin : "<spec>", err, s};
    int rc = BZ_OK;
    *out = NULL;
    if (!s || !(s->origin = dup_str(c.origin)) || !(s->json = dup_str(text))) {
        rc = nomem(&c);
        goto out;
    }
    if ((rc = parse_json(&c, text, &root)))
        goto out;
    if ((rc = parse_root(&c, root, games, n_games)))
        goto out;
    *out = s;
    s = NULL;
out:
    cJSON_Delete(root);
    bz_spec_destroy(s);
    return rc;
}

int bz_spec_load_games(const char *path, const struct bz_game_ops *const *games, size_t n_games,
                       struct bz_spec **out, struct bz_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = bz_file_load(path, BZ_SPEC_MAX_BYTES, "spec", &buf, &len, err);
    if (rc)
        goto out;
    if (strlen(buf) != len) {
        size_t pos = strlen(buf);
        int line, col;
        bz_spec_line_col(buf, pos, &line, &col);
        rc = bz_err_set(err, BZ_EINVAL, "%s: invalid JSON at line %d, column %d (a NUL byte)", path,
                        line, col);
        goto out;
    }
    rc = bz_spec_parse_games(buf, path, games, n_games, out, err);
out:
    free(buf);
    return rc;
}

void bz_spec_destroy(struct bz_spec *s)
{
    if (!s)
        return;
    for (int i = 0; i < BZ_MAX_PARAMS; i++)
        param_free(&s->params[i]);
    param_free(&s->memory);
    for (int i = 0; i < s->n_lineups; i++) {
        free(s->lineups[i].name);
        free(s->lineups[i].agents);
    }
    free(s->lineups);
    free(s->lineup_axis);
    free(s->output);
    free(s->name);
    free(s->origin);
    free(s->json);
    free(s);
}

const char *bz_spec_name(const struct bz_spec *s)
{
    return s->name;
}
const char *bz_spec_json(const struct bz_spec *s)
{
    return s->json;
}
const char *bz_spec_output(const struct bz_spec *s)
{
    return s->output;
}
const char *bz_spec_origin(const struct bz_spec *s)
{
    return s->origin;
}
const struct bz_game_ops *bz_spec_game(const struct bz_spec *s)
{
    return s->ops;
}
const struct bz_llm_settings *bz_spec_llm(const struct bz_spec *s)
{
    return &s->llm;
}
const struct bz_budget *bz_spec_budget(const struct bz_spec *s)
{
    return &s->budget;
}
int bz_spec_has_llm(const struct bz_spec *s)
{
    return s->has_llm;
}
uint64_t bz_spec_seed(const struct bz_spec *s)
{
    return s->seed;
}
int bz_spec_repetitions(const struct bz_spec *s)
{
    return s->repetitions;
}
int bz_spec_memory_n(const struct bz_spec *s)
{
    return s->memory.n;
}
int bz_spec_memory_value(const struct bz_spec *s, int i)
{
    return (int)s->memory.num[i];
}
