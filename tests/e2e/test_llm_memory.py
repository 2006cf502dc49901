"""llm.memory_turns as a grid axis, end to end against tests/llm_server.py:
one sweep plays memory 0 and 3 on the same environments (/games.memory_turns,
/llm_calls.memory_turns and history per game, env_seed pairs), the analysis
contrasts it, bad values are refused before any game starts, and `bazaar
expand` estimates memory and prompt caching."""
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, ab_models, bazaar, control, table, write_models

KEY_ENV = "BZ_E2E_MEM_KEY"
KEY = "sk-e2e-mem-0a1b2c3d4e5f"
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def registry(tmp_path, port, cached_price=None):
    m, a = ab_models(port, KEY_ENV)
    if cached_price is not None:
        m["price_cached_in_per_mtok"] = cached_price
        a["price_cached_in_per_mtok"] = 3.0 * cached_price
    name = "models.json" if cached_price is None else "models_cached.json"
    return write_models(tmp_path, [m, a], name)


def stable_prompts(tmp_path):
    """electricity's templates with a system prompt that is the same every
    turn (the shipped one renders this hour's generation cost, so no prefix
    repeats) and long enough for the providers' 1024-token cache minimum."""
    src = os.path.join(ROOT, "prompts", "electricity")
    dst = tmp_path / "prompts_stable"
    dst.mkdir(exist_ok=True)
    for f in os.listdir(src):
        text = open(os.path.join(src, f)).read()
        if f == "system.txt":
            assert "{{private.generation_cost_per_mwh}}" in text
            text = text.replace("{{private.generation_cost_per_mwh}}",
                                "the generation cost your prompt shows")
            text += "\n" + "Rules of conduct, the same every hour. " * 150
        (dst / f).write_text(text)
    return dst


def write_spec(tmp_path, port, name, grid, llm=None, models=None, turns=3, prompts=None):
    spec = {
        "name": name, "game": "electricity", "seed": 5, "repetitions": 2,
        "fixed": {"n_agents": 3, "max_turns": turns, "communication": True},
        "grid": grid,
        "lineups": {"llm": ["srv-openai", "srv-anthropic", "heuristic:greedy?skill=0.5"],
                    "heur": ["heuristic:greedy?skill=0.5", "heuristic:truthful"]},
        "models": str(models or registry(tmp_path, port)),
        "prompts": str(prompts or os.path.join(ROOT, "prompts", "electricity")),
        "llm": {"live_games": 2, "concurrency": 4, "timeout_s": 5, "max_retries": 3,
                "cache": str(tmp_path / f"cache_{name}"), **(llm or {})},
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(spec))
    return path


def test_one_sweep_plays_memory_0_and_3_paired(server, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    spec = write_spec(tmp_path, server, "mem_grid",
                      {"llm.memory_turns": [0, 3], "lineup": ["llm", "heur"]})
    control(server, "/config", {"faults": [], "play": {"seed": 7, "bad_rate": 0.0}})
    out = tmp_path / "mem_grid.h5"
    try:
        bazaar("run", spec, "-o", out, "--quiet", timeout=600)
    finally:
        control(server, "/config", {"play": None})
    games = table(out, "games")
    # 2 memory values x 2 lineups x 2 repetitions
    assert len(games) == 8 and set(games["status"]) == {b"ok"}
    by_id = {int(g["game_id"]): g for g in games}
    mem = {gid: int(g["memory_turns"]) for gid, g in by_id.items()}
    llm_games = [gid for gid, g in by_id.items() if g["lineup"] == b"llm"]
    heur_games = [gid for gid, g in by_id.items() if g["lineup"] == b"heur"]
    assert sorted(mem[g] for g in llm_games) == [0, 0, 3, 3]
    assert all(mem[g] == 0 for g in heur_games)  # no LLM agent: no memory

    # paired: same lineup and repetition, memory 0 vs 3 -> same env_seed,
    # different seed (an id)
    for lineup in (b"llm", b"heur"):
        for rep in (0, 1):
            pair = [g for g in games if g["lineup"] == lineup and g["repetition"] == rep]
            assert len(pair) == 2
            assert pair[0]["env_seed"] == pair[1]["env_seed"]
            assert pair[0]["seed"] != pair[1]["seed"]
    assert len({int(g["env_seed"]) for g in games}) == 2  # one environment per repetition
    # a placebo: without a model, memory changes nothing, the games are the same
    agents = table(out, "agents")
    for rep in (0, 1):
        pair = [int(g["game_id"]) for g in games if g["lineup"] == b"heur" and g["repetition"] == rep]
        pay = [sorted(float(a["payoff"]) for a in agents if int(a["game_id"]) == gid) for gid in pair]
        assert pay[0] == pay[1]
        assert by_id[pair[0]]["welfare"] == by_id[pair[1]]["welfare"]

    calls = table(out, "llm_calls")
    assert len(calls) > 0
    assert {int(c["game_id"]) for c in calls} == set(llm_games)
    for c in calls:  # every call records its game's memory
        assert int(c["memory_turns"]) == mem[int(c["game_id"])]
    decided = {}  # (game, agent) -> turns with a decision kept in memory
    for c in sorted(calls, key=lambda c: int(c["turn"])):
        g, a, t = int(c["game_id"]), int(c["agent"]), int(c["turn"])
        hist = c["history"].split()
        if mem[g] == 0 or t == 0:
            assert hist == [], (g, t)
        elif any(u < t for u in decided.get((g, a), [])):
            assert hist and len(hist) % 2 == 0, (g, a, t)
        if c["decision"] in (b"ok", b"repaired"):
            decided.setdefault((g, a), []).append(t)
    with_hist = [c for c in calls if c["history"]]
    assert with_hist and all(mem[int(c["game_id"])] == 3 for c in with_hist)
    # same environment and agent draws: an agent's first prompt (turn 0,
    # before any reply) is the same with memory 0 and 3
    first = {}
    for c in calls:
        if c["turn"] == 0 and c["attempt"] == 0 and c["phase"] == b"publish":
            g = by_id[int(c["game_id"])]
            first.setdefault((int(g["repetition"]), int(c["agent"])), {})[mem[int(c["game_id"])]] = \
                c["prompt_text"]
    assert first and all(v[0] == v[3] for v in first.values()), first

    # bazaar info counts the games per value
    info = [ln for ln in bazaar("info", out).stdout.splitlines()
            if ln.startswith("memory_turns:")]
    assert len(info) == 1 and "0 (6 games)" in info[0] and "3 (2 games)" in info[0], info

    # the analysis sees memory_turns as a design factor and pairs it
    sys.path.insert(0, os.path.join(ROOT, "analysis"))
    import bazaar_results
    import effects
    r = bazaar_results.load(str(out))
    assert "memory_turns" in r.varying()
    assert "memory_turns" not in r.outcomes()
    e = effects.effect(r, "memory_turns=0,3", "efficiency", where={"lineup": "llm"}, n_boot=200)
    assert e["paired"] and e["n_pairs"] == 2, e
    # without --where the heuristic lineup has no memory-3 arm: the same pairs
    e_all = effects.effect(r, "memory_turns", "efficiency", n_boot=200)
    assert e_all["n_pairs"] == 2 and e_all["estimate"] == e["estimate"], e_all
    p = subprocess.run([PY, os.path.join(ROOT, "analysis", "effects.py"), str(out), "--contrast",
                        "memory_turns", "--outcome", "efficiency", "--where", "lineup=llm",
                        "--json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["n_pairs"] == 2 and "paired by environment" in d["method"]
    # the heuristic lineup pairs with the LLM lineup at memory 0
    e = effects.effect(r, "lineup=heur,llm", "efficiency", n_boot=200)
    assert e["paired"] and e["n_pairs"] == 2, e
    assert KEY.encode() not in out.read_bytes()


@pytest.mark.parametrize("grid, llm, message", [
    ({"llm.memory_turns": [0, -1]}, None,
     "grid.llm.memory_turns[1]: expected an integer in [0,1000], got -1"),
    ({"llm.memory_turns": [0, 1.5]}, None,
     "grid.llm.memory_turns[1]: expected an integer in [0,1000], got 1.5"),
    ({"llm.memory_turns": [3, 3]}, None, "grid.llm.memory_turns[1]: duplicate of"),
    ({"llm.memory_turns": []}, None, "grid.llm.memory_turns: expected a non-empty list"),
    ({"llm.memory_turns": [0, 3]}, {"memory_turns": 2},
     "grid.llm.memory_turns: also given as llm.memory_turns"),
    ({"lineup": ["llm"]}, {"memory_turns": [0, 3]},
     "llm.memory_turns: expected one integer in [0,1000]; to vary it, give the list as "
     "grid.\"llm.memory_turns\""),
])
def test_bad_memory_values_are_refused_before_any_game(server, tmp_path, monkeypatch, grid,
                                                       llm, message):
    monkeypatch.setenv(KEY_ENV, KEY)
    g = dict(grid)
    g.setdefault("lineup", ["llm"])
    spec = write_spec(tmp_path, server, "bad", g, llm=llm)
    for cmd in (["expand", spec], ["run", spec, "-o", tmp_path / "bad.h5"]):
        p = bazaar(*cmd, check=False)
        assert p.returncode == 2, p.stderr
        assert f"{spec}: {message}" in p.stderr, p.stderr
    assert not (tmp_path / "bad.h5").exists()
    assert not (tmp_path / "cache_bad").exists()


def estimate(spec):
    out = bazaar("expand", spec).stdout
    total = re.search(r"^  input (\d+) tokens \((\d+) of them cached\), output (\d+) tokens, "
                      r"\$([0-9.]+)$", out, re.M)
    assert total, out
    levels = {int(m.group(1)): (int(m.group(2)), int(m.group(3)), float(m.group(4)))
              for m in re.finditer(r"^  memory_turns (\d+) \(\d+ games\): input (\d+) tokens "
                                   r"\((\d+) of them cached\), output \d+ tokens, \$([0-9.]+)$",
                                   out, re.M)}
    assert "assumes:" in out and "price_cached_in_per_mtok" in out
    return {"in": int(total.group(1)), "cached": int(total.group(2)),
            "out": int(total.group(3)), "cost": float(total.group(4)), "levels": levels,
            "text": out}


def test_expand_estimates_memory_and_prompt_caching(server, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    grid = {"llm.memory_turns": [0, 3], "lineup": ["llm"]}
    prompts = stable_prompts(tmp_path)
    plain = estimate(write_spec(tmp_path, server, "est", grid, turns=6, prompts=prompts))
    cached = estimate(write_spec(tmp_path, server, "est_c", grid, turns=6, prompts=prompts,
                                 models=registry(tmp_path, server, cached_price=0.1)))
    # per memory level, on the same games: memory 3 sends more input, and
    # more of it repeats (the history grows while it is under 3 turns)
    lv = plain["levels"]
    assert set(lv) == {0, 3}, plain["text"]
    assert lv[3][0] > 1.5 * lv[0][0], plain["text"]
    assert lv[0][1] > 0 and lv[3][1] > lv[0][1], plain["text"]
    # tokens do not depend on prices; cached tokens are counted either way
    assert (plain["in"], plain["cached"], plain["out"]) == \
        (cached["in"], cached["cached"], cached["out"])
    assert 0 < cached["cached"] < cached["in"]
    # where the registry prices cached input lower, the estimate drops
    assert cached["cost"] < plain["cost"]
    assert cached["levels"][3][2] < plain["levels"][3][2]
    # the shipped electricity prompts change the system prompt every hour:
    # nothing repeats, nothing is cached, and the estimate says so
    shipped = estimate(write_spec(tmp_path, server, "est_s", grid, turns=6,
                                  models=registry(tmp_path, server, cached_price=0.1)))
    assert shipped["cached"] == 0 and shipped["in"] > 0
    # the first line keeps its form: total tokens and cost
    m = re.search(r"LLM estimate: about (\d+) tokens, \$([0-9.]+)", cached["text"])
    assert int(m.group(1)) == cached["in"] + cached["out"]
