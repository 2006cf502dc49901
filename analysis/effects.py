#!/usr/bin/env python3
"""Paired effects with a cluster-bootstrap confidence interval.

usage: effects.py RESULTS --contrast X[=A,B] --outcome Y [--where k=v ...] [--json]

The effect of switching design factor X from level A to level B on the
per-game outcome Y (mean of Y under B minus under A). Games are paired by
their environment: the same env_seed and the same value of every other design
factor (parameters the spec sets, lineup, communication); the estimate is the
mean of the pair differences. The confidence interval is a percentile
bootstrap that resamples environments (env_seed) as whole clusters, since
games of one environment share its market draws and are not independent.
When no game pairs (X changes the environment, e.g. volatility), the
estimate is the mean over strata (the other factors' cells) of the
difference of arm means, still resampling whole environments, and the method
says it is unpaired.

Owns: the contrast arithmetic and the power planner's scaling. Never reads
HDF5 itself (bazaar_results does) and never assumes a game.
"""
import argparse
import json
import math
import os
import sys
import warnings

import numpy as np
import pandas as pd
from scipy import stats

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bazaar_results as br  # noqa: E402

N_BOOT = 2000
LEVEL = 0.95


def _same(col, value):
    """Rows of col equal to value given as text (numbers compared as numbers)."""
    if col.dtype.kind in "biuf":
        v = {"true": 1.0, "false": 0.0}.get(str(value).lower(), value)
        return np.isclose(col.astype(float), float(v), rtol=0, atol=1e-9)
    return col.astype(str) == str(value)


def select(r, where=None):
    """The finished games matching every k=v of where (a dict)."""
    g = r.ok()
    d = r.derived().loc[g.index]
    g = g.join(d[[c for c in d.columns if c not in g.columns]])
    for k, v in (where or {}).items():
        if k not in g.columns:
            raise SystemExit(f"{r.path}: games have no column '{k}' (columns: {list(g.columns)})")
        g = g[_same(g[k], v)]
    return g


def parse_contrast(r, contrast, games):
    """(factor, level_a, level_b) from "X" (X must have exactly two levels)
    or "X=A,B"; levels returned as values of the column."""
    factor, _, levels = contrast.partition("=")
    if factor not in games.columns:
        raise SystemExit(f"{r.path}: no factor '{factor}'; varying factors: {r.varying()}")
    have = sorted(games[factor].dropna().unique(), key=lambda v: (str(type(v)), v))
    if not levels:
        if len(have) != 2:
            raise SystemExit(f"contrast '{factor}' has levels {have}: name two, e.g. "
                             f"--contrast {factor}={have[0]},{have[-1]}")
        return factor, have[0], have[1]
    parts = levels.split(",")
    if len(parts) != 2:
        raise SystemExit(f"--contrast {contrast}: give exactly two levels, A,B")
    out = []
    for p in parts:
        hit = [v for v in have if np.asarray(_same(pd.Series([v]), p))[0]]
        if not hit:
            raise SystemExit(f"contrast '{factor}' has no level '{p}' (levels: {have})")
        out.append(hit[0])
    return factor, out[0], out[1]


def _boot_weights(n_clusters, n_boot, seed):
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_boot).astype(float)


def _percentile(x, level):
    x = x[np.isfinite(x)]
    if not len(x):
        return np.nan, np.nan
    a = (1 - level) / 2
    return float(np.quantile(x, a)), float(np.quantile(x, 1 - a))


def small_sample_factor(n_clusters, level=LEVEL):
    """How much to widen a bootstrap percentile interval from n clusters: the
    bootstrap's SD is sqrt((n-1)/n) of the usual standard error and a mean of
    n clusters needs Student's t (n-1 df), not the normal quantile. Without
    it, 10 environments cover 88.5% at a nominal 95% (measured: see README)."""
    if n_clusters < 2:
        return np.nan
    q = 1 - (1 - level) / 2
    return float(stats.t.ppf(q, n_clusters - 1) / stats.norm.ppf(q) *
                 math.sqrt(n_clusters / (n_clusters - 1)))


def boot_ci(boots, estimate, n_clusters, level=LEVEL):
    """Percentile interval of the bootstrap values, widened about the estimate
    by small_sample_factor(n_clusters)."""
    lo, hi = _percentile(np.asarray(boots, float), level)
    f = small_sample_factor(n_clusters, level)
    if not np.isfinite(f):
        return np.nan, np.nan
    return float(estimate - f * (estimate - lo)), float(estimate + f * (hi - estimate))


def _frame(r, contrast, outcome, where):
    g = select(r, where)
    factor, a, b = parse_contrast(r, contrast, g)
    y = r.outcome(outcome).reindex(g.index) if not isinstance(outcome, pd.Series) else outcome
    g = g.assign(_y=y.loc[g.index].astype(float))
    g = g[_same(g[factor], a) | _same(g[factor], b)]
    g = g.assign(_arm=np.where(_same(g[factor], b), 1, 0))
    g = g[np.isfinite(g["_y"])]
    # a contrast on a property of the lineup (capability_gap) compares lineups:
    # lineup itself is then not part of the environment
    drop = {factor} | ({"lineup"} if factor in br.DERIVED else set())
    others = [f for f in r.factors if f not in drop and f in g.columns and g[f].nunique(dropna=False) > 1]
    cluster = "env_seed" if "env_seed" in g.columns else None
    return g, factor, a, b, others, cluster


def effect(r, contrast, outcome, where=None, n_boot=N_BOOT, level=LEVEL, seed=0):
    """The effect of a contrast on an outcome: a dict with estimate, ci_low,
    ci_high, n_pairs, method, and n_clusters, n_games, mean_a, mean_b,
    factor, level_a, level_b, se (bootstrap SD)."""
    g, factor, a, b, others, cluster = _frame(r, contrast, outcome, where)
    cl = g[cluster] if cluster else g["game_id"]
    key = ([cluster] if cluster else []) + others
    res = {"factor": factor, "level_a": _py(a), "level_b": _py(b), "outcome": str(outcome),
           "n_games": int(len(g)), "mean_a": _mean(g, 0), "mean_b": _mean(g, 1)}
    if not len(g) or g["_arm"].nunique() < 2:
        return {**res, "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n_pairs": 0,
                "n_clusters": 0, "se": np.nan, "paired": False,
                "method": f"no game with a finite {outcome} in one of the two arms"}
    keyed = g.assign(_cl=cl.values)
    cell = keyed.groupby(key + ["_arm"], dropna=False)["_y"].mean().unstack("_arm")
    pairs = cell.dropna() if cluster else cell.iloc[0:0]
    btxt = (f"{level:.0%} CI: percentile interval of {n_boot} bootstrap resamples of whole "
            f"environments, widened by t(n-1)/z * sqrt(n/(n-1)) for n environments")
    if len(pairs):
        d = (pairs[1] - pairs[0]).to_numpy()
        cid = pd.factorize(pairs.index.get_level_values(cluster) if others else pairs.index)[0]
        nc = cid.max() + 1
        s = np.bincount(cid, weights=d, minlength=nc)
        n = np.bincount(cid, minlength=nc).astype(float)
        W = _boot_weights(nc, n_boot, seed)
        boots = (W @ s) / (W @ n)
        lo, hi = boot_ci(boots, d.mean(), nc, level)
        method = (f"paired by environment (same env_seed and {', '.join(others) or 'no other factor'}); "
                  f"mean of {len(d)} pair differences; {btxt} (env_seed, {nc} clusters)")
        return {**res, "estimate": float(d.mean()), "ci_low": lo, "ci_high": hi,
                "n_pairs": int(len(d)), "n_clusters": int(nc), "se": float(np.nanstd(boots)),
                "paired": True, "method": method}
    # unpaired: strata = the other factors' cells, clusters resampled whole
    strata = pd.factorize(pd.MultiIndex.from_frame(keyed[others]) if others else
                          pd.Series(0, index=keyed.index))[0]
    cid, _ = pd.factorize(keyed["_cl"])
    nc, ns = cid.max() + 1, strata.max() + 1
    W = _boot_weights(nc, n_boot, seed)
    means = []
    for arm in (0, 1):
        m = keyed["_arm"].to_numpy() == arm
        idx = cid[m] * ns + strata[m]
        S = np.bincount(idx, weights=keyed["_y"].to_numpy()[m], minlength=nc * ns).reshape(nc, ns)
        N = np.bincount(idx, minlength=nc * ns).reshape(nc, ns).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append(((S.sum(0) / N.sum(0)), (W @ S) / (W @ N)))
    both = np.isfinite(means[0][0]) & np.isfinite(means[1][0])
    est = float(np.mean(means[1][0][both] - means[0][0][both])) if both.any() else np.nan
    with warnings.catch_warnings():  # a resample may miss one arm of a stratum
        warnings.simplefilter("ignore", RuntimeWarning)
        boots = np.nanmean((means[1][1] - means[0][1])[:, both], axis=1) if both.any() else np.array([])
    lo, hi = boot_ci(boots, est, nc, level) if np.isfinite(est) else (np.nan, np.nan)
    method = (f"UNPAIRED (no two games share an environment across the arms: {factor} changes it): "
              f"mean over {int(both.sum())} strata ({', '.join(others) or 'none'}) of the "
              f"difference of arm means; {btxt} (env_seed, {nc} clusters)")
    return {**res, "estimate": est, "ci_low": lo, "ci_high": hi, "n_pairs": 0,
            "n_clusters": int(nc), "se": float(np.nanstd(boots)) if len(boots) else np.nan,
            "paired": False, "method": method}


def _mean(g, arm):
    v = g.loc[g["_arm"] == arm, "_y"]
    return float(v.mean()) if len(v) else np.nan


def _py(v):
    return v.item() if hasattr(v, "item") else v


def plan(r, contrast, outcome, width, where=None, n_boot=N_BOOT, level=LEVEL):
    """Power planner: the repetitions per cell needed for a CI of total width
    `width` on this contrast, from a pilot file. The pilot's bootstrap CI width
    w at R repetitions scales as 1/sqrt(R) (environments are independent
    across repetitions), so R_needed = ceil(R * (w / width)^2)."""
    e = effect(r, contrast, outcome, where, n_boot=n_boot, level=level)
    reps = int(r.games["repetition"].nunique()) if "repetition" in r.games.columns else None
    w = e["ci_high"] - e["ci_low"]
    need = int(math.ceil(reps * (w / width) ** 2)) if reps and np.isfinite(w) and w > 0 else None
    return {**e, "pilot_repetitions": reps, "pilot_ci_width": w, "target_ci_width": width,
            "repetitions_needed": need,
            "planner": "R_needed = ceil(R_pilot * (pilot CI width / target width)^2): the "
                       "cluster-bootstrap width shrinks as 1/sqrt(number of environments)"}


def parse_where(items):
    out = {}
    for w in items or []:
        k, sep, v = w.partition("=")
        if not sep:
            raise SystemExit(f"--where {w}: expected COLUMN=VALUE")
        out[k] = v
    return out


def clean(d):
    """A dict with NaN as None and numpy scalars as Python numbers (for JSON)."""
    out = {}
    for k, v in d.items():
        v = _py(v)
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        out[k] = v
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--contrast", required=True, help="X or X=A,B (e.g. communication, lineup=A,B)")
    ap.add_argument("--outcome", required=True, help="a /games column, a derived outcome "
                    "(high_share, ...) or TABLE.COLUMN[:agg]")
    ap.add_argument("--where", action="append", default=[], help="only games with K=V (repeatable)")
    ap.add_argument("--boot", type=int, default=N_BOOT)
    ap.add_argument("--level", type=float, default=LEVEL)
    ap.add_argument("--json", action="store_true", help="print estimate, ci_low, ci_high, n_pairs, method")
    a = ap.parse_args(argv)
    if not os.path.exists(a.results):
        raise SystemExit(f"effects.py: {a.results}: no such results file")
    r = br.load(a.results)
    try:
        e = effect(r, a.contrast, a.outcome, parse_where(a.where), n_boot=a.boot, level=a.level)
    except KeyError as ex:
        raise SystemExit(str(ex.args[0]))
    if a.json:
        print(json.dumps(clean({k: e[k] for k in ("estimate", "ci_low", "ci_high", "n_pairs",
                                                 "method")})))
        return
    print(f"{a.outcome}: {e['factor']} {e['level_a']} -> {e['level_b']}: "
          f"{e['estimate']:+.6g}  [{e['ci_low']:+.6g}, {e['ci_high']:+.6g}]  "
          f"n_pairs={e['n_pairs']} n_clusters={e['n_clusters']} n_games={e['n_games']}")
    print(f"method: {e['method']}")


if __name__ == "__main__":
    main()
