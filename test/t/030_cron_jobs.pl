# Scheduled jobs under pg_cron (about a minute: pg_cron 1.4 runs jobs at minute boundaries): oms.schedule registers a job with cron.schedule, pg_cron runs
# CALL oms.run_job(...) on its own, and the runs land in oms.job_runs; invalid cron text is 22023
# naming the value; scheduling again replaces the schedule; oms.unschedule removes it.
#
# Every wait is a poll (poll_query_until): it ends as soon as the run has been recorded.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('cron');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'pg_cron,oms'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 16
oms.database = 'postgres'
lc_messages = 'C'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron; CREATE EXTENSION oms');
$node->safe_psql(
	'postgres', q{
SELECT oms.create_tenant('t_cron');
SET oms.tenant = 't_cron';
INSERT INTO oms.locations (code, kind, name) VALUES ('WH-1', 'warehouse', 'Warehouse 1');
INSERT INTO oms.items (sku, name) VALUES ('C-1', 'Cron item');
SELECT oms.set_stock('C-1', 'WH-1', 0, 'count');
SELECT oms.set_policy(NULL, 'WH-1', '{"method": "min_max", "min": 5, "max": 20}');
});

# Invalid cron text: 22023 with the value.
my ($rc, $out, $err) = $node->psql('postgres',
	q{SET oms.tenant = 't_cron'; SELECT oms.schedule('alerts', 'every tuesday')},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
isnt($rc, 0, 'invalid cron text fails');
like($err, qr/22023: invalid cron schedule "every tuesday" for job "alerts"/, 'invalid cron text: 22023 naming the value');
is($node->safe_psql('postgres', 'SELECT count(*) FROM cron.job'), '0', 'nothing scheduled by the failed call');

# Every minute (pg_cron 1.4, the Debian package here, has no "N seconds" schedules: the first run
# comes at the next minute); scheduled twice: the second replaces the first.
$node->safe_psql('postgres', q{SET oms.tenant = 't_cron'; SELECT oms.schedule('alerts', '0 3 * * *')});
$node->safe_psql('postgres', q{SET oms.tenant = 't_cron'; SELECT oms.schedule('alerts', '* * * * *')});
is( $node->safe_psql('postgres', 'SELECT jobname, schedule, command FROM cron.job'),
	q{oms:t_cron:alerts|* * * * *|CALL oms.run_job('alerts', 't_cron')},
	'one pg_cron job, the last schedule, calling oms.run_job for the tenant');

ok( $node->poll_query_until(
		'postgres',
		q{SELECT count(*) >= 1 FROM oms.job_runs WHERE job = 'alerts' AND status = 'succeeded'}),
	'pg_cron ran the job and oms.job_runs recorded it');
is( $node->safe_psql(
		'postgres',
		q{SELECT DISTINCT t.code, r.rows_touched, r.error IS NULL FROM oms.job_runs r
		   JOIN oms.tenants t ON t.id = r.tenant_id WHERE r.job = 'alerts' AND r.status = 'succeeded'}),
	't_cron|1|t',
	'each run checked the tenant\'s alerts (C-1 out of stock: one alert)');
is( $node->safe_psql('postgres',
		q{SET oms.tenant = 't_cron'; SELECT kind || ' ' || subject FROM oms.open_alerts}),
	'stock_out C-1@WH-1',
	'the alert the scheduled job opened');
ok( $node->poll_query_until(
		'postgres',
		q{SELECT count(*) > 0 FROM cron.job_run_details WHERE command LIKE 'CALL oms.run_job%' AND status = 'succeeded'}),
	'pg_cron reports the runs as succeeded');

# Unschedule: true, then false; nothing left in cron.job.
is($node->safe_psql('postgres', q{SET oms.tenant = 't_cron'; SELECT oms.unschedule('alerts')}), 't', 'unschedule removes the job');
is($node->safe_psql('postgres', q{SET oms.tenant = 't_cron'; SELECT oms.unschedule('alerts')}), 'f', 'a second unschedule finds nothing');
is($node->safe_psql('postgres', 'SELECT count(*) FROM cron.job'), '0', 'no pg_cron job left');

$node->stop;
done_testing();
