"""analysis/: the loader and the heatmap on a real (small) sweep."""
import os
import subprocess
import sys

import numpy as np

from conftest import ROOT, bazaar, write_spec

sys.path.insert(0, os.path.join(ROOT, "analysis"))
import heatmap  # noqa: E402
import results  # noqa: E402


def _sweep(tmp_path):
    spec = {
        "name": "hm", "game": "electricity", "seed": 5, "repetitions": 4,
        "fixed": {"n_agents": 4, "max_turns": 12},
        "grid": {"scarcity": [0.8, 1.2], "lineup": ["g0", "g8"]},
        "lineups": {
            "g0": ["heuristic:greedy?skill=0.5", "heuristic:greedy?skill=0.5"],
            "g8": ["heuristic:greedy?skill=0.9", "heuristic:greedy?skill=0.1"],
        },
    }
    out = str(tmp_path / "hm.h5")
    bazaar("run", write_spec(tmp_path, spec), "-o", out, "--quiet")
    return out


def test_high_skill_mask_uses_capability_then_even_positions():
    a = np.array([(0, 0.9), (1, 0.1), (2, 0.9), (3, 0.1)],
                 dtype=[("agent", "i4"), ("capability", "f8")])
    assert list(results.high_skill_mask(a)) == [True, False, True, False]
    a["capability"] = 0.5
    assert list(results.high_skill_mask(a)) == [True, False, True, False]


def test_skill_share_is_the_plain_share_for_profits_and_centred_for_losses():
    hi = np.array([True, False])
    assert results.skill_share(np.array([30.0, 10.0]), hi) == 0.75
    assert results.skill_share(np.array([-10.0, -30.0]), hi) == 0.75
    assert results.skill_share(np.array([-20.0, -20.0]), hi) == 0.5
    assert np.isnan(results.skill_share(np.array([0.0, 0.0]), hi))


def test_heatmap_grid_has_one_cell_per_gap_and_scarcity(tmp_path):
    out = _sweep(tmp_path)
    gaps, rows, mean, count = heatmap.heatmap_grid(out)
    assert list(np.round(gaps, 6)) == [0.0, 0.8]
    assert list(rows) == [0.8, 1.2]
    assert count.sum() == 16 and (count == 4).all()
    assert np.isfinite(mean).all()


def test_heatmap_script_writes_a_png(tmp_path):
    out = _sweep(tmp_path)
    png = str(tmp_path / "hm.png")
    p = subprocess.run([sys.executable, os.path.join(ROOT, "analysis", "heatmap.py"), out,
                        "-o", png], capture_output=True, text=True, check=True)
    assert "16 games" in p.stdout
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
