#!/usr/bin/env bash
# The runs behind the README's burst table: 200 simultaneous calls, 2 web workers, each fault.
# Usage: bash bench/matrix.sh [APP_DIR] [TAG_SUFFIX]  (APP_DIR: a clean checkout, e.g. a worktree
# of main, so that a half-edited tree is not what gets measured). Summary lines: bench/runs/*.md
set -u
cd "$(dirname "$0")/.."
app=${1:-.}
sfx=${2:-}
py=.venv/bin/python
run() { tag=$1; shift; $py -m bench.burst --app-dir "$app" --calls 200 --workers 2 --tag "$tag$sfx" "$@" \
          > "bench/runs/$tag$sfx.out" 2>&1; tail -1 "bench/runs/$tag$sfx.out"; }
mkdir -p bench/runs
run sqlite-refuse --db sqlite --twilio refuse
run pg-refuse --db pg --twilio refuse
run pg-hang --db pg --twilio hang
run pg-slow --db pg --twilio slow
run pg-pgrestart --db pg --twilio refuse --fault pgrestart --at 0.4
run pg-pgstop --db pg --twilio refuse --fault pgstop --down-s 10
run pg-kill-web --db pg --twilio refuse --fault kill-web --at 0.4
run pg-kill-worker --db pg --twilio ok --fault kill-worker --at 0.6
run pg-ok-alerts --db pg --twilio ok --alerts
