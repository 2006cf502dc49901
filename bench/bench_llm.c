/* bench_llm: LLM throughput against tests/llm_server.py with latency L and a
 * rank concurrency C: requests/s achieved as a fraction of the ideal C/L, and
 * bazaar's own CPU time per request (getrusage of this process; the server is
 * a child and not counted). Drives K live matches of a one-phase game through
 * the LLM hook, as the scheduler does, with transcripts recorded (/llm_texts)
 * and memory_turns M (chat history of the agent's last M turns).
 * Usage: bench_llm [L_ms] [C] [requests] [M, default 3] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "../tests/llm_test_util.h"
#include "bazaar/match.h"
#include "llm/llm_internal.h"

#define N_AGENTS 4

struct bz_game {
    struct bz_game_base base;
    int turn, max_turns;
};

static const char *const phases[] = {"bid"};
static int g_create(const struct bz_game_config *cfg, struct bz_records *rec, struct bz_game **out,
                    struct bz_err *err)
{
    struct bz_game *g = calloc(1, sizeof *g);
    if (!g)
        return bz_err_set(err, BZ_ENOMEM, "oom");
    int rc = bz_game_base_init(&g->base, cfg, rec, err);
    if (rc) {
        free(g);
        return rc;
    }
    g->max_turns = (int)cfg->num[0];
    *out = g;
    return BZ_OK;
}
static void g_destroy(struct bz_game *g)
{
    if (g)
        bz_game_base_cleanup(&g->base);
    free(g);
}
static int g_step(struct bz_game *g, int *state, struct bz_err *err)
{
    (void)err;
    if (g->turn >= g->max_turns) {
        *state = BZ_STEP_DONE;
        return BZ_OK;
    }
    bz_game_ask_phase(g, 0);
    for (int i = 0; i < N_AGENTS; i++)
        bz_game_ask(g, i, 0);
    *state = BZ_STEP_DECIDE;
    return BZ_OK;
}
static int g_apply(struct bz_game *g, struct bz_err *err)
{
    (void)err;
    g->turn++;
    return BZ_OK;
}
static void g_outcome(const struct bz_game *g, struct bz_game_outcome *o, double *payoff)
{
    o->turns_played = g->turn;
    for (int i = 0; i < N_AGENTS; i++)
        payoff[i] = 0;
}
static int g_observe(const struct bz_game *g, const struct bz_request *r, cJSON *obs,
                     struct bz_err *err)
{
    (void)r;
    (void)err;
    cJSON *priv = cJSON_AddObjectToObject(obs, "private");
    cJSON *meta = cJSON_AddObjectToObject(obs, "meta");
    cJSON_AddNumberToObject(priv, "budget", 10);
    cJSON_AddNumberToObject(meta, "turn", g->turn);
    cJSON_AddObjectToObject(obs, "public");
    return BZ_OK;
}
static cJSON *g_schema(const struct bz_game *g, int phase)
{
    (void)g;
    (void)phase;
    return cJSON_Parse(
        "{\"type\":\"object\",\"properties\":{\"amount\":{\"type\":\"number\",\"minimum\":0}},"
        "\"required\":[\"amount\"]}");
}
static int g_parse(struct bz_game *g, const struct bz_request *r, const cJSON *reply,
                   struct bz_err *err)
{
    (void)g;
    (void)r;
    return cJSON_IsNumber(cJSON_GetObjectItem(reply, "amount"))
               ? BZ_OK
               : bz_err_set(err, BZ_EINVAL, "amount: expected a number");
}
static int g_check(const struct bz_game *g, const struct bz_request *r, struct bz_err *err)
{
    (void)g;
    (void)r;
    (void)err;
    return BZ_OK;
}
static void g_safe(struct bz_game *g, const struct bz_request *r)
{
    (void)g;
    (void)r;
}
static void g_random(struct bz_game *g, const struct bz_request *r, struct bz_rng *rng)
{
    (void)g;
    (void)r;
    (void)rng;
}
static const struct bz_param_desc params[] = {{"max_turns", BZ_PARAM_INT, 1, 1, 1e6, NULL, 1, ""}};
static const struct bz_game_ops ops = {
    .name = "bench",
    .params = params,
    .n_params = 1,
    .phases = phases,
    .n_phases = 1,
    .create = g_create,
    .destroy = g_destroy,
    .step = g_step,
    .apply = g_apply,
    .outcome = g_outcome,
    .check_action = g_check,
    .safe_action = g_safe,
    .random_action = g_random,
    .observe = g_observe,
    .action_schema = g_schema,
    .parse_action = g_parse,
};

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

int main(int argc, char **argv)
{
    double L_ms = argc > 1 ? atof(argv[1]) : 200;
    int C = argc > 2 ? atoi(argv[2]) : 64;
    int total = argc > 3 ? atoi(argv[3]) : 1280;
    int memory = argc > 4 ? atoi(argv[4]) : 3;
    int K = C / N_AGENTS; /* live games: enough decisions to fill C */
    int turns = (total + K * N_AGENTS - 1) / (K * N_AGENTS);

    struct test_server srv;
    if (test_server_start(&srv, L_ms) != 0) {
        fprintf(stderr, "bench_llm: cannot start tests/llm_server.py\n");
        return 1;
    }
    char dir[256], reg[300], pdir[300], p[400];
    snprintf(dir, sizeof dir, "/tmp/bench_llm_%ld", (long)getpid());
    mkdir(dir, 0777);
    snprintf(reg, sizeof reg, "%s/models.json", dir);
    snprintf(pdir, sizeof pdir, "%s/prompts", dir);
    mkdir(pdir, 0777);
    test_write_registry(reg, srv.port, "", 0);
    snprintf(p, sizeof p, "%s/system.txt", pdir);
    FILE *f = fopen(p, "w");
    fprintf(f, "You are agent {{agent}}.\n");
    fclose(f);
    snprintf(p, sizeof p, "%s/bid.txt", pdir);
    f = fopen(p, "w");
    fprintf(f, "Turn {{meta.turn}}, budget {{private.budget}}. Reply as JSON: {{schema}}\n");
    fclose(f);

    struct bz_llm_settings set;
    memset(&set, 0, sizeof set);
    set.live_games = K;
    set.concurrency = C;
    set.timeout_s = 30;
    set.max_retries = 3;
    set.temperature = 0.7;
    set.max_output_tokens = 64;
    set.memory_turns = memory;
    set.memory_max_tokens = 4000;
    snprintf(set.models_path, sizeof set.models_path, "%s", reg);
    snprintf(set.prompts_dir, sizeof set.prompts_dir, "%s", pdir);
    struct bz_agent_spec agents[N_AGENTS];
    memset(agents, 0, sizeof agents);
    for (int i = 0; i < N_AGENTS; i++) {
        agents[i].kind = BZ_AGENT_LLM;
        snprintf(agents[i].policy, sizeof agents[i].policy, "t-openai");
    }
    struct bz_game_config *cfg = calloc((size_t)K, sizeof *cfg);
    for (int g = 0; g < K; g++) {
        cfg[g].game_id = g;
        cfg[g].ops = &ops;
        cfg[g].n_agents = N_AGENTS;
        cfg[g].num[0] = turns;
        cfg[g].agents = agents;
        cfg[g].lineup_name = "bench";
        cfg[g].repetition = g;
        cfg[g].memory_turns = memory;
    }
    const char *ids[] = {"t-openai"};
    struct bz_llm *llm = NULL;
    struct bz_err err = {0};
    if (bz_llm_create_from(&set, NULL, &ops, &cfg[0], ids, 1, 1, 0.05, &llm, &err)) {
        fprintf(stderr, "bench_llm: %s\n", err.msg);
        test_server_stop(&srv);
        return 1;
    }
    struct bz_llm_hook hook = bz_llm_hook(llm);
    struct bz_match **m = calloc((size_t)K, sizeof *m);
    int *done = calloc((size_t)K, sizeof *done);
    for (int g = 0; g < K; g++)
        bz_match_create(&cfg[g], &hook, &m[g], &err);
    double c0 = cpu_s(), t0 = bz_llm_now_s();
    int n_done = 0;
    while (n_done < K) {
        for (int g = 0; g < K; g++) {
            if (done[g])
                continue;
            int st;
            while ((st = bz_match_advance(m[g], &err)) == BZ_MATCH_RUNNING)
                ;
            if (st == BZ_MATCH_DONE || st < 0) {
                done[g] = 1;
                n_done++;
            }
        }
        if (n_done < K)
            bz_llm_poll(llm, 50, &err);
    }
    double wall = bz_llm_now_s() - t0, cpu = cpu_s() - c0;
    long served = test_server_stat(srv.port, "completions");
    long max_inflight = test_server_stat(srv.port, "max_inflight");
    struct bz_llm_totals tot;
    bz_llm_get_totals(llm, &tot);
    double rate = (double)tot.calls / wall, ideal = C / (L_ms / 1000.0);
    printf("bench_llm: L=%.0f ms C=%d requests=%lld (server saw %ld, max in flight %ld, "
           "retries %lld)\n",
           L_ms, C, (long long)tot.calls, served, max_inflight, (long long)tot.retries);
    printf("  throughput: %.1f requests/s = %.3f of C/L (%.1f/s)\n", rate, rate / ideal, ideal);
    printf("  bazaar CPU: %.1f us per request (%.3f s CPU over %.2f s wall)\n",
           cpu / (double)tot.calls * 1e6, cpu, wall);
    /* transcript bytes the records hold: /llm_texts texts and hashes plus the
     * /llm_calls rows' links (before HDF5's per-row overhead) */
    size_t tbytes = 0, rows = 0;
    for (int g = 0; g < K; g++) {
        const struct bz_rowbuf *rb = bz_records_find(bz_match_records(m[g]), &bz_llm_texts_table);
        for (size_t i = 0; rb && i < rb->n_rows; i++) {
            const struct bz_llm_texts_row *t =
                (const void *)(rb->data + i * sizeof(struct bz_llm_texts_row));
            tbytes += strlen(t->text) + strlen(t->hash) + strlen(t->kind) + 8;
        }
        const struct bz_rowbuf *cb = bz_records_find(bz_match_records(m[g]), &bz_llm_calls_table);
        for (size_t i = 0; cb && i < cb->n_rows; i++) {
            const struct bz_llm_calls_row *c =
                (const void *)(cb->data + i * sizeof(struct bz_llm_calls_row));
            tbytes += strlen(c->history) + 4 * 32;
            rows++;
        }
    }
    printf("  memory_turns %d; transcripts: %.0f bytes per call (%zu rows, %zu bytes)\n", memory,
           rows ? (double)tbytes / (double)rows : 0.0, rows, tbytes);
    for (int g = 0; g < K; g++)
        bz_match_destroy(m[g]);
    bz_llm_destroy(llm);
    test_server_stop(&srv);
    free(m);
    free(done);
    free(cfg);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    return 0;
}
