#!/usr/bin/env python3
"""Static checks of the coverage specs against the kernel source (no build, no sie).

For every tunable: the file exists; a 'macro:' is defined (how many times: several means
#if branches) with V1 equal to its literal value; a 'match:' occurs exactly once; every object's
source exists and mentions the macro (or includes the edited header / is the edited file); values
are distinct and V1 lies in the range; and whether each object is built in or a shipped module.

    benchmarks/coverage/check_specs.py [--tree DIR] [SPEC.yaml ...]
"""

import argparse
import glob
import os
import re
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import kbuild  # noqa: E402


def default_tree(release):
    cache = os.environ.get("SIE_CACHE", os.path.expanduser("~/.cache/sie"))
    cached = os.path.join(cache, f"kernel-{release}", "linux")
    if not os.path.isdir(cached):
        sys.exit(f"check_specs: no kernel tree at {cached}\n"
                 "hint: `sie synth` prepares it on first use, or pass --tree DIR")
    return cached


def literal(v):
    v = v.strip()
    while v.startswith("(") and v.endswith(")"):
        v = v[1:-1].strip()
    v = re.sub(r"[uUlL]+$", "", v)
    try:
        return int(v, 0)
    except ValueError:
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree")
    ap.add_argument("--min-count", type=int, default=110,
                    help="fail when the specs hold fewer tunables (the benchmark's floor)")
    ap.add_argument("specs", nargs="*")
    a = ap.parse_args()
    rel = kbuild.release(REPO)
    tree = a.tree or default_tree(rel)
    kb = kbuild.Kbuild(rel, tree)
    specs = a.specs or sorted(glob.glob(os.path.join(HERE, "*.yaml")))
    problems = 0
    counts = {}
    names = set()
    for sp in specs:
        doc = yaml.safe_load(open(sp))
        for t in doc["tunables"]:
            n = t["name"]
            notes = []
            if n in names:
                notes.append("ERROR: name used twice")
            names.add(n)
            path = os.path.join(tree, t["file"])
            text = open(path, errors="replace").read() if os.path.exists(path) else None
            if text is None:
                notes.append(f"ERROR: {t['file']} missing")
            elif "macro" in t:
                defs = re.findall(r"^[ \t]*#[ \t]*define[ \t]+" + re.escape(t["macro"]) +
                                  r"(?![\w(])[ \t]*([^\n]*)", text, re.M)
                vals = [re.split(r"/\*|//", d)[0].strip() for d in defs]
                if not vals:
                    notes.append("ERROR: macro not defined")
                elif len(vals) > 1:
                    notes.append(f"#if: {len(vals)} definitions {vals}")
                else:
                    lit = literal(vals[0])
                    if lit is None:
                        notes.append(f"non-literal '{vals[0]}' (V1 assumed {t['values'][0]})")
                    elif lit != t["values"][0]:
                        notes.append(f"ERROR: V1 {t['values'][0]} but defined as {vals[0]}")
            else:
                c = text.count(t["match"])
                if c != 1:
                    notes.append(f"ERROR: match occurs {c} times")
                v1 = t["replace"].replace("{V}", str(t["values"][0]))
                if v1 != t["match"]:
                    notes.append(f"V1 text '{v1}' differs from the shipped text")
            vs = t["values"]
            if len(set(vs)) != 3:
                notes.append("ERROR: values not distinct")
            lo, hi = t["range"]
            if not all(lo <= v <= hi for v in vs):
                notes.append("ERROR: a value lies outside the range (sie refuses that)")
            word = t.get("macro") or None
            hdr = os.path.basename(t["file"])
            for o in t["objects"]:
                src = os.path.join(tree, o[:-2] + ".c")
                if not os.path.exists(src):
                    notes.append(f"ERROR: {o}: no source")
                    continue
                s = open(src, errors="replace").read()
                if o[:-2] + ".c" == t["file"]:
                    pass
                elif word and re.search(r"\b" + re.escape(word) + r"\b", s):
                    pass
                elif t["file"].endswith(".h") and hdr in s:
                    notes.append(f"{o}: uses it through included {hdr} only (inline/other macro)")
                elif t["file"].endswith(".c") and hdr in s:
                    pass  # e.g. raid1.c includes raid1-10.c
                else:
                    notes.append(f"WARN: {o} does not mention {word or hdr}")
            kind, det = kb.classify_tunable(t["objects"])
            counts[kind] = counts.get(kind, 0) + 1
            mods = sorted({d["module"] for d in det.values() if d["module"] and d["kind"] == "module"})
            comp = any(d["composite"] for d in det.values() if d["kind"] == "module")
            if kind not in ("builtin", "module"):
                notes.append(f"ERROR: objects are {kind}: {det}")
            bad = any(x.startswith("ERROR") for x in notes)
            problems += bad
            print(f"{'!!' if bad else 'ok'} {os.path.basename(sp):18} {n:34} {kind:8}"
                  f"{' ' + ','.join(mods) + ('(composite)' if comp else '') if mods else ''}"
                  + "".join(f"\n      {x}" for x in notes))
    print(f"\n{sum(counts.values())} tunables: {counts}; {problems} with errors")
    total = sum(counts.values())
    if not a.specs and total < a.min_count:
        print(f"ERROR: {total} tunables, fewer than the floor {a.min_count}")
        return 1
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
