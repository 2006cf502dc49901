"""The CLI surface: play, expand, info, help and exit codes."""
import json
import os

import h5py

from conftest import ROOT, bazaar, write_spec


def test_play_prints_a_transcript_and_writes_records(tmp_path):
    out = str(tmp_path / "game.h5")
    p = bazaar("play", "electricity", "--agents", "truthful,greedy,zi,reciprocal", "--turns", "24",
               "--seed", "7", "-o", out)
    assert "turn" in p.stdout.lower()
    with h5py.File(out, "r") as f:
        assert len(f["games"]) == 1
        assert len(f["electricity/turns"]) == 4 * 24


def test_play_is_deterministic_and_communication_off_has_no_messages(tmp_path):
    a = bazaar("play", "electricity", "--agents", "truthful,greedy", "--turns", "6", "--seed", "3")
    b = bazaar("play", "electricity", "--agents", "truthful,greedy", "--turns", "6", "--seed", "3")
    assert a.stdout == b.stdout
    out = str(tmp_path / "off.h5")
    bazaar("play", "electricity", "--agents", "truthful,greedy", "--turns", "6", "--seed", "3",
           "--communication", "off", "-o", out, "--quiet")
    with h5py.File(out, "r") as f:
        assert "messages" not in f or len(f["messages"]) == 0


def test_play_rejects_unknown_policy_with_exit_2():
    p = bazaar("play", "electricity", "--agents", "truthful,nosuch", check=False)
    assert p.returncode == 2 and "nosuch" in p.stderr


def test_play_options_follow_the_games_own_parameters(tmp_path):
    # the length option the game does not have is refused, naming the game
    p = bazaar("play", "electricity", "--agents", "truthful,greedy", "--rounds", "3", check=False)
    assert p.returncode == 2 and "electricity" in p.stderr and "--turns" in p.stderr
    # any parameter with --set, checked with the spec's messages
    p = bazaar("play", "electricity", "--agents", "greedy,zi", "--set", "volatility=high",
               check=False)
    assert p.returncode == 2 and "fixed.volatility" in p.stderr
    p = bazaar("play", "electricity", "--agents", "greedy,zi", "--turns", "2", "--set",
               "max_turns=3", check=False)
    assert p.returncode == 2 and "given twice" in p.stderr
    # --set n_agents: the agents named repeat to fill it
    out = str(tmp_path / "n.h5")
    bazaar("play", "electricity", "--agents", "greedy,zi", "--turns", "2", "--set",
           "n_agents=3", "--set", "supply_ratio=0.7", "-o", out, "--quiet")
    with h5py.File(out, "r") as f:
        assert len(f["agents"]) == 3
    # the knob's old name is refused, naming the new one (command line and spec)
    p = bazaar("play", "electricity", "--agents", "greedy,zi", "--set", "scarcity=0.7",
               check=False)
    assert p.returncode == 2 and "scarcity" in p.stderr and "supply_ratio" in p.stderr
    spec = tmp_path / "old.json"
    spec.write_text(json.dumps({"name": "old", "game": "electricity", "seed": 1,
                                "fixed": {"lineup": ["heuristic:zi"]},
                                "grid": {"scarcity": [0.8, 1.2]}}))
    p = bazaar("expand", str(spec), check=False)
    assert p.returncode != 0 and "grid.scarcity" in p.stderr and "supply_ratio" in p.stderr


def test_usage_and_params_list_every_registered_game():
    usage = bazaar("play", "--help").stdout
    top = bazaar("--help").stdout
    every = bazaar("play", "--params").stdout
    for text in (usage, top):
        assert "electricity" in text and "reciprocal" in text and "storage_hours" in text
    assert "game electricity" in every and "heuristic policies:" in every
    one = bazaar("play", "electricity", "--params").stdout
    assert "max_turns" in one and "integer in [1, 8760]" in one


def test_expand_prints_count_and_configs():
    p = bazaar("expand", "sweeps/quickstart.json", "-n", "3")
    assert "800 games" in p.stdout
    assert p.stdout.count("\n") >= 4


def test_help_and_version():
    assert "run" in bazaar("--help").stdout
    for cmd in ("run", "play", "expand", "merge", "info"):
        assert "usage" in bazaar(cmd, "--help").stdout
    assert bazaar("--version").stdout.startswith("bazaar ")
    assert bazaar("nosuch", check=False).returncode == 2


def test_info_lists_tables(tmp_path):
    out = str(tmp_path / "g.h5")
    bazaar("play", "electricity", "--agents", "truthful,greedy", "--turns", "3", "-o", out,
           "--quiet")
    p = bazaar("info", out)
    assert "/games: 1 rows" in p.stdout and "/electricity/turns: 6 rows" in p.stdout


EIA = os.path.join(os.path.dirname(ROOT), "shared", "data", "eia",
                   "region-daily-2025-01-25_31.json")


def test_a_sweep_driven_by_real_eia_demand(tmp_path):
    import pytest
    if not os.path.exists(EIA):
        pytest.skip(f"no EIA data at {EIA}")
    spec = {"name": "eia", "game": "electricity", "seed": 1, "repetitions": 3,
            "fixed": {"n_agents": 4, "max_turns": 24, "eia_file": EIA,
                      "lineup": ["heuristic:greedy", "heuristic:truthful"]},
            "grid": {"eia_respondent": ["PJM", "CISO"]}}
    out = str(tmp_path / "eia.h5")
    bazaar("run", write_spec(tmp_path, spec), "-o", out, "--quiet")
    with h5py.File(out, "r") as f:
        games = f["games"][()]
        market = f["electricity/market"][()]
    assert len(games) == 6
    # the two balancing authorities give the market different demand shapes
    by_game = {int(g): market[market["game_id"] == g]["total_demand"] for g in games["game_id"]}
    shape = lambda d: d / d.mean()
    assert not (abs(shape(by_game[0]) - shape(by_game[3])) < 1e-9).all()
    spec["grid"]["eia_respondent"] = ["NOPE"]
    p = bazaar("run", write_spec(tmp_path, spec, "bad.json"), "-o", str(tmp_path / "b.h5"),
               check=False)
    assert p.returncode == 2 and "NOPE" in p.stderr
