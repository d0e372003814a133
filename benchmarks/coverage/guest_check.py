#!/usr/bin/env python3
"""Sets every synthesized constant of the coverage benchmark to its shipped value in the guest.

For each constant docs/coverage.json lists as ok, the artifacts `run.py` left in --out are used
as they are: in one guest boot, the constant's module is loaded (modprobe) when its code is in a
module, `sie set NAME <shipped value>` attaches its probes, and it stays set while the next ones
are added. With all of them live a short workload runs (file I/O, TCP over loopback, fork/exec),
then `sie status --json` records every probe (address, [OPTIMIZED]) and span hit counters, and
every constant is unloaded again. `sie vm` fails the run on any WARN/BUG/Oops in dmesg.

Writes docs/coverage-guest.md and docs/coverage-guest.json: per constant whether set and unload
succeeded, its probes and how many are jump-optimized, hits under the workload; the totals give
the [OPTIMIZED] share. Usage: guest_check.py [--only REGEX] [--out build/coverage].
"""

import argparse
import datetime
import glob
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))

# Runs inside the guest: /mnt/add is --out of run.py, /mnt/out collects results.
GUEST_SCRIPT = r"""
set -u
R=/mnt/out/results
mkdir -p $R
while read -r name value dir module; do
  if [ "$module" != "-" ]; then
    modprobe "$module" > $R/$name.modprobe 2>&1 || echo "modprobe $module failed" >> $R/$name.modprobe
  fi
  sie set "$name" "$value" --consts "$dir" --json > $R/$name.set.json 2> $R/$name.set.err
  echo $? > $R/$name.set.rc
done < /mnt/out/consts.list
# A workload that runs through block, mm, fs, net, sched and workqueue code.
ip link set lo up
dd if=/dev/zero of=/tmp/sie-io bs=1M count=64 conv=fsync 2>/dev/null
cat /tmp/sie-io > /dev/null; rm -f /tmp/sie-io
python3 - <<'PY' > $R/workload.txt 2>&1
import socket, threading, os
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
port = srv.getsockname()[1]
def sink():
    c, _ = srv.accept(); n = 0
    while True:
        b = c.recv(1 << 16)
        if not b: break
        n += len(b)
    print("tcp bytes", n)
t = threading.Thread(target=sink); t.start()
s = socket.create_connection(("127.0.0.1", port)); buf = b"x" * (1 << 16)
for _ in range(256): s.sendall(buf)
s.close(); t.join()
for _ in range(50):
    pid = os.fork()
    if pid == 0: os._exit(0)
    os.waitpid(pid, 0)
print("forks 50")
PY
sie status --json > $R/status.json 2> $R/status.err
while read -r name value dir module; do
  sie unload "$name" > $R/$name.unload 2>&1
  echo $? > $R/$name.unload.rc
done < /mnt/out/consts.list
"""


def shipped(const_dir):
    """The shipped value (the spec's first value) and the binary of one synthesized constant."""
    files = glob.glob(os.path.join(const_dir, "*", "const.json"))
    if len(files) != 1:
        return None
    c = json.load(open(files[0]))
    return c["values"][0], c["target"]["binary"]


def read(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def collect(res_dir, consts):
    status = {}
    try:
        for s in json.loads(read(os.path.join(res_dir, "status.json"), "[]")):
            status[s.get("name", s.get("const"))] = s
    except json.JSONDecodeError:
        pass
    rows = []
    for name, value, _, module in consts:
        st = status.get(name, {})
        probes = st.get("probes", [])
        apply_probes = [p for p in probes if p.get("role") == "apply"]
        rows.append({
            "name": name, "value": value, "module": None if module == "-" else module,
            "set_rc": int(read(os.path.join(res_dir, f"{name}.set.rc"), "-1").strip() or -1),
            "set_error": read(os.path.join(res_dir, f"{name}.set.err")).strip()[:400],
            "unload_rc": int(read(os.path.join(res_dir, f"{name}.unload.rc"), "-1").strip() or -1),
            "live": bool(st),
            "probes": len(probes), "apply_probes": len(apply_probes),
            "optimized": sum(1 for p in apply_probes if p.get("optimized")),
            # sie set placed it where synth and the live bytes predict jump optimization.
            "placed": sum(1 for p in apply_probes if p.get("jump_placed")),
            "placed_optimized": sum(1 for p in apply_probes
                                    if p.get("jump_placed") and p.get("optimized")),
            "hits": sum(s.get("hits", 0) for s in st.get("spans", [])),
        })
    return rows


def write_md(path, rows, meta):
    ok = [r for r in rows if r["set_rc"] == 0 and r["live"] and r["unload_rc"] == 0]
    applies = sum(r["apply_probes"] for r in ok)
    opt = sum(r["optimized"] for r in ok)
    share = 100.0 * opt / applies if applies else 0.0
    placed = sum(r["placed"] for r in ok)
    placed_opt = sum(r["placed_optimized"] for r in ok)
    L = ["# Synthesized constants set to their shipped value in the guest", "",
         "Generated by `benchmarks/coverage/guest_check.py` (do not edit by hand): every constant "
         "`docs/coverage.md` lists as ok, set with `sie set NAME <shipped value>` from the "
         "artifacts of that sweep, all live at once in one guest boot while a workload runs "
         "(64 MiB written with fsync and read back, 16 MiB over TCP loopback, 50 forks), then "
         "unloaded. `sie vm` fails the run on a WARN/BUG/Oops/RCU stall in dmesg.", "",
         "| | |", "|---|---|"]
    for k, v in meta.items():
        L.append(f"| {k} | {v} |")
    L += ["", "## Totals", "",
          f"- constants: {len(rows)}; set, live and unloaded cleanly: **{len(ok)}**",
          f"- apply probes: {applies}; jump-optimized ([OPTIMIZED]): **{opt} ({share:.0f} %)**",
          f"- placed by `sie set` where synth and the live bytes predict jump optimization: "
          f"{placed}, of which the kernel optimized {placed_opt}; optimized without that "
          f"prediction: {opt - placed_opt}",
          f"- constants with span hits under the workload: {sum(1 for r in ok if r['hits'])}",
          "", "## Per constant", "",
          "| constant | module | value | set | live | unload | apply probes | optimized | hits | error |",
          "|---|---|---:|---|---|---|---:|---:|---:|---|"]
    for r in rows:
        err = r["set_error"].splitlines()[0] if r["set_error"] else ""
        L.append(f"| {r['name']} | {r['module'] or 'vmlinux'} | {r['value']} | "
                 f"{'ok' if r['set_rc'] == 0 else 'FAILED'} | {'yes' if r['live'] else 'no'} | "
                 f"{'ok' if r['unload_rc'] == 0 else 'FAILED'} | {r['apply_probes']} | "
                 f"{r['optimized']} | {r['hits']} | {err.replace('|', '/')} |")
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")
    return len(ok), share


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="regex on constant names")
    ap.add_argument("--out", default=os.path.join(REPO, "build", "coverage"),
                    help="run.py's work dir (its out/NAME folders hold the artifacts)")
    ap.add_argument("--json", default=os.path.join(REPO, "docs", "coverage.json"))
    ap.add_argument("--sie", default=os.path.join(REPO, "build", "bin", "sie"))
    ap.add_argument("--md-out", default=os.path.join(REPO, "docs", "coverage-guest.md"))
    ap.add_argument("--json-out", default=os.path.join(REPO, "docs", "coverage-guest.json"))
    ap.add_argument("--timeout", type=int, default=3000)
    a = ap.parse_args()
    cov = json.load(open(a.json))
    consts = []
    for c in cov["constants"]:
        if c["status"] != "ok" or (a.only and not re.search(a.only, c["name"])):
            continue
        d = os.path.abspath(os.path.join(a.out, "out", c["name"]))
        s = shipped(d)
        if not s:
            sys.exit(f"guest_check: no artifacts of {c['name']} in {d}\n"
                     "hint: run benchmarks/coverage/run.sh first (same --out)")
        value, binary = s
        consts.append((c["name"], value, d, "-" if binary == "vmlinux" else binary))
    work = os.path.join(a.out, "guest")
    os.makedirs(work, exist_ok=True)
    subprocess.run(["rm", "-rf", os.path.join(work, "results")], check=True)
    with open(os.path.join(work, "consts.list"), "w") as f:
        for n, v, d, m in consts:
            f.write(f"{n} {v} {d} {m}\n")
    with open(os.path.join(work, "check.sh"), "w") as f:
        f.write(GUEST_SCRIPT)
    print(f"guest_check: {len(consts)} constants, one guest boot", flush=True)
    t0 = time.time()
    rc = subprocess.run([a.sie, "vm", "--out", work, "--timeout", str(a.timeout), "--",
                         "sh", "/mnt/out/check.sh"]).returncode
    wall = time.time() - t0
    rows = collect(os.path.join(work, "results"), consts)
    meta = {"date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
            "host": f"{os.cpu_count()} CPUs, {cov['meta'].get('cpu', '')}",
            "guest": f"{cov['meta'].get('kernel_release', '')} under QEMU TCG, 1 vCPU",
            "sie vm exit": f"{rc} (0: the command and dmesg were clean)",
            "wall time": f"{wall:.0f} s for the boot, {len(rows)} sets, workload, unloads"}
    json.dump({"meta": meta, "constants": rows}, open(a.json_out, "w"), indent=1)
    n_ok, share = write_md(a.md_out, rows, meta)
    print(f"guest_check: {n_ok}/{len(rows)} set/live/unloaded, optimized share {share:.0f} %, "
          f"sie vm exit {rc}, {wall:.0f} s")
    return 0 if rc == 0 and n_ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
