"""End-to-end item_allocation and treaty through `bazaar run` / `bazaar play`:
infeasible targets refused before start (exit 2 naming the key), every table
written, values summing to 100, utilities recomputed from the tables matching
/agents, identical tables on 1 and 3 ranks, communication off leaving no
message row, an LLM game of each against tests/llm_server.py played to the
end through the prompts of prompts/<game>/, and LLM games of each against its
play mode that reach agreements LLM replies made (an LLM proposal or accept),
with LLM counter-proposals, accepts and rejects, talk, and bad replies
repaired or replaced by the fallback, with `bazaar play` too, and whose rerun
on 3 ranks and --replay on 2 give the same tables."""
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from conftest import (ROOT, assert_same_rows, assert_same_tables, bazaar, control,
                      run_rerun_and_replay, srv_models, strs, table, write_models, write_spec)

GAMES = {
    "item_allocation": {"competition": [0.25, 1.0]},
    "treaty": {"rho": [0.0, 0.75]},
}


def spec_of(game, **fixed):
    lineup = ["heuristic:fair?skill=0.8", "heuristic:greedy?skill=0.9",
              "heuristic:reciprocal?skill=0.7", "heuristic:zi"]
    return {
        "name": f"e2e_{game}", "game": game, "seed": 5, "repetitions": 3,
        "fixed": {"n_agents": 4, "max_rounds": 4, "discussion_turns": 1, **fixed},
        "grid": {**GAMES[game], "communication": [True, False],
                 "threshold": ["two_thirds", "unanimity"], "lineup": ["mix", "greedy"]},
        "lineups": {"mix": lineup, "greedy": ["heuristic:greedy?skill=0.6"] * 4},
    }


def df(f, name):
    return f[name][()]


@pytest.mark.parametrize("game,key,value,fixed", [
    ("item_allocation", "competition", 0.0, {"n_items": 3}),
    ("treaty", "rho", -0.9, {}),
    ("treaty", "theta", 0.0, {"n_issues": 2}),
    ("item_allocation", "threshold", ["two_thirds", "most"], {}),
])
def test_infeasible_target_is_refused_before_start(tmp_path, game, key, value, fixed):
    s = spec_of(game, **fixed)
    s["grid"].pop(next(iter(GAMES[game])))
    s["grid"].pop(key, None)
    if isinstance(value, list):  # a bad value in a grid list, not its first entry
        s["grid"][key] = value
    else:
        s["fixed"][key] = value
    spec = write_spec(tmp_path, s)
    out = str(tmp_path / "out.h5")
    p = bazaar("run", spec, "-o", out, check=False)
    assert p.returncode == 2, p.stderr
    assert key in p.stderr
    assert (" is infeasible" in p.stderr) == (key != "threshold")
    assert not os.path.exists(out) and not os.path.exists(out + ".parts")


@pytest.mark.parametrize("game", list(GAMES))
def test_tables_are_consistent_and_rank_independent(tmp_path, game):
    spec = write_spec(tmp_path, spec_of(game))
    one, three = str(tmp_path / "one.h5"), str(tmp_path / "three.h5")
    bazaar("run", spec, "-o", one, "--quiet")
    bazaar("run", spec, "-o", three, "--quiet", ranks=3)
    assert_same_tables(one, three)
    with h5py.File(one, "r") as f:
        games, agents = df(f, "games"), df(f, "agents")
        cfg, summ = df(f, f"{game}/config"), df(f, f"{game}/summary")
        ao, props = df(f, f"{game}/agent_outcomes"), df(f, f"{game}/proposals")
        rounds, votes = df(f, f"{game}/rounds"), df(f, f"{game}/votes")
        env = df(f, "item_allocation/values" if game == "item_allocation" else "treaty/preferences")
        msgs = df(f, "messages") if "messages" in f else np.zeros(0, dtype=[("game_id", "i8")])
    assert len(games) == 48 and set(games["status"]) == {b"ok"}
    assert len(cfg) == len(summ) == 48 and len(ao) == len(agents) == 48 * 4
    comm = dict(zip(cfg["game_id"], cfg["communication"]))
    gamma = dict(zip(cfg["game_id"], cfg["gamma"]))
    # no message rows from games with communication off; some from the others
    msg_games = set(msgs["game_id"].tolist())
    assert msg_games and all(comm[g] for g in msg_games)
    if game == "item_allocation":  # the recorded NBS against brute force (4^10 allocations)
        m = int(env["item"].max()) + 1
        digits = (np.arange(4 ** m)[:, None] // 4 ** np.arange(m)[None, :]) % 4
        for gid in games["game_id"][:: 12]:
            e = env[env["game_id"] == gid]
            vals = np.array([e["value"][e["agent"] == a][np.argsort(e["item"][e["agent"] == a])]
                             for a in range(4)], dtype=float)
            prod = np.ones(len(digits))
            for a in range(4):
                prod *= ((digits == a) * vals[a]).sum(axis=1)
            s = summ[summ["game_id"] == gid][0]
            assert s["nbs_exact"] == 1
            assert abs(s["nbs_product"] - prod.max()) <= 1e-9 * prod.max()
            u_nbs = ao[ao["game_id"] == gid]["nbs_utility"]
            assert abs(np.prod(u_nbs) - prod.max()) <= 1e-9 * prod.max()
            assert s["max_welfare"] == vals.max(axis=0).sum()
    for gid in games["game_id"]:
        s = summ[summ["game_id"] == gid][0]
        e = env[env["game_id"] == gid]
        if game == "item_allocation":
            for a in range(4):
                assert e[e["agent"] == a]["value"].sum() == 100
            c = cfg[cfg["game_id"] == gid][0]
            assert abs(c["achieved_cosine"] - c["competition"]) <= 0.02
        r = rounds[rounds["game_id"] == gid]
        assert list(r["round"]) == list(range(1, len(r) + 1))
        agreed = r[r["agreement"] == 1]
        assert len(agreed) <= 1 and (len(agreed) == 0 or agreed["round"][0] == len(r))
        pay = agents[agents["game_id"] == gid]["payoff"]
        if not len(agreed):
            assert s["agreement"] == 0 and s["agreement_round"] == -1
            assert (pay == 0).all()
            continue
        rnd, prop = int(agreed["round"][0]), int(agreed["accepted_proposer"][0])
        assert s["agreement_round"] == rnd and s["accepted_proposer"] == prop
        v = votes[(votes["game_id"] == gid) & (votes["round"] == rnd) & (votes["proposer"] == prop)]
        assert 1 + v["accept"].sum() == agreed["n_accepts"][0] or \
            1 + v["accept"].sum() >= agreed["threshold"][0]
        p = props[(props["game_id"] == gid) & (props["round"] == rnd) & (props["proposer"] == prop)]
        for a in range(4):
            ea = e[e["agent"] == a]
            if game == "item_allocation":
                u = sum(ea["value"][ea["item"] == it][0] for it in p["item"][p["receiver"] == a])
            else:
                u = sum(100 * ea["weight"][k] * (1 - abs(p["value"][p["issue"] == ea["issue"][k]][0]
                                                        - ea["position"][k]))
                        for k in range(len(ea)))
            want = u * gamma[gid] ** (rnd - 1)
            assert abs(pay[a] - want) < 1e-6
            row = ao[(ao["game_id"] == gid) & (ao["agent"] == a)][0]
            assert abs(row["utility"] - u) < 1e-6 and abs(row["payoff"] - want) < 1e-6
            assert abs(row["utility_share"] - want / pay.sum()) < 1e-9


@pytest.mark.parametrize("game", list(GAMES))
def test_play(game):
    p = bazaar("play", game, "--agents", "fair,greedy,reciprocal?skill=0.5,zi", "--rounds", "3")
    assert f"== {game}: 4 agents" in p.stdout and "== end after round" in p.stdout


@pytest.mark.parametrize("game", list(GAMES))
def test_llm_game_plays_to_the_end(server, tmp_path, monkeypatch, game):
    """The local server answers every schema with its minimal values (item 0
    to agent 0, outcomes 0, reject all, text "ok"): valid replies, no
    agreement unless the heuristics carry it; what is checked is that every
    phase's prompt renders and the replies pass schema and rules."""
    monkeypatch.setenv("BZ_E2E_NEGO_KEY", "sk-nego-e2e")
    models = write_models(tmp_path, srv_models(server, "BZ_E2E_NEGO_KEY"))
    s = {"name": f"llm_{game}", "game": game, "seed": 1, "repetitions": 1,
         "fixed": {"n_agents": 3, "max_rounds": 2, "discussion_turns": 1, "lineup": "mixed"},
         "grid": {"communication": [True, False]},
         "lineups": {"mixed": ["srv", "heuristic:fair", "srv"]},
         "models": models,
         "prompts": os.path.join(ROOT, "prompts", game),
         "llm": {"live_games": 2, "concurrency": 2, "timeout_s": 5, "max_retries": 1}}
    spec = write_spec(tmp_path, s)
    out = str(tmp_path / "llm.h5")
    bazaar("run", spec, "-o", out, "--quiet", timeout=300)
    with h5py.File(out, "r") as f:
        games, calls = f["games"][()], f["llm_calls"][()]
        msgs = f["messages"][()] if "messages" in f else None
    assert set(games["status"]) == {b"ok"}
    assert (games["n_fallback"] == 0).all() and (games["n_invalid"] == 0).all()
    assert set(calls["parse_outcome"]) == {b"ok"}
    phases = set(calls["phase"])
    assert {b"discuss", b"think", b"propose", b"vote", b"reflect"} <= phases
    # replies' text travels with communication on only (game 0 or 1)
    comm_games = set(games["game_id"][games["communication"] == 1].tolist())
    assert msgs is not None and set(msgs["game_id"].tolist()) <= comm_games
    assert set(msgs["visibility"]) == {b"public", b"private"}


@pytest.mark.parametrize("name,game,rows", [
    ("item_allocation", "item_allocation", None),
    ("treaty", "treaty", None),
    ("capability_competition", "item_allocation", "competition"),
    ("capability_competition_treaty", "treaty", "rho"),
])
def test_shipped_sweeps_run_and_draw(tmp_path, name, game, rows):
    spec = os.path.join(ROOT, "sweeps", f"{name}.json")
    out = str(tmp_path / f"{name}.h5")
    bazaar("run", spec, "-o", out, "--quiet")
    with h5py.File(out, "r") as f:
        games = f["games"][()]
    assert len(games) >= 400 and set(games["status"]) == {b"ok"} and set(games["game"]) == {
        game.encode()}
    if rows:
        png = str(tmp_path / "heat.png")
        p = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "analysis", "heatmap.py"), out,
                            "-o", png], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        assert os.path.getsize(png) > 0 and "400 games" in p.stdout
        sys.path.insert(0, os.path.join(ROOT, "analysis"))
        import bazaar_results
        assert bazaar_results.load(out).competition_axis(game) == rows


LLM_SEATS = (0, 2)


@pytest.mark.parametrize("game", list(GAMES))
def test_llm_players_negotiate_against_a_playing_server(server, tmp_path, monkeypatch, game):
    """The server in play mode (tests/llm_server.py): the LLM seats (0 over
    the OpenAI API, 2 over Anthropic's) propose divisions/treaties of their
    own and counter-proposals, accept and reject, talk, and sometimes reply
    off-schema (repaired, or replaced by the fallback). The games reach
    agreements that LLM replies made."""
    monkeypatch.setenv("BZ_E2E_NEGO_KEY", "sk-nego-e2e")
    models = write_models(tmp_path, srv_models(server, "BZ_E2E_NEGO_KEY", anthropic=True))
    s = {"name": f"play_{game}", "game": game, "seed": 3, "repetitions": 2,
         "fixed": {"n_agents": 4, "max_rounds": 4, "discussion_turns": 1, "lineup": "mixed",
                   # contested: similar values, opposed positions (games last rounds)
                   **({"competition": 0.9} if game == "item_allocation" else {"rho": -0.2})},
         "grid": {"communication": [True, False], "threshold": ["two_thirds", "unanimity"]},
         "lineups": {"mixed": ["srv", "heuristic:fair?skill=0.8", "srv-a",
                               "heuristic:greedy?skill=0.8"]},
         "models": models,
         "prompts": os.path.join(ROOT, "prompts", game),
         "llm": {"live_games": 4, "concurrency": 4, "timeout_s": 5, "max_retries": 1,
                 "cache": "", "reasoning": game == "treaty"}}
    spec = write_spec(tmp_path, s)
    out = str(tmp_path / "play.h5")
    control(server, "/config", {"play": {"seed": 7, "bad_rate": 0.3}})
    try:
        bazaar("run", spec, "-o", out, "--quiet", timeout=300)
    finally:
        control(server, "/config", {"play": None})
    with h5py.File(out, "r") as f:
        games, calls = f["games"][()], f["llm_calls"][()]
        summ, props = f[f"{game}/summary"][()], f[f"{game}/proposals"][()]
        votes = f[f"{game}/votes"][()]
        msgs = f["messages"][()]
    assert len(games) == 8 and set(strs(games["status"])) == {"ok"}
    # which LLM decisions were the model's own (not the fallback)
    own = {(int(c["game_id"]), int(c["turn"]), int(c["agent"]), c["phase"].decode())
           for c in calls if c["decision"] in (b"ok", b"repaired")}
    # bad replies: off-schema ones named, repaired or replaced by the fallback
    outcomes, decisions = set(strs(calls["parse_outcome"])), set(strs(calls["decision"]))
    assert {"ok", "schema", "repaired"} <= outcomes | decisions
    assert "fallback" in decisions and games["n_fallback"].sum() > 0
    # with reasoning on (treaty), the replies' reasons are stored, not parsed
    reasons = {r for r, d in zip(strs(calls["reasoning"]), calls["decision"])
               if d in (b"ok", b"repaired")}
    assert (len(reasons) > 3) == (game == "treaty") and (game == "treaty" or reasons <= {""})

    def proposal(gid, rnd, p):
        r = props[(props["game_id"] == gid) & (props["round"] == rnd) & (props["proposer"] == p)]
        key = "receiver" if game == "item_allocation" else "value"
        return r[np.argsort(r["item" if game == "item_allocation" else "issue"])][key]

    # an agreement an LLM reply made: its proposal, or its accept, carried it
    made = 0
    for s_ in summ[summ["agreement"] == 1]:
        gid, rnd, win = int(s_["game_id"]), int(s_["agreement_round"]), int(s_["accepted_proposer"])
        if win in LLM_SEATS and (gid, rnd, win, "propose") in own:
            made += 1
            continue
        v = votes[(votes["game_id"] == gid) & (votes["round"] == rnd) & (votes["proposer"] == win)
                  & (votes["accept"] == 1)]
        made += any(int(x) in LLM_SEATS and (gid, rnd, int(x), "vote") in own for x in v["voter"])
    assert made > 0, "no agreement came from an LLM proposal or accept"
    # the LLM seats' own votes accept some proposals and reject others
    mine = [int(v["accept"]) for v in votes if int(v["voter"]) in LLM_SEATS
            and (int(v["game_id"]), int(v["round"]), int(v["voter"]), "vote") in own]
    assert 0 in mine and 1 in mine
    # counter-proposals: an LLM proposal that takes another agent's proposal
    # of the round before and changes part of it in its own favour
    counters = 0
    for gid in games["game_id"]:
        for rnd in range(2, int(props[props["game_id"] == gid]["round"].max()) + 1):
            for a in LLM_SEATS:
                if (int(gid), rnd, a, "propose") not in own:
                    continue
                x = proposal(gid, rnd, a)
                for q in range(4):
                    if q == a:
                        continue
                    y = proposal(gid, rnd - 1, q)
                    if game == "item_allocation":
                        diff = np.flatnonzero(x != y)
                        counters += 1 <= len(diff) <= 2 and (x[diff] == a).all()
                    else:
                        same = np.abs(x - y) < 1e-4
                        counters += 0 < (~same).sum() <= (len(x) + 1) // 2
    assert counters > 0, "no LLM counter-proposal"
    # LLM seats talk, in their own words, with communication on only
    comm = set(games["game_id"][games["communication"] == 1].tolist())
    said = [(int(g), t) for g, s_, t in zip(msgs["game_id"], msgs["sender"], strs(msgs["text"]))
            if int(s_) in LLM_SEATS]
    assert said and {g for g, _ in said} <= comm
    assert len({t for _, t in said}) >= 5 and "ok" not in {t for _, t in said}


def test_play_mode_is_seeded_and_reads_the_prompt_a_repair_answers(server):
    """Same request and seed, same answer; the answer is a valid division of
    the items in the prompt, also when the last message is a repair prompt."""
    import urllib.request
    system = ("You are agent 1, one of 3 agents negotiating how to divide 4 indivisible items "
              "(numbered from 0).")
    prompt = ("Round 2 of 4 (a deal this round pays 0.9 x its utility; 2 rounds left after this "
              "one). Phase: proposal.\n\nYour private values of the items (item 0 first): "
              "[5,60,30,5]\nRound 1, proposal of agent 0: allocation [0,0,2,1]; your utility 5; "
              "accepted by 1 agents.\n")
    schema = {"type": "object", "additionalProperties": False, "required": ["allocation"],
              "properties": {"allocation": {"type": "array", "minItems": 4, "maxItems": 4,
                                            "items": {"type": "integer", "minimum": 0,
                                                      "maximum": 2}}}}

    def ask(messages):
        body = {"model": "m", "messages": [{"role": "system", "content": system}] + messages,
                "response_format": {"type": "json_schema",
                                    "json_schema": {"name": "a", "schema": schema}}}
        req = urllib.request.Request(f"http://127.0.0.1:{server}/v1/chat/completions",
                                     data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(json.loads(r.read())["choices"][0]["message"]["content"])

    try:
        answers = []
        for seed in (5, 6, 5):  # a new seed starts the sampling afresh
            control(server, "/config", {"play": {"seed": seed, "bad_rate": 0.0}})
            answers.append([ask([{"role": "user", "content": prompt}]) for _ in range(6)])
        assert answers[0] == answers[2]
        assert len({json.dumps(a) for a in answers[0]}) > 1  # it samples
        repair = [{"role": "user", "content": prompt},
                  {"role": "assistant", "content": '{"allocation": 7}'},
                  {"role": "user", "content": "Your reply could not be used: allocation: expected "
                                              "an array. Reply again with only a JSON object."}]
        for a in answers[0] + [ask(repair) for _ in range(6)]:
            alloc = a["allocation"]
            assert len(alloc) == 4 and set(alloc) <= {0, 1, 2}
            assert alloc[1] == 1  # item 1, worth 60 to agent 1, is always kept
    finally:
        control(server, "/config", {"play": None})


@pytest.mark.parametrize("game", list(GAMES))
def test_play_with_llm_agents_against_a_playing_server(server, tmp_path, monkeypatch, game):
    """`bazaar play GAME --agents srv,fair,srv,greedy --models FILE`: the LLM
    seats talk and propose in the transcript, and the records are written."""
    monkeypatch.setenv("BZ_E2E_NEGO_KEY", "sk-nego-e2e")
    models = write_models(tmp_path, srv_models(server, "BZ_E2E_NEGO_KEY"))
    out = str(tmp_path / "play.h5")
    control(server, "/config", {"play": {"seed": 4, "bad_rate": 0.2}})
    try:
        p = bazaar("play", game, "--agents", "srv,fair,srv,greedy", "--models", models,
                   "--rounds", "3", "-o", out)
    finally:
        control(server, "/config", {"play": None})
    assert "== end after round" in p.stdout
    said = [ln for ln in p.stdout.splitlines() if ln.startswith(("round 1: a0 says:",
                                                                 "round 1: a2 says:"))]
    assert said and not any(ln.endswith(" ok") for ln in said)
    with h5py.File(out, "r") as f:
        calls = f["llm_calls"][()]
        assert set(strs(f["games"]["status"])) == {"ok"}
    assert set(calls["agent"].tolist()) == {0, 2}
    assert {"discuss", "think", "propose", "vote", "reflect"} <= set(strs(calls["phase"]))


@pytest.mark.parametrize("game", list(GAMES))
def test_llm_games_rerun_and_replay_bit_for_bit_on_other_ranks(server, tmp_path, monkeypatch,
                                                               game):
    """Against the playing server (answers sampled at random), a rerun on 3
    ranks and a --replay on 2 make no request and give the same tables: the
    games' LLM path depends on the replies only, not on their timing."""
    monkeypatch.setenv("BZ_E2E_NEGO_KEY", "sk-nego-e2e")
    models = write_models(tmp_path, srv_models(server, "BZ_E2E_NEGO_KEY", anthropic=True))
    # two lineups differing in the heuristic's skill: identical requests
    # across games share a cache key
    s = {"name": f"replay_{game}", "game": game, "seed": 4, "repetitions": 2,
         "fixed": {"n_agents": 4, "max_rounds": 3, "discussion_turns": 1},
         "grid": {"communication": [True, False], "lineup": ["a", "b"]},
         "lineups": {"a": ["srv", "heuristic:fair", "srv-a", "srv"],
                     "b": ["srv", "heuristic:fair?skill=0.5", "srv-a", "srv"]},
         "models": models,
         "prompts": os.path.join(ROOT, "prompts", game),
         "llm": {"live_games": 4, "concurrency": 8, "timeout_s": 10, "max_retries": 1,
                 "cache": str(tmp_path / "cache")}}
    spec = write_spec(tmp_path, s)
    first, again, rep = run_rerun_and_replay(server, spec, tmp_path, seed=31)
    names = ["games", "agents", "messages"] + [f"{game}/{t}" for t in
                                               ("proposals", "votes", "rounds", "summary")]
    assert table(first, "games")["n_fallback"].sum() > 0
    for other in (again, rep):
        assert_same_rows(first, other, names)
        # /llm_calls in the same order too, but for what a replay cannot share
        assert_same_rows(first, other, ["llm_calls"],
                         skip=("latency_ms", "retries", "cache_hit", "error"))
