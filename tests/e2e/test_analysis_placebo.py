"""analysis/: the placebo contrast. Two lineups of identical agents under
different names must give identical games (issue 9: full pairing), so a
paired effect between them is exactly 0 with a CI containing 0. Kept in a
file of its own so that, while the engine keys agents' random streams by the
lineup's name and this fails, the other analysis tests still run."""
import os
import sys

from conftest import ROOT, bazaar, write_spec

sys.path.insert(0, os.path.join(ROOT, "analysis"))
import bazaar_results as br  # noqa: E402
import effects  # noqa: E402

GREEDY = "heuristic:greedy?skill="


def _run(tmp_path, spec, name):
    out = str(tmp_path / f"{name}.h5")
    bazaar("run", write_spec(tmp_path, spec, f"{name}.json"), "-o", out, "--quiet")
    return out


def test_placebo_lineups_under_two_names_have_effect_exactly_zero(tmp_path):
    """Two lineups of identical agents under different names: every pair of
    games must be identical, so the effect is exactly 0 on every outcome.
    (Fails while agents' random streams are keyed by the lineup's name.)"""
    mix = ["heuristic:truthful?skill=0.7", GREEDY + "0.6", "heuristic:reciprocal?skill=0.8", "heuristic:zi"]
    spec = {"name": "placebo", "game": "electricity", "seed": 8, "repetitions": 6,
            "fixed": {"n_agents": 4, "max_turns": 12},
            "grid": {"supply_ratio": [0.8, 1.2], "communication": [True, False], "lineup": ["a", "b"]},
            "lineups": {"a": mix, "b": list(mix)}}
    r = br.load(_run(tmp_path, spec, "placebo"))
    for outcome in ("high_share", "welfare"):
        e = effects.effect(r, "lineup=a,b", outcome, n_boot=500)
        assert e["paired"] and e["n_pairs"] == 24
        assert e["ci_low"] <= 0 <= e["ci_high"], e
        assert e["estimate"] == 0.0, (outcome, e["estimate"], e["ci_low"], e["ci_high"])
