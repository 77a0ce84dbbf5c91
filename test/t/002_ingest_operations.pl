# Kafka ingest operations: idle without brokers and before CREATE EXTENSION,
# several workers sharing the partitions, pause/resume, settings reload
# (topic, librdkafka options), broker outage mid-stream, SIGTERM and restart;
# the direct insert path against what INSERT stores and amcheck, the COPY
# path for a table with another trigger, synchronous commit on request.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use IngestTest;

my $kafka = IngestTest::start_devkafka(partitions => 4, topics => [ 'locations', 'locations2' ]);
my $node = PostgreSQL::Test::Cluster->new('operations');
$node->init;
$node->append_conf('postgresql.conf', <<"CONF");
shared_preload_libraries = 'pg_udaconnect'
restart_after_crash = on
udaconnect.database = 'postgres'
udaconnect.ingest_workers = 3
udaconnect.ingest_batch_size = 500
udaconnect.ingest_batch_timeout = 50
CONF
$node->start;

my %files = (locations => [], locations2 => []);
my %total = (locations => 0, locations2 => 0);
my $seq = 0;
my $next_index = 0;

sub produce
{
	my (%o) = @_;
	my $topic = $o{topic} || 'locations';
	my $f = $node->basedir . '/expect' . (++$seq) . '.txt';
	IngestTest::produce($kafka, topic => $topic, count => $o{count}, start => $next_index,
		bad => $o{bad} // 20, expect => $f);
	$next_index += $o{count};
	push @{ $files{$topic} }, $f;
	$total{$topic} += $o{count};
	return $f;
}

sub psql { return $node->safe_psql('postgres', $_[0]); }

# 1. no brokers configured: the workers exist and idle quietly
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 3 FROM pg_stat_activity WHERE backend_type = 'udaconnect ingest' "
		  . "AND query = 'idle: udaconnect.kafka_brokers is empty'"),
	'three workers in pg_stat_activity (backend_type udaconnect ingest), idle without brokers');
unlike(slurp_file($node->logfile), qr/udaconnect ingest worker \d+: (consuming|WARNING)/,
	'idle workers log nothing about Kafka');

# 2. brokers set, extension not created yet: messages wait in Kafka
psql("ALTER SYSTEM SET udaconnect.kafka_brokers = '$kafka->{brokers}'; SELECT pg_reload_conf();");
produce(count => 3000);
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 3 FROM pg_stat_activity WHERE backend_type = 'udaconnect ingest' "
		  . "AND query = 'waiting for CREATE EXTENSION'"),
	'workers wait for CREATE EXTENSION without consuming');

# one transaction: the workers must not see the extension without the persons
IngestTest::create_extension_with_persons($node);
ok(IngestTest::wait_ingested($node, 'locations', $total{locations}), 'messages produced before CREATE EXTENSION are ingested after it');
IngestTest::check_exact($node, 'after CREATE EXTENSION', %files);

# 3. several workers share the partitions
is(psql("SELECT count(DISTINCT worker) || '/' || count(*) FROM udaconnect.ingest_status WHERE topic = 'locations'"),
	'3/4', 'three workers share the four partitions');

# 4. pause / resume
is(psql('SELECT udaconnect.ingest_pause()'), 't', 'ingest_pause() pauses');
is(psql('SELECT udaconnect.ingest_pause()'), 'f', 'ingest_pause() again: already paused');
my $rows_before = psql('SELECT count(*) FROM udaconnect.location');
produce(count => 2000);
ok($node->poll_query_until('postgres',
		"SELECT bool_and(worker_state = 'paused') AND sum(lag) = 2000 FROM udaconnect.ingest_status WHERE topic = 'locations'"),
	'paused workers report state and lag in ingest_status');
is(psql('SELECT count(*) FROM udaconnect.location'), $rows_before, 'nothing ingested while paused');
is(psql('SELECT udaconnect.ingest_resume()'), 't', 'ingest_resume() resumes');
ok(IngestTest::wait_ingested($node, 'locations', $total{locations}), 'backlog ingested after resume');
IngestTest::check_exact($node, 'after pause/resume', %files);

# 5. settings: bad librdkafka options are refused, good ones applied on reload
my ($rc, $out, $err) = $node->psql('postgres', "ALTER SYSTEM SET udaconnect.kafka_options = 'no.such.option=1'");
isnt($rc, 0, 'an unknown librdkafka option is refused');
like($err, qr/librdkafka rejected option "no.such.option"/, 'the error names the librdkafka option');
($rc, $out, $err) = $node->psql('postgres', "ALTER SYSTEM SET udaconnect.kafka_options = 'group.id=x'");
like($err, qr/managed by pg_udaconnect/, 'options pg_udaconnect manages cannot be overridden');
my $logpos = -s $node->logfile;
psql("ALTER SYSTEM SET udaconnect.kafka_options = 'fetch.wait.max.ms=20; client.rack=test'; SELECT pg_reload_conf();");
ok($node->wait_for_log(qr/Kafka settings changed, reconnecting/, $logpos), 'workers reconnect after a reload changing Kafka settings');

# reload: another topic
psql("ALTER SYSTEM SET udaconnect.kafka_topic = 'locations2'; SELECT pg_reload_conf();");
produce(topic => 'locations2', count => 2000);
ok(IngestTest::wait_ingested($node, 'locations2', $total{locations2}), 'after reload the workers consume the new topic');
IngestTest::check_exact($node, 'after topic reload', %files);
psql("ALTER SYSTEM SET udaconnect.kafka_topic = 'locations'; SELECT pg_reload_conf();");

# 6. broker outage mid-stream
my $f = $node->basedir . '/expect_outage.txt';
my $bg = IngestTest::produce_bg($kafka, count => 20000, start => $next_index, bad => 20, expect => $f, rate => 10000);
$next_index += 20000;
ok($node->poll_query_until('postgres',
		"SELECT sum(next_offset) > $total{locations} FROM udaconnect.ingest_offset WHERE topic = 'locations'"),
	'ingesting before the outage');
kill 'USR1', $kafka->{pid};    # brokers down
ok($node->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM udaconnect.ingest_status WHERE last_error IS NOT NULL AND last_error_at > now() - interval '30 s'"),
	'the outage shows in ingest_status.last_error');
sleep 2;
kill 'USR2', $kafka->{pid};    # brokers up again
ok($bg->finish, 'producer delivered everything across the outage');
push @{ $files{locations} }, $f;
$total{locations} += 20000;
ok(IngestTest::wait_ingested($node, 'locations', $total{locations}), 'workers resumed by themselves after the outage');
IngestTest::check_exact($node, 'after broker outage', %files);

# 7. SIGTERM stops a worker; the postmaster starts it again
my $pid = psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'udaconnect ingest' LIMIT 1");
is(psql("SELECT pg_terminate_backend($pid, 5000)"), 't', 'SIGTERM stops a worker');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 3 FROM pg_stat_activity WHERE backend_type = 'udaconnect ingest' AND pid <> $pid"),
	'the stopped worker is restarted');
produce(count => 1000);
ok(IngestTest::wait_ingested($node, 'locations', $total{locations}), 'ingest continues after the restart');

# 8. brokers removed again: idle, then back
psql("ALTER SYSTEM SET udaconnect.kafka_brokers = ''; SELECT pg_reload_conf();");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 3 FROM pg_stat_activity WHERE backend_type = 'udaconnect ingest' "
		  . "AND query = 'idle: udaconnect.kafka_brokers is empty'"),
	'workers go idle when udaconnect.kafka_brokers is emptied');
psql("ALTER SYSTEM RESET udaconnect.kafka_brokers; ALTER SYSTEM SET udaconnect.kafka_brokers = '$kafka->{brokers}'; SELECT pg_reload_conf();");
produce(count => 1000);
ok(IngestTest::wait_ingested($node, 'locations', $total{locations}), 'and consume again when it is set');

# 9. the direct insert path stores what COPY or INSERT would: the generated
#    cell, PostGIS's own point serialization, an entry in every index
is(psql("SELECT count(*) FROM udaconnect.location "
		  . "WHERE cell IS DISTINCT FROM udaconnect.cell_key(ST_Y(coordinate), ST_X(coordinate)) "
		  . "OR coordinate::text <> udaconnect.make_point(ST_Y(coordinate), ST_X(coordinate))::text"),
	'0', 'direct path: cell and coordinate are exactly what INSERT stores');
like(slurp_file($node->logfile), qr/rows go into udaconnect\.location through the direct insert path/,
	'direct path: the workers report taking it');
unlike(slurp_file($node->logfile), qr/rows go into udaconnect\.location through COPY/,
	'direct path: no batch so far went through COPY');
my ($checked, $expected) = split m{/}, IngestTest::check_indexes($node);
ok($checked > 0 && $checked == $expected,
	"direct path: every btree index of location (of each of its partitions) is valid with an entry for each of its rows (amcheck, heapallindexed; $checked of $expected)");

# 10. a table the direct path does not reproduce (here: one more trigger)
#     is filled through COPY, triggers and all
psql(q{
CREATE TABLE public.location_audit (n bigint NOT NULL);
INSERT INTO public.location_audit VALUES (0);
CREATE FUNCTION public.location_audit() RETURNS trigger LANGUAGE plpgsql
  AS $$ BEGIN UPDATE public.location_audit SET n = n + 1; RETURN NULL; END $$;
CREATE TRIGGER location_audit AFTER INSERT ON udaconnect.location
  FOR EACH ROW EXECUTE FUNCTION public.location_audit();
});
my $rows_before_audit = psql('SELECT count(*) FROM udaconnect.location');
my $logpos_copy = -s $node->logfile;
produce(count => 1000);
ok(IngestTest::wait_ingested($node, 'locations', $total{locations}), 'with another trigger on location: ingested');
like(slurp_file($node->logfile, $logpos_copy), qr/rows go into udaconnect\.location through COPY/,
	'with another trigger on location: the workers report going through COPY');
is(psql("SELECT n FROM public.location_audit"), psql("SELECT count(*) - $rows_before_audit FROM udaconnect.location"),
	'COPY path: the other trigger fired once per ingested row');
psql('DROP TRIGGER location_audit ON udaconnect.location');

# 11. synchronous commit on request
psql("ALTER SYSTEM SET udaconnect.ingest_synchronous_commit = on; SELECT pg_reload_conf();");
produce(count => 1000);
ok(IngestTest::wait_ingested($node, 'locations', $total{locations}), 'udaconnect.ingest_synchronous_commit = on: ingested');
IngestTest::check_exact($node, 'final', %files);

$node->stop('fast');
done_testing();
