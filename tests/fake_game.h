/* fake_game: a small game for the tests only (never linked into bazaar). One
 * phase "offer" per round: every agent offers an integer 0..100 (and a
 * message with communication on); with slots = 2, agent 0 is asked a second
 * thing in the same step (slot 1). It can be told to fail in step() or
 * apply() at a given round, or to break the step() contract, to test that a
 * game that errs ends failed and never spins. Rows: /fake/answers, one per
 * answer consumed, in the order apply() consumed them. */
#ifndef BAZAAR_FAKE_GAME_H
#define BAZAAR_FAKE_GAME_H

#include <stdint.h>

#include "bazaar/game.h"

extern const struct bz_game_ops bz_fake_game_ops;
extern const struct bz_table_desc bz_fake_answers_table;

/* Parameter indices (order of bz_fake_game_ops.params). */
enum {
    BZ_FAKE_N_AGENTS,
    BZ_FAKE_COMMUNICATION,
    BZ_FAKE_ROUNDS,
    BZ_FAKE_SLOTS,        /* 1 or 2: questions to agent 0 per step */
    BZ_FAKE_FAIL_STEP_AT, /* round at which step() errs; -1 never */
    BZ_FAKE_FAIL_APPLY_AT,
    BZ_FAKE_BREAK_AT, /* round at which step() says DECIDE and asks nothing */
    BZ_FAKE_N_PARAMS
};

struct bz_fake_answer_row {
    int64_t game_id;
    int32_t round;
    int32_t agent;
    int32_t slot;
    int32_t value;
    int32_t order; /* position in which apply() consumed it */
};

/* Register the fake game (idempotent). */
int bz_fake_game_register(void);

#endif
