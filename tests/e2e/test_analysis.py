"""analysis/: the loader on both file layouts, paired effects against ground
truth (placebo, a known skill effect, CI coverage), scaling fits on planted
slopes, ratings by skill, the heatmap and power planner, all on heuristic
sweeps this file makes with build/bazaar."""
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from conftest import ROOT, bazaar, write_spec

sys.path.insert(0, os.path.join(ROOT, "analysis"))
import bazaar_results as br  # noqa: E402
import behaviour  # noqa: E402
import effects  # noqa: E402
import fits  # noqa: E402
import heatmap  # noqa: E402
import ratings  # noqa: E402

PY = sys.executable
GREEDY = "heuristic:greedy?skill="


def _run(tmp_path, spec, name):
    out = str(tmp_path / f"{name}.h5")
    bazaar("run", write_spec(tmp_path, spec, f"{name}.json"), "-o", out, "--quiet")
    return out


def _grid_spec(seed=5, reps=4):
    return {
        "name": "hm", "game": "electricity", "seed": seed, "repetitions": reps,
        "fixed": {"n_agents": 4, "max_turns": 12},
        "grid": {"supply_ratio": [0.8, 1.2], "communication": [True, False], "lineup": ["g0", "g8"]},
        "lineups": {"g0": [GREEDY + "0.5", GREEDY + "0.5"], "g8": [GREEDY + "0.9", GREEDY + "0.1"]},
    }


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("sweep"), _grid_spec(), "hm")


def _old_layout_copy(src, dst):
    """The same games in the layout bazaar wrote before /<game>/config:
    parameters as /games columns (volatility, supply_ratio, competition; old files had scarcity) and a
    params_json column, seeds as int64, /messages without round, visibility
    and conversation."""
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        for k, v in f.attrs.items():
            g.attrs[k] = v
        games = f["games"][()]
        cfg = f["electricity/config"][()]
        assert list(cfg["game_id"]) == list(games["game_id"])
        sdt = h5py.string_dtype()
        keys = [n for n in cfg.dtype.names if n != "game_id"]
        dt = ([(n, np.int64 if n in ("seed", "env_seed") else games.dtype[n])
               for n in games.dtype.names]
              + [("volatility", "<f8"), ("supply_ratio", "<f8"), ("competition", "<f8"),
                 ("params_json", sdt)])
        old = np.empty(len(games), dtype=dt)
        for n in games.dtype.names:
            old[n] = games[n].astype(np.int64) if n in ("seed", "env_seed") else games[n]
        old["volatility"] = cfg["volatility"]
        old["supply_ratio"] = cfg["supply_ratio"]
        old["competition"] = np.nan

        def val(v):
            v = v.decode() if isinstance(v, bytes) else v
            return v.item() if hasattr(v, "item") else v
        old["params_json"] = [json.dumps({k: val(row[k]) for k in keys}) for row in cfg]
        g.create_dataset("games", data=old)
        for name in ("agents", "electricity/turns", "electricity/market"):
            g.create_dataset(name, data=f[name][()])
        m = f["messages"][()]
        keep = [n for n in m.dtype.names if n not in ("round", "visibility", "conversation")]
        mm = np.empty(len(m), dtype=[(n, m.dtype[n]) for n in keep])
        for n in keep:
            mm[n] = m[n]
        g.create_dataset("messages", data=mm)


def test_load_joins_parameters_in_both_layouts(sweep, tmp_path):
    new = br.load(sweep)
    assert new.layout == "new"
    assert {"supply_ratio", "communication", "lineup", "max_turns"} <= set(new.factors)
    assert set(new.varying()) == {"supply_ratio", "communication", "lineup"}
    assert new.competition_axis("electricity") == "supply_ratio"
    assert "electricity/turns" in new.tables and len(new.tables["electricity/turns"])
    assert new.games["env_seed"].dtype == np.uint64
    assert "round" in new.messages.columns
    old_path = str(tmp_path / "old.h5")
    _old_layout_copy(sweep, old_path)
    old = br.load(old_path)
    assert old.layout == "old"
    assert set(old.varying()) == set(new.varying())
    for c in ("supply_ratio", "volatility", "max_turns", "lineup", "env_seed"):
        assert list(old.games[c]) == list(new.games[c]), c
    a = effects.effect(old, "lineup=g0,g8", "high_share", n_boot=200)
    b = effects.effect(new, "lineup=g0,g8", "high_share", n_boot=200)
    assert {k: v for k, v in a.items() if k != "method"} == {k: v for k, v in b.items() if k != "method"}


def test_a_known_skill_effect_has_the_right_sign_and_a_ci_excluding_zero(sweep):
    r = br.load(sweep)
    e = effects.effect(r, "lineup=g0,g8", "high_share")
    assert e["paired"] and e["n_pairs"] == 16 and e["n_clusters"] == 8
    assert e["estimate"] > 0 and e["ci_low"] > 0, e
    # the reverse contrast is the exact negative
    rev = effects.effect(r, "lineup=g8,g0", "high_share")
    assert rev["estimate"] == pytest.approx(-e["estimate"])


def test_a_contrast_that_changes_the_environment_falls_back_to_unpaired(sweep):
    r = br.load(sweep)
    e = effects.effect(r, "supply_ratio", "high_share", n_boot=200)
    assert not e["paired"] and e["n_pairs"] == 0 and "UNPAIRED" in e["method"]
    assert np.isfinite(e["estimate"]) and e["ci_low"] <= e["estimate"] <= e["ci_high"]


def test_effects_cli_prints_json(sweep):
    p = subprocess.run([PY, os.path.join(ROOT, "analysis", "effects.py"), sweep, "--contrast",
                        "communication", "--outcome", "electricity/market.clearing_price:mean",
                        "--where", "lineup=g8", "--json"], capture_output=True, text=True, check=True)
    d = json.loads(p.stdout)
    assert set(d) == {"estimate", "ci_low", "ci_high", "n_pairs", "method"}
    assert d["n_pairs"] == 8 and d["ci_low"] <= d["estimate"] <= d["ci_high"]


def test_ci_coverage_on_repeated_small_sweeps_against_a_large_run(tmp_path):
    """30 sweeps of 10 environments each; the truth from 1,500 environments.
    Measured with 200 such sweeps: 88.5% for the plain percentile bootstrap,
    see README for the widened interval's rate. Here at least 80% of 30 (a
    floor 2.6 binomial SDs under 95%)."""
    base = {"name": "cov", "game": "electricity", "repetitions": 10,
            "fixed": {"n_agents": 4, "max_turns": 12, "supply_ratio": 1.0, "volatility": 0.3},
            "grid": {"lineup": ["g0", "g6"]},
            "lineups": {"g0": [GREEDY + "0.5", GREEDY + "0.5"], "g6": [GREEDY + "0.8", GREEDY + "0.2"]}}
    big = _run(tmp_path, {**base, "seed": 999, "repetitions": 1500}, "big")
    truth = effects.effect(br.load(big), "lineup=g0,g6", "high_share", n_boot=200)["estimate"]
    hits = 0
    for k in range(30):
        path = _run(tmp_path, {**base, "seed": 1000 + k}, f"s{k}")
        e = effects.effect(br.load(path), "lineup=g0,g6", "high_share", n_boot=1000)
        hits += e["ci_low"] <= truth <= e["ci_high"]
        os.remove(path)
    print(f"coverage {hits}/30 of the truth {truth:.4f}")
    assert hits >= 24, f"coverage {hits}/30"


def test_fits_recover_a_planted_linear_slope():
    rng = np.random.default_rng(1)
    env = np.repeat(np.arange(60), 4)
    x = np.tile([0.0, 0.3, 0.6, 0.9], 60) * 10  # a wide scale: bounds are the data's range
    y = 3.0 + 2.5 * x + rng.normal(0, 1.0, 60)[env] + rng.normal(0, 2.0, len(x))
    f = fits.fit_scaling(x, y, env, n_boot=200)
    assert f["model"] == "linear", f
    assert f["b_ci"][0] <= 2.5 <= f["b_ci"][1] and f["b_ci"][1] - f["b_ci"][0] < 0.5, f


def test_fits_recover_a_planted_logistic_slope():
    rng = np.random.default_rng(2)
    levels = np.linspace(-3, 3, 9)
    env = np.repeat(np.arange(80), len(levels))
    x = np.tile(levels, 80)
    y = 1 / (1 + np.exp(-(0.5 + 2.0 * x))) + rng.normal(0, 0.03, 80)[env] + rng.normal(0, 0.05, len(x))
    y = np.clip(y, 0, 1)
    f = fits.fit_scaling(x, y, env, n_boot=200)
    assert f["model"] == "logistic" and f["cv_mse_logistic"] < f["cv_mse_linear"], f
    assert f["b_ci"][0] <= 2.0 <= f["b_ci"][1], f
    assert f["a_ci"][0] <= 0.5 <= f["a_ci"][1], f


def test_ratings_order_heuristics_by_skill(tmp_path):
    spec = {"name": "rat", "game": "electricity", "seed": 3, "repetitions": 40,
            "fixed": {"n_agents": 4, "max_turns": 12}, "grid": {"lineup": ["mix"]},
            "lineups": {"mix": [GREEDY + "0.1", GREEDY + "0.5", GREEDY + "0.9", GREEDY + "0.5"]}}
    r = br.load(_run(tmp_path, spec, "rat"))
    df, method = ratings.ratings(r, n_boot=200)
    assert list(df["label"]) == [GREEDY + "0.9", GREEDY + "0.5", GREEDY + "0.1"], df
    assert list(df["capability"]) == [0.9, 0.5, 0.1]
    top, bottom = df.iloc[0], df.iloc[-1]
    assert top["ci_low"] > bottom["ci_high"], df
    assert "Bradley-Terry" in method


def test_bradley_terry_recovers_planted_strengths():
    rng = np.random.default_rng(4)
    true = np.array([1.0, 0.0, -1.0])
    wins = np.zeros((3, 3))
    for _ in range(3000):
        i, j = rng.choice(3, 2, replace=False)
        p = 1 / (1 + np.exp(-(true[i] - true[j])))
        if rng.random() < p:
            wins[i, j] += 1
        else:
            wins[j, i] += 1
    est = ratings.bt_fit(wins)
    assert np.allclose(est - est.mean(), true - true.mean(), atol=0.15), est


def test_heatmap_cells_carry_cis_and_the_script_writes_png_and_svg(sweep, tmp_path):
    r = br.load(sweep)
    cells = heatmap.grid(r, outcome="high_share", where={"communication": 1}, n_boot=200)
    assert cells["rows"] == "supply_ratio" and list(cells["ys"]) == [0.8, 1.2]
    assert list(cells["xs"]) == [0.0, 0.8]
    assert (cells["n"] == 4).all() and (cells["nc"] == 4).all()
    assert np.all(cells["lo"] <= cells["est"]) and np.all(cells["est"] <= cells["hi"])
    paired = heatmap.grid(r, outcome="high_share", where={"communication": 1}, stat="paired",
                          n_boot=200)
    assert np.isnan(paired["est"][:, 0]).all() and np.isfinite(paired["est"][:, 1]).all()
    png = str(tmp_path / "hm.png")
    p = subprocess.run([PY, os.path.join(ROOT, "analysis", "heatmap.py"), sweep, "-o", png,
                        "--where", "communication=0"], capture_output=True, text=True, check=True)
    assert "16 games" in p.stdout and "fixed scale [0, 1]" in p.stdout
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(str(tmp_path / "hm.svg")) as f:
        assert "<svg" in f.read(2000)


def test_fits_script_writes_parameters(sweep, tmp_path):
    prefix = str(tmp_path / "fits")
    subprocess.run([PY, os.path.join(ROOT, "analysis", "fits.py"), sweep, "-o", prefix, "--boot",
                    "50"], capture_output=True, text=True, check=True)
    rows = json.load(open(prefix + ".json"))
    assert [x["level"] for x in rows] == [0.8, 1.2]
    assert all(x["model"] in ("linear", "logistic") and x["b"] > 0 for x in rows)
    assert open(prefix + ".csv").readline().startswith("game,by,level")
    assert os.path.getsize(prefix + ".png") > 0 and os.path.getsize(prefix + ".svg") > 0


def test_behaviour_says_what_it_measures_against(sweep):
    r = br.load(sweep)
    dec, notes = behaviour.deception(r)
    assert len(dec) and set(dec["claim"]) == {"claimed_surplus"}
    ref = set(dec["reference"])
    if "expected_surplus" in br.load(sweep).tables["electricity/turns"].columns:
        assert ref == {"expected_surplus"}
    else:
        assert ref == {"true_surplus"} and "REALISED" in notes[0]
    stab, _ = behaviour.stability(r)
    assert set(stab["metric"]) == {"price_sd", "unserved_share", "sales_hhi"}
    assert set(stab["factor"]) == {"supply_ratio"}
    assert ((stab["sales_hhi"] if "sales_hhi" in stab else stab[stab["metric"] == "sales_hhi"]["mean"])
            .between(0.25 - 1e-9, 1 + 1e-9).all())


def test_power_planner_predicts_the_width_a_larger_sweep_gets(tmp_path):
    spec = _grid_spec(seed=21, reps=6)
    pilot = br.load(_run(tmp_path, spec, "pilot"))
    e = effects.effect(pilot, "lineup=g0,g8", "high_share")
    target = (e["ci_high"] - e["ci_low"]) / 2
    plan = effects.plan(pilot, "lineup=g0,g8", "high_share", target)
    need = plan["repetitions_needed"]
    assert 18 <= need <= 30, plan  # about 4x the pilot's 6 (the small-sample factor shrinks too)
    big = br.load(_run(tmp_path, {**spec, "seed": 22, "repetitions": need}, "big"))
    got = effects.effect(big, "lineup=g0,g8", "high_share")
    width = got["ci_high"] - got["ci_low"]
    assert 0.5 * target < width < 1.5 * target, (width, target)


# analysis/results.py (the numpy loader, owned by the tables work) keeps its tests here
import results  # noqa: E402


def test_high_skill_mask_uses_capability_then_even_positions():
    a = np.array([(0, 0.9), (1, 0.1), (2, 0.9), (3, 0.1)],
                 dtype=[("agent", "i4"), ("capability", "f8")])
    assert list(results.high_skill_mask(a)) == [True, False, True, False]
    a["capability"] = 0.5
    assert list(results.high_skill_mask(a)) == [True, False, True, False]


def test_skill_share_is_the_plain_share_for_profits_and_centred_for_losses():
    hi = np.array([True, False])
    assert results.skill_share(np.array([30.0, 10.0]), hi) == 0.75
    assert results.skill_share(np.array([-10.0, -30.0]), hi) == 0.75
    assert results.skill_share(np.array([-20.0, -20.0]), hi) == 0.5
    assert np.isnan(results.skill_share(np.array([0.0, 0.0]), hi))


def test_derived_high_share_matches_results_py(sweep):
    r = br.load(sweep)
    old = results.per_game_skill_share(sweep)
    mine = r.derived().set_index(r.games["game_id"])
    assert np.allclose(mine.loc[old["game_id"], "high_share"], old["high_share"], equal_nan=True)
    assert np.allclose(mine.loc[old["game_id"], "capability_gap"], old["skill_gap"])


def _synthetic_beast(path, n_games=24, n=5, seed=0):
    """A results file of a game bazaar does not play yet (beast-like): new
    layout, /beast/config, votes with declared votes, transfers, private
    messages. Agent 0 is 'strong' and wins more."""
    rng = np.random.default_rng(seed)
    sdt = h5py.string_dtype()
    gdt = [("game_id", "<i8"), ("game", sdt), ("seed", "<u8"), ("env_seed", "<u8"),
           ("repetition", "<i4"), ("n_agents", "<i4"), ("communication", "u1"), ("lineup", sdt),
           ("status", sdt)]
    games = np.empty(n_games, dtype=gdt)
    agents = np.empty(n_games * n, dtype=[("game_id", "<i8"), ("agent", "<i4"), ("kind", sdt),
                                          ("policy", sdt), ("skill", "<f8"), ("capability", "<f8"),
                                          ("payoff", "<f8")])
    votes, transfers, msgs = [], [], []
    for g in range(n_games):
        comm = g % 2
        games[g] = (g, "beast", g + 100, g // 2, g // 2, n, comm, "mix", "ok")
        for a in range(n):
            skill = 0.9 if a == 0 else 0.2
            pol = f"heuristic:loyal?skill={skill}"
            agents[g * n + a] = (g, a, "heuristic", pol, skill, skill,
                                 1000 * skill + rng.normal(0, 100))
        for rnd in range(3):
            for v in range(n):
                target = (v + 1) % n
                declared = target if rng.random() < 0.7 else (v + 2) % n
                votes.append((g, rnd, v, declared, target, 1))
            transfers.append((g, rnd, 1, 0, 50.0, 1))
            if comm:
                msgs.append((g, rnd, rnd, "talk", 1, 0, "private", rnd, "deal?"))
    with h5py.File(path, "w") as f:
        f.attrs["spec_json"] = json.dumps({"game": "beast", "grid": {"communication": [True, False]},
                                           "fixed": {"n_agents": n, "bonus": 250000}})
        f.create_dataset("games", data=games)
        f.create_dataset("agents", data=agents)
        cfg = np.array([(g, n, g % 2, 250000.0) for g in range(n_games)],
                       dtype=[("game_id", "<i8"), ("n_agents", "<i4"), ("communication", "u1"),
                              ("bonus", "<f8")])
        f.create_dataset("beast/config", data=cfg)
        f.create_dataset("beast/votes", data=np.array(votes, dtype=[
            ("game_id", "<i8"), ("round", "<i4"), ("voter", "<i4"), ("declared_vote", "<i4"),
            ("vote", "<i4"), ("eliminated", "<i4")]))
        f.create_dataset("beast/transfers", data=np.array(transfers, dtype=[
            ("game_id", "<i8"), ("round", "<i4"), ("payer", "<i4"), ("payee", "<i4"),
            ("amount", "<f8"), ("executed", "u1")]))
        pv = [(g, rnd, v, 0, int(v % 2 == 0 or rnd == 2)) for g in range(n_games)
              for rnd in range(3) for v in range(1, n)]
        f.create_dataset("beast/proposal_votes", data=np.array(pv, dtype=[
            ("game_id", "<i8"), ("round", "<i4"), ("voter", "<i4"), ("proposer", "<i4"),
            ("accept", "u1")]))
        f.create_dataset("messages", data=np.array(msgs, dtype=[
            ("game_id", "<i8"), ("turn", "<i4"), ("round", "<i4"), ("phase", sdt), ("sender", "<i4"),
            ("receiver", "<i4"), ("visibility", sdt), ("conversation", "<i4"), ("text", sdt)]))


def test_a_game_bazaar_does_not_play_yet_is_analysed_from_its_tables(tmp_path):
    path = str(tmp_path / "beast.h5")
    _synthetic_beast(path)
    r = br.load(path)
    assert r.layout == "new" and r.game_names() == ["beast"]
    assert r.competition_axis("beast") is None and r.varying() == ["communication"]
    assert "bonus" in r.games.columns
    assert set(r.tables.names()) == {"beast/votes", "beast/transfers", "beast/proposal_votes"}
    tr, _ = behaviour.trust(r)  # seats 2, 4 always accept 0's proposals; 1, 3 only in round 2
    assert list(tr["accept_rate"]) == [0.5, 0.5, 1.0]
    assert set(tr["proposer_label"]) == {"heuristic:loyal?skill=0.9"}
    dec, notes = behaviour.deception(r)
    assert list(dec["claim"].unique()) == ["declared_vote"]
    assert 0.2 < dec["lie_rate"].mean() < 0.4  # 30% of declarations planted false
    edges = behaviour.relationships(r, 1)
    kinds = {e[3] for e in edges}
    assert kinds == {"messages", "transfers", "votes against", "accepts"}
    assert (1, 0, 150.0, "transfers") in edges
    df, _ = ratings.ratings(r, n_boot=100)
    assert df.iloc[0]["label"] == "heuristic:loyal?skill=0.9"
    e = effects.effect(r, "communication", "high_share", n_boot=200)
    assert e["paired"] and e["n_pairs"] == 12
    out = str(tmp_path / "rep")
    p = subprocess.run([PY, os.path.join(ROOT, "analysis", "report.py"), path, "-o", out, "--boot",
                        "100"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    s = json.load(open(os.path.join(out, "summary.json")))
    assert s["games"]["beast"]["competition_axis"] is None
    assert os.path.exists(os.path.join(out, "fig", "graph_beast_0.png"))
