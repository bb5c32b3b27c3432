# oms: PGXS build of the extension, plus the commands that do everything:
#   make demo   installs what is missing, builds, starts a throwaway cluster, loads a sample retailer
#   make test   the same set-up, then every test (pg_regress, isolation, TAP)
#   make bench  the same set-up, then throughput and latency against baselines (scripts/bench.sh)
#   make report the BI dashboard (HTML) from the demo database's schema oms_bi (scripts/report.sh)
# The cluster and test orchestration lives in scripts/; this file only wires it together.

EXTENSION   = oms
EXTVERSION  = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" oms.control)
MODULE_big  = oms
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

# The current install script is assembled from sql/parts; released scripts and upgrade scripts
# (sql/oms--X.sql, sql/oms--A--B.sql) are committed and installed as they are.
SQL_PARTS   = $(sort $(wildcard sql/parts/*.sql))
DATA_built  = sql/oms--$(EXTVERSION).sql
DATA        = $(filter-out $(DATA_built),$(wildcard sql/oms--*.sql))

PG_CONFIG  ?= $(firstword $(wildcard /usr/lib/postgresql/15/bin/pg_config) pg_config)
PG_CPPFLAGS = -I$(srcdir)/src
PG_CFLAGS   = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare \
              -Wno-missing-field-initializers -Wno-clobbered -Wno-cast-function-type

EXTRA_CLEAN = results output_iso tmp_check log regression.diffs regression.out build

override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(wildcard $(PGXS)),)
include $(PGXS)
endif

# PGXS does not track header dependencies: every object is rebuilt when a header changes.
$(OBJS): $(wildcard src/*.h)

sql/oms--$(EXTVERSION).sql: $(SQL_PARTS) oms.control
	@{ echo "-- oms $(EXTVERSION): generated from sql/parts by the Makefile; do not edit."; \
	   printf '%s\n' '\echo Use "CREATE EXTENSION oms" to load this file. \quit'; \
	   for f in $(SQL_PARTS); do echo; echo "-- ===== $$f"; cat $$f; done; } > $@

.PHONY: deps test test-citus demo demo-stop check-tap bench stress fuzz sqlsmith report

# Installs PostgreSQL 15, its server headers, pg_cron and the TAP modules when missing.
deps:
	@scripts/deps.sh

# The whole test suite on a throwaway cluster; non-zero exit on any failure.
test: deps
	@$(MAKE) --no-print-directory install
	@scripts/test.sh

# oms distributed on Citus: a throwaway coordinator and two workers (test/citus/test-citus.sh);
# one line and success when Citus is not installed. `make test` runs it too.
test-citus: deps
	@$(MAKE) --no-print-directory install
	@test/citus/test-citus.sh

# A sample retailer on a throwaway cluster that stays up; `make demo-stop` stops it.
demo: deps
	@$(MAKE) --no-print-directory -s install
	@scripts/demo.sh

demo-stop:
	@scripts/cluster.sh stop demo

# The BI dashboard as a self-contained HTML page from the demo database (started when not running);
# REPORT=FILE to choose where (default /tmp/oms-report.html).
report: deps
	@$(MAKE) --no-print-directory -s install
	@scripts/report.sh $(REPORT)

# Reliability runs, longer than those of `make test` (scripts/reliability.sh):
#   make stress CLIENTS=16 SECONDS=300   the invariant stress test (test/stress/stress.pl)
#   make fuzz FUZZ_SECONDS=3600          the fuzzer (test/fuzz/fuzz.pl)
#   make sqlsmith SQLSMITH_QUERIES=100000 SQLSMITH_SEED=7   random queries (Debian package sqlsmith)
CLIENTS ?= 8
SECONDS ?= 60
FUZZ_SECONDS ?= 300
SQLSMITH_QUERIES ?= 20000
SQLSMITH_SEED ?= 1
stress: deps
	@$(MAKE) --no-print-directory -s install
	@scripts/reliability.sh stress $(CLIENTS) $(SECONDS)

fuzz: deps
	@$(MAKE) --no-print-directory -s install
	@scripts/reliability.sh fuzz $(FUZZ_SECONDS)

sqlsmith: deps
	@$(MAKE) --no-print-directory -s install
	@scripts/reliability.sh sqlsmith $(SQLSMITH_QUERIES) $(SQLSMITH_SEED)

# Throughput and latency of the API against baselines run in the same session, then the
# invariants; non-zero exit if a run fails or an invariant breaks. Parameters: scripts/bench.sh.
bench: deps all
	@scripts/bench.sh
