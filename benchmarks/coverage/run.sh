#!/bin/bash
# Kernel coverage benchmark: runs `sie synth` once per tunable of benchmarks/coverage/*.yaml and
# writes docs/coverage.md and docs/coverage.json. Options: --only REGEX, --jobs N, --out DIR,
# --timeout S (see run.py --help). Needs build/bin/sie (ninja -C build sie) and python3-yaml.
set -euo pipefail
exec python3 "$(dirname "$0")/run.py" "$@"
