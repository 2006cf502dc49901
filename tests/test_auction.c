/* test_auction: uniform-price double auction clearing on hand-made books. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h> /* after the headers it needs */

#include "bazaar/auction.h"
#include "bazaar/rng.h"

#define B BZ_AUCTION_BUY
#define S BZ_AUCTION_SELL
#define N0 BZ_AUCTION_NONE
#define MAXO 8

struct book_case {
    const char *name;
    int n;
    struct bz_auction_order orders[MAXO];
    double price; /* NaN: no trade */
    double volume;
    double filled[MAXO];
};

static const struct book_case cases[] = {
    {"empty book", 0, {{0}}, NAN, 0, {0}},
    {"all buy", 2, {{B, 5, 50}, {B, 3, 60}}, NAN, 0, {0, 0}},
    {"all sell", 2, {{S, 5, 50}, {S, 3, 60}}, NAN, 0, {0, 0}},
    {"no cross", 2, {{B, 5, 40}, {S, 5, 50}}, NAN, 0, {0, 0}},
    {"single pair crosses at midpoint", 2, {{B, 5, 60}, {S, 5, 40}}, 50, 5, {5, 5}},
    {"single pair equal limits", 2, {{B, 4, 50}, {S, 6, 50}}, 50, 4, {4, 4}},
    {"short side fully filled: bids left over lift the price to them",
     2,
     {{B, 10, 60}, {S, 4, 40}},
     60,
     4,
     {4, 4}},
    {"marginal pair sets the price",
     4,
     {{B, 5, 100}, {B, 5, 60}, {S, 5, 20}, {S, 5, 80}},
     70, /* (100, 20) trades; the clearing interval is [bid left out 60, ask left out 80] */
     5,
     {5, 0, 5, 0}},
    {"two pairs cross, marginal is the second",
     4,
     {{B, 5, 100}, {B, 5, 70}, {S, 5, 20}, {S, 5, 50}},
     60,
     10,
     {5, 5, 5, 5}},
    {"partial fill at the margin: the rationed ask sets the price",
     3,
     {{B, 8, 90}, {S, 5, 30}, {S, 5, 60}},
     60,
     8,
     {8, 5, 3}},
    {"ties at the marginal bid share pro rata",
     3,
     {{B, 6, 70}, {B, 2, 70}, {S, 4, 30}},
     70,
     4,
     {3, 1, 4}},
    {"ties at the marginal ask share pro rata",
     3,
     {{B, 3, 80}, {S, 3, 40}, {S, 3, 40}},
     40,
     3,
     {3, 1.5, 1.5}},
    {"inactive orders are ignored",
     5,
     {{N0, 9, 1000}, {B, 0, 1000}, {S, -1, 0}, {B, 2, 55}, {S, 2, 45}},
     50,
     2,
     {0, 0, 0, 2, 2}},
    {"non-finite limit is inactive", 2, {{B, 2, NAN}, {S, 2, 10}}, NAN, 0, {0, 0}},
};

static void auction_should_clear_hand_made_books(void **state)
{
    (void)state;
    struct bz_auction a;
    struct bz_err err = {0};
    assert_int_equal(bz_auction_init(&a, MAXO, &err), BZ_OK);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const struct book_case *k = &cases[c];
        double filled[MAXO];
        struct bz_auction_result res;
        print_message("case: %s\n", k->name);
        assert_int_equal(bz_auction_clear(&a, k->orders, (size_t)k->n, filled, &res, &err), BZ_OK);
        if (isnan(k->price))
            assert_true(isnan(res.price_per_mwh));
        else
            assert_float_equal(res.price_per_mwh, k->price, 1e-12);
        assert_float_equal(res.volume_mwh, k->volume, 1e-12);
        for (int i = 0; i < k->n; i++)
            assert_float_equal(filled[i], k->filled[i], 1e-12);
    }
    bz_auction_cleanup(&a);
}

static void auction_should_refuse_more_orders_than_capacity(void **state)
{
    (void)state;
    struct bz_auction a;
    struct bz_err err = {0};
    assert_int_equal(bz_auction_init(&a, 1, &err), BZ_OK);
    struct bz_auction_order o[2] = {{B, 1, 1}, {S, 1, 1}};
    double f[2];
    struct bz_auction_result res;
    assert_int_equal(bz_auction_clear(&a, o, 2, f, &res, &err), BZ_EINVAL);
    assert_non_null(strstr(err.msg, "exceed"));
    bz_auction_cleanup(&a);
    bz_auction_cleanup(NULL);
}

/* Properties on random books: volumes balance, nobody trades beyond its amount
 * or against its limit, and no untraded pair could still trade. */
static void auction_should_respect_limits_on_random_books(void **state)
{
    (void)state;
    enum { N = 500 };
    static struct bz_auction_order o[N];
    static double f[N];
    struct bz_auction a;
    struct bz_err err = {0};
    assert_int_equal(bz_auction_init(&a, N, &err), BZ_OK);
    struct bz_rng r;
    bz_rng_init(&r, 42, 1);
    for (int rep = 0; rep < 200; rep++) {
        int n = 1 + (int)bz_rng_below(&r, N);
        for (int i = 0; i < n; i++) {
            o[i].side = (int)bz_rng_below(&r, 3);
            o[i].amount_mwh = bz_rng_uniform(&r) * 10;
            /* coarse prices make ties common */
            o[i].limit_per_mwh = (double)bz_rng_below(&r, 20) * 5;
        }
        struct bz_auction_result res;
        assert_int_equal(bz_auction_clear(&a, o, (size_t)n, f, &res, &err), BZ_OK);
        double qb = 0, qs = 0, best_unfilled_bid = -1, best_unfilled_ask = 1e300;
        for (int i = 0; i < n; i++) {
            assert_true(f[i] >= 0);
            if (o[i].side == N0 || o[i].amount_mwh <= 0) {
                assert_true(f[i] == 0);
                continue;
            }
            assert_true(f[i] <= o[i].amount_mwh * (1 + 1e-12));
            if (o[i].side == B) {
                qb += f[i];
                if (f[i] > 0)
                    assert_true(o[i].limit_per_mwh >= res.price_per_mwh);
                if (f[i] < o[i].amount_mwh - 1e-9 && o[i].limit_per_mwh > best_unfilled_bid)
                    best_unfilled_bid = o[i].limit_per_mwh;
            } else {
                qs += f[i];
                if (f[i] > 0)
                    assert_true(o[i].limit_per_mwh <= res.price_per_mwh);
                if (f[i] < o[i].amount_mwh - 1e-9 && o[i].limit_per_mwh < best_unfilled_ask)
                    best_unfilled_ask = o[i].limit_per_mwh;
            }
        }
        assert_float_equal(qb, res.volume_mwh, 1e-9 * (1 + qb));
        assert_float_equal(qs, res.volume_mwh, 1e-9 * (1 + qs));
        /* a remaining bid above a remaining ask would be a missed trade */
        assert_true(best_unfilled_bid < best_unfilled_ask);
    }
    bz_auction_cleanup(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(auction_should_clear_hand_made_books),
        cmocka_unit_test(auction_should_refuse_more_orders_than_capacity),
        cmocka_unit_test(auction_should_respect_limits_on_random_books),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
