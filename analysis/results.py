"""Load a bazaar results file (HDF5) into numpy structured arrays.

Every table is a 1-D compound dataset; h5py gives it as a structured array.
Strings come back as bytes from HDF5; `table()` decodes them to str.
"""
import h5py
import numpy as np


def _decode(arr):
    """Return a copy of a structured array with byte-string fields as str."""
    fields = []
    for name in arr.dtype.names:
        col = arr[name]
        if col.dtype.kind == "O" or col.dtype.kind == "S":
            col = np.array([c.decode() if isinstance(c, bytes) else str(c) for c in col],
                           dtype=object)
        fields.append((name, col))
    out = np.empty(len(arr), dtype=[(n, c.dtype) for n, c in fields])
    for n, c in fields:
        out[n] = c
    return out


def table(path, name):
    """Read table `name` (e.g. "/games", "/electricity/turns") of a results file."""
    with h5py.File(path, "r") as f:
        if name not in f:
            raise KeyError(f"{path}: no table {name}; tables: {tables(path)}")
        return _decode(f[name][()])


def _fill_value(dtype):
    """What a game without a parameter gets in the joined table."""
    if dtype.kind == "f":
        return np.nan
    if dtype.kind in "iu":
        return -1
    return ""


def games(path):
    """/games with each game's parameters joined on (one row per game).

    /games is game-neutral; a game's parameters are the columns of
    /<game>/config (one row per game, keyed by game_id). This returns /games
    plus every config column, matched on game_id; columns /games already has
    (n_agents, communication) are kept from /games. With several games in one
    file, a parameter a game lacks is NaN (numbers), -1 (integers) or "".
    """
    g = table(path, "/games")
    configs = []
    for name in sorted(set(str(x) for x in g["game"])):
        cname = f"/{name}/config"
        if cname in tables(path):
            configs.append(table(path, cname))
    extra = []
    for c in configs:
        for n in c.dtype.names:
            if n not in g.dtype.names and n not in [e[0] for e in extra]:
                extra.append((n, c.dtype[n]))
    out = np.empty(len(g), dtype=g.dtype.descr + [(n, d) for n, d in extra])
    for n in g.dtype.names:
        out[n] = g[n]
    for n, d in extra:
        out[n] = _fill_value(d)
    pos = {int(gid): i for i, gid in enumerate(g["game_id"])}
    for c in configs:
        idx = np.array([pos.get(int(gid), -1) for gid in c["game_id"]], dtype=int)
        keep = idx >= 0
        for n, _ in extra:
            if n in c.dtype.names:
                col = out[n]
                col[idx[keep]] = c[n][keep]
    return out


def units(path, name):
    """{column: (unit, meaning)} of table `name`, from its `units` and `doc`
    attributes (what `bazaar info --schema` prints)."""
    with h5py.File(path, "r") as f:
        ds = f[name]
        dec = lambda v: v.decode() if isinstance(v, bytes) else str(v)
        us = [dec(u) for u in ds.attrs.get("units", [""] * len(ds.dtype.names))]
        docs = [dec(d) for d in ds.attrs.get("doc", [""] * len(ds.dtype.names))]
        return {n: (us[i], docs[i]) for i, n in enumerate(ds.dtype.names)}


def tables(path):
    """Names of all tables in a results file (not the chunks under /.parts
    that the tables of a --layout virtual file map)."""
    names = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: names.append("/" + n) if isinstance(o, h5py.Dataset) else None)
    return [n for n in names if not n.startswith("/.parts/")]


def attributes(path):
    """Root attributes (provenance) as a dict of str/int."""
    with h5py.File(path, "r") as f:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}


def high_skill_mask(agents_of_game):
    """Which agents of one game are the 'higher-skill' side.

    Agents whose capability is above the game's lowest; when every agent has
    the same capability (a zero skill gap), the even positions play the high
    role, matching lineups that alternate high and low agents, so the gap-0
    cell is the no-advantage baseline.
    """
    cap = agents_of_game["capability"].astype(float)
    hi = cap > cap.min() + 1e-12
    if not hi.any():
        hi = (agents_of_game["agent"] % 2) == 0
    return hi


def skill_share(payoff, high):
    """Profit share of the high agents: 0.5 + (H - L) / (2 sum|payoff|), with H
    and L the summed payoffs of the high and low agents. With positive profits
    this is exactly H / (H + L); with losses it stays in [0, 1] and above 0.5
    means the high agents did better (lost less). NaN when all payoffs are 0.
    """
    denom = 2.0 * np.abs(payoff).sum()
    if denom == 0:
        return np.nan
    return 0.5 + (payoff[high].sum() - payoff[~high].sum()) / denom


def per_game_skill_share(path):
    """Per game: skill gap (max - min capability) and the profit share of the
    higher-skill agents (see skill_share).

    Returns a structured array with game_id, skill_gap, high_share.
    """
    agents = table(path, "/agents")
    order = np.argsort(agents["game_id"], kind="stable")
    agents = agents[order]
    ids, starts = np.unique(agents["game_id"], return_index=True)
    bounds = list(starts) + [len(agents)]
    out = np.empty(len(ids), dtype=[("game_id", "i8"), ("skill_gap", "f8"), ("high_share", "f8")])
    for k, gid in enumerate(ids):
        a = agents[bounds[k]:bounds[k + 1]]
        cap = a["capability"].astype(float)
        # the agents' gains over autarky when the file has them (as bazaar_results)
        pay = a["payoff"].astype(float)
        if "gain" in a.dtype.names and not np.isnan(a["gain"]).all():
            pay = a["gain"].astype(float)  # NaN gains: a game without autarky
        out[k] = (gid, cap.max() - cap.min(), skill_share(pay, high_skill_mask(a)))
    return out
