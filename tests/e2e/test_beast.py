"""End-to-end beast: `bazaar play beast`, a sweep whose file passes the issue's
checks (wealth conserved per round, no transfer beyond the payer's wealth,
eliminated players never act, one elimination per round, declared and actual
votes of every active player, paired environments), identical tables on 1 and
3 ranks, an LLM game against tests/llm_server.py that plays to the end, and
LLM games against its play mode in which the LLM seats bargain (offers,
accepts, counter-offers, transfers), promise, declare and vote, and their bad
replies are repaired or replaced by the fallback, with `bazaar play` too, and
whose rerun on 3 ranks and --replay on 2 give the same tables."""
import json
import os
from collections import defaultdict

import h5py
import numpy as np

from conftest import (ROOT, assert_same_rows, assert_same_tables, bazaar, control,
                      run_rerun_and_replay, srv_models, strs, table, write_models, write_spec)

KEY_ENV = "BZ_E2E_LLM_KEY"


def beast_spec(reps=2):
    spec = json.load(open(os.path.join(ROOT, "sweeps", "beast.json")))
    spec["repetitions"] = reps
    spec["grid"]["lineup"] = ["gap_0.0", "gap_0.9"]
    spec.pop("output", None)
    return spec


def check_file(path):
    with h5py.File(path, "r") as f:
        games = f["games"][()]
        cfg = f["beast/config"][()]
        wealth = f["beast/wealth"][()]
        transfers = f["beast/transfers"][()]
        votes = f["beast/votes"][()]
        msgs = f["beast/messages"][()]
        agents = f["beast/agents"][()]
        payoffs = f["agents"][()]
        text = f["messages"][()] if "messages" in f else None
    assert set(strs(games["status"])) == {"ok"}
    for g, c in zip(games, cfg):
        gid = g["game_id"]
        assert c["game_id"] == gid
        n, elims = int(c["n_agents"]), int(c["eliminations"])
        rounds = min(elims, int(c["max_rounds"]))
        assert g["turns_played"] == rounds
        w = wealth[wealth["game_id"] == gid]
        t = transfers[transfers["game_id"] == gid]
        v = votes[votes["game_id"] == gid]
        m = msgs[msgs["game_id"] == gid]
        active = np.ones(n, bool)
        cur = w[w["round"] == 0]["wealth_start"].astype(np.int64)
        n_elim = 0
        for r in range(rounds):
            wr = w[w["round"] == r]
            assert list(wr["agent"]) == list(range(n))
            assert (wr["wealth_start"] == cur).all()
            # replay the round's accepted offers in the order they were made
            for x in m[m["round"] == r]:
                assert active[x["sender"]] and active[x["receiver"]]  # eliminated never act
                if not x["accept"]:
                    continue
                acc = t[(t["conversation"] == x["conversation"]) & (t["message"] == x["index"] - 1)]
                assert len(acc) == 1 and acc["accepted"][0] == 1
                payer, payee, amount = acc["payer"][0], acc["payee"][0], acc["amount"][0]
                if acc["executed"][0]:
                    assert amount <= cur[payer]  # no transfer beyond the payer's wealth
                    cur[payer] -= amount
                    cur[payee] += amount
                else:
                    assert strs(acc["why_not"]) == ["cannot afford"] and amount > cur[payer]
            vr = v[v["round"] == r]
            assert sorted(vr["voter"]) == list(np.flatnonzero(active))  # every active voter
            assert len(set(vr["eliminated"])) == 1  # exactly one elimination
            e = int(vr["eliminated"][0])
            assert active[e]
            assert all(d == -1 or active[d] for d in vr["declared_vote"])
            assert all(active[x] and x != y for x, y in zip(vr["vote"], vr["voter"]))
            bonus = np.zeros(n, np.int64)
            if n_elim < int(c["bonus_slots"]):
                bonus[e] = int(c["bonus"])
            assert (wr["bonus"] == bonus).all()
            # conserved: the sum of changes is the bonus paid
            assert (wr["wealth_end"] - wr["wealth_start"]).sum() == bonus.sum()
            assert (wr["wealth_end"] == cur + bonus).all()
            cur = cur + bonus
            active[e] = False
            n_elim += 1
            assert (wr["active"] == active).all()
        a = agents[agents["game_id"] == gid]
        p = payoffs[payoffs["game_id"] == gid]
        assert (a["final_wealth"] == cur).all() and (p["payoff"] == cur).all()
        assert all(a["rank"] == [1 + (cur > x).sum() for x in cur])
        if text is not None:
            tx = text[text["game_id"] == gid]
            if g["communication"]:
                assert (tx["round"] >= 0).all() and (tx["conversation"] >= 0).all()
                assert set(strs(tx["phase"])) <= {"message"}
            else:
                assert len(tx) == 0


def test_play_beast(tmp_path):
    out = str(tmp_path / "play.h5")
    p = bazaar("play", "beast", "--agents", "loyal,mercenary,zi,bully,loyal,mercenary",
               "--seed", "4", "-o", out)
    assert "eliminated: a" in p.stdout
    check_file(out)
    q = bazaar("play", "beast", "--agents", "loyal,bully?skill=0.5,zi", "--set", "eliminations=2",
               "--communication", "off", "--quiet", "-o", str(tmp_path / "off.h5"))
    assert q.returncode == 0
    check_file(str(tmp_path / "off.h5"))


def test_sweep_file_passes_the_checks_and_pairs_environments(tmp_path):
    spec = write_spec(tmp_path, beast_spec(reps=3))
    out = str(tmp_path / "sweep.h5")
    bazaar("run", spec, "-o", out, "--quiet")
    check_file(out)
    with h5py.File(out, "r") as f:
        games = f["games"][()]
        w = f["beast/wealth"][()]
    assert len(games) == 3 * 2 * 2
    by_env = defaultdict(list)
    for g in games:
        by_env[int(g["env_seed"])].append(int(g["game_id"]))
    assert len(by_env) == 3  # communication and lineup leave the environment alone
    for ids in by_env.values():
        starts = [tuple(w[(w["game_id"] == i) & (w["round"] == 0)]["wealth_start"]) for i in ids]
        assert len(set(starts)) == 1


def test_one_and_three_ranks_give_the_same_tables(tmp_path):
    spec = write_spec(tmp_path, beast_spec(reps=2))
    one, many = str(tmp_path / "one.h5"), str(tmp_path / "many.h5")
    bazaar("run", spec, "-o", one, "--quiet")
    bazaar("run", spec, "-o", many, "--quiet", ranks=3)
    assert_same_tables(one, many)
    again = str(tmp_path / "again.h5")
    bazaar("run", spec, "-o", again, "--quiet")
    assert_same_tables(one, again)


def test_llm_game_plays_to_the_end(server, tmp_path, monkeypatch):
    """The test server answers minimal schema values (no partners, empty
    offers, "ok" as text, declared -1, a vote for player 0): the game must play
    to the end through prompts, replies, repairs and fallbacks."""
    monkeypatch.setenv(KEY_ENV, "sk-beast-test")
    models = write_models(tmp_path, srv_models(server, KEY_ENV))
    spec = {
        "name": "beast_llm", "game": "beast", "seed": 5, "repetitions": 1,
        "fixed": {"n_agents": 6, "eliminations": 3, "lineup": "mixed"},
        "grid": {"communication": [True, False]},
        "lineups": {"mixed": ["heuristic:loyal", "srv", "srv", "heuristic:mercenary",
                              "heuristic:bully", "heuristic:zi"]},
        "models": models,
        "prompts": os.path.join(ROOT, "prompts", "beast"),
        "llm": {"live_games": 2, "concurrency": 4, "timeout_s": 5, "max_retries": 2,
                "cache": str(tmp_path / "cache")},
    }
    path = write_spec(tmp_path, spec)
    out = str(tmp_path / "llm.h5")
    bazaar("run", path, "-o", out, "--quiet", timeout=300)
    check_file(out)
    with h5py.File(out, "r") as f:
        games = f["games"][()]
        calls = f["llm_calls"][()]
        votes = f["beast/votes"][()]
        text = f["messages"][()] if "messages" in f else np.zeros(0)
    assert len(games) == 2 and (games["llm_calls"] > 0).all()
    assert set(strs(calls["phase"])) == {"partners", "message", "declare", "vote"}
    assert {"ok", "fallback"} <= set(strs(calls["decision"]))  # vote for 0: repaired, then fallback
    # the LLM seats' declarations (-1) and votes are recorded every round they play
    llm_votes = votes[np.isin(votes["voter"], [1, 2])]
    assert len(llm_votes) > 0 and (llm_votes["declared_vote"] == -1).all()
    # heuristic seats open conversations with LLM seats, which answer "ok"
    if len(text):
        sent = [t for s, t in zip(text["sender"], strs(text["text"])) if s in (1, 2)]
        assert all(t == "ok" for t in sent)


def test_llm_players_bargain_and_vote_against_a_playing_server(server, tmp_path, monkeypatch):
    """The server in play mode (tests/llm_server.py): the LLM seats (1 over
    the OpenAI API, 2 over Anthropic's) choose partners, make, accept and
    counter offers within the payer's wealth, promise, declare and vote, and
    sometimes reply off-schema or against the rules (repaired, or replaced by
    the fallback). The file passes every check of check_file."""
    monkeypatch.setenv(KEY_ENV, "sk-beast-test")
    llm = (1, 2)
    models = write_models(tmp_path, srv_models(server, KEY_ENV, anthropic=True))
    spec = {
        "name": "beast_play", "game": "beast", "seed": 5, "repetitions": 2,
        "fixed": {"n_agents": 6, "eliminations": 3, "lineup": "mixed"},
        "grid": {"communication": [True, False]},
        "lineups": {"mixed": ["heuristic:loyal", "srv", "srv-a", "heuristic:mercenary",
                              "heuristic:bully", "heuristic:zi"]},
        "models": models,
        "prompts": os.path.join(ROOT, "prompts", "beast"),
        "llm": {"live_games": 4, "concurrency": 4, "timeout_s": 5, "max_retries": 1, "cache": ""},
    }
    path = write_spec(tmp_path, spec)
    out = str(tmp_path / "play.h5")
    control(server, "/config", {"play": {"seed": 3, "bad_rate": 0.3}})
    try:
        bazaar("run", path, "-o", out, "--quiet", timeout=300)
    finally:
        control(server, "/config", {"play": None})
    check_file(out)  # wealth conserved, no transfer beyond the payer's wealth, ...
    with h5py.File(out, "r") as f:
        games, calls = f["games"][()], f["llm_calls"][()]
        votes, msgs = f["beast/votes"][()], f["beast/messages"][()]
        transfers = f["beast/transfers"][()]
        text = f["messages"][()]
    assert len(games) == 4
    outcomes, decisions = set(strs(calls["parse_outcome"])), set(strs(calls["decision"]))
    assert {"ok", "schema", "inadmissible", "repaired"} <= outcomes | decisions
    assert "fallback" in decisions and games["n_fallback"].sum() > 0
    assert set(strs(calls["phase"])) == {"partners", "message", "declare", "vote"}
    # the LLM seats' own messages (not the fallback's blank one)
    mine = msgs[np.isin(msgs["sender"], llm) & (msgs["fallback"] == 0)]
    offers = set(strs(mine["offer"]))
    assert {"give", "ask"} <= offers and mine["accept"].any()

    def sender_of(t, index):
        m = msgs[(msgs["game_id"] == t["game_id"]) & (msgs["conversation"] == t["conversation"])
                 & (msgs["index"] == index)]
        return int(m["sender"][0]), int(m["fallback"][0])

    # transfers an LLM seat made happen: its offer accepted, or it accepted
    made = 0
    for t in transfers[transfers["executed"] == 1]:
        offerer, _ = sender_of(t, t["message"])
        accepter, fb = sender_of(t, t["message"] + 1)
        made += offerer in llm or (accepter in llm and not fb)
    assert made > 0, "no transfer from an LLM offer or accept"
    # counter-offers: an LLM seat answers its partner's open offer with one
    # of its own
    counters = 0
    for m in mine:
        if m["index"] == 0 or m["offer"] == b"none":
            continue
        prev = msgs[(msgs["game_id"] == m["game_id"]) & (msgs["conversation"] ==
                                                         m["conversation"])
                    & (msgs["index"] == m["index"] - 1)]
        counters += prev["offer"][0] != b"none"
    assert counters > 0, "no LLM counter-offer"
    # votes and declarations: the LLM seats name players (a fallback declares
    # nothing), and vote in every round they are active
    lv = votes[np.isin(votes["voter"], llm)]
    assert len(lv) > 0 and (lv["declared_vote"] >= 0).any()
    voted = {(int(c["game_id"]), int(c["turn"]), int(c["agent"])) for c in calls
             if c["phase"] == b"vote" and c["decision"] in (b"ok", b"repaired")}
    assert voted and voted <= {(int(v["game_id"]), int(v["round"]), int(v["voter"])) for v in lv}
    # promises and text with communication on only
    comm = set(games["game_id"][games["communication"] == 1].tolist())
    said = [(int(g), t) for g, s, t in zip(text["game_id"], text["sender"], strs(text["text"]))
            if int(s) in llm]
    assert said and {g for g, _ in said} <= comm and len({t for _, t in said}) >= 5
    assert (mine[np.isin(mine["game_id"], list(comm))]["vote_promise"] >= 0).any()


def test_play_with_llm_agents_against_a_playing_server(server, tmp_path, monkeypatch):
    """`bazaar play beast --agents loyal,srv,bully,srv,zi --models FILE`: the
    LLM seats bargain and vote in the transcript's game, whose records pass
    check_file."""
    monkeypatch.setenv(KEY_ENV, "sk-beast-test")
    models = write_models(tmp_path, srv_models(server, KEY_ENV))
    out = str(tmp_path / "play.h5")
    control(server, "/config", {"play": {"seed": 8, "bad_rate": 0.2}})
    try:
        p = bazaar("play", "beast", "--agents", "loyal,srv,bully,srv,zi", "--models", models,
                   "--set", "eliminations=2", "-o", out)
    finally:
        control(server, "/config", {"play": None})
    assert "eliminated: a" in p.stdout
    check_file(out)
    with h5py.File(out, "r") as f:
        msgs, calls = f["beast/messages"][()], f["llm_calls"][()]
    assert set(calls["agent"].tolist()) == {1, 3}
    mine = msgs[np.isin(msgs["sender"], [1, 3]) & (msgs["fallback"] == 0)]
    assert len(mine) > 0 and (mine["offer"] != b"none").any()


def test_llm_games_rerun_and_replay_bit_for_bit_on_other_ranks(server, tmp_path, monkeypatch):
    """Against the playing server (answers sampled at random), a rerun on 3
    ranks and a --replay on 2 make no request and give the same tables: the
    order in which concurrent conversations' replies arrive changes nothing."""
    monkeypatch.setenv(KEY_ENV, "sk-beast-test")
    models = write_models(tmp_path, srv_models(server, KEY_ENV, anthropic=True))
    spec = {
        "name": "beast_replay", "game": "beast", "seed": 4, "repetitions": 2,
        "fixed": {"n_agents": 6, "eliminations": 3},
        "grid": {"communication": [True, False], "lineup": ["a", "b"]},
        "lineups": {"a": ["srv", "srv-a", "heuristic:loyal", "srv", "heuristic:bully", "srv-a"],
                    "b": ["srv", "srv-a", "heuristic:loyal?skill=0.5", "srv", "heuristic:bully",
                          "srv-a"]},
        "models": models,
        "prompts": os.path.join(ROOT, "prompts", "beast"),
        "llm": {"live_games": 4, "concurrency": 8, "timeout_s": 10, "max_retries": 1,
                "cache": str(tmp_path / "cache")},
    }
    path = write_spec(tmp_path, spec)
    first, again, rep = run_rerun_and_replay(server, path, tmp_path, seed=41)
    check_file(first)
    names = ["games", "agents", "messages", "beast/messages", "beast/transfers", "beast/votes",
             "beast/wealth"]
    assert table(first, "games")["n_fallback"].sum() > 0
    for other in (again, rep):
        assert_same_rows(first, other, names)
        # /llm_calls in the same order too, but for what a replay cannot share
        assert_same_rows(first, other, ["llm_calls"],
                         skip=("latency_ms", "retries", "cache_hit", "error"))
