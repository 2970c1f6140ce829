#!/usr/bin/env bash
# CPU profiles of moat under the bench's scenarios.
#
#   bench/profile.sh [moat-bench profile flags]
#   e.g. bench/profile.sh --scenarios=push-small,head-manifest --trace
#        bench/profile.sh --scenarios=head-manifest --policy
#
# `moat-bench profile` runs moat's server in a child process (the same
# code as `moat serve`, plus a profiling control listener that only the
# bench has), drives the scenarios from the parent, and writes one CPU
# profile per measured phase (seeding excluded) and, with --trace, an
# execution trace. This script writes `go tool pprof -top` of each CPU
# profile next to it, and of each trace's syscall profile (time blocked
# in system calls: fsync, read, write …).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

out="${PROFILE_DIR:-bench/results/profiles}"
mkdir -p "$out"
bin/moat-bench profile --out-dir "$out" "$@"

top() {
	echo "# flat"
	go tool pprof -top -nodecount=30 "$1" 2>/dev/null
	echo
	echo "# cumulative"
	go tool pprof -top -cum -nodecount=40 "$1" 2>/dev/null
}

for p in "$out"/*.cpu.pprof; do
	[[ -e $p ]] || continue
	top "$p" >"${p%.cpu.pprof}.cpu.txt"
	echo "profile: ${p%.cpu.pprof}.cpu.txt"
done
for t in "$out"/*.trace; do
	[[ -e $t ]] || continue
	go tool trace -pprof=syscall "$t" >"${t%.trace}.syscall.pprof"
	top "${t%.trace}.syscall.pprof" >"${t%.trace}.syscall.txt"
	echo "profile: ${t%.trace}.syscall.txt"
done
