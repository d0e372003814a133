#!/bin/sh
# The fleet examples (docs/fleet): the Ansible playbook passes ansible-playbook's syntax check and
# runs for real against this machine (connection local) with the built sie: the first run copies
# the desired state and applies it, the second changes nothing (sie apply's JSON drives
# `changed`); the DaemonSet and its ConfigMap have the shape the docs promise (apply at start,
# restore on stop, the host mounts sie needs) and the ConfigMap's file is a desired state sie
# parses.  $1: sie binary, $2: source directory
SIE=${1:?usage: fleet_test.sh SIE SOURCE_DIR}
S=${2:?usage: fleet_test.sh SIE SOURCE_DIR}
W=$(mktemp -d /tmp/sie-fleet.XXXXXX)
trap 'rm -rf "$W"' EXIT
FAILS=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; FAILS=$((FAILS + 1)); }
P=$S/docs/fleet/sie-apply.ansible.yml

command -v ansible-playbook > /dev/null || { echo "FAIL - ansible-playbook missing (scripts/setup installs ansible-core)"; exit 1; }
out=$(ansible-playbook --syntax-check -i localhost, "$P" 2>&1) && ok "playbook syntax" || bad "syntax: $out"
mkdir -p "$W/desired" "$W/etc" "$W/run"
printf '# nothing tuned yet\n' > "$W/desired/10-empty.yaml"
play() {
  SIE_RUN_DIR=$W/run ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false \
    ansible-playbook -i localhost, -c local "$P" -e ansible_become=false \
    -e "sie_bin=$SIE sie_etc=$W/etc sie_desired=$W/desired sie_textfile_dir=$W/textfile sie_serial=1" 2>&1
}
mkdir -p "$W/textfile"
out=$(play)
echo "$out" | grep -q "localhost *: ok=[0-9]* *changed=1 .*failed=0" && ok "first run: the copy changed, apply had nothing to do" || bad "first run: $out"
[ -f "$W/etc/10-empty.yaml" ] && ok "desired state copied" || bad "not copied"
[ -f "$W/textfile/sie.prom" ] && ok "metrics written for node_exporter" || bad "no sie.prom: $out"
out=$(play)
echo "$out" | grep -q "localhost *: ok=[0-9]* *changed=0 .*failed=0" && ok "second run changes nothing" || bad "second run: $out"

python3 - "$S/docs/fleet/sie-daemonset.yaml" "$W/cm" <<'PY' && ok "DaemonSet shape" || bad "DaemonSet shape"
import os, sys, yaml
docs = list(yaml.safe_load_all(open(sys.argv[1])))
kinds = {d["kind"]: d for d in docs}
assert set(kinds) == {"ConfigMap", "DaemonSet"}, kinds.keys()
spec = kinds["DaemonSet"]["spec"]["template"]["spec"]
c = spec["containers"][0]
script = c["args"][0]
assert "sie apply /etc/sie" in script and "sie apply --restore" in script and "trap" in script
assert "sie metrics --textfile" in script
assert c["securityContext"]["privileged"] and spec["hostPID"]
mounts = {m["mountPath"] for m in c["volumeMounts"]}
for need in ["/etc/sie", "/run/sie", "/sys/fs/bpf", "/sys/kernel/debug", "/var/lib/sie/consts"]:
    assert need in mounts, need
vols = {v["name"]: v for v in spec["volumes"]}
assert vols["desired"]["configMap"]["name"] == kinds["ConfigMap"]["metadata"]["name"]
os.makedirs(sys.argv[2])
for name, text in kinds["ConfigMap"]["data"].items():
    open(os.path.join(sys.argv[2], name), "w").write(text)
PY
# The ConfigMap's file parses as a desired state: sie gets as far as the constants directory.
out=$(SIE_RUN_DIR=$W/run SIE_CONSTS_ROOT=$W/none "$SIE" apply "$W/cm" --dry-run --consts "$W/none/x" 2>&1)
echo "$out" | grep -q "constants directory $W/none/x does not exist" && ok "ConfigMap file parsed" || bad "ConfigMap file: $out"
echo "$FAILS failed"
[ $FAILS = 0 ]
