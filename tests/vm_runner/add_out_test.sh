#!/bin/sh
# --add DIR is visible read-only at /mnt/add; files written to /mnt/out come back to --out DIR.
set -eu
sie=$1
work=$(mktemp -d "${TMPDIR:-/var/tmp}/sie-vm-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/add" "$work/out"
echo "from the host" > "$work/add/input.txt"
"$sie" vm --add "$work/add" --out "$work/out" -- sh -c '
  cat /mnt/add/input.txt > "$SIE_OUT/copied.txt"
  if touch /mnt/add/forbidden 2>/dev/null; then echo "add share is writable"; exit 1; fi
  echo ok > /mnt/out/done'
test "$(cat "$work/out/copied.txt")" = "from the host"
test "$(cat "$work/out/done")" = ok
test ! -e "$work/add/forbidden"
echo "add/out shares: ok"
