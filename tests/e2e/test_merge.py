"""The merge's own chunks (tables without strings are compressed by bazaar on
threads and stored with direct chunk writes): h5py reads them back as exactly
the rows the shards hold, through HDF5's filters (deflate, Fletcher32)."""
import glob
import signal
import subprocess

import h5py
import numpy as np

from conftest import BIN, assert_same_tables, mpi_env, stop_after, write_spec


def _datasets(f):
    out = []
    f.visititems(lambda n, o: out.append(n) if isinstance(o, h5py.Dataset) else None)
    return sorted(out)


def _shard_rows(f, name):
    """A shard table's rows as the results file holds them: a text column that
    the shard keeps in its byte store (/.shard_text/<table>/<column>: offset
    and length per row) as its bytes."""
    rows = f[name][()]
    texts = [c for c in rows.dtype.names if f.get(f".shard_text/{name}/{c}") is not None]
    if not texts:
        return rows
    dt = np.dtype([(c, h5py.string_dtype() if c in texts else rows.dtype[c])
                   for c in rows.dtype.names])
    out = np.empty(len(rows), dtype=dt)
    for c in rows.dtype.names:
        if c in texts:
            store = f[f".shard_text/{name}/{c}"][()].tobytes()
            out[c] = [store[o:o + n] for o, n in zip(rows[c]["offset"], rows[c]["length"])]
        else:
            out[c] = rows[c]
    return out


def test_h5py_reads_the_merged_chunks_as_the_shards_rows(tmp_path, small_spec):
    spec = write_spec(tmp_path, small_spec)
    out = str(tmp_path / "out.h5")
    env = mpi_env()
    env["BAZAAR_TEST_GAME_DELAY_MS"] = "50"  # stop part way: the shards stay
    p = subprocess.Popen([BIN, "run", spec, "-o", out, "--progress-interval", "0.02"],
                         stderr=subprocess.PIPE, text=True, env=env)
    stop_after(p, 10, signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 3, err
    shards = sorted(glob.glob(out + ".parts/*.h5"))
    assert shards
    merged = {}
    for threads in ("1", "3"):
        hand = str(tmp_path / f"hand{threads}.h5")
        menv = dict(mpi_env(), BZ_MERGE_THREADS=threads)
        m = subprocess.run([BIN, "merge", "--layout", "plain", out + ".parts", "-o", hand], env=menv,
                           capture_output=True, text=True, timeout=300)
        assert m.returncode == 0, m.stderr
        merged[threads] = hand
    direct = 0
    with h5py.File(merged["3"], "r") as h, h5py.File(merged["1"], "r") as h1:
        names = _datasets(h)
        assert names == _datasets(h1)
        for name in names:
            ds = h[name]
            assert ds.compression == "gzip" and not ds.shuffle and ds.fletcher32, name
            got = ds[()]
            vlen = any(got.dtype[c].kind == "O" for c in got.dtype.names)
            parts = []
            for s in shards:
                with h5py.File(s, "r") as f:
                    if name not in f:
                        continue
                    ids = np.array(f["games"]["game_id"])
                    rows = _shard_rows(f, name)
                    parts.append(rows[np.isin(rows["game_id"], ids)])
            want = np.concatenate(parts)
            want = want[np.argsort(want["game_id"], kind="stable")]
            assert got.dtype == want.dtype and len(got) == len(want), name
            for c in got.dtype.names:
                if got.dtype[c].kind == "O":
                    assert list(got[c]) == list(want[c]), (name, c)
                else:
                    assert got[c].tobytes() == want[c].tobytes(), (name, c)
            if not vlen:
                direct += len(got) > 0
                assert h1[name][()].tobytes() == got.tobytes(), name
    assert direct >= 2, "tables without strings went through the merge's own chunks"
    # the tables with strings go through HDF5's pipeline, whose deflate and
    # Fletcher32 run bazaar's functions: HDF5's own (BZ_HDF5_FILTERS=builtin)
    # give the same tables and the same filter parameters
    builtin = str(tmp_path / "builtin.h5")
    m = subprocess.run([BIN, "merge", "--layout", "plain", out + ".parts", "-o", builtin],
                       env=dict(mpi_env(), BZ_HDF5_FILTERS="builtin"), capture_output=True,
                       text=True, timeout=300)
    assert m.returncode == 0, m.stderr
    assert_same_tables(merged["3"], builtin)
    with h5py.File(merged["3"], "r") as h, h5py.File(builtin, "r") as hb:
        assert "messages" in names
        for name in names:
            pa, pb = h[name].id.get_create_plist(), hb[name].id.get_create_plist()
            assert ([pa.get_filter(i) for i in range(pa.get_nfilters())] ==
                    [pb.get_filter(i) for i in range(pb.get_nfilters())]), name
