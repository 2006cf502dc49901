/* nego_protocol: the negotiation protocol's rules as pure functions (threshold
 * per rule, agreement from a round's votes, discounting, payoffs) and the
 * public history record the policies read. Never allocates, never does I/O. */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "games/negotiation_math.h"

static const char *const rule_names[] = {"two_thirds", "majority", "unanimity"};

int bz_nego_rule_parse(const char *name, enum bz_nego_rule *rule, struct bz_err *err)
{
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, rule_names[i]) == 0) {
            *rule = (enum bz_nego_rule)i;
            return BZ_OK;
        }
    return bz_err_set(
        err, BZ_EINVAL,
        "negotiation: threshold rule \"%s\" unknown (two_thirds, majority, unanimity)",
        name ? name : "(null)");
}

const char *bz_nego_rule_name(enum bz_nego_rule rule)
{
    return (unsigned)rule < 3 ? rule_names[rule] : "?";
}

int bz_nego_threshold(int n, enum bz_nego_rule rule)
{
    assert(n >= 1);
    switch (rule) {
    case BZ_NEGO_MAJORITY: return n / 2 + 1;
    case BZ_NEGO_UNANIMITY: return n;
    case BZ_NEGO_TWO_THIRDS:
    default: return (2 * n + 2) / 3;
    }
}

int bz_nego_agreement(int n, const unsigned char *accept, const unsigned char *proposed,
                      int threshold, int *max_accepts)
{
    int first = -1, best = 0;
    for (int p = 0; p < n; p++) {
        if (proposed && !proposed[p])
            continue;
        int c = 0;
        for (int v = 0; v < n; v++)
            c += v == p || accept[p * n + v];
        if (c > best)
            best = c;
        if (first < 0 && c >= threshold)
            first = p;
    }
    if (max_accepts)
        *max_accepts = best;
    return first;
}

double bz_nego_discount(double gamma, int round)
{
    assert(round >= 1);
    return pow(gamma, round - 1);
}

void bz_nego_payoffs(int n, const double *utility, int agreement_round, double gamma,
                     double *payoff)
{
    double d = agreement_round >= 1 ? bz_nego_discount(gamma, agreement_round) : 0.0;
    for (int i = 0; i < n; i++)
        payoff[i] = agreement_round >= 1 ? utility[i] * d : 0.0;
}

void bz_nego_history_init(struct bz_nego_history *h, int n, int max_rounds, double *offer_buf,
                          unsigned char *accept_buf)
{
    h->n = n;
    h->max_rounds = max_rounds;
    h->rounds = 0;
    h->offer = offer_buf;
    h->accept = accept_buf;
}

int bz_nego_history_push(struct bz_nego_history *h, const double *offer,
                         const unsigned char *accept)
{
    if (h->rounds >= h->max_rounds)
        return BZ_EINVAL;
    size_t nn = (size_t)h->n * (size_t)h->n, at = (size_t)h->rounds * nn;
    memcpy(h->offer + at, offer, nn * sizeof *offer);
    memcpy(h->accept + at, accept, nn);
    h->rounds++;
    return BZ_OK;
}
