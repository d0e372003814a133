#!/usr/bin/env python3
"""Kernel coverage benchmark: `sie synth` on every tunable of benchmarks/coverage/*.yaml.

Each tunable runs alone (its spec is split into single-tunable temporary specs that keep the
top-level keys), so one tunable's failure never hides another's; N run at a time, each with a
timeout. Per constant it records status (ok / refused), built-in or module, spans, kinds,
formulas, wall time and, for refusals, the first line of the error and a reason class. Writes
docs/coverage.md and docs/coverage.json (the raw results).

    benchmarks/coverage/run.sh [--only REGEX] [--jobs N] [--out DIR] [--timeout S]
"""

import argparse
import concurrent.futures as cf
import datetime
import glob
import json
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import kbuild  # noqa: E402

# Reason classes, tried in this order on the tunable's error text; the first that matches the
# *first* error of the tunable is its class (later errors of the same run are kept as `also`).
CLASSES = [
    ("timeout", r"^timeout after"),
    ("macro-under-#if", r"is defined \d+ times in"),
    ("spec-error", r"text not found in|occurs more than once in|values\[0\] is|'file' .* not found"
                   r"|is not a macro name|takes arguments|no built object uses|spans several lines"
                   r"|does not contain value|must use distinct values"
                   r"|--only .*: no such tunable|has no value|: (yaml|YAML)|'match'|'replace'"),
    ("module-not-mapped", r"no such function in \S*vmlinux"),
    ("shipped-mismatch", r"shipped function differs|instructions match|is not in the shipped binary"
                         r"|no matching instruction in the shipped binary"
                         r"|do not match the shipped kernel"),
    ("join-bypass", r"reached by a jump that bypasses|bypasses the span"),
    ("unsafe-size", r"is an allocation size|memory offset \(struct field or array index\) depends"),
    ("two-inputs", r"live inputs"),
    ("loaded-input", r"X must be a register live at the span's start|from a value loaded inside"),
    ("unmodelled-instruction", r"cannot model instruction"),
    ("shape-change", r"changes shape with the constant|control flow depends on the constant"
                     r"|shipped build has no instruction for the constant here"
                     r"|memory layout depends on the constant|stack layout depends on the constant"
                     r"|stack frame size depends on the constant"),
    ("formula-family", r"transformation outside the family|no formula in the family|no template X op c"
                       r"|multiply-high sequence|no value of the requested range is valid"),
    ("stub-error", r"cannot be recomputed yet|stub generator|compiling the stub|bpftool|clang"),
    ("build-failed", r"build failed|compiling \S+ with \S+ V\d=\S+ failed|error: .*\.c:\d+|the build command did not write|kbuild command"
                     r"|objtool failed"),
    ("no-span", r"no Critical Span found|synth found no place|no instruction differs between"),
]
CLASS_NAMES = [c for c, _ in CLASSES] + ["module-mapped-to-vmlinux", "other"]


def classify(text):
    for name, rx in CLASSES:
        if re.search(rx, text):
            return name
    return "other"


def classify_record(rec):
    """class = that of the first message line; also = the classes of the other lines."""
    rec["class"] = classify(rec["error"])
    lines = [l.strip() for l in (rec.get("error_text") or rec["error"]).splitlines()]
    lines = [l for l in lines if l and not l.startswith("hint:")]
    rec["also"] = sorted({classify(l) for l in lines[1:]} - {rec["class"], "other"})


def sh(cmd, cwd=None):
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:  # noqa: BLE001 -- best effort metadata
        return ""


def host_info():
    cpu = ""
    try:
        for l in open("/proc/cpuinfo"):
            if l.startswith("model name"):
                cpu = l.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = sh(["git", "rev-parse", "--short=12", "HEAD"], REPO)
    # The last commit that changed sie's own code (the benchmark's commits do not).
    src = sh(["git", "log", "-1", "--format=%h", "--abbrev=12", "--", "synth", "runtime", "common",
              "cmake", "CMakeLists.txt", "bpf", "kmod", "sdk"], REPO)
    dirty = sh(["git", "status", "--porcelain", "--untracked-files=no"], REPO)
    branch = sh(["git", "rev-parse", "--abbrev-ref", "HEAD"], REPO)
    return {
        "host": platform.node(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "sie_commit": commit + ("-dirty" if dirty else ""),
        "sie_branch": branch,
        "sie_source_commit": src,
        "gcc": sh(["gcc", "--version"]).splitlines()[0] if sh(["gcc", "--version"]) else "",
    }


def load_tasks(spec_paths, only):
    tasks = []
    for sp in spec_paths:
        with open(sp) as f:
            doc = yaml.safe_load(f)
        top = {k: v for k, v in doc.items() if k != "tunables"}
        # Paths in the spec are relative to its directory: make them absolute in the copy.
        for k in ("source_dir", "module_ko"):
            if k in top and top[k] and not os.path.isabs(str(top[k])):
                top[k] = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(sp)),
                                                       str(top[k])))
        with open(sp) as f:
            lines = f.read().splitlines()
        for t in doc["tunables"]:
            if only and not re.search(only, t["name"]):
                continue
            line = next((i + 1 for i, l in enumerate(lines)
                         if re.match(r"\s*-\s*name:\s*" + re.escape(t["name"]) + r"\s*$", l)), 0)
            tasks.append({"spec": os.path.relpath(sp, REPO), "top": top, "tunable": t,
                          "line": line})
    return tasks


def error_blocks(stderr):
    """The 'sie synth: error:' messages (with their continuation lines), minus the summary."""
    blocks, cur = [], None
    for l in stderr.splitlines():
        if l.startswith("sie synth: error:"):
            cur = [l[len("sie synth: error:"):].strip()]
            blocks.append(cur)
        elif l.startswith("sie synth:"):
            cur = None
        elif cur is not None:
            cur.append(l)
    out = ["\n".join(b) for b in blocks]
    return [b for b in out if not re.match(r"\d+ of \d+ tunable\(s\) could not be synthesized", b)]


def parse_times(stderr):
    m = re.search(r"time: tree preparation (\d+) ms, compilation (\d+) ms, analysis (\d+) ms, "
                  r"output \(stubs\) (\d+) ms, total (\d+) ms", stderr)
    if not m:
        return None
    keys = ["prepare", "compile", "analysis", "output", "total"]
    return {k: int(v) / 1000.0 for k, v in zip(keys, m.groups())}


def fourth_value(t):
    """A value inside the range that none of the three builds used, for the formula check."""
    v1, v2, v3 = t["values"]
    lo, hi = t["range"]
    for c in ((v1 + v2) // 2, (v1 + v3) // 2, 2 * v2 - v1, 2 * v3 - v1, v1 + 1, v1 - 1, v2 + 1, v3 + 1):
        if lo <= c <= hi and c not in (v1, v2, v3) and (c > 0 or v1 <= 0):
            return c
    return None


def compare_spans(orig, check):
    """Differences between the spans of the original run and of the V4 run: a span with the same
    boundaries (same instructions of the shipped code) must have the same formula; a span that is
    cut or merged differently at V4 cannot be compared ("regrouped")."""
    key = lambda s: (s["function"], s.get("cs_start", s["probe"]), s.get("cs_end", s["probe"]),
                     s["kind"])
    cm = {key(s): s["formula"] for s in check}
    diffs = []
    for s in orig:
        k = key(s)
        if k not in cm:
            diffs.append(f"{s['function']}+{s['probe']:#x} {s['kind']}: span regrouped or gone with V4")
        elif cm[k] != s["formula"]:
            diffs.append(f"{s['function']}+{s['probe']:#x}: `{s['formula']}` vs `{cm[k]}` with V4")
    return diffs


def load_spans(outdir, name):
    idx = os.path.join(outdir, name, "index.json")
    if not os.path.exists(idx):
        return None
    with open(idx) as f:
        ids = {c["name"]: c["dir"] for c in json.load(f).get("constants", [])}
    cj = os.path.join(outdir, name, str(ids.get(name, "")), "const.json")
    if not os.path.exists(cj):
        return None
    with open(cj) as f:
        return [span_record(s) for s in json.load(f).get("spans", [])]


def read_log(path):
    """What one earlier run wrote (--collect): rc, wall time, stdout (the --json object, last in
    the log) and stderr."""
    with open(path) as f:
        text = f.read()
    head, _, rest = text.partition("\n")
    m = re.match(r"# rc=(-?\d+) wall=([\d.]+)s\n", rest)
    rc, wall = (int(m.group(1)), float(m.group(2))) if m else (-1, 0.0)
    body = rest[m.end():] if m else rest
    cut = body.rfind("\n{\n")
    stderr, stdout = (body[:cut], body[cut + 1:]) if cut >= 0 else (body, "")
    return rc, wall, stdout, stderr, "timeout after" in stderr and rc < 0


def span_record(s):
    return {"function": s.get("function"), "probe": s.get("probe_offset"), "kind": s.get("kind"),
            "formula": s.get("formula"), "width": s.get("width"), "source": s.get("source"),
            "cs_start": s.get("cs_start"), "cs_end": s.get("cs_end")}


class Runner:
    def __init__(self, args, kb):
        self.a = args
        self.kb = kb
        self.lock = threading.Lock()
        self.done = 0
        self.t0 = time.time()

    def execute(self, cmd, outdir):
        subprocess.run(["rm", "-rf", outdir])
        start = time.time()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True, cwd=REPO)
        timed_out = False
        try:
            stdout, stderr = p.communicate(timeout=self.a.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(p.pid, signal.SIGKILL)  # sie and the compilers it started
            stdout, stderr = p.communicate()
        return p.returncode, time.time() - start, stdout, stderr, timed_out

    def run_one(self, task, total, values=None):
        """One `sie synth` of one tunable; `values` overrides its three values (formula check)."""
        t = dict(task["tunable"])
        name = t["name"]
        tag = ""
        if values:
            t["values"] = values
            tag = ".v4"
        specdir = os.path.join(self.a.out, "specs")
        outdir = os.path.join(self.a.out, "out" + tag, name)
        logdir = os.path.join(self.a.out, "logs")
        for d in (specdir, logdir):
            os.makedirs(d, exist_ok=True)
        tmp_spec = os.path.join(specdir, f"{name}{tag}.yaml")
        with open(tmp_spec, "w") as f:
            f.write(f"# {name} from {task['spec']} (generated by benchmarks/coverage/run.py)\n")
            yaml.safe_dump({**task["top"], "tunables": [t]}, f, sort_keys=False)
        log = os.path.join(logdir, f"{name}{tag}.log")
        cmd = [self.a.sie, "synth", tmp_spec, "--out", outdir, "--json", "-v"]
        if self.a.collect:
            rc, wall, stdout, stderr, timed_out = read_log(log)
        else:
            rc, wall, stdout, stderr, timed_out = self.execute(cmd, outdir)
            with open(log, "w") as f:
                f.write(f"$ {' '.join(cmd)}\n# rc={rc} wall={wall:.1f}s\n{stderr}\n{stdout}")
        kind, det = self.kb.classify_tunable(t["objects"])
        modules = sorted({d["module"] for d in det.values() if d["kind"] == "module"})
        rec = {
            "name": name,
            "spec": task["spec"],
            "file": t["file"],
            "edit": "macro" if "macro" in t else "match",
            "objects": t["objects"],
            "values": t["values"],
            "kind": kind,
            "modules": modules,
            "composite": any(d["composite"] for d in det.values() if d["kind"] == "module"),
            "rc": rc,
            "wall_s": round(wall, 1),
            "times": parse_times(stderr),
            "status": "refused",
            "class": None,
            "error": None,
            "also": [],
            "spans": [],
            "target": None,
            "warnings": [],
        }
        errs = error_blocks(stderr)
        try:
            js = json.loads(stdout) if stdout.strip().startswith("{") else None
        except ValueError:
            js = None
        if js and js.get("failed"):
            errs = [f["error"] for f in js["failed"]] + errs[len(js["failed"]):]
        const = None
        idx = os.path.join(outdir, "index.json")
        if os.path.exists(idx):
            with open(idx) as f:
                ids = {c["name"]: c["dir"] for c in json.load(f).get("constants", [])}
            cj = os.path.join(outdir, str(ids.get(name, "")), "const.json")
            if name in ids and os.path.exists(cj):
                with open(cj) as f:
                    const = json.load(f)
        if const:
            rec["spans"] = [span_record(s) for s in const.get("spans", [])]
            rec["target"] = const.get("target", {}).get("binary")
            rec["warnings"] = const.get("warnings", [])
            rec["range"] = const.get("range")
            rec["pow2_only"] = bool(const.get("pow2_only"))
        if timed_out:
            rec["class"] = "timeout"
            rec["error"] = f"timeout after {self.a.timeout} s"
        elif rc == 0 and const is not None:
            if not rec["spans"]:
                rec["class"] = "no-span"
                rec["error"] = "no Critical Span found (const.json written without spans)"
            elif kind == "module" and rec["target"] == "vmlinux":
                # Spans of module code mapped onto vmlinux would be wrong addresses.
                rec["class"] = "module-mapped-to-vmlinux"
                rec["error"] = "module code mapped onto vmlinux"
            else:
                rec["status"] = "ok"
        else:
            text = errs[0] if errs else (stderr.strip().splitlines() or ["(no message)"])[-1]
            rec["error"] = text.splitlines()[0]
            rec["error_text"] = "\n\n".join(errs)[:20000]
            classify_record(rec)
            # sie's own class, set by the code that refused (synth/refusal.h), wins over text.
            reason = (js or {}).get("failed", [{}])[0].get("reason") if js and js.get("failed") else None
            if reason and reason != "unclassified":
                rec["class"] = rec["reason"] = reason
        if rec["error"]:
            # Messages name the temporary spec and its line: point at the original spec instead.
            rec["error"] = re.sub(re.escape(tmp_spec) + r":\d+", f"{task['spec']}:{task['line']}",
                                  rec["error"]).replace(tmp_spec, task["spec"])
        with self.lock:
            self.done += 1
            el = time.time() - self.t0
            eta = el / self.done * (total - self.done)
            print(f"[{self.done}/{total}] {name}{' (V4 check ' + str(values) + ')' if values else ''}: "
                  f"{rec['status']}"
                  f"{' (' + rec['class'] + ')' if rec['class'] else ''} {wall:.1f}s"
                  f"  elapsed {el / 60:.1f} min, eta {eta / 60:.1f} min", flush=True)
        return rec


def check_kind(c):
    """same / formula (a common span got another formula) / shape (spans appear or vanish) /
    refused / no-v4."""
    if not c:
        return None
    if c["status"] != "differs":
        return c["status"]
    return "formula" if any(" vs `" in d for d in c["diffs"]) else "shape"



def check_cell(r):
    c = r.get("formula_check")
    if r["status"] != "ok" or not c:
        return ""
    k = check_kind(c)
    if k == "same":
        return f"same at V4={c['v4']}"
    if k == "formula":
        return f"**formula differs** at V4={c['v4']}: " + "; ".join(c["diffs"][:2])
    if k == "shape":
        return f"spans regrouped at V4={c['v4']}: " + "; ".join(c["diffs"][:2])
    if c["status"] == "refused":
        return f"refused at V4={c['v4']} ({c['class']})"
    return c["status"]


def esc(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


def pct(a, b):
    return f"{100.0 * a / b:.0f} %" if b else "-"


def write_md(path, meta, recs):
    by_kind = {}
    for r in recs:
        by_kind.setdefault("module" if r["kind"] == "module" else
                           "built-in" if r["kind"] == "builtin" else r["kind"], []).append(r)
    ok = [r for r in recs if r["status"] == "ok"]
    L = []
    L.append("# Kernel coverage of `sie synth`")
    L.append("")
    L.append("Generated by `benchmarks/coverage/run.sh` (do not edit by hand): every tunable of "
             "`benchmarks/coverage/*.yaml` synthesized alone with `sie synth`, "
             f"{meta['jobs']} at a time, {meta['timeout_s']} s timeout each. A constant counts as "
             "**ok** when `sie synth` exits 0 and writes a const.json with at least one span mapped "
             "onto the binary that runs the code (vmlinux, or the module's .ko for module code).")
    L.append("")
    L.append("| | |")
    L.append("|---|---|")
    L.append(f"| date | {meta['date']} |")
    L.append(f"| host | {meta['host']}: {meta['nproc']} CPUs, {meta['cpu']} |")
    L.append(f"| guest kernel | {meta['kernel_release']} |")
    L.append(f"| sie | commit {meta['sie_commit']} ({meta['sie_branch']}); sie's code as of "
             f"{meta.get('sie_source_commit', '?')}; `{meta['sie']}` |")
    L.append(f"| compiler | {meta['gcc']} |")
    L.append(f"| sweep | {len(recs)} tunables{' matching `' + meta['only'] + '`' if meta['only'] else ''}, "
             f"wall time {meta['wall_s'] / 60:.1f} min (sum of per-tunable times "
             f"{sum(r['wall_s'] for r in recs) / 60:.1f} min)"
             + (f"; V4 formula check {meta['check_wall_s'] / 60:.1f} min more"
                if meta.get("check_wall_s") else "") + " |")
    for rr in meta.get("reruns", []):
        L.append(f"| re-run | {rr['date']}, sie {rr['sie_commit']}: {', '.join(rr['names'])} "
                 f"({rr['wall_s']:.0f} s) |")
    L.append("")
    L.append("## Totals")
    L.append("")
    L.append("| code | constants | ok | refused | ok share |")
    L.append("|---|---:|---:|---:|---:|")
    for k in sorted(by_kind):
        rs = by_kind[k]
        n_ok = sum(r["status"] == "ok" for r in rs)
        L.append(f"| {k} | {len(rs)} | {n_ok} | {len(rs) - n_ok} | {pct(n_ok, len(rs))} |")
    L.append(f"| **all** | {len(recs)} | {len(ok)} | {len(recs) - len(ok)} | "
             f"**{pct(len(ok), len(recs))}** |")
    n_span = sum(len(r["spans"]) for r in ok)
    L.append("")
    L.append(f"The {len(ok)} synthesized constants have {n_span} Critical Spans. "
             f"{sum(1 for r in recs if r['edit'] == 'match')} tunables use `match:`/`replace:`, "
             f"the others `macro:`.")
    pow2 = [r["name"] for r in ok if r.get("pow2_only")]
    if pow2:
        L.append("")
        L.append(f"{len(pow2)} of them take powers of two only (`ok (2^k)`: the code has another "
                 f"shape at other values, const.json `pow2_only`): {', '.join(pow2)}.")
    narrowed = [f"{r['name']} {r['range']}" for r in ok
                if r.get("range") and any("value range narrowed" in w for w in r.get("warnings", []))]
    if narrowed:
        L.append("")
        L.append(f"{len(narrowed)} of them take a narrower range than their spec's (const.json "
                 f"`range`: the code has another shape or does not compile outside it, or a "
                 f"formula's domain ends there): {', '.join(narrowed)}.")
    fcs = [check_kind(r.get("formula_check")) for r in ok]
    if any(fcs):
        names = lambda k: ", ".join(r["name"] for r, f in zip(ok, fcs) if f == k) or "none"
        L.append("")
        L.append(f"**Formula check at a value never compiled**: each ok constant is rebuilt with V1, "
                 f"V2 and a fourth value V4 of its range, and the spans' formulas must come out the "
                 f"same on the spans both runs cut alike. {fcs.count('same')} of {len(ok)} unchanged; "
                 f"**{fcs.count('formula')} with a formula that V4 contradicts** ({names('formula')}: "
                 f"the formula fits V1..V3 but not V4, so it is wrong for part of the range unless "
                 f"the span's input also changed with V4); {fcs.count('shape')} whose spans are cut "
                 f"differently or vanish at V4 ({names('shape')}: not comparable, unverified); {fcs.count('refused')} refused with V4 "
                 f"({names('refused')}); {fcs.count('no-v4') + fcs.count(None)} not checked.")
    L.append("")
    L.append("## Refusals by class")
    L.append("")
    L.append("| class | refused | built-in | module | constants |")
    L.append("|---|---:|---:|---:|---|")
    classes = {}
    for r in recs:
        if r["status"] != "ok":
            classes.setdefault(r["class"], []).append(r)
    for c in sorted(classes, key=lambda c: (-len(classes[c]), c)):
        rs = classes[c]
        L.append(f"| {c} | {len(rs)} | {sum(r['kind'] == 'builtin' for r in rs)} | "
                 f"{sum(r['kind'] == 'module' for r in rs)} | "
                 f"{', '.join(r['name'] for r in rs)} |")
    L.append("")
    L.append("Class of a refusal = the class `sie synth --json` reports (`reason`, set by the code "
             "that refused: synth/refusal.h); without one, the class of its first error line "
             "(text classes: " + ", ".join(f"`{c}`" for c in CLASS_NAMES) + "). A later "
             "error of another class is listed under *also* in the table below.")
    L.append("")
    L.append("## Per constant")
    L.append("")
    L.append("| constant | spec | code | edit | status | class | spans | kinds | formulas | V4 check | "
             "time | functions / first line of the error |")
    L.append("|---|---|---|---|---|---|---:|---|---|---|---:|---|")
    for r in sorted(recs, key=lambda r: (r["spec"], r["name"])):
        code = "built-in" if r["kind"] == "builtin" else (
            f"module {','.join(r['modules'])}{' (composite)' if r['composite'] else ''}"
            if r["kind"] == "module" else r["kind"])
        kinds = sorted({s["kind"] for s in r["spans"] if s["kind"]})
        forms = sorted({s["formula"] for s in r["spans"] if s["formula"]})
        if r["status"] == "ok":
            fns = sorted({f"{s['function']}+{hex(s['probe']) if isinstance(s['probe'], int) else s['probe']}"
                          for s in r["spans"]})
            detail = ", ".join(fns[:4]) + (f" (+{len(fns) - 4})" if len(fns) > 4 else "")
            cls = ""
        else:
            detail = r["error"] or ""
            if len(detail) > 220:
                detail = detail[:217] + "..."
            cls = r["class"] + (f" (also {', '.join(r['also'])})" if r["also"] else "")
        L.append(f"| {r['name']} | {os.path.basename(r['spec'])} | {esc(code)} | {r['edit']} | "
                 f"{r['status']}{' (2^k)' if r.get('pow2_only') else ''} | {esc(cls)} | {len(r['spans']) if r['status'] == 'ok' else ''} | "
                 f"{esc(', '.join(kinds)) if r['status'] == 'ok' else ''} | "
                 f"{esc('; '.join('`' + f + '`' for f in forms)) if r['status'] == 'ok' else ''} | "
                 f"{esc(check_cell(r))} | {r['wall_s']:.1f} s | {esc(detail)} |")
    L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="regex on tunable names")
    ap.add_argument("--jobs", type=int, default=2, help="tunables synthesized at once (default 2)")
    ap.add_argument("--out", default=os.path.join(REPO, "build", "coverage"),
                    help="work dir: temporary specs, sie outputs, logs (default build/coverage)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per tunable (default 900)")
    ap.add_argument("--sie", default=os.path.join(REPO, "build", "bin", "sie"))
    ap.add_argument("--specs", nargs="*", help="spec files (default benchmarks/coverage/*.yaml)")
    ap.add_argument("--md", default=os.path.join(REPO, "docs", "coverage.md"))
    ap.add_argument("--json", default=os.path.join(REPO, "docs", "coverage.json"))
    ap.add_argument("--tree", help="kernel source tree for Makefile lookups (default: sie's cache)")
    # sie synth itself re-derives every formula at two values never fitted (V4, V5); this extra
    # pass re-synthesizes each ok tunable with another third value (slow: about the sweep again).
    ap.add_argument("--check", action="store_true",
                    help="also re-synthesize each ok tunable with V3 replaced by a 4th value")
    ap.add_argument("--no-check", action="store_true", help=argparse.SUPPRESS)  # the default
    ap.add_argument("--collect", action="store_true",
                    help="no sie run: rebuild the records from the logs and outputs in --out")
    ap.add_argument("--merge", action="store_true",
                    help="update only the selected tunables' records in the existing --json")
    ap.add_argument("--from-json", metavar="FILE",
                    help="no run: re-classify the results of FILE and rewrite --md/--json")
    a = ap.parse_args()
    if a.from_json:
        with open(a.from_json) as f:
            d = json.load(f)
        for r in d["constants"]:
            if r["status"] != "ok" and r["class"] not in ("timeout", "no-span",
                                                          "module-mapped-to-vmlinux"):
                log = os.path.join(a.out, "logs", f"{r['name']}.log")
                if os.path.exists(log):  # the full messages (the JSON may hold a prefix)
                    text = open(log).read()
                    k = text.rfind("\n{\n")
                    try:
                        errs = [f["error"] for f in json.loads(text[k + 1:])["failed"]]
                    except (ValueError, KeyError):
                        errs = error_blocks(text)
                    if errs:
                        r["error_text"] = "\n\n".join(errs)[:20000]
                classify_record(r)
                if r.get("reason"):  # sie's own class wins over the text
                    r["class"] = r["reason"]
            fc = r.get("formula_check")
            if r["status"] == "ok" and fc and fc.get("status") == "refused" and fc.get("error"):
                fc["class"] = classify(fc["error"])
            if r["status"] == "ok" and fc and fc.get("status") in ("same", "differs"):
                o = load_spans(os.path.join(a.out, "out"), r["name"])
                c = load_spans(os.path.join(a.out, "out.v4"), r["name"])
                if o is not None and c is not None:
                    r["spans"] = o
                    fc["diffs"] = compare_spans(o, c)
                    fc["status"] = "differs" if fc["diffs"] else "same"
        with open(a.json, "w") as f:
            json.dump(d, f, indent=1, sort_keys=True)
            f.write("\n")
        write_md(a.md, d["meta"], d["constants"])
        return
    a.out = os.path.abspath(a.out)
    if not os.access(a.sie, os.X_OK):
        sys.exit(f"run.py: {a.sie} not found; build it: ninja -C build sie")
    rel = kbuild.release(REPO)
    tree = a.tree or os.path.expanduser(f"~/.cache/sie/kernel-{rel}/linux")
    specs = a.specs or sorted(glob.glob(os.path.join(HERE, "*.yaml")))
    tasks = load_tasks(specs, a.only)
    if not tasks:
        sys.exit("run.py: no tunable selected")
    if not os.path.isdir(tree):
        # The first synth run prepares sie's kernel tree cache; do one alone before the sweep.
        print("run.py: preparing sie's kernel tree cache first (once, ~1-2 min)", flush=True)
    kb = kbuild.Kbuild(rel, tree)
    runner = Runner(a, kb)
    meta = {**host_info(), "date": datetime.datetime.now(datetime.timezone.utc)
            .strftime("%Y-%m-%d %H:%M UTC"), "kernel_release": rel, "jobs": a.jobs,
            "timeout_s": a.timeout, "only": a.only, "sie": os.path.relpath(a.sie, REPO)}
    print(f"run.py: {len(tasks)} tunables, {a.jobs} at a time, timeout {a.timeout} s, "
          f"work dir {a.out}", flush=True)
    t0 = time.time()
    recs = []
    first = []
    if not os.path.isdir(tree):
        first, tasks = tasks[:1], tasks[1:]
        recs.append(runner.run_one(first[0], len(tasks) + 1))
        kb = kbuild.Kbuild(rel, tree)  # the tree (Makefiles) and CU list exist now
        runner.kb = kb
    with cf.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as ex:
        futs = [ex.submit(runner.run_one, t, len(tasks) + len(first)) for t in tasks]
        for f in futs:
            recs.append(f.result())
    meta["wall_s"] = round(time.time() - t0, 1)
    if a.check and not a.no_check:
        # Every formula derived from V1..V3 is checked against a fourth build: V1, V2 and a value
        # never compiled (V4). A formula fitted to three points but wrong elsewhere changes.
        by_name = {t["tunable"]["name"]: t for t in first + tasks}
        checks = [(r, fourth_value(by_name[r["name"]]["tunable"])) for r in recs
                  if r["status"] == "ok"]
        t1 = time.time()
        runner.done, runner.t0 = 0, t1
        with cf.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as ex:
            futs = {}
            for r, v4 in checks:
                if v4 is None:
                    r["formula_check"] = {"status": "no-v4"}
                    continue
                tv = by_name[r["name"]]["tunable"]["values"]
                futs[ex.submit(runner.run_one, by_name[r["name"]], len(checks),
                               [tv[0], tv[1], v4])] = (r, v4)
            for f in cf.as_completed(futs):
                r, v4 = futs[f]
                c = f.result()
                fc = {"v4": v4, "values": [r["values"][0], r["values"][1], v4],
                      "wall_s": c["wall_s"]}
                if c["status"] != "ok":
                    fc.update(status="refused", **{"class": c["class"], "error": c["error"]})
                else:
                    d = compare_spans(r["spans"], c["spans"])
                    fc.update(status="differs" if d else "same", diffs=d)
                r["formula_check"] = fc
        meta["check_wall_s"] = round(time.time() - t1, 1)
    order = {t["tunable"]["name"]: i for i, t in enumerate(first + tasks)}
    recs.sort(key=lambda r: order[r["name"]])
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    if a.merge and os.path.exists(a.json):
        # Replace only the records of the tunables run now; keep the sweep's meta.
        with open(a.json) as f:
            old = json.load(f)
        new = {r["name"]: r for r in recs}
        current = {t["tunable"]["name"] for t in load_tasks(specs, None)}
        dropped = [r["name"] for r in old["constants"] if r["name"] not in current]
        merged = [new.pop(r["name"], r) for r in old["constants"] if r["name"] in current]
        merged += list(new.values())
        if dropped:
            print(f"run.py: dropped records of tunables no longer in the specs: "
                  f"{', '.join(dropped)}", flush=True)
        old["meta"].setdefault("reruns", []).append(
            {"date": meta["date"], "sie_commit": meta["sie_commit"], "wall_s": meta["wall_s"],
             "check_wall_s": meta.get("check_wall_s"),
             "names": [r["name"] for r in recs]})
        meta, recs = old["meta"], merged
    with open(a.json, "w") as f:
        json.dump({"meta": meta, "constants": recs}, f, indent=1, sort_keys=True)
        f.write("\n")
    write_md(a.md, meta, recs)
    n_ok = sum(r["status"] == "ok" for r in recs)
    print(f"run.py: {n_ok}/{len(recs)} ok in {meta['wall_s'] / 60:.1f} min; wrote "
          f"{os.path.relpath(a.md, REPO)} and {os.path.relpath(a.json, REPO)}", flush=True)


if __name__ == "__main__":
    main()
