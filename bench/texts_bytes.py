#!/usr/bin/env python3
"""Bytes of results file per LLM call: runs sweeps/llm_example.json (or the
spec given) against tests/llm_server.py on 127.0.0.1 (answering like a
player, seeded) and prints the file's size per /llm_calls row, and what the
transcript store takes (/llm_texts and /llm_text_bytes when the file has
them). Never reaches the internet; a benchmark, not a test.

    bench/texts_bytes.py BAZAAR [--ranks N] [--spec SPEC] [--keep DIR]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY_ENV = "BZ_BENCH_TEXTS_KEY"


def start_server():
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "llm_server.py")],
                         stdout=subprocess.PIPE, text=True)
    return p, int(p.stdout.readline().split()[1])


def control(port, path, body):
    import urllib.request
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def local_spec(spec_path, port, work):
    """The spec and its registry pointed at the local server."""
    spec = json.load(open(spec_path))
    reg = json.load(open(os.path.join(ROOT, spec["models"])))
    for m in reg["models"]:
        m["base_url"] = f"http://127.0.0.1:{port}/v1"
        m["api_key_env"] = KEY_ENV
        m.pop("limits", None)
    json.dump(reg, open(os.path.join(work, "models.json"), "w"))
    spec["models"] = os.path.join(work, "models.json")
    spec["prompts"] = os.path.join(ROOT, spec["prompts"])
    spec["llm"]["cache"] = os.path.join(work, "cache")
    spec.pop("budget", None)
    spec["output"] = os.path.join(work, "out.h5")
    path = os.path.join(work, "spec.json")
    json.dump(spec, open(path, "w"))
    return path, spec["output"]


def storage(f, name):
    return f[name].id.get_storage_size() if name in f else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bazaar")
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--spec", default=os.path.join(ROOT, "sweeps", "llm_example.json"))
    ap.add_argument("--keep", help="folder to keep the results file in")
    a = ap.parse_args()
    work = a.keep or tempfile.mkdtemp(prefix="bz_texts_")
    os.makedirs(work, exist_ok=True)
    srv, port = start_server()
    try:
        control(port, "/config", {"play": {"seed": 5, "bad_rate": 0.1}})
        spec, out = local_spec(a.spec, port, work)
        env = dict(os.environ, **{KEY_ENV: "sk-bench"})
        cmd = [a.bazaar, "run", spec, "-o", out, "--quiet"]
        if a.ranks > 1:
            env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                       OMPI_MCA_rmaps_base_oversubscribe="1")
            cmd = ["mpiexec", "-n", str(a.ranks)] + cmd
        subprocess.run(cmd, env=env, check=True)
    finally:
        srv.terminate()
        srv.wait(timeout=10)
    size = os.path.getsize(out)
    with h5py.File(out, "r") as f:
        calls = len(f["llm_calls"])
        games = len(f["games"])
        t = f["llm_texts"][()]
        idx = storage(f, "llm_texts")
        raw = storage(f, "llm_text_bytes")
        per_game = "text" in t.dtype.names  # the layout before the store
        if per_game:
            n_texts, distinct = len(t), len(set(t["hash"]))
            text_bytes = int(sum(len(x) for x in t["text"]))
        else:
            n_texts = distinct = len(t)
            text_bytes = int(np.sum(t["length"]))
    print(f"games {games}, llm calls {calls}, /llm_texts rows {n_texts} ({distinct} distinct), "
          f"text bytes {text_bytes}")
    print(f"results file {size} bytes: {size / calls:.0f} bytes per LLM call")
    if per_game:
        print(f"/llm_texts dataset {idx} bytes: its variable-length strings (the texts) live in "
              f"the file's heap, outside that figure; compare the file sizes")
    else:
        print(f"/llm_texts index {idx} bytes, /llm_text_bytes {raw} bytes: the transcript store "
              f"takes {(idx + raw) / calls:.0f} bytes per call ({idx / calls:.0f} index, "
              f"{raw / calls:.0f} compressed text)")


if __name__ == "__main__":
    main()
