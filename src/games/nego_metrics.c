/* nego_metrics: outcome metrics shared by both negotiation games (Gini,
 * utility share, exploitation index). Pure functions; never allocate. */
#include <math.h>

#include "games/negotiation_math.h"

double bz_nego_gini(int n, const double *u)
{
    double sum = 0, diff = 0;
    for (int i = 0; i < n; i++) {
        sum += u[i];
        for (int j = 0; j < n; j++)
            diff += fabs(u[i] - u[j]);
    }
    if (n <= 0 || sum <= 0)
        return 0.0;
    /* sum_ij |u_i - u_j| / (2 n^2 mean) with mean = sum / n */
    return diff / (2.0 * n * sum);
}

void bz_nego_utility_share(int n, const double *payoff, double *share)
{
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += payoff[i];
    for (int i = 0; i < n; i++)
        share[i] = sum != 0 ? payoff[i] / sum : NAN;
}

void bz_nego_exploitation(int n, const double *u, const double *u_nbs, double *dist)
{
    for (int i = 0; i < n; i++)
        dist[i] = u[i] - u_nbs[i];
}
