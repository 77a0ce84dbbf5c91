# A Location without creation_time takes the Kafka message timestamp, and
# that conversion is overflow-checked: 18448341820735551 ms (whose ms * 1000
# wraps around int64 to a date in 2020) and any other time outside
# 0001-01-01 .. 9999-12-31, or too far in the future, is rejected with a
# reason naming the Kafka timestamp, while the good messages around it are
# ingested with the right time.  The messages are produced with python3-kafka
# (udaconnect-produce sets no arbitrary timestamps) and a protobuf encoder
# written here, independent of the worker's decoder.
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
my $node = PostgreSQL::Test::Cluster->new('kafka_timestamp');
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

# offset: [person, lat, lon, creation_time (seconds, nanos) or undef, Kafka timestamp ms or undef]
my $script = PostgreSQL::Test::Utils::tempdir('produce') . '/produce.py';
open my $fh, '>', $script or die "cannot write $script: $!";
print $fh <<'PY';
import struct, sys, time
from kafka import KafkaProducer

def varint(n):
    n &= (1 << 64) - 1          # negative int64: ten bytes, as protobuf does
    out = b''
    while True:
        b, n = n & 0x7f, n >> 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def location(person, lat, lon, ts):
    m = b'\x08' + varint(person) + b'\x11' + struct.pack('<d', lat) + b'\x19' + struct.pack('<d', lon)
    if ts is not None:
        t = b'\x08' + varint(ts[0]) + (b'\x10' + varint(ts[1]) if ts[1] else b'')
        m += b'\x22' + varint(len(t)) + t
    return m

now_ms = int(time.time() * 1000)
messages = [
    (1001, 10.5, 20.25, (1600000000, 0), None),          # 0 good, creation_time
    (1002, 11.5, 21.25, None, 18448341820735551),        # 1 ms * 1000 wraps to 2020
    (1002, -33.5, 151.25, None, 1600000001000),          # 2 good, Kafka timestamp
    (1003, 12.5, 22.25, None, 253402300800000),          # 3 year 10000
    (1003, 13.5, 23.25, None, -62135596800001),          # 4 before year 1
    (1004, 14.5, 24.25, None, now_ms + 86400000),        # 5 a day in the future
    (1004, 15.5, 25.25, (253402300800, 0), None),        # 6 creation_time in year 10000
    (1003, 0.5, -0.25, (1600000002, 123456789), None),   # 7 good, creation_time with nanos
]
p = KafkaProducer(bootstrap_servers=sys.argv[1])
for i, (person, lat, lon, ts, kafka_ms) in enumerate(messages):
    md = p.send('locations', value=location(person, lat, lon, ts), key=str(person).encode(),
                partition=0, timestamp_ms=kafka_ms).get(timeout=60)
    assert md.offset == i, (i, md.offset)
p.flush()
PY
close $fh;
my ($out, $err) = ('', '');
ok(IPC::Run::run([ 'python3', $script, $kafka->{brokers} ], '>', \$out, '2>', \$err),
	'8 messages produced with chosen Kafka timestamps')
  or diag($err);

ok(IngestTest::wait_ingested($node, 'locations', 8), 'all 8 messages consumed');

is(psql(q{SELECT string_agg(person_id || ' ' || ST_Y(coordinate) || ' ' || ST_X(coordinate) || ' '
	|| to_char(creation_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), ', ' ORDER BY creation_time)
	FROM udaconnect.location}),
	'1001 10.5 20.25 2020-09-13 12:26:40.000000, 1002 -33.5 151.25 2020-09-13 12:26:41.000000, '
	  . '1003 0.5 -0.25 2020-09-13 12:26:42.123456',
	'the good messages are rows with their times (creation_time, or the Kafka timestamp), nothing else');

my $kts = 'Kafka message timestamp (creation_time is absent)';
my %reason = map { split /\|/, $_, 2 } split /\n/,
  psql(q{SELECT "offset" || '|' || reason FROM udaconnect.ingest_rejects ORDER BY "offset"});
is(join(',', sort { $a <=> $b } keys %reason), '1,3,4,5,6', 'exactly the bad messages are in ingest_rejects');
is($reason{1}, "$kts (Unix milliseconds) must lie between 0001-01-01 and 9999-12-31 UTC, got 18448341820735551",
	'18448341820735551 ms (ms * 1000 overflows int64) is rejected, naming the Kafka timestamp');
is($reason{3}, "$kts (Unix milliseconds) must lie between 0001-01-01 and 9999-12-31 UTC, got 253402300800000",
	'a Kafka timestamp in year 10000 is rejected');
is($reason{4}, "$kts (Unix milliseconds) must lie between 0001-01-01 and 9999-12-31 UTC, got -62135596800001",
	'a Kafka timestamp before year 1 is rejected');
like($reason{5}, qr/^\Q$kts\E is \d+ s in the future \(at most 300 s allowed\)$/,
	'a Kafka timestamp a day ahead is rejected as in the future');
is($reason{6}, 'creation_time.seconds must lie between 0001-01-01 and 9999-12-31 UTC, got 253402300800',
	'a creation_time in year 10000 is rejected');
is(psql(q{SELECT count(*) FROM udaconnect.ingest_rejects
	WHERE payload IS NOT NULL AND key IS NOT NULL AND topic = 'locations' AND "partition" = 0}),
	'5', 'each reject keeps its topic, partition, payload and key');

$node->stop('fast');
done_testing();
