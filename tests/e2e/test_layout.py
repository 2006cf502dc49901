"""bazaar run/merge --layout plain|virtual end to end (src/cli.c, src/sched*.c):
a virtual file's tables equal a plain file's (h5py: every column, row and
order), and its tables without strings are HDF5 virtual datasets over
/.parts of the same file; kill -9 then --resume, also in the other layout,
gives the uninterrupted tables; a merge by hand in either layout of shards
written for either; bazaar info and the analysis scripts read a virtual file
as a plain one; a bad --layout is a usage error. (The same tables on 1, 2, 4
and 7 ranks: test_run.py; merged by the follower: test_follow.py.)"""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import h5py
import pytest

from conftest import (BIN, ROOT, assert_same_tables, bazaar, big_spec, datasets,
                      kill9_and_resume, kill_session, mpi_env, run_cmd, stop_after,
                      virtual_tables, write_spec)

PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def _run(tmp_path, spec, name, *more, ranks=None, env=None):
    out = str(tmp_path / name)
    p = subprocess.run(run_cmd(spec, out, ranks, *more), capture_output=True, text=True,
                       timeout=300, env=env or mpi_env())
    assert p.returncode == 0, p.stderr
    return out


def _has_strings(ds):
    """Whether a table has variable-length strings (fixed-size ones are
    bytes of its rows, as numbers are)."""
    def vlen(dt):
        info = h5py.check_string_dtype(dt)
        return (info is not None and info.length is None) or h5py.check_vlen_dtype(dt) is not None
    return any(vlen(ds.dtype[c]) for c in ds.dtype.names)


def assert_virtual_layout(path):
    """The big tables of path (/agents, /electricity/turns and /market, and
    every table with rows of /.parts/<source>/<table>) are virtual datasets
    mapping datasets of /.parts in the same file ("."), so the file reads
    the same from anywhere; tables with strings are not virtual."""
    names = datasets(path)
    mapped = {n.split("/", 2)[2] for n in names if n.startswith(".parts/")}
    assert {"agents", "electricity/turns", "electricity/market"} <= mapped, mapped
    with h5py.File(path, "r") as f:
        for name in datasets(path, parts=False):
            ds = f[name]
            if ds.dtype.names is not None and _has_strings(ds):
                assert not ds.is_virtual, f"{name} has strings: stored as in plain"
            if name not in mapped:
                assert not ds.is_virtual, f"{name}: virtual but not in /.parts"
                continue
            assert ds.is_virtual or len(ds) == 0, f"{name}: not a virtual dataset"
            for src in ds.virtual_sources():
                assert src.file_name == ".", (name, src.file_name)
                assert src.dset_name.lstrip("/").startswith(".parts/"), (name, src.dset_name)
                assert src.dset_name.lstrip("/") in f, (name, src.dset_name)


def test_a_bad_layout_is_a_usage_error_naming_the_option_and_its_values(tmp_path, small_spec):
    spec = write_spec(tmp_path, small_spec)
    out = str(tmp_path / "out.h5")
    for args, got in ((["run", spec, "-o", out, "--layout", "vds"], "'vds'"),
                      (["run", spec, "-o", out, "--layout"], "nothing"),
                      (["merge", str(tmp_path), "-o", out, "--layout", "Virtual"], "'Virtual'"),
                      (["merge", "--layout", "", str(tmp_path), "-o", out], "''")):
        p = bazaar(*args, check=False)
        assert p.returncode == 2, (args, p.stderr)
        first = p.stderr.splitlines()[0]
        assert first == f"bazaar: --layout: expected plain or virtual, got {got}", p.stderr
        assert "usage: bazaar " + args[0] in p.stderr
        assert not os.path.exists(out) and not os.path.exists(out + ".parts")
    for cmd in ("run", "merge"):
        h = bazaar(cmd, "--help").stdout
        assert "--layout" in h and "virtual datasets" in h and "virtual (default)" in h and "HDF5 >= 1.10" in h, h


@pytest.mark.parametrize("follow", ["0", "1"])
@pytest.mark.parametrize("ranks", [None, 2])
def test_virtual_tables_equal_plain_ones(tmp_path, small_spec, ranks, follow):
    # the merge after the play (rank 0) and the follower merge
    spec = write_spec(tmp_path, small_spec)
    ref = _run(tmp_path, spec, "plain.h5", "--layout", "plain")
    env = dict(mpi_env(), BAZAAR_MERGE_FOLLOW=follow, BAZAAR_SEGMENT_GAMES="7")
    virt = _run(tmp_path, spec, "virtual.h5", "--layout", "virtual", ranks=ranks, env=env)
    assert not virtual_tables(ref)
    assert_virtual_layout(virt)
    assert_same_tables(ref, virt)
    # self-contained: the same tables under another name, in another folder
    os.makedirs(tmp_path / "moved")
    moved = str(tmp_path / "moved" / "renamed.h5")
    shutil.move(virt, moved)
    assert_same_tables(ref, moved)
    with h5py.File(ref, "r") as a, h5py.File(moved, "r") as b:
        for k in ("spec_json", "version", "n_games"):
            assert a.attrs[k] == b.attrs[k], k
        assert int(b.attrs["ranks"]) == (ranks or 1)


def test_the_default_layout_is_virtual_and_plain_is_one_option_away(tmp_path, small_spec):
    # run and merge without --layout write the virtual layout; --layout
    # plain writes the plain one, with the same tables
    spec = write_spec(tmp_path, small_spec)
    out = str(tmp_path / "out.h5")
    env = dict(mpi_env(), BAZAAR_TEST_GAME_DELAY_MS="50")  # stop part way: the shards stay
    p = subprocess.Popen([BIN, "run", spec, "-o", out, "--progress-interval", "0.02"],
                         stderr=subprocess.PIPE, text=True, env=env)
    stop_after(p, 10, signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 3, err
    virt, plain = str(tmp_path / "virtual.h5"), str(tmp_path / "plain.h5")
    bazaar("merge", out + ".parts", "-o", virt)
    bazaar("merge", "--layout", "plain", out + ".parts", "-o", plain)
    assert_virtual_layout(virt)
    assert not virtual_tables(plain)
    assert_same_tables(plain, virt)
    bazaar("run", spec, "-o", out, "--resume", "--quiet")
    assert_virtual_layout(out)
    ref = _run(tmp_path, spec, "ref.h5", "--layout", "plain")
    assert not virtual_tables(ref)
    assert_same_tables(ref, out)


@pytest.mark.parametrize("first,again,ranks", [("virtual", "virtual", None),
                                               ("virtual", "virtual", 2),
                                               ("virtual", "plain", None),
                                               ("plain", "virtual", 2)])
def test_kill9_then_resume_gives_the_uninterrupted_tables(tmp_path, small_spec, first, again,
                                                          ranks):
    # --resume in the other layout: shards written for either merge in either
    rng = random.Random(f"{first} {again} {ranks}")
    spec = write_spec(tmp_path, big_spec(small_spec))
    ref = _run(tmp_path, spec, "ref.h5")
    t0 = time.time()
    whole = _run(tmp_path, spec, "whole.h5", "--layout", first, ranks=ranks)
    full = time.time() - t0
    assert_same_tables(ref, whole)
    out = str(tmp_path / "out.h5")
    env = dict(mpi_env(), BAZAAR_SEGMENT_GAMES="50")
    # up to a little past the full run time: some kills land in the merge
    killed = kill9_and_resume(run_cmd(spec, out, ranks, "--layout", first),
                              run_cmd(spec, out, ranks, "--resume", "--layout", again), rng,
                              full * 1.1, env)
    assert_same_tables(ref, out)
    # a first run that finished before its kill moment wrote OUT in its own
    # layout, and nothing resumed it
    assert bool(virtual_tables(out)) == ((again if killed else first) == "virtual"), killed
    assert not os.path.exists(out + ".parts")


@pytest.mark.parametrize("ranks", [None, 2])
def test_kill9_inside_the_virtual_merge_then_resume_gives_the_uninterrupted_tables(
        tmp_path, small_spec, ranks):
    # the merge after the play (no follower): OUT.tmp exists only while it
    # writes, so the kill lands in it
    spec = write_spec(tmp_path, big_spec(small_spec))
    ref = _run(tmp_path, spec, "ref.h5")
    out = str(tmp_path / "out.h5")
    env = dict(mpi_env(), BAZAAR_MERGE_FOLLOW="0")
    p = subprocess.Popen(run_cmd(spec, out, ranks, "--layout", "virtual"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                         start_new_session=True)
    while p.poll() is None and not os.path.exists(out + ".tmp"):
        time.sleep(0.001)
    if p.poll() is not None:
        pytest.skip("the merge ended before OUT.tmp could be seen")
    kill_session(p.pid)
    p.communicate(timeout=60)
    assert not os.path.exists(out) and os.path.isdir(out + ".parts")
    _run(tmp_path, spec, "out.h5", "--resume", "--layout", "virtual", ranks=ranks, env=env)
    assert_same_tables(ref, out)
    assert_virtual_layout(out)


def _killed_once_every_rank_committed(cmd, parts, attempt, ranks, env):
    """Run cmd; kill -9 the job once every rank's shard of this attempt
    (a<attempt>-r<rank>-*.h5) confirms a game in its journal; the shards'
    paths. Skips the test if the run ends first."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                         start_new_session=True)

    def committed(r):
        return [os.path.join(parts, n[:-len(".journal")])
                for n in (os.listdir(parts) if os.path.isdir(parts) else [])
                if n.startswith(f"a{attempt}-r{r}-") and n.endswith(".h5.journal")
                and os.path.getsize(os.path.join(parts, n)) > 0]
    t0 = time.time()
    while p.poll() is None and not all(committed(r) for r in range(ranks)):
        assert time.time() - t0 < 120, "no rank committed a game"
        time.sleep(0.01)
    if p.poll() is not None:
        pytest.skip("the sweep ended before every rank committed a game")
    kill_session(p.pid)
    p.wait()
    return [s for r in range(ranks) for s in committed(r)]


@pytest.mark.parametrize("first,again", [("virtual", "plain"), ("plain", "virtual")])
def test_every_ranks_shards_are_written_for_the_attempts_layout(tmp_path, small_spec, first,
                                                                again):
    # virtual: each rank deflates its tables' full chunks itself (the
    # shard's dataset has the deflate filter); plain: the merge does
    spec = write_spec(tmp_path, big_spec(small_spec))
    ref = _run(tmp_path, spec, "ref.h5")
    out = str(tmp_path / "out.h5")
    env = dict(mpi_env(), BAZAAR_TEST_GAME_DELAY_MS="5", BAZAAR_SEGMENT_GAMES="20",
               BAZAAR_MERGE_FOLLOW="0")
    for attempt, layout in ((1, first), (2, again)):
        more = ("--layout", layout) + (("--resume",) if attempt > 1 else ())
        shards = _killed_once_every_rank_committed(run_cmd(spec, out, 2, *more), out + ".parts",
                                                   attempt, 2, env)
        for s in shards:
            with h5py.File(s, "r") as f:
                got = f["electricity/turns"].compression
            assert got == ("gzip" if layout == "virtual" else None), (s, got)
    _run(tmp_path, spec, "out.h5", "--resume", "--layout", again, ranks=2)
    assert_same_tables(ref, out)
    assert bool(virtual_tables(out)) == (again == "virtual")


def test_a_finished_sweep_resumed_in_the_other_layout_is_rewritten_in_it(tmp_path, small_spec):
    # OUT itself is then the merge's source: a virtual file read back into
    # a plain one and the other way round
    spec = write_spec(tmp_path, small_spec)
    ref = _run(tmp_path, spec, "ref.h5")
    out = _run(tmp_path, spec, "out.h5", "--layout", "virtual")
    for layout in ("plain", "virtual", "virtual"):
        p = bazaar("run", spec, "-o", out, "--resume", "--layout", layout)
        assert "48 of 48 games already recorded" in p.stderr, p.stderr
        assert_same_tables(ref, out)
        assert bool(virtual_tables(out)) == (layout == "virtual")


@pytest.mark.parametrize("run_layout", ["plain", "virtual"])
def test_a_merge_by_hand_in_either_layout(tmp_path, small_spec, run_layout):
    spec = write_spec(tmp_path, small_spec)
    out = str(tmp_path / "out.h5")
    env = dict(mpi_env(), BAZAAR_TEST_GAME_DELAY_MS="50")  # stop part way: the shards stay
    p = subprocess.Popen([BIN, "run", spec, "-o", out, "--layout", run_layout,
                          "--progress-interval", "0.02"], stderr=subprocess.PIPE, text=True,
                         env=env)
    stop_after(p, 10, signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 3, err
    plain, virt = str(tmp_path / "plain.h5"), str(tmp_path / "virtual.h5")
    m = bazaar("merge", "--layout", "plain", out + ".parts", "-o", plain)
    assert "merged" in m.stdout and not virtual_tables(plain)
    m = bazaar("merge", "--layout", "virtual", out + ".parts", "-o", virt)
    assert "merged" in m.stdout, m.stderr
    assert_virtual_layout(virt)
    assert_same_tables(plain, virt)
    with h5py.File(virt, "r") as f:
        assert 0 < len(f["games"]) < 48
        assert f.attrs["spec_json"]  # the parts folder's provenance
    # the resumed run's file: the hand merges' games and the rest
    ref = _run(tmp_path, spec, "ref.h5")
    bazaar("run", spec, "-o", out, "--resume", "--quiet", "--layout", "virtual")
    assert_same_tables(ref, out)


def _info_tables(text):
    """bazaar info's tables section: {"/name": its rows line and columns}."""
    lines = text.split("\ntables:\n", 1)[1].splitlines()
    out = {}
    for i, line in enumerate(lines):
        if line.startswith("/"):
            out[line.split(":")[0]] = (line, lines[i + 1] if i + 1 < len(lines) else "")
    return out


def test_info_and_show_read_a_virtual_file_as_the_plain_one(tmp_path, small_spec):
    spec = write_spec(tmp_path, small_spec)
    plain = _run(tmp_path, spec, "plain.h5", "--layout", "plain")
    virt = _run(tmp_path, spec, "virtual.h5", "--layout", "virtual", ranks=2)
    a, b = bazaar("info", plain).stdout, bazaar("info", virt).stdout
    ta, tb = _info_tables(a), _info_tables(b)
    # /.parts in one line, not a line per source and table
    assert "/.parts" in tb and not any(k.startswith("/.parts/") for k in tb), b
    del tb["/.parts"]
    marked = {k for k, (rows, _) in tb.items() if re.search(r" \(virtual: \d+ mappings?\)$", rows)}
    assert marked == {"/" + n for n in virtual_tables(virt)} and len(marked) >= 3, b
    tb = {k: (re.sub(r" \(virtual: .*\)$", "", rows), cols) for k, (rows, cols) in tb.items()}
    assert ta == tb
    assert re.search(r"^games: 48 \(ok 48, failed 0, timeout 0\)$", b, re.M), b
    for game in ("0", "31", "47"):  # bazaar show reads the tables through the mappings
        show = [bazaar("show", h5, "--game", game, "--agent", "1").stdout for h5 in (plain, virt)]
        assert show[0] == show[1] and "turn" in show[0].lower(), show


def _analysis_spec():
    """A small 2x2 grid with a capability gap (the heatmap's columns)."""
    g = "heuristic:greedy?skill="
    return {"name": "an", "game": "electricity", "seed": 4, "repetitions": 3,
            "fixed": {"n_agents": 4, "max_turns": 12},
            "grid": {"supply_ratio": [0.8, 1.2], "communication": [True, False],
                     "lineup": ["g0", "g8"]},
            "lineups": {"g0": [g + "0.5", g + "0.5"], "g8": [g + "0.9", g + "0.1"]}}


def test_the_analysis_scripts_read_a_virtual_file_as_the_plain_one(tmp_path):
    spec = write_spec(tmp_path, _analysis_spec())
    files = {"plain": _run(tmp_path, spec, "plain.h5", "--layout", "plain"),
             # 2 ranks: /.parts holds two sources' rows apart
             "virtual": _run(tmp_path, spec, "virtual.h5", "--layout", "virtual", ranks=2)}
    seen = {}
    for layout, h5 in files.items():
        png = str(tmp_path / f"{layout}.png")
        # the README quick start's heatmap
        hm = subprocess.run([PY, os.path.join(ROOT, "analysis", "heatmap.py"), h5, "-o", png,
                             "--stat", "paired"], capture_output=True, text=True, timeout=300)
        assert hm.returncode == 0, hm.stderr
        rep = str(tmp_path / f"{layout}_report")
        r = subprocess.run([PY, os.path.join(ROOT, "analysis", "report.py"), h5, "-o", rep,
                            "--boot", "100"], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        summary = json.load(open(os.path.join(rep, "summary.json")))
        summary.pop("file", None)
        for k in ("started_at", "finished_at", "ranks", "hosts"):  # of the run, not the data
            summary.get("provenance", {}).pop(k, None)
        seen[layout] = (hm.stdout.replace(png, "PNG"), summary)
    assert "24 games" in seen["plain"][0], seen["plain"][0]
    assert seen["virtual"][0] == seen["plain"][0]
    assert seen["virtual"][1] == seen["plain"][1]


def test_an_llm_sweep_replayed_in_the_virtual_layout_gives_the_plain_tables(server, tmp_path,
                                                                             monkeypatch):
    # /llm_calls and the transcript store (/llm_texts, /llm_text_bytes) too,
    # and the analysis reader's texts
    from conftest import control
    from test_llm_run import KEY, KEY_ENV, play_sweep, same_game_tables, texts_of
    sys.path.insert(0, os.path.join(ROOT, "analysis"))
    import bazaar_results as br

    monkeypatch.setenv(KEY_ENV, KEY)
    spec = play_sweep(tmp_path, server, tmp_path / "cache", "vds")
    plain, virt = str(tmp_path / "plain.h5"), str(tmp_path / "virtual.h5")
    control(server, "/reset", {})
    control(server, "/config", {"faults": [], "play": {"seed": 5, "bad_rate": 0.1}})
    try:
        bazaar("run", spec, "-o", plain, "--quiet", "--layout", "plain", timeout=600)
        before = control(server, "/stats")["requests"]
        bazaar("run", spec, "-o", virt, "--quiet", "--replay", "--layout", "virtual", ranks=2,
               timeout=600)
        assert control(server, "/stats")["requests"] == before, "replay made calls"
    finally:
        control(server, "/config", {"play": None})
    assert_virtual_layout(virt)
    same_game_tables(plain, virt)
    assert texts_of(virt) == texts_of(plain) and len(texts_of(plain)) > 0
    a, b = br.load(plain), br.load(virt)
    assert b.texts(b.llm_calls["reply_text"]) == a.texts(a.llm_calls["reply_text"])


def test_a_virtual_file_merged_again_is_a_plain_file_with_its_provenance(tmp_path, small_spec):
    # `bazaar merge --layout plain virtual.h5`: for readers older than HDF5 1.10
    spec = write_spec(tmp_path, small_spec)
    virt = _run(tmp_path, spec, "virtual.h5", "--layout", "virtual", ranks=2)
    plain = str(tmp_path / "plain.h5")
    m = bazaar("merge", "--layout", "plain", virt, "-o", plain)
    assert "merged 1 shard" in m.stdout and "no provenance" not in m.stderr, m.stderr
    assert virtual_tables(virt) and not virtual_tables(plain)
    assert not any(n.startswith(".parts/") for n in datasets(plain))
    assert_same_tables(virt, plain)
    with h5py.File(virt, "r") as a, h5py.File(plain, "r") as b:
        for k in ("spec_json", "version", "git_commit", "hosts", "started_at", "ranks",
                  "n_games"):
            assert a.attrs[k] == b.attrs[k], k
