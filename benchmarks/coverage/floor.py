#!/usr/bin/env python3
"""CI floor of the coverage benchmark: docs/coverage.json must cover the specs and keep at least
--min-ok synthesized constants (and --min-modules of them in modules).

docs/coverage.json is what benchmarks/coverage/run.sh wrote for the specs in this tree; a change
that drops constants from the record, or regenerates it with fewer synthesized, fails here. The
synthesis itself is exercised in CI by the tests/live fixture (ten of these constants, three in
modules, synthesized from these specs and set in the guest).

    benchmarks/coverage/floor.py [--json docs/coverage.json] [--min-ok N] [--min-modules N]
"""

import argparse
import glob
import json
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=os.path.join(REPO, "docs", "coverage.json"))
    ap.add_argument("--min-ok", type=int, required=True)
    ap.add_argument("--min-modules", type=int, required=True)
    a = ap.parse_args()
    names = set()
    for spec in glob.glob(os.path.join(HERE, "*.yaml")):
        names |= {t["name"] for t in yaml.safe_load(open(spec))["tunables"]}
    recs = {c["name"]: c for c in json.load(open(a.json))["constants"]}
    errors = []
    if missing := sorted(names - recs.keys()):
        errors.append(f"{len(missing)} tunables of the specs have no record: {', '.join(missing[:8])}"
                      " (rerun benchmarks/coverage/run.sh --only ... --merge)")
    ok = [c for n, c in recs.items() if n in names and c["status"] == "ok"]
    mods = [c for c in ok if c.get("kind") == "module"]
    print(f"coverage floor: {len(ok)}/{len(names)} synthesized (floor {a.min_ok}), "
          f"{len(mods)} in modules (floor {a.min_modules})")
    if len(ok) < a.min_ok:
        errors.append(f"{len(ok)} synthesized, fewer than the floor {a.min_ok}")
    if len(mods) < a.min_modules:
        errors.append(f"{len(mods)} module constants synthesized, fewer than {a.min_modules}")
    for e in errors:
        print(f"ERROR: {e}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
