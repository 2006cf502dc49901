"""The follower merge (src/sched_follow.c): a run's rank 0 starts `bazaar
merge --follow`, which merges closed segments into OUT.tmp while the sweep
plays. The tables equal a run that merges after the play
(BAZAAR_MERGE_FOLLOW=0) on any number of ranks; the follower merges games
before the play ends; a follower that fails or is killed leaves the merge to
rank 0; rank 0 killed while the follower runs: the follower goes, removing
its tmp, and --resume gives the uninterrupted file."""
import os
import signal
import subprocess
import time

import pytest

from conftest import (BIN, MPIEXEC, assert_same_tables, game_ids, kill_session, mpi_env,
                      virtual_tables, write_spec)


def _env(**extra):
    """Following forced on (BAZAAR_MERGE_FOLLOW=1) unless extra says
    otherwise (None: unset, bazaar decides)."""
    env = mpi_env()
    env["BAZAAR_MERGE_FOLLOW"] = "1"
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def _cmd(spec, out, ranks=None, *more):
    cmd = [BIN, "run", spec, "-o", out, "--quiet", *more]
    if ranks:
        cmd = [MPIEXEC, "--oversubscribe", "-n", str(ranks)] + cmd
    return cmd


def _run(spec, out, ranks=None, *more, **env):
    p = subprocess.run(_cmd(spec, out, ranks, *more), capture_output=True, text=True,
                       timeout=300, env=_env(**env))
    assert p.returncode == 0, p.stderr
    return p


def _reference(tmp_path, spec):
    ref = str(tmp_path / "ref.h5")
    _run(spec, ref, BAZAAR_MERGE_FOLLOW=0)
    return ref


def _setup(tmp_path, small_spec):
    """The spec, its reference file (merged after the play) and the path of
    the run under test."""
    spec = write_spec(tmp_path, small_spec)
    return spec, _reference(tmp_path, spec), str(tmp_path / "out.h5")


def _followers(pid):
    """Pids of the follower merges whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmdline = f.read().split(b"\0")
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and b"--follow" in cmdline:
            out.append(int(d))
    return out


def _wait_for(cond, what, limit=120.0):
    t0 = time.time()
    while not cond():
        if time.time() - t0 > limit:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.01)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _clean(out):
    assert not os.path.exists(out + ".tmp"), "OUT.tmp left"
    assert not os.path.exists(out + ".lock"), "OUT.lock left"
    assert not os.path.exists(out + ".parts"), "OUT.parts left"


@pytest.mark.parametrize("layout", ["plain", "virtual"])
@pytest.mark.parametrize("ranks", [None, 2, 4, 7])
def test_following_gives_the_tables_of_a_merge_after_the_play(tmp_path, small_spec, ranks,
                                                              layout):
    spec, ref, out = _setup(tmp_path, small_spec)
    # many small segments: the follower merges in many blocks
    stats = tmp_path / "follow.stats"
    _run(spec, out, ranks, "--layout", layout, BAZAAR_SEGMENT_GAMES=3, BAZAAR_FOLLOW_STATS=stats)
    assert "seconds_to_final" in stats.read_text(), "the follower did not write OUT"
    assert_same_tables(ref, out)
    _clean(out)


def test_the_follower_merges_in_the_runs_layout(tmp_path, small_spec):
    spec, ref, out = _setup(tmp_path, small_spec)
    p = subprocess.Popen(_cmd(spec, out, None, "--layout", "virtual"), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env=_env(BAZAAR_SEGMENT_GAMES=2, BAZAAR_TEST_GAME_DELAY_MS=10))
    try:
        f = _wait_for_follower(p)
        with open(f"/proc/{f}/cmdline", "rb") as fc:
            argv = fc.read().split(b"\0")
        _, err = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            kill_session(p.pid)
    assert p.returncode == 0, err
    i = argv.index(b"--layout")
    assert argv[i + 1] == b"virtual", argv
    assert "merging in this process" not in err, err  # the follower wrote OUT
    assert_same_tables(ref, out)
    assert virtual_tables(out), "OUT is not in the virtual layout"
    _clean(out)


def test_the_follower_merges_games_before_the_final_message(tmp_path, small_spec):
    spec, ref, out = _setup(tmp_path, small_spec)
    stats = tmp_path / "follow.stats"
    gate = tmp_path / "gate"
    # rank 0 holds the final message until the gate opens; the test opens
    # it once the follower says it merged games (it writes its figures
    # after every block): the merge went on before the play was declared
    # over, from closed segments alone
    p = subprocess.Popen(_cmd(spec, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, start_new_session=True,
                         env=_env(BAZAAR_SEGMENT_GAMES=4, BAZAAR_FOLLOW_STATS=stats,
                                  BAZAAR_TEST_FOLLOW_GATE=gate))
    try:
        def merged():
            try:
                st = dict(line.split() for line in stats.read_text().splitlines())
            except (OSError, ValueError):
                return 0
            return int(st.get("merged_during_play", 0))
        _wait_for(lambda: merged() > 0 or p.poll() is not None, "the follower's first block")
        assert p.poll() is None, p.stderr.read()
        gate.write_text("open")
        _, err = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            kill_session(p.pid)
    assert p.returncode == 0, err
    st = dict(line.split() for line in stats.read_text().splitlines())
    assert int(st["games"]) == 48
    assert int(st["merged_during_play"]) > 0, st
    assert int(st["advances"]) > 0, st
    assert_same_tables(ref, out)
    _clean(out)


def test_following_off_starts_no_follower(tmp_path, small_spec):
    spec = write_spec(tmp_path, small_spec)
    out = str(tmp_path / "out.h5")
    stats = tmp_path / "follow.stats"
    _run(spec, out, None, BAZAAR_MERGE_FOLLOW=0, BAZAAR_FOLLOW_STATS=stats)
    assert not stats.exists()
    _clean(out)


def _stats(path):
    return dict(line.split() for line in path.read_text().splitlines())


@pytest.mark.parametrize("ranks", [None, "all", "pinned"])
def test_by_default_it_follows_where_a_cpu_is_idle_or_ranks_share_the_cpus(tmp_path, small_spec,
                                                                            ranks):
    """BAZAAR_MERGE_FOLLOW unset: a follower where rank 0's node has a CPU
    beyond one per rank, at nice +10 (it merges on what the play leaves
    idle); where every CPU plays and there is more than one rank, at nice 0
    (its work is on the critical path wherever it runs: beside the play it
    overlaps it); one rank on one CPU has none (nothing would run beside
    it)."""
    cpus = sorted(os.sched_getaffinity(0))
    n = len(cpus) if ranks == "all" else None
    spec = write_spec(tmp_path, small_spec)
    out = str(tmp_path / "out.h5")
    stats = tmp_path / "follow.stats"
    env = _env(BAZAAR_MERGE_FOLLOW=None, BAZAAR_MERGE_FOLLOW_NICE=None,
               BAZAAR_FOLLOW_STATS=stats)
    pin = (lambda: os.sched_setaffinity(0, {cpus[0]})) if ranks == "pinned" else None
    p = subprocess.run(_cmd(spec, out, n), capture_output=True, text=True, timeout=300, env=env,
                       preexec_fn=pin)
    assert p.returncode == 0, p.stderr
    idle = ranks != "pinned" and len(cpus) > (n or 1)
    expect = idle or (n or 1) > 1
    assert stats.exists() == expect, (cpus, n)
    if expect:
        base = os.getpriority(os.PRIO_PROCESS, 0)
        assert int(_stats(stats)["nice"]) == min(19, base + (10 if idle else 0)), (cpus, n)
    _clean(out)


def test_a_follower_that_fails_leaves_the_merge_to_rank_0(tmp_path, small_spec):
    spec, ref, out = _setup(tmp_path, small_spec)
    p = _run(spec, out, None, BAZAAR_TEST_FOLLOW_FAIL=1)
    assert "the follower merge" in p.stderr and "merging in this process" in p.stderr, p.stderr
    assert_same_tables(ref, out)
    _clean(out)


@pytest.mark.parametrize("ranks", [None, 2])
def test_kill9_of_the_follower_leaves_the_merge_to_rank_0(tmp_path, small_spec, ranks):
    spec, ref, out = _setup(tmp_path, small_spec)
    p = subprocess.Popen(_cmd(spec, out, ranks), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, start_new_session=True,
                         env=_env(BAZAAR_SEGMENT_GAMES=2, BAZAAR_TEST_GAME_DELAY_MS=30))
    try:
        f = _wait_for_follower(p)
        # once it has merged something: OUT.tmp exists from its start
        _wait_for(lambda: os.path.exists(out + ".tmp") or p.poll() is not None, "OUT.tmp")
        os.kill(f, signal.SIGKILL)
        _, err = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            kill_session(p.pid)
    assert p.returncode == 0, err
    assert "killed by signal 9" in err and "merging in this process" in err, err
    assert_same_tables(ref, out)
    _clean(out)


def _all_children(pid):
    """Every descendant of pid (mpiexec's ranks)."""
    out, todo = [], [pid]
    while todo:
        q = todo.pop()
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == q:
                        out.append(int(d))
                        todo.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _wait_for_follower(p):
    """The pid of the follower merge of the run p (bazaar or mpiexec: the
    follower's parent is p or one of its descendants), once it runs; skips
    the test if the sweep ends first."""
    def follower():
        for pid in [p.pid] + _all_children(p.pid):
            f = _followers(pid)
            if f:
                return f[0]
        return None
    _wait_for(lambda: follower() is not None or p.poll() is not None, "the follower")
    f = follower()
    if f is None:
        pytest.skip("the sweep ended before its follower could be seen")
    return f


def _a_segment_closed(out):
    parts = out + ".parts"
    if not os.path.isdir(parts):
        return False
    for n in os.listdir(parts):
        if n.endswith(".journal"):
            with open(os.path.join(parts, n)) as f:
                if f.read().endswith("closed\n"):
                    return True
    return False


@pytest.mark.parametrize("layout", ["plain", "virtual"])
def test_kill9_of_rank_0_ends_the_follower_and_resume_gives_the_same_file(tmp_path, small_spec,
                                                                        layout):
    spec, ref, out = _setup(tmp_path, small_spec)
    env = _env(BAZAAR_SEGMENT_GAMES=2, BAZAAR_TEST_GAME_DELAY_MS=30)
    p = subprocess.Popen(_cmd(spec, out, None, "--layout", layout), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, start_new_session=True, env=env)
    try:
        f = _wait_for_follower(p)
        # a closed segment merged, then rank 0 alone is killed (its follower
        # is not: it must notice and go by itself)
        _wait_for(lambda: _a_segment_closed(out) or p.poll() is not None, "a closed segment")
        os.kill(p.pid, signal.SIGKILL)
        p.communicate(timeout=300)
        _wait_for(lambda: not _alive(f), "the follower to end")
    finally:
        if p.poll() is None:
            kill_session(p.pid)
    if p.returncode == 0:
        pytest.skip("the sweep finished before the kill")
    assert not os.path.exists(out + ".tmp"), "the follower left OUT.tmp"
    assert not os.path.exists(out)
    r = subprocess.run(_cmd(spec, out, None, "--resume", "--layout", layout), capture_output=True,
                       text=True, timeout=300, env=_env())
    assert r.returncode == 0, r.stderr
    # the resumed run's follower took its sources (the older attempt's
    # shards) and the final ones as the same: no fallback
    assert "merging in this process" not in r.stderr, r.stderr
    assert_same_tables(ref, out)
    assert bool(virtual_tables(out)) == (layout == "virtual")
    ids = game_ids(out)
    assert list(ids) == list(range(48))
    _clean(out)


def test_merge_help_documents_the_follower():
    p = subprocess.run([BIN, "merge", "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0
    assert "--follow" in p.stdout and "BAZAAR_MERGE_FOLLOW=0" in p.stdout


def test_a_follower_stuck_after_the_final_message_is_killed_and_rank_0_merges(tmp_path,
                                                                               small_spec):
    # a follower that hangs (no CPU, no I/O) instead of dying: rank 0 must
    # not wait for it forever; it kills it and merges in process
    spec, ref, out = _setup(tmp_path, small_spec)
    p = subprocess.run(_cmd(spec, out), capture_output=True, text=True, timeout=120,
                       env=_env(BAZAAR_TEST_FOLLOW_HANG="final", BAZAAR_FOLLOW_STALL_S=1))
    assert p.returncode == 0, p.stderr
    assert "made no progress" in p.stderr and "merging in this process" in p.stderr, p.stderr
    assert_same_tables(ref, out)
    _clean(out)


def test_a_follower_that_never_reads_its_pipe_is_killed_and_rank_0_merges(tmp_path, small_spec):
    spec, ref, out = _setup(tmp_path, small_spec)
    p = subprocess.run(_cmd(spec, out, 2), capture_output=True, text=True, timeout=120,
                       env=_env(BAZAAR_TEST_FOLLOW_HANG="play", BAZAAR_FOLLOW_STALL_S=1))
    assert p.returncode == 0, p.stderr
    assert "made no progress" in p.stderr and "merging in this process" in p.stderr, p.stderr
    assert_same_tables(ref, out)
    _clean(out)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1])
def test_a_stop_ends_a_stuck_follower_and_resume_gives_the_same_file(tmp_path, small_spec, sig):
    # the stop path must not wait for the follower to look at its pipe
    # again (it may be in a long block, or stuck): exit 3, no OUT, no
    # OUT.tmp, no follower left, and --resume finishes the sweep
    spec, ref, out = _setup(tmp_path, small_spec)
    p = subprocess.Popen(_cmd(spec, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, start_new_session=True,
                         env=_env(BAZAAR_SEGMENT_GAMES=2, BAZAAR_TEST_GAME_DELAY_MS=30,
                                  BAZAAR_TEST_FOLLOW_HANG="play"))
    try:
        _wait_for(lambda: _followers(p.pid) or p.poll() is not None, "the follower")
        f = _followers(p.pid)
        _wait_for(lambda: _a_segment_closed(out) or p.poll() is not None, "a closed segment")
        if p.poll() is not None or not f:
            pytest.skip("the sweep ended before the stop")
        p.send_signal(sig)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            kill_session(p.pid)
    assert p.returncode == 3, err
    assert "--resume" in err, err
    assert not _alive(f[0]), "the follower outlived rank 0"
    assert not os.path.exists(out + ".tmp"), "OUT.tmp left"
    assert not os.path.exists(out + ".lock"), "OUT.lock left"
    assert not os.path.exists(out), "a stopped run wrote OUT"
    r = subprocess.run(_cmd(spec, out, None, "--resume"), capture_output=True, text=True,
                       timeout=300, env=_env())
    assert r.returncode == 0, r.stderr
    # the resumed run's follower took its sources (the older attempt's
    # shards) and the final ones as the same: no fallback
    assert "merging in this process" not in r.stderr, r.stderr
    assert_same_tables(ref, out)
    _clean(out)


def _status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split()[1]
    return None


def test_the_follower_inherits_no_descriptor_and_no_signal_mask_of_rank_0(tmp_path, small_spec):
    # on 2 ranks rank 0 holds MPI's sockets and shared memory: none of it
    # reaches the follower (only its pipe, the lock, its live pipe and what
    # it opened itself: the parts and OUT.tmp)
    spec = write_spec(tmp_path, small_spec)
    out = str(tmp_path / "out.h5")
    p = subprocess.Popen(_cmd(spec, out, 2), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, start_new_session=True,
                         env=_env(BAZAAR_SEGMENT_GAMES=2, BAZAAR_TEST_GAME_DELAY_MS=30,
                                  BAZAAR_TEST_FOLLOW_HANG="play"))
    try:
        f = _wait_for_follower(p)
        def descriptors():
            fds = {}
            for d in os.listdir(f"/proc/{f}/fd"):
                try:
                    fds[int(d)] = os.readlink(f"/proc/{f}/fd/{d}")
                except OSError:
                    pass
            return fds
        # once it holds OUT.tmp it is parked (BAZAAR_TEST_FOLLOW_HANG=play):
        # its descriptors no longer change (its start-up opens and closes
        # files of its own, e.g. under ASan)
        _wait_for(lambda: out + ".tmp" in descriptors().values() or p.poll() is not None,
                  "the follower to open OUT.tmp")
        fds = descriptors()
        blocked = _status(f, "SigBlk")
        ignored = int(_status(f, "SigIgn"), 16)
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            kill_session(p.pid)
    assert fds[0].startswith("pipe:"), fds
    assert fds[3] == out + ".lock", fds
    assert fds[4].startswith("pipe:"), fds
    for fd, target in fds.items():
        if fd > 4:
            assert target.startswith(str(tmp_path)), fds
        assert not target.startswith("socket:"), fds
    assert int(blocked, 16) == 0, blocked
    assert not ignored & (1 << (signal.SIGPIPE - 1)), hex(ignored)
