"""The tables' layout end to end: `bazaar info --schema` against a written
file (columns, units), /<game>/config (one row per game, every parameter,
the grid's values), a game-neutral /games without always-NaN columns, seeds
as uint64 equal to the grid's, /messages' round/visibility/conversation."""
import math
import os
import re
import sys

import h5py
import numpy as np
import pytest

from conftest import ROOT, bazaar, write_spec

sys.path.insert(0, os.path.join(ROOT, "analysis"))
import results  # noqa: E402

SPEC = {"name": "tables", "game": "electricity", "seed": 11, "repetitions": 2,
        "fixed": {"n_agents": 3, "max_turns": 4, "voll_per_mwh": 900},
        "grid": {"supply_ratio": [0.8, 1.2], "volatility": [0.1, 0.3],
                 "communication": [True, False], "lineup": ["g", "t"]},
        "lineups": {"g": ["heuristic:greedy?skill=0.6", "heuristic:zi"],
                    "t": ["heuristic:truthful", "heuristic:reciprocal"]}}
N_GAMES = 2 * 2 * 2 * 2 * 2


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tables")
    spec = write_spec(tmp, SPEC)
    out = str(tmp / "out.h5")
    bazaar("run", spec, "-o", out, "--quiet")
    return spec, out


def parse_schema(text):
    """{table: [(column, type, unit, meaning), ...]} from info --schema."""
    tables, cur = {}, None
    for line in text.splitlines():
        if line.startswith("/"):
            cur = line.split()[0]
            tables[cur] = []
        elif line.startswith("  ") and cur:
            parts = line.split(None, 3)
            assert len(parts) == 4, f"column line without type, unit and meaning: {line!r}"
            tables[cur].append(tuple(parts))
    return tables


def test_schema_lists_every_column_of_the_file_with_its_unit(run):
    _, out = run
    schema = parse_schema(bazaar("info", "--schema").stdout)
    for t in ("/games", "/agents", "/messages", "/llm_calls", "/electricity/config",
              "/electricity/turns", "/electricity/market"):
        assert t in schema, t
    # the common tables and the config tables are documented in full: a
    # unit ("-": none) and a meaning for every column
    for t in ("/games", "/agents", "/messages", "/llm_calls", "/electricity/config"):
        for name, typ, unit, doc in schema[t]:
            assert unit != "?" and doc != "(not documented)", f"{t}.{name}"
            assert typ in ("i32", "i64", "u64", "f64", "u8", "str") or (
                typ[0] == "s" and typ[1:].isdigit()), f"{t}.{name}: {typ}"
    kinds = {"i32": "i4", "i64": "i8", "u64": "u8", "f64": "f8", "u8": "u1", "str": "O"}
    with h5py.File(out, "r") as f:
        for t in results.tables(out):
            ds = f[t]
            cols = schema[t]
            assert list(ds.dtype.names) == [c[0] for c in cols], t
            for (name, typ, unit, _), u in zip(cols, ds.attrs["units"]):
                u = u.decode() if isinstance(u, bytes) else u
                if typ[0] == "s" and typ[1:].isdigit():  # fixed width: numpy bytes S<n>
                    assert ds.dtype[name].str.lstrip("<>|") == "S" + typ[1:], f"{t}.{name}"
                else:
                    assert ds.dtype[name].str.lstrip("<>|") == kinds[typ], f"{t}.{name}"
                if unit != "?":
                    assert (u or "-") == unit, f"{t}.{name}: file {u!r}, schema {unit!r}"
            assert len(ds.attrs["doc"]) == len(ds.dtype.names)


def test_schema_of_one_game_and_of_an_unknown_one():
    one = parse_schema(bazaar("info", "--schema", "electricity").stdout)
    assert "/electricity/config" in one and "/games" not in one
    p = bazaar("info", "--schema", "nope", check=False)
    assert p.returncode == 2 and "electricity" in p.stderr


def test_config_has_one_row_per_game_with_every_parameter(run):
    _, out = run
    schema = parse_schema(bazaar("info", "--schema", "electricity").stdout)
    params = [c[0] for c in schema["/electricity/config"]][1:]
    assert {"supply_ratio", "volatility", "max_turns", "voll_per_mwh", "profile"} <= set(params)
    cfg = results.table(out, "/electricity/config")
    assert list(cfg.dtype.names) == ["game_id"] + params
    assert list(cfg["game_id"]) == list(range(N_GAMES))
    assert set(cfg["supply_ratio"]) == {0.8, 1.2} and set(cfg["volatility"]) == {0.1, 0.3}
    assert (cfg["max_turns"] == 4).all() and (cfg["n_agents"] == 3).all()
    assert (cfg["voll_per_mwh"] == 900).all()           # fixed
    assert (cfg["storage_efficiency"] == 0.85).all()    # default
    assert (cfg["profile"] == "profile_hourly.csv").all()
    assert cfg.dtype["max_turns"].kind == "i" and cfg.dtype["communication"] == np.uint8
    g = results.games(out)
    assert (g["communication"] == cfg["communication"]).all()


def test_games_is_game_neutral_and_has_no_always_nan_column(run):
    _, out = run
    g = results.table(out, "/games")
    for col in ("supply_ratio", "volatility", "competition", "params_json"):
        assert col not in g.dtype.names
    for game in set(g["game"]):
        rows = g[g["game"] == game]
        for col in rows.dtype.names:
            if rows.dtype[col].kind == "f":
                assert not np.isnan(rows[col]).all(), f"/games.{col} is NaN for every {game} game"


def test_seeds_read_back_as_uint64_equal_to_the_grid(run):
    spec, out = run
    lines = bazaar("expand", spec, "-n", str(N_GAMES)).stdout.splitlines()
    want = {}
    for line in lines:
        m = re.search(r"game (\d+):.* env_seed=([0-9a-f]+) seed=([0-9a-f]+)", line)
        if m:
            want[int(m.group(1))] = (int(m.group(2), 16), int(m.group(3), 16))
    assert len(want) == N_GAMES
    with h5py.File(out, "r") as f:
        g = f["games"][()]
    assert g.dtype["seed"] == np.uint64 and g.dtype["env_seed"] == np.uint64
    assert any(int(s) >= 2**63 for s in g["seed"]), "no seed above 2^63 to prove the sign"
    for r in g:
        assert (int(r["env_seed"]), int(r["seed"])) == want[int(r["game_id"])]


def test_messages_carry_round_visibility_and_conversation(run):
    _, out = run
    m = results.table(out, "/messages")
    assert len(m) > 0
    assert set(m["visibility"]) <= {"public", "private"}
    pub = m["visibility"] == "public"
    assert (m["receiver"][pub] == -1).all() and (m["receiver"][~pub] >= 0).all()
    assert set(m["phase"][pub]) == {"publish"}
    assert (m["round"] == -1).all() and (m["conversation"] == -1).all()
    comm = {int(r["game_id"]) for r in results.table(out, "/games") if r["communication"]}
    assert {int(x) for x in m["game_id"]} <= comm
    assert not math.isnan(float(results.games(out)["welfare"][0]))
