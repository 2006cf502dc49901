"""The CLI surface: play, expand, info, help and exit codes."""
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
