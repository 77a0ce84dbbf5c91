# A transient database error never rejects a good message.  Sessions holding
# locks make the worker's batch fail: a real deadlock inside the insert, a
# lock timeout inside the insert (identity sequence held by ALTER SEQUENCE),
# a lock timeout before it (LOCK TABLE location), a query cancel, a lock
# timeout while the rejects are written (LOCK TABLE ingest_rejects).  Each
# time the batch is aborted and consumed again from the stored offsets:
# ingest_status.last_error shows the error meanwhile, the worker stays up,
# and once the lock is released every message is exactly once in location
# (or, for bad ones, in ingest_rejects), none of the good ones rejected.
# SIGTERM still ends a worker that is retrying.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IngestTest;

my $kafka = IngestTest::start_devkafka(partitions => 2);
my $node = PostgreSQL::Test::Cluster->new('transient');
$node->init;

# deadlock_timeout: the worker, whose wait closes the cycle, detects the
# deadlock first; the sessions below set theirs to 10 min.
$node->append_conf('postgresql.conf', <<"CONF");
shared_preload_libraries = 'pg_udaconnect'
udaconnect.database = 'postgres'
udaconnect.ingest_workers = 1
udaconnect.ingest_batch_size = 500
udaconnect.ingest_batch_timeout = 50
udaconnect.kafka_brokers = '$kafka->{brokers}'
deadlock_timeout = '100ms'
CONF
$node->start;

my @files;
my $total = 0;
my $next_index = 0;

sub psql { return $node->safe_psql('postgres', $_[0]); }

sub produce
{
	my (%o) = @_;
	my $f = $node->basedir . '/expect' . (scalar(@files) + 1) . '.txt';
	IngestTest::produce($kafka, count => $o{count}, start => $next_index, bad => $o{bad} // 0, expect => $f);
	$next_index += $o{count};
	$total += $o{count};
	push @files, $f;
	return;
}

sub worker_pid
{
	return psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'udaconnect ingest'");
}

# a session that takes locks; its own waits never time out nor detect deadlocks
sub locker
{
	my $s = $node->background_psql('postgres');
	$s->set_query_timer_restart();
	$s->query_safe("SET lock_timeout = 0; SET deadlock_timeout = '10min'");
	return $s;
}

# ingest_status shows an error like $pattern, recorded after $since
sub error_shown
{
	my ($pattern, $since) = @_;
	return "EXISTS (SELECT 1 FROM udaconnect.ingest_status "
	  . "WHERE last_error LIKE '$pattern' AND last_error_at > '$since')";
}

# the test proper: everything produced so far, exactly once, no good one rejected
sub check_all
{
	my ($label) = @_;
	ok(IngestTest::wait_ingested($node, 'locations', $total), "$label: all $total messages consumed");
	IngestTest::check_exact($node, $label, locations => \@files);
	return;
}

IngestTest::create_extension_with_persons($node);
my $seq = psql("SELECT pg_get_serial_sequence('udaconnect.location', 'id')");

# 0. both partitions have a stored offset (their rows exist in ingest_offset)
produce(count => 1000);
check_all('before any lock');

# 1. a real deadlock inside the insert.  L1 holds the identity sequence
#    (ALTER SEQUENCE: SHARE ROW EXCLUSIVE) and waits for the worker's
#    ingest_offset rows; the worker, holding them, then asks for the
#    sequence and closes the cycle.  L2 holds the persons (FOR UPDATE) so the
#    worker waits between locking the offsets and inserting.
my $l1 = locker();
my $l2 = locker();
my $l1pid = $l1->query_safe('SELECT pg_backend_pid()');
my $l2pid = $l2->query_safe('SELECT pg_backend_pid()');
$l2->query_safe('BEGIN; SELECT count(*) FROM (SELECT id FROM udaconnect.person WHERE id BETWEEN 1001 AND 1100 FOR UPDATE) p');
$l1->query_safe("BEGIN; ALTER SEQUENCE $seq CACHE 1");
my $t0 = psql('SELECT clock_timestamp()');
my $wpid = worker_pid();
produce(count => 50);
ok($node->poll_query_until('postgres', "SELECT $l2pid = ANY (pg_blocking_pids($wpid))"),
	'deadlock: the worker has locked its offsets and waits for the persons');
$l1->query_until(qr/sent/, "\\echo sent\nSELECT count(*) FROM (SELECT * FROM udaconnect.ingest_offset FOR UPDATE) o;\n\\echo offsets_locked\n");
ok($node->poll_query_until('postgres', "SELECT $wpid = ANY (pg_blocking_pids($l1pid))"),
	'deadlock: the other session waits for the worker\'s offsets');
$l2->query_safe('COMMIT');
# the worker now asks for the sequence: deadlock; once its transaction is
# gone the other session gets the offsets
$l1->query_until(qr/offsets_locked/, '');
is(psql("SELECT " . error_shown('deadlock detected (SQLSTATE 40P01)%', $t0)), 't',
	'deadlock: ingest_status.last_error shows it');
$l1->query_safe('COMMIT');
is(worker_pid(), $wpid, 'deadlock: the worker stayed up');
check_all('after a deadlock');

# From here on the worker's lock waits time out: a database setting, which
# the worker (as any session) picks up when it connects.
$l1->quit;
$l2->quit;
psql("ALTER DATABASE postgres SET lock_timeout = '500ms'");
$node->restart;
$l1 = locker();
$wpid = worker_pid();

# 2. a lock timeout inside the insert: the identity sequence is held
$l1->query_safe("BEGIN; ALTER SEQUENCE $seq CACHE 1");
$t0 = psql('SELECT clock_timestamp()');
produce(count => 20);
# (the old worker rejected the rows and committed: stop waiting then too)
ok($node->poll_query_until('postgres',
		'SELECT ' . error_shown('canceling statement due to lock timeout (SQLSTATE 55P03)%', $t0)
		  . " OR (SELECT sum(next_offset) FROM udaconnect.ingest_offset) >= $total"),
	'lock timeout in the insert: waited for an error or the batch');
is(psql('SELECT ' . error_shown('canceling statement due to lock timeout (SQLSTATE 55P03)%', $t0)), 't',
	'lock timeout in the insert: ingest_status.last_error shows it');
is(psql("SELECT count(*) FROM udaconnect.ingest_rejects"), '0',
	'lock timeout in the insert: no message rejected while the lock is held');
$l1->query_safe('COMMIT');
check_all('after a lock timeout in the insert');
is(worker_pid(), $wpid, 'lock timeout in the insert: the worker stayed up');

# 3. a lock timeout before the insert (LOCK TABLE location), then a query
#    cancel, then SIGTERM while the worker keeps retrying
$l1->query_safe('BEGIN; LOCK TABLE udaconnect.location IN ACCESS EXCLUSIVE MODE');
$t0 = psql('SELECT clock_timestamp()');
produce(count => 20);
# (the old worker exited on it: stop waiting then too)
ok($node->poll_query_until('postgres',
		'SELECT ' . error_shown('canceling statement due to lock timeout (SQLSTATE 55P03)%', $t0)
		  . " OR NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $wpid)"),
	'LOCK TABLE location: waited for an error or the worker to exit');
is(psql('SELECT ' . error_shown('canceling statement due to lock timeout (SQLSTATE 55P03)%', $t0)), 't',
	'LOCK TABLE location: ingest_status.last_error shows the lock timeout');
is(worker_pid(), $wpid, 'LOCK TABLE location: the worker stayed up');

$t0 = psql('SELECT clock_timestamp()');
psql("SELECT pg_cancel_backend($wpid)");
# polled, not read once: the next lock timeout of the retry soon replaces it
ok($node->poll_query_until('postgres',
		'SELECT ' . error_shown('canceling statement due to user request (SQLSTATE 57014)%', $t0)),
	'query cancel: ingest_status.last_error shows it');
is(worker_pid(), $wpid, 'query cancel: the worker stayed up, retrying');

is(psql("SELECT pg_terminate_backend($wpid)"), 't', 'SIGTERM sent to the retrying worker');
ok($node->poll_query_until('postgres', "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $wpid)"),
	'SIGTERM: the retrying worker exits');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'udaconnect ingest' AND pid <> $wpid"),
	'SIGTERM: the postmaster starts it again');
$l1->query_safe('COMMIT');
check_all('after LOCK TABLE location, a cancel and SIGTERM');
$wpid = worker_pid();

# 4. a lock timeout while the batch writes its rejects: bad messages mixed
#    in, each rejected exactly once in the end
$l1->query_safe('BEGIN; LOCK TABLE udaconnect.ingest_rejects IN ACCESS EXCLUSIVE MODE');
$t0 = psql('SELECT clock_timestamp()');
produce(count => 300, bad => 100);
ok($node->poll_query_until('postgres',
		'SELECT ' . error_shown('canceling statement due to lock timeout (SQLSTATE 55P03)%', $t0)
		  . " OR NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $wpid)"),
	'LOCK TABLE ingest_rejects: waited for an error or the worker to exit');
is(psql('SELECT ' . error_shown('canceling statement due to lock timeout (SQLSTATE 55P03)%', $t0)), 't',
	'LOCK TABLE ingest_rejects: ingest_status.last_error shows the lock timeout');
is(worker_pid(), $wpid, 'LOCK TABLE ingest_rejects: the worker stayed up');
$l1->query_safe('COMMIT');
check_all('after LOCK TABLE ingest_rejects');

like(slurp_file($node->logfile),
	qr/WARNING:  udaconnect ingest worker 0: canceling statement due to lock timeout \(SQLSTATE 55P03\): batch not committed, consumed again from the stored offsets in \d+ ms/,
	'the retry is logged');

$l1->quit;
$node->stop('fast');
done_testing();
