# Encounters through the Kafka ingest, exactly once through crashes (issue
# 15).  A dense conference (30 persons at 6 booths of a 30 m hall, a report
# every 20-40 s for 150 minutes, 1% of the messages naming a person who does
# not exist) is produced with kcat in chunks, mostly in time order, part of
# it up to two hours late, first while the workers take the direct insert
# path, then the COPY path (an extra harmless trigger on location).  In each
# path the worker is made to crash mid-batch: a session holds the encounter
# lock, so the batch, its rows already inserted, waits in the encounter
# maintenance; then the worker is SIGKILLed (crash restart) or PostgreSQL is
# shut down in immediate mode.  At the end every message is once in location
# (or in ingest_rejects), the maintained encounters equal
# encounters_rebuild() row for row, and the matches equal an oracle (the
# self-join of location within encounter_distance and encounter_window,
# chained by encounter_gap).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use IngestTest;

my $KDELIM = '|UDCKEY|';
my $MDELIM = '|UDCMSG|';
my $T0 = 1709629200;    # 2024-03-05 09:00:00 UTC

my $kafka = IngestTest::start_devkafka(partitions => 4);
my $node = PostgreSQL::Test::Cluster->new('encounters');
$node->init;
$node->append_conf('postgresql.conf', <<"CONF");
shared_preload_libraries = 'pg_udaconnect'
restart_after_crash = on
udaconnect.database = 'postgres'
udaconnect.kafka_brokers = '$kafka->{brokers}'
udaconnect.ingest_workers = 2
udaconnect.ingest_batch_size = 300
udaconnect.ingest_batch_timeout = 50
CONF
$node->start;
IngestTest::create_extension_with_persons($node);

sub psql { return $node->safe_psql('postgres', $_[0]); }

# ---------------------------------------------------------------------------
# The conference: [person, creation time in us, lat, lon, good?]
# ---------------------------------------------------------------------------
srand(15);
my ($lat0, $lon0) = (47.3769, 8.5417);
my $m_lat = 111_320.0;
my $m_lon = 111_320.0 * cos($lat0 * 3.14159265358979 / 180);
my @booths = map { [ $_ * 6 - 15 + rand(2), rand(30) - 15 ] } 0 .. 5;
my @points;
for my $person (1001 .. 1030)
{
	my $t = $T0 + int(rand(30));
	my $b = int(rand(6));
	my $leave = $t + 120 + int(rand(600));
	while ($t < $T0 + 150 * 60)
	{
		if ($t >= $leave)
		{
			$b = int(rand(6));
			$leave = $t + 120 + int(rand(600));
		}
		my $us = $t * 1_000_000 + (rand() < 0.1 ? int(rand(1_000_000)) : 0);
		my $lat = $lat0 + ($booths[$b][0] + rand(4) - 2) / $m_lat;
		my $lon = $lon0 + ($booths[$b][1] + rand(4) - 2) / $m_lon;
		# 1%: the same point from a person who does not exist (rejected)
		push @points, [ rand() < 0.01 ? 99999 : $person, $us, $lat, $lon ];
		$t += 20 + int(rand(21));
	}
}
my @good = grep { $_->[0] != 99999 } @points;
my $nbad = @points - @good;

# the arrival order: by time, shuffled a little (up to a few minutes late);
# 15% of the first 50 minutes held back: those of the first 10 minutes come
# with the last chunk of the direct path, the others with the last chunk of
# COPY (up to two hours late)
my (@early, @late1, @late2);
for my $p (sort { $a->[1] <=> $b->[1] } @points)
{
	if ($p->[1] < ($T0 + 50 * 60) * 1_000_000 && rand() < 0.15)
	{
		push @{ $p->[1] < ($T0 + 10 * 60) * 1_000_000 ? \@late1 : \@late2 }, $p;
	}
	else { push @early, [ $p, $p->[1] + rand(200_000_000) ]; }
}
@early = map { $_->[0] } sort { $a->[1] <=> $b->[1] } @early;
my $n = int(@early / 6);
my @chunks = (
	[ @early[ 0 .. $n - 1 ] ],
	[ @early[ $n .. 2 * $n - 1 ] ],
	[ @early[ 2 * $n .. 3 * $n - 1 ], @late1 ],
	[ @early[ 3 * $n .. 4 * $n - 1 ] ],
	[ @early[ 4 * $n .. 5 * $n - 1 ] ],
	[ @early[ 5 * $n .. $#early ], @late2 ]);
# how late: behind the newest point produced before or with it
my $hour_late = 0;
for my $c (@chunks[ 2, 5 ])
{
	my $newest = 0;
	$newest = $_->[1] > $newest ? $_->[1] : $newest for @$c;
	$hour_late += grep { $newest - $_->[1] >= 3600 * 1_000_000 } @$c;
}

sub varint
{
	my ($v) = @_;
	my $s = '';
	while ($v >= 0x80)
	{
		$s .= chr(($v & 0x7f) | 0x80);
		$v >>= 7;
	}
	return $s . chr($v);
}

# udaconnect.v1.Location, by hand (proto3: no field is zero here)
sub encode
{
	my ($p) = @_;
	my $secs = int($p->[1] / 1_000_000);
	my $nanos = ($p->[1] % 1_000_000) * 1000;
	my $ts = "\x08" . varint($secs) . ($nanos ? "\x10" . varint($nanos) : '');
	return "\x08" . varint($p->[0]) . "\x11" . pack('d<', $p->[2]) . "\x19" . pack('d<', $p->[3])
	  . "\x22" . varint(length $ts) . $ts;
}

my $total = 0;
my $chunkno = 0;

# produce one chunk with kcat (key: the person), wait until it is delivered
sub produce_chunk
{
	my ($chunk) = @_;
	my $file = $node->basedir . '/chunk' . (++$chunkno) . '.bin';
	open my $fh, '>:raw', $file or die "cannot write $file: $!";
	for my $p (@$chunk)
	{
		my $msg = encode($p);
		die "a message contains the delimiter" if index($msg, $MDELIM) >= 0 || index($msg, $KDELIM) >= 0;
		print $fh $p->[0], $KDELIM, $msg, $MDELIM;
	}
	close $fh;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'kcat', '-P', '-b', $kafka->{brokers}, '-t', 'locations', '-K', $KDELIM, '-D', $MDELIM,
			'-l', $file ], '>', \$out, '2>', \$err)
	  or die "kcat failed: $err";
	$total += @$chunk;
	return;
}

sub ingested
{
	return IngestTest::wait_ingested($node, 'locations', $total);
}

# The worker crashes mid-batch: a session holds the encounter lock, the next
# chunk's batch inserts its rows and waits for the lock in the encounter
# maintenance; then the worker is SIGKILLed or PostgreSQL stops in immediate
# mode.  Returns whether the batch was caught waiting with rows written.
sub crash_mid_batch
{
	my ($chunk, $how) = @_;
	my $locker = $node->background_psql('postgres');
	$locker->query_safe('BEGIN; SELECT udaconnect.encounter_lock()');
	my $lpid = $locker->query_safe('SELECT pg_backend_pid()');
	produce_chunk($chunk);
	my $waiting = "SELECT pid FROM pg_stat_activity WHERE backend_type = 'udaconnect ingest' "
	  . "AND $lpid = ANY (pg_blocking_pids(pid)) AND backend_xid IS NOT NULL LIMIT 1";
	$node->poll_query_until('postgres', "SELECT EXISTS ($waiting)") or return 0;
	my $wpid = psql($waiting);
	my $logpos = -s $node->logfile;
	if ($how eq 'kill')
	{
		kill 'KILL', $wpid;
		$node->wait_for_log(qr/all server processes terminated; reinitializing/, $logpos);
		$node->wait_for_log(qr/database system is ready to accept connections/, $logpos);
	}
	else
	{
		$node->stop('immediate');
		$node->start;
	}
	# its backend went with the others
	eval { $locker->quit; };
	$node->poll_query_until('postgres', 'SELECT true');
	return 1;
}

# ---------------------------------------------------------------------------
# 1. the direct insert path
# ---------------------------------------------------------------------------
my $logpos = -s $node->logfile;
produce_chunk($chunks[0]);
ok(ingested(), 'direct path: first chunk ingested');
like(slurp_file($node->logfile, $logpos), qr/rows go into udaconnect\.location through the direct insert path/,
	'direct path: the workers report taking it');
ok(psql('SELECT count(*) FROM udaconnect.encounter') > 0, 'direct path: the first chunk made encounters');
ok(crash_mid_batch($chunks[1], 'kill'), 'direct path: a batch waiting in the encounter maintenance, its rows inserted, is SIGKILLed');
ok(ingested(), 'direct path: second chunk ingested after the crash restart');
ok(crash_mid_batch($chunks[2], 'immediate'),
	'direct path: a batch waiting in the encounter maintenance is cut by an immediate shutdown');
ok(ingested(), 'direct path: third chunk (with late points) ingested after the restart');
unlike(slurp_file($node->logfile, $logpos), qr/rows go into udaconnect\.location through COPY/,
	'direct path: no batch so far went through COPY');

# ---------------------------------------------------------------------------
# 2. the COPY path: one more (harmless) trigger on location
# ---------------------------------------------------------------------------
psql(q{
CREATE FUNCTION public.location_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER zz_location_noop AFTER INSERT ON udaconnect.location
  FOR EACH STATEMENT EXECUTE FUNCTION public.location_noop();
});
$logpos = -s $node->logfile;
produce_chunk($chunks[3]);
ok(ingested(), 'COPY path: fourth chunk ingested');
like(slurp_file($node->logfile, $logpos), qr/rows go into udaconnect\.location through COPY/,
	'COPY path: the workers report going through COPY');
ok(crash_mid_batch($chunks[4], 'kill'), 'COPY path: a batch waiting in the encounter trigger, its rows copied, is SIGKILLed');
ok(ingested(), 'COPY path: fifth chunk ingested after the crash restart');
ok(crash_mid_batch($chunks[5], 'immediate'), 'COPY path: a batch waiting in the encounter trigger is cut by an immediate shutdown');
ok(ingested(), 'COPY path: sixth chunk (with the other late points) ingested after the restart');

# ---------------------------------------------------------------------------
# 3. exactly once: locations, rejects, encounters
# ---------------------------------------------------------------------------
my $want = $node->basedir . '/want.txt';
open my $wf, '>', $want or die;
printf $wf "%d\t%d\t%.17g\t%.17g\n", @$_ for @good;
close $wf;
my ($nloc, $missing, $extra, $nrej) = split /\|/, psql(qq{
CREATE TEMP TABLE want (p int, us bigint, lat float8, lon float8);
COPY want FROM '$want';
-- the test's persons: a database made by test/extension/updated-db.sh
-- (UDACONNECT_INGEST_UPDATED_FROM) holds other persons' data too
CREATE TEMP TABLE got AS
  SELECT person_id AS p, (extract(epoch FROM creation_time) * 1000000)::bigint AS us,
         ST_Y(coordinate) AS lat, ST_X(coordinate) AS lon FROM udaconnect.location
   WHERE person_id BETWEEN 1001 AND 1100;
SELECT (SELECT count(*) FROM got),
       (SELECT count(*) FROM (SELECT * FROM want EXCEPT ALL SELECT * FROM got) m),
       (SELECT count(*) FROM (SELECT * FROM got EXCEPT ALL SELECT * FROM want) x),
       (SELECT count(*) FROM udaconnect.ingest_rejects WHERE reason = 'person 99999 does not exist');
});
is("$nloc/$missing/$extra", scalar(@good) . "/0/0",
	"every good message is once in location (rows/missing/extra), " . (@late1 + @late2)
	  . " of them produced late, $hour_late of those over an hour late");
is($nrej, $nbad, "the $nbad messages of an unknown person are rejects");

my $cols = 'person_a, person_b, started_at, ended_at, matches, min_distance_m, place_id, place_ids, '
  . 'place_matches, latitude, longitude, closest_a, closest_b';
my ($nenc, $nmatches, $only_kept, $only_rebuilt) = split /\|/, psql(qq{
CREATE TABLE public.kept AS SELECT $cols FROM udaconnect.encounter;
CREATE TEMP TABLE written AS SELECT udaconnect.encounters_rebuild('-infinity', 'infinity');
CREATE TABLE public.rebuilt AS SELECT $cols FROM udaconnect.encounter;
SELECT (SELECT count(*) FROM kept), (SELECT sum(matches) FROM kept),
       (SELECT count(*) FROM (SELECT * FROM kept EXCEPT ALL SELECT * FROM public.rebuilt) k),
       (SELECT count(*) FROM (SELECT * FROM public.rebuilt EXCEPT ALL SELECT * FROM kept) r);
});
ok($nenc > 100 && $only_kept == 0 && $only_rebuilt == 0,
	"the encounters maintained through crashes equal encounters_rebuild() row for row ($nenc encounters, "
	  . "$nmatches matches; $only_kept only maintained, $only_rebuilt only rebuilt)")
  or diag(psql(q{
	SELECT 'maintained ' || k::text FROM (SELECT * FROM public.kept EXCEPT ALL SELECT * FROM public.rebuilt) k
	UNION ALL
	SELECT 'rebuilt    ' || r::text FROM (SELECT * FROM public.rebuilt EXCEPT ALL SELECT * FROM public.kept) r
	ORDER BY 1 LIMIT 10}));

# the oracle: every pair of points of different persons within the distance
# and the window, once; chained while at most the gap apart
my ($omatches, $oenc, $odiff) = split /\|/, psql(q{
CREATE TEMP TABLE l AS
  SELECT person_id AS p, ST_Y(coordinate) AS lat, ST_X(coordinate) AS lon, creation_time AS t FROM udaconnect.location;
CREATE INDEX ON l (t);
ANALYZE l;
CREATE TEMP TABLE om AS
  SELECT a.p AS pa, b.p AS pb, least(a.t, b.t) AS s, greatest(a.t, b.t) AS e,
         udaconnect.geodesic_distance(a.lat, a.lon, b.lat, b.lon) AS d
    FROM l a JOIN l b
      ON b.t BETWEEN a.t - udaconnect.encounter_window() AND a.t + udaconnect.encounter_window()
     AND a.p < b.p
   WHERE udaconnect.geodesic_distance(a.lat, a.lon, b.lat, b.lon) <= udaconnect.encounter_distance();
CREATE TEMP TABLE oracle AS
  SELECT pa, pb, min(s) AS s, max(e) AS e, count(*) AS n, min(d) AS d
    FROM (SELECT *, sum(brk) OVER (PARTITION BY pa, pb ORDER BY s, e ROWS UNBOUNDED PRECEDING) AS isl
            FROM (SELECT *, CASE WHEN s > max(e) OVER (PARTITION BY pa, pb ORDER BY s, e
                                                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                                         + udaconnect.encounter_gap() THEN 1 ELSE 0 END AS brk
                    FROM om) x) y
   GROUP BY pa, pb, isl;
SELECT (SELECT count(*) FROM om), (SELECT count(*) FROM oracle),
       (SELECT count(*) FROM oracle o FULL JOIN kept k
            ON (k.person_a, k.person_b, k.started_at) = (o.pa, o.pb, o.s)
         WHERE o.pa IS NULL OR k.person_a IS NULL OR k.ended_at <> o.e OR k.matches <> o.n
            OR abs(k.min_distance_m - o.d) > 1e-6);
});
is($nmatches, $omatches, "the maintained encounters hold every match exactly once ($omatches in the oracle)");
is("$nenc/$odiff", "$oenc/0",
	'the maintained encounters are the oracle\'s: pairs, started_at, ended_at, matches, min_distance_m (encounters/differences)');

$node->stop('fast');
done_testing();
