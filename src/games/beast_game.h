/* beast_game: the platform adapter of the beast game (bz_beast_ops), shared by
 * its files: src/games/beast.c (descriptors, the step/apply mapping onto the
 * rules engine, records), src/games/beast_llm.c (observation, reply schemas,
 * parsing) and src/agents/beast_agents.c (the heuristic policies). The rules
 * themselves are in beast_internal.h / beast_rules.c; nothing here decides a
 * rule. Never does I/O but the transcript. */
#ifndef BAZAAR_BEAST_GAME_H
#define BAZAAR_BEAST_GAME_H

#include <stdint.h>

#include "bazaar/game.h"
#include "bazaar/tables.h"
#include "games/beast_internal.h"

/* Parameter indices (order of the params array in beast.c). */
enum {
    BZ_BEAST_P_N_AGENTS,
    BZ_BEAST_P_COMMUNICATION,
    BZ_BEAST_P_PARTNERS,
    BZ_BEAST_P_EXCHANGES,
    BZ_BEAST_P_ELIMINATIONS,
    BZ_BEAST_P_BONUS_SLOTS,
    BZ_BEAST_P_BONUS,
    BZ_BEAST_P_MAX_ROUNDS,
    BZ_BEAST_P_WEALTH_MAX,
    BZ_BEAST_P_MAX_SLOTS,
    BZ_BEAST_N_PARAMS
};

/* Platform phases, one per request kind (same order as enum bz_beast_kind). */
enum {
    BZ_BEAST_PHASE_PARTNERS,
    BZ_BEAST_PHASE_MESSAGE,
    BZ_BEAST_PHASE_DECLARE,
    BZ_BEAST_PHASE_VOTE,
    BZ_BEAST_N_PHASES
};

#define BZ_BEAST_TEXT_MAX 400 /* free text of one message, bytes */

/* ---- tables (declared once: units and meanings) ---- */
#define BZ_BEAST_WEALTH_COLUMNS(X, R)                                                              \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, round, I32, "", "round, 0-based")                                                         \
    X(R, agent, I32, "", "seat")                                                                   \
    X(R, wealth_start, I64, "wealth", "wealth at the start of the round")                          \
    X(R, transfers_in, I64, "wealth", "executed transfers received this round")                    \
    X(R, transfers_out, I64, "wealth", "executed transfers paid this round")                       \
    X(R, bonus, I64, "wealth", "elimination bonus received this round")                            \
    X(R, wealth_end, I64, "wealth", "wealth_start + transfers_in - transfers_out + bonus")         \
    X(R, active, U8, "", "1: still in the game at the end of the round")
BZ_TABLE_ROW(bz_beast_wealth_trow, BZ_BEAST_WEALTH_COLUMNS);

#define BZ_BEAST_TRANSFERS_COLUMNS(X, R)                                                           \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, round, I32, "", "round, 0-based")                                                         \
    X(R, conversation, I32, "", "conversation id within the game")                                 \
    X(R, payer, I32, "", "seat that would pay")                                                    \
    X(R, payee, I32, "", "seat that would receive")                                                \
    X(R, amount, I64, "wealth", "amount offered or asked")                                         \
    X(R, offered_by, S8, "", "\"payer\" (an offer to give) or \"payee\" (a request to be paid)")   \
    X(R, accepted, U8, "", "1: the receiver accepted it in its next message")                      \
    X(R, executed, U8, "", "1: the transfer was made")                                             \
    X(R, why_not, S16, "", "\"\" when executed, \"not accepted\" or \"cannot afford\"")            \
    X(R, message, I32, "", "index in the conversation of the message that made the offer")
BZ_TABLE_ROW(bz_beast_transfer_trow, BZ_BEAST_TRANSFERS_COLUMNS);

#define BZ_BEAST_VOTES_COLUMNS(X, R)                                                               \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, round, I32, "", "round, 0-based")                                                         \
    X(R, voter, I32, "", "seat of the voter (every player active in the round)")                   \
    X(R, declared_vote, I32, "", "whom it said it would vote for; -1: no statement")               \
    X(R, vote, I32, "", "whom it voted for (private)")                                             \
    X(R, eliminated, I32, "", "the round's eliminated player")
BZ_TABLE_ROW(bz_beast_vote_trow, BZ_BEAST_VOTES_COLUMNS);

#define BZ_BEAST_MESSAGES_COLUMNS(X, R)                                                            \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, round, I32, "", "round, 0-based")                                                         \
    X(R, conversation, I32, "", "conversation id within the game (as in /messages)")               \
    X(R, index, I32, "", "message index within the conversation, 0: the opener's first")           \
    X(R, step, I32, "", "talk step of the round in which it was sent")                             \
    X(R, sender, I32, "", "seat of the sender")                                                    \
    X(R, receiver, I32, "", "seat of the receiver")                                                \
    X(R, offer, S8, "", "\"none\", \"give\" (sender pays) or \"ask\" (receiver pays)")             \
    X(R, amount, I64, "wealth", "amount of the offer; 0 without one")                              \
    X(R, accept, U8, "", "1: accepts the partner's open offer")                                    \
    X(R, leave, U8, "", "1: ends the conversation")                                                \
    X(R, vote_promise, I32, "",                                                                    \
      "\"I will vote for\" this seat; -1: none (recorded, unseen with communication off)")         \
    X(R, vote_request, I32, "", "\"vote for\" this seat; -1: none (as vote_promise)")              \
    X(R, fallback, U8, "", "1: the sender's action was replaced by the safe one")
BZ_TABLE_ROW(bz_beast_message_trow, BZ_BEAST_MESSAGES_COLUMNS);

#define BZ_BEAST_AGENTS_COLUMNS(X, R)                                                              \
    X(R, game_id, I64, "", "game id")                                                              \
    X(R, agent, I32, "", "seat")                                                                   \
    X(R, final_wealth, I64, "wealth", "final wealth (the payoff in /agents)")                      \
    X(R, rank, I32, "", "1 + number of players strictly richer at the end (eliminated included)")  \
    X(R, elimination_round, I32, "", "round it was eliminated in; -1: never")                      \
    X(R, promises_made, I32, "", "declarations made plus accepted transfers it was to pay")        \
    X(R, promises_kept, I32, "", "declarations matched by the vote plus those transfers executed") \
    X(R, promises_kept_share, F64, "1", "promises_kept / promises_made; NaN when none were made")  \
    X(R, invalid_actions, I32, "", "actions of the seat replaced by the safe action")
BZ_TABLE_ROW(bz_beast_agent_trow, BZ_BEAST_AGENTS_COLUMNS);

extern const struct bz_table_desc bz_beast_wealth_table;
extern const struct bz_table_desc bz_beast_transfers_table;
extern const struct bz_table_desc bz_beast_votes_table;
extern const struct bz_table_desc bz_beast_messages_table;
extern const struct bz_table_desc bz_beast_agents_table;

extern const struct bz_game_ops bz_beast_ops;

struct bz_game {
    struct bz_game_base base; /* first */
    struct bz_beast_config bc;
    struct bz_beast *eng;
    int n, cap;                  /* agents; request capacity n * max_slots */
    int n_rq;                    /* engine requests of the open step */
    struct bz_beast_request *rq; /* cap: the engine's list of the open step */
    struct bz_beast_action *act; /* cap: the action slot of each request */
    uint8_t *filled;             /* cap: act[k] was written */
    const char **text;           /* cap: free text of a MESSAGE reply (records arena) */
    int *slot_idx;               /* n * max_slots: request index of (agent, slot), -1 */
    struct bz_beast_mem *mem;    /* n: each seat's heuristic memory */
    const char **msg_text;       /* per engine message row: its text or NULL */
    int cap_msg_text;
    int done; /* the engine is DONE and the records were written */
};

/* The request index of r (an open request of g), or -1. */
int bz_beast_game_index(const struct bz_game *g, const struct bz_request *r);

/* LLM side (beast_llm.c). */
int bz_beast_game_observe(const struct bz_game *g, const struct bz_request *r, struct cJSON *obs,
                          struct bz_err *err);
struct cJSON *bz_beast_game_schema(const struct bz_game *g, int phase);
int bz_beast_game_parse(struct bz_game *g, const struct bz_request *r, const struct cJSON *reply,
                        struct bz_err *err);
const char *bz_beast_offer_name(int offer);

/* Policies (src/agents/beast_agents.c). */
extern const struct bz_policy_ops bz_beast_loyal, bz_beast_mercenary, bz_beast_zi, bz_beast_bully;
void bz_beast_game_random_action(struct bz_game *g, const struct bz_request *r, struct bz_rng *rng);

#endif
