#!/bin/sh
# The Debian package (cmake/Package.cmake): cpack builds it; its control fields, maintainer
# scripts and file list are right; it unpacks into a scratch root whose tools find their data
# there, not in the source tree: the unpacked sie-run compiles a policy against the unpacked SDK
# and vmlinux.h, and the unpacked unit passes systemd-analyze verify.
# The DKMS source tree builds the three modules against the guest kernel's headers, as DKMS will.
#   $1: build directory, $2: source directory, $3: the guest kernel's headers
B=${1:?usage: package_test.sh BUILD_DIR SOURCE_DIR KERNEL_HEADERS}
S=${2:?usage: package_test.sh BUILD_DIR SOURCE_DIR KERNEL_HEADERS}
K=${3:?usage: package_test.sh BUILD_DIR SOURCE_DIR KERNEL_HEADERS}
W=$(mktemp -d /tmp/sie-pkg.XXXXXX)
trap 'rm -rf "$W"' EXIT
FAILS=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; FAILS=$((FAILS + 1)); }
has() { if echo "$2" | grep -q -- "$3"; then ok "$1"; else bad "$1: '$3' not in: $2"; fi; }

(cd "$B" && cpack -G DEB -B "$W/out" > "$W/cpack.log" 2>&1) || { cat "$W/cpack.log"; echo "FAIL - cpack"; exit 1; }
deb=$(ls "$W"/out/sie_*_amd64.deb 2>/dev/null)
[ -f "$deb" ] && ok "built $(basename "$deb") ($(du -h "$deb" | cut -f1))" || { echo "FAIL - no sie_*_amd64.deb"; exit 1; }
ver=$(dpkg-deb -f "$deb" Version)
deps=$(dpkg-deb -f "$deb" Depends)
for d in clang dkms libbpf1 libcapstone libz3 libyaml-cpp libelf1 libdw1; do has "depends on $d" "$deps" "$d"; done
dpkg-deb -c "$deb" | awk '{print $6}' > "$W/files"
for f in usr/bin/sie usr/bin/sie-run usr/bin/sie-synth usr/share/sie/bpf/include/sie/abi.h \
    usr/share/sie/bpf/include/sie/stub.bpf.h usr/share/sie/sdk/include/sie/policy.bpf.h \
    usr/share/sie/kmod/include/sie/kfuncs.h usr/share/sie/vmlinux/vmlinux.h \
    usr/share/sie/policies/tcp_cubic_rtt/README.md usr/include/sie/hint.h usr/include/sie/abi.h \
    usr/lib/systemd/system/sie.service usr/share/doc/sie/operations.md usr/share/doc/sie/README.md \
    "usr/src/sie-$ver/dkms.conf" "usr/src/sie-$ver/Kbuild" "usr/src/sie-$ver/sie_kfuncs.c" \
    "usr/src/sie-$ver/sie_native.c" "usr/src/sie-$ver/sie_consistency.c" \
    "usr/src/sie-$ver/include/sie/kfuncs_logic.h"; do
  grep -qx "\./$f" "$W/files" && ok "ships /$f" || bad "missing /$f"
done
grep -q 'libsie-hint.so$' "$W/files" && ok "ships libsie-hint.so" || bad "missing libsie-hint.so"
n=$(grep -c -e '_test$' -e 'CMakeLists.txt$' -e '/build/' "$W/files")
[ "$n" = 0 ] && ok "no test binaries or build files" || bad "$n test/build files: $(grep -e '_test$' -e 'CMakeLists.txt$' -e '/build/' "$W/files" | head -3)"
dpkg-deb -e "$deb" "$W/control"
for s in postinst prerm; do
  sh -n "$W/control/$s" && grep -q "dkms .*-m sie -v $ver" "$W/control/$s" && ok "$s runs dkms for sie $ver" || bad "$s"
done

R=$W/root
dpkg -x "$deb" "$R" || { echo "FAIL - dpkg -x"; exit 1; }
has "the unpacked sie knows apply" "$("$R/usr/bin/sie" --help)" "apply"
has "the unpacked sie reads its data from the root" "$("$R/usr/bin/sie" info)" "data_dir *$R/usr/share/sie"
# A policy compiled by the unpacked sie-run: the SDK, abi.h and vmlinux.h all from the root.
cp -r "$S/tests/policy/fixtures/sie_target" "$W/consts"
out=$(SIE_POLICY_CACHE="$W/cache" "$R/usr/bin/sie-run" "$S/tests/policy/bpf/knobs.bpf.c" \
      --const SIE_TARGET_CALL_ARG,SIE_TARGET_THRESHOLD --consts "$W/consts" --compile-only -v 2>&1)
if [ $? = 0 ]; then ok "the unpacked sie-run compiles a policy: $(echo "$out" | head -1)"; else bad "sie-run --compile-only: $out"; fi
# DKMS's build of the unpacked module source (its MAKE[0] line), against the guest's headers.
cp -r "$R/usr/src/sie-$ver" "$W/dkms"
if out=$(make -s -C "$K" M="$W/dkms" modules 2>&1); then
  for m in sie_kfuncs sie_native sie_consistency; do
    [ -f "$W/dkms/$m.ko" ] && ok "DKMS source builds $m.ko" || bad "no $m.ko: $out"
  done
  grep -q "BUILT_MODULE_NAME\[2\]=\"sie_consistency\"" "$W/dkms/dkms.conf" && ok "dkms.conf lists the modules" || bad "dkms.conf"
else
  bad "make of the DKMS source: $out"
fi
# The unit, with its binary path inside the root.
unit=$R/usr/lib/systemd/system/sie.service
has "the unit applies /etc/sie at boot" "$(cat "$unit")" "ExecStart=/usr/bin/sie apply /etc/sie"
has "the unit restores on stop" "$(cat "$unit")" "ExecStop=/usr/bin/sie apply --restore"
if command -v systemd-analyze > /dev/null; then
  out=$(systemd-analyze verify --root="$R" /usr/lib/systemd/system/sie.service 2>&1 | grep -v -e 'Cannot add dependency' -e 'multi-user.target' -e 'local-fs.target' -e 'systemd-modules-load' -e 'sysinit.target')
  [ -z "$out" ] && ok "systemd-analyze verify: clean" || bad "systemd-analyze verify: $out"
else
  bad "systemd-analyze is not installed (scripts/setup installs systemd)"
fi
echo "$FAILS failed"
[ $FAILS = 0 ]
