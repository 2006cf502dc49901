/* auction: uniform-price double auction clearing on caller-owned workspace.
 * Never allocates in bz_auction_clear and never reads or writes outside the
 * orders it is given. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bazaar/auction.h"

int bz_auction_init(struct bz_auction *a, size_t cap, struct bz_err *err)
{
    memset(a, 0, sizeof *a);
    size_t c = cap ? cap : 1;
    a->bids = malloc(c * sizeof *a->bids);
    a->asks = malloc(c * sizeof *a->asks);
    if (!a->bids || !a->asks) {
        bz_auction_cleanup(a);
        return bz_err_set(err, BZ_ENOMEM, "auction: cannot allocate workspace for %zu orders", cap);
    }
    a->cap = cap;
    return BZ_OK;
}

void bz_auction_cleanup(struct bz_auction *a)
{
    if (!a)
        return;
    free(a->bids);
    free(a->asks);
    memset(a, 0, sizeof *a);
}

/* Bids: highest limit first; ties by index (deterministic). */
static int cmp_bid(const void *pa, const void *pb)
{
    const struct bz_auction_key *x = pa, *y = pb;
    if (x->limit_per_mwh != y->limit_per_mwh)
        return x->limit_per_mwh > y->limit_per_mwh ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Asks: lowest limit first; ties by index. */
static int cmp_ask(const void *pa, const void *pb)
{
    const struct bz_auction_key *x = pa, *y = pb;
    if (x->limit_per_mwh != y->limit_per_mwh)
        return x->limit_per_mwh < y->limit_per_mwh ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int active(const struct bz_auction_order *o)
{
    return (o->side == BZ_AUCTION_BUY || o->side == BZ_AUCTION_SELL) && isfinite(o->amount_mwh) &&
           o->amount_mwh > 0 && isfinite(o->limit_per_mwh);
}

/* Fill one side's sorted keys with q in total: full fills above the marginal
 * limit, pro rata among the orders tied at the marginal limit. */
static void allocate(const struct bz_auction_key *keys, size_t n,
                     const struct bz_auction_order *orders, double q, double marginal,
                     double *filled)
{
    double rest = q;
    size_t i = 0;
    for (; i < n && keys[i].limit_per_mwh != marginal; i++) {
        double a = orders[keys[i].idx].amount_mwh;
        filled[keys[i].idx] = a;
        rest -= a;
    }
    double tied = 0;
    size_t j = i;
    for (; j < n && keys[j].limit_per_mwh == marginal; j++)
        tied += orders[keys[j].idx].amount_mwh;
    if (rest < 0)
        rest = 0;
    for (size_t k = i; k < j; k++) {
        double a = orders[keys[k].idx].amount_mwh;
        double f = tied > 0 ? rest * (a / tied) : 0;
        filled[keys[k].idx] = f < a ? f : a;
    }
}

int bz_auction_clear(struct bz_auction *a, const struct bz_auction_order *orders, size_t n,
                     double *filled, struct bz_auction_result *res, struct bz_err *err)
{
    if (n > a->cap)
        return bz_err_set(err, BZ_EINVAL, "auction: %zu orders exceed the workspace of %zu", n,
                          a->cap);
    size_t nb = 0, na = 0;
    for (size_t i = 0; i < n; i++) {
        filled[i] = 0;
        if (!active(&orders[i]))
            continue;
        struct bz_auction_key k = {orders[i].limit_per_mwh, (uint32_t)i};
        if (orders[i].side == BZ_AUCTION_BUY)
            a->bids[nb++] = k;
        else
            a->asks[na++] = k;
    }
    res->n_bids = (int)nb;
    res->n_asks = (int)na;
    res->price_per_mwh = NAN;
    res->volume_mwh = 0;
    if (!nb || !na)
        return BZ_OK;
    qsort(a->bids, nb, sizeof *a->bids, cmp_bid);
    qsort(a->asks, na, sizeof *a->asks, cmp_ask);

    /* Walk both curves: the traded volume grows while the current bid is at
     * or above the current ask; the last pair that trades is the marginal one. */
    size_t ib = 0, ia = 0;
    double left_b = orders[a->bids[0].idx].amount_mwh, left_a = orders[a->asks[0].idx].amount_mwh;
    double q = 0, mb = NAN, ma = NAN;
    while (ib < nb && ia < na && a->bids[ib].limit_per_mwh >= a->asks[ia].limit_per_mwh) {
        double x = left_b < left_a ? left_b : left_a;
        q += x;
        mb = a->bids[ib].limit_per_mwh;
        ma = a->asks[ia].limit_per_mwh;
        left_b -= x;
        left_a -= x;
        if (left_b <= 0 && ++ib < nb)
            left_b = orders[a->bids[ib].idx].amount_mwh;
        if (left_a <= 0 && ++ia < na)
            left_a = orders[a->asks[ia].idx].amount_mwh;
    }
    if (q <= 0)
        return BZ_OK;
    res->volume_mwh = q;
    /* the middle of the clearing interval: at any price in it no trader
     * wants to change its fill. It is bounded by the marginal pair and by the
     * best orders left out (a rationed marginal order counts as left out,
     * which pins the price to its limit). */
    double next_bid = ib < nb ? a->bids[ib].limit_per_mwh : -INFINITY;
    double next_ask = ia < na ? a->asks[ia].limit_per_mwh : INFINITY;
    double lo = ma > next_bid ? ma : next_bid, hi = mb < next_ask ? mb : next_ask;
    res->price_per_mwh = 0.5 * (lo + hi);
    allocate(a->bids, nb, orders, q, mb, filled);
    allocate(a->asks, na, orders, q, ma, filled);
    return BZ_OK;
}
