#!/usr/bin/env bash
# `make test`: every test of oms on a throwaway cluster (pg_regress, isolation), then the TAP tests
# (which start clusters of their own). Prints a closing "N passed, N failed" line and exits non-zero
# on any failure. Run a subset with TESTS="atp holds" / SPECS="iso_no_oversell" / TAP="t/001_worker_hold_expiry.pl"
# (test/citus/test-citus.sh runs in a full run when Citus is installed; CITUS=0/1 to choose).
set -uo pipefail
. "$(dirname "$0")/common.sh"
cd "$ROOT"

port=${OMS_TEST_PORT:-54329}
# The cluster's name (/tmp/oms-NAME): two runs side by side need a name and a port each.
cname=${OMS_TEST_NAME:-test}
passed=0
failed=0
failures=()

# The server user reads the test inputs from a copy of its own, so that a checkout it cannot
# traverse (a home directory, say) still runs.
stage=$(pg_scratch stage)
cp -r "$ROOT/test" "$ROOT/expected" "$stage/"
[ "$(id -u)" = 0 ] && chown -R "$PG_USER" "$stage"

scripts/cluster.sh start "$cname" "$port" contrib_regression || exit 1
trap 'scripts/cluster.sh stop "$cname"' EXIT
host=/tmp/oms-$cname

# Runs one pg_regress-style suite; counts its "... ok" and "... FAILED" lines.
run_suite() {
	local label=$1 prog=$2 kind=$3
	shift 3
	local out
	out=$(pg_scratch "$label")
	ln -s "$stage/expected" "$out/expected"
	as_pg "$prog" --host="$host" --port="$port" --inputdir="$stage/test" --outputdir="$out" \
		--load-extension=oms "$@" | tee "$out/log"
	local status=${PIPESTATUS[0]}
	local ok bad
	ok=$(grep -cE '\.\.\. ok' "$out/log")
	bad=$(grep -cE '\.\.\. (FAILED|failed)' "$out/log")
	passed=$((passed + ok))
	failed=$((failed + bad))
	if [ "$status" -ne 0 ] && [ "$bad" -eq 0 ]; then
		# The suite did not run (e.g. the extension failed to install): count it as one failure.
		bad=1
		failed=$((failed + 1))
	fi
	if [ "$bad" -gt 0 ] || [ -s "$out/regression.diffs" ]; then
		failures+=("$label")
		echo "---- $label: differences (full file: $out/regression.diffs)"
		head -n 300 "$out/regression.diffs"
	else
		rm -rf "$out"
	fi
}

tests=${TESTS-$(cd test/sql && ls *.sql 2>/dev/null | sed 's/\.sql$//' | sort)}
specs=${SPECS-$(cd test/specs && ls *.spec 2>/dev/null | sed 's/\.spec$//' | sort)}

if [ -n "$tests" ]; then
	echo "== pg_regress"
	# shellcheck disable=SC2086
	run_suite regress "$PGXSDIR/src/test/regress/pg_regress" regress --dbname=contrib_regression $tests
fi
if [ -n "$specs" ]; then
	echo "== isolation"
	# shellcheck disable=SC2086
	run_suite isolation "$PGXSDIR/src/test/isolation/pg_isolation_regress" isolation $specs
fi

scripts/cluster.sh stop "$cname"
trap - EXIT

tap=${TAP-$(cd test && ls t/*.pl 2>/dev/null | sort)}
if [ -n "$tap" ]; then
	echo "== TAP"
	tapdir=$(pg_scratch tap)
	# shellcheck disable=SC2086
	as_pg env TESTDIR="$tapdir" PG_REGRESS="$PGXSDIR/src/test/regress/pg_regress" \
		OMS_ROOT="$stage" PGPORT=$((port + 100)) \
		sh -c 'cd "$1" && shift && exec prove -I "$@"' sh "$stage/test" "$PGXSDIR/src/test/perl" $tap 2>&1 | tee "$tapdir/log"
	ok=$(grep -cE '\.\. ok' "$tapdir/log")
	bad=$(grep -cE '\.\. (Dubious|Failed|not ok)' "$tapdir/log")
	files=$(echo $tap | wc -w)
	[ $((ok + bad)) -lt "$files" ] && bad=$((files - ok))
	passed=$((passed + ok))
	failed=$((failed + bad))
	if [ "$bad" -gt 0 ]; then
		failures+=(tap)
		for f in "$tapdir"/tmp_check/log/regress_log_*; do
			[ -f "$f" ] && { echo "---- $f"; tail -n 80 "$f"; }
		done
	else
		rm -rf "$tapdir"
	fi
fi

# oms on Citus (a coordinator and two workers), when Citus is installed: in a full run, or with
# CITUS=1 (a run of chosen TESTS, SPECS or TAP leaves it out; CITUS=0 always does).
citus_default=1
[ -n "${TESTS+x}${SPECS+x}${TAP+x}" ] && citus_default=0
if [ "${CITUS:-$citus_default}" != 0 ]; then
	echo "== Citus"
	if scripts/citus.sh available; then
		if test/citus/test-citus.sh; then
			passed=$((passed + 1))
		else
			failed=$((failed + 1))
			failures+=(citus)
		fi
	else
		test/citus/test-citus.sh
	fi
fi

echo
[ ${#failures[@]} -gt 0 ] && echo "failed suites: ${failures[*]}"
[ "$failed" -eq 0 ] && rm -rf "$stage"
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ ${#failures[@]} -eq 0 ]
