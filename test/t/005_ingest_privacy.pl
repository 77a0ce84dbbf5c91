# Erasure and retention against the real ingest (issue 14).
#
# 1. A reject carries the person its payload names (ingest_rejects.person_id),
#    NULL when it names none; forget_person() removes a person's rows and
#    rejects.
# 2. After forget_person(), the person's messages still in Kafka (replayed
#    old ones, new valid and invalid ones) are dropped: nothing in location,
#    nothing in ingest_rejects, each counted once in erased_dropped; another
#    person's messages around them arrive.
# 3. The races: an erasure that holds the person while a batch comes (the
#    batch waits, then drops), and a batch that holds the person while an
#    erasure comes (the erasure waits, then removes the batch's rows and
#    rejects).
# 4. The settings: defaults, checks, attendee_max_distance() reads its own.
# 5. The partition settings; the maintenance worker keeps partitions ahead.
# 6. Retention: partitions of old days go whole, rejects in transactions of
#    at most retention_batch rows; recent ones stay, find_connections stops
#    showing old points; a partition in use is left for a later round, and
#    the ingest goes on meanwhile.
# Messages are produced with python3-kafka and a protobuf encoder written
# here, independent of the worker's decoder.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IngestTest;

my $kafka = IngestTest::start_devkafka(partitions => 1);
my $node = PostgreSQL::Test::Cluster->new('privacy');
$node->init;
$node->append_conf('postgresql.conf', <<"CONF");
shared_preload_libraries = 'pg_udaconnect'
udaconnect.database = 'postgres'
udaconnect.ingest_workers = 1
udaconnect.ingest_batch_timeout = 50
udaconnect.kafka_brokers = '$kafka->{brokers}'
CONF
$node->start;

sub psql { return $node->safe_psql('postgres', $_[0]); }

IngestTest::create_extension_with_persons($node);

# Produce messages to partition 0, in order.  Each is [person, lat, lon,
# seconds] (a Location with creation_time) or ['raw', hex] (any bytes).
my $script = PostgreSQL::Test::Utils::tempdir('produce') . '/produce.py';
open my $fh, '>', $script or die "cannot write $script: $!";
print $fh <<'PY';
import json, struct, sys
from kafka import KafkaProducer

def varint(n):
    n &= (1 << 64) - 1
    out = b''
    while True:
        b, n = n & 0x7f, n >> 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def location(person, lat, lon, secs):
    t = b'\x08' + varint(secs)
    return (b'\x08' + varint(person) + b'\x11' + struct.pack('<d', lat) + b'\x19' + struct.pack('<d', lon)
            + b'\x22' + varint(len(t)) + t)

p = KafkaProducer(bootstrap_servers=sys.argv[1])
for m in json.load(sys.stdin):
    if m[0] == 'raw':
        value, key = bytes.fromhex(m[1]), None
    else:
        value, key = location(*m), str(m[0]).encode()
    p.send('locations', value=value, key=key, partition=0).get(timeout=60)
p.flush()
PY
close $fh;
my $python = -x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3';
my $produced = 0;

sub produce
{
	my ($label, @msgs) = @_;
	my $json = '[' . join(',', map {
		$_->[0] eq 'raw' ? qq{["raw","$_->[1]"]} : "[$_->[0],$_->[1],$_->[2],$_->[3]]"
	} @msgs) . ']';
	my ($out, $err) = ('', '');
	ok(IPC::Run::run([ $python, $script, $kafka->{brokers} ], '<', \$json, '>', \$out, '2>', \$err),
		"$label: " . scalar(@msgs) . ' messages produced')
	  or diag($err);
	$produced += @msgs;
	return;
}

sub consumed
{
	my ($label) = @_;
	ok(IngestTest::wait_ingested($node, 'locations', $produced), "$label: all $produced messages consumed");
	return;
}

sub erased_dropped
{
	return psql("SELECT coalesce(sum(erased_dropped), 0) FROM udaconnect.ingest_offset");
}

# everything of $p in location and ingest_rejects (by person_id or payload)
sub traces_of
{
	my ($p) = @_;
	return psql("SELECT (SELECT count(*) FROM udaconnect.location WHERE person_id = $p) || ' ' || "
		  . "(SELECT count(*) FROM udaconnect.ingest_rejects WHERE person_id = $p "
		  . "OR udaconnect.ingest_payload_person(payload) = $p)");
}

my $t = 1600000000;
my @p1001 = map { [ 1001, 10 + $_ / 1000, 20, $t + $_ ] } 0 .. 4;

# 1. rejects carry the person
produce('rejects',
	@p1001,
	(map { [ 1002, 10 + $_ / 1000, 20, $t + $_ ] } 0 .. 4),
	[ 1001, 100, 20, $t + 10 ],        # 10: bad latitude, names 1001
	[ 'raw', 'ffff01' ],               # 11: undecodable, names no one
	[ 5000, 10, 20, $t + 11 ],         # 12: unknown person 5000
	[ 1002, 10, 200, $t + 12 ],        # 13: bad longitude, names 1002
	[ 0, 10, 20, $t + 13 ]);           # 14: person 0, names no one
consumed('rejects');
is(psql(q{SELECT string_agg("offset" || ':' || coalesce(person_id::text, 'null'), ' ' ORDER BY "offset")
	FROM udaconnect.ingest_rejects}),
	'10:1001 11:null 12:5000 13:1002 14:null',
	'each reject carries the person its payload names, NULL when it names none');
is(psql('SELECT count(*) FROM udaconnect.location'), '10', 'the valid messages are rows');

is(psql('SELECT locations || \' \' || rejects FROM udaconnect.forget_person(1001)'), '5 1',
	'forget_person(1001) removes its 5 locations and its reject');
is(traces_of(1001), '0 0', 'nothing of person 1001 is left');

# 2. after the erasure: the old messages again, new valid and invalid ones
my $before = erased_dropped();
produce('after the erasure',
	[ 1002, 11, 21, $t + 20 ],
	@p1001,                            # the old ones again
	[ 1001, 11, 21, $t + 21 ],         # new valid ones
	[ 1002, 11.5, 21, $t + 21 ],
	[ 1001, 11, 21, $t + 22 ],
	[ 1001, 95, 21, $t + 23 ],         # invalid: latitude
	[ 1001, 11, 21, 4102444800 ],      # invalid: 2100, in the future
	[ 1002, 11, 21, 4102444800 ],      # the other person's invalid one
	[ 1002, 12, 21, $t + 24 ]);
consumed('after the erasure');
is(traces_of(1001), '0 0', 'the erased person\'s messages are neither rows nor rejects');
is(erased_dropped() - $before, 9, 'erased_dropped counts exactly the 9 messages dropped');
is(psql('SELECT count(*) FROM udaconnect.location WHERE person_id = 1002'), '8',
	'the other person\'s 3 new valid messages arrived');
is(psql(q{SELECT count(*) FROM udaconnect.ingest_rejects
	WHERE person_id = 1002 AND reason LIKE 'creation_time is % s in the future%'}),
	'1', 'the other person\'s invalid message is a reject');
is(psql(q{SELECT sum(rows_ingested) || ' ' || sum(rejects) || ' ' || sum(erased_dropped) FROM udaconnect.ingest_status}),
	'13 6 9', 'ingest_status: rows, rejects and erased messages add up to what was produced');

# 3a. the erasure holds the person when the batch comes: the batch waits for
#     it, then finds the person erased and drops the messages
my $wpid = psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'udaconnect ingest'");
my $f = $node->background_psql('postgres');
$f->query_safe("BEGIN; SELECT udaconnect.forget_person(1003)");
$before = erased_dropped();
produce('erasure first', [ 1003, 10, 20, $t + 30 ], [ 1002, 13, 20, $t + 30 ], [ 1003, -91, 20, $t + 31 ]);
my $fpid = $f->query_safe('SELECT pg_backend_pid()');
ok($node->poll_query_until('postgres', "SELECT $fpid = ANY (pg_blocking_pids($wpid))"),
	'erasure first: the batch waits for the erasure');
$f->query_safe('COMMIT');
consumed('erasure first');
is(traces_of(1003), '0 0', 'erasure first: nothing of the erased person was stored');
is(erased_dropped() - $before, 2, 'erasure first: its 2 messages counted as dropped');
is(psql('SELECT count(*) FROM udaconnect.location WHERE person_id = 1002'), '9',
	'erasure first: the other person\'s message arrived');

# 3b. the batch holds the person when the erasure comes (its rejects cannot
#     be written yet): the erasure waits for it, then removes its rows and
#     its reject
my $l = $node->background_psql('postgres');
$l->query_safe('BEGIN; LOCK TABLE udaconnect.ingest_rejects IN SHARE MODE');
my $lpid = $l->query_safe('SELECT pg_backend_pid()');
produce('batch first', [ 1004, 10, 20, $t + 40 ], [ 1004, 10.1, 20, $t + 41 ], [ 1004, 10, 181, $t + 42 ]);
ok($node->poll_query_until('postgres', "SELECT $lpid = ANY (pg_blocking_pids($wpid))"),
	'batch first: the batch holds person 1004 and waits to write its reject');
$f->query_until(qr/sent/, "\\echo sent\nSELECT locations || ' ' || rejects FROM udaconnect.forget_person(1004);\n\\echo done\n");
ok($node->poll_query_until('postgres', "SELECT $wpid = ANY (pg_blocking_pids($fpid))"),
	'batch first: the erasure waits for the batch');
$l->query_safe('COMMIT');
like($f->query_until(qr/done/, ''), qr/^2 1$/m, 'batch first: the erasure removed the batch\'s 2 rows and its reject');
consumed('batch first');
is(traces_of(1004), '0 0', 'batch first: nothing of the erased person is left');
$l->quit;
$f->quit;

# 3c. a row refused by the table (a trigger: the COPY path) is a reject that
#     carries its person too
psql(q{CREATE FUNCTION public.refuse_777() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF ST_Y(NEW.coordinate) = 77.7 THEN
			RAISE EXCEPTION 'no one stands at latitude 77.7';
		END IF;
		RETURN NEW;
	END $$;
	CREATE TRIGGER refuse_777 BEFORE INSERT ON udaconnect.location
		FOR EACH ROW EXECUTE FUNCTION public.refuse_777()});
produce('insert failure', [ 1005, 77.7, 20, $t + 50 ], [ 1005, 10, 20, $t + 51 ]);
consumed('insert failure');
is(psql(q{SELECT person_id || ' ' || reason FROM udaconnect.ingest_rejects WHERE reason LIKE 'insert failed%'}),
	'1005 insert failed: no one stands at latitude 77.7 (SQLSTATE P0001)',
	'insert failure: the reject carries the person');
is(psql('SELECT locations || \' \' || rejects FROM udaconnect.forget_person(1005)'), '1 1',
	'insert failure: forget_person removes the row and the reject');
psql('DROP TRIGGER refuse_777 ON udaconnect.location');

# 4. settings
is(psql(q{SELECT current_setting('udaconnect.attendee_max_distance') || ' ' || udaconnect.attendee_max_distance()
	|| ' [' || current_setting('udaconnect.location_retention') || '] '
	|| current_setting('udaconnect.retention_naptime') || ' ' || current_setting('udaconnect.retention_batch')}),
	'10 10 [] 1min 10000', 'settings: the defaults');
is(psql(q{SET udaconnect.attendee_max_distance = 25; SELECT udaconnect.attendee_max_distance()}), '25',
	'attendee_max_distance() reads udaconnect.attendee_max_distance');
my ($rc, $out, $err) = $node->psql('postgres', q{SET udaconnect.attendee_max_distance = 0});
like($err, qr/invalid value for parameter "udaconnect.attendee_max_distance": 0\b.*greater than 0 metres/s,
	'attendee_max_distance must be > 0');
($rc, $out, $err) = $node->psql('postgres', q{ALTER SYSTEM SET udaconnect.location_retention = '-3 days'});
like($err, qr/invalid value for parameter "udaconnect.location_retention": "-3 days".*is negative/s,
	'a negative retention is refused');
($rc, $out, $err) = $node->psql('postgres', q{ALTER SYSTEM SET udaconnect.location_retention = '30 dayz'});
like($err, qr/invalid value for parameter "udaconnect.location_retention": "30 dayz".*is not an interval/s,
	'an unparsable retention is refused');
($rc, $out, $err) = $node->psql('postgres', q{ALTER SYSTEM SET udaconnect.location_retention = '0'});
like($err, qr/invalid value for parameter "udaconnect.location_retention": "0".*outside 1 hour \.\. 100 years.*not '0'/s,
	'a retention of 0 (which would remove everything) is refused, with the hint that \'\' is off');
($rc, $out, $err) = $node->psql('postgres', q{ALTER SYSTEM SET udaconnect.location_retention = '200 years'});
like($err, qr/invalid value for parameter "udaconnect.location_retention": "200 years".*outside 1 hour/s,
	'a retention past a century is refused');
($rc, $out, $err) = $node->psql('postgres', q{SET udaconnect.location_retention = '30 days'});
like($err, qr/cannot be changed now/, 'location_retention is set in the server\'s configuration');

# 5. settings of the time partitions (udaconnect.location_partition_width)
is(psql(q{SELECT current_setting('udaconnect.location_partition_width') || ' '
	|| current_setting('udaconnect.location_partitions_ahead')}), '1 day 3',
	'settings: partitions of a day, three ahead');
($rc, $out, $err) = $node->psql('postgres', q{ALTER SYSTEM SET udaconnect.location_partition_width = '1 month'});
like($err, qr/invalid value for parameter "udaconnect.location_partition_width": "1 month".*months or years, whose length varies/s,
	'a partition width in months is refused');
($rc, $out, $err) = $node->psql('postgres', q{ALTER SYSTEM SET udaconnect.location_partition_width = '10 minutes'});
like($err, qr/invalid value for parameter "udaconnect.location_partition_width": "10 minutes".*outside 1 hour \.\. 366 days/s,
	'a partition width under an hour is refused');
($rc, $out, $err) = $node->psql('postgres', q{ALTER SYSTEM SET udaconnect.location_partition_width = 'a day'});
like($err, qr/invalid value for parameter "udaconnect.location_partition_width": "a day".*is not an interval/s,
	'an unparsable partition width is refused');
my $rpid_q = "(SELECT pid FROM pg_stat_activity WHERE backend_type = 'udaconnect maintenance' "
  . "AND application_name = 'udaconnect maintenance')";
ok($node->poll_query_until('postgres', q{SELECT count(*) >= 4 FROM udaconnect.location_partitions() p
	WHERE p.to_time > now() AND NOT p.is_default}),
	'partitions: the maintenance worker made the current partition and three ahead');

# 6. retention: 350 old locations of two persons who met (one day 40 days
#    ago), 10 of another person (35 days ago), 6 old rejects, recent
#    locations who met too.  Whole partitions go; the rows of the Kafka
#    messages above (of 2020) are old too.
psql(q{
	INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
	SELECT 1010 + g % 2, ST_SetSRID(ST_MakePoint(20, 10 + (g / 2) * 1e-6), 4326),
	       date_trunc('day', now() - interval '40 days') + interval '10 hours' + g * interval '1 second'
	  FROM generate_series(0, 349) g;
	INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
	SELECT 1014, ST_SetSRID(ST_MakePoint(21, 10), 4326),
	       date_trunc('day', now() - interval '35 days') + interval '10 hours' + g * interval '1 second'
	  FROM generate_series(0, 9) g;
	INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
	SELECT 1012 + g % 2, ST_SetSRID(ST_MakePoint(30, 10 + (g / 2) * 1e-6), 4326),
	       now() - interval '1 hour' + g * interval '1 second'
	  FROM generate_series(0, 19) g;
	UPDATE udaconnect.ingest_rejects SET received_at = now() - interval '40 days';
});
# what the worker does each round, now rather than at its next round
psql('SELECT udaconnect.location_partitions_maintain()');
is(psql(q{SELECT count(*) FROM udaconnect.location_default}), '0',
	'partitions: the rows of days without a partition moved out of location_default into partitions of their day');
my $old_rejects = psql('SELECT count(*) FROM udaconnect.ingest_rejects');
my $old_locations = psql(q{SELECT count(*) FROM udaconnect.location WHERE creation_time < now() - interval '30 days'});
my $conn_old = q{SELECT count(*) FROM udaconnect.find_connections(1010,
	(now() - interval '41 days')::date, (now() - interval '39 days')::date, 5)};
my $conn_new = q{SELECT count(*) FROM udaconnect.find_connections(1012,
	(now() - interval '1 day')::date, (now() + interval '1 day')::date, 5)};
ok(psql($conn_old) > 0 && psql($conn_new) > 0, 'retention: before, both the old and the recent meetings show');

# a session holds one row of the day 35 days ago, as a long reader or an
# erasure would: dropping a partition needs location itself for a moment
# (ACCESS EXCLUSIVE), so while that transaction lasts the worker drops
# nothing, gives up after lock_timeout each round instead of holding up
# the ingest behind its lock request, and says so; the sweep of rejects
# goes on
$l = $node->background_psql('postgres');
$l->query_safe(q{BEGIN; SELECT 1 FROM udaconnect.location WHERE person_id = 1014
	ORDER BY creation_time DESC LIMIT 1 FOR UPDATE});
my $logpos = -s $node->logfile;
psql(q{ALTER SYSTEM SET udaconnect.retention_batch = 100;
	ALTER SYSTEM SET udaconnect.retention_naptime = 1;
	ALTER SYSTEM SET udaconnect.location_retention = '30 days';
	SELECT pg_reload_conf()});
ok($node->wait_for_log(qr/(LOG|WARNING):  udaconnect retention: udaconnect\.location is in use; partition udaconnect\.location_p\d{8} and the later expired ones are left for the next round/, $logpos),
	'retention: while a transaction holds location, the worker leaves the partitions for the next round and says so');
ok($node->log_contains(qr/WARNING:  udaconnect retention: udaconnect\.location is in use; partition udaconnect\.location_p20200913 .*\n.*DETAIL:  The partition ended at 2020-09-14 00:00:00\+00, more than a partition width before the cutoff/, $logpos),
	'retention: a partition more than a width overdue (of 2020) is a WARNING that says its rows are kept longer than the retention says');
ok($node->wait_for_log(qr/udaconnect retention: removed 0 locations and $old_rejects ingest rejects older than 30 days in \d+ transactions/, $logpos),
	"retention: the worker (backend_type and application_name \"udaconnect maintenance\") removes the $old_rejects old rejects meanwhile, one log line");
is(psql(q{SELECT count(*) FROM udaconnect.location WHERE creation_time < now() - interval '30 days'}), $old_locations,
	'retention: no partition was dropped while location was held');

# the ingest goes on meanwhile
produce('during the sweep', map { [ 1002, 14, 20, time() - 60 + $_ ] } 0 .. 9);
consumed('during the sweep');
is(psql(q{SELECT count(*) FROM udaconnect.location WHERE person_id = 1002 AND creation_time > now() - interval '1 day'}),
	'10', 'during the sweep: the new messages arrived');
$l->query_safe('COMMIT');
$l->quit;

$logpos = -s $node->logfile;
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM udaconnect.location WHERE creation_time < now() - interval '30 days'}),
	'retention: once released, the partitions go at the next round: every old location is gone');
ok($node->wait_for_log(qr/udaconnect retention: removed $old_locations locations and 0 ingest rejects older than 30 days in \d+ transactions.*\n.*DETAIL:  $old_locations of the locations went with \d+ dropped partitions/, $logpos),
	"retention: one log line: the $old_locations old locations went with their partitions");
is(psql(q{SELECT count(*) FROM udaconnect.location_partitions() p WHERE p.to_time <= now() - interval '30 days'}), '0',
	'retention: no partition that ended before the cutoff is left');
is(psql('SELECT count(*) FROM udaconnect.ingest_rejects'), '0', 'retention: the old rejects are gone');
is(psql(q{SELECT count(*) FROM udaconnect.location WHERE person_id IN (1012, 1013)}), '20',
	'retention: recent locations stay');
is(psql($conn_old) . ' ' . (psql($conn_new) > 0 ? 'some' : 'none'), '0 some',
	'retention: find_connections no longer shows old meetings, still shows recent ones');
like(psql("SELECT query FROM pg_stat_activity WHERE pid = $rpid_q"),
	qr/^(sleeping: last sweep removed \d+ locations, \d+ rejects|udaconnect retention: (sweeping|dropping partitions)|udaconnect partitions: maintaining)$/,
	'retention: pg_stat_activity shows the worker\'s state');

# a failing sweep is logged and retried; the worker stays up.  The row 50
# days old goes to location_default, then to a partition of its own
my $rpid = psql($rpid_q);
$logpos = -s $node->logfile;
psql(q{ALTER FUNCTION udaconnect.retention_sweep(timestamptz, integer) RENAME TO retention_sweep_away;
	INSERT INTO udaconnect.location (person_id, coordinate, creation_time)
	VALUES (1010, ST_SetSRID(ST_MakePoint(20, 10), 4326), now() - interval '50 days')});
ok($node->wait_for_log(qr/WARNING:  udaconnect retention: sweep failed: function udaconnect\.retention_sweep\(timestamp with time zone, integer\) does not exist \(SQLSTATE 42883\)/, $logpos),
	'retention: a failing sweep is logged with its error');
like(psql("SELECT query FROM pg_stat_activity WHERE pid = $rpid"), qr/^error: function udaconnect\.retention_sweep.* does not exist; retried in 1 s$/,
	'retention: pg_stat_activity shows the error');
psql(q{ALTER FUNCTION udaconnect.retention_sweep_away(timestamptz, integer) RENAME TO retention_sweep});
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM udaconnect.location WHERE creation_time < now() - interval '30 days'}),
	'retention: the sweep is retried and succeeds');
is(psql($rpid_q), $rpid, 'retention: the same worker, it did not die');

$node->stop('fast');
done_testing();
