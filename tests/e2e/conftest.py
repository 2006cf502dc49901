"""Shared helpers for the end-to-end tests: where the binary is, running it
(with or without mpiexec), comparing results files table by table, and the
test LLM server (tests/llm_server.py): starting it, its control calls, and
model registries that point at it."""
import json
import os
import shutil
import subprocess
import sys
import urllib.request

import h5py
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _find_bin():
    b = os.environ.get("BZ_BIN")
    if b:
        return b
    for d in ("build", "build-lead"):
        p = os.path.join(ROOT, d, "bazaar")
        if os.path.exists(p):
            return p
    raise RuntimeError("set BZ_BIN to the bazaar binary")


BIN = _find_bin()
MPIEXEC = os.environ.get("MPIEXEC") or shutil.which("mpiexec") or "mpiexec"


def mpi_env():
    env = dict(os.environ)
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
    # keep OpenMPI off the network interfaces a container may not have
    env.setdefault("OMPI_MCA_btl", "self,vader")
    env.setdefault("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
    return env


def bazaar(*args, ranks=None, check=True, timeout=300, **kw):
    """Run bazaar (under mpiexec -n ranks when ranks is given)."""
    cmd = [BIN, *map(str, args)]
    if ranks:
        cmd = [MPIEXEC, "--oversubscribe", "-n", str(ranks), *cmd]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=mpi_env(),
                       cwd=kw.pop("cwd", ROOT), **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def kill_session(sid, sig=9):
    """Send sig to every process of session sid (mpiexec puts each rank in a
    process group of its own, so killpg would miss them), then wait until
    they are gone: a kill -9 of the whole job, as a node failure would."""
    import signal as _signal
    import time as _time

    def members():
        pids = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        state = f.read().rsplit(")", 1)[1].split()[0]
                    if state != "Z" and os.getsid(int(d)) == sid:  # zombies are dead
                        pids.append(int(d))
                except (OSError, IndexError):
                    pass
        return pids

    for _ in range(200):
        pids = members()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        _time.sleep(0.05)
        sig = _signal.SIGKILL
    raise RuntimeError(f"processes of session {sid} survive SIGKILL: {members()}")


def write_spec(tmp_path, spec, name="spec.json"):
    path = tmp_path / name
    path.write_text(json.dumps(spec, indent=1))
    return str(path)


def table(path, name):
    with h5py.File(path, "r") as f:
        return f[name][...]


def strs(col):
    """A string column as Python strings (h5py gives bytes or str)."""
    return [x.decode() if isinstance(x, bytes) else str(x) for x in col]


def datasets(path, parts=True):
    """Every dataset of the file, sorted; parts=False leaves out /.parts/
    (the virtual layout's storage: copies of the ranks' chunks that its
    tables map, which differ with the ranks; not tables)."""
    names = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return sorted(n for n in names if parts or not n.startswith(".parts/"))


def virtual_tables(path):
    """The tables of the file that are HDF5 virtual datasets (--layout
    virtual), sorted; [] for a plain file."""
    with h5py.File(path, "r") as f:
        return [n for n in datasets(path, parts=False) if f[n].is_virtual]


def assert_same_tables(a, b):
    """Every table of a and b holds the same rows, byte for byte (strings by
    value), in the same order, whatever their layouts (--layout plain or
    virtual) and numbers of ranks."""
    ta, tb = datasets(a, parts=False), datasets(b, parts=False)
    assert ta == tb, f"tables differ: {ta} vs {tb}"
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for name in ta:
            x, y = fa[name][()], fb[name][()]
            assert x.dtype == y.dtype, f"{name}: dtypes differ"
            assert len(x) == len(y), f"{name}: {len(x)} vs {len(y)} rows"
            ax, ay = dict(fa[name].attrs), dict(fb[name].attrs)
            assert ax.keys() == ay.keys(), f"{name}: attributes differ"
            for k in ax:
                assert list(ax[k]) == list(ay[k]), f"{name}.attrs[{k}] differs"
            for col in x.dtype.names:
                if x.dtype[col].kind == "O":
                    assert list(x[col]) == list(y[col]), f"{name}.{col} differs"
                else:
                    assert x[col].tobytes() == y[col].tobytes(), f"{name}.{col} differs"


def assert_same_rows(a, b, names, skip=("cache_hits",)):
    """Tables names of a and b hold the same rows, byte for byte (strings by
    value), but for the columns in skip."""
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for name in names:
            x, y = fa[name][()], fb[name][()]
            assert len(x) == len(y), name
            for col in x.dtype.names:
                if col in skip:
                    continue
                if x.dtype[col].kind == "O":
                    assert list(x[col]) == list(y[col]), f"{name}.{col}"
                else:
                    assert x[col].tobytes() == y[col].tobytes(), f"{name}.{col}"


def big_spec(small_spec):
    """small_spec with 640 games of 30 agents and 24 turns: a sweep that
    lasts long enough (about a second on one rank) to be killed at random
    moments, in its play or its merge."""
    s = dict(small_spec)
    s["repetitions"] = 40
    s["fixed"] = {"n_agents": 30, "max_turns": 24}
    return s


def run_cmd(spec, out, ranks=None, *more):
    """The argv of `bazaar run spec -o out --quiet more...` (under mpiexec -n
    ranks when given)."""
    cmd = [BIN, "run", spec, "-o", out, "--quiet", *map(str, more)]
    if ranks:
        cmd = [MPIEXEC, "--oversubscribe", "-n", str(ranks)] + cmd
    return cmd


def stop_after(p, games, sig):
    """Send sig to p (a run with --progress-interval and stderr piped, as
    text) once its progress lines report `games` games done."""
    for line in p.stderr:
        if line.startswith("progress: ") and int(line.split()[1].split("/")[0]) >= games:
            p.send_signal(sig)
            return


def kill9_and_resume(first, again, rng, limit_s, env=None, kills=3, attempts=6):
    """Run the argv first, then again (a --resume) until one attempt exits 0;
    each of the first `kills` attempts still running after a random moment in
    [0.05 s, limit_s] is killed -9 as a whole job (kill_session). Fails the
    test when no attempt completes; returns how many were killed."""
    import time as _time

    killed, err = 0, ""
    for attempt in range(attempts):
        p = subprocess.Popen(again if attempt else first, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, env=env or mpi_env(),
                             start_new_session=True)
        if attempt < kills:
            _time.sleep(rng.uniform(0.05, limit_s))
            if p.poll() is None:
                kill_session(p.pid)
                killed += 1
        _, err = p.communicate(timeout=300)
        if p.returncode == 0:
            return killed
    pytest.fail(f"sweep did not complete after resumes: {err}")


def game_ids(path):
    with h5py.File(path, "r") as f:
        return np.array(f["games"]["game_id"])


@pytest.fixture
def small_spec():
    """A heuristic sweep of 48 quick games."""
    return {
        "name": "small", "game": "electricity", "seed": 11, "repetitions": 3,
        "fixed": {"n_agents": 5, "max_turns": 12},
        "grid": {"supply_ratio": [0.8, 1.2], "volatility": [0.1, 0.5],
                 "communication": [True, False], "lineup": ["mixed", "gap"]},
        "lineups": {
            "mixed": ["heuristic:truthful?skill=0.9", "heuristic:greedy?skill=0.7",
                      "heuristic:zi", "heuristic:reciprocal?skill=0.8"],
            "gap": ["heuristic:greedy?skill=0.95", "heuristic:greedy?skill=0.1"],
        },
    }


@pytest.fixture(scope="module")
def server():
    """tests/llm_server.py on a port of its choosing, one per test module;
    yields the port."""
    exe = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    p = subprocess.Popen([exe, os.path.join(ROOT, "tests", "llm_server.py")],
                         stdout=subprocess.PIPE, text=True)
    port = int(p.stdout.readline().split()[1])
    yield port
    p.terminate()
    p.wait(timeout=10)


def control(port, path, body=None):
    """A control call to the test server: GET path, or POST body as JSON;
    its JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                 method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def srv_models(port, key_env, anthropic=False):
    """Registry entries for the test server as the game tests name them:
    "srv" over the OpenAI API and, with anthropic, "srv-a" over Anthropic's."""
    models = [{"id": "srv", "provider": "openai", "base_url": f"http://127.0.0.1:{port}/v1",
               "model": "m", "api_key_env": key_env, "capability": 1000,
               "price_in_per_mtok": 1.0, "price_out_per_mtok": 2.0}]
    if anthropic:
        models.append({"id": "srv-a", "provider": "anthropic",
                       "base_url": f"http://127.0.0.1:{port}/v1", "model": "m-a",
                       "api_key_env": key_env, "capability": 1000,
                       "price_in_per_mtok": 1.0, "price_out_per_mtok": 2.0})
    return models


def ab_models(port, key_env):
    """Registry entries for the test server as the sweep tests name them:
    "srv-openai" (model-a) and "srv-anthropic" (model-b, dearer, more capable)."""
    return [{"id": "srv-openai", "provider": "openai", "base_url": f"http://127.0.0.1:{port}/v1",
             "model": "model-a", "api_key_env": key_env, "capability": 1000,
             "price_in_per_mtok": 1.0, "price_out_per_mtok": 2.0},
            {"id": "srv-anthropic", "provider": "anthropic",
             "base_url": f"http://127.0.0.1:{port}/v1", "model": "model-b",
             "api_key_env": key_env, "capability": 1200,
             "price_in_per_mtok": 3.0, "price_out_per_mtok": 15.0}]


def write_models(tmp_path, models, name="models.json"):
    """models as tmp_path/name ({"models": [...]}); its path as a string."""
    path = tmp_path / name
    path.write_text(json.dumps({"models": models}))
    return str(path)


def run_rerun_and_replay(port, spec, tmp_path, seed):
    """Run spec to first.h5 with the test server playing (seed, bad rate
    0.3); then, the server answering differently (seed + 1, bad rate 0.6), so
    that a request would change the tables, rerun it on 3 ranks to again.h5
    and --replay it on 2 to replay.h5, which must make no request. The three
    paths."""
    first, again, rep = (str(tmp_path / f"{x}.h5") for x in ("first", "again", "replay"))
    control(port, "/config", {"play": {"seed": seed, "bad_rate": 0.3}})
    try:
        bazaar("run", spec, "-o", first, "--quiet")
        control(port, "/config", {"play": {"seed": seed + 1, "bad_rate": 0.6}})
        before = control(port, "/stats")["completions"]
        bazaar("run", spec, "-o", again, "--quiet", ranks=3)
        bazaar("run", spec, "-o", rep, "--quiet", "--replay", ranks=2)
        assert control(port, "/stats")["completions"] == before, "the rerun made requests"
    finally:
        control(port, "/config", {"play": None})
    return first, again, rep
