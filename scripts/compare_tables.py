#!/usr/bin/python3
"""compare_tables: compare two bazaar .h5 files: every dataset, every column, byte for byte,
plus root attributes except time/commit-like ones. Exit 1 on any difference."""
import sys, h5py, numpy as np
IGN_ATTRS = {"finished_at", "started_at", "hosts", "created", "commit", "version", "hostname", "wall_s", "started", "finished", "git_commit", "build", "elapsed_s"}
def walk(f):
    out = {}
    f.visititems(lambda n, o: out.__setitem__(n, o) if isinstance(o, h5py.Dataset) else None)
    return out
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
da, db = walk(a), walk(b)
bad = 0
if set(da) != set(db):
    print("datasets differ:", sorted(set(da) ^ set(db))); bad += 1
for n in sorted(set(da) & set(db)):
    x, y = da[n][()], db[n][()]
    if x.dtype != y.dtype:
        print(n, "dtype differs", x.dtype, y.dtype); bad += 1; continue
    if x.dtype.names:
        for c in x.dtype.names:
            if x.dtype[c].kind == "O":
                if list(x[c]) != list(y[c]):
                    print(n, c, "differs"); bad += 1
            elif x[c].tobytes() != y[c].tobytes():
                print(n, c, "differs"); bad += 1
    elif x.dtype.kind == "O":
        if list(np.ravel(x)) != list(np.ravel(y)):
            print(n, "differs"); bad += 1
    elif np.asarray(x).tobytes() != np.asarray(y).tobytes():
        print(n, "differs"); bad += 1
for k in set(a.attrs) | set(b.attrs):
    if k in IGN_ATTRS: continue
    va, vb = a.attrs.get(k), b.attrs.get(k)
    if str(va) != str(vb):
        print("attr", k, "differs"); bad += 1
print(f"{sys.argv[1]} vs {sys.argv[2]}: {len(da)} datasets,", "IDENTICAL" if not bad else f"{bad} DIFFERENCES")
sys.exit(1 if bad else 0)
