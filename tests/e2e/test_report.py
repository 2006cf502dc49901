"""analysis/report.py: the report of a small heuristic sweep opens in headless
Chromium with every image loaded and no script error; summary.json holds what
the page shows. The checker itself is shown to catch a broken image and a
throwing script."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, bazaar, write_spec

PY = sys.executable
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _dom(page, profile):
    """The DOM of page after load, as headless Chromium renders it."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=10000",
           "--dump-dom", "file://" + os.path.abspath(page)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


def _check(dom):
    m = re.search(r'id="bz-check"[^>]*>([^<]*)<', dom)
    assert m, "the page's checker did not run"
    return json.loads(m.group(1).replace("&quot;", '"'))


def _need_chromium():
    if not CHROMIUM:
        print("BZ_TEST_SKIPPED: chromium is not installed (scripts/test.sh installs it)")
        pytest.skip("chromium is not installed")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    spec = {
        "name": "rep", "game": "electricity", "seed": 4, "repetitions": 4,
        "fixed": {"n_agents": 4, "max_turns": 12},
        "grid": {"supply_ratio": [0.8, 1.2], "volatility": [0.1, 0.4], "communication": [True, False],
                 "lineup": ["g0", "g8"]},
        "lineups": {"g0": ["heuristic:reciprocal?skill=0.5", "heuristic:greedy?skill=0.5"],
                    "g8": ["heuristic:reciprocal?skill=0.9", "heuristic:greedy?skill=0.1"]},
    }
    h5 = str(tmp / "rep.h5")
    bazaar("run", write_spec(tmp, spec), "-o", h5, "--quiet")
    out = str(tmp / "report")
    p = subprocess.run([PY, os.path.join(ROOT, "analysis", "report.py"), h5, "-o", out, "--boot",
                        "300"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "index.html" in p.stdout
    return out


def test_summary_holds_every_effect_fit_and_cell(report):
    s = json.load(open(os.path.join(report, "summary.json")))
    e = s["games"]["electricity"]
    assert e["competition_axis"] == "supply_ratio"
    contrasts = {x["contrast"] for x in e["effects"]}
    assert {"communication", "volatility", "supply_ratio", "lineup=g0,g8"} <= contrasts
    for x in e["effects"]:
        assert set(x) >= {"estimate", "ci_low", "ci_high", "n_pairs", "method"}
    assert len(e["heatmaps"]) == 4  # 2 communication settings x (mean, paired)
    assert len(e["fits"]) == 4  # 2 communication settings x 2 supply_ratio levels
    assert e["ratings"]["rows"] and e["examples"]
    html = open(os.path.join(report, "index.html")).read()
    for h in e["heatmaps"]:
        assert h["scale"].startswith("fixed scale")
    imgs = re.findall(r'<img src="([^"]+)"', html)
    assert len(imgs) >= 7
    for i in imgs:
        assert os.path.getsize(os.path.join(report, i)) > 0
        assert os.path.exists(os.path.join(report, i[:-4] + ".svg"))


def test_report_opens_in_headless_chromium_with_every_image_and_no_error(report, tmp_path):
    _need_chromium()
    res = _check(_dom(os.path.join(report, "index.html"), str(tmp_path / "profile")))
    assert res["images"] >= 7 and res["broken"] == [] and res["errors"] == [], res


def test_the_checker_catches_a_broken_image_and_a_script_error(report, tmp_path):
    _need_chromium()
    html = open(os.path.join(report, "index.html")).read()
    bad = html.replace("</body>", '<img src="fig/missing.png"><script>undefined_fn();</script></body>')
    page = tmp_path / "bad.html"
    page.write_text(bad)
    for sub in ("fig",):
        os.symlink(os.path.join(report, sub), tmp_path / sub)
    res = _check(_dom(str(page), str(tmp_path / "profile")))
    assert res["broken"] == ["fig/missing.png"], res
    assert len(res["errors"]) == 1 and "undefined_fn" in res["errors"][0], res
