#!/usr/bin/env python3
"""Heatmap of a sweep: mean profit share of the higher-skill agents by skill
gap (columns) x a game parameter (rows, default scarcity).

usage: heatmap.py RESULTS.h5 [-o OUT.png] [--rows scarcity] [--where communication=1]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import results  # noqa: E402


def heatmap_grid(path, rows="scarcity", where=None):
    """Return (gaps, row_values, mean, count) arrays for the heatmap.

    mean[i, j] is the mean high-skill profit share over games with row value
    row_values[i] and skill gap gaps[j]; count[i, j] the number of games.
    `where` is a dict of /games column -> value that games must match.
    """
    games = results.games(path)  # /games with /<game>/config joined on
    if rows not in games.dtype.names:
        raise SystemExit(f"{path}: /games (with its config) has no column '{rows}'")
    ok = games["status"] == "ok"
    for col, val in (where or {}).items():
        if col not in games.dtype.names:
            raise SystemExit(f"{path}: /games has no column '{col}'")
        ok &= games[col].astype(float) == float(val)
    games = games[ok]
    share = results.per_game_skill_share(path)
    by_id = {int(g): i for i, g in enumerate(share["game_id"])}
    idx = np.array([by_id[int(g)] for g in games["game_id"] if int(g) in by_id], dtype=int)
    gap = np.round(share["skill_gap"][idx], 6)
    val = share["high_share"][idx]
    row = np.round(games[rows].astype(float), 6)
    gaps = np.unique(gap)
    rvals = np.unique(row)
    mean = np.full((len(rvals), len(gaps)), np.nan)
    count = np.zeros((len(rvals), len(gaps)), dtype=int)
    for i, r in enumerate(rvals):
        for j, g in enumerate(gaps):
            sel = (row == r) & (gap == g) & ~np.isnan(val)
            count[i, j] = sel.sum()
            if count[i, j]:
                mean[i, j] = val[sel].mean()
    return gaps, rvals, mean, count


def draw(path, out, rows="scarcity", where=None):
    """Draw the heatmap of `path` into the PNG `out`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gaps, rvals, mean, count = heatmap_grid(path, rows, where)
    fig, ax = plt.subplots(figsize=(1.2 * len(gaps) + 3, 0.7 * len(rvals) + 2))
    im = ax.imshow(mean, origin="lower", cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(gaps)), [f"{g:g}" for g in gaps])
    ax.set_yticks(range(len(rvals)), [f"{r:g}" for r in rvals])
    ax.set_xlabel("skill gap (capability high - low)")
    ax.set_ylabel(rows)
    for i in range(len(rvals)):
        for j in range(len(gaps)):
            if count[i, j]:
                ax.text(j, i, f"{mean[i, j]:.2f}\nn={count[i, j]}", ha="center", va="center",
                        color="w", fontsize=8)
    fig.colorbar(im, ax=ax, label="profit share of higher-skill agents")
    title = os.path.basename(path)
    if where:
        title += " (" + ", ".join(f"{k}={v}" for k, v in where.items()) + ")"
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return mean, count


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="results file written by bazaar run")
    ap.add_argument("-o", "--output", help="PNG to write (default: RESULTS_heatmap.png)")
    ap.add_argument("--rows", default="scarcity", help="/games column for the rows")
    ap.add_argument("--where", action="append", default=[],
                    help="only games with COLUMN=VALUE (repeatable), e.g. communication=1")
    a = ap.parse_args(argv)
    if not os.path.exists(a.results):
        raise SystemExit(f"heatmap.py: {a.results}: no such results file "
                         "(bazaar run SPEC -o FILE writes one)")
    where = {}
    for w in a.where:
        k, _, v = w.partition("=")
        where[k] = v
    out = a.output or os.path.splitext(a.results)[0] + "_heatmap.png"
    mean, count = draw(a.results, out, a.rows, where)
    print(f"heatmap of {int(count.sum())} games written to {out}")


if __name__ == "__main__":
    main()
