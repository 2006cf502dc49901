#!/usr/bin/env python3
"""Behaviour summaries from whatever the results file records, per agent label.

usage: behaviour.py RESULTS [--json]

Each summary is found by the columns a table has, not by the game's name:
  deception      a `claimed_X` column against `expected_X` (what the agent
                 expected when it claimed) or, when the file has no
                 expectation, against `true_X` (the realised value: then
                 noise counts as lying, and the note says so); a `lie` column
                 is used as recorded. Declared vs actual votes where a table
                 has `declared_vote` and `vote`.
  promises       delivered / (delivered + undelivered) of agents' contracts;
                 /agents columns named promises_*; accepted proposals.
  trust          acceptance rate of other agents' proposals by round, per
                 pair of labels (tables with voter, proposer, accept, round).
  relationships  who talks to, pays, accepts and votes against whom in a game:
                 private /messages (receiver >= 0), transfer tables (payer,
                 payee, amount), votes on proposals (voter, proposer,
                 accept) and elimination votes (voter, vote).
  irrational     columns named irrational* or dominated* (none today: said so).
  failures       inadmissible actions, fallbacks (per-agent columns), and LLM
                 parse outcomes by model (/llm_calls).
  stability      for markets (a per-turn table with clearing_price;
                 total_unserved/total_demand; agents' *_sold): within-game price
                 SD, unserved share of demand, HHI of sales shares, by level of
                 each varying environment factor, with cluster-bootstrap CIs.

Owns: these summaries. Never reads HDF5 itself.
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
import heatmap  # noqa: E402

LIE_BAND = 0.10  # a claim further than 10% of |reference| (and 1 unit) from it is a lie


def _label(r, t, agent_col="agent"):
    lab = r.agents[["game_id", "agent", "label"]].rename(columns={"agent": agent_col})
    return t.merge(lab, on=["game_id", agent_col], how="left")


def deception(r):
    """(DataFrame per table/label, notes)."""
    rows, notes = [], []
    for name in r.tables.names():
        cols = _columns(r, name)
        for c in cols:
            if not c.startswith("claimed_"):
                continue
            base = c[len("claimed_"):]
            if "expected_" + base in cols:
                ref, how = "expected_" + base, "against what the agent expected"
            elif "true_" + base in cols:
                ref, how = "true_" + base, ("against the REALISED value (the file has no "
                                            f"expected_{base}): noise and low skill count as lies")
            else:
                continue
            t = r.tables[name]
            keep = [k for k in ("game_id", "agent", c, ref, "lie") if k in t.columns]
            t = _label(r, t[keep])
            t = t[np.isfinite(t[c]) & np.isfinite(t[ref])]
            dev = t[c] - t[ref]
            if "lie" in t.columns:
                lie, lie_how = t["lie"].astype(float), "the file's lie flag"
            else:
                band = np.maximum(LIE_BAND * np.abs(t[ref]), 1.0)
                lie = (np.abs(dev) > band).astype(float)
                lie_how = f"|claim - reference| > max({LIE_BAND:g} |reference|, 1)"
            g = pd.DataFrame({"label": t["label"], "lie": lie, "dev": dev, "absdev": np.abs(dev)})
            s = g.groupby("label").agg(claims=("lie", "size"), lie_rate=("lie", "mean"),
                                       mean_overclaim=("dev", "mean"), mean_abs_dev=("absdev", "mean"))
            s["table"], s["claim"], s["reference"] = name, c, ref
            rows.append(s.reset_index())
            notes.append(f"{name}.{c} {how}; lie = {lie_how}")
        if "declared_vote" in cols and "vote" in cols:
            t = r.tables[name]
            voter = "voter" if "voter" in t.columns else "agent"
            t = _label(r, t, voter)
            t = t[t["declared_vote"] >= 0]
            s = t.assign(broken=(t["declared_vote"] != t["vote"]).astype(float)).groupby("label").agg(
                claims=("broken", "size"), lie_rate=("broken", "mean"))
            s["table"], s["claim"], s["reference"] = name, "declared_vote", "vote"
            rows.append(s.reset_index())
            notes.append(f"{name}: declared vote vs actual vote (lie = they differ)")
    if not rows:
        notes.append("no claims recorded in this file (no claimed_* or declared_vote column)")
    return (pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()), notes


def promises(r):
    rows, notes = [], []
    for name in r.tables.names():
        cols = _columns(r, name)
        if "delivered" in cols and "undelivered" in cols:
            t = _label(r, r.tables[name][["game_id", "agent", "delivered", "undelivered"]])
            s = t.groupby("label")[["delivered", "undelivered"]].sum()
            tot = s["delivered"] + s["undelivered"]
            s = pd.DataFrame({"kept_share": s["delivered"] / tot.where(tot > 0),
                              "promised": tot}).reset_index()
            s["source"] = f"{name}: delivered / (delivered + undelivered)"
            rows.append(s)
        if {"voter", "proposer", "accept"} <= set(cols):
            pass  # trust(), below
    for c in r.agents.columns:
        if c.startswith("promises"):
            s = r.agents.groupby("label")[c].mean().rename("kept_share").reset_index()
            s["source"], s["promised"] = f"agents.{c}", np.nan
            rows.append(s)
    if not rows:
        notes.append("no promise records in this file (no delivered/undelivered or promises_* column)")
    return (pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()), notes


def trust(r):
    """Acceptance rate of others' proposals by round, per pair of labels
    (voter's label, proposer's label): trust between kinds of agents over
    time (tables with voter, proposer, accept)."""
    rows, notes = [], []
    for name in r.tables.names():
        cols = _columns(r, name)
        if {"voter", "proposer", "accept"} <= set(cols):
            t = r.tables[name]
            t = t[t["voter"] != t["proposer"]]
            rnd = "round" if "round" in t.columns else "turn"
            t = _label(r, t, "voter").rename(columns={"label": "voter_label"})
            t = _label(r, t, "proposer").rename(columns={"label": "proposer_label"})
            s = t.groupby(["voter_label", "proposer_label", rnd])["accept"].agg(["mean", "size"])
            s = s.rename(columns={"mean": "accept_rate", "size": "votes"}).reset_index()
            s["table"] = name
            rows.append(s)
    if not rows:
        notes.append("no votes on proposals in this file: trust over time not measurable")
    return (pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()), notes


def relationships(r, game_id):
    """Edges (src, dst, weight, kind) of one game: private messages and transfers."""
    edges = []
    m = r.messages
    if len(m) and "receiver" in m.columns:
        p = m[(m["game_id"] == game_id) & (m["receiver"] >= 0)]
        for (s, d), n in p.groupby(["sender", "receiver"]).size().items():
            edges.append((int(s), int(d), float(n), "messages"))
    for name in r.tables.names():
        cols = _columns(r, name)
        if {"payer", "payee", "amount"} <= set(cols):
            t = r.tables[name]
            t = t[t["game_id"] == game_id]
            if "executed" in t.columns:
                t = t[t["executed"] != 0]
            for (s, d), a in t.groupby(["payer", "payee"])["amount"].sum().items():
                edges.append((int(s), int(d), float(a), "transfers"))
        if {"voter", "proposer", "accept"} <= set(cols):
            t = r.tables[name]
            t = t[(t["game_id"] == game_id) & (t["voter"] != t["proposer"])]
            for (s, d), a in t.groupby(["voter", "proposer"])["accept"].sum().items():
                if a > 0:
                    edges.append((int(s), int(d), float(a), "accepts"))
        if {"voter", "vote"} <= set(cols) and "proposer" not in cols:
            t = r.tables[name]
            t = t[(t["game_id"] == game_id) & (t["vote"] >= 0)]
            for (s, d), n in t.groupby(["voter", "vote"]).size().items():
                edges.append((int(s), int(d), float(n), "votes against"))
    return edges


def irrational(r):
    found = [(n, c) for n in r.tables.names() for c in _columns(r, n)
             if c.startswith(("irrational", "dominated"))]
    if not found:
        return pd.DataFrame(), ["irrational decisions: not measurable from this file (no table "
                                "records the agent's own alternative to a trade)"]
    rows = []
    for n, c in found:
        t = _label(r, r.tables[n][["game_id", "agent", c]])
        s = t.groupby("label")[c].mean().rename("rate").reset_index()
        s["column"] = f"{n}.{c}"
        rows.append(s)
    return pd.concat(rows, ignore_index=True), []


def failures(r):
    rows, notes = [], []
    for name in r.tables.names():
        cols = _columns(r, name)
        fc = [c for c in cols if c.startswith(("invalid", "fallback", "parse"))]
        if fc and "agent" in cols:
            t = _label(r, r.tables[name][["game_id", "agent"] + fc])
            s = t.groupby("label")[fc].mean()
            s.columns = [f"{c} rate ({name})" for c in fc]
            rows.append(s)
    out = pd.concat(rows, axis=1).reset_index() if rows else pd.DataFrame()
    llm = pd.DataFrame()
    if len(r.llm_calls) and "parse_outcome" in r.llm_calls.columns:
        llm = r.llm_calls.groupby(["model", "parse_outcome"]).size().unstack(fill_value=0)
        llm = llm.reset_index()
    else:
        notes.append("no LLM calls in this file: parse failures by model not applicable")
    return out, llm, notes


def _columns(r, name):
    import h5py
    with h5py.File(r.path, "r") as f:
        return list(f[name].dtype.names)


def market_per_game(r):
    """Per game: price_sd (within-game SD of the clearing price), unserved_share,
    sales_hhi; None when the file has no market table."""
    market = None
    for name in r.tables.names():
        cols = _columns(r, name)
        if "clearing_price" in cols and "agent" not in cols:
            market = name
    if market is None:
        return None, None
    t = r.tables[market]
    per = pd.DataFrame({"price_sd": t.groupby("game_id")["clearing_price"].std()})
    if {"total_unserved", "total_demand"} <= set(t.columns):
        s = t.groupby("game_id")[["total_unserved", "total_demand"]].sum()
        per["unserved_share"] = s["total_unserved"] / s["total_demand"].where(s["total_demand"] > 0)
    for name in r.tables.names():
        cols = _columns(r, name)
        sold = [c for c in cols if c.endswith("_sold")]
        if sold and "agent" in cols:
            t = r.tables[name]
            v = t[sold].sum(axis=1).groupby([t["game_id"], t["agent"]]).sum()
            tot = v.groupby(level=0).transform("sum")
            share = v / tot.where(tot > 0)
            per["sales_hhi"] = (share ** 2).groupby(level=0).sum(min_count=1)
            break
    return per, market


def stability(r, n_boot=500):
    """(DataFrame: factor, level, metric, mean, ci_low, ci_high, n_games), note."""
    per, market = market_per_game(r)
    if per is None:
        return pd.DataFrame(), ["no market table (clearing_price per turn): stability not applicable"]
    g = r.ok()
    per = g[["game_id"]].join(per, on="game_id")
    cl = g["env_seed"].to_numpy() if "env_seed" in g.columns else g["game_id"].to_numpy()
    rows = []
    env_factors = [f for f in r.varying() if f not in ("lineup", "communication")
                   and g[f].dtype.kind in "biuf"]
    levels = [(f, lv, (g[f] == lv).to_numpy()) for f in env_factors
              for lv in sorted(g[f].dropna().unique())]
    if not levels:  # no environment factor varies: one row over all games
        levels = [("all", 0.0, np.ones(len(g), bool))]
    for f, lv, sel in levels:
        if True:
            for metric in [c for c in per.columns if c != "game_id"]:
                y = per[metric].to_numpy(float)
                ok = sel & np.isfinite(y)
                if not ok.any():
                    continue
                m, lo, hi, nc = heatmap._cell_mean_ci(y[ok], cl[ok], n_boot, 0)
                rows.append({"factor": f, "level": float(lv), "metric": metric, "mean": m,
                             "ci_low": lo, "ci_high": hi, "n_games": int(ok.sum()), "n_env": nc})
    note = (f"from {market}: price_sd = within-game SD of clearing_price over turns; "
            "unserved_share = sum unserved / sum demand; sales_hhi = sum of squared shares of "
            "each agent's sales (all *_sold columns) in the game; 95% cluster-bootstrap CIs")
    return pd.DataFrame(rows), [note]


def draw_stability(df, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(df["metric"]))
    factors = list(dict.fromkeys(df["factor"]))
    fig, axes = plt.subplots(len(factors), len(metrics), squeeze=False,
                             figsize=(3.3 * len(metrics), 2.6 * len(factors)))
    for i, f in enumerate(factors):
        for j, mt in enumerate(metrics):
            d = df[(df["factor"] == f) & (df["metric"] == mt)]
            ax = axes[i][j]
            ax.errorbar(d["level"], d["mean"], yerr=[d["mean"] - d["ci_low"], d["ci_high"] - d["mean"]],
                        fmt="o-", capsize=3)
            ax.set_xlabel(f)
            ax.set_ylabel(mt)
    fig.suptitle("market stability (95% cluster-bootstrap CIs)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    fig.savefig(os.path.splitext(out)[0] + ".svg")
    plt.close(fig)


def draw_graph(edges, n_agents, out, title):
    """A relationship graph: seats on a circle, arrows weighted by volume."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ang = np.linspace(0, 2 * np.pi, n_agents, endpoint=False)
    pos = np.c_[np.cos(ang), np.sin(ang)]
    colour = {"messages": "tab:blue", "transfers": "tab:red", "accepts": "tab:green",
              "votes against": "tab:purple"}
    wmax = {k: max([e[2] for e in edges if e[3] == k] or [1]) for k in colour}
    for s, d, w, k in edges:
        if s >= n_agents or d >= n_agents:
            continue
        ax.annotate("", xy=pos[d] * 0.9, xytext=pos[s] * 0.9,
                    arrowprops=dict(arrowstyle="->", lw=0.5 + 3 * w / wmax[k],
                                    color=colour[k],
                                    connectionstyle="arc3,rad=0.15"))
    for i, (x, y) in enumerate(pos):
        ax.text(x, y, str(i), ha="center", va="center", bbox=dict(boxstyle="circle", fc="w"))
    ax.set_xlim(-1.3, 1.3)
    ax.set_ylim(-1.3, 1.3)
    ax.axis("off")
    kinds = sorted({e[3] for e in edges})
    ax.set_title(title + "\n" + ", ".join(f"{k}: {colour[k][4:]}" for k in kinds) +
                 " (width: volume)", fontsize=8)
    fig.savefig(out, dpi=100)
    fig.savefig(os.path.splitext(out)[0] + ".svg")
    plt.close(fig)


def summary(r):
    """Every summary: a dict name -> (DataFrame or None, notes)."""
    dec, dn = deception(r)
    pro, pn = promises(r)
    tru, tn = trust(r)
    irr, inn = irrational(r)
    fail, llm, fn = failures(r)
    stab, sn = stability(r)
    return {"deception": (dec, dn), "promises": (pro, pn), "trust": (tru, tn),
            "irrational": (irr, inn), "failures": (fail, fn), "llm_parse": (llm, []),
            "stability": (stab, sn)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    r = br.load(a.results)
    s = summary(r)
    if a.json:
        print(json.dumps({k: {"rows": [effects.clean(x) for x in d.to_dict("records")],
                              "notes": n} for k, (d, n) in s.items()}, default=str))
        return
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        for k, (d, n) in s.items():
            print(f"== {k}")
            for note in n:
                print("  note:", note)
            if len(d):
                print(d.to_string(index=False))


if __name__ == "__main__":
    main()
