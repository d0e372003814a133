#!/bin/sh
# Guest test of the byte check over whole spans (const.json "code"), on LATENCY_LIMIT as
# `sie synth` wrote it from benchmarks/coverage/mm.yaml: a vmlinux constant one of whose uses
# sits at a static call (cond_resched in scan_swap_map_slots), a site the kernel rewrites at
# boot, so the shipped bytes there differ from the live ones. Set at its shipped value, its
# probes must be live (sie status); then a copy whose code has one byte changed inside a
# critical span (not at a probe) must be refused with the place, both byte strings and a
# hint, and leave nothing attached. $1: the synthesized constants.
C=${1:?usage: vm_span_bytes_test.sh CONSTS_DIR}
. "$(dirname "$0")/lib.sh"
W=/tmp/sie-span-bytes
rm -rf $W && mkdir -p $W || exit 1
F=$(grep -l '"name": "LATENCY_LIMIT"' "$C"/*/const.json)
[ -n "$F" ] || { bad "no LATENCY_LIMIT in $C"; echo "$FAILS failed"; exit 1; }
shipped=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['values'][0])" "$F")
nspans=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['spans']))" "$F")
kprobes() { grep -cE 'scan_swap_map_slots|__do_sys_swapoff' /sys/kernel/debug/kprobes/list; }
state() { ls /run/sie/LATENCY_LIMIT.json 2>/dev/null; ls /sys/fs/bpf/sie 2>/dev/null; }

# --- at the shipped value: every range verified, the probes live ---
out=$(sie set LATENCY_LIMIT "$shipped" --consts "$C" -v 2>&1) || bad "sie set LATENCY_LIMIT $shipped: $out"
echo "$out"
st=$(sie status --json)
applies=$(echo "$st" | python3 -c "
import json,sys
a=[c for c in json.load(sys.stdin) if c['name']=='LATENCY_LIMIT']
print(sum(1 for p in a[0]['probes'] if p['role']=='apply') if a and a[0]['state']=='loaded' else -1)")
expect_eq "apply probes of LATENCY_LIMIT loaded (sie status)" "$applies" "$nspans"
sie status | grep -A12 '^LATENCY_LIMIT'
[ "$(kprobes)" -ge "$nspans" ] && ok "$(kprobes) kprobes in the constant's functions" ||
  bad "kprobes in the constant's functions: $(kprobes), want >= $nspans"
sie unload LATENCY_LIMIT || bad "sie unload"
expect_eq "kprobes left" "$(kprobes)" 0

# --- one byte of a critical span changed (the span's first byte, never its probe) ---
mkdir -p $W/bad && cp -r "$(dirname "$F")" $W/bad/ || exit 1
B=$(echo $W/bad/*/const.json)
where=$(python3 - "$B" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
for s in c["spans"]:
    probes = {s["probe_offset"], *s.get("candidates", [])}
    for r in s.get("code", []):
        for k in range(len(r["bytes"]) // 2):
            off = r["offset"] + k
            h = r["bytes"][2 * k:2 * k + 2]
            inside = s["cs_start"] <= off < s["cs_end"]
            if not inside or h == "??" or any(q <= off < q + 5 for q in probes):
                continue
            r["bytes"] = r["bytes"][:2 * k] + "%02x" % (int(h, 16) ^ 0xff) + r["bytes"][2 * k + 2:]
            json.dump(c, open(p, "w"), indent=2)
            print("%s+0x%x %s" % (s["function"], off, h))
            sys.exit(0)
sys.exit(1)
PY
) || bad "no byte of a critical span outside the probes to change"
set -- $where
echo "changed $1 (was $2)"
before="$(kprobes) $(state)"
if out=$(sie set LATENCY_LIMIT "$shipped" --consts $W/bad 2>&1); then
  bad "a changed code byte was accepted"
else
  echo "$out"
  expect_in "refusal" "$out" "the code at $1 (span"
  expect_in "refusal" "$out" "but $B expects"
  expect_in "refusal" "$out" "nothing was attached"
  expect_in "refusal" "$out" "hint: the running kernel or module is not the build synth analyzed"
fi
expect_eq "kernel after the refusal" "$(kprobes) $(state)" "$before"
sie status | grep -q LATENCY_LIMIT && bad "LATENCY_LIMIT listed after the refusal" ||
  ok "nothing loaded after the refusal"

echo "$FAILS failed"
[ $FAILS = 0 ]
