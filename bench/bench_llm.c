/* bench_llm: LLM throughput against bench/bench_llm_server.c (a one-thread
 * epoll server answering after a fixed latency L: it is not the ceiling)
 * at several rank concurrencies C, in one run: requests/s as a fraction of
 * the ideal C/L, bazaar's own CPU time per request (getrusage of this
 * process; the server is a child and not counted, its own CPU is printed
 * apart), and the poll()/epoll_wait() calls per request (libcurl's own
 * included: tests/poll_count.h). Drives
 * C/4 live matches of a one-phase game with 4 LLM agents through the LLM
 * hook, as the scheduler does, with transcripts recorded (/llm_texts) and
 * memory_turns M (chat history of the agent's last M turns).
 * Where a turn's time beyond L goes: the bench server stamps each reply
 * with when it read the request and wrote the reply (--stamp; one clock,
 * CLOCK_MONOTONIC), so each call after the first turn splits into the
 * game's step to the server reading the request, the server (L and its
 * 250 us reply grid), and the reply written to its parse here; apart, a
 * turn's last reply parsed to the game's step (the caller's loop) and the
 * step to its requests handed to curl. CPU is split into the kernel's part
 * (on loopback a send or connect also runs the server's TCP input and
 * wakes it) and the time runnable but waiting for a core.
 * Usage: bench_llm [L_ms, default 200] [C list, default 16,256,1024]
 *                  [rounds per C, default 20: C x rounds requests] [M, default 3] */
#define _GNU_SOURCE /* poll_count.h: dlsym's RTLD_NEXT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../tests/llm_test_util.h"
#include "../tests/poll_count.h"
#include "bazaar/match.h"
#include "llm/llm_internal.h"

#define N_AGENTS 4

struct bz_game {
    struct bz_game_base base;
    int turn, max_turns;
    double last_reply; /* when this turn's latest reply was parsed (in the LLM's done()) */
    double stepped;    /* when the game stepped to its next turn */
    double prev_reply; /* the previous turn's last reply parsed */
};

/* Per-turn gaps, after the first turn: a turn's last reply parsed to the
 * game's step (the caller's loop), and the step to its requests handed to
 * curl (built and sent on idle connections). */
static double gap_reply_step, gap_step_sent;
static long n_gaps;
static double *gaps; /* reply-to-step gaps, for the median */
static long cap_gaps;
/* A call after the first turn split by the server's stamps (its clock is
 * ours): the step to the server reading the request (build, send, the
 * server's wake-up), the server (L and its reply grid), the server writing
 * the reply to its parse here (our wake-up, the replies ahead of it). */
static double sum_up, sum_srv, sum_down, sum_turn;
/* The first turn: when the server read its last request (the ramp's sends
 * are over) and when its last reply was parsed here. */
static double first_in_max, first_parsed_max;
static double *downs, *ups;
static long n_split;

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
    g->stepped = bz_llm_now_s();
    g->prev_reply = g->last_reply;
    if (g->turn > 0 && g->last_reply > 0) {
        double d = g->stepped - g->last_reply;
        gap_reply_step += d;
        if (n_gaps < cap_gaps)
            gaps[n_gaps] = d;
        n_gaps++;
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
    (void)r;
    g->last_reply = bz_llm_now_s();
    const cJSON *tin = cJSON_GetObjectItem(reply, "t_in"),
                *tout = cJSON_GetObjectItem(reply, "t_out");
    if (g->turn == 0 && cJSON_IsNumber(tin)) {
        if (tin->valuedouble > first_in_max)
            first_in_max = tin->valuedouble;
        first_parsed_max = g->last_reply > first_parsed_max ? g->last_reply : first_parsed_max;
    }
    if (g->turn > 0 && cJSON_IsNumber(tin) && cJSON_IsNumber(tout)) {
        double up = tin->valuedouble - g->stepped, down = g->last_reply - tout->valuedouble;
        sum_up += up;
        sum_turn += tin->valuedouble - g->prev_reply;
        sum_srv += tout->valuedouble - tin->valuedouble;
        sum_down += down;
        if (n_split < cap_gaps * N_AGENTS) {
            ups[n_split] = up;
            downs[n_split] = down;
        }
        n_split++;
    }
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

/* This process's system CPU seconds (the kernel's share of cpu_s: on
 * loopback a send also runs the receiver's TCP input). */
static double sys_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Seconds this process waited for a CPU while runnable (the machine's
 * other load), from /proc/self/schedstat; -1 when unknown. */
static double runq_wait_s(void)
{
    FILE *f = fopen("/proc/self/schedstat", "r");
    unsigned long long run_ns = 0, wait_ns = 0;
    int ok = f && fscanf(f, "%llu %llu", &run_ns, &wait_ns) == 2;
    if (f)
        fclose(f);
    return ok ? (double)wait_ns * 1e-9 : -1;
}

/* Start bench_llm_server (beside this executable) with latency L_ms;
 * the same "PORT n" handshake as tests/llm_server.py. 0 on success. */
static int server_start(struct test_server *s, double L_ms)
{
    char exe[4096], path[4200], lat[32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    snprintf(path, sizeof path, "%s/bench_llm_server", exe);
    snprintf(lat, sizeof lat, "%g", L_ms);
    char flag[] = "--latency-ms", sflag[] = "--stamp", one[] = "1";
    char *const argv[] = {path, flag, lat, sflag, one, NULL};
    if (test_server_exec(s, argv) != 0) {
        fprintf(stderr, "bench_llm: cannot start %s\n", path);
        test_server_stop(s);
        return -1;
    }
    return 0;
}

struct result {
    int C;
    double rate, ratio, steady, ramp_ms, cpu_us, waits, srv_cpu_us, runq_s, gap_ms, up_ms, down_ms;
};

/* One concurrency: C/4 games of `rounds` turns, 4 LLM agents each. */
static int run_one(const struct test_server *srv, const char *reg, const char *pdir, double L_ms,
                   int C, int rounds, int memory, struct result *res)
{
    int K = C / N_AGENTS > 0 ? C / N_AGENTS : 1; /* live games: enough decisions to fill C */
    int turns = rounds;
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
        free(cfg);
        return 1;
    }
    test_server_reset(srv->port);
    long srv_cpu0 = test_server_stat(srv->port, "cpu_us");
    struct bz_llm_hook hook = bz_llm_hook(llm);
    struct bz_match **m = calloc((size_t)K, sizeof *m);
    int *done = calloc((size_t)K, sizeof *done);
    for (int g = 0; g < K; g++)
        bz_match_create(&cfg[g], &hook, &m[g], &err);
    gap_reply_step = gap_step_sent = 0;
    n_gaps = 0;
    cap_gaps = (long)K * rounds;
    gaps = malloc((size_t)cap_gaps * sizeof *gaps);
    sum_up = sum_srv = sum_down = sum_turn = 0;
    first_in_max = first_parsed_max = 0;
    n_split = 0;
    ups = malloc((size_t)cap_gaps * N_AGENTS * sizeof *ups);
    downs = malloc((size_t)cap_gaps * N_AGENTS * sizeof *downs);
    int64_t waits0 = poll_count_poll + poll_count_epoll;
    double c0 = cpu_s(), s0 = sys_s(), t0 = bz_llm_now_s(), q0 = runq_wait_s();
    int n_done = 0;
    double t1 = 0, t_built = 0, cpu1 = 0, sys1 = 0, q1 = 0;
    int64_t calls1 = 0;
    while (n_done < K) {
        for (int g = 0; g < K; g++) {
            if (done[g])
                continue;
            int st;
            struct bz_game *gm = bz_match_game(m[g]);
            double stepped0 = gm->stepped;
            while ((st = bz_match_advance(m[g], &err)) == BZ_MATCH_RUNNING)
                ;
            bz_llm_flush(llm); /* as the runner does (bz_runner_pump) */
            if (st == BZ_MATCH_WAITING && gm->stepped != stepped0 && gm->turn > 0)
                gap_step_sent += bz_llm_now_s() - gm->stepped;
            if (st == BZ_MATCH_DONE || st < 0) {
                done[g] = 1;
                n_done++;
            }
        }
        if (t_built == 0)
            t_built = bz_llm_now_s(); /* every game has asked: C requests built */
        if (n_done < K)
            bz_llm_poll(llm, 50, &err);
        if (t1 == 0) {
            struct bz_llm_totals t;
            bz_llm_get_totals(llm, &t);
            if (t.calls >= C) { /* the first round is in: connections are open */
                t1 = bz_llm_now_s();
                calls1 = t.calls;
                cpu1 = cpu_s() - c0;
                sys1 = sys_s() - s0;
                q1 = runq_wait_s() - q0;
            }
        }
    }
    double wall = bz_llm_now_s() - t0, cpu = cpu_s() - c0, sys = sys_s() - s0,
           runq = runq_wait_s() - q0;
    int64_t waits1 = poll_count_poll + poll_count_epoll;
    long served = test_server_stat(srv->port, "completions");
    long max_inflight = test_server_stat(srv->port, "max_inflight");
    long srv_cpu = test_server_stat(srv->port, "cpu_us") - srv_cpu0;
    long srv_late = test_server_stat(srv->port, "late_us");
    struct bz_llm_totals tot;
    bz_llm_get_totals(llm, &tot);
    double rate = (double)tot.calls / wall, ideal = C / (L_ms / 1000.0);
    double t_end = t0 + wall;
    double steady = t1 > 0 && t_end > t1 ? (double)(tot.calls - calls1) / (t_end - t1) : 0;
    res->C = C;
    res->rate = rate;
    res->ratio = rate / ideal;
    res->steady = steady / ideal;
    res->ramp_ms = t1 > 0 ? (t1 - t0) * 1000.0 : 0;
    res->cpu_us = cpu / (double)tot.calls * 1e6;
    res->waits = (double)(waits1 - waits0) / (double)tot.calls;
    res->runq_s = runq;
    res->srv_cpu_us = served > 0 ? (double)srv_cpu / (double)served : 0;
    printf("bench_llm: L=%.0f ms C=%d requests=%lld (server saw %ld, max in flight %ld, "
           "retries %lld)\n",
           L_ms, C, (long long)tot.calls, served, max_inflight, (long long)tot.retries);
    printf("  throughput: %.1f requests/s = %.3f of C/L (%.1f/s); after the first round (C "
           "connections opened, C requests built at once): %.1f/s = %.3f of C/L\n",
           rate, rate / ideal, ideal, steady, steady / ideal);
    printf("  ramp-up: the first %d replies (a reply per slot: C connections opened, C requests "
           "built and sent) took %.1f ms = L + %.1f ms (counted in the whole run's figure); "
           "building the C requests took %.1f ms of it; bazaar's CPU in it %.1f ms (%.1f ms of "
           "it in the kernel), waiting for a CPU %.1f ms\n",
           C, res->ramp_ms, res->ramp_ms - L_ms, (t_built - t0) * 1000.0, cpu1 * 1000.0,
           sys1 * 1000.0, q1 * 1000.0);
    if (first_in_max > 0)
        printf("  first turn: the server read its last request %.1f ms after the start, its last "
               "reply was parsed here at L + %.1f ms\n",
               (first_in_max - t0) * 1000.0, (first_parsed_max - t0) * 1000.0 - L_ms);
    printf("  bazaar CPU: %.1f us per request, %.1f of them in the kernel (%.3f s CPU over %.2f s "
           "wall; %.3f s waiting for a CPU the machine's other load held)\n",
           cpu / (double)tot.calls * 1e6, sys / (double)tot.calls * 1e6, cpu, wall, runq);
    printf("  wake-ups: %.2f poll()+epoll_wait() calls per request (libcurl's included); "
           "server CPU %.1f us per request\n",
           res->waits, res->srv_cpu_us);
    /* transcript bytes the records hold: /llm_texts texts and hashes plus the
     * /llm_calls rows' links (before HDF5's per-row overhead) */
    size_t tbytes = 0, rows = 0, n_lat = 0, n_later = 0, n_rounds = 0;
    double lat_ms = 0, lat_later = 0, round_max = 0;
    double *lats = malloc(((size_t)tot.calls + 1) * sizeof *lats);
    double *later = malloc(((size_t)tot.calls + 1) * sizeof *later);
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
            lat_ms += c->latency_ms;
            if (c->turn > 0 && later && n_later < (size_t)tot.calls) {
                lat_later += c->latency_ms;
                later[n_later++] = c->latency_ms;
            }
            if (lats && n_lat < (size_t)tot.calls)
                lats[n_lat++] = c->latency_ms;
            rows++;
        }
        /* a game's turn waits for the slowest of its 4 calls (rows of a
         * turn are adjacent: the turn ends only when all 4 are in) */
        for (size_t i = 0; cb && i < cb->n_rows;) {
            const struct bz_llm_calls_row *c =
                (const void *)(cb->data + i * sizeof(struct bz_llm_calls_row));
            double mx = 0;
            size_t j = i;
            for (; j < cb->n_rows; j++) {
                const struct bz_llm_calls_row *d =
                    (const void *)(cb->data + j * sizeof(struct bz_llm_calls_row));
                if (d->turn != c->turn)
                    break;
                mx = d->latency_ms > mx ? d->latency_ms : mx;
            }
            if (c->turn > 0) {
                round_max += mx;
                n_rounds++;
            }
            i = j;
        }
    }
    if (lats && n_lat)
        qsort(lats, n_lat, sizeof *lats, cmp_double);
    printf("  latency: %.1f ms mean per call, request started to reply parsed (p50 %.1f, p90 %.1f, "
           "p99 %.1f, max %.1f; L = %.0f ms; the server replied %.2f ms late on average)\n",
           rows ? lat_ms / (double)rows : 0.0, n_lat ? lats[n_lat / 2] : 0.0,
           n_lat ? lats[n_lat * 9 / 10] : 0.0, n_lat ? lats[n_lat * 99 / 100] : 0.0,
           n_lat ? lats[n_lat - 1] : 0.0, L_ms,
           served > 0 ? (double)srv_late / (double)served / 1000.0 : 0.0);
    free(lats);
    if (later && n_later)
        qsort(later, n_later, sizeof *later, cmp_double);
    printf(
        "  latency after the first round: L + %.2f ms mean (p50 L + %.2f, p90 L + %.2f, p99 L + "
        "%.2f, max L + %.2f); a turn's slowest of its %d calls: L + %.2f ms mean\n",
        n_later ? lat_later / (double)n_later - L_ms : 0.0,
        n_later ? later[n_later / 2] - L_ms : 0.0, n_later ? later[n_later * 9 / 10] - L_ms : 0.0,
        n_later ? later[n_later * 99 / 100] - L_ms : 0.0, n_later ? later[n_later - 1] - L_ms : 0.0,
        N_AGENTS, n_rounds ? round_max / (double)n_rounds - L_ms : 0.0);
    free(later);
    long ng = n_gaps < cap_gaps ? n_gaps : cap_gaps;
    if (gaps && ng)
        qsort(gaps, (size_t)ng, sizeof *gaps, cmp_double);
    printf("  between turns: a turn's last reply parsed to the game's step %.3f ms mean (p50 %.3f, "
           "p90 %.3f); the step to its %d requests handed to curl %.3f ms mean (%ld turns)\n",
           n_gaps ? gap_reply_step / (double)n_gaps * 1e3 : 0.0, ng ? gaps[ng / 2] * 1e3 : 0.0,
           ng ? gaps[ng * 9 / 10] * 1e3 : 0.0, N_AGENTS,
           n_gaps ? gap_step_sent / (double)n_gaps * 1e3 : 0.0, n_gaps);
    res->gap_ms = n_gaps ? gap_reply_step / (double)n_gaps * 1e3 : 0.0;
    free(gaps);
    gaps = NULL;
    long ns = n_split < cap_gaps * N_AGENTS ? n_split : cap_gaps * N_AGENTS;
    if (ns) {
        qsort(ups, (size_t)ns, sizeof *ups, cmp_double);
        qsort(downs, (size_t)ns, sizeof *downs, cmp_double);
        printf("  a call split by the server's stamps: the game's step to the server reading the "
               "request %.3f ms mean (p50 %.3f, p90 %.3f); the server L + %.3f ms mean; the reply "
               "written to parsed here %.3f ms mean (p50 %.3f, p90 %.3f); the previous turn's "
               "last reply parsed to the server reading this request %.3f ms mean\n",
               sum_up / (double)n_split * 1e3, ups[ns / 2] * 1e3, ups[ns * 9 / 10] * 1e3,
               sum_srv / (double)n_split * 1e3 - L_ms, sum_down / (double)n_split * 1e3,
               downs[ns / 2] * 1e3, downs[ns * 9 / 10] * 1e3, sum_turn / (double)n_split * 1e3);
        res->up_ms = sum_up / (double)n_split * 1e3;
        res->down_ms = sum_down / (double)n_split * 1e3;
    }
    free(ups);
    free(downs);
    ups = downs = NULL;
    printf("  memory_turns %d; transcripts: %.0f bytes per call (%zu rows, %zu bytes)\n", memory,
           rows ? (double)tbytes / (double)rows : 0.0, rows, tbytes);
    for (int g = 0; g < K; g++)
        bz_match_destroy(m[g]);
    bz_llm_destroy(llm);
    free(m);
    free(done);
    free(cfg);
    return 0;
}

int main(int argc, char **argv)
{
    static const char usage[] =
        "usage: bench_llm [L_ms [C,C,... [rounds [memory_turns]]]]\n"
        "  defaults: 200 16,256,1024 20 3; a local epoll server answers after L ms\n";
    for (int i = 1; i < argc; i++) {
        char *rest = NULL;
        int help = !strcmp(argv[i], "-h") || !strcmp(argv[i], "--help");
        if (help || argv[i][0] == '-' || (i != 2 && (strtod(argv[i], &rest) < 0 || *rest))) {
            fputs(usage, help ? stdout : stderr);
            return help ? 0 : 2;
        }
    }
    double L_ms = argc > 1 ? atof(argv[1]) : 200;
    const char *c_list = argc > 2 ? argv[2] : "16,256,1024";
    int rounds = argc > 3 ? atoi(argv[3]) : 20;
    int memory = argc > 4 ? atoi(argv[4]) : 3;
    int Cs[16], nC = 0;
    for (const char *c = c_list; *c && nC < 16;) {
        char *end;
        long v = strtol(c, &end, 10);
        if (end == c || v < 1) {
            fprintf(stderr, "bench_llm: C list: expected numbers >= 1 separated by commas\n");
            return 2;
        }
        Cs[nC++] = (int)v;
        c = *end == ',' ? end + 1 : end;
    }
    /* C connections plus the server's: raise the descriptor limit */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    struct test_server srv;
    if (server_start(&srv, L_ms) != 0)
        return 1;
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

    struct result res[16];
    int rc = 0;
    for (int i = 0; i < nC && !rc; i++)
        rc = run_one(&srv, reg, pdir, L_ms, Cs[i], rounds, memory, &res[i]);
    if (!rc) {
        printf("bench_llm summary (L = %.0f ms, %d rounds):\n", L_ms, rounds);
        printf("  %6s %10s %8s %8s %10s %12s %10s %14s %12s\n", "C", "req/s", "of C/L", "steady",
               "ramp-up ms", "CPU us/req", "polls/req", "server us/req", "CPU wait s");
        for (int i = 0; i < nC; i++)
            printf("  %6d %10.1f %8.3f %8.3f %10.1f %12.1f %10.2f %14.1f %12.3f\n", res[i].C,
                   res[i].rate, res[i].ratio, res[i].steady, res[i].ramp_ms - L_ms, res[i].cpu_us,
                   res[i].waits, res[i].srv_cpu_us, res[i].runq_s);
        printf("  (of C/L: the whole run, ramp-up included; steady: after the first C replies, "
               "once C connections are open; ramp-up: how much longer than L the first C replies "
               "took; CPU wait: time runnable but waiting for a core)\n");
    }
    test_server_stop(&srv);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    return rc;
}
