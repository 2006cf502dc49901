#!/usr/bin/env python3
"""Scaling fits: an outcome against capability gap, one fit per competition level.

usage: fits.py RESULTS [-o PREFIX] [--game G] [--outcome high_share]
               [--x capability_gap] [--by COLUMN] [--where k=v ...]

Two models per level, fitted by least squares on the per-game values:
  linear    y = a + b x
  logistic  y = lo + (hi - lo) / (1 + exp(-(a + b x)))  with lo, hi fixed:
            [0, 1] for an outcome bounded there, else the range of the
            per-game values (so the curve saturates where the data do)
The model with the lower held-out error (mean squared error, 5-fold
cross-validation whose folds are whole environments) is chosen. Parameter
CIs: percentile bootstrap resampling whole environments (env_seed). The curve
is solid over the observed x range and dashed beyond it (extrapolation).
Writes PREFIX.png, PREFIX.svg, PREFIX.csv and PREFIX.json.

Owns: the fitting and its drawing. Never reads HDF5 itself.
"""
import argparse
import json
import os
import sys
import warnings

import numpy as np
from scipy.optimize import curve_fit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bazaar_results as br  # noqa: E402
import effects  # noqa: E402

N_BOOT = 200
FOLDS = 5


def _logistic(x, a, b, lo, hi):
    return lo + (hi - lo) / (1.0 + np.exp(-np.clip(a + b * x, -50, 50)))


def _fit(kind, x, y, bounds, p0=None):
    """Parameters (a, b) of a model fitted to x, y."""
    if kind == "linear":
        if np.ptp(x) == 0:
            return np.array([y.mean(), 0.0])
        b, a = np.polyfit(x, y, 1)
        return np.array([a, b])
    lo, hi = bounds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            p, _ = curve_fit(lambda x, a, b: _logistic(x, a, b, lo, hi), x, y,
                             p0=p0 if p0 is not None else [0.0, 1.0], maxfev=2000)
        except (RuntimeError, ValueError):
            return np.array([np.nan, np.nan])
    return p


def predict(kind, p, x, bounds):
    if kind == "linear":
        return p[0] + p[1] * x
    return _logistic(x, p[0], p[1], *bounds)


def outcome_bounds(y):
    """[0, 1] for an outcome inside it, else the per-game range."""
    if np.nanmin(y) >= -1e-9 and np.nanmax(y) <= 1 + 1e-9:
        return (0.0, 1.0)
    return (float(np.nanmin(y)), float(np.nanmax(y)))


def cv_error(kind, x, y, cl, bounds, folds=FOLDS, seed=0):
    """Held-out MSE with folds made of whole clusters."""
    u, cid = np.unique(cl, return_inverse=True)
    if len(u) < 2:
        return np.nan
    k = min(folds, len(u))
    fold_of = np.random.default_rng(seed).permutation(len(u)) % k
    f = fold_of[cid]
    err, n = 0.0, 0
    for i in range(k):
        tr, te = f != i, f == i
        p = _fit(kind, x[tr], y[tr], bounds)
        if not np.all(np.isfinite(p)):
            return np.nan
        err += float(((predict(kind, p, x[te], bounds) - y[te]) ** 2).sum())
        n += int(te.sum())
    return err / n


def fit_scaling(x, y, cl, n_boot=N_BOOT, seed=0, bounds=None, level=0.95):
    """Fit both models to (x, y) with clusters cl; choose by held-out error;
    bootstrap the chosen model's parameters. Returns a dict."""
    x, y, cl = np.asarray(x, float), np.asarray(y, float), np.asarray(cl)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y, cl = x[ok], y[ok], cl[ok]
    bounds = bounds or outcome_bounds(y)
    cv = {k: cv_error(k, x, y, cl, bounds, seed=seed) for k in ("linear", "logistic")}
    finite = {k: v for k, v in cv.items() if np.isfinite(v)}
    kind = min(finite, key=finite.get) if finite else "linear"
    p = _fit(kind, x, y, bounds)
    u, cid = np.unique(cl, return_inverse=True)
    rng = np.random.default_rng(seed + 1)
    members = [np.flatnonzero(cid == c) for c in range(len(u))]
    boots = []
    for _ in range(n_boot):
        idx = np.concatenate([members[c] for c in rng.integers(0, len(u), len(u))])
        boots.append(_fit(kind, x[idx], y[idx], bounds, p0=p if kind == "logistic" else None))
    boots = np.array(boots)
    a = (1 - level) / 2
    ci = [effects.boot_ci(boots[:, i], p[i], len(u), level) for i in range(2)]
    return {"model": kind, "a": float(p[0]), "b": float(p[1]), "a_ci": list(ci[0]),
            "b_ci": list(ci[1]), "cv_mse_linear": cv["linear"], "cv_mse_logistic": cv["logistic"],
            "bounds": list(bounds), "n_games": int(len(x)), "n_clusters": int(len(u)),
            "x_min": float(x.min()) if len(x) else np.nan, "x_max": float(x.max()) if len(x) else np.nan,
            "_boots": boots, "level": level, "ci_quantiles": [a, 1 - a],
            "method": f"least squares; {kind} chosen by {FOLDS}-fold held-out MSE over whole "
                      f"environments; {level:.0%} percentile CIs from {n_boot} cluster "
                      f"(env_seed) bootstrap resamples"}


def fit_levels(r, game=None, outcome="high_share", xcol="capability_gap", by=None, where=None,
               n_boot=N_BOOT):
    """One fit per level of `by` (default: the game's competition axis)."""
    where = dict(where or {})
    game = game or r.game_names()[0]
    where["game"] = game
    by = by or r.competition_axis(game)
    g = effects.select(r, where)
    y = r.outcome(outcome).loc[g.index].to_numpy(float)
    x = (g[xcol] if xcol in g.columns else r.derived().loc[g.index, xcol]).to_numpy(float)
    cl = g["env_seed"].to_numpy() if "env_seed" in g.columns else g["game_id"].to_numpy()
    lv = g[by].to_numpy() if by else np.zeros(len(g))
    bounds = outcome_bounds(y[np.isfinite(y)]) if np.isfinite(y).any() else (0.0, 1.0)
    fits = []
    for i, v in enumerate(sorted(set(lv[~_isnan(lv)]))):
        sel = lv == v
        f = fit_scaling(x[sel], y[sel], cl[sel], n_boot=n_boot, seed=i, bounds=bounds)
        f.update({"game": game, "by": by, "level": _num(v), "outcome": outcome, "x": xcol,
                  "where": {k: str(w) for k, w in where.items()}})
        f["_x"], f["_y"], f["_cl"] = x[sel], y[sel], cl[sel]
        fits.append(f)
    return fits


def _isnan(a):
    try:
        return np.isnan(a.astype(float))
    except (TypeError, ValueError):
        return np.zeros(len(a), bool)


def _num(v):
    v = v.item() if hasattr(v, "item") else v
    return v


def draw(fits, out, title=""):
    """Points (level means with CI), fitted curves (solid in range, dashed
    beyond), a CI band; PNG and SVG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(fits), 1)))
    xmax = max((f["x_max"] for f in fits), default=1.0)
    for f, c in zip(fits, colours):
        xs = np.unique(f["_x"])
        m = [f["_y"][f["_x"] == v].mean() for v in xs]
        ax.plot(xs, m, "o", color=c)
        xin = np.linspace(f["x_min"], f["x_max"], 50)
        xext = np.linspace(f["x_max"], f["x_max"] + 0.5 * max(xmax, 1e-9), 30)
        p = [f["a"], f["b"]]
        ax.plot(xin, predict(f["model"], p, xin, f["bounds"]), "-", color=c,
                label=f"{f['by'] or 'all'}={f['level']:g}: {f['model']} b={f['b']:.3g} "
                      f"[{f['b_ci'][0]:.3g}, {f['b_ci'][1]:.3g}]")
        ax.plot(xext, predict(f["model"], p, xext, f["bounds"]), "--", color=c)
        bt = f["_boots"][np.all(np.isfinite(f["_boots"]), axis=1)]
        if len(bt):
            xx = np.concatenate([xin, xext])
            band = np.array([predict(f["model"], q, xx, f["bounds"]) for q in bt])
            ax.fill_between(xx, np.quantile(band, 0.025, 0), np.quantile(band, 0.975, 0),
                            color=c, alpha=0.15, linewidth=0)
    if fits:
        ax.set_xlabel(fits[0]["x"].replace("_", " "))
        ax.set_ylabel(fits[0]["outcome"])
    ax.set_title((title + "\n" if title else "") + "fits per competition level; dashed: "
                 "extrapolation; band: 95% cluster-bootstrap", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    fig.savefig(os.path.splitext(out)[0] + ".svg")
    plt.close(fig)


def public(f):
    """A fit without its data arrays, JSON-ready."""
    return effects.clean({k: v for k, v in f.items() if not k.startswith("_")})


def write_params(fits, prefix):
    rows = [public(f) for f in fits]
    with open(prefix + ".json", "w") as fh:
        json.dump(rows, fh, indent=1, default=str)
    cols = ["game", "by", "level", "outcome", "x", "model", "a", "a_lo", "a_hi", "b", "b_lo",
            "b_hi", "cv_mse_linear", "cv_mse_logistic", "n_games", "n_clusters", "x_min", "x_max"]
    with open(prefix + ".csv", "w") as fh:
        fh.write(",".join(cols) + "\n")
        for f in rows:
            f = {**f, "a_lo": f["a_ci"][0], "a_hi": f["a_ci"][1], "b_lo": f["b_ci"][0],
                 "b_hi": f["b_ci"][1]}
            fh.write(",".join("" if f.get(c) is None else str(f.get(c)) for c in cols) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("-o", "--prefix", help="output prefix (default RESULTS_fits)")
    ap.add_argument("--game")
    ap.add_argument("--outcome", default="high_share")
    ap.add_argument("--x", default="capability_gap")
    ap.add_argument("--by", help="one fit per level of this column (default: competition knob)")
    ap.add_argument("--where", action="append", default=[])
    ap.add_argument("--boot", type=int, default=N_BOOT)
    a = ap.parse_args(argv)
    r = br.load(a.results)
    fits = fit_levels(r, a.game, a.outcome, a.x, a.by, effects.parse_where(a.where), a.boot)
    prefix = a.prefix or os.path.splitext(a.results)[0] + "_fits"
    draw(fits, prefix + ".png", os.path.basename(a.results))
    write_params(fits, prefix)
    for f in fits:
        print(f"{f['by']}={f['level']}: {f['model']} a={f['a']:.4g} b={f['b']:.4g} "
              f"[{f['b_ci'][0]:.4g}, {f['b_ci'][1]:.4g}] (cv mse lin {f['cv_mse_linear']:.4g}, "
              f"log {f['cv_mse_logistic']:.4g})")
    print(f"written {prefix}.png .svg .csv .json")


if __name__ == "__main__":
    main()
