#!/usr/bin/env python3
"""Power planner: repetitions needed for a CI of a given width on a contrast.

usage: power.py PILOT --contrast X[=A,B] --outcome Y --width W [--where k=v ...] [--json]

From a pilot results file: the contrast's cluster-bootstrap CI (effects.py)
at the pilot's R repetitions has width w; environments are independent
across repetitions, so the width shrinks as 1/sqrt(R) and
R_needed = ceil(R * (w / W)^2) repetitions give a CI of width about W.

Owns: the command line only (the arithmetic is effects.plan).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bazaar_results as br  # noqa: E402
import effects  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pilot")
    ap.add_argument("--contrast", required=True)
    ap.add_argument("--outcome", required=True)
    ap.add_argument("--width", type=float, required=True, help="target total CI width")
    ap.add_argument("--where", action="append", default=[])
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    r = br.load(a.pilot)
    p = effects.plan(r, a.contrast, a.outcome, a.width, effects.parse_where(a.where))
    if a.json:
        print(json.dumps(effects.clean(p)))
        return
    print(f"pilot: {p['pilot_repetitions']} repetitions, estimate {p['estimate']:+.4g}, "
          f"CI width {p['pilot_ci_width']:.4g} ({p['method']})")
    print(f"repetitions needed for a CI of width {a.width:g}: {p['repetitions_needed']}")


if __name__ == "__main__":
    main()
