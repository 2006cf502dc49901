"""End-to-end LLM sweeps through `bazaar run` against tests/llm_server.py:
finished games with faults recorded, the cache answering a rerun with zero
requests, --replay, a missing key refused before start, no key text in the
output file or the logs."""
import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from conftest import ROOT, ab_models, bazaar, control, strs, table, write_models

KEY_ENV = "BZ_E2E_LLM_KEY"
KEY = "sk-e2e-SECRET-9f8e7d6c5b4a"


def write_sweep(tmp_path, port, cache, name="llm_e2e", communication=(True, False)):
    models = ab_models(port, KEY_ENV)
    models[1]["limits"] = {"max_concurrency": 4}
    spec = {
        "name": name, "game": "electricity", "seed": 3, "repetitions": 1,
        "fixed": {"n_agents": 3, "max_turns": 2},
        "grid": {"communication": list(communication)},
        "lineups": {"mixed": ["srv-openai", "srv-anthropic", "heuristic:greedy?skill=0.5"]},
        "models": write_models(tmp_path, models),
        "prompts": os.path.join(ROOT, "prompts", "electricity"),
        "llm": {"live_games": 2, "concurrency": 4, "timeout_s": 2, "max_retries": 3,
                "cache": str(cache)},
    }
    spec["fixed"]["lineup"] = "mixed"
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(spec))
    return path


def test_faults_cache_and_replay(server, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    cache = tmp_path / "cache"
    spec = write_sweep(tmp_path, server, cache)
    control(server, "/reset", {})
    control(server, "/config", {"faults": [
        {"kind": "429", "retry_after": 1}, {"kind": "500"}, {"kind": "503"},
        {"kind": "reset"}, {"kind": "truncated"}, {"kind": "malformed_body"},
        {"kind": "hang", "seconds": 4}, {"kind": "malformed_json"},
        {"kind": "wrong_schema"}, {"kind": "reply", "content": {"claimed_surplus_mwh": "lots"}}]})
    out = tmp_path / "a.h5"
    p = bazaar("run", spec, "-o", out, timeout=600)
    first = control(server, "/stats")["completions"]
    assert first > 0
    games = table(out, "/games")
    assert len(games) == 2 and set(strs(games["status"])) == {"ok"}
    assert games["llm_calls"].sum() > 0 and games["cost_usd"].sum() > 0
    calls = table(out, "/llm_calls")
    outcomes = set(strs(calls["parse_outcome"]))
    assert calls["retries"].max() >= 1                       # 429/5xx/reset/timeout retried
    assert {"invalid_json", "schema", "repaired"} <= outcomes  # content faults named, repaired
    assert (calls["cache_hit"] == 0).all()
    agents = table(out, "/agents")
    caps = dict(zip(strs(agents["policy"]), agents["capability"]))
    assert "cached_input_tokens" in games.dtype.names and (games["cached_input_tokens"] == 0).all()
    # the registry's score once grid fills it (bz_llm_fill_capability); NaN before
    assert caps["srv-anthropic"] == 1200.0 or caps["srv-anthropic"] != caps["srv-anthropic"]

    # no key text anywhere: output file (its compressed transcripts too), logs, cache
    assert KEY.encode() not in out.read_bytes()
    assert not any(KEY in t for _, t in texts_of(out).values())
    assert KEY not in p.stdout and KEY not in p.stderr
    for f in cache.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes()

    # rerun: all from the cache, zero requests
    control(server, "/config", {"faults": []})
    control(server, "/reset", {})
    out2 = tmp_path / "b.h5"
    bazaar("run", spec, "-o", out2, timeout=600)
    assert control(server, "/stats")["completions"] == 0
    calls2 = table(out2, "/llm_calls")
    assert (calls2["cache_hit"] == 1).all()

    # --replay over the same cache: zero requests, same decisions
    out3 = tmp_path / "c.h5"
    bazaar("run", spec, "-o", out3, "--replay", timeout=600)
    assert control(server, "/stats")["completions"] == 0
    g2, g3 = table(out2, "/games"), table(out3, "/games")
    assert (g2["welfare"] == g3["welfare"]).all()


def test_replay_without_cache_entries_makes_no_call(server, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    spec = write_sweep(tmp_path, server, tmp_path / "empty_cache", name="replay_empty",
                       communication=(False,))
    control(server, "/reset", {})
    out = tmp_path / "r.h5"
    p = bazaar("run", spec, "-o", out, "--replay", check=False, timeout=600)
    assert control(server, "/stats")["completions"] == 0
    assert "replay: no cached reply" in p.stderr
    if p.returncode == 0:
        calls = table(out, "/llm_calls")
        assert set(strs(calls["parse_outcome"])) == {"replay_miss"}


def test_missing_key_is_refused_before_start(server, tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    spec = write_sweep(tmp_path, server, tmp_path / "cache")
    control(server, "/reset", {})
    out = tmp_path / "new" / "k.h5"
    p = bazaar("run", spec, "-o", out, check=False)
    assert p.returncode == 2, p.stderr
    assert KEY_ENV in p.stderr and "not set" in p.stderr
    assert control(server, "/stats")["requests"] == 0
    # a refused run leaves nothing behind: no OUT, no OUT.parts, no folder,
    # no cache folder; so the corrected rerun needs no --resume
    assert not (tmp_path / "new").exists() and not (tmp_path / "cache").exists()
    monkeypatch.setenv(KEY_ENV, KEY)
    bazaar("run", spec, "-o", out, "--quiet", timeout=600)
    assert len(table(out, "/games")) == 2


def test_a_bad_prompt_placeholder_is_refused_and_leaves_nothing(server, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    prompts = tmp_path / "prompts"
    shutil.copytree(os.path.join(ROOT, "prompts", "electricity"), prompts)
    good = (prompts / "publish.txt").read_text()
    (prompts / "publish.txt").write_text(good + "\n{{private.no_such_field}}\n")
    spec_path = write_sweep(tmp_path, server, tmp_path / "cache", name="bad_prompt",
                            communication=(False,))
    spec = json.loads(spec_path.read_text())
    spec["prompts"] = str(prompts)
    spec_path.write_text(json.dumps(spec))
    out = tmp_path / "p.h5"
    p = bazaar("run", spec_path, "-o", out, check=False)
    assert p.returncode == 2, p.stderr
    assert "no_such_field" in p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted(
        ["prompts", "models.json", "bad_prompt.json"])
    (prompts / "publish.txt").write_text(good)
    bazaar("run", spec_path, "-o", out, "--quiet", timeout=600)
    assert len(table(out, "/games")) == 1


def test_budget_stops_cleanly_counts_across_resumes_and_resume_finishes(server, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    control(server, "/reset", {})
    spec_path = write_sweep(tmp_path, server, tmp_path / "cache", name="budget")
    spec = json.loads(spec_path.read_text())
    spec["repetitions"] = 6  # 12 games of ~3k tokens each
    spec["llm"]["live_games"] = 1
    spec["llm"]["cache"] = ""  # every call is real spend
    spec["budget"] = {"max_tokens": 8000}
    spec_path.write_text(json.dumps(spec))
    out = str(tmp_path / "budget.h5")
    p = bazaar("run", spec_path, "-o", out, check=False)
    assert p.returncode == 3, p.stderr
    assert "budget reached" in p.stderr and "--resume" in p.stderr
    assert not os.path.exists(out)
    # the same budget again: what the first attempt spent counts, so it stops
    # at once without finishing the sweep
    calls = control(server, "/stats")["requests"]
    p = bazaar("run", spec_path, "-o", out, "--resume", check=False)
    assert p.returncode == 3 and "budget reached" in p.stderr
    assert control(server, "/stats")["requests"] - calls <= 12, "a spent budget buys little more"
    # a raised budget finishes it
    spec["budget"] = {"max_tokens": 10_000_000}
    spec_path.write_text(json.dumps(spec))
    bazaar("run", spec_path, "-o", out, "--resume")
    assert sorted(table(out, "games")["game_id"]) == list(range(12))


def test_ranks_replay_the_cache_to_the_same_tables(server, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    control(server, "/reset", {})
    cache = tmp_path / "cache"
    spec_path = write_sweep(tmp_path, server, cache, name="ranks")
    spec = json.loads(spec_path.read_text())
    spec["repetitions"] = 4  # 8 games, up to 2 live per rank
    spec_path.write_text(json.dumps(spec))
    one = str(tmp_path / "one.h5")
    bazaar("run", spec_path, "-o", one, "--quiet")
    before = control(server, "/stats")["requests"]
    two = str(tmp_path / "two.h5")
    bazaar("run", spec_path, "-o", two, "--quiet", "--replay", ranks=2)
    assert control(server, "/stats")["requests"] == before, "replay made calls"
    with h5py.File(two, "r") as f:
        assert int(f.attrs["ranks"]) == 2
    same_game_tables(one, two)  # /llm_calls included, in the same order


def play_sweep(tmp_path, port, cache, name, reps=2):
    """Two lineups that differ only in the heuristic's skill: their games
    share the environment, so LLM agents make identical requests across
    games (one cache key, one sample)."""
    spec_path = write_sweep(tmp_path, port, cache, name=name, communication=(True,))
    spec = json.loads(spec_path.read_text())
    spec["repetitions"] = reps
    spec["fixed"]["max_turns"] = 3
    spec["lineups"] = {"a": ["srv-openai", "srv-anthropic", "heuristic:greedy?skill=0.5"],
                       "b": ["srv-openai", "srv-anthropic", "heuristic:greedy?skill=0.9"]}
    del spec["fixed"]["lineup"]
    spec["grid"]["lineup"] = ["a", "b"]
    spec["llm"]["live_games"] = 4
    spec_path.write_text(json.dumps(spec))
    return spec_path


def same_game_tables(a, b):
    """The games' tables row for row, byte for byte; /llm_calls too, in the
    same order (a step's calls are ordered by what was asked, not by when the
    replies came), but for what a run and its replay cannot share: latency,
    retries, cache hits and the attempt log in `error`."""
    per_run = {"games": {"cache_hits"},
               "llm_calls": {"latency_ms", "retries", "cache_hit", "error"}}
    for name in ("games", "agents", "electricity/turns", "electricity/market", "messages",
                 "llm_calls"):
        with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
            x, y = fa[name][()], fb[name][()]
            assert len(x) == len(y), name
            for col in x.dtype.names:
                if col in per_run.get(name, ()):
                    continue
                if x.dtype[col].kind == "O":
                    assert list(x[col]) == list(y[col]), f"{name}.{col}"
                else:
                    assert x[col].tobytes() == y[col].tobytes(), f"{name}.{col}"


RECOVERABLE = [{"kind": "429", "retry_after": 0}, {"kind": "500"}, {"kind": "reset"},
               {"kind": "malformed_body"}, {"kind": "503"}]


def test_games_against_a_playing_server_trade(server, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    spec = play_sweep(tmp_path, server, tmp_path / "cache", "trade")
    control(server, "/reset", {})
    control(server, "/config", {"faults": [], "play": {"seed": 11, "bad_rate": 0.1}})
    out = tmp_path / "t.h5"
    bazaar("run", spec, "-o", out, "--quiet", timeout=600)
    control(server, "/config", {"play": None})
    market = table(out, "electricity/market")
    turns = table(out, "electricity/turns")
    calls = table(out, "/llm_calls")
    phases = strs(calls["phase"])
    outcomes = strs(calls["parse_outcome"])
    assert market["n_contracts"].sum() > 0, "no bilateral contract"
    assert (turns["auction_bought"] > 0).any() and (turns["auction_sold"] > 0).any()
    assert "confirm" in phases, "no counter-offer reached its proposer"
    assert {"ok", "schema"} <= set(outcomes) or {"ok", "inadmissible"} <= set(outcomes)
    msgs = table(out, "messages")
    assert len(msgs) > 0


def test_random_answers_replay_bit_for_bit_on_1_and_3_ranks_with_faults(server, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    for first_ranks, replay_ranks in ((1, 3), (3, 1)):
        cache = tmp_path / f"cache{first_ranks}"
        spec = play_sweep(tmp_path, server, cache, f"replay{first_ranks}")
        control(server, "/reset", {})
        control(server, "/config", {"faults": [dict(f) for f in RECOVERABLE],
                                    "play": {"seed": 100 + first_ranks, "bad_rate": 0.15}})
        first = tmp_path / f"first{first_ranks}.h5"
        bazaar("run", spec, "-o", first, "--quiet", ranks=first_ranks if first_ranks > 1 else None,
               timeout=600)
        assert control(server, "/stats")["faults_served"], "no fault was injected"
        calls = table(first, "/llm_calls")
        assert (calls["retries"] > 0).any()
        assert set(strs(calls["parse_outcome"])) >= {"ok"}
        # the server now answers differently to everything: any request that
        # reaches it would change the tables
        control(server, "/config", {"faults": [], "play": {"seed": 999, "bad_rate": 0.5}})
        control(server, "/reset", {})
        again = tmp_path / f"again{first_ranks}.h5"
        bazaar("run", spec, "-o", again, "--quiet", ranks=replay_ranks if replay_ranks > 1 else None,
               timeout=600)
        assert control(server, "/stats")["completions"] == 0, "the rerun made requests"
        same_game_tables(first, again)
        rep = tmp_path / f"replay{first_ranks}.h5"
        bazaar("run", spec, "-o", rep, "--quiet", "--replay",
               ranks=replay_ranks if replay_ranks > 1 else None, timeout=600)
        assert control(server, "/stats")["completions"] == 0
        same_game_tables(first, rep)
    control(server, "/config", {"play": None})


class Texts(dict):
    """hash -> (kind, text) of a results file's store, read straight from
    /llm_texts (the index) and /llm_text_bytes; .first_game[hash] is the
    game that used it first."""

    def __init__(self, path):
        super().__init__()
        self.first_game = {}
        with h5py.File(path, "r") as f:
            idx, data = f["llm_texts"][()], f["llm_text_bytes"][()].tobytes()
        for g, h, k, off, n in zip(idx["game_id"], idx["hash"], idx["kind"], idx["offset"],
                                   idx["length"]):
            h = h.decode()
            assert h not in self, f"{h} stored twice"
            self[h] = (k.decode(), data[off:off + n].decode())
            self.first_game[h] = int(g)


def texts_of(path):
    return Texts(path)


def call_hashes(row):
    """Every /llm_texts hash an /llm_calls row names."""
    hs = [row[c].decode() for c in ("system_text", "prompt_text", "repair_text", "reply_text")]
    return [h for h in hs + row["history"].decode().split() if h]


def test_transcripts_memory_reasoning_and_show(server, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    outs = {}
    for k in (0, 3):
        spec_path = write_sweep(tmp_path, server, tmp_path / f"cache_m{k}", name=f"mem{k}",
                                communication=(True,))
        spec = json.loads(spec_path.read_text())
        spec["fixed"]["max_turns"] = 3
        spec["llm"]["memory_turns"] = k
        spec["llm"]["reasoning"] = k > 0
        spec_path.write_text(json.dumps(spec))
        control(server, "/config", {"faults": [], "play": {"seed": 21, "bad_rate": 0.1}})
        outs[k] = tmp_path / f"mem{k}.h5"
        bazaar("run", spec_path, "-o", outs[k], "--quiet", timeout=600)
    control(server, "/config", {"play": None})
    for k, out in outs.items():
        calls = table(out, "llm_calls")
        texts = texts_of(out)
        kinds = {v[0] for v in texts.values()}
        assert {"registry", "template:system.txt", "template:propose.txt", "system", "prompt",
                "reply"} <= kinds
        assert (calls["memory_turns"] == k).all()       # the file records it
        assert set(strs(calls["model_version"])) <= {"model-a", "model-b", ""}
        assert "model-a" in strs(calls["model_version"])
        for row in calls:
            g = int(row["game_id"])
            for h in call_hashes(row):
                assert h in texts and texts.first_game[h] <= g, h
            assert row["system_text"].decode() in texts
            assert row["prompt_text"].decode() in texts
            if row["http_status"] == 200:
                assert row["reply_text"].decode() in texts
            hist = row["history"].decode().split()
            if k == 0 or row["turn"] == 0:
                assert hist == []
        assert KEY.encode() not in out.read_bytes()
        assert not any(KEY in t for _, t in texts.values())
    # memory 3: from turn 1 on a decided agent sees its earlier exchanges,
    # as user/assistant pairs (prompt, reply), oldest first, at most 3 turns
    calls = table(outs[3], "llm_calls")
    texts = texts_of(outs[3])
    later = [r for r in calls if r["turn"] >= 1]
    assert later and all(len(r["history"].split()) % 2 == 0 for r in later)
    assert any(len(r["history"].split()) >= 2 for r in later)
    for r in later:
        hist = r["history"].decode().split()
        kinds = [texts[h][0] for h in hist]
        assert kinds[0::2] == ["prompt"] * (len(hist) // 2)
    # the first decision (turn 0, publish: before any random reply) has the
    # same prompt with or without memory; memory adds history, not prompt text
    first0 = {r["agent"]: r["prompt_text"] for r in table(outs[0], "llm_calls")
              if r["turn"] == 0 and r["attempt"] == 0 and r["phase"] == b"publish"}
    first3 = {r["agent"]: r["prompt_text"] for r in calls
              if r["turn"] == 0 and r["attempt"] == 0 and r["phase"] == b"publish"}
    assert first0 and first0 == first3
    # reasoning: stored, never parsed (the games still decide)
    ok = [r for r in calls if r["decision"] in (b"ok", b"repaired")]
    assert ok and any(r["reasoning"] for r in ok)
    assert not any(r["reasoning"] for r in table(outs[0], "llm_calls"))

    # bazaar show: every decision with its prompt and reply, from the file alone
    p = bazaar("show", outs[3], "--game", 0)
    out = p.stdout
    assert "game 0:" in out and "LLM decisions:" in out
    for r in calls:
        assert f"prompt [{r['prompt_text'].decode()}]" in out
        if r["reply_text"]:
            assert f"reply [{r['reply_text'].decode()}]" in out
    some_reply = texts[calls[0]["reply_text"].decode()][1]
    assert some_reply.splitlines()[0] in out
    p1 = bazaar("show", outs[3], "--game", 0, "--agent", 1, "--turn", 2)
    assert "agent 1, model" in p1.stdout and "agent 0, model" not in p1.stdout
    assert "turn 2, phase" in p1.stdout and "turn 1, phase" not in p1.stdout
    bad = bazaar("show", outs[3], "--game", 99, check=False)
    assert bad.returncode == 2 and "no game 99" in bad.stderr


def test_transcript_store_holds_each_text_once_compressed_the_same_on_1_and_3_ranks(
        server, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    spec = play_sweep(tmp_path, server, tmp_path / "cache", "store", reps=3)  # 6 games
    control(server, "/reset", {})
    control(server, "/config", {"faults": [], "play": {"seed": 5, "bad_rate": 0.1}})
    one, three = tmp_path / "one.h5", tmp_path / "three.h5"
    bazaar("run", spec, "-o", one, "--quiet", timeout=600)
    control(server, "/reset", {})
    bazaar("run", spec, "-o", three, "--quiet", ranks=3, timeout=600)  # from the cache
    assert control(server, "/stats")["completions"] == 0
    control(server, "/config", {"play": None})
    with h5py.File(one, "r") as a, h5py.File(three, "r") as b:
        for name in ("llm_texts", "llm_text_bytes"):
            x, y = a[name][()], b[name][()]
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name
        assert int(b.attrs["ranks"]) == 3
        idx, raw = a["llm_texts"][()], a["llm_text_bytes"]
        # compressed: deflate on the bytes, and they take less than their length
        assert raw.compression == "gzip" and raw.chunks is not None
        stored = raw.id.get_storage_size() + a["llm_texts"].id.get_storage_size()
        assert raw.id.get_storage_size() < len(raw) / 3
        assert list(idx["offset"]) == [0] + list(np.cumsum(idx["length"])[:-1])
        assert int(idx["length"].sum()) == len(raw)
        assert list(idx["game_id"]) == sorted(idx["game_id"])  # first use, games by id
    texts = texts_of(one)
    calls = table(one, "llm_calls")
    games_of = {}
    for row in calls:
        for h in call_hashes(row):
            # every hash named resolves to exactly one stored text, whose bytes hash to it
            assert h in texts, h
            games_of.setdefault(h, set()).add(int(row["game_id"]))
    # the analysis reader's port of the hash agrees with the C one on every text
    sys.path.insert(0, os.path.join(ROOT, "analysis"))
    import bazaar_results as br
    for h, (kind, text) in texts.items():
        assert br.text_hash(text.encode()) == h
    # the analysis reader gives the same texts, all or by hash
    assert br.llm_texts(one) == {h: t for h, (_, t) in texts.items()}
    some = list(texts)[:3] + [""]
    assert br.llm_texts(one, some) == {h: texts[h][1] for h in some[:3]}
    assert br.text_hash(texts[some[0]][1]) == some[0]  # str as well as bytes
    # the run's provenance and the system prompts shared by games: stored once
    kinds = [k for k, _ in texts.values()]
    assert kinds.count("registry") == 1 and kinds.count("template:system.txt") == 1
    shared = [h for h in set(strs(calls["system_text"])) if len(games_of[h]) >= 2]
    assert shared, "no system prompt shared by two games"
    # smaller than the per-game copies the file held before (each game's
    # distinct texts and the provenance, uncompressed)
    prov = sum(len(t.encode()) for k, t in texts.values() if k == "registry" or
               k.startswith("template:"))
    per_game = {}
    for h, gs in games_of.items():
        for g in gs:
            per_game[g] = per_game.get(g, 0) + len(texts[h][1].encode())
    before = sum(per_game.values()) + prov * len(per_game)
    assert stored * 4 < before, (stored, before)
    # bazaar show prints a later game's prompts and replies in full, also
    # those it shares with (and were stored under) an earlier game
    g = max(games_of[shared[0]])
    out = bazaar("show", three, "--game", g).stdout
    assert texts[shared[0]][1].splitlines()[0] in out
    mine = [r for r in calls if int(r["game_id"]) == g]
    for r in mine:
        assert f"prompt [{r['prompt_text'].decode()}]" in out
    first = next(r for r in mine if r["reply_text"])
    assert texts[first["reply_text"].decode()][1].splitlines()[0] in out
    assert "(not in /llm_texts)" not in out
    # --resume of the finished file merges it again (a results file as the
    # source): the same store
    again = tmp_path / "again.h5"
    shutil.copy(one, again)
    r = bazaar("run", spec, "-o", again, "--resume", timeout=600)
    assert "(0 played now, 6 already recorded" in r.stderr, r.stderr  # OUT read, not set aside
    assert not list(tmp_path.glob("again.h5*.bad"))
    with h5py.File(one, "r") as a, h5py.File(again, "r") as b:
        for name in ("llm_texts", "llm_text_bytes"):
            assert a[name][()].tobytes() == b[name][()].tobytes(), name


def test_kill9_during_an_llm_sweep_then_resume_gives_the_store_of_a_clean_run(
        server, tmp_path, monkeypatch):
    import time
    from conftest import BIN, kill_session, mpi_env
    monkeypatch.setenv(KEY_ENV, KEY)
    spec = play_sweep(tmp_path, server, tmp_path / "cache", "kill", reps=4)  # 8 games
    control(server, "/reset", {})
    control(server, "/config", {"faults": [], "latency_ms": 20,
                                "play": {"seed": 8, "bad_rate": 0.1}})
    out = tmp_path / "out.h5"
    p = subprocess.Popen([BIN, "run", str(spec), "-o", str(out), "--quiet"], env=mpi_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    parts = tmp_path / "out.h5.parts"
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:
        # killed once a game is committed and others are still playing
        if any(j.stat().st_size > 0 for j in parts.glob("*.journal")):
            break
        time.sleep(0.02)
    killed = p.poll() is None
    if killed:
        kill_session(p.pid)
    p.wait(timeout=60)
    bazaar("run", spec, "-o", out, "--resume", "--quiet", timeout=600)
    control(server, "/config", {"latency_ms": 0, "play": None})
    control(server, "/reset", {})
    ref = tmp_path / "ref.h5"
    bazaar("run", spec, "-o", ref, "--quiet", timeout=600)  # every reply from the cache
    assert control(server, "/stats")["completions"] == 0
    same_game_tables(ref, out)
    with h5py.File(ref, "r") as a, h5py.File(out, "r") as b:
        for name in ("llm_texts", "llm_text_bytes"):
            assert a[name][()].tobytes() == b[name][()].tobytes(), name
    assert killed, "the run finished before it could be killed"


def test_expand_estimate_counts_memory(server, tmp_path, monkeypatch):
    import re
    monkeypatch.setenv(KEY_ENV, KEY)
    est = {}
    for k in (0, 3):
        spec_path = write_sweep(tmp_path, server, tmp_path / "cache", name=f"est{k}")
        spec = json.loads(spec_path.read_text())
        spec["fixed"]["max_turns"] = 4
        spec["llm"]["memory_turns"] = k
        spec_path.write_text(json.dumps(spec))
        p = bazaar("expand", spec_path)
        est[k] = int(re.search(r"about (\d+) tokens", p.stdout).group(1))
    # four turns of five phases: history of up to 3 earlier turns per decision
    assert est[3] > 1.5 * est[0], est


def test_a_stalled_provider_ends_games_as_timeout_without_stalling_the_sweep(server, tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    spec_path = write_sweep(tmp_path, server, tmp_path / "cache_t", name="stall",
                            communication=(True, False))
    spec = json.loads(spec_path.read_text())
    # without the limit each game would wait 4 x 20 s on the hanging server
    spec["llm"].update({"timeout_s": 20, "max_retries": 3, "max_game_seconds": 1.5,
                        "live_games": 1})
    spec_path.write_text(json.dumps(spec))
    control(server, "/reset", {})
    control(server, "/config", {"every": {"n": 1, "fault": {"kind": "hang", "seconds": 20}}})
    out = tmp_path / "stall.h5"
    try:
        p = bazaar("run", spec_path, "-o", out, timeout=60)
    finally:
        control(server, "/config", {"every": None})
    games = table(out, "games")
    assert len(games) == 2
    assert strs(games["status"]) == ["timeout", "timeout"]
    assert all("max_game_seconds" in e for e in strs(games["error"]))
    assert "games: 2 (ok 0, failed 0, timeout 2)" in bazaar("info", out).stdout
    assert KEY not in p.stdout + p.stderr


def test_capability_axis_refuses_lineups_mixing_heuristics_and_models(server, tmp_path,
                                                                      monkeypatch):
    sys.path.insert(0, os.path.join(ROOT, "analysis"))
    import bazaar_results
    import heatmap
    monkeypatch.setenv(KEY_ENV, KEY)
    spec = write_sweep(tmp_path, server, tmp_path / "cache_cap", name="cap",
                       communication=(False,))
    out = tmp_path / "cap.h5"
    bazaar("run", spec, "-o", out, "--quiet", timeout=600)
    r = bazaar_results.load(str(out))
    assert np.isnan(r.derived()["capability_gap"]).all()   # never Elo minus skill
    with pytest.raises(ValueError, match="mixes heuristic and LLM agents"):
        heatmap.grid(r, "electricity", "welfare", None, "capability_gap")
