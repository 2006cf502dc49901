/* cli_play: what `bazaar play GAME` asks for, said in terms of the game
 * registry: the one-game spec its options describe (validated by spec exactly
 * as a sweep is), the game's length option mapped to its own parameter, and
 * the listing of each game's policies and parameters. Knows no game by name:
 * everything comes from the ops tables (game.h); plays nothing itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_internal.h"

/* ---- a growing string ------------------------------------------------------ */

struct strbuf {
    char *p;
    size_t len, cap;
};

static int sb_add(struct strbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = 2 * (b->len + n + 1) + 256;
        char *p = realloc(b->p, cap);
        if (!p)
            return BZ_ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return BZ_OK;
}

static int sb_str(struct strbuf *b, const char *s)
{
    return sb_add(b, s, strlen(s));
}

/* A JSON string literal of the n bytes at s. */
static int sb_json_n(struct strbuf *b, const char *s, size_t n)
{
    int rc = sb_str(b, "\"");
    for (size_t i = 0; i < n && !rc; i++) {
        char esc[8];
        if (s[i] == '"' || s[i] == '\\') {
            esc[0] = '\\';
            esc[1] = s[i];
            rc = sb_add(b, esc, 2);
        } else if ((unsigned char)s[i] < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", (unsigned char)s[i]);
            rc = sb_str(b, esc);
        } else {
            rc = sb_add(b, s + i, 1);
        }
    }
    return rc ? rc : sb_str(b, "\"");
}

static int sb_json(struct strbuf *b, const char *s)
{
    return sb_json_n(b, s, strlen(s));
}

/* A command-line value as JSON: numbers and true/false as they are, anything
 * else a string (the spec then says what the parameter expects). */
static int sb_value(struct strbuf *b, const char *v)
{
    char *end;
    strtod(v, &end);
    if ((*v && !*end) || strcmp(v, "true") == 0 || strcmp(v, "false") == 0)
        return sb_str(b, v);
    return sb_json(b, v);
}

/* ---- the game's length ---------------------------------------------------- */

static const struct {
    const char *option, *param;
} lengths[] = {{"--turns", "max_turns"}, {"--rounds", "max_rounds"}};

const char *bz_cli_length_param(const struct bz_game_ops *ops, const char *option,
                                struct bz_err *err)
{
    const char *param = NULL;
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++)
        if (strcmp(lengths[i].option, option) == 0)
            param = lengths[i].param;
    if (param && bz_game_param_index(ops, param) >= 0)
        return param;
    char have[128] = "";
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++)
        if (bz_game_param_index(ops, lengths[i].param) >= 0)
            snprintf(have, sizeof have, "; its length is %s (%s)", lengths[i].param,
                     lengths[i].option);
    bz_err_set(err, BZ_EINVAL, "%s: game %s has no parameter %s%s", option, ops->name,
               param ? param : "for this option", have[0] ? have : "; it has no length option");
    return NULL;
}

/* ---- the one-game spec ---------------------------------------------------- */

int bz_cli_play_spec(const struct bz_game_ops *ops, const struct bz_play_args *a, char **json,
                     struct bz_err *err)
{
    *json = NULL;
    if (!a->agents || !a->agents[0])
        return bz_err_set(err, BZ_EINVAL, "missing --agents");
    const char *seed = a->seed ? a->seed : "1";
    char *endp;
    strtoull(seed, &endp, 10);
    if (*endp || !*seed || *seed == '-')
        return bz_err_set(err, BZ_EINVAL, "--seed: expected a non-negative integer, got '%s'",
                          seed);
    /* a parameter named twice is refused here, naming both options */
    for (size_t i = 0; i < a->n_sets; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(a->sets[i].key, a->sets[j].key) == 0)
                return bz_err_set(err, BZ_EINVAL, "%s is given twice (%s and %s)", a->sets[i].key,
                                  a->sets[j].option, a->sets[i].option);

    struct strbuf js = {0};
    int rc = BZ_OK, n_agents = 0, n_agents_set = 0;
    rc |= sb_str(&js, "{\"name\":\"play\",\"game\":");
    rc |= sb_json(&js, ops->name);
    rc |= sb_str(&js, ",\"seed\":");
    rc |= sb_str(&js, seed);
    rc |= sb_str(&js, ",\"fixed\":{\"lineup\":[");
    for (const char *p = a->agents; *p;) {
        size_t n = strcspn(p, ",");
        size_t policy_len = strcspn(p, "?,");
        char policy[BZ_NAME_MAX];
        snprintf(policy, sizeof policy, "%.*s", (int)(policy_len < BZ_NAME_MAX ? policy_len : 0),
                 p);
        rc |= sb_str(&js, n_agents ? "," : "");
        /* a policy of the game is a heuristic; anything else a model id (the
         * spec refuses an unknown one, naming it) */
        if (!memchr(p, ':', n) && policy[0] && bz_game_policy(ops, policy)) {
            struct strbuf one = {0};
            rc |= sb_str(&one, "heuristic:");
            rc |= sb_add(&one, p, n);
            rc |= one.p ? sb_json(&js, one.p) : BZ_ENOMEM;
            free(one.p);
        } else {
            rc |= sb_json_n(&js, p, n);
        }
        n_agents++;
        p += n;
        if (*p == ',')
            p++;
    }
    rc |= sb_str(&js, "]");
    for (size_t i = 0; i < a->n_sets; i++) {
        n_agents_set |= strcmp(a->sets[i].key, "n_agents") == 0;
        rc |= sb_str(&js, ",");
        rc |= sb_json(&js, a->sets[i].key);
        rc |= sb_str(&js, ":");
        rc |= sb_value(&js, a->sets[i].value);
    }
    if (!n_agents_set) { /* one agent per lineup entry, unless set */
        char num[64];
        snprintf(num, sizeof num, ",\"n_agents\":%d", n_agents);
        rc |= sb_str(&js, num);
    }
    rc |= sb_str(&js, "}");
    if (a->models) {
        rc |= sb_str(&js, ",\"models\":");
        rc |= sb_json(&js, a->models);
    }
    if (a->cache) {
        rc |= sb_str(&js, ",\"llm\":{\"cache\":");
        rc |= sb_json(&js, a->cache);
        rc |= sb_str(&js, "}");
    }
    rc |= sb_str(&js, "}");
    if (rc) {
        free(js.p);
        return bz_err_set(err, BZ_ENOMEM, "out of memory");
    }
    *json = js.p;
    return BZ_OK;
}

/* ---- listings ------------------------------------------------------------- */

void bz_cli_print_params(FILE *f, const struct bz_game_ops *ops)
{
    fprintf(f, "game %s\nparameters:\n", ops->name);
    for (size_t i = 0; i < ops->n_params; i++) {
        const struct bz_param_desc *p = &ops->params[i];
        const char *help = p->help ? p->help : "";
        if (p->kind == BZ_PARAM_STR)
            fprintf(f, "  %-26s string, default \"%s\"%s\n      %s\n", p->name,
                    p->def_str ? p->def_str : "", p->env ? " (environment)" : "", help);
        else if (p->kind == BZ_PARAM_BOOL)
            fprintf(f, "  %-26s true/false, default %s\n      %s\n", p->name,
                    p->def ? "true" : "false", help);
        else
            fprintf(f, "  %-26s %s in [%g, %g], default %g%s\n      %s\n", p->name,
                    p->kind == BZ_PARAM_INT ? "integer" : "number", p->min, p->max, p->def,
                    p->env ? " (environment)" : "", help);
    }
    fprintf(f, "heuristic policies:\n");
    for (size_t i = 0; i < ops->n_policies; i++)
        fprintf(f, "  %-12s %s\n", ops->policies[i]->name,
                ops->policies[i]->help ? ops->policies[i]->help : "");
}

/* "  name, name, ..." wrapped under a label at about 80 columns. */
static void print_wrapped(FILE *f, const char *label, const char *const *names, size_t n)
{
    int col = fprintf(f, "    %s:", label);
    for (size_t i = 0; i < n; i++) {
        int w = (int)strlen(names[i]) + 2;
        if (col + w > 80)
            col = fprintf(f, "\n     ");
        col += fprintf(f, " %s%s", names[i], i + 1 < n ? "," : "");
    }
    fputc('\n', f);
}

void bz_cli_print_games(FILE *f)
{
    for (size_t g = 0; g < bz_game_count(); g++) {
        const struct bz_game_ops *ops = bz_game_at(g);
        const char *names[BZ_MAX_PARAMS + 64];
        size_t n = 0;
        fprintf(f, "  %s\n", ops->name);
        for (size_t i = 0; i < ops->n_policies && n < sizeof names / sizeof names[0]; i++)
            names[n++] = ops->policies[i]->name;
        print_wrapped(f, "policies", names, n);
        n = 0;
        for (size_t i = 0; i < ops->n_params && n < sizeof names / sizeof names[0]; i++)
            names[n++] = ops->params[i].name;
        print_wrapped(f, "parameters", names, n);
    }
}
