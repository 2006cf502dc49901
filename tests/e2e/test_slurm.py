"""slurm/sweep.sbatch on a real single-node SLURM: signalled before the time
limit, requeued, resumed until the sweep is complete, and the result equal
table by table to a run without SLURM. Also the mpirun fallback launcher.

Brings up munged, slurmctld and slurmd by hand (tests/slurm/cluster.py) and
stops them by PID. Skipped, with the reason, where SLURM cannot run here (not
root, slurm-wlm/munge not installed, daemons that do not start).
"""
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import h5py
import pytest

from conftest import BIN, MPIEXEC, ROOT, assert_same_tables, mpi_env

sys.path.insert(0, os.path.join(ROOT, "tests", "slurm"))
from cluster import ClusterUnavailable, SlurmCluster  # noqa: E402

SBATCH = os.path.join(ROOT, "slurm", "sweep.sbatch")
SPEC_TEMPLATE = os.path.join(ROOT, "tests", "slurm", "e2e_sweep.json")
RANKS = 2
# The chain: --time=1 (SLURM's minimum, one minute) with the stop signal due
# 55 s before the end, i.e. 5 s after each start. slurmctld looks at signal
# times and time limits on a fixed 30 s tick, so the first run gets 5-35 s
# of work and each requeued one ~19 s (a requeued job waits cred_expire+1 =
# 11 s, see cluster.py); with ~45 s of work, the sweep needs two to four
# runs, about 1.5 minutes.
TIME_LIMIT = "1"
SIGNAL = "B:USR1@55"
WORK_S = 45.0
GAME_DELAY_MS = 250
CHAIN_TIMEOUT_S = 300


def _log(msg):
    print("[test_slurm %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


@pytest.fixture(scope="module")
def workdir():
    # short path: the munge socket lives here (unix socket paths <= 107 bytes)
    d = tempfile.mkdtemp(prefix="bzslurm-")
    yield d
    if os.environ.get("BZ_SLURM_KEEP"):
        _log("kept %s (BZ_SLURM_KEEP)" % d)
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(workdir):
    if not sys.platform.startswith("linux"):
        print("BZ_TEST_SKIPPED: test_slurm: needs Linux", file=sys.__stderr__)
        pytest.skip("SLURM test needs Linux")
    c = SlurmCluster(os.path.join(workdir, "cluster"), cpus=RANKS, log=_log)
    try:
        c.start()
    except ClusterUnavailable as e:
        reason = "cannot run a SLURM cluster on this machine: %s" % e
        # past pytest's capture, so that ctest's log says it too
        print("BZ_TEST_SKIPPED: test_slurm: %s" % reason, file=sys.__stderr__,
              flush=True)
        pytest.skip(reason)
    _log("SLURM up: SLURM_CONF=%s" % c.conf)
    try:
        yield c
    finally:
        c.stop()
        _log("SLURM daemons stopped")


def _job_env():
    """What the job needs from us: the binary, OpenMPI's root/oversubscribe
    settings (for the mpirun launcher), nothing of an outer SLURM job."""
    env = mpi_env()
    env["BZ_BIN"] = os.path.abspath(BIN)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _spec(path, repetitions):
    with open(SPEC_TEMPLATE) as f:
        spec = json.load(f)
    spec["repetitions"] = int(repetitions)
    with open(path, "w") as f:
        json.dump(spec, f, indent=1)
    return path


def _games_per_rep(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    return math.prod(len(v) for v in spec["grid"].values())


def _reference_run(spec, out, cwd):
    """The same sweep without SLURM, on RANKS ranks under mpiexec."""
    cmd = [MPIEXEC, "--oversubscribe", "-n", str(RANKS), BIN, "run", spec,
           "-o", out, "--quiet"]
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=cwd, env=mpi_env(), capture_output=True,
                       text=True, timeout=600)
    dt = time.monotonic() - t0
    assert p.returncode == 0, "%s exited %d:\n%s" % (cmd, p.returncode,
                                                     p.stderr[-3000:])
    return dt


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return "(no %s)" % path


def _diagnose(c, jobid, joblog):
    return "\n".join([
        "--- scontrol show job %s:" % jobid,
        c.run(["scontrol", "show", "job", str(jobid)], check=False).stdout,
        "--- job log (last 60 lines):",
        "\n".join(_read(joblog).splitlines()[-60:]),
        "--- slurmctld log (last 20 lines):",
        "\n".join(_read(os.path.join(c.dir, "log", "slurmctld.log"))
                  .splitlines()[-20:]),
    ])


def _submit_and_wait(c, cwd, args, env_extra=None, timeout_s=CHAIN_TIMEOUT_S,
                     watch=None):
    """sbatch, then poll until the job (chain) ends; watch(jobid, joblog,
    info) is called on every poll."""
    env = _job_env()
    if env_extra:
        env.update(env_extra)
    t0 = time.monotonic()
    jobid = c.sbatch(args, env=env, cwd=cwd)
    joblog = os.path.join(cwd, "job-%d.log" % jobid)
    states = []

    def on_poll(info):
        s = "%s/%s" % (info.get("JobState"), info.get("Restarts"))
        if not states or states[-1] != s:
            states.append(s)
            _log("job %d: %s (%.0f s)" % (jobid, s, time.monotonic() - t0))
        if watch:
            watch(jobid, joblog, info)

    try:
        info = c.wait_for_job_end(jobid, timeout_s, on_poll=on_poll)
    except (TimeoutError, RuntimeError) as e:
        c.run(["scancel", str(jobid)], check=False)
        pytest.fail("%s\n%s" % (e, _diagnose(c, jobid, joblog)))
    return jobid, joblog, info, time.monotonic() - t0


def test_sweep_is_signalled_requeued_and_resumed_to_the_same_file(
        cluster, workdir):
    d = os.path.join(workdir, "requeue")
    os.makedirs(d)

    # A fixed sweep slowed by bazaar's test hook (BAZAAR_TEST_GAME_DELAY_MS,
    # a sleep after each game that a stop signal cuts short): WORK_S of work
    # on RANKS ranks whatever the machine's speed, more than the first run
    # can get before SLURM's signal, and only a few MB of output.
    per_rep = _games_per_rep(SPEC_TEMPLATE)
    reps = math.ceil(WORK_S * 1000 * RANKS / GAME_DELAY_MS / per_rep)
    n_games = reps * per_rep
    spec = _spec(os.path.join(d, "sweep.json"), reps)
    ref = os.path.join(d, "reference.h5")
    dt_ref = _reference_run(spec, ref, d)
    _log("reference run without SLURM (no delay): %d games in %.1f s" % (n_games, dt_ref))

    # Safety net for a heavily loaded machine: if the first run is about to
    # finish before SLURM's signal came, send the batch shell the signal
    # --signal=B:USR1 would (scancel --batch), and say so.
    injected = []

    def watch(jobid, joblog, info):
        if injected or info.get("Restarts") != "0" or \
                info.get("JobState") != "RUNNING":
            return
        done = re.findall(r"^progress: (\d+)/%d games" % n_games,
                          _read(joblog), re.M)
        if done and int(done[-1]) >= 0.9 * n_games:
            injected.append(int(done[-1]))
            _log("WARNING: %s of %d games done and SLURM has not signalled "
                 "yet: sending USR1 to the batch shell by hand" % (done[-1],
                                                                  n_games))
            cluster.run(["scancel", "--batch", "--signal=USR1", str(jobid)],
                        check=False)

    extra = {"BZ_ARGS": "--progress-interval 1",
             "BAZAAR_TEST_GAME_DELAY_MS": str(GAME_DELAY_MS)}

    out = os.path.join(d, "out.h5")
    jobid, joblog, info, dt_chain = _submit_and_wait(cluster, d, [
        "--time=%s" % TIME_LIMIT, "--signal=%s" % SIGNAL,
        "--nodes=1", "--ntasks-per-node=%d" % RANKS,
        "--output=%s" % os.path.join(d, "job-%j.log"),
        SBATCH, "sweep.json", "out.h5"], watch=watch, env_extra=extra)
    log = _read(joblog)
    diag = _diagnose(cluster, jobid, joblog)
    restarts = int(info.get("Restarts", "0"))
    starts = re.findall(r"restart (\d+): start on .*", log)
    _log("job %d: %s, exit %s, %d restart(s), %d run(s), %.0f s%s" % (
        jobid, info.get("JobState"), info.get("ExitCode"), restarts,
        len(starts), dt_chain,
        " (first stop sent by the test, not by SLURM)" if injected else ""))

    assert info.get("JobState") == "COMPLETED" and \
        info.get("ExitCode") == "0:0", diag
    assert not injected, "SLURM's --signal did not stop the first run " \
        "before 90% of the sweep was done\n" + diag
    assert restarts >= 1, "the job was never requeued (the sweep finished " \
        "before the first signal?)\n" + diag
    assert len(starts) == restarts + 1, diag
    # every run but the last was stopped by the signal and requeued itself
    assert len(re.findall(r"got SIGUSR1", log)) >= restarts, diag
    assert len(re.findall(r"bazaar exited with code 3 ", log)) == restarts, \
        diag
    assert len(re.findall(r"requeueing job %d" % jobid, log)) == restarts, \
        diag
    # requeued runs resumed (and did not start over)
    assert all(" --resume" in line for line in re.findall(
        r"restart [1-9]\d*: start on .*", log)), diag
    resumed = [int(x) for x in re.findall(
        r"resuming: (\d+) of %d games already recorded" % n_games, log)]
    assert len(resumed) == restarts and all(x > 0 for x in resumed) and \
        resumed == sorted(resumed), diag
    assert re.search(r"^progress: \d+/%d games" % n_games, log, re.M), diag
    assert "sweep complete: out.h5" in log, diag

    assert not os.path.exists(out + ".parts"), "shards left behind\n" + diag
    assert_same_tables(ref, out)
    with h5py.File(out, "r") as f:
        assert int(f.attrs["ranks"]) == RANKS
        assert int(f.attrs["n_games"]) == n_games
        assert len(f["games"]) == n_games


def test_mpirun_launcher_runs_the_sweep_on_every_task(cluster, workdir):
    d = os.path.join(workdir, "mpirun")
    os.makedirs(d)
    spec = _spec(os.path.join(d, "sweep.json"), 20)
    ref = os.path.join(d, "reference.h5")
    _reference_run(spec, ref, d)
    jobid, joblog, info, dt = _submit_and_wait(cluster, d, [
        "--time=5", "--nodes=1", "--ntasks-per-node=%d" % RANKS,
        "--output=%s" % os.path.join(d, "job-%j.log"),
        SBATCH, "sweep.json", "out.h5"], env_extra={"BZ_LAUNCHER": "mpirun"},
        timeout_s=120)
    log = _read(joblog)
    diag = _diagnose(cluster, jobid, joblog)
    assert info.get("JobState") == "COMPLETED", diag
    assert ": mpirun " in log and "sweep complete" in log, diag
    assert_same_tables(ref, os.path.join(d, "out.h5"))
    with h5py.File(os.path.join(d, "out.h5"), "r") as f:
        assert int(f.attrs["ranks"]) == RANKS, diag


def test_bad_input_ends_the_chain_without_requeue(cluster, workdir):
    d = os.path.join(workdir, "bad")
    os.makedirs(d)
    with open(os.path.join(d, "bad.json"), "w") as f:
        f.write('{"name": "bad", "game": "electricity", "repetitions": -1}')
    jobid, joblog, info, dt = _submit_and_wait(cluster, d, [
        "--time=5", "--nodes=1", "--ntasks-per-node=1",
        "--output=%s" % os.path.join(d, "job-%j.log"),
        SBATCH, "bad.json", "out.h5"], timeout_s=60)
    diag = _diagnose(cluster, jobid, joblog)
    assert info.get("JobState") == "FAILED", diag
    assert info.get("ExitCode") == "2:0", diag
    assert info.get("Restarts") == "0", diag
    assert "not requeueing" in _read(joblog), diag
