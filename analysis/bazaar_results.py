"""Load a bazaar results file (HDF5) into pandas DataFrames, for any game.

Owns: reading the file and discovering what is in it (games, their parameters,
per-game tables, outcomes, the competition axis). Never writes the file and
never assumes one game: the only place game names appear is COMPETITION_AXES.

From a notebook:

    import bazaar_results as br
    r = br.load("results/quickstart.h5")
    r.games.head(); r.agents; r.tables["electricity/turns"]; r.messages
    r.texts(r.llm_calls["reply_text"])   # the words behind /llm_calls, by hash

Works with both layouts of the file:
  * old: /games carries electricity's parameter columns (volatility, scarcity,
    competition) and a params_json column with every parameter;
  * new: /games is game-neutral and each game's parameters are the columns of
    /<game>/config (one row per game, keyed by game_id).
Any other table with a game_id column is a per-game table (r.tables).
"""
import json

import h5py
import numpy as np
import pandas as pd

# The competition knob of each game, in order of preference (the first one the
# file has is used). A game not listed, or none of whose names is in the file,
# falls back to discovery (competition_axis). This is the only place game names
# appear in analysis/.
COMPETITION_AXES = {
    "electricity": ["supply_ratio", "scarcity"],
    "item_allocation": ["competition"],
    "treaty": ["rho", "theta"],
    "beast": [],
}

COMMON_TABLES = ("games", "agents", "messages", "llm_calls", "llm_texts", "llm_text_bytes")
# /games columns that identify or describe a game but are neither parameters
# nor outcomes
ID_COLUMNS = ("game_id", "game", "seed", "env_seed", "repetition", "lineup", "params_json",
              "status", "error")
# config columns that are measured, not set (treaty's achieved_rho, ...)
MEASURED_PREFIXES = ("achieved_",)


def _frame(arr):
    """A structured numpy array as a DataFrame, byte strings decoded to str."""
    cols = {}
    for name in arr.dtype.names:
        col = arr[name]
        if col.dtype.kind in "OS":
            col = np.array([c.decode("utf-8", "replace") if isinstance(c, bytes) else c for c in col],
                           dtype=object)
        elif col.dtype.kind == "V":  # an enum or opaque type: keep it as bytes
            col = col.astype(object)
        cols[name] = col
    return pd.DataFrame(cols)


def read_table(path, name):
    """One table of a results file as a DataFrame (e.g. "electricity/turns")."""
    with h5py.File(path, "r") as f:
        return _frame(f[name.lstrip("/")][()])


def is_table(name):
    """Whether the dataset name is a table: not under /.parts (a file of
    `bazaar run --layout virtual` keeps there the chunks its tables map,
    each source's rows apart: reading them as tables would count a rank's
    games as a table of their own)."""
    return not name.lstrip("/").startswith(".parts/")


def table_names(path):
    """Names of every table (dataset) in the file, without the leading '/'."""
    names = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return sorted(n for n in names if is_table(n))


def text_hash(text):
    """bazaar's content address of a text (str or UTF-8 bytes): 32 hex digits,
    as /llm_calls names prompts and replies (src/llm/call.c, bz_llm_text_hash)."""
    data = text.encode() if isinstance(text, str) else bytes(text)
    m = (1 << 64) - 1
    a, b = 0xcbf29ce484222325, 0x84222325cbf29ce4
    for c in data:
        a = ((a ^ c) * 0x100000001b3) & m
        b = ((b ^ c) * 0x00000100000001b3 + 0x9e3779b97f4a7c15) & m
        b ^= b >> 29
    n = len(data)
    a ^= n
    b ^= (n * 0x9e3779b97f4a7c15) & m
    a = ((a ^ (a >> 33)) * 0xff51afd7ed558ccd) & m
    a ^= a >> 33
    b = ((b ^ (b >> 31)) * 0xc4ceb9fe1a85ec53) & m
    b ^= b >> 29
    return f"{a:016x}{b:016x}"


def _str(x):
    return x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)


def llm_texts(path, hashes=None):
    """The LLM transcript texts of a results file: {hash: text}, for every
    stored text or only the given hashes (iterable of str or bytes; "" and
    unknown hashes are left out). The file keeps each distinct text once:
    /llm_texts is the index (game_id and kind of first use, hash, offset,
    length) and /llm_text_bytes the compressed bytes; files of the earlier
    layout (per-game rows with a text column) are read too."""
    want = None if hashes is None else {_str(h) for h in hashes if len(h)}
    out = {}
    with h5py.File(path, "r") as f:
        if "llm_texts" not in f:
            return out
        idx = f["llm_texts"][()]
        if "text" in idx.dtype.names:  # the earlier, per-game layout
            for h, t in zip(idx["hash"], idx["text"]):
                h = _str(h)
                if (want is None or h in want) and h not in out:
                    out[h] = _str(t)
            return out
        data = f["llm_text_bytes"]
        blob = data[()] if want is None or len(want) > len(idx) // 8 else None
        for h, off, n in zip(idx["hash"], idx["offset"], idx["length"]):
            h = _str(h)
            if want is not None and h not in want:
                continue
            raw = blob[off:off + n] if blob is not None else data[off:off + n]
            out[h] = bytes(raw).decode("utf-8", "replace")
    return out


class _LazyTables(dict):
    """Per-game tables read on first access (a 10,000-game file's turn table
    is large and most analyses do not need it)."""

    def __init__(self, path, names):
        super().__init__()
        self._path = path
        self._names = list(names)

    def __missing__(self, key):
        key = key.lstrip("/")
        if key not in self._names:
            raise KeyError(f"{self._path}: no table {key}; per-game tables: {self._names}")
        df = read_table(self._path, key)
        self[key] = df
        return df

    def names(self):
        return list(self._names)

    def __contains__(self, key):
        return key.lstrip("/") in self._names

    def __iter__(self):
        return iter(self._names)

    def keys(self):
        return list(self._names)


class Results:
    """A loaded results file.

    games     one row per game: /games joined with its parameters
    agents    /agents, plus `label` (the agent's policy or model) and `game`
    tables    per-game tables by name ("electricity/turns", ...), read lazily
    messages  /messages (empty DataFrame when absent)
    llm_calls /llm_calls (empty DataFrame when absent)
    attrs     root attributes; spec the sweep spec (dict) when stored
    params    {game: [parameter columns of games]}; factors the design
              factors (parameters set by the spec, plus lineup, communication,
              n_agents and memory_turns)
    """

    def __init__(self, path):
        self.path = path
        names = table_names(path)
        with h5py.File(path, "r") as f:
            self.attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        try:
            self.spec = json.loads(self.attrs.get("spec_json", "") or "{}")
        except ValueError:
            self.spec = {}
        if "games" not in names:
            raise ValueError(f"{path}: no /games table (not a bazaar results file?)")
        games = read_table(path, "games")
        self.layout = "old"
        config = {n.split("/")[0]: n for n in names if n.endswith("/config") and n.count("/") == 1}
        self.params = {}
        if config:
            self.layout = "new"
            games = self._join_config(path, games, config)
        elif "params_json" in games.columns:
            games = self._join_params_json(games)
        for c in ("seed", "env_seed"):  # the seeds' bits, whatever their signedness
            if c in games.columns and games[c].dtype.kind == "i":
                games[c] = games[c].astype(np.uint64)
        self.games = games.sort_values("game_id", kind="stable").reset_index(drop=True)
        self.agents = read_table(path, "agents") if "agents" in names else pd.DataFrame()
        if len(self.agents):
            self.agents["label"] = self.agents["policy"] if "policy" in self.agents else "agent"
            self.agents = self.agents.merge(self.games[["game_id", "game"]], on="game_id",
                                            how="left")
        self.messages = read_table(path, "messages") if "messages" in names else pd.DataFrame()
        self.llm_calls = read_table(path, "llm_calls") if "llm_calls" in names else pd.DataFrame()
        per_game = [n for n in names if n.split("/")[0] not in COMMON_TABLES
                    and not n.endswith("/config") and self._has_game_id(path, n)]
        self.tables = _LazyTables(path, per_game)
        self.factors = self._design_factors()

    def texts(self, hashes=None):
        """{hash: text} of the LLM transcripts (see llm_texts): e.g.
        r.texts(r.llm_calls["reply_text"]) for every reply."""
        return llm_texts(self.path, hashes)

    @staticmethod
    def _has_game_id(path, name):
        with h5py.File(path, "r") as f:
            d = f[name]
            return d.dtype.names is not None and "game_id" in d.dtype.names

    def _join_config(self, path, games, config):
        parts = []
        for game, name in sorted(config.items()):
            cfg = read_table(path, name)
            cols = [c for c in cfg.columns if c != "game_id"]
            # a parameter /games already carries (n_agents, communication) stays as it is
            cfg = cfg[["game_id"] + [c for c in cols if c not in games.columns]]
            self.params[game] = [c for c in cols]
            parts.append(cfg)
        cfg = pd.concat(parts, ignore_index=True, sort=False) if parts else None
        if cfg is not None:
            games = games.merge(cfg, on="game_id", how="left")
        return games

    def _join_params_json(self, games):
        parsed = [json.loads(s) if isinstance(s, str) and s else {} for s in games["params_json"]]
        keys = []
        for p in parsed:
            for k, v in p.items():
                if k not in keys and not isinstance(v, (dict, list)):
                    keys.append(k)
        for k in keys:
            if k not in games.columns:
                games[k] = [p.get(k, np.nan) for p in parsed]
        # electricity's columns left in /games that are NaN for a game are not its parameters
        for game in games["game"].unique():
            sel = games["game"] == game
            own = [k for k in keys if k in games.columns and games.loc[sel, k].notna().any()]
            self.params[game] = own
        for c in ("volatility", "scarcity", "competition"):
            if c in games.columns and games[c].isna().all():
                games = games.drop(columns=c)
        return games

    def _design_factors(self):
        """Parameters the spec sets (grid or fixed), plus lineup: what defines a
        cell of the design. Without a stored spec: every parameter that is not a
        measured one."""
        allp = []
        for ps in self.params.values():
            allp += [p for p in ps if p not in allp]
        spec_keys = set(self.spec.get("grid", {})) | set(self.spec.get("fixed", {}))
        out = []
        for p in allp:
            if p.startswith(MEASURED_PREFIXES) or p not in self.games.columns:
                continue
            if spec_keys and p not in spec_keys and self.games[p].nunique(dropna=True) > 1:
                continue  # varies but not by the spec: measured
            out.append(p)
        # /games columns a spec sets; memory_turns (llm.memory_turns, a grid
        # axis) is 0 for games without LLM agents
        for c in ("communication", "n_agents", "lineup", "memory_turns"):
            if c in self.games.columns and c not in out:
                out.append(c)
        return out

    # -- discovery -------------------------------------------------------------------------
    def game_names(self):
        return sorted(self.games["game"].dropna().unique())

    def varying(self, game=None):
        """Design factors with more than one value (within `game` if given)."""
        g = self.games if game is None else self.games[self.games["game"] == game]
        return [f for f in self.factors if g[f].nunique(dropna=True) > 1]

    def outcomes(self):
        """Numeric per-game outcomes: /games columns that are not ids or
        parameters, plus the derived ones (see game_outcomes)."""
        skip = set(ID_COLUMNS) | set(self.factors)
        for ps in self.params.values():
            skip |= set(ps)
        cols = [c for c in self.games.columns if c not in skip and self.games[c].dtype.kind in "biuf"]
        return cols + [c for c in DERIVED if c not in cols]

    def competition_axis(self, game):
        """The column of games holding `game`'s competition knob, or None."""
        g = self.games[self.games["game"] == game]
        for name in COMPETITION_AXES.get(game, []):
            if name in g.columns and g[name].notna().any():
                return name
        if game in COMPETITION_AXES and not COMPETITION_AXES[game]:
            return None  # the game has no competition knob
        cands = [f for f in self.varying(game) if f not in ("lineup", "communication", "n_agents")
                 and g[f].dtype.kind in "biuf"]
        named = [f for f in cands if "compet" in f]
        return (named or cands or [None])[0]

    def outcome(self, name):
        """Per-game values of an outcome, a Series indexed like games.

        name is a /games column, a derived outcome (DERIVED), or TABLE.COLUMN[:agg]
        for a per-game table aggregated per game (agg mean (default), sd, sum,
        max, min), e.g. "electricity/market.clearing_price:sd"."""
        if name in self.games.columns:
            return self.games[name].astype(float)
        if name in DERIVED:
            return self.derived()[name]
        if "." in name:
            tab, _, col = name.rpartition(".")
            col, _, agg = col.partition(":")
            agg = {"sd": "std", "": "mean"}.get(agg, agg)
            t = self.tables[tab]
            if col not in t.columns:
                raise KeyError(f"{self.path}: table {tab} has no column {col}")
            per = t.groupby("game_id")[col].agg(agg)
            return self.games["game_id"].map(per).astype(float)
        raise KeyError(f"{self.path}: no outcome '{name}'; outcomes: {self.outcomes()} or "
                       f"TABLE.COLUMN[:mean|sd|sum|max|min] with TABLE in {self.tables.names()}")

    def derived(self):
        """Per-game outcomes computed from /agents (a DataFrame indexed like games):

        capability_gap  max - min capability among the game's agents (NaN when
                        the lineup mixes heuristics and models: their
                        capabilities are on different scales)
        high_share      0.5 + (H - L) / (2 sum|x|), x the agents' gain where
                        the game defines one (not NaN), else payoff; H, L the summed x of the
                        higher- and lower-capability agents (at gap 0: even and
                        odd seats). Equals H / (H + L) when every x >= 0.
        high_advantage  mean x of the high agents - mean x of the low agents
        capability_mean the agents' mean capability (a heatmap axis for model
                        capability against fixed opponents)
        All four are NaN for a game whose lineup mixes kinds (heuristic skill
        and model Elo are different scales: "higher capability" means nothing).
        """
        if getattr(self, "_derived", None) is not None:
            return self._derived
        a = self.agents
        out = pd.DataFrame(index=self.games.index)
        if not len(a):
            for c in DERIVED:
                out[c] = np.nan
            self._derived = out
            return out
        # gain where the game defines one (electricity: payoff - autarky
        # payoff); games without an autarky notion write NaN gains: payoff
        x = a["payoff"]
        if "gain" in a.columns:
            g = a["gain"].astype(float)
            has = g.notna().groupby(a["game_id"]).transform("all")
            x = g.where(has, a["payoff"])
        cap = a["capability"].astype(float)
        gid = a["game_id"].to_numpy()
        cmax = cap.groupby(gid).transform("max").to_numpy()
        cmin = cap.groupby(gid).transform("min").to_numpy()
        gap0 = (cmax - cmin) <= 1e-12
        hi = np.where(gap0, (a["agent"].to_numpy() % 2) == 0, cap.to_numpy() > cmin + 1e-12)
        xv = x.astype(float).to_numpy()
        df = pd.DataFrame({"game_id": gid, "hi": hi, "x": xv, "ax": np.abs(xv),
                           "xh": np.where(hi, xv, 0.0), "xl": np.where(hi, 0.0, xv),
                           "nh": hi.astype(float), "nl": (~hi).astype(float), "cap": cap.to_numpy()})
        kinds = a["kind"] if "kind" in a.columns else pd.Series("", index=a.index)
        df["mixed"] = kinds.groupby(gid).transform("nunique").to_numpy() > 1
        s = df.groupby("game_id").agg(xh=("xh", "sum"), xl=("xl", "sum"), ax=("ax", "sum"),
                                      nh=("nh", "sum"), nl=("nl", "sum"), cmax=("cap", "max"),
                                      cmin=("cap", "min"), cmean=("cap", "mean"),
                                      mixed=("mixed", "max"))
        share = np.where(s["ax"] > 0, 0.5 + (s["xh"] - s["xl"]) / (2 * s["ax"].where(s["ax"] > 0)),
                         np.nan)
        adv = s["xh"] / s["nh"].where(s["nh"] > 0) - s["xl"] / s["nl"].where(s["nl"] > 0)
        mixed = s["mixed"].astype(bool)
        gap = (s["cmax"] - s["cmin"]).where(~mixed)
        share = pd.Series(share, index=s.index).where(~mixed)
        adv = adv.where(~mixed)
        m = self.games["game_id"]
        out["capability_gap"] = m.map(gap).astype(float).round(9).to_numpy()
        out["capability_mean"] = m.map(s["cmean"].where(~mixed)).astype(float).round(9).to_numpy()
        out["high_share"] = m.map(share).astype(float).to_numpy()
        out["high_advantage"] = m.map(adv).astype(float).to_numpy()
        self._derived = out
        return out

    def ok(self):
        """Games that finished (status ok)."""
        if "status" in self.games.columns:
            return self.games[self.games["status"] == "ok"]
        return self.games


DERIVED = ("capability_gap", "capability_mean", "high_share", "high_advantage")


def load(path):
    """Load a results file: see Results."""
    return Results(path)
