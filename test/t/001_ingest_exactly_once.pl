# Kafka ingest, exactly once: ~100k valid and ~1k malformed messages of every
# kind over 6 partitions, produced while the ingest workers are SIGKILLed and
# PostgreSQL is shut down in immediate mode several times.  Afterwards the
# location table holds exactly the valid messages (none missing, none twice)
# and ingest_rejects exactly one row per bad message.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use IngestTest;

my $count = $ENV{UDACONNECT_INGEST_TEST_MESSAGES} || 101000;
my $kafka = IngestTest::start_devkafka(partitions => 6);

my $node = PostgreSQL::Test::Cluster->new('exactly_once');
$node->init;
$node->append_conf('postgresql.conf', <<"CONF");
shared_preload_libraries = 'pg_udaconnect'
restart_after_crash = on
udaconnect.database = 'postgres'
udaconnect.kafka_brokers = '$kafka->{brokers}'
udaconnect.ingest_workers = 2
udaconnect.ingest_batch_size = 2000
udaconnect.ingest_batch_timeout = 50
# the default, stated: batches commit asynchronously, so the immediate
# shutdowns below also lose committed-but-unflushed batches (rows and
# offsets together), which must then be consumed again
udaconnect.ingest_synchronous_commit = off
max_wal_size = 1GB
CONF
$node->start;
IngestTest::create_extension_with_persons($node);

# produce in the background (10 per mille bad) while we crash things
my $expect = $node->basedir . "/expect.txt";
my $producer = IngestTest::produce_bg($kafka, count => $count, bad => 10,
	expect => $expect, rate => 8000);

sub worker_pid
{
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'udaconnect ingest' ORDER BY state = 'active' DESC, random() LIMIT 1");
}

sub wait_some_progress
{
	my ($label) = @_;
	my $q = 'SELECT coalesce(sum(next_offset), 0) FROM udaconnect.ingest_offset';
	my $before = $node->safe_psql('postgres', $q);
	# up to 10 s: the producer may already be done and the topic drained
	for (1 .. 100)
	{
		return if $node->safe_psql('postgres', $q) > $before;
		usleep(100_000);
	}
	note "$label: no progress in 10 s (topic drained?)";
	return;
}

my ($kills, $immediates) = (0, 0);
for my $round (1 .. 6)
{
	wait_some_progress("round $round");
	if ($round % 2)
	{
		my $pid = worker_pid();
		my $logpos = -s $node->logfile;
		if ($pid)
		{
			kill 'KILL', $pid;
			$kills++;
			# the postmaster restarts everything (crash recovery)
			$node->wait_for_log(qr/all server processes terminated; reinitializing/, $logpos);
			# poll only once it accepts connections again: a psql refused
			# during recovery exits before reading its query, and IPC::Run
			# then dies of the broken pipe (seen on a loaded machine)
			$node->wait_for_log(qr/database system is ready to accept connections/, $logpos);
		}
		$node->poll_query_until('postgres', 'SELECT true');
	}
	else
	{
		$node->stop('immediate');
		$immediates++;
		$node->start;
	}
}
ok($kills >= 3, "SIGKILLed an ingest worker $kills times");
is($immediates, 3, "immediate shutdown of PostgreSQL $immediates times");

ok($producer->finish, 'producer delivered every message');
my $total = IngestTest::count_lines($expect);
is($total, $count, "expectation file lists all $count messages");

ok(IngestTest::wait_ingested($node, 'locations', $total), 'workers consumed every message');
IngestTest::check_exact($node, 'after crashes', locations => [$expect]);

my $status = $node->safe_psql('postgres',
	"SELECT count(*), sum(lag), sum(rows_ingested) + sum(rejects) FROM udaconnect.ingest_status WHERE topic = 'locations'");
my ($nparts, $lag, $counted) = split /\|/, $status;
is($nparts, 6, 'ingest_status lists the 6 partitions');
is($counted, $total, 'ingest_status counts every message as row or reject');

# the direct insert path wrote every index entry, crashes included
my ($checked, $expected) = split m{/}, IngestTest::check_indexes($node);
ok($checked > 0 && $checked == $expected,
	"after crashes: every btree index of location (of each of its partitions) is valid with an entry for each of its rows (amcheck, heapallindexed; $checked of $expected)");

$node->stop('fast');
done_testing();
