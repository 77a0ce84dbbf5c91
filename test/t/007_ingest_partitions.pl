# The Kafka ingest into a partitioned udaconnect.location (1.5, issue 16).
#
# 1. Batches whose rows span three day partitions and location_default go
#    through the direct insert path, one insert writing all four: every row
#    lands once, in the partition whose bounds cover its creation_time.
# 2. A crash mid-batch across partitions (the batch has written its rows
#    into all four partitions through the direct path and waits to write
#    its rejects; then SIGKILL, then an immediate shutdown) loses and
#    duplicates nothing.
# 3. Without a DEFAULT partition, rows no partition takes are rejected as
#    COPY rejects them (tuple routing's 23514), the others of their batch
#    stored.
# 4. A partition with a row trigger of its own sends the batches that write
#    it through COPY: the trigger fires once per row it takes, every row
#    still once in its partition.
# 5. The 1.4 layout (a plain table) under the same library: direct path.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IngestTest;

# one Kafka partition: a batch is a run of consecutive messages, so one
# taken after a pause holds all four days (each round produces them all)
my $kafka = IngestTest::start_devkafka(partitions => 1, topics => [ 'locations', 'locations14' ]);
my $node = PostgreSQL::Test::Cluster->new('partitions');
$node->init;
$node->append_conf('postgresql.conf', <<"CONF");
shared_preload_libraries = 'pg_udaconnect'
restart_after_crash = on
udaconnect.database = 'postgres'
udaconnect.kafka_brokers = '$kafka->{brokers}'
udaconnect.ingest_workers = 1
udaconnect.ingest_batch_size = 2000
udaconnect.ingest_batch_timeout = 50
# a batch waits for them all (or the 50 ms): the development broker answers
# a fetch with one message set (one producer run) of a partition, so a
# batch of what is ready would hold one day
udaconnect.ingest_batch_min = 2000
CONF
$node->start;
IngestTest::create_extension_with_persons($node);

sub psql { return $node->safe_psql('postgres', $_[0]); }

# The maintenance worker moves location_default's rows into partitions of
# their own (location_partitions_maintain()) whenever it wakes up; a session
# holding location in SHARE UPDATE EXCLUSIVE mode, as a partition creator
# does, keeps it waiting while the ingest goes on (RowExclusiveLock).  The
# test holds it but around its own DDL and crashes, and after those lets
# the worker finish its round: only then may day 3 leave location_default.
my $holder;

sub hold
{
	$holder = $node->background_psql('postgres');
	$holder->query_safe('BEGIN; LOCK TABLE ONLY udaconnect.location IN SHARE UPDATE EXCLUSIVE MODE');
	return;
}

sub maintenance_done
{
	return $node->poll_query_until('postgres',
		"SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'udaconnect maintenance' "
		  . "AND state = 'active')");
}

sub release
{
	$holder->query_safe('COMMIT');
	$holder->quit;
	maintenance_done();
	return;
}

# days 1, 2 and 4 of 2020 have partitions; day 3 goes to location_default
my @days = (1577836800, 1577923200, 1578009600, 1578096000);
psql(q{
SELECT udaconnect.location_partitions_ensure('2020-01-01 00:00+00', '2020-01-03 00:00+00');
SELECT udaconnect.location_partitions_ensure('2020-01-04 00:00+00', '2020-01-05 00:00+00');
});
hold();

my %files = (locations => [], locations14 => []);
my %total = (locations => 0, locations14 => 0);
my $seq = 0;
my $next_index = 0;

# $per messages for each day, in rounds: every 4 * $per consecutive
# messages hold all the days
sub produce_days
{
	my (%o) = @_;
	my $topic = $o{topic} || 'locations';
	for my $round (1 .. $o{rounds} || 4)
	{
		for my $day (@{ $o{days} || \@days })
		{
			my $f = $node->basedir . '/expect' . (++$seq) . '.txt';
			IngestTest::produce($kafka, topic => $topic, count => $o{per}, start => $next_index,
				bad => $o{bad} // 20, expect => $f, base => $day);
			$next_index += $o{per};
			$total{$topic} += $o{per};
			push @{ $files{$topic} }, $f;
		}
	}
	return;
}

# the same, paused meanwhile: the first batch after it takes them all
sub produce_backlog
{
	psql('SELECT udaconnect.ingest_pause()');
	produce_days(@_);
	psql('SELECT udaconnect.ingest_resume()');
	return;
}

sub ingested
{
	my ($topic) = @_;
	$topic ||= 'locations';
	return IngestTest::wait_ingested($node, $topic, $total{$topic});
}

# the path of the last insert, as the only worker last logged it
sub last_path
{
	my @paths = slurp_file($node->logfile) =~ /rows go into udaconnect\.location through (COPY|the direct)/g;
	return @paths && $paths[-1] eq 'the direct' ? 'direct' : 'COPY';
}

# ---------------------------------------------------------------------------
# 1. batches across three day partitions and location_default
# ---------------------------------------------------------------------------
is(psql("SELECT string_agg(partition::text, ' ' ORDER BY from_time NULLS LAST) FROM udaconnect.location_partitions() "
		  . "WHERE is_default OR from_time < '2021-01-01'"),
	'udaconnect.location_p20200101 udaconnect.location_p20200102 udaconnect.location_p20200104 udaconnect.location_default',
	'partitions for days 1, 2 and 4, and location_default');
my $logpos = -s $node->logfile;
produce_backlog(per => 100);
ok(ingested(), 'spanning batches: every message consumed');
IngestTest::check_exact($node, 'spanning batches', %files);
IngestTest::check_partitions($node, 'spanning batches', @{ $files{locations} });
# rows of one insert have its subtransaction's xid
is(psql('SELECT max(n) FROM (SELECT count(DISTINCT tableoid) AS n FROM udaconnect.location GROUP BY xmin::text) s'),
	'4', 'spanning batches: one insert wrote all four partitions');
like(slurp_file($node->logfile, $logpos), qr/rows go into udaconnect\.location through the direct insert path/,
	'spanning batches: the worker reports the direct insert path');
unlike(slurp_file($node->logfile, $logpos), qr/rows go into udaconnect\.location through COPY/,
	'spanning batches: no batch went through COPY');

# ---------------------------------------------------------------------------
# 2. crashes mid-batch across partitions
# ---------------------------------------------------------------------------

# A session holds ingest_rejects; the next batch (bad messages mixed in)
# writes its rows into the partitions, then waits to write its rejects; the
# worker is SIGKILLed, or PostgreSQL stops in immediate mode.  Returns how
# many partitions of location the waiting batch held locked for writing,
# and the path of its insert.  After the restart the maintenance worker's
# first round may take day 3 out of location_default, racing with the
# batches consumed again (ATTACH waits for a batch writing location_default;
# a batch routed before the new partition appeared goes through COPY).
sub crash_mid_batch
{
	my ($how) = @_;
	my $locker = $node->background_psql('postgres');
	$locker->query_safe('BEGIN; LOCK TABLE udaconnect.ingest_rejects IN SHARE MODE');
	my $lpid = $locker->query_safe('SELECT pg_backend_pid()');
	produce_backlog(per => 100, rounds => 2, bad => 50);
	my $waiting = "SELECT pid FROM pg_stat_activity WHERE backend_type = 'udaconnect ingest' "
	  . "AND $lpid = ANY (pg_blocking_pids(pid)) LIMIT 1";
	$node->poll_query_until('postgres', "SELECT EXISTS ($waiting)") or return 0;
	my $wpid = psql($waiting);
	my $written = psql("SELECT count(*) FROM pg_locks l JOIN udaconnect.location_partitions() p "
		  . "ON p.partition = l.relation WHERE l.pid = $wpid AND l.mode = 'RowExclusiveLock' AND l.granted");
	my $path = last_path();
	my $pos = -s $node->logfile;
	if ($how eq 'kill')
	{
		kill 'KILL', $wpid;
		$node->wait_for_log(qr/all server processes terminated; reinitializing/, $pos);
		$node->wait_for_log(qr/database system is ready to accept connections/, $pos);
	}
	else
	{
		$node->stop('immediate');
		$node->start;
	}
	# their backends went with the others
	eval { $locker->quit; };
	eval { $holder->quit; };
	$node->poll_query_until('postgres', 'SELECT true');
	maintenance_done();
	hold();
	return "$written $path";
}

is(crash_mid_batch('kill'), '4 direct',
	'SIGKILL: the batch had written all four partitions through the direct path, waiting for its rejects');
ok(ingested(), 'SIGKILL: every message consumed after the crash restart');
is(crash_mid_batch('immediate'), '4 direct',
	'immediate shutdown: the batch had written all four partitions through the direct path, waiting for its rejects');
ok(ingested(), 'immediate shutdown: every message consumed after the restart');
IngestTest::check_exact($node, 'after crashes mid-batch', %files);
IngestTest::check_partitions($node, 'after crashes mid-batch', @{ $files{locations} });
my ($checked, $expected) = split m{/}, IngestTest::check_indexes($node);
ok($checked > 0 && $checked == $expected,
	"after crashes mid-batch: every btree index of every partition is valid with an entry for each of its rows (amcheck, heapallindexed; $checked of $expected)");

# ---------------------------------------------------------------------------
# 3. no DEFAULT partition: rows no partition takes are rejected, as by COPY
# ---------------------------------------------------------------------------
# day 3's rows out of location_default first (they would leave location
# with it), if the maintenance worker has not done so
release();
psql(q{SELECT udaconnect.location_partitions_ensure('2020-01-03 00:00+00', '2020-01-04 00:00+00')});
is(psql('SELECT count(*) FROM udaconnect.location_default'), '0', 'no DEFAULT: location_default is empty before it goes');
psql('ALTER TABLE udaconnect.location DETACH PARTITION udaconnect.location_default');
hold();
my $first = $seq;
# day 5 has no partition
produce_backlog(per => 100, rounds => 2, bad => 0, days => [ 1577836800, 1577923200, 1578182400 ]);
ok(ingested(), 'no DEFAULT: every message consumed');
my @nodef = @{ $files{locations} }[ $first .. $#{ $files{locations} } ];
my $sql = "CREATE TEMP TABLE exp_raw (line text);\n";
$sql .= "COPY exp_raw FROM '$_';\n" for @nodef;
$sql .= q{
CREATE TEMP TABLE uncovered AS
  SELECT split_part(line, ' ', 2)::int AS part, split_part(line, ' ', 3)::bigint AS off
    FROM exp_raw
   WHERE line LIKE 'V %'
     AND 'epoch'::timestamptz + split_part(line, ' ', 5)::bigint * interval '1 microsecond' >= '2020-01-05 00:00+00';
SELECT (SELECT count(*) FROM uncovered) || ' ' ||
       (SELECT count(*) FROM udaconnect.ingest_rejects r JOIN uncovered u ON (r."partition", r."offset") = (u.part, u.off)
         WHERE r.reason = 'insert failed: no partition of relation "location" found for row (SQLSTATE 23514)') || ' ' ||
       (SELECT count(*) FROM udaconnect.ingest_rejects WHERE reason LIKE 'insert failed:%');
};
my ($nunc, $nrejected, $ninsert_failed) = split / /, psql($sql);
ok($nunc > 0 && $nrejected == $nunc && $ninsert_failed == $nunc,
	"no DEFAULT: the $nunc rows of the day no partition covers are rejects naming tuple routing's error, nothing else is ($nrejected, $ninsert_failed)");
# those rows were no data to keep: out of the comparison, the others in it
psql(q{DELETE FROM udaconnect.ingest_rejects WHERE reason LIKE 'insert failed: no partition%'});
for my $f (@nodef)
{
	my @keep = grep { !(/^V / && (split / /)[4] >= 1578182400_000000) } split /^/, slurp_file($f);
	open my $fh, '>', $f or die "cannot write $f: $!";
	print $fh @keep;
	close $fh;
}
IngestTest::check_exact($node, 'no DEFAULT', %files);
IngestTest::check_partitions($node, 'no DEFAULT', @{ $files{locations} });
release();
psql('ALTER TABLE udaconnect.location ATTACH PARTITION udaconnect.location_default DEFAULT');
hold();

# ---------------------------------------------------------------------------
# 4. a partition with a row trigger of its own: those batches go through COPY
# ---------------------------------------------------------------------------
psql(q{
CREATE TABLE public.day2_audit (n bigint NOT NULL);
INSERT INTO public.day2_audit VALUES (0);
CREATE FUNCTION public.day2_audit() RETURNS trigger LANGUAGE plpgsql
  AS $$ BEGIN UPDATE public.day2_audit SET n = n + 1; RETURN NULL; END $$;
CREATE TRIGGER day2_audit AFTER INSERT ON udaconnect.location_p20200102
  FOR EACH ROW EXECUTE FUNCTION public.day2_audit();
});
my $day2_before = psql('SELECT count(*) FROM udaconnect.location_p20200102');
$logpos = -s $node->logfile;
produce_backlog(per => 100, rounds => 2);
ok(ingested(), 'a partition with a row trigger: every message consumed');
like(slurp_file($node->logfile, $logpos), qr/rows go into udaconnect\.location through COPY/,
	'a partition with a row trigger: the worker reports going through COPY');
is(psql('SELECT n FROM public.day2_audit'), psql("SELECT count(*) - $day2_before FROM udaconnect.location_p20200102"),
	'a partition with a row trigger: it fired once per row the partition took');
IngestTest::check_exact($node, 'a partition with a row trigger', %files);
IngestTest::check_partitions($node, 'a partition with a row trigger', @{ $files{locations} });
psql('DROP TRIGGER day2_audit ON udaconnect.location_p20200102');

# ---------------------------------------------------------------------------
# 5. the 1.4 layout, a plain table, under the same library
# ---------------------------------------------------------------------------
release();
# the other topic first: without stored offsets the new extension's worker
# would read the old one from its beginning
psql("ALTER SYSTEM SET udaconnect.kafka_topic = 'locations14'; SELECT pg_reload_conf();");
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM udaconnect.ingest_status WHERE topic = 'locations14'"),
	'1.4: the worker consumes the other topic');
psql('DROP EXTENSION pg_udaconnect CASCADE; DROP SCHEMA IF EXISTS udaconnect CASCADE;');
psql(q{
BEGIN;
CREATE EXTENSION pg_udaconnect VERSION '1.4';
INSERT INTO udaconnect.person (id, first_name, last_name, company_name)
SELECT g, 'First' || g, 'Last' || g, 'Company' FROM generate_series(1001, 1100) g;
COMMIT;
});
is(psql("SELECT relkind FROM pg_class WHERE oid = 'udaconnect.location'::regclass"), 'r', '1.4: location is a plain table');
produce_days(topic => 'locations14', per => 100, rounds => 2);
ok(ingested('locations14'), '1.4: every message consumed');
IngestTest::check_exact($node, '1.4', locations14 => $files{locations14});
is(last_path(), 'direct', '1.4: the worker reports the direct insert path');
($checked, $expected) = split m{/}, IngestTest::check_indexes($node);
is("$checked/$expected", '3/3', '1.4: every btree index of location is valid with an entry for each of its rows');

$node->stop('fast');
done_testing();
