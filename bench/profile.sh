#!/usr/bin/env bash
# CPU profiles of moat under the bench's scenarios.
#
#   bench/profile.sh [moat-bench profile flags]     e.g. --scenarios=head-manifest --policy
#
# `moat-bench profile` runs moat's server in a child process (the same
# code as `moat serve`, plus a profiling control listener that only the
# bench has), drives the scenarios from the parent, and writes one CPU
# profile per measured phase (seeding excluded). This script then writes
# `go tool pprof -top` of each profile next to it.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

out="${PROFILE_DIR:-bench/results/profiles}"
mkdir -p "$out"
bin/moat-bench profile --out-dir "$out" "$@"

for p in "$out"/*.cpu.pprof; do
	[[ -e $p ]] || continue
	top="${p%.cpu.pprof}.top.txt"
	{
		echo "# flat"
		go tool pprof -top -nodecount=30 "$p" 2>/dev/null
		echo
		echo "# cumulative"
		go tool pprof -top -cum -nodecount=40 "$p" 2>/dev/null
	} >"$top"
	echo "profile: $top"
done
