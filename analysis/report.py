#!/usr/bin/env python3
"""The report of a results file: DIR/index.html and DIR/summary.json.

usage: report.py RESULTS -o DIR [--boot N] [--examples 3]

index.html opens with nothing but a browser (figures are files beside it in
DIR/fig, PNG with an SVG twin): the design, paired effects of every varying
factor on the main outcomes with their CIs, heatmaps with uncertainty per
game and communication setting, scaling fits, ratings from play, behaviour
summaries, market stability, a power plan, and a few example games with
their transcripts (from /messages and /llm_calls). summary.json holds every
effect, fit, rating and cell the page shows.

Owns: choosing what to show and writing the page. Never reads HDF5 itself,
never computes a statistic itself (effects, heatmap, fits, ratings,
behaviour do).
"""
import argparse
import html
import json
import math
import os
import sys
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bazaar_results as br  # noqa: E402
import behaviour  # noqa: E402
import effects  # noqa: E402
import fits  # noqa: E402
import heatmap  # noqa: E402
import ratings  # noqa: E402

# /games columns that describe cost or bookkeeping rather than play
NOT_OUTCOMES = ("llm_calls", "cache_hits", "input_tokens", "cached_input_tokens", "output_tokens",
                "cost_usd",
                "n_invalid", "n_bad_replies", "n_repair", "n_fallback", "capability_gap",
                "capability_mean")
MAX_OUTCOMES = 5
MAX_LINEUP_CONTRASTS = 4

# the checker the Chromium test reads: image load status and script errors
CHECK_JS = """
<script>
window.bzErrors = [];
window.onerror = function (msg, src, line) { window.bzErrors.push(msg + " @" + line); };
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var bad = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                .map(function (i) { return i.getAttribute("src"); });
  var out = document.getElementById("bz-check");
  out.textContent = JSON.stringify({images: imgs.length, broken: bad, errors: window.bzErrors});
});
</script>
"""

CSS = """
body{font-family:sans-serif;max-width:1200px;margin:1em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:12px;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f0f0f0} td.l,th.l{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.3em 0}
pre{background:#f7f7f7;padding:.5em;font-size:11px;max-height:24em;overflow:auto;white-space:pre-wrap}
.note{color:#555;font-size:12px} details{margin:.5em 0}
"""


def esc(x):
    return html.escape(str(x))


def fmt(v):
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            return "-"
        return f"{v:.4g}"
    return esc(v)


def table_html(df, max_rows=60):
    if df is None or not len(df):
        return "<p class=note>(none)</p>"
    d = df.head(max_rows)
    head = "".join(f"<th class=l>{esc(c)}</th>" for c in d.columns)
    rows = []
    for _, r in d.iterrows():
        rows.append("<tr>" + "".join(
            f"<td class=l>{fmt(v)}</td>" if isinstance(v, str) else f"<td>{fmt(v)}</td>"
            for v in r.values) + "</tr>")
    more = f"<p class=note>{len(df) - max_rows} more rows in summary.json</p>" if len(df) > max_rows else ""
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>{more}"


def choose_outcomes(r, g):
    """high_share first, then /games outcomes that vary, up to MAX_OUTCOMES."""
    out = []
    for c in r.outcomes():
        if c in NOT_OUTCOMES:
            continue
        v = r.outcome(c).loc[g.index]
        if np.isfinite(v).sum() > 1 and np.nanstd(v) > 0:
            out.append(c)
    out.sort(key=lambda c: (c != "high_share", c not in br.DERIVED))
    return out[:MAX_OUTCOMES]


def choose_contrasts(r, game):
    """Every varying factor: its two levels, or first vs last level (lineups:
    the first against up to MAX_LINEUP_CONTRASTS others)."""
    g = r.ok()
    g = g[g["game"] == game]
    out = []
    for f in r.varying(game):
        lv = sorted(g[f].dropna().unique(), key=lambda v: (str(type(v)), v))
        if f == "lineup":
            out += [f"lineup={lv[0]},{b}" for b in lv[1:1 + MAX_LINEUP_CONTRASTS]]
        elif len(lv) == 2:
            out.append(f)
        else:
            out.append(f"{f}={lv[0]},{lv[-1]}")
    if g.index.isin(r.derived().index).any():
        gaps = sorted(r.derived().loc[g.index, "capability_gap"].dropna().unique())
        if len(gaps) > 1:
            out.append(f"capability_gap={gaps[0]!r},{gaps[-1]!r}")
    return out


def example_games(r, game, k):
    """A few finished games of this game: the first, the widest capability gap,
    and one with LLM calls when there are any."""
    g = r.ok()
    g = g[g["game"] == game]
    ids = []
    if len(g):
        ids.append(int(g["game_id"].iloc[0]))
        gap = r.derived().loc[g.index, "capability_gap"]
        if gap.notna().any():
            ids.append(int(g.loc[gap.idxmax(), "game_id"]))
        if len(r.llm_calls):
            llm = set(r.llm_calls["game_id"]) & set(g["game_id"])
            if llm:
                ids.append(int(min(llm)))
    seen = []
    for i in ids:
        if i not in seen:
            seen.append(i)
    return seen[:k]


def transcript(r, gid, max_lines=80):
    lines = []
    m = r.messages
    if len(m):
        mm = m[m["game_id"] == gid]
        for _, x in mm.head(max_lines).iterrows():
            when = " ".join(f"{c} {x[c]}" for c in ("round", "turn") if c in mm.columns)
            to = "all" if x.get("receiver", -1) < 0 else f"agent {x['receiver']}"
            vis = f" [{x['visibility']}]" if "visibility" in mm.columns else ""
            lines.append(f"{when} {x.get('phase', '')} agent {x['sender']} -> {to}{vis}: {x['text']}")
        if len(mm) > max_lines:
            lines.append(f"... {len(mm) - max_lines} more messages")
    calls = pd.DataFrame()
    if len(r.llm_calls):
        c = r.llm_calls[r.llm_calls["game_id"] == gid]
        keep = [k for k in ("turn", "round", "phase", "agent", "model", "attempt", "parse_outcome",
                            "decision", "error") if k in c.columns]
        calls = c[keep].copy()
        if "reply_text" in c.columns and hasattr(r, "texts"):  # the words, from the store
            words = r.texts(c["reply_text"])
            calls["reply"] = [words.get(h, "")[:160] for h in c["reply_text"]]
    return "\n".join(lines), calls


class Report:
    def __init__(self, r, out, n_boot):
        self.r, self.out, self.n_boot = r, out, n_boot
        self.fig_dir = os.path.join(out, "fig")
        os.makedirs(self.fig_dir, exist_ok=True)
        self.parts, self.summary = [], {"file": r.path, "games": {}, "notes": []}

    def fig(self, name):
        return os.path.join(self.fig_dir, name + ".png"), f"fig/{name}.png", f"fig/{name}.svg"

    def img(self, rel, svg, alt):
        self.parts.append(f'<p><img src="{esc(rel)}" alt="{esc(alt)}"><br>'
                          f'<a class=note href="{esc(svg)}">SVG</a></p>')

    def h(self, level, text):
        self.parts.append(f"<h{level}>{esc(text)}</h{level}>")

    def p(self, text, cls=None):
        c = f" class={cls}" if cls else ""
        self.parts.append(f"<p{c}>{esc(text)}</p>")

    def build(self, n_examples):
        r = self.r
        self.h(1, f"bazaar report: {os.path.basename(r.path)}")
        prov = {k: r.attrs.get(k) for k in ("version", "git_commit", "n_games", "ranks",
                                            "started_at", "finished_at") if k in r.attrs}
        self.p(", ".join(f"{k} {v}" for k, v in prov.items()), "note")
        st = r.games["status"].value_counts().to_dict() if "status" in r.games else {}
        self.p(f"{len(r.games)} games ({', '.join(f'{v} {k}' for k, v in st.items())}); "
               f"file layout: {r.layout}; games: {', '.join(r.game_names())}", "note")
        self.summary["provenance"] = {k: str(v) for k, v in prov.items()}
        for game in r.game_names():
            self.game_section(game, n_examples)

    def game_section(self, game, n_examples):
        r = self.r
        S = self.summary["games"].setdefault(game, {})
        g = r.ok()
        g = g[g["game"] == game]
        self.h(2, f"{game}: {len(g)} finished games")
        design = {f: sorted(map(str, g[f].dropna().unique()))[:12] for f in r.varying(game)}
        axis = r.competition_axis(game)
        self.p("design factors that vary: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in design.items())
               + f". Competition axis: {axis or 'none'}.", "note")
        S["design"], S["competition_axis"] = design, axis
        outcomes = choose_outcomes(r, g)
        S["outcomes"] = outcomes

        # effects
        self.h(3, "Paired effects (95% cluster-bootstrap CIs)")
        self.p("Effect of switching the factor from level A to level B: mean over games paired "
               "by environment (same env_seed and other factors) of the difference; when a factor "
               "changes the environment, the unpaired stratified estimate (the method says so). "
               "CIs resample whole environments.", "note")
        rows = []
        for c in choose_contrasts(r, game):
            for o in outcomes:
                e = effects.effect(r, c, o, {"game": game}, n_boot=self.n_boot)
                bounded = np.nanmin(r.outcome(o).loc[g.index]) >= 0 and \
                    np.nanmax(r.outcome(o).loc[g.index]) <= 1
                target = 0.05 if bounded else 0.1 * float(np.nanstd(r.outcome(o).loc[g.index]))
                w = e["ci_high"] - e["ci_low"]
                reps = int(g["repetition"].nunique()) if "repetition" in g else None
                need = (int(math.ceil(reps * (w / target) ** 2))
                        if reps and np.isfinite(w) and target > 0 and w > 0 else None)
                e.update({"contrast": c, "plan_target_width": target, "plan_repetitions": need})
                rows.append(e)
        S["effects"] = [effects.clean(e) for e in rows]
        if rows:
            df = pd.DataFrame([{"contrast": e["contrast"], "outcome": e["outcome"],
                                "A": str(e["level_a"]), "B": str(e["level_b"]),
                                "mean A": e["mean_a"], "mean B": e["mean_b"],
                                "effect B-A": e["estimate"], "CI low": e["ci_low"],
                                "CI high": e["ci_high"], "n_pairs": e["n_pairs"],
                                "environments": e["n_clusters"],
                                "design": "paired" if e["paired"] else "UNPAIRED",
                                "reps for CI width": e["plan_target_width"],
                                "reps needed": e["plan_repetitions"]} for e in rows])
            self.parts.append(table_html(df, 200))
            self.p("Power plan: the last two columns give a target total CI width (0.05 for an "
                   "outcome bounded in [0, 1], else 0.1 per-game SD) and the repetitions it needs "
                   "(the pilot's width scales as 1/sqrt(repetitions)). Methods: "
                   + "; ".join(sorted({e['method'].split(';')[0] for e in rows})), "note")

        # heatmaps and fits per communication setting
        comm = sorted(g["communication"].dropna().unique()) if "communication" in g else [None]
        S["heatmaps"], S["fits"] = [], []
        main = outcomes[0] if outcomes else None
        have_gap = r.derived().loc[g.index, "capability_gap"].nunique() > 1
        if main and have_gap:
            self.h(3, f"Capability x competition: {main}")
            for cv in comm:
                where = {"game": game}
                if cv is not None:
                    where["communication"] = cv
                tag = f"{game}_comm{cv}" if cv is not None else game
                for stat in ("mean", "paired"):
                    cells = heatmap.grid(r, game, main, None, "capability_gap", where, stat,
                                         n_boot=min(self.n_boot, 1000))
                    path, rel, svg = self.fig(f"heatmap_{tag}_{stat}")
                    info = heatmap.draw(cells, path, title=f"{game}, communication={cv}")
                    self.img(rel, svg, f"heatmap {game} communication {cv} {stat}")
                    S["heatmaps"].append(effects.clean({
                        "where": str(where), "stat": stat, "outcome": main, **info,
                        "rows": cells["rows"], "xs": cells["xs"].tolist(), "ys": cells["ys"].tolist(),
                        "estimate": _nan_list(cells["est"]), "ci_low": _nan_list(cells["lo"]),
                        "ci_high": _nan_list(cells["hi"]), "n": cells["n"].tolist()}))
                fl = fits.fit_levels(r, game, main, "capability_gap", None, where,
                                     n_boot=min(self.n_boot, 200))
                if fl:
                    path, rel, svg = self.fig(f"fits_{tag}")
                    fits.draw(fl, path, f"{game}, communication={cv}")
                    fits.write_params(fl, os.path.join(self.fig_dir, f"fits_{tag}"))
                    self.img(rel, svg, f"fits {game} communication {cv}")
                    S["fits"] += [fits.public(f) for f in fl]
                    self.parts.append(table_html(pd.DataFrame([{
                        "communication": cv, "level": f["level"], "model": f["model"],
                        "a": f["a"], "b (slope)": f["b"], "b CI low": f["b_ci"][0],
                        "b CI high": f["b_ci"][1], "held-out MSE linear": f["cv_mse_linear"],
                        "held-out MSE logistic": f["cv_mse_logistic"], "games": f["n_games"]}
                        for f in fl])))
                    self.parts.append(f'<p class=note>Parameters: <a href="fig/fits_{esc(tag)}.csv">'
                                      f'CSV</a>, <a href="fig/fits_{esc(tag)}.json">JSON</a>. '
                                      f'{esc(fl[0]["method"])}</p>')
        elif main:
            self.p("No capability gap varies in this game's lineups: no heatmap or fit.", "note")

        # ratings
        self.h(3, "Ratings from play")
        rt, method = ratings.ratings(r, {"game": game}, n_boot=min(self.n_boot, 300))
        if len(rt):
            path, rel, svg = self.fig(f"ratings_{game}")
            ratings.draw(rt, path, f"{game}: " + method[:120])
            self.img(rel, svg, f"ratings {game}")
            self.parts.append(table_html(rt))
            self.p(method, "note")
        S["ratings"] = {"method": method, "rows": [effects.clean(x) for x in rt.to_dict("records")]}

        # behaviour
        self.h(3, "Behaviour")
        sub = _Sub(r, game)
        summ = behaviour.summary(sub)
        S["behaviour"] = {}
        for name, (df, notes) in summ.items():
            S["behaviour"][name] = {"notes": notes,
                                    "rows": [effects.clean(x) for x in df.to_dict("records")]}
            if name == "stability":
                continue
            self.parts.append(f"<h4>{esc(name)}</h4>")
            for n in notes:
                self.p(n, "note")
            self.parts.append(table_html(df))
        stab, notes = summ["stability"]
        if len(stab):
            self.h(3, "Market stability")
            path, rel, svg = self.fig(f"stability_{game}")
            behaviour.draw_stability(stab, path)
            self.img(rel, svg, f"stability {game}")
            for n in notes:
                self.p(n, "note")
            self.parts.append(table_html(stab))

        # examples
        self.h(3, "Example games")
        S["examples"] = []
        for gid in example_games(r, game, n_examples):
            row = r.games[r.games["game_id"] == gid].iloc[0]
            self.parts.append(f"<details open><summary>game {gid}: lineup {esc(row.get('lineup', ''))}"
                              + "".join(f", {esc(f)} {esc(row[f])}" for f in r.varying(game)
                                        if f != "lineup") + "</summary>")
            ag = r.agents[r.agents["game_id"] == gid]
            self.parts.append(table_html(ag[[c for c in ag.columns if c not in ("game_id", "game")]]))
            text, calls = transcript(r, gid)
            edges = behaviour.relationships(r, gid)
            if edges:
                path, rel, svg = self.fig(f"graph_{game}_{gid}")
                behaviour.draw_graph(edges, int(row.get("n_agents", len(ag)) or len(ag)), path,
                                     f"game {gid}")
                self.img(rel, svg, f"relationships game {gid}")
            else:
                self.p("relationship graph: no private messages, transfers or votes in this game", "note")
            self.parts.append(f"<pre>{esc(text) or '(no messages)'}</pre>")
            if len(calls):
                self.parts.append("<p>LLM calls:</p>" + table_html(calls, 40))
            self.parts.append("</details>")
            S["examples"].append(gid)

    def write(self):
        page = ("<!DOCTYPE html><html><head><meta charset=utf-8><title>bazaar report</title>"
                f"<style>{CSS}</style>{CHECK_JS}</head><body>" + "\n".join(self.parts)
                + '<pre id="bz-check" class=note>checking...</pre></body></html>')
        with open(os.path.join(self.out, "index.html"), "w") as f:
            f.write(page)
        with open(os.path.join(self.out, "summary.json"), "w") as f:
            json.dump(self.summary, f, indent=1, default=_json_default)


class _Sub:
    """A Results restricted to one game (for behaviour's per-label tables)."""

    def __init__(self, r, game):
        keep = set(r.games.loc[r.games["game"] == game, "game_id"])
        self.path, self.tables = r.path, _SubTables(r.tables, keep)
        self.games = r.games[r.games["game"] == game]
        self.agents = r.agents[r.agents["game_id"].isin(keep)]
        self.messages = r.messages[r.messages["game_id"].isin(keep)] if len(r.messages) else r.messages
        self.llm_calls = (r.llm_calls[r.llm_calls["game_id"].isin(keep)] if len(r.llm_calls)
                          else r.llm_calls)
        self._r, self._game = r, game

    def ok(self):
        g = self._r.ok()
        return g[g["game"] == self._game]

    def varying(self, game=None):
        return self._r.varying(self._game)


class _SubTables:
    def __init__(self, tables, keep):
        self._t, self._keep = tables, keep
        self._names = [n for n in tables.names() if tables[n]["game_id"].isin(keep).any()]

    def names(self):
        return list(self._names)

    def __getitem__(self, k):
        t = self._t[k]
        return t[t["game_id"].isin(self._keep)]


def _nan_list(a):
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in a]


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("-o", "--out", required=True, help="folder to write index.html and summary.json")
    ap.add_argument("--boot", type=int, default=1000, help="bootstrap resamples (effects)")
    ap.add_argument("--examples", type=int, default=3)
    a = ap.parse_args(argv)
    if not os.path.exists(a.results):
        raise SystemExit(f"report.py: {a.results}: no such results file")
    t0 = time.time()
    r = br.load(a.results)
    rep = Report(r, a.out, a.boot)
    rep.build(a.examples)
    rep.write()
    print(f"report of {len(r.games)} games written to {os.path.join(a.out, 'index.html')} "
          f"(and summary.json) in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
