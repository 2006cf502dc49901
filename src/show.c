/* show: `bazaar show RESULTS --game G [--agent A] [--turn T]`: one game's
 * story from the results file alone: the game's /games and /agents rows, its
 * messages, and every LLM decision with the exact words behind it (system
 * prompt, chat history, prompt, repair, reply, reasoning; fallbacks and
 * errors), read from /llm_calls and the texts' store (/llm_texts and
 * /llm_text_bytes, looked up by hash: only the texts shown are read).
 * Read-only; prints each distinct text once and names it by its content
 * hash after that. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bazaar/out.h"
#include "bazaar/out_texts.h"
#include "bazaar/show.h"
#include "bazaar/tables.h"

static const char *const usage_show =
    "usage: bazaar show RESULTS.h5 --game G [--agent A] [--turn T]\n"
    "\n"
    "Prints game G's story from the results file alone: its outcome and agents,\n"
    "the messages, and every LLM decision (phase, model, outcome, fallback) with\n"
    "the words behind it: system prompt, chat history (llm.memory_turns), prompt,\n"
    "repair prompt, the model's reply and its reasoning. Each text is printed in\n"
    "full once and named by its /llm_texts hash after that. --agent and --turn\n"
    "keep one seat's or one turn's decisions and messages.\n";

struct seen {
    const char **h;
    size_t n, cap;
};

static int seen_add(struct seen *s, const char *hash)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->h[i], hash) == 0)
            return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        const char **p = realloc(s->h, cap * sizeof *p);
        if (!p)
            return 1; /* print it again rather than fail */
        s->h = p;
        s->cap = cap;
    }
    s->h[s->n++] = hash;
    return 1;
}

/* The texts the shown calls name: hash -> text (NULL when the file has
 * none), sorted by hash. Owns the hashes and the texts. */
struct texts {
    char **hash;
    char **text;
    size_t n, cap;
};

static int texts_add(struct texts *t, const char *hash, size_t len)
{
    if (!len)
        return 0;
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        char **p = realloc(t->hash, cap * sizeof *p);
        if (!p)
            return -1;
        t->hash = p;
        t->cap = cap;
    }
    char *h = malloc(len + 1);
    if (!h)
        return -1;
    memcpy(h, hash, len);
    h[len] = '\0';
    t->hash[t->n++] = h;
    return 0;
}

static void texts_free(struct texts *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->hash[i]);
        if (t->text)
            free(t->text[i]);
    }
    free(t->hash);
    free(t->text);
}

struct pair {
    char *hash, *text;
};

static int cmp_pair(const void *a, const void *b)
{
    return strcmp(((const struct pair *)a)->hash, ((const struct pair *)b)->hash);
}

/* Every hash of call c: system, history (space-separated), prompt, repair,
 * reply. */
static int add_call_hashes(struct texts *t, const struct bz_llm_calls_row *c)
{
    const char *one[] = {c->system_text, c->prompt_text, c->repair_text, c->reply_text};
    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++)
        if (one[i] && texts_add(t, one[i], strlen(one[i])))
            return -1;
    for (const char *p = c->history; p && *p;) {
        size_t len = strcspn(p, " ");
        if (texts_add(t, p, len))
            return -1;
        p += len;
        p += strspn(p, " ");
    }
    return 0;
}

/* Look the collected hashes up in the file and sort them for texts_find. */
static int texts_load(struct texts *t, const char *path, struct bz_err *err)
{
    if (!t->n)
        return BZ_OK;
    if (!(t->text = calloc(t->n, sizeof *t->text)))
        return bz_err_set(err, BZ_ENOMEM, "out of memory");
    int rc = bz_out_texts_lookup(path, (const char *const *)t->hash, t->n, t->text, err);
    if (rc)
        return rc;
    struct pair *p = malloc(t->n * sizeof *p);
    if (!p)
        return bz_err_set(err, BZ_ENOMEM, "out of memory");
    for (size_t i = 0; i < t->n; i++)
        p[i] = (struct pair){t->hash[i], t->text[i]};
    qsort(p, t->n, sizeof *p, cmp_pair);
    for (size_t i = 0; i < t->n; i++) {
        t->hash[i] = p[i].hash;
        t->text[i] = p[i].text;
    }
    free(p);
    return BZ_OK;
}

/* The entry of hash in t, or -1. */
static long texts_find(const struct texts *t, const char *hash)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->hash[mid], hash);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static void print_indented(FILE *f, const char *text)
{
    fputs("      | ", f);
    for (const char *p = text; *p; p++) {
        fputc(*p, f);
        if (*p == '\n' && p[1])
            fputs("      | ", f);
    }
    if (!*text || text[strlen(text) - 1] != '\n')
        fputc('\n', f);
}

static void print_text(FILE *f, struct seen *s, const struct texts *texts, const char *label,
                       const char *hash)
{
    if (!hash || !hash[0])
        return;
    long k = texts_find(texts, hash);
    const char *t = k >= 0 ? texts->text[k] : NULL;
    if (!t) {
        fprintf(f, "    %s [%s]: (not in /llm_texts)\n", label, hash);
        return;
    }
    if (!seen_add(s, texts->hash[k])) { /* hash may be a temporary */
        fprintf(f, "    %s [%s]: (as above)\n", label, hash);
        return;
    }
    fprintf(f, "    %s [%s]:\n", label, hash);
    print_indented(f, t);
}

static int shown(const struct bz_llm_calls_row *c, int64_t game, int agent, int turn)
{
    return c->game_id == game && (turn < 0 || c->turn == turn) && (agent < 0 || c->agent == agent);
}

static int parse_int(const char *s, long long *v)
{
    char *end;
    errno = 0;
    *v = strtoll(s, &end, 10);
    return errno || end == s || *end;
}

int bz_show_print(const char *path, int64_t game, int agent, int turn, FILE *f, struct bz_err *err)
{
    struct bz_records rec;
    struct texts texts = {0};
    bz_records_init(&rec);
    int rc = BZ_OK;
    const struct bz_table_desc *descs[] = {&bz_games_table, &bz_agents_table, &bz_messages_table,
                                           &bz_llm_calls_table};
    for (size_t i = 0; i < sizeof descs / sizeof descs[0]; i++)
        if ((rc = bz_out_read_table(path, descs[i], &rec, err)))
            goto out;
    const struct bz_rowbuf *games = bz_records_find(&rec, &bz_games_table);
    const struct bz_games_row *g = NULL;
    for (size_t i = 0; games && i < games->n_rows; i++) {
        const struct bz_games_row *r = (const void *)(games->data + i * sizeof *r);
        if (r->game_id == game)
            g = r;
    }
    if (!g) {
        rc = bz_err_set(err, BZ_EINVAL, "%s: no game %lld in /games", path, (long long)game);
        goto out;
    }
    fprintf(f, "game %lld: %s, lineup %s, repetition %d, communication %s\n", (long long)game,
            g->game, g->lineup, g->repetition, g->communication ? "on" : "off");
    fprintf(f,
            "  status %s%s%s; %d turns; welfare %g; %d fallbacks, %d repairs, %lld LLM calls "
            "(%lld from the cache), cost %.6f USD\n",
            g->status, g->error[0] ? ": " : "", g->error, g->turns_played, g->welfare,
            g->n_fallback, g->n_repair, (long long)g->llm_calls, (long long)g->cache_hits,
            g->cost_usd);
    const struct bz_rowbuf *agents = bz_records_find(&rec, &bz_agents_table);
    for (size_t i = 0; agents && i < agents->n_rows; i++) {
        const struct bz_agents_row *a = (const void *)(agents->data + i * sizeof *a);
        if (a->game_id == game)
            fprintf(f, "  agent %d: %s %s, payoff %g\n", a->agent, a->kind, a->policy, a->payoff);
    }
    const struct bz_rowbuf *msgs = bz_records_find(&rec, &bz_messages_table);
    int header = 0;
    for (size_t i = 0; msgs && i < msgs->n_rows; i++) {
        const struct bz_messages_row *m = (const void *)(msgs->data + i * sizeof *m);
        if (m->game_id != game || (turn >= 0 && m->turn != turn) ||
            (agent >= 0 && m->sender != agent && m->receiver != agent && m->receiver != -1))
            continue;
        if (!header++)
            fprintf(f, "\nmessages:\n");
        char to[32] = "all";
        if (m->receiver >= 0)
            snprintf(to, sizeof to, "agent %d", m->receiver);
        fprintf(f, "  turn %d, %s: agent %d -> %s (%s): \"%s\"\n", m->turn, m->phase, m->sender, to,
                m->visibility, m->text);
    }
    const struct bz_rowbuf *calls = bz_records_find(&rec, &bz_llm_calls_table);
    for (size_t i = 0; calls && i < calls->n_rows; i++) {
        const struct bz_llm_calls_row *c = (const void *)(calls->data + i * sizeof *c);
        if (shown(c, game, agent, turn) && add_call_hashes(&texts, c)) {
            rc = bz_err_set(err, BZ_ENOMEM, "out of memory");
            goto out;
        }
    }
    if ((rc = texts_load(&texts, path, err)))
        goto out;
    struct seen s = {0};
    header = 0;
    for (size_t i = 0; calls && i < calls->n_rows; i++) {
        const struct bz_llm_calls_row *c = (const void *)(calls->data + i * sizeof *c);
        if (!shown(c, game, agent, turn))
            continue;
        if (!header++)
            fprintf(f, "\nLLM decisions:\n");
        fprintf(f, "\n  turn %d, phase %s, agent %d, model %s%s%s%s, attempt %d: %s -> %s\n",
                c->turn, c->phase, c->agent, c->model, c->model_version[0] ? " (reported " : "",
                c->model_version, c->model_version[0] ? ")" : "", c->attempt, c->parse_outcome,
                c->decision[0] ? c->decision : "repair follows");
        fprintf(f, "    tokens in %lld (cached %lld), out %lld; %s; memory_turns %d\n",
                (long long)c->input_tokens, (long long)c->cached_input_tokens,
                (long long)c->output_tokens, c->cache_hit ? "from the cache" : "from the model",
                c->memory_turns);
        if (c->error[0])
            fprintf(f, "    error: %s\n", c->error);
        print_text(f, &s, &texts, "system", c->system_text);
        if (c->history[0]) {
            /* "prompt reply prompt reply ...": hashes of earlier exchanges */
            char *h = malloc(strlen(c->history) + 1);
            if (h) {
                memcpy(h, c->history, strlen(c->history) + 1);
                int k = 0;
                for (char *tok = strtok(h, " "); tok; tok = strtok(NULL, " "), k++)
                    print_text(f, &s, &texts, k % 2 ? "history reply" : "history prompt", tok);
                free(h);
            }
        }
        print_text(f, &s, &texts, "prompt", c->prompt_text);
        print_text(f, &s, &texts, "repair", c->repair_text);
        print_text(f, &s, &texts, "reply", c->reply_text);
        if (c->reasoning[0])
            fprintf(f, "    reasoning: %s\n", c->reasoning);
        if (strcmp(c->decision, "fallback") == 0)
            fprintf(f, "    => the game's fallback action was used\n");
    }
    free(s.h);
    if (!header)
        fprintf(f, "\n(no LLM decisions%s)\n", agent >= 0 || turn >= 0 ? " match the filter" : "");
out:
    texts_free(&texts);
    bz_records_cleanup(&rec);
    return rc;
}

int bz_show_cmd(int argc, char **argv)
{
    const char *path = NULL;
    long long game = -1, agent = -1, turn = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_show, stdout);
            return 0;
        }
        long long *dst = strcmp(a, "--game") == 0    ? &game
                         : strcmp(a, "--agent") == 0 ? &agent
                         : strcmp(a, "--turn") == 0  ? &turn
                                                     : NULL;
        if (dst) {
            if (i + 1 >= argc || parse_int(argv[i + 1], dst) || *dst < 0) {
                fprintf(stderr, "bazaar show: %s needs a number >= 0\n\n%s", a, usage_show);
                return 2;
            }
            i++;
        } else if (a[0] != '-' && !path) {
            path = a;
        } else {
            fprintf(stderr, "bazaar show: unexpected argument '%s'\n\n%s", a, usage_show);
            return 2;
        }
    }
    if (!path || game < 0) {
        fprintf(stderr, "%s", usage_show);
        return 2;
    }
    struct bz_err err = {0};
    int rc = bz_show_print(path, game, (int)agent, (int)turn, stdout, &err);
    if (rc) {
        fprintf(stderr, "bazaar: %s\n", err.msg);
        return rc == BZ_EINVAL ? 2 : 1;
    }
    return 0;
}
