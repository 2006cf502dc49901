"""bazaar run end to end: the results file, determinism, MPI ranks, refusing
to overwrite, clean stop on a signal, resume after kill -9, corrupt shards."""
import glob
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "analysis"))
import results  # noqa: E402

from conftest import (BIN, MPIEXEC, assert_same_tables, bazaar, big_spec, game_ids,
                      kill9_and_resume, kill_session, mpi_env, run_cmd, stop_after,
                      write_spec)


def test_run_writes_every_table_with_the_documented_columns(tmp_path, small_spec):
    spec = write_spec(tmp_path, small_spec)
    out = str(tmp_path / "out.h5")
    bazaar("run", spec, "-o", out, "--quiet")
    assert not os.path.exists(out + ".parts"), "shards are removed after the merge"
    with h5py.File(out, "r") as f:
        games = f["games"][()]
        assert list(games["game_id"]) == list(range(48))
        for col in ("game_id", "game", "seed", "env_seed", "n_agents", "communication",
                    "repetition", "lineup", "status"):
            assert col in games.dtype.names
        for col in ("volatility", "supply_ratio", "competition", "params_json"):
            assert col not in games.dtype.names, f"/games is game-neutral: {col}"
        config = f["electricity/config"][()]
        assert list(config["game_id"]) == list(range(48))
        for col in ("volatility", "supply_ratio", "max_turns", "profile"):
            assert col in config.dtype.names
        turns = f["electricity/turns"][()]
        for col in ("game_id", "turn", "agent", "generation", "demand", "storage_level",
                    "claimed_surplus", "true_surplus", "contract_bought", "contract_sold",
                    "contract_paid", "contract_received", "auction_bought", "auction_sold",
                    "auction_paid", "auction_received", "delivered", "undelivered", "received",
                    "penalty_paid", "penalty_received", "served", "unserved", "curtailed",
                    "storage_charge", "storage_discharge", "profit", "cum_profit"):
            assert col in turns.dtype.names, col
        assert len(turns) == 48 * 5 * 12
        assert np.all(np.diff(turns["game_id"]) >= 0), "rows ordered by game_id"
        market = f["electricity/market"][()]
        assert len(market) == 48 * 12
        agents = f["agents"][()]
        assert len(agents) == 48 * 5
        for attr in ("spec_json", "version", "git_commit", "ranks", "hosts", "started_at",
                     "finished_at"):
            assert attr in f.attrs, attr


def test_energy_balances_in_the_file(tmp_path, small_spec):
    spec = write_spec(tmp_path, small_spec)
    out = str(tmp_path / "out.h5")
    bazaar("run", spec, "-o", out, "--quiet")
    with h5py.File(out, "r") as f:
        t = f["electricity/turns"][()]
    lhs = t["generation"] + t["received"] + t["storage_discharge"]
    rhs = t["served"] + t["delivered"] + t["storage_charge"] + t["curtailed"]
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(t["served"] + t["unserved"], t["demand"], rtol=1e-9, atol=1e-6)


def test_same_spec_gives_identical_tables(tmp_path, small_spec):
    spec = write_spec(tmp_path, small_spec)
    a, b = str(tmp_path / "a.h5"), str(tmp_path / "b.h5")
    bazaar("run", spec, "-o", a, "--quiet")
    bazaar("run", spec, "-o", b, "--quiet")
    assert_same_tables(a, b)


def test_paired_seeds_communication_on_off_same_market(tmp_path, small_spec):
    spec = write_spec(tmp_path, small_spec)
    out = str(tmp_path / "out.h5")
    bazaar("run", spec, "-o", out, "--quiet")
    with h5py.File(out, "r") as f:
        t = f["electricity/turns"][()]
    g = results.games(out)  # /games with /electricity/config joined on
    key = lambda r: (r["supply_ratio"], r["volatility"], r["lineup"], r["repetition"])
    on = {key(r): r for r in g if r["communication"] == 1}
    off = {key(r): r for r in g if r["communication"] == 0}
    assert on.keys() == off.keys() and len(on) == 24
    for k in on:
        assert on[k]["env_seed"] == off[k]["env_seed"]
        a = t[t["game_id"] == on[k]["game_id"]]
        b = t[t["game_id"] == off[k]["game_id"]]
        assert a["generation"].tobytes() == b["generation"].tobytes()
        assert a["demand"].tobytes() == b["demand"].tobytes()


@pytest.mark.parametrize("ranks,layout", [(2, "plain"), (4, "plain"), (7, "plain"),
                                          (None, "virtual"), (2, "virtual"), (4, "virtual"),
                                          (7, "virtual")])
def test_ranks_give_the_same_tables_as_one_process(tmp_path, small_spec, ranks, layout):
    # --layout virtual: the same tables as plain on one rank (so on 1, 2, 4
    # and 7 ranks among themselves too)
    spec = write_spec(tmp_path, small_spec)
    one = str(tmp_path / "one.h5")
    many = str(tmp_path / f"r{ranks}.h5")
    bazaar("run", spec, "-o", one, "--quiet")
    bazaar("run", spec, "-o", many, "--quiet", "--layout", layout, ranks=ranks)
    assert_same_tables(one, many)
    with h5py.File(many, "r") as f:
        assert int(f.attrs["ranks"]) == (ranks or 1)


def test_refuses_to_overwrite_without_resume(tmp_path, small_spec):
    spec = write_spec(tmp_path, small_spec)
    out = str(tmp_path / "out.h5")
    bazaar("run", spec, "-o", out, "--quiet")
    before = os.path.getmtime(out)
    p = bazaar("run", spec, "-o", out, "--quiet", check=False)
    assert p.returncode == 2
    assert "--resume" in p.stderr and out in p.stderr
    assert os.path.getmtime(out) == before
    os.makedirs(str(tmp_path / "other.h5.parts"))
    p = bazaar("run", spec, "-o", str(tmp_path / "other.h5"), "--quiet", check=False)
    assert p.returncode == 2 and "parts" in p.stderr


def test_resume_of_a_finished_sweep_plays_nothing(tmp_path, small_spec):
    spec = write_spec(tmp_path, small_spec)
    out = str(tmp_path / "out.h5")
    bazaar("run", spec, "-o", out, "--quiet")
    p = bazaar("run", spec, "-o", out, "--resume")
    assert "48 of 48 games already recorded" in p.stderr
    assert list(game_ids(out)) == list(range(48))


def test_bad_spec_is_refused_before_anything_starts(tmp_path, small_spec):
    small_spec["grid"]["volatility"] = [0.1, "high"]
    spec = write_spec(tmp_path, small_spec)
    out = str(tmp_path / "out.h5")
    p = bazaar("run", spec, "-o", out, check=False)
    assert p.returncode == 2
    assert "grid.volatility[1]" in p.stderr and spec in p.stderr
    assert not os.path.exists(out) and not os.path.exists(out + ".parts")


def test_a_hand_merge_of_the_parts_keeps_provenance(tmp_path, small_spec):
    spec = write_spec(tmp_path, small_spec)
    ref = str(tmp_path / "ref.h5")
    bazaar("run", spec, "-o", ref, "--quiet")
    out = str(tmp_path / "out.h5")
    env = mpi_env()
    env["BAZAAR_TEST_GAME_DELAY_MS"] = "100"  # a sweep that lasts: stop it part way
    p = subprocess.Popen([BIN, "run", spec, "-o", out, "--progress-interval", "0.02"],
                         stderr=subprocess.PIPE, text=True, env=env)
    stop_after(p, 3, signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 3, err
    hand = str(tmp_path / "hand.h5")
    m = bazaar("merge", out + ".parts", "-o", hand)
    assert "provenance" not in m.stderr
    with h5py.File(ref, "r") as r, h5py.File(hand, "r") as h:
        for key in ("spec_json", "version", "git_commit", "hosts", "n_games", "ranks"):
            assert h.attrs[key] == r.attrs[key], key
        assert int(h.attrs["n_games"]) == 48 and int(h.attrs["ranks"]) == 1
        assert 0 < len(h["games"]) < 48
    # shards named one by one: the provenance beside them
    shard = sorted(glob.glob(out + ".parts/a1-r0-*.h5"))[0]
    bazaar("merge", shard, "-o", str(tmp_path / "one.h5"))
    with h5py.File(ref, "r") as r, h5py.File(str(tmp_path / "one.h5"), "r") as h:
        assert h.attrs["spec_json"] == r.attrs["spec_json"] and int(h.attrs["n_games"]) == 48
    # a shard moved away from its folder has none: said so, never invented
    shutil.copy(shard, str(tmp_path / "lone.h5"))
    p = bazaar("merge", str(tmp_path / "lone.h5"), "-o", str(tmp_path / "bare.h5"))
    assert "no provenance" in p.stderr
    with h5py.File(str(tmp_path / "bare.h5"), "r") as h:
        assert int(h.attrs["n_games"]) == 0 and "spec_json" not in h.attrs


def test_sigterm_stops_cleanly_and_resume_finishes(tmp_path, small_spec):
    spec = write_spec(tmp_path, big_spec(small_spec))
    ref = str(tmp_path / "ref.h5")
    bazaar("run", spec, "-o", ref, "--quiet")
    out = str(tmp_path / "out.h5")
    p = subprocess.Popen([BIN, "run", spec, "-o", out, "--progress-interval", "0.02"],
                         stderr=subprocess.PIPE, text=True, env=mpi_env())
    stop_after(p, 100, signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    if p.returncode == 0:
        pytest.skip("the sweep finished before the signal; machine too fast for this size")
    assert p.returncode == 3, err
    assert "--resume" in err
    assert not os.path.exists(out)
    bazaar("run", spec, "-o", out, "--resume", "--quiet")
    assert_same_tables(ref, out)


@pytest.mark.parametrize("trial", range(4))
def test_kill9_at_random_moments_then_resume_gives_the_same_file(tmp_path, small_spec, trial):
    rng = random.Random(1000 + trial)
    spec = write_spec(tmp_path, big_spec(small_spec))
    ref = str(tmp_path / "ref.h5")
    t0 = time.time()
    bazaar("run", spec, "-o", ref, "--quiet")
    full = time.time() - t0
    out = str(tmp_path / "out.h5")
    ranks = [None, 2, 3, None][trial]
    # up to a little past the full run time: some kills land in the merge
    kill9_and_resume(run_cmd(spec, out, ranks), run_cmd(spec, out, ranks, "--resume"), rng,
                     full * 1.1)
    assert_same_tables(ref, out)
    ids = game_ids(out)
    assert list(ids) == list(range(len(ids))) and len(ids) == 640
    assert not os.path.exists(out + ".parts")


@pytest.mark.parametrize("ranks", [None, 2])
def test_kill9_while_games_put_rows_early_then_resume_gives_the_same_file(tmp_path, small_spec,
                                                                         ranks):
    # BAZAAR_FLUSH_BYTES=1: every game hands its rows to the shard after each
    # phase (as a long game does), so kills land between a game's early rows
    # and its commit record, and in the flushes of those rows
    rng = random.Random(77 + (ranks or 1))
    spec = write_spec(tmp_path, big_spec(small_spec))
    ref = str(tmp_path / "ref.h5")
    t0 = time.time()
    bazaar("run", spec, "-o", ref, "--quiet")  # rows held to the end
    full = time.time() - t0
    out = str(tmp_path / "out.h5")
    env = mpi_env()
    env["BAZAAR_FLUSH_BYTES"] = "1"
    env["BAZAAR_SEGMENT_GAMES"] = "50"
    kill9_and_resume(run_cmd(spec, out, ranks), run_cmd(spec, out, ranks, "--resume"), rng,
                     full * 1.5, env)
    assert_same_tables(ref, out)
    assert list(game_ids(out)) == list(range(640))


def test_corrupt_shard_is_set_aside_and_its_games_replayed(tmp_path, small_spec):
    spec = write_spec(tmp_path, big_spec(small_spec))
    ref = str(tmp_path / "ref.h5")
    bazaar("run", spec, "-o", ref, "--quiet")
    out = str(tmp_path / "out.h5")
    parts = out + ".parts"
    p = subprocess.Popen([BIN, "run", spec, "-o", out, "--quiet"], env=mpi_env(),
                         stderr=subprocess.DEVNULL, start_new_session=True)
    # killed once a shard's journal confirms games (a shard that confirms
    # none is removed, not set aside: the next test)
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:
        if any(os.path.getsize(os.path.join(parts, j)) > 0 for j in
               (os.listdir(parts) if os.path.isdir(parts) else []) if j.endswith(".journal")):
            break
        time.sleep(0.01)
    if p.poll() is not None:
        pytest.skip("the sweep ended before it could be killed")
    kill_session(p.pid)
    p.wait(timeout=60)
    shards = sorted(f for f in os.listdir(parts)
                    if f.endswith(".h5") and os.path.getsize(os.path.join(parts, f + ".journal")))
    victim = os.path.join(parts, shards[0])
    size = os.path.getsize(victim)
    with open(victim, "r+b") as f:  # garbage over the superblock
        f.write(b"\xde\xad\xbe\xef" * 64)
        f.truncate(size // 2)
    p = bazaar("run", spec, "-o", out, "--resume")
    assert "cannot be read" in p.stderr and "set aside" in p.stderr, p.stderr
    assert_same_tables(ref, out)
    assert os.path.exists(victim + ".bad")


def _reference_and_a_killed_run(tmp_path, small_spec):
    """A reference run, then the same sweep killed (-9) early: (spec, ref,
    out, parts folder)."""
    spec = write_spec(tmp_path, big_spec(small_spec))
    ref = str(tmp_path / "ref.h5")
    bazaar("run", spec, "-o", ref, "--quiet")
    out = str(tmp_path / "out.h5")
    p = subprocess.Popen([BIN, "run", spec, "-o", out, "--progress-interval", "0.02"],
                         env=mpi_env(), stderr=subprocess.PIPE, text=True)
    stop_after(p, 200, signal.SIGKILL)
    p.communicate()
    parts = out + ".parts"
    return spec, ref, out, parts


@pytest.mark.parametrize("layout,ranks", [("virtual", None), ("plain", None), ("virtual", 2)])
def test_games_larger_than_a_shard_checkpoint_are_written_and_resume_after_kill9(tmp_path,
                                                                                 layout, ranks):
    # 12,000 agents x 24 turns: about 100 MB of rows a game, put to the shard
    # between turns; past 32 MiB unflushed the shard is flushed, closed and
    # opened again (a checkpoint) while the durability thread may still hold
    # the sync before it (that once failed every such game: "unable to lock
    # file"). Then kill -9 at random moments (within checkpoints of a game
    # not yet committed, or the merge) and --resume: the uninterrupted file.
    n = 12000
    spec = write_spec(tmp_path, {
        "name": "large", "game": "electricity", "seed": 5, "repetitions": 3,
        "fixed": {"n_agents": n, "max_turns": 24,
                  "lineup": ["heuristic:truthful?skill=0.9", "heuristic:zi"]}})
    ref = str(tmp_path / "large.h5")
    t0 = time.time()
    bazaar("run", spec, "-o", ref, "--quiet", "--layout", layout, ranks=ranks)
    full = time.time() - t0
    assert not os.path.exists(ref + ".parts")
    with h5py.File(ref, "r") as f:
        games = f["games"][()]
        turns = f["electricity/turns"][()]
    assert list(games["game_id"]) == [0, 1, 2]
    assert all(s in (b"ok", "ok") for s in games["status"])
    for g in range(3):
        t = turns[turns["game_id"] == g]
        played = len(np.unique(t["turn"]))
        assert played >= 2
        assert len(t) == n * played
        assert sorted(np.unique(t["agent"])) == list(range(n))
    out = str(tmp_path / "out.h5")
    rng = random.Random(7)
    killed = kill9_and_resume(run_cmd(spec, out, ranks, "--layout", layout),
                              run_cmd(spec, out, ranks, "--resume", "--layout", layout), rng,
                              full * 0.9, kills=2)
    assert killed >= 1
    assert_same_tables(ref, out)
    assert not os.path.exists(out + ".parts")


def test_games_flushed_but_not_yet_journaled_at_a_kill_are_played_again(tmp_path, small_spec):
    """A shard's fsync and journal lines come from a background thread after
    the flush (out_durable.c): a kill -9 while it holds batches back leaves
    games whose rows and /games row are in the shard but that have no
    journal line. They do not count: --resume plays them again, and the file
    equals an uninterrupted run's."""
    spec = write_spec(tmp_path, big_spec(small_spec))
    ref = str(tmp_path / "ref.h5")
    bazaar("run", spec, "-o", ref, "--quiet")
    out = str(tmp_path / "out.h5")
    env = mpi_env()
    env["BAZAAR_TEST_DURABLE_DELAY_MS"] = "10000"  # every job waits 10 s
    env["BAZAAR_TEST_GAME_DELAY_MS"] = "5"
    env["BAZAAR_MERGE_FOLLOW"] = "0"  # one segment
    p = subprocess.Popen([BIN, "run", spec, "-o", out, "--progress-interval", "0.02"],
                         env=env, stderr=subprocess.PIPE, text=True)
    stop_after(p, 200, signal.SIGKILL)  # about 1.3 s in: two syncs, no job run yet
    p.communicate()
    parts = out + ".parts"
    flushed, journaled = set(), set()
    for name in os.listdir(parts):
        path = os.path.join(parts, name)
        if name.endswith(".h5"):
            with h5py.File(path, "r") as f:  # a flushed shard reads back after kill -9
                flushed |= {int(g) for g in f["games"]["game_id"] if g >= 0}
        elif name.endswith(".journal"):
            with open(path) as j:
                journaled |= {int(line.split()[1]) for line in j if line.startswith("committed ")}
    assert flushed, "the kill came before the first sync"
    assert not journaled, "the journal lines waited for the thread"
    bazaar("run", spec, "-o", out, "--resume", "--quiet")
    assert_same_tables(ref, out)


def test_an_unreadable_shard_whose_journal_confirms_nothing_is_removed(tmp_path, small_spec):
    """A kill inside a shard's first flush leaves an HDF5 file that cannot be
    read and an empty journal: no game of it counted, so resume removes it
    (no .bad kept for inspection, no parts folder left) and replays nothing
    it lost."""
    spec, ref, out, parts = _reference_and_a_killed_run(tmp_path, small_spec)
    shards = sorted(f for f in os.listdir(parts) if f.endswith(".h5"))
    if not shards:
        pytest.skip("killed before any shard was written")
    victim = os.path.join(parts, shards[0])
    size = os.path.getsize(victim)
    with open(victim, "r+b") as f:  # garbage over the superblock
        f.write(b"\xde\xad\xbe\xef" * 64)
        f.truncate(size // 2)
    open(victim + ".journal", "w").close()  # the journal confirms no game
    p = bazaar("run", spec, "-o", out, "--resume")
    assert "recorded no game (its journal confirms none" in p.stderr, p.stderr
    assert "set aside" not in p.stderr
    assert_same_tables(ref, out)
    assert not os.path.exists(parts)


def test_an_empty_shard_without_a_journal_and_a_journal_without_a_shard_are_removed(
        tmp_path, small_spec):
    """A kill between creating a shard's journal and its HDF5 file leaves a
    journal alone; a writer that created the file first could leave an
    empty file without a journal (seen: test_kill9 on 3 ranks kept
    a2-r2-0.h5.bad, 0 bytes). Neither recorded a game: resume removes both
    and leaves no parts folder."""
    spec, ref, out, parts = _reference_and_a_killed_run(tmp_path, small_spec)
    if not os.path.isdir(parts):
        pytest.skip("killed before the parts folder was made")
    open(os.path.join(parts, "a1-r5-0.h5"), "wb").close()  # empty, no journal
    open(os.path.join(parts, "a1-r6-0.h5.journal"), "w").close()  # journal, no shard
    p = bazaar("run", spec, "-o", out, "--resume")
    assert "a1-r5-0.h5 cannot be read" in p.stderr and "the file is empty): removed" in p.stderr
    assert "set aside" not in p.stderr
    assert_same_tables(ref, out)
    assert not os.path.exists(parts)


def _children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid and fields[0] != "Z":
                    out.append(int(d))
            except (OSError, IndexError):
                pass
    return out


def test_a_rank_that_dies_fails_the_job_loudly_and_resume_finishes(tmp_path, small_spec):
    spec = write_spec(tmp_path, big_spec(small_spec))
    ref = str(tmp_path / "ref.h5")
    bazaar("run", spec, "-o", ref, "--quiet")
    out = str(tmp_path / "out.h5")
    p = subprocess.Popen([MPIEXEC, "--oversubscribe", "-n", "3", BIN, "run", spec, "-o", out,
                          "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, env=mpi_env(), start_new_session=True)
    ranks = []
    for _ in range(100):
        ranks = [c for c in _children(p.pid)]
        if len(ranks) >= 3:
            break
        time.sleep(0.05)
    assert len(ranks) >= 3, "ranks did not start"
    time.sleep(0.5)
    os.kill(sorted(ranks)[-1], signal.SIGKILL)
    try:
        _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        kill_session(p.pid)
        pytest.fail("the job hung after a rank died")
    if p.returncode == 0:
        pytest.skip("the sweep finished before the kill")
    assert p.returncode != 0
    kill_session(p.pid)
    bazaar("run", spec, "-o", out, "--resume", "--quiet")
    assert_same_tables(ref, out)


def test_progress_lines_in_a_log(tmp_path, small_spec):
    spec = write_spec(tmp_path, small_spec)
    p = bazaar("run", spec, "-o", str(tmp_path / "o.h5"), "--progress-interval", "0.01")
    lines = [l for l in p.stderr.splitlines() if l.startswith("progress: ")]
    assert lines, p.stderr
    assert "48/48 games (100.0%)" in lines[-1] and "games/s" in lines[-1]
    assert "ETA" in lines[-1] and "0 failed" in lines[-1]


def test_a_torn_segment_costs_only_its_own_games(tmp_path, small_spec):
    spec = write_spec(tmp_path, big_spec(small_spec))
    ref = str(tmp_path / "ref.h5")
    bazaar("run", spec, "-o", ref, "--quiet")
    out = str(tmp_path / "out.h5")
    env = mpi_env()
    env["BAZAAR_SEGMENT_GAMES"] = "50"
    p = subprocess.Popen([BIN, "run", spec, "-o", out, "--progress-interval", "0.02"], env=env,
                         stderr=subprocess.PIPE, text=True)
    stop_after(p, 200, signal.SIGTERM)  # once a few segments are written
    p.communicate(timeout=60)
    if p.returncode == 0:
        pytest.skip("the sweep finished before the signal")
    parts = out + ".parts"
    segs = sorted(f for f in os.listdir(parts) if f.endswith(".h5"))
    if len(segs) < 2:
        pytest.skip("not enough segments written before the stop")
    recorded = sum(len(game_ids(os.path.join(parts, f))) for f in segs)
    victim = os.path.join(parts, segs[0])
    lost = len(game_ids(victim))
    assert lost <= 50
    with open(victim, "r+b") as f:
        f.truncate(os.path.getsize(victim) // 2)
    p = bazaar("run", spec, "-o", out, "--resume")
    assert f"{recorded - lost} of 640 games already recorded" in p.stderr
    assert_same_tables(ref, out)
