#!/usr/bin/env python3
"""Ratings from play: Bradley-Terry strengths of each agent label (policy with
its skill, or model) from pairwise payoff comparisons within games.

usage: ratings.py RESULTS [-o OUT.png] [--game G] [--where k=v ...] [--json]

In every game each pair of agents with different labels is one comparison:
the one with the higher payoff (gain when the file has it) wins, equal
payoffs count half to each. Strengths are the Bradley-Terry maximum-likelihood
fit (Hunter's 2004 MM algorithm) with 0.25 of a pseudo-win each way per pair
of labels that ever met (keeps an unbeaten label finite), shown on the Elo
scale (400 log10 strength, mean 0 within each group of labels that met).
CIs: percentile bootstrap resampling whole environments (env_seed). Beside
each rating: the registry capability /agents records for the label.

Owns: the comparisons and the fit. Never reads HDF5 itself.
"""
import argparse
import json
import os
import sys

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bazaar_results as br  # noqa: E402
import effects  # noqa: E402

N_BOOT = 300
PSEUDO = 0.25


def comparisons(r, where=None):
    """(labels, cluster ids, wins[C, L, L]): wins[c, i, j] = comparisons label
    i won against label j in the games of environment c."""
    g = effects.select(r, where)
    a = r.agents[r.agents["game_id"].isin(g["game_id"])]
    x = "gain" if "gain" in a.columns else "payoff"
    a = a[["game_id", "agent", "label", x]].rename(columns={x: "x"})
    labels = sorted(a["label"].unique())
    lid = {l: i for i, l in enumerate(labels)}
    a = a.assign(li=a["label"].map(lid))
    m = a.merge(a, on="game_id", suffixes=("_i", "_j"))
    m = m[m["li_i"] != m["li_j"]]
    win = np.where(m["x_i"] > m["x_j"], 1.0, np.where(m["x_i"] == m["x_j"], 0.5, 0.0))
    env = g.set_index("game_id")["env_seed"] if "env_seed" in g.columns else \
        g.set_index("game_id")["game_id"]
    cid, cu = pd.factorize(m["game_id"].map(env))
    L, C = len(labels), len(cu)
    flat = (cid * L + m["li_i"].to_numpy()) * L + m["li_j"].to_numpy()
    wins = np.bincount(flat, weights=win, minlength=C * L * L).reshape(C, L, L)
    return labels, C, wins


def bt_fit(wins, iters=500, tol=1e-10):
    """Bradley-Terry log-strengths for win matrices wins[..., L, L] (batched)."""
    w = np.asarray(wins, float)
    n = w + np.swapaxes(w, -1, -2)
    met = n > 0
    w = w + PSEUDO * met
    n = n + 2 * PSEUDO * met
    p = np.ones(w.shape[:-1])
    total = w.sum(-1)
    for _ in range(iters):
        denom = (n / (p[..., :, None] + p[..., None, :])).sum(-1)
        new = np.where(denom > 0, total / np.where(denom > 0, denom, 1), p)
        new = np.where(new > 0, new, 1e-12)
        new = new / np.exp(np.log(new).mean(-1, keepdims=True))
        done = np.max(np.abs(np.log(new) - np.log(p))) < tol
        p = new
        if done:
            break
    return np.log(p)


def _components(n):
    """Connected groups of labels (n: comparisons matrix)."""
    L = n.shape[0]
    comp = -np.ones(L, int)
    k = 0
    for s in range(L):
        if comp[s] >= 0:
            continue
        stack = [s]
        comp[s] = k
        while stack:
            i = stack.pop()
            for j in np.flatnonzero(n[i] > 0):
                if comp[j] < 0:
                    comp[j] = k
                    stack.append(j)
        k += 1
    return comp


def ratings(r, where=None, n_boot=N_BOOT, seed=0, level=0.95):
    """A DataFrame: label, rating, ci_low, ci_high (Elo scale), group,
    capability, kind, n_comparisons; plus a method string."""
    labels, C, wins = comparisons(r, where)
    if not labels:
        return pd.DataFrame(), "no agents"
    total = wins.sum(0)
    n = total + total.T
    comp = _components(n)

    def centre(lp):
        out = lp.copy()
        for k in np.unique(comp):
            sel = comp == k
            out[..., sel] -= out[..., sel].mean(-1, keepdims=True)
        return out * 400 / np.log(10)

    est = centre(bt_fit(total))
    W = effects._boot_weights(C, n_boot, seed)
    bw = np.einsum("bc,cij->bij", W, wins)
    boots = centre(bt_fit(bw))
    ci = np.array([effects.boot_ci(boots[:, i], est[i], C, level) for i in range(len(labels))])
    ag = r.agents.groupby("label")
    cap = ag["capability"].mean() if "capability" in r.agents else pd.Series(dtype=float)
    kind = ag["kind"].first() if "kind" in r.agents else pd.Series(dtype=object)
    df = pd.DataFrame({"label": labels, "rating": est, "ci_low": ci[:, 0], "ci_high": ci[:, 1],
                       "group": comp, "n_comparisons": n.sum(1) / 1.0,
                       "capability": [cap.get(l, np.nan) for l in labels],
                       "kind": [kind.get(l, "") for l in labels]})
    method = (f"Bradley-Terry (MM) on {int(n.sum() / 2)} pairwise payoff comparisons within games "
              f"(different labels only), {PSEUDO} pseudo-win each way per pair that met; Elo scale; "
              f"{level:.0%} CIs: percentile of {n_boot} bootstrap resamples of {C} environments, "
              f"widened by t(n-1)/z * sqrt(n/(n-1))"
              + ("; labels in different groups never met: their ratings are not comparable"
                 if comp.max() > 0 else ""))
    df = df.sort_values(["group", "rating"], ascending=[True, False]).reset_index(drop=True)
    return df, method


def draw(df, out, title=""):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = df.iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(d) + 1.6))
    y = np.arange(len(d))
    ax.errorbar(d["rating"], y, xerr=[d["rating"] - d["ci_low"], d["ci_high"] - d["rating"]],
                fmt="o", color="#1f4e79", capsize=3)
    ax.set_yticks(y, [f"{l}  (capability {c:g}, group {k})"
                      for l, c, k in zip(d["label"], d["capability"], d["group"])],
                  fontsize=7)
    ax.axvline(0, color="#999999", linewidth=0.8)
    ax.set_xlabel("Bradley-Terry rating (Elo scale), 95% cluster-bootstrap CI")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    fig.savefig(os.path.splitext(out)[0] + ".svg")
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("-o", "--output", help="PNG (and .svg) to draw")
    ap.add_argument("--game")
    ap.add_argument("--where", action="append", default=[])
    ap.add_argument("--boot", type=int, default=N_BOOT)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    r = br.load(a.results)
    where = effects.parse_where(a.where)
    if a.game:
        where["game"] = a.game
    df, method = ratings(r, where, a.boot)
    if a.json:
        print(json.dumps({"method": method, "ratings": [effects.clean(x) for x in
                                                        df.to_dict("records")]}))
    else:
        print(df.to_string(index=False))
        print("method:", method)
    if a.output:
        draw(df, a.output, method)


if __name__ == "__main__":
    main()
