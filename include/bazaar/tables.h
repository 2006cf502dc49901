/* tables: the tables every game shares (/games, /agents, /messages,
 * /llm_calls), each declared once as an X-macro list (see records.h), and the
 * per-game /<game>/config tables built at run time from a game's parameter
 * list. Knows nothing of HDF5; never does I/O but printing the schema. */
#ifndef BAZAAR_TABLES_H
#define BAZAAR_TABLES_H

#include <stdio.h>

#include "bazaar/game.h"
#include "bazaar/records.h"

/* /games: one row per game, game-neutral. A game's parameters are in
 * /<game>/config; its per-turn and per-round data in its own tables. */
#define BZ_GAMES_COLUMNS(X, R)                                                                     \
    X(R, game_id, I64, "", "game id: 0..G-1 in grid order, stable for a spec")                     \
    X(R, game, S32, "", "game name (its parameters: /<game>/config)")                              \
    X(R, seed, U64, "",                                                                            \
      "hash of every parameter, the lineup name, llm.memory_turns (when not 0) and the "           \
      "repetition")                                                                                \
    X(R, env_seed, U64, "",                                                                        \
      "seed of the environment: equal for games that differ only in lineup, communication or "     \
      "memory_turns")                                                                              \
    X(R, repetition, I32, "", "repetition index of the grid point, 0-based")                       \
    X(R, n_agents, I32, "", "number of agents (seats)")                                            \
    X(R, communication, U8, "", "1: agents exchange free-text messages; 0: they see none")         \
    X(R, memory_turns, I32, "",                                                                    \
      "llm.memory_turns: earlier turns an LLM agent sees as chat history; 0 also when the lineup " \
      "has no LLM agent")                                                                          \
    X(R, lineup, STR, "", "name of the lineup (agents per seat: /agents)")                         \
    X(R, turns_played, I32, "", "turns the game ran")                                              \
    X(R, welfare, F64, "payoff", "sum of the agents' payoffs; NaN when failed")                    \
    X(R, max_welfare, F64, "payoff", "best achievable welfare as the game defines it")             \
    X(R, efficiency, F64, "1", "the game's efficiency measure (see its documentation)")            \
    X(R, n_invalid, I32, "", "inadmissible actions the game saw (any agent)")                      \
    X(R, n_bad_replies, I32, "", "LLM replies that did not parse or check")                        \
    X(R, n_repair, I32, "", "repair prompts sent to LLM agents")                                   \
    X(R, n_fallback, I32, "", "fallback actions used in place of an agent's decision")             \
    X(R, llm_calls, I64, "", "LLM calls made (repairs included, cache hits included)")             \
    X(R, cache_hits, I64, "", "LLM calls answered by the response cache")                          \
    X(R, input_tokens, I64, "tokens", "LLM input tokens")                                          \
    X(R, cached_input_tokens, I64, "tokens",                                                       \
      "LLM input tokens the provider served from its prompt cache (part of input_tokens)")         \
    X(R, output_tokens, I64, "tokens", "LLM output tokens")                                        \
    X(R, cost_usd, F64, "USD", "LLM cost at the registry's prices")                                \
    X(R, status, S8, "", "\"ok\", \"failed\" or \"timeout\" (ran past llm.max_game_seconds)")      \
    X(R, error, S256, "", "why the game failed; \"\" when it did not")
BZ_TABLE_ROW(bz_games_row, BZ_GAMES_COLUMNS);

/* /agents: one row per agent per game. */
#define BZ_AGENTS_COLUMNS(X, R)                                                                    \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, agent, I32, "", "seat index, 0-based")                                                    \
    X(R, kind, S16, "", "\"heuristic\" or \"llm\"")                                                \
    X(R, policy, S128, "", "the agent's label in the lineup (policy and skill, or model id)")      \
    X(R, skill, F64, "1", "heuristic skill in [0, 1]; NaN for LLM agents")                         \
    X(R, capability, F64, "1", "heuristic: its skill; LLM: the registry's capability")             \
    X(R, payoff, F64, "payoff", "final payoff; NaN when the game failed")                          \
    X(R, payoff_share, F64, "1", "payoff / sum of |payoffs| of the game; NaN when all are 0")      \
    X(R, gain, F64, "payoff",                                                                      \
      "payoff - its autarky payoff (had it traded with no one); NaN for games without one")
BZ_TABLE_ROW(bz_agents_row, BZ_AGENTS_COLUMNS);

/* /messages: every free-text message a game delivered. */
#define BZ_MESSAGES_COLUMNS(X, R)                                                                  \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, turn, I32, "", "turn the message was sent in, 0-based")                                   \
    X(R, round, I32, "", "negotiation round within the turn; -1 for games without rounds")         \
    X(R, phase, S32, "", "phase the message was sent in")                                          \
    X(R, sender, I32, "", "seat of the sender")                                                    \
    X(R, receiver, I32, "", "seat of the receiver; -1: to all")                                    \
    X(R, visibility, S8, "", "\"public\" (every agent sees it) or \"private\" (the receiver)")     \
    X(R, conversation, I32, "", "conversation id within the game; -1: none")                       \
    X(R, text, TEXT, "", "the message")
BZ_TABLE_ROW(bz_messages_row, BZ_MESSAGES_COLUMNS);

/* /llm_calls: one row per model call (a repair is a second call). */
#define BZ_LLM_CALLS_COLUMNS(X, R)                                                                 \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, turn, I32, "", "meta.turn of the observation, else -1")                                   \
    X(R, phase, S32, "", "phase the decision was for")                                             \
    X(R, agent, I32, "", "seat of the agent")                                                      \
    X(R, model, S128, "", "model id in the registry")                                              \
    X(R, attempt, I32, "", "0: first prompt, 1: repair prompt")                                    \
    X(R, latency_ms, F64, "ms", "first byte sent to reply parsed, retries included")               \
    X(R, input_tokens, I64, "tokens", "input tokens of this call")                                 \
    X(R, output_tokens, I64, "tokens", "output tokens of this call")                               \
    X(R, cost_usd, F64, "USD", "cost of this call at the registry's prices")                       \
    X(R, retries, I32, "", "transport retries of this call")                                       \
    X(R, cache_hit, U8, "", "1: answered by the response cache")                                   \
    X(R, http_status, I32, "", "last HTTP status; 0: no HTTP reply")                               \
    X(R, parse_outcome, S16, "",                                                                   \
      "ok, repaired, invalid_json, schema, inadmissible, refusal, truncated, http_error, "         \
      "network, replay_miss, render_error or cancelled")                                           \
    X(R, decision, S16, "", "ok, repaired, fallback, or \"\" when a repair follows")               \
    X(R, error, STR, "", "what went wrong; \"\" when nothing did")                                 \
    X(R, cached_input_tokens, I64, "tokens",                                                       \
      "input tokens the provider served from its prompt cache (part of input_tokens)")             \
    X(R, model_version, STR, "", "the model the provider reported answering; \"\" if none")        \
    X(R, memory_turns, I32, "", "llm.memory_turns: earlier turns' exchanges sent as chat history") \
    X(R, history, STR, "",                                                                         \
      "/llm_texts hashes of the earlier prompts and replies sent as chat history, oldest first "   \
      "(prompt reply prompt reply ...); \"\" for none")                                            \
    X(R, system_text, S32, "", "/llm_texts hash of the system prompt sent")                        \
    X(R, prompt_text, S32, "", "/llm_texts hash of the decision's prompt (user message)")          \
    X(R, repair_text, S32, "",                                                                     \
      "/llm_texts hash of the repair prompt (attempt 1: sent after the previous row's reply)")     \
    X(R, reply_text, S32, "", "/llm_texts hash of the model's reply text; \"\" when none came")    \
    X(R, reasoning, STR, "", "the reply's free-text reasoning field (llm.reasoning); never parsed")
BZ_TABLE_ROW(bz_llm_calls_row, BZ_LLM_CALLS_COLUMNS);

/* /llm_texts in a shard: the words behind a game's /llm_calls rows, content-
 * addressed: each distinct text (prompt, reply, prompt template, models
 * registry) once per game, under the hash the /llm_calls rows name, in
 * the order the game's calls completed (not reproducible). Per game, so a
 * crashed or replayed game stays self-contained. The merge turns these rows
 * into the results file's store (bz_llm_text_index_table and
 * /llm_text_bytes, see out_texts.h). */
#define BZ_LLM_TEXTS_COLUMNS(X, R)                                                                 \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, hash, STR, "", "32 hex digits: 128-bit hash of the text's bytes")                         \
    X(R, kind, STR, "",                                                                            \
      "system, prompt, repair, reply, template:<file> or registry (its use in the game; the "      \
      "least by strcmp when it has several)")                                                      \
    X(R, text, STR, "", "the text, exactly as sent or received")
BZ_TABLE_ROW(bz_llm_texts_row, BZ_LLM_TEXTS_COLUMNS);

/* /llm_texts in the results file: each distinct text of the whole sweep
 * once, in order of first use: games by id, and the texts a game is the
 * first to use by kind, then text (the order its calls completed in is not
 * reproducible; so the store is the same on any number of ranks). Its bytes
 * are in /llm_text_bytes (u8, chunked, deflate-compressed): bytes [offset,
 * offset + length). hash and kind are fixed-size strings (32 and
 * BZ_LLM_TEXT_KIND_MAX bytes, NUL-padded). Written and read by out_texts.c
 * (the row struct here only documents it). */
#define BZ_LLM_TEXT_INDEX_COLUMNS(X, R)                                                            \
    X(R, game_id, I64, "", "game id of the text's first use")                                      \
    X(R, hash, STR, "",                                                                            \
      "32 hex digits: 128-bit hash of the text's bytes, as /llm_calls names it (fixed 32 bytes)")  \
    X(R, kind, STR, "",                                                                            \
      "system, prompt, repair, reply, template:<file> or registry (its use in that game; fixed "   \
      "48 bytes)")                                                                                 \
    X(R, offset, U64, "bytes", "where the text starts in /llm_text_bytes")                         \
    X(R, length, U64, "bytes", "the text's length in bytes (UTF-8, no terminator)")
BZ_TABLE_ROW(bz_llm_text_index_row, BZ_LLM_TEXT_INDEX_COLUMNS);
#define BZ_LLM_TEXT_KIND_MAX 48

extern const struct bz_table_desc bz_games_table;
extern const struct bz_table_desc bz_agents_table;
extern const struct bz_table_desc bz_messages_table;
extern const struct bz_table_desc bz_llm_calls_table;
extern const struct bz_table_desc bz_llm_texts_table;
extern const struct bz_table_desc bz_llm_text_index_table;

/* The common tables of a results file, in schema order (games, agents,
 * messages, llm_calls, and llm_texts as the results file holds it: the
 * index). */
size_t bz_tables_common_count(void);
const struct bz_table_desc *bz_tables_common_at(size_t i);

/* ---- /<game>/config ------------------------------------------------------
 * One row per game: game_id, then every parameter of ops->params in order,
 * typed by its kind (NUM f64, INT i32 (i64 when its bounds need it), BOOL u8,
 * STR string), unit "" and the parameter's help as the meaning; then the
 * game's measures (ops->measures, f64, with their units and meanings). Built once
 * per process for every registered game (thread-safe); the descriptor lives
 * as long as the process. NULL only when memory runs out. */
const struct bz_table_desc *bz_tables_config(const struct bz_game_ops *ops);

/* Width of a string parameter's column in /<game>/config. */
#define BZ_CONFIG_STR_WIDTH 256

/* BZ_OK when every string cfg's game writes from its configuration fits
 * its fixed-width column (string parameters, the lineup name, the agents'
 * labels), else BZ_EINVAL naming the column: checked before the game is
 * played, so no game runs (and no LLM call is paid) whose rows the shard
 * would refuse. */
int bz_tables_check_config(const struct bz_game_config *cfg, struct bz_err *err);

/* Add cfg's /<game>/config row to rec: the parameters, then the game's
 * measures (ops->measures; measures NULL: NaN, for a failed game).
 * BZ_ENOMEM when memory runs out. */
int bz_tables_add_config_row(struct bz_records *rec, const struct bz_game_config *cfg,
                             const double *measures, struct bz_err *err);

/* ---- a finished game's rows --------------------------------------------- */

struct bz_match_usage;

/* Add a finished game's /agents rows (payoff: n_agents values, ignored when
 * failed), its /<game>/config row and its /games row, last. error: "" or why
 * it failed. BZ_ENOMEM when memory runs out. */
int bz_tables_add_summary(struct bz_records *rec, const struct bz_game_config *cfg,
                          const struct bz_game_outcome *oc, const double *payoff,
                          const struct bz_match_usage *usage, int failed, const char *error,
                          struct bz_err *err);

/* Sort the /llm_calls rows of rec from row `from` on (one step's calls, which
 * complete in any order) by agent, prompt, repair prompt, reply, then attempt: an
 * order that depends on what was asked, not on when the replies came, so a
 * rerun or replay writes the rows in the same order. */
void bz_tables_order_llm_calls(struct bz_records *rec, size_t from);

/* ---- the schema ---------------------------------------------------------- */

/* Print every table and column (type, unit, meaning): the common tables, then
 * per registered game its config and its own tables; only game's when
 * game is non-NULL (BZ_EINVAL naming the known games when it is unknown). */
int bz_tables_print_schema(FILE *f, const char *game, struct bz_err *err);

/* `bazaar info --schema [GAME]`: argv[0] is "--schema". Returns the exit
 * code (0 ok, 2 bad usage or unknown game, 1 out of memory). */
int bz_tables_schema_cmd(int argc, char **argv);

#endif
