/* cli: argument parsing and the subcommands run, play, expand, merge, info.
 * Turns return codes into exit codes (0 ok, 1 failure while running, 2 bad
 * usage or input with nothing started, 3 clean stop that can be resumed).
 * Never plays a game itself but through sched (run) or match (play). */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bazaar/cli.h"
#include "bazaar/llm.h"
#include "bazaar/match.h"
#include "bazaar/out.h"
#include "bazaar/sched.h"
#include "bazaar/show.h"
#include "bazaar/spec.h"
#include "cli_internal.h"
#include "sched_internal.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_STOP = 3 };

static int exit_code(int rc)
{
    switch (rc) {
    case BZ_OK: return EXIT_OK;
    case BZ_EINVAL: return EXIT_USAGE;
    case BZ_ESTOP: return EXIT_STOP;
    default: return EXIT_FAIL;
    }
}

static const char *const usage_main =
    "usage: bazaar <command> [options]\n"
    "\n"
    "Plays multi-agent market and negotiation games (heuristic or LLM agents)\n"
    "in sweeps across MPI ranks and writes every turn to HDF5.\n"
    "\n"
    "commands:\n"
    "  run SPEC [-o OUT.h5] [--resume] [--replay] [--layout plain|virtual]\n"
    "                                              play a sweep (under mpirun/srun: all ranks)\n"
    "  play GAME --agents a,b,... [options]        play one game, print its transcript\n"
    "  expand SPEC [-n N]                          number of games, first configs, LLM cost\n"
    "  merge PARTS_DIR|SHARD... -o OUT.h5 [--layout plain|virtual]\n"
    "                                              merge shards into a results file\n"
    "  info FILE.h5                                tables, row counts and provenance\n"
    "  info --schema [GAME]                        every table and column: type, unit, meaning\n"
    "  show FILE.h5 --game G [--agent A] [--turn T]  one game: decisions, prompts, replies\n"
    "\n"
    "  bazaar <command> --help    options of a command\n"
    "  bazaar --version\n"
    "\n"
    "exit codes: 0 ok, 1 failure while running, 2 bad usage or input (nothing\n"
    "started), 3 stopped cleanly (signal or budget): rerun with --resume.\n";

/* --layout, in the usage of run and merge */
#define LAYOUT_HELP                                                                                \
    "  --layout L            virtual (default): tables without strings as HDF5\n"                  \
    "                        virtual datasets over the ranks' compressed chunks in\n"              \
    "                        the same file; the merge copies chunks instead of\n"                  \
    "                        compressing, so it scales with ranks (readers need\n"                 \
    "                        HDF5 >= 1.10, as h5py has). Or plain: every table one\n"              \
    "                        dataset, compressed by the merge (any HDF5; `bazaar merge\n"          \
    "                        --layout plain V.h5 -o P.h5` converts a file).\n"

static const char *const usage_run =
    "usage: bazaar run SPEC [-o OUT.h5] [--resume] [--replay] [--quiet]\n"
    "                       [--progress-interval SECONDS] [--layout plain|virtual]\n"
    "\n"
    "Plays every game of the sweep SPEC and writes OUT.h5 (default: the spec's\n"
    "\"output\", else results/<name>.h5). Under `mpirun -n R` or `srun` the games\n"
    "are spread over R ranks; the file is the same for any R. Shards are kept in\n"
    "OUT.h5.parts/ until the merge.\n"
    "\n"
    "  -o, --output OUT.h5   results file\n"
    "  --resume              continue an interrupted sweep: play only the games not\n"
    "                        yet recorded (unreadable shards are set aside and replayed)\n"
    "  --replay              LLM sweeps: answer only from the response cache; a call\n"
    "                        not in the cache is refused and recorded\n"
    "  --quiet               no progress on stderr\n"
    "  --progress-interval S seconds between progress lines when stderr is a log\n" LAYOUT_HELP
    "                        A --resume may change the layout.\n"
    "\n"
    "Without --resume an existing OUT.h5 or OUT.h5.parts/ is an error.\n"
    "SIGTERM, SIGINT, SIGUSR1: stop cleanly (exit 3); resume with --resume.\n";

static const char *const usage_play =
    "usage: bazaar play GAME --agents A,B,... [--seed S] [--turns N | --rounds N]\n"
    "                   [--communication on|off] [--set PARAM=VALUE]... [-o OUT.h5]\n"
    "                   [--quiet]\n"
    "       bazaar play [GAME] --params\n"
    "\n"
    "Plays one game and prints a turn-by-turn transcript. The options are checked\n"
    "by the same rules, with the same messages, as a sweep spec's \"fixed\".\n"
    "\n"
    "  --agents LIST   comma-separated agents: a heuristic policy of GAME, optionally\n"
    "                  with a skill in [0, 1] (POLICY?skill=0.5; default 1), or a\n"
    "                  model id of the models registry; n_agents is their number\n"
    "  --seed S        seed (default 1)\n"
    "  --turns N       the game's max_turns  } whichever parameter GAME has; the\n"
    "  --rounds N      the game's max_rounds } other is an error naming GAME\n"
    "  --communication on|off  the game's communication parameter (free text\n"
    "                  between agents)\n"
    "  --set P=V       any parameter of GAME; a parameter may be given once\n"
    "  --models FILE   models registry for LLM agents (default sweeps/models.json)\n"
    "  --cache DIR     LLM response cache folder\n"
    "  --params        list GAME's parameters (kind, range, default, meaning) and\n"
    "                  policies; without GAME, every game's\n"
    "  -o OUT.h5       also write the game's records\n"
    "  --quiet         no transcript\n";

static const char *const usage_expand =
    "usage: bazaar expand SPEC [-n N]\n"
    "\n"
    "Validates SPEC and prints the number of games and the first N configs\n"
    "(default 5); for LLM sweeps, an estimate of tokens and cost: input with\n"
    "the provider-cached part apart, per llm.memory_turns value when the grid\n"
    "varies it, and what the estimate assumes.\n";

static const char *const usage_merge =
    "usage: bazaar merge PARTS_DIR|SHARD.h5... -o OUT.h5 [--layout plain|virtual]\n"
    "\n"
    "Merges shards (every committed game once, ordered by game_id) into OUT.h5.\n"
    "`bazaar run --resume` does this for you; this is for recovery by hand.\n"
    "\n"
    "  -o, --output OUT.h5   results file\n" LAYOUT_HELP
    "                        Shards written for either layout merge in either.\n"
    "\n"
    "Internal: bazaar merge --follow PARTS_DIR -o OUT.h5 --games N --attempt A\n"
    "  --lock-fd FD --parent PID [--layout L] [--nice N] [-- SOURCE.h5...]\n"
    "is the follower merge a run starts (rank 0; nice +N, 10 by default): it merges the\n"
    "sweep's closed segments into OUT.h5.tmp while the sweep plays, in game-id\n"
    "order, and finishes when rank 0 sends the final message on its stdin (EOF\n"
    "without it, or rank 0's death: it removes the tmp and exits). SOURCEs are\n"
    "the closed files the run starts from (OUT, older attempts' shards); FD is\n"
    "OUT.lock, held by rank 0 (PID) and passed down. A run starts it where rank\n"
    "0's node has a CPU no rank plays on (at nice +10: it lives on that CPU)\n"
    "and where more than one rank plays (at nice 0: its work is then on the\n"
    "sweep's critical path whenever it runs); BAZAAR_MERGE_FOLLOW=1 forces it,\n"
    "BAZAAR_MERGE_FOLLOW=0 makes a run merge after the play instead. Not for use\n"
    "by hand.\n";

static const char *const usage_info =
    "usage: bazaar info FILE.h5\n"
    "\n"
    "Prints the file's provenance attributes and every table with its row count.\n";

static int wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

__attribute__((format(printf, 2, 3))) static int usage_error(const char *usage, const char *fmt,
                                                             ...);

static int usage_error(const char *usage, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bazaar: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n\n%s", usage);
    return EXIT_USAGE;
}

/* The value of --layout (v: NULL when it is missing): 0 with *layout, -1
 * when v is not one. */
static int parse_layout(const char *v, enum bz_layout *layout)
{
    if (v && strcmp(v, "plain") == 0)
        *layout = BZ_LAYOUT_PLAIN;
    else if (v && strcmp(v, "virtual") == 0)
        *layout = BZ_LAYOUT_VIRTUAL;
    else
        return -1;
    return 0;
}

/* A bad or missing value of --layout (v: NULL when missing). */
static int layout_error(const char *usage, const char *v)
{
    return usage_error(usage, "--layout: expected plain or virtual, got %s%s%s", v ? "'" : "",
                       v ? v : "nothing", v ? "'" : "");
}

static int report(int rc, const struct bz_err *err)
{
    if (rc && bz_sched_is_root())
        fprintf(stderr, "bazaar: %s\n", err->msg[0] ? err->msg : bz_rc_name(rc));
    return exit_code(rc);
}

/* ---- run ---------------------------------------------------------------- */

static int cmd_run(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        fputs(usage_run, stdout);
        return EXIT_OK;
    }
    struct bz_run_options opt = {.layout = BZ_LAYOUT_VIRTUAL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && i + 1 < argc)
            opt.out_path = argv[++i];
        else if (strcmp(a, "--resume") == 0)
            opt.resume = 1;
        else if (strcmp(a, "--replay") == 0)
            opt.replay = 1;
        else if (strcmp(a, "--quiet") == 0)
            opt.quiet = 1;
        else if (strcmp(a, "--layout") == 0) {
            const char *v = i + 1 < argc ? argv[++i] : NULL;
            if (parse_layout(v, &opt.layout))
                return layout_error(usage_run, v);
        } else if (strcmp(a, "--progress-interval") == 0 && i + 1 < argc) {
            char *end;
            opt.progress_interval_s = strtod(argv[++i], &end);
            if (*end || opt.progress_interval_s <= 0)
                return usage_error(usage_run, "--progress-interval: expected seconds > 0, got '%s'",
                                   argv[i]);
        } else if (a[0] == '-')
            return usage_error(usage_run, "run: unknown option '%s'", a);
        else if (!opt.spec_path)
            opt.spec_path = a;
        else
            return usage_error(usage_run, "run: unexpected argument '%s'", a);
    }
    if (!opt.spec_path)
        return usage_error(usage_run, "run: %s", "missing SPEC");
    struct bz_run_stats st;
    struct bz_err err = {0};
    int rc = bz_sched_run(&opt, &st, &err);
    if (rc == BZ_OK && bz_sched_is_root() && !opt.quiet)
        fprintf(stderr,
                "bazaar: %lld games (%lld played now, %lld already recorded, %lld failed) "
                "on %d rank(s) in %.1f s\n",
                (long long)st.games_total, (long long)st.games_played, (long long)st.games_skipped,
                (long long)st.games_failed, st.ranks, st.seconds);
    return report(rc, &err);
}

/* ---- play --------------------------------------------------------------- */

static int write_single(const char *out, struct bz_match *m, const char *spec_json,
                        struct bz_err *err)
{
    if (access(out, F_OK) == 0)
        return bz_err_set(err, BZ_EINVAL, "%s exists; choose another -o", out);
    char tmp[4200], journal[4300];
    snprintf(tmp, sizeof tmp, "%s.play-shard", out);
    snprintf(journal, sizeof journal, "%s.journal", tmp);
    unlink(tmp);
    unlink(journal);
    struct bz_shard *sh = NULL;
    int rc = bz_shard_create(tmp, &sh, err);
    if (!rc)
        rc = bz_shard_append(sh, bz_match_records(m), err);
    int rc2 = bz_shard_close(sh, rc ? NULL : err);
    if (!rc)
        rc = rc2;
    if (!rc) {
        const char *srcs[] = {tmp};
        char host[256] = "";
        gethostname(host, sizeof host - 1);
        struct bz_provenance prov = {.spec_json = spec_json,
                                     .version = BZ_VERSION,
                                     .git_commit = BZ_GIT_COMMIT,
                                     .hosts = host,
                                     .ranks = 1,
                                     .n_games = 1};
        rc = bz_merge(srcs, 1, out, &prov, err);
    }
    unlink(tmp);
    unlink(journal);
    return rc;
}

/* usage of play: the options, then every game with its policies and
 * parameters, from the registry */
static void print_usage_play(FILE *f)
{
    fputs(usage_play, f);
    fputs("\ngames:\n", f);
    bz_cli_print_games(f);
}

__attribute__((format(printf, 1, 2))) static int play_usage_error(const char *fmt, ...);

static int play_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bazaar: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n\n", stderr);
    print_usage_play(stderr);
    return EXIT_USAGE;
}

static int cmd_play(int argc, char **argv)
{
    if (wants_help(argc, argv) || argc < 2) {
        print_usage_play(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    if (strcmp(argv[1], "--params") == 0) { /* every game's */
        for (size_t i = 0; i < bz_game_count(); i++)
            bz_cli_print_params(stdout, bz_game_at(i));
        return EXIT_OK;
    }
    const struct bz_game_ops *ops = bz_game_find(argv[1]);
    if (!ops) {
        fprintf(stderr, "bazaar: play: unknown game '%s'; games:", argv[1]);
        for (size_t i = 0; i < bz_game_count(); i++)
            fprintf(stderr, " %s", bz_game_at(i)->name);
        fputc('\n', stderr);
        return EXIT_USAGE;
    }
    struct bz_play_args pa = {0};
    const char *out = NULL;
    int quiet = 0;
    struct bz_err err = {0};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        struct bz_play_setting set = {NULL, v, a};
        if (strcmp(a, "--params") == 0) {
            bz_cli_print_params(stdout, ops);
            return EXIT_OK;
        } else if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
            continue;
        } else if (!v) {
            return play_usage_error("play: unknown option or missing value: '%s'", a);
        } else if (strcmp(a, "--agents") == 0) {
            pa.agents = v;
        } else if (strcmp(a, "--seed") == 0) {
            pa.seed = v;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            out = v;
        } else if (strcmp(a, "--models") == 0) {
            pa.models = v;
        } else if (strcmp(a, "--cache") == 0) {
            pa.cache = v;
        } else if (strcmp(a, "--turns") == 0 || strcmp(a, "--rounds") == 0) {
            if (!(set.key = bz_cli_length_param(ops, a, &err)))
                return play_usage_error("%s", err.msg);
        } else if (strcmp(a, "--communication") == 0) {
            if (strcmp(v, "on") && strcmp(v, "off"))
                return play_usage_error("--communication: expected on or off, got '%s'", v);
            if (bz_game_param_index(ops, "communication") < 0) {
                bz_err_set(&err, BZ_EINVAL,
                           "--communication: game %s has no parameter "
                           "communication",
                           ops->name);
                return play_usage_error("%s", err.msg);
            }
            set.key = "communication";
            set.value = strcmp(v, "on") == 0 ? "true" : "false";
        } else if (strcmp(a, "--set") == 0) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v)
                return play_usage_error("--set: expected PARAM=VALUE, got '%s'", v);
            /* the key is cut out of argv[i + 1] in place: "k=v" -> "k", "v" */
            argv[i + 1][eq - v] = '\0';
            set.key = v;
            set.value = eq + 1;
        } else {
            return play_usage_error("play: unknown option '%s'", a);
        }
        i++;
        if (set.key) {
            if (pa.n_sets == sizeof pa.sets / sizeof pa.sets[0])
                return play_usage_error("play: too many parameters set at '%s'", a);
            pa.sets[pa.n_sets++] = set;
        }
    }
    char *json = NULL;
    int rc = bz_cli_play_spec(ops, &pa, &json, &err);
    if (rc == BZ_EINVAL)
        return play_usage_error("play: %s", err.msg);
    if (rc) {
        fprintf(stderr, "bazaar: %s\n", err.msg);
        return exit_code(rc);
    }
    struct bz_spec *spec = NULL;
    struct bz_grid *grid = NULL;
    struct bz_match *m = NULL;
    struct bz_llm *llm = NULL;
    struct bz_llm_hook hook;
    struct bz_game_config cfg;
    rc = bz_spec_parse(json, "command line", &spec, &err);
    if (!rc)
        rc = bz_grid_create(spec, &grid, &err);
    if (!rc)
        rc = bz_sched_resolve_agents(grid, spec, &err);
    if (!rc)
        rc = bz_grid_check(grid, &err);
    if (!rc)
        rc = bz_grid_config(grid, 0, &cfg, &err);
    if (rc)
        goto out;
    cfg.transcript = quiet ? NULL : stdout;
    if (bz_spec_has_llm(spec)) {
        rc = bz_llm_create(spec, NULL, &llm, &err);
        if (rc)
            goto out;
        hook = bz_llm_hook(llm);
    }
    rc = bz_match_create(&cfg, llm ? &hook : NULL, &m, &err);
    if (rc)
        goto out;
    int st;
    while ((st = bz_match_advance(m, &err)) == BZ_MATCH_WAITING) {
        rc = bz_llm_poll(llm, 100, &err);
        if (rc == BZ_ENET) {
            fprintf(stderr, "bazaar: %s\n", err.msg);
            rc = BZ_OK;
        }
        if (rc)
            goto out;
    }
    if (st < 0) {
        rc = -st;
        goto out;
    }
    if (st != BZ_MATCH_DONE) {
        rc = bz_err_set(&err, BZ_EINTERNAL, "game did not finish");
        goto out;
    }
    const struct bz_rowbuf *g = bz_records_find(bz_match_records(m), &bz_games_table);
    if (g && g->n_rows) {
        const struct bz_games_row *row = (const struct bz_games_row *)g->data;
        if (strcmp(row->status, "ok") != 0) {
            rc = bz_err_set(&err, BZ_EINTERNAL, "game failed: %s", row->error);
            goto out;
        }
    }
    if (out) {
        rc = write_single(out, m, json, &err);
        if (!rc && !quiet)
            printf("records written to %s\n", out);
    }
out:
    bz_match_destroy(m);
    bz_llm_destroy(llm);
    bz_grid_destroy(grid);
    bz_spec_destroy(spec);
    free(json);
    if (rc)
        fprintf(stderr, "bazaar: %s\n", err.msg);
    return exit_code(rc);
}

/* ---- expand ------------------------------------------------------------- */

static void print_est_part(const char *head, const struct bz_llm_est_part *p)
{
    printf("%sinput %lld tokens (%lld of them cached), output %lld tokens, $%.2f\n", head,
           (long long)p->input_tokens, (long long)p->cached_input_tokens,
           (long long)p->output_tokens, p->cost_usd);
}

/* The LLM estimate: the total, cached input apart, per llm.memory_turns value
 * when the grid varies it, and what the figures assume. */
static int print_estimate(const struct bz_spec *spec, const struct bz_grid *grid,
                          struct bz_err *err)
{
    struct bz_llm_est e;
    int rc = bz_llm_estimate(spec, grid, &e, err);
    if (rc)
        return rc;
    const struct bz_llm_est_part *t = &e.total;
    printf("LLM estimate: about %lld tokens, $%.2f (from prompt sizes and the registry's "
           "prices)\n",
           (long long)(t->input_tokens + t->output_tokens), t->cost_usd);
    print_est_part("  ", t);
    for (int i = 0; e.n_levels > 1 && i < e.n_levels; i++) {
        char head[64];
        snprintf(head, sizeof head, "  memory_turns %d (%lld games): ", e.levels[i].memory_turns,
                 (long long)e.levels[i].games);
        print_est_part(head, &e.levels[i]);
    }
    printf("  assumes: 4 bytes a token; %d-token replies; every decision answered at the first "
           "attempt; chat history as llm.memory_turns builds it; prompt caching per agent and "
           "game: after an agent's first call, the leading whole messages (reply schema, system "
           "prompt, chat history) it shares with an earlier call of its own are read from the "
           "provider's cache when they reach %d tokens, at price_cached_in_per_mtok (the input "
           "price where the registry gives none), cache writes at the input price; %lld of %lld "
           "games played, the rest scaled\n",
           BZ_LLM_EST_OUTPUT_TOKENS, BZ_LLM_EST_CACHE_MIN_TOKENS, (long long)e.sampled,
           (long long)bz_grid_count(grid));
    bz_llm_est_cleanup(&e);
    return BZ_OK;
}

static int cmd_expand(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        fputs(usage_expand, stdout);
        return EXIT_OK;
    }
    const char *path = NULL;
    long show = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            char *end;
            show = strtol(argv[++i], &end, 10);
            if (*end || show < 0)
                return usage_error(usage_expand, "-n: expected a count, got '%s'", argv[i]);
        } else if (argv[i][0] == '-')
            return usage_error(usage_expand, "expand: unknown option '%s'", argv[i]);
        else if (!path)
            path = argv[i];
        else
            return usage_error(usage_expand, "expand: unexpected argument '%s'", argv[i]);
    }
    if (!path)
        return usage_error(usage_expand, "expand: %s", "missing SPEC");
    struct bz_err err = {0};
    struct bz_spec *spec = NULL;
    struct bz_grid *grid = NULL;
    int rc = bz_spec_load(path, &spec, &err);
    if (!rc)
        rc = bz_grid_create(spec, &grid, &err);
    if (!rc)
        rc = bz_sched_resolve_agents(grid, spec, &err);
    if (!rc)
        rc = bz_grid_check(grid, &err);
    if (rc)
        goto out;
    int64_t n = bz_grid_count(grid);
    printf("%s: %lld games of %s, output %s\n", path, (long long)n, bz_spec_game(spec)->name,
           bz_spec_output(spec));
    for (int64_t id = 0; id < n && id < show; id++) {
        char line[2048];
        rc = bz_grid_describe(grid, id, line, sizeof line);
        if (rc)
            goto out;
        printf("  %s\n", line);
    }
    if (n > show)
        printf("  ... %lld more\n", (long long)(n - show));
    if (bz_spec_has_llm(spec) && (rc = print_estimate(spec, grid, &err)))
        goto out;
out:
    bz_grid_destroy(grid);
    bz_spec_destroy(spec);
    if (rc)
        fprintf(stderr, "bazaar: %s\n", err.msg);
    return exit_code(rc);
}

/* ---- merge, info -------------------------------------------------------- */

/* bazaar merge --follow (started by a run's rank 0; see usage_merge). */
static int cmd_merge_follow(int argc, char **argv)
{
    const char *parts = argc > 2 ? argv[2] : NULL, *out = NULL;
    long long games = -1;
    int attempt = 0, lock_fd = -1, nice_inc = 10, i = 3;
    long parent = 0;
    enum bz_layout layout = BZ_LAYOUT_PLAIN;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (i + 1 >= argc)
            return usage_error(usage_merge, "merge --follow: %s needs a value", argv[i]);
        if (strcmp(argv[i], "-o") == 0)
            out = argv[++i];
        else if (strcmp(argv[i], "--games") == 0)
            games = atoll(argv[++i]);
        else if (strcmp(argv[i], "--attempt") == 0)
            attempt = atoi(argv[++i]);
        else if (strcmp(argv[i], "--lock-fd") == 0)
            lock_fd = atoi(argv[++i]);
        else if (strcmp(argv[i], "--parent") == 0)
            parent = atol(argv[++i]);
        else if (strcmp(argv[i], "--nice") == 0)
            nice_inc = atoi(argv[++i]);
        else if (strcmp(argv[i], "--layout") == 0) {
            if (parse_layout(argv[++i], &layout))
                return layout_error(usage_merge, argv[i]);
        } else
            return usage_error(usage_merge, "merge --follow: unknown option %s", argv[i]);
    }
    if (!parts || !out || games < 0 || attempt < 1 || lock_fd < 0 || parent <= 0)
        return usage_error(usage_merge, "merge --follow: needs PARTS_DIR, -o, --games, "
                                        "--attempt, --lock-fd and --parent");
    struct bz_err err = {0};
    int rc = bz_follow_main(parts, out, attempt, (int64_t)games, layout, nice_inc, lock_fd, parent,
                            argv + i, (size_t)(argc - i), &err);
    if (rc && rc != BZ_ESTOP)
        fprintf(stderr, "bazaar: merge --follow: %s\n", err.msg[0] ? err.msg : bz_rc_name(rc));
    return exit_code(rc);
}

static int cmd_merge(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--follow") == 0)
        return cmd_merge_follow(argc, argv);
    if (wants_help(argc, argv)) {
        fputs(usage_merge, stdout);
        return EXIT_OK;
    }
    const char *out = NULL;
    char **files = calloc((size_t)argc + 1, sizeof *files);
    size_t n = 0;
    int rc = BZ_OK;
    struct bz_err err = {0};
    /* a parts folder's provenance (the run's spec, version, commit, ...) */
    struct bz_provenance prov = {.version = BZ_VERSION, .git_commit = BZ_GIT_COMMIT};
    char *prov_buf = NULL;
    enum bz_layout layout = BZ_LAYOUT_VIRTUAL;
    if (!files)
        return EXIT_FAIL;
    for (int i = 1; i < argc && !rc; i++) {
        if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && i + 1 < argc) {
            out = argv[++i];
            continue;
        }
        if (strcmp(argv[i], "--layout") == 0) {
            const char *v = i + 1 < argc ? argv[++i] : NULL;
            if (!parse_layout(v, &layout))
                continue;
            for (size_t k = 0; k < n; k++)
                free(files[k]);
            free(files);
            free(prov_buf);
            return layout_error(usage_merge, v);
        }
        DIR *d = opendir(argv[i]);
        if (!prov_buf) { /* the parts folder's, or the folder of a shard named */
            char folder[4096];
            snprintf(folder, sizeof folder, "%s", argv[i]);
            char *slash = strrchr(folder, '/');
            if (!d && !slash)
                snprintf(folder, sizeof folder, ".");
            else if (!d)
                slash[slash == folder ? 1 : 0] = '\0';
            rc = bz_sched_parts_provenance(folder, &prov, &prov_buf, &err);
        }
        if (!d) {
            files[n++] = strdup(argv[i]);
            continue;
        }
        /* a parts folder: every readable shard in it, by name */
        struct dirent *de;
        while ((de = readdir(d))) {
            size_t len = strlen(de->d_name);
            if (len < 4 || strcmp(de->d_name + len - 3, ".h5") != 0)
                continue;
            char **nf = realloc(files, (n + 2) * sizeof *nf);
            if (!nf) {
                rc = BZ_ENOMEM;
                break;
            }
            files = nf;
            files[n] = malloc(strlen(argv[i]) + len + 2);
            if (!files[n]) {
                rc = BZ_ENOMEM;
                break;
            }
            sprintf(files[n++], "%s/%s", argv[i], de->d_name);
        }
        closedir(d);
    }
    if (!rc && (!out || !out[0] || n == 0)) {
        for (size_t i = 0; i < n; i++)
            free(files[i]);
        free(files);
        free(prov_buf);
        return usage_error(usage_merge, "merge: %s",
                           !out || !out[0] ? "missing -o OUT.h5" : "no shards");
    }
    if (!rc && access(out, F_OK) == 0)
        rc = bz_err_set(&err, BZ_EINVAL, "%s exists; choose another -o", out);
    /* skip unreadable shards, loudly */
    size_t kept = rc ? n : 0; /* on an early error every file is freed below */
    for (size_t i = 0; i < n && !rc; i++) {
        int64_t *ids = NULL;
        size_t n_ids = 0;
        struct bz_err e = {0};
        if (bz_shard_committed(files[i], &ids, &n_ids, &e) != BZ_OK) {
            fprintf(stderr, "bazaar: skipping %s: %s\n", files[i], e.msg);
            free(files[i]);
            continue;
        }
        free(ids);
        files[kept++] = files[i];
    }
    /* a results file merged again (a virtual file made plain): its own */
    if (!rc && !prov_buf && kept == 1) {
        struct bz_err e = {0};
        if (bz_out_read_provenance(files[0], &prov, &prov_buf, &e) == BZ_EIO)
            fprintf(stderr, "bazaar: %s\n", e.msg);
    }
    if (!rc && !prov_buf)
        fprintf(stderr,
                "bazaar: no provenance (sweep.prov) beside the shards: %s will not "
                "record the spec, ranks or number of games\n",
                out);
    if (!rc && kept == 0)
        rc = bz_err_set(&err, BZ_EINVAL, "no readable shard among the inputs; %s not written", out);
    if (!rc) {
        char finished[32];
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(finished, sizeof finished, "%Y-%m-%dT%H:%M:%SZ", &tm);
        prov.finished_at = finished; /* the merge's time */
        rc = bz_merge_layout((const char *const *)files, kept, out, &prov, layout, &err);
    }
    if (!rc)
        printf("merged %zu shard(s) into %s\n", kept, out);
    for (size_t i = 0; i < kept; i++)
        free(files[i]);
    free(files);
    free(prov_buf);
    if (rc)
        fprintf(stderr, "bazaar: %s\n", err.msg[0] ? err.msg : bz_rc_name(rc));
    return exit_code(rc);
}

static int cmd_info(int argc, char **argv)
{
    if (wants_help(argc, argv) || argc != 2) {
        fputs(usage_info, argc != 2 ? stderr : stdout);
        return argc != 2 ? EXIT_USAGE : EXIT_OK;
    }
    struct bz_err err = {0};
    int rc = bz_out_info(argv[1], stdout, &err);
    if (rc)
        fprintf(stderr, "bazaar: %s\n", err.msg);
    return rc ? EXIT_FAIL : EXIT_OK;
}

int bz_cli_main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_main, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("bazaar %s (commit %s)\n", BZ_VERSION, BZ_GIT_COMMIT);
        return EXIT_OK;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_main, stdout);
        fputs("\ngames (bazaar play GAME --params for each parameter's range and meaning):\n",
              stdout);
        bz_cli_print_games(stdout);
        return EXIT_OK;
    }
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "play") == 0)
        return cmd_play(argc - 1, argv + 1);
    if (strcmp(cmd, "expand") == 0)
        return cmd_expand(argc - 1, argv + 1);
    if (strcmp(cmd, "merge") == 0)
        return cmd_merge(argc - 1, argv + 1);
    if (strcmp(cmd, "info") == 0 && argc > 2 && strcmp(argv[2], "--schema") == 0)
        return bz_tables_schema_cmd(argc - 2, argv + 2); /* tables_schema.c */
    if (strcmp(cmd, "info") == 0)
        return cmd_info(argc - 1, argv + 1);
    if (strcmp(cmd, "show") == 0)
        return bz_show_cmd(argc - 1, argv + 1); /* show.c */
    fprintf(stderr, "bazaar: unknown command '%s'\n\n%s", cmd, usage_main);
    return EXIT_USAGE;
}
