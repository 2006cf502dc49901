#!/usr/bin/env python3
"""Heatmap with uncertainty: capability (columns) x a game's competition knob
(rows) -> an outcome, one cell = an estimate and its 95% cluster-bootstrap CI.

usage: heatmap.py RESULTS.h5 [-o OUT.png] [--game G] [--outcome high_share]
                  [--rows COLUMN] [--cols capability_gap] [--stat mean|paired]
                  [--where communication=1] [--vmin A --vmax B] [--hatch 0.25]

--stat mean (default): the cell's mean outcome; --stat paired: the paired
effect of the cell's column against the first column (same environment,
see effects.py), which removes the market noise columns share. The colour
scale is fixed before looking at the cells (printed on the colour bar): an
outcome bounded in [0, 1] uses [0, 1] (paired: [-0.5, 0.5]); others the 2-98%
range of the per-game values (paired: +- half of it); --vmin/--vmax override.
A cell whose CI is wider than --hatch times the colour range is hatched.
Writes OUT.png and OUT.svg.

Owns: the cell grid and its drawing. Never reads HDF5 itself.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bazaar_results as br  # noqa: E402
import effects  # noqa: E402

N_BOOT = 1000


def _cell_mean_ci(y, cl, n_boot, seed):
    """Mean of y and its CI (effects.boot_ci) resampling clusters cl."""
    cid = np.unique(cl, return_inverse=True)[1]
    nc = cid.max() + 1
    s = np.bincount(cid, weights=y, minlength=nc)
    n = np.bincount(cid, minlength=nc).astype(float)
    W = effects._boot_weights(nc, n_boot, seed)
    lo, hi = effects.boot_ci((W @ s) / (W @ n), y.mean(), nc)
    return float(y.mean()), lo, hi, int(nc)


def grid(r, game=None, outcome="high_share", rows=None, cols="capability_gap", where=None,
         stat="mean", n_boot=N_BOOT):
    """The cells of one heatmap: a dict with xs, ys (level values), est, lo,
    hi, n (games, or pairs for paired), nc (clusters), rows, cols, outcome."""
    where = dict(where or {})
    games = r.game_names()
    game = game or games[0]
    where["game"] = game
    rows = rows or r.competition_axis(game)
    g = effects.select(r, where)
    y = r.outcome(outcome).loc[g.index].to_numpy(dtype=float)
    xcol = g[cols] if cols in g.columns else r.derived().loc[g.index, cols]
    xv = np.round(xcol.to_numpy(dtype=float), 9)
    if cols in ("capability_gap", "capability_mean") and len(xv) and not np.isfinite(xv).any():
        kinds = r.agents[r.agents["game_id"].isin(g["game_id"])]["kind"].unique()
        if len(kinds) > 1:
            # one capability scale per lineup kind: heuristic skill (0..1) and
            # model capability (registry score) are never subtracted
            raise ValueError(
                f"{cols}: every selected game's lineup mixes heuristic and LLM agents, whose "
                "capabilities are on different scales (skill 0..1, registry score); the "
                "capability axis is defined for lineups of one kind only: select those "
                "(--where lineup=...) or use another --cols")
    rv = np.round(g[rows].to_numpy(dtype=float), 9) if rows else np.zeros(len(g))
    ok = np.isfinite(y) & np.isfinite(xv)
    xs, ys = np.unique(xv[ok]), np.unique(rv[ok])
    shape = (len(ys), len(xs))
    est, lo, hi = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    n, nc = np.zeros(shape, int), np.zeros(shape, int)
    cl = g["env_seed"].to_numpy() if "env_seed" in g.columns else g["game_id"].to_numpy()
    for i, rvv in enumerate(ys):
        for j, xvv in enumerate(xs):
            if stat == "paired":
                if j == 0:
                    continue
                w = {**where, **({rows: rvv} if rows else {})}
                e = effects.effect(r, f"{cols}={float(xs[0])!r},{float(xvv)!r}", outcome, w, n_boot=n_boot,
                                   seed=i * 1000 + j)
                est[i, j], lo[i, j], hi[i, j] = e["estimate"], e["ci_low"], e["ci_high"]
                n[i, j], nc[i, j] = e["n_pairs"] or e["n_games"], e["n_clusters"]
            else:
                sel = ok & (rv == rvv) & (xv == xvv)
                if sel.any():
                    est[i, j], lo[i, j], hi[i, j], nc[i, j] = _cell_mean_ci(
                        y[sel], cl[sel], n_boot, i * 1000 + j)
                    n[i, j] = int(sel.sum())
    return {"xs": xs, "ys": ys, "est": est, "lo": lo, "hi": hi, "n": n, "nc": nc, "rows": rows,
            "cols": cols, "outcome": outcome, "stat": stat, "game": game, "where": where,
            "values": y[ok]}


def colour_range(cells, vmin=None, vmax=None):
    """The fixed colour range and the sentence that states it."""
    v = cells["values"]
    bounded = len(v) and np.nanmin(v) >= -1e-9 and np.nanmax(v) <= 1 + 1e-9
    paired = cells["stat"] == "paired"
    if vmin is not None and vmax is not None:
        return vmin, vmax, f"fixed scale [{vmin:g}, {vmax:g}] (given)"
    if bounded:
        lo, hi = (-0.5, 0.5) if paired else (0.0, 1.0)
        why = "outcome bounded in [0, 1]"
    else:
        p2, p98 = np.nanpercentile(v, [2, 98]) if len(v) else (0.0, 1.0)
        if paired:
            h = (p98 - p2) / 2 or 1.0
            lo, hi = -h, h
            why = "+- half the 2-98% range of per-game values"
        else:
            lo, hi = (p2, p98) if p98 > p2 else (p2 - 1, p2 + 1)
            why = "2-98% range of per-game values"
    return lo, hi, f"fixed scale [{lo:.3g}, {hi:.3g}]: {why}"


def draw(cells, out, vmin=None, vmax=None, hatch=0.25, title=None):
    """Draw cells into out (PNG) and its .svg twin; returns the colour range."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs, ys, est, lo, hi = cells["xs"], cells["ys"], cells["est"], cells["lo"], cells["hi"]
    cmin, cmax, scale = colour_range(cells, vmin, vmax)
    paired = cells["stat"] == "paired"
    fig, ax = plt.subplots(figsize=(1.5 * len(xs) + 3.2, 0.8 * len(ys) + 2.4))
    cmap = plt.get_cmap("RdBu_r" if paired else "viridis").copy()
    cmap.set_bad("#dddddd")
    im = ax.imshow(np.ma.masked_invalid(est), origin="lower", cmap=cmap, vmin=cmin, vmax=cmax,
                   aspect="auto")
    ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs])
    ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys] if cells["rows"] else ["all"])
    ax.set_xlabel(cells["cols"].replace("_", " "))
    ax.set_ylabel(cells["rows"] or "(no competition knob)")
    wide = 0
    for i in range(len(ys)):
        for j in range(len(xs)):
            if not np.isfinite(est[i, j]):
                txt = "baseline" if paired and j == 0 else "no data"
                ax.text(j, i, txt, ha="center", va="center", fontsize=7, color="#555555")
                continue
            w = hi[i, j] - lo[i, j]
            if not np.isfinite(w) or w > hatch * (cmax - cmin):
                wide += 1
                ax.add_patch(matplotlib.patches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False,
                                                          hatch="///", edgecolor="#333333",
                                                          linewidth=0))
            frac = (est[i, j] - cmin) / (cmax - cmin)
            col = "black" if (0.3 < frac < 0.7 if paired else frac > 0.6) else "white"
            ax.text(j, i, f"{est[i, j]:.3g}\n[{lo[i, j]:.3g}, {hi[i, j]:.3g}]\n"
                    f"n={cells['n'][i, j]} env={cells['nc'][i, j]}", ha="center", va="center",
                    color=col, fontsize=7)
    what = (f"paired effect vs {cells['cols']}={xs[0]:g}" if paired else "mean")
    fig.colorbar(im, ax=ax, label=f"{cells['outcome']} ({what})\n{scale}")
    sub = ", ".join(f"{k}={v}" for k, v in cells["where"].items())
    ax.set_title((title or sub) + f"\n95% cluster-bootstrap CI; hatched: CI wider than "
                 f"{hatch:g} x colour range", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    fig.savefig(os.path.splitext(out)[0] + ".svg")
    plt.close(fig)
    return {"vmin": cmin, "vmax": cmax, "scale": scale, "hatched_cells": wide}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="results file written by bazaar run")
    ap.add_argument("-o", "--output", help="PNG to write (an .svg beside it; default "
                    "RESULTS_heatmap.png)")
    ap.add_argument("--game", help="game of the file (default: the first)")
    ap.add_argument("--outcome", default="high_share")
    ap.add_argument("--rows", help="column for the rows (default: the game's competition knob)")
    ap.add_argument("--cols", default="capability_gap")
    ap.add_argument("--stat", choices=("mean", "paired"), default="mean")
    ap.add_argument("--where", action="append", default=[],
                    help="only games with COLUMN=VALUE (repeatable), e.g. communication=1")
    ap.add_argument("--vmin", type=float)
    ap.add_argument("--vmax", type=float)
    ap.add_argument("--hatch", type=float, default=0.25)
    ap.add_argument("--boot", type=int, default=N_BOOT)
    a = ap.parse_args(argv)
    if not os.path.exists(a.results):
        raise SystemExit(f"heatmap.py: {a.results}: no such results file "
                         "(bazaar run SPEC -o FILE writes one)")
    r = br.load(a.results)
    try:
        cells = grid(r, a.game, a.outcome, a.rows, a.cols, effects.parse_where(a.where), a.stat,
                     a.boot)
    except KeyError as ex:
        raise SystemExit(str(ex.args[0]))
    out = a.output or os.path.splitext(a.results)[0] + "_heatmap.png"
    info = draw(cells, out, a.vmin, a.vmax, a.hatch, title=os.path.basename(a.results))
    total = int(cells["n"].sum()) if a.stat == "mean" else int(len(cells["values"]))
    print(f"heatmap of {total} games written to {out} (and .svg); {info['scale']}; "
          f"{info['hatched_cells']} cells hatched")


if __name__ == "__main__":
    main()
