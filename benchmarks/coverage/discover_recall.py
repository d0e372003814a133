#!/usr/bin/env python3
"""Recall of `sie discover` on the coverage list: for every `macro:` tunable of
benchmarks/coverage/*.yaml, runs discover on its `file:` (once per file) and reports whether the
macro is found as a candidate and whether it ranks in the top N of that file.

    benchmarks/coverage/discover_recall.py [--sie build/bin/sie] [--top 10] [--json OUT]
"""

import argparse
import glob
import json
import os
import subprocess
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sie", default=os.path.join(REPO, "build/bin/sie"))
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--json")
    a = ap.parse_args()
    by_file = {}
    for sp in sorted(glob.glob(os.path.join(HERE, "*.yaml"))):
        for t in yaml.safe_load(open(sp))["tunables"]:
            if "macro" in t:
                by_file.setdefault(t["file"], []).append(t["macro"])
    rows = []
    for f, macros in sorted(by_file.items()):
        out = subprocess.run([a.sie, "discover", f, "--json"], capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"discover {f} failed: {out.stderr}")
        cands = {c["name"]: c for c in json.loads(out.stdout)["candidates"]}
        for m in macros:
            c = cands.get(m)
            rows.append({"file": f, "macro": m, "listed": c is not None,
                         "verdict": c["verdict"] if c else "not defined here",
                         "rank": c.get("rank") if c else None,
                         "candidates": sum(1 for x in cands.values() if "rank" in x)})
            print(f"{m:40s} {f:40s} rank {rows[-1]['rank']}  {rows[-1]['verdict']}")
    n = len(rows)
    found = sum(1 for r in rows if r["rank"])
    top = sum(1 for r in rows if r["rank"] and r["rank"] <= a.top)
    print(f"\n{n} macros in {len(by_file)} files: {found} found as candidates "
          f"({100 * found / n:.0f}%), {top} in the top {a.top} of their file "
          f"({100 * top / n:.0f}%)")
    if a.json:
        json.dump({"top": a.top, "rows": rows}, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
