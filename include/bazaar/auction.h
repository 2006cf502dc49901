/* auction: uniform-price double auction clearing (used by the electricity
 * game's auction phase). Pure computation on caller-owned memory: it never
 * allocates while clearing, so a game can clear every turn at memory speed. */
#ifndef BAZAAR_AUCTION_H
#define BAZAAR_AUCTION_H

#include <stddef.h>
#include <stdint.h>

#include "bazaar/err.h"

enum bz_auction_side { BZ_AUCTION_NONE = 0, BZ_AUCTION_BUY = 1, BZ_AUCTION_SELL = 2 };

/* One order: a bid (BUY) or an ask (SELL) of amount_mwh at a limit price.
 * NONE, amount <= 0 or a non-finite number makes the order inactive. */
struct bz_auction_order {
    int side;
    double amount_mwh;
    double limit_per_mwh;
};

struct bz_auction_result {
    double price_per_mwh; /* uniform clearing price; NaN when nothing trades */
    double volume_mwh;    /* total energy traded */
    int n_bids, n_asks;   /* active orders on each side */
};

/* Workspace for clearing up to cap orders. init/cleanup: caller-owned struct;
 * init allocates (BZ_ENOMEM on failure), cleanup frees and accepts a zeroed
 * struct. */
struct bz_auction_key {
    double limit_per_mwh;
    uint32_t idx;
};

struct bz_auction {
    size_t cap;
    struct bz_auction_key *bids; /* sorted best first during a clear */
    struct bz_auction_key *asks;
};

int bz_auction_init(struct bz_auction *a, size_t cap, struct bz_err *err);
void bz_auction_cleanup(struct bz_auction *a);

/* Clear n orders (n <= cap). Bids are sorted by limit descending, asks
 * ascending (ties by order index, so the result is deterministic); the traded
 * volume Q is the largest quantity at which the cumulative bid curve still
 * lies at or above the ask curve. The price is the middle of the clearing
 * interval [max(last ask that trades, best bid left out), min(last bid that
 * trades, best ask left out)] (a rationed marginal order counts as left out,
 * so the price is its limit): with asks left over the price falls to them,
 * with bids left over it rises to them. Every bid
 * priced above the marginal bid is filled in full, the bids at exactly the
 * marginal limit share the rest pro rata to their amounts; the same for asks.
 * So every trader gets at most its amount, no bid pays above its limit and no
 * ask receives below its limit. filled[i] receives order i's traded amount
 * (0 for inactive or untraded orders). O(n log n); allocates nothing.
 * Returns BZ_OK, or BZ_EINVAL when n > cap. */
int bz_auction_clear(struct bz_auction *a, const struct bz_auction_order *orders, size_t n,
                     double *filled, struct bz_auction_result *res, struct bz_err *err);

#endif
