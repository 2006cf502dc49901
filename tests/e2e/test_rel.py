"""Nothing lost, nothing leaked (issue 15): one writer per output (a second
process is refused, a killed run's lock does not block --resume), crafted
HDF5 files through info and merge, a full disk, keys echoed by a server,
absurd usage counts, bit flips in a shard."""
import json
import os
import signal
import stat
import subprocess
import time

import h5py
import numpy as np

from conftest import BIN, ROOT, ab_models, bazaar, control, mpi_env, write_models, write_spec

KEY_ENV = "BZ_REL_KEY"
KEY = "sk-rel-SECRET-0123456789abcdef0123456789"


def fresh(port, **config):
    base = {"faults": [], "every": None, "script": [], "gate": None, "echo_key": False,
            "usage": None, "latency_ms": 0}
    base.update(config)
    control(port, "/config", base)
    control(port, "/reset", {})


def llm_spec(tmp_path, port, name="rel", cache=None, retries=3):
    spec = {
        "name": name, "game": "electricity", "seed": 5, "repetitions": 1,
        "fixed": {"n_agents": 3, "max_turns": 2, "lineup": "mixed"},
        "grid": {"communication": [True, False]},
        "lineups": {"mixed": ["srv-openai", "srv-anthropic", "heuristic:greedy?skill=0.5"]},
        "models": write_models(tmp_path, ab_models(port, KEY_ENV)),
        "prompts": os.path.join(ROOT, "prompts", "electricity"),
        "llm": {"live_games": 2, "concurrency": 4, "timeout_s": 5, "max_retries": retries,
                "cache": str(cache or (tmp_path / f"cache-{name}"))},
    }
    return write_spec(tmp_path, spec, name=f"{name}.json")


def env_with_key():
    env = mpi_env()
    env[KEY_ENV] = KEY
    return env


def wait_for(cond, what, limit_s=120):
    """Poll until cond() holds (a wait, not a timed assertion: the limit only
    keeps a broken build from hanging the suite)."""
    end = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def lock_holder(out):
    try:
        with open(out + ".lock") as f:
            return f.read()
    except OSError:
        return ""


def start_gated(tmp_path, server, out, gate):
    fresh(server, gate=str(gate))
    spec = llm_spec(tmp_path, server)
    p = subprocess.Popen([BIN, "run", spec, "-o", out, "--quiet"], env=env_with_key(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    # A holds the lock and waits on the server: it is mid-run
    wait_for(lambda: f"pid {p.pid} " in lock_holder(out) and
             control(server, "/stats")["inflight"] > 0, "the first run to be mid-sweep")
    return spec, p


TINY = {"name": "tiny", "game": "electricity", "seed": 1, "repetitions": 2,
        "fixed": {"n_agents": 2, "max_turns": 3},
        "lineups": {"g": ["heuristic:greedy?skill=0.5", "heuristic:zi"]},
        "grid": {"lineup": ["g"]}}


def tiny_results(tmp_path, name="src.h5"):
    out = str(tmp_path / name)
    bazaar("run", write_spec(tmp_path, TINY, name="tiny.json"), "-o", out, "--quiet")
    return out


def test_second_process_on_one_output_is_refused_and_the_first_file_is_intact(tmp_path, server):
    src = tiny_results(tmp_path)
    out = str(tmp_path / "out.h5")
    gate = tmp_path / "gate"
    spec, a = start_gated(tmp_path, server, out, gate)
    try:
        parts_before = sorted(os.listdir(out + ".parts"))
        # the shard and its journal exist before the first (paid) request
        assert "a1-r0-0.h5" in parts_before and "a1-r0-0.h5.journal" in parts_before, parts_before
        # the run's follower merge creates OUT.tmp as it starts (wait for
        # it: under ASan that is after the run is mid-sweep); the refused
        # merge must neither create nor touch it
        wait_for(lambda: os.path.exists(out + ".tmp"), "the follower to create OUT.tmp")

        def tmp_state():
            try:
                st = os.stat(out + ".tmp")
                return (st.st_ino, st.st_size, st.st_mtime_ns)
            except FileNotFoundError:
                return None
        tmp_before = tmp_state()
        m = bazaar("merge", src, "-o", out, check=False)
        assert m.returncode == 2, m.stderr
        assert f"pid {a.pid}" in m.stderr and "another bazaar process" in m.stderr
        assert tmp_state() == tmp_before, "the refused merge created or touched OUT.tmp"
        r = subprocess.run([BIN, "run", spec, "-o", out, "--resume"], env=env_with_key(),
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 2, r.stderr
        assert f"pid {a.pid}" in r.stderr
        assert sorted(os.listdir(out + ".parts")) == parts_before, "the refused run touched shards"
        assert not any(n.endswith(".bad") for n in os.listdir(out + ".parts"))
    finally:
        gate.write_text("open")
    so, se = a.communicate(timeout=300)
    assert a.returncode == 0, se
    with h5py.File(out, "r") as f:
        games = f["games"][()]
        assert sorted(games["game_id"]) == [0, 1]
        assert {s.decode() if isinstance(s, bytes) else s for s in games["status"]} == {"ok"}
        assert len(f["llm_calls"]) > 0
    assert not os.path.exists(out + ".lock"), "the lock file is removed at the end"
    assert not os.path.exists(out + ".parts")


def test_a_killed_runs_stale_lock_does_not_block_resume(tmp_path, server):
    out = str(tmp_path / "out.h5")
    gate = tmp_path / "gate"
    spec, a = start_gated(tmp_path, server, out, gate)
    os.killpg(a.pid, signal.SIGKILL)
    a.wait()
    assert f"pid {a.pid} " in lock_holder(out), "the dead run's lock file stays"
    gate.write_text("open")
    r = subprocess.run([BIN, "run", spec, "-o", out, "--resume", "--quiet"], env=env_with_key(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    with h5py.File(out, "r") as f:
        assert sorted(f["games"]["game_id"]) == [0, 1]
    assert not os.path.exists(out + ".lock")


def test_merge_refuses_an_output_locked_by_a_live_process(tmp_path, small_spec):
    """The holder need not be a run: a lock held by any live process counts,
    and nothing is created while it is held."""
    import fcntl
    spec = write_spec(tmp_path, small_spec)
    src = str(tmp_path / "src.h5")
    bazaar("run", spec, "-o", src, "--quiet")
    out = str(tmp_path / "m.h5")
    with open(out + ".lock", "w") as f:
        f.write(f"pid {os.getpid()} host test since now\n")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_EX)
        m = bazaar("merge", src, "-o", out, check=False)
        assert m.returncode == 2 and f"pid {os.getpid()} host test" in m.stderr, m.stderr
        assert not os.path.exists(out) and not os.path.exists(out + ".tmp")
    # a stale lock file of a dead holder (flock released) is taken over
    m = bazaar("merge", src, "-o", out)
    assert os.path.exists(out) and not os.path.exists(out + ".lock")


def test_a_leftover_tmp_of_a_killed_merge_is_replaced(tmp_path, small_spec):
    spec = write_spec(tmp_path, small_spec)
    src = str(tmp_path / "src.h5")
    bazaar("run", spec, "-o", src, "--quiet")
    out = str(tmp_path / "m.h5")
    with open(out + ".tmp", "wb") as f:
        f.write(b"half a file")
    bazaar("merge", src, "-o", out)
    assert not os.path.exists(out + ".tmp")
    with h5py.File(out, "r") as f:
        assert len(f["games"]) == 48


def crafted_files(tmp_path):
    """HDF5 files bazaar did not write, shaped to break careless readers."""
    files = {}
    p = tmp_path / "rank32.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("games", data=np.zeros((1,) * 32, dtype=np.int64))
        f.create_dataset("deep/table", data=np.zeros((2, 3, 4), dtype=[("game_id", "<i8")]))
    files["rank32"] = p
    p = tmp_path / "array_attrs.h5"
    with h5py.File(p, "w") as f:
        f.attrs["ranks"] = np.arange(4096, dtype=np.int64)          # array where a scalar goes
        f.attrs["n_games"] = np.arange(64, dtype=np.float64)
        f.attrs["version"] = np.array([b"x" * 300] * 50)             # fixed strings, array
        f.attrs["hosts"] = np.bytes_(b"A" * 60000)                    # long fixed string
        f.attrs.create("spec_json", ["a", "b", "c"], dtype=h5py.string_dtype())
        f.attrs["weird\nname\x1b[31m"] = 1
        f.attrs["compound"] = np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")])
        f.create_dataset("games", data=np.zeros(3, dtype=[("game_id", "<i8"), ("x", "<f8")]))
    files["array_attrs"] = p
    p = tmp_path / "not_hdf5.h5"
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 40)
    files["not_hdf5"] = p
    p = tmp_path / "fifo.h5"
    os.mkfifo(p)
    files["fifo"] = p
    p = tmp_path / "games_wrong.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("games", data=np.zeros((4, 4), dtype=np.float64))
    files["games_wrong"] = p
    p = tmp_path / "huge.h5"
    with h5py.File(p, "w") as f:  # claims 2^50 rows, stores none
        f.create_dataset("games", shape=(2 ** 50,), maxshape=(None,), chunks=(1024,),
                         dtype=[("game_id", "<i8")])
    files["huge"] = p
    return files


def test_info_on_crafted_files_works_or_exits_1_with_a_message(tmp_path):
    for name, path in crafted_files(tmp_path).items():
        r = bazaar("info", path, check=False, timeout=60)
        assert r.returncode in (0, 1), f"{name}: exit {r.returncode}\n{r.stderr}"
        if r.returncode:
            assert str(path) in r.stderr, f"{name}: {r.stderr}"
        else:
            assert str(path) in r.stdout
    r = bazaar("info", tmp_path / "rank32.h5", timeout=60)
    assert "rank 32" in r.stdout and "not a table (rank 3, shape 2 x 3 x 4)" in r.stdout
    r = bazaar("info", tmp_path / "array_attrs.h5", timeout=60)
    assert "array of 4096 values" in r.stdout and "AAAA" in r.stdout
    assert "\x1b" not in r.stdout and "weird?name?[31m" in r.stdout
    r = bazaar("info", tmp_path / "fifo.h5", check=False, timeout=60)
    assert r.returncode == 1 and "not a regular file (a FIFO)" in r.stderr


def test_merge_of_crafted_files_is_refused_with_a_message(tmp_path):
    files = crafted_files(tmp_path)
    for name, path in files.items():
        out = tmp_path / f"m-{name}.h5"
        r = bazaar("merge", path, "-o", out, check=False, timeout=60)
        if name == "array_attrs":  # a valid table beside odd attributes: merged
            assert r.returncode == 0, r.stderr
            with h5py.File(out, "r") as f:
                assert len(f["games"]) == 3
            continue
        assert r.returncode == 2, f"{name}: exit {r.returncode}\n{r.stderr}"
        assert f"skipping {path}" in r.stderr and "no readable shard" in r.stderr
        assert not out.exists() and not (tmp_path / f"m-{name}.h5.tmp").exists()
    # with one good input among them, the bad ones are skipped and the rest merged
    src = tiny_results(tmp_path)
    out = tmp_path / "mixed.h5"
    bad = [p for n, p in files.items() if n != "array_attrs"]
    r = bazaar("merge", src, *bad, "-o", out, timeout=60)
    with h5py.File(out, "r") as f:
        assert len(f["games"]) == 2


def test_merge_input_errors_exit_2(tmp_path):
    r = bazaar("merge", "/nonexistent.h5", "-o", tmp_path / "m.h5", check=False)
    assert r.returncode == 2 and not (tmp_path / "m.h5").exists(), r.stderr
    src = tiny_results(tmp_path)
    r = bazaar("merge", src, "-o", "", check=False)
    assert r.returncode == 2, r.stderr
    r = bazaar("run", write_spec(tmp_path, TINY, name="t2.json"), "-o", "", check=False)
    assert r.returncode == 2 and "empty" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(ROOT, ".parts"))


def all_strings(path):
    """Every string stored in the file: attributes and string columns."""
    out = []
    with h5py.File(path, "r") as f:
        out += [str(v) for v in f.attrs.values()]

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.dtype.names:
                rows = obj[()]
                for col in obj.dtype.names:
                    if obj.dtype[col].kind in "OSU":
                        out.extend(x.decode() if isinstance(x, bytes) else str(x)
                                   for x in rows[col])
        f.visititems(visit)
        if "llm_text_bytes" in f:  # the transcripts, stored compressed
            out.append(f["llm_text_bytes"][()].tobytes().decode("utf-8", "replace"))
    return out


def key_fragments(text):
    """Pieces of KEY of 12 characters or more found in text."""
    return [KEY[i:i + 12] for i in range(len(KEY) - 11) if KEY[i:i + 12] in text]


def test_a_key_echoed_by_the_server_appears_nowhere(tmp_path, server):
    fresh(server, echo_key=True, faults=[{"kind": "status", "code": 400},
                                         {"kind": "500"}, {"kind": "status", "code": 422}])
    spec = llm_spec(tmp_path, server, name="echo")
    out = str(tmp_path / "echo.h5")
    r = subprocess.run([BIN, "run", spec, "-o", out], env=env_with_key(), capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert control(server, "/stats")["completions"] > 3
    text = "\n".join(all_strings(out))
    assert not key_fragments(text), key_fragments(text)
    assert not key_fragments(r.stdout + r.stderr)
    for f in (tmp_path / "cache-echo").rglob("*"):
        if f.is_file():
            assert not key_fragments(f.read_bytes().decode("latin-1")), f
    # the server did echo it: the masks are there, in error and success bodies
    with h5py.File(out, "r") as f:
        errors = [x.decode() for x in f["llm_calls"]["error"]]
        assert any("HTTP 400" in e and "*" * 12 in e for e in errors), errors
        assert "*" * 12 in text.replace("\n", " ")
    assert "*" * 12 in r.stderr  # the 400 is reported once, masked


def test_an_absurd_usage_count_is_a_recorded_bad_reply(tmp_path, server):
    fresh(server, usage={"in": 10 ** 19, "out": 5})
    spec = llm_spec(tmp_path, server, name="usage", retries=1)
    out = str(tmp_path / "usage.h5")
    r = subprocess.run([BIN, "run", spec, "-o", out, "--quiet"], env=env_with_key(),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    with h5py.File(out, "r") as f:
        calls = f["llm_calls"][()]
        games = f["games"][()]
    outcomes = {x.decode() for x in calls["parse_outcome"]}
    assert outcomes == {"bad_response"}, outcomes
    assert all("out of range" in x.decode() for x in calls["error"])
    assert (calls["input_tokens"] >= 0).all() and (calls["cost_usd"] >= 0).all()
    assert (games["cost_usd"] >= 0).all()


def run_with_nofile(args, limit):
    import resource

    def lower():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    return subprocess.run([BIN, *map(str, args)], env=env_with_key(), capture_output=True,
                          text=True, timeout=600, preexec_fn=lower)


def test_concurrency_is_bounded_by_the_descriptors_at_start(tmp_path, server):
    fresh(server)
    spec = llm_spec(tmp_path, server, name="fds")
    s = json.loads(open(spec).read())
    s["llm"]["concurrency"] = 256
    s["llm"]["live_games"] = 2
    spec = write_spec(tmp_path, s, name="fds.json")
    r = run_with_nofile(["run", spec, "-o", tmp_path / "fds.h5", "--quiet"], 120)
    assert r.returncode == 0, r.stderr
    assert "llm concurrency 256 lowered to 48" in r.stderr, r.stderr
    fresh(server)
    r = run_with_nofile(["run", spec, "-o", tmp_path / "fds2.h5", "--quiet"], 40)
    assert r.returncode == 2 and "file descriptors" in r.stderr, r.stderr
    assert control(server, "/stats")["completions"] == 0, "requests were paid before refusing"


def test_every_fault_kind_appears_in_llm_calls_after_a_successful_retry(tmp_path, server):
    fresh(server, faults=[{"kind": "429"}, {"kind": "500"}, {"kind": "503"}, {"kind": "reset"},
                          {"kind": "truncated"}, {"kind": "malformed_body"},
                          {"kind": "hang", "seconds": 3}])
    spec = llm_spec(tmp_path, server, name="faults", retries=8)
    s = json.loads(open(spec).read())
    s["llm"]["timeout_s"] = 1
    s["llm"]["concurrency"] = 1
    spec = write_spec(tmp_path, s, name="faults.json")
    out = str(tmp_path / "faults.h5")
    r = subprocess.run([BIN, "run", spec, "-o", out, "--quiet"], env=env_with_key(),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert len(control(server, "/stats")["faults_served"]) == 7
    with h5py.File(out, "r") as f:
        calls = f["llm_calls"][()]
    retried = [x.decode() for x in calls["error"] if b"attempts:" in x]
    text = " | ".join(retried)
    assert {x.decode() for x in calls["parse_outcome"]} <= {"ok", "repaired", "invalid_json",
                                                           "schema", "inadmissible"}, text
    for kind in ("HTTP 429", "HTTP 500", "HTTP 503", "truncated body", "bad reply (HTTP 200)",
                 "timeout"):
        assert kind in text, f"{kind} missing from /llm_calls: {text}"
    assert "connection reset" in text or "connection dropped" in text, text
    assert "; ;" not in text
    assert all(n == 0 or b"attempts:" in e for e, n in zip(calls["error"], calls["retries"]))


def flip_a_data_bit(path, table):
    """Flip one bit inside the first stored chunk of table (raw data, not
    metadata)."""
    with h5py.File(path, "r") as f:
        info = f[table].id.get_chunk_info(0)
        off, size = info.byte_offset, info.size
    with open(path, "r+b") as f:
        f.seek(off + size // 2)
        b = f.read(1)
        f.seek(off + size // 2)
        f.write(bytes([b[0] ^ 0x10]))


def test_a_bit_flip_in_a_shard_is_detected_set_aside_and_replayed(tmp_path, small_spec):
    from conftest import assert_same_tables
    spec = write_spec(tmp_path, small_spec)
    ref = str(tmp_path / "ref.h5")
    bazaar("run", spec, "-o", ref, "--quiet")
    out = str(tmp_path / "out.h5")
    env = mpi_env()
    env["BAZAAR_TEST_GAME_DELAY_MS"] = "50"
    env["BAZAAR_SEGMENT_GAMES"] = "4"
    # no follower: its segments also close by age (from 0.1 s with a CPU of
    # its own), and this test needs the first one to hold exactly 4 games
    env["BAZAAR_MERGE_FOLLOW"] = "0"
    p = subprocess.Popen([BIN, "run", spec, "-o", out, "--quiet"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = out + ".parts/a1-r0-0.h5.journal"
    # the first segment (4 games) is closed once the fifth game commits
    wait_for(lambda: os.path.exists(out + ".parts/a1-r0-1.h5.journal") and
             open(out + ".parts/a1-r0-1.h5.journal").read().count("committed") >= 1,
             "the first segment to be closed")
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 3, err
    victim = out + ".parts/a1-r0-0.h5"
    assert open(journal).read().count("committed") == 4
    flip_a_data_bit(victim, "electricity/turns")
    r = bazaar("run", spec, "-o", out, "--resume")
    assert "a1-r0-0.h5 cannot be read" in r.stderr and "set aside" in r.stderr, r.stderr
    assert os.path.exists(victim + ".bad")
    assert_same_tables(ref, out)


def test_a_bit_flip_in_the_results_file_is_detected_on_resume(tmp_path):
    from conftest import assert_same_tables
    out = tiny_results(tmp_path, "out.h5")
    ref = tiny_results(tmp_path, "ref.h5")
    flip_a_data_bit(out, "games")
    r = bazaar("info", out)  # metadata intact: info still works
    r = bazaar("merge", out, "-o", tmp_path / "m.h5", check=False)
    assert r.returncode == 2 and f"skipping {out}" in r.stderr, r.stderr
    r = bazaar("run", write_spec(tmp_path, TINY, name="tiny.json"), "-o", out, "--resume")
    assert "set aside" in r.stderr
    assert_same_tables(ref, out)


def readme_exit_codes():
    text = open(os.path.join(ROOT, "README.md")).read()
    table = text.split("Exit codes (every command")[1].split("\n\n")[1]
    return {int(line.split("|")[1]) for line in table.splitlines()
            if line.startswith("| ") and line.split("|")[1].strip().isdigit()}


def test_the_exit_code_table_in_the_readme_holds(tmp_path, small_spec):
    assert readme_exit_codes() == {0, 1, 2, 3}
    seen = {}
    src = tiny_results(tmp_path)
    seen[0] = bazaar("info", src, check=False).returncode
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5" * 100)
    seen[1] = bazaar("info", garbage, check=False).returncode
    twos = [bazaar("run", tmp_path / "missing.json", check=False).returncode,
            bazaar("run", write_spec(tmp_path, TINY, name="t.json"), "-o", src,
                   check=False).returncode,                      # exists without --resume
            bazaar("merge", "/nonexistent.h5", "-o", tmp_path / "m.h5", check=False).returncode,
            bazaar("frobnicate", check=False).returncode,
            bazaar("run", write_spec(tmp_path, TINY, name="t3.json"), "-o", "/proc/x/out.h5",
                   check=False).returncode]                      # an output that cannot be made
    assert set(twos) == {2}, twos
    seen[2] = 2
    env = mpi_env()
    env["BAZAAR_TEST_GAME_DELAY_MS"] = "30"
    out = str(tmp_path / "stop.h5")
    p = subprocess.Popen([BIN, "run", write_spec(tmp_path, small_spec), "-o", out, "--quiet"],
                         env=env, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: os.path.exists(out + ".parts/a1-r0-0.h5.journal"), "the first game")
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=120)
    seen[3] = p.returncode
    assert seen == {0: 0, 1: 1, 2: 2, 3: 3}


def test_eia_file_that_is_a_device_fifo_or_folder_is_refused_at_start(tmp_path):
    fifo = tmp_path / "eia.fifo"
    os.mkfifo(fifo)
    for bad in ("/dev/zero", str(fifo), str(tmp_path)):
        spec = dict(TINY)
        spec["fixed"] = dict(TINY["fixed"], eia_file=bad, eia_respondent="PJM")
        r = bazaar("run", write_spec(tmp_path, spec, name="eia.json"), "-o",
                   tmp_path / "eia.h5", check=False, timeout=60)
        assert r.returncode == 2 and "not a regular file" in r.stderr, (bad, r.stderr)
        assert not (tmp_path / "eia.h5.parts").exists()


def test_profile_that_is_a_device_fifo_or_folder_is_refused_at_start(tmp_path):
    fifo = tmp_path / "profile.fifo"
    os.mkfifo(fifo)
    for bad in ("/dev/zero", str(fifo), str(tmp_path)):
        spec = dict(TINY)
        spec["fixed"] = dict(TINY["fixed"], profile=bad)
        r = bazaar("run", write_spec(tmp_path, spec, name="profile.json"), "-o",
                   tmp_path / "profile.h5", check=False, timeout=60)
        assert r.returncode == 2 and "not a regular file" in r.stderr, (bad, r.stderr)
        assert not (tmp_path / "profile.h5.parts").exists()
