# Helpers for the Kafka ingest TAP tests (test/t/*_ingest_*.pl): a private
# development broker, the deterministic producer, and exact checks of what
# landed in udaconnect.location and udaconnect.ingest_rejects.
package IngestTest;

use strict;
use warnings;

use File::Basename;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $TOP = $ENV{TOP} || dirname(dirname(dirname(Cwd::abs_path(__FILE__))));
our $DEVKAFKA = "$TOP/scripts/devkafka/udaconnect-devkafka";
our $PRODUCE  = "$TOP/scripts/devkafka/udaconnect-produce";
my @brokers_started;

# Start a private development broker; returns { pid, brokers, dir }.
sub start_devkafka
{
	my (%opt) = @_;
	my $partitions = $opt{partitions} || 4;
	my @topics = @{ $opt{topics} || ['locations'] };
	my $dir = PostgreSQL::Test::Utils::tempdir('devkafka');
	my @cmd = ($DEVKAFKA, '-q', '-p', $partitions, '-f', "$dir/bootstrap", '-P', "$dir/pid",
		map { ('-t', $_) } @topics);
	my $h = IPC::Run::start(\@cmd, '<', \undef, '>', "$dir/out.log", '2>', "$dir/err.log");
	for (1 .. 100)
	{
		last if -s "$dir/bootstrap" && -s "$dir/pid";
		usleep(100_000);
	}
	die "devkafka did not start: " . slurp_file("$dir/err.log") unless -s "$dir/bootstrap";
	my $brokers = slurp_file("$dir/bootstrap");
	chomp $brokers;
	my $pid = slurp_file("$dir/pid");
	chomp $pid;
	my $k = { pid => $pid, brokers => $brokers, dir => $dir, handle => $h };
	push @brokers_started, $k;
	return $k;
}

sub stop_devkafka
{
	my ($k) = @_;
	return unless $k->{handle};
	kill 'TERM', $k->{pid};
	eval { $k->{handle}->finish; };
	$k->{handle} = undef;
}

END
{
	stop_devkafka($_) for @brokers_started;
}

# A test stopped by a signal (27-upgrade's guard against a hung test sends
# SIGTERM) dies instead, so that the END blocks run: the brokers above and
# PostgreSQL::Test::Cluster's nodes are stopped, not left behind.
$SIG{TERM} = $SIG{INT} = sub { die "stopped by SIG$_[0]\n"; };

# Run the producer in the foreground; dies unless every message was delivered.
sub produce
{
	my ($k, %o) = @_;
	my @cmd = producer_cmd($k, %o);
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '>', \$out, '2>', \$err)
	  or die "producer failed: $err";
	return;
}

# Start the producer in the background; returns the IPC::Run handle.
sub produce_bg
{
	my ($k, %o) = @_;
	my @cmd = producer_cmd($k, %o);
	return IPC::Run::start(\@cmd, '>', "$o{expect}.out", '2>', "$o{expect}.err");
}

sub producer_cmd
{
	my ($k, %o) = @_;
	my @cmd = ($PRODUCE, '-q', '-b', $k->{brokers}, '-t', $o{topic} || 'locations',
		'-n', $o{count}, '-s', $o{start} || 0, '-p', $o{persons} || '1001:1100',
		'-B', $o{bad} // 0, '-o', $o{expect});
	push @cmd, '-r', $o{rate} if $o{rate};
	push @cmd, '-T', $o{base} if $o{base};    # creation_time of message 0
	return @cmd;
}

sub count_lines
{
	my ($file) = @_;
	my $n = 0;
	open my $fh, '<', $file or die "cannot read $file: $!";
	$n++ while <$fh>;
	close $fh;
	return $n;
}

my $PERSONS_SQL = q{INSERT INTO udaconnect.person (id, first_name, last_name, company_name)
	SELECT g, 'First' || g, 'Last' || g, 'Company' FROM generate_series(1001, 1100) g};

# CREATE EXTENSION and the persons 1001..1100 the producers use, in one
# transaction: the workers must not see the extension without the persons.
#
# With UDACONNECT_INGEST_UPDATED_FROM=VERSION (test/suites/27-upgrade.sh sets
# 1.0) the database is made instead as an installed VERSION holding data,
# updated to the current version: test/extension/updated-db.sh installs
# VERSION from its shipped script, loads the sample and a synthetic day
# (persons below 1001, locations in 2020: the checks of persons 1001..1100
# do not see them), adds the persons 1001..1100 and runs ALTER EXTENSION
# pg_udaconnect UPDATE.  The workers wait while the extension is older than
# 1.2 (no erased_person), so from 1.0 or 1.1 they start on the updated
# database with the persons there; the tests produce only afterwards anyway.
sub create_extension_with_persons
{
	my ($node) = @_;
	if (my $from = $ENV{UDACONNECT_INGEST_UPDATED_FROM})
	{
		create_updated_database($node, $from);
		return;
	}
	$node->safe_psql('postgres', "BEGIN; CREATE EXTENSION pg_udaconnect CASCADE; $PERSONS_SQL; COMMIT;");
	return;
}

# the control file's default_version: what ALTER EXTENSION ... UPDATE reaches
sub current_version
{
	my ($v) = slurp_file("$TOP/pg_udaconnect/pg_udaconnect.control") =~ /^default_version = '([^']+)'/m;
	return $v;
}

sub create_updated_database
{
	my ($node, $from) = @_;
	my $current = current_version();
	my ($out, $err) = ('', '');
	my $ok;
	{
		local $ENV{PGHOST} = $node->host;
		local $ENV{PGPORT} = $node->port;
		$ok = IPC::Run::run([ "$TOP/test/extension/updated-db.sh", '-f', $from, '-c', $PERSONS_SQL, 'postgres' ],
			'<', \undef, '>', \$out, '2>', \$err);
	}
	chomp $out;
	ok($ok, "the database: $from installed from its shipped script, the sample and a synthetic day loaded, "
		  . "updated with ALTER EXTENSION pg_udaconnect UPDATE")
	  or BAIL_OUT("test/extension/updated-db.sh failed: $err");
	note $out;
	is($node->safe_psql('postgres', q{
		SELECT extversion || ' ' || (SELECT count(*) FROM udaconnect.person WHERE id BETWEEN 1001 AND 1100)
		  || ' ' || (SELECT count(*) > 4000 FROM udaconnect.location) FROM pg_extension WHERE extname = 'pg_udaconnect'}),
		"$current 100 true", "the updated database is at $current, holds the sample and the synthetic day and the persons 1001..1100");
	return;
}

# Wait until the stored offsets of a topic add up to $total messages.
sub wait_ingested
{
	my ($node, $topic, $total) = @_;
	return $node->poll_query_until('postgres',
		"SELECT coalesce(sum(next_offset), 0) = $total FROM udaconnect.ingest_offset WHERE topic = '$topic'");
}

# Compare the database with the producer's expectation files:
#   every valid message exactly once in location, nothing else there
#   (outside the person range given), every bad one exactly once in rejects.
# %files: topic => [expect files].  Returns nothing; emits ok()s.
sub check_exact
{
	my ($node, $label, %files) = @_;
	my $sql = "CREATE TEMP TABLE exp (topic text, line text);\n";
	for my $topic (sort keys %files)
	{
		for my $f (@{ $files{$topic} })
		{
			$sql .= "CREATE TEMP TABLE exp_raw (line text); COPY exp_raw FROM '$f';\n"
			  . "INSERT INTO exp SELECT '$topic', line FROM exp_raw; DROP TABLE exp_raw;\n";
		}
	}
	$sql .= <<'SQL';
CREATE TEMP TABLE ev AS
  SELECT topic, split_part(line, ' ', 2)::int AS part, split_part(line, ' ', 3)::bigint AS off,
         split_part(line, ' ', 4)::int AS person_id,
         'epoch'::timestamptz + split_part(line, ' ', 5)::bigint * interval '1 microsecond' AS creation_time,
         split_part(line, ' ', 6)::float8 AS lat, split_part(line, ' ', 7)::float8 AS lon
    FROM exp WHERE line LIKE 'V %';
CREATE TEMP TABLE er AS
  SELECT topic, split_part(line, ' ', 2)::int AS part, split_part(line, ' ', 3)::bigint AS off,
         split_part(line, ' ', 4) AS kind
    FROM exp WHERE line LIKE 'R %';
CREATE TEMP TABLE got AS
  SELECT person_id, creation_time, ST_Y(coordinate) AS lat, ST_X(coordinate) AS lon
    FROM udaconnect.location WHERE person_id BETWEEN 1001 AND 1100;
SELECT (SELECT count(*) FROM ev) || ' ' ||
       (SELECT count(*) FROM got) || ' ' ||
       (SELECT count(*) FROM (SELECT DISTINCT * FROM got) d) || ' ' ||
       (SELECT count(*) FROM (SELECT person_id, creation_time, lat, lon FROM ev EXCEPT ALL SELECT * FROM got) m) || ' ' ||
       (SELECT count(*) FROM (SELECT * FROM got EXCEPT ALL SELECT person_id, creation_time, lat, lon FROM ev) x) || ' ' ||
       (SELECT count(*) FROM er) || ' ' ||
       (SELECT count(*) FROM udaconnect.ingest_rejects) || ' ' ||
       (SELECT count(*) FROM (SELECT topic, part, off FROM er
                               EXCEPT ALL SELECT topic, "partition", "offset" FROM udaconnect.ingest_rejects) m) || ' ' ||
       (SELECT count(*) FROM (SELECT topic, "partition", "offset" FROM udaconnect.ingest_rejects
                               EXCEPT ALL SELECT topic, part, off FROM er) x) || ' ' ||
       (SELECT count(*) FROM er JOIN udaconnect.ingest_rejects r
                  ON r.topic = er.topic AND r."partition" = er.part AND r."offset" = er.off
                WHERE NOT CASE er.kind
                    WHEN 'undecodable' THEN r.reason LIKE 'undecodable payload%'
                    WHEN 'truncated' THEN r.reason LIKE 'undecodable payload%'
                    WHEN 'no_person' THEN r.reason = 'person_id must be a positive integer, got 0'
                    WHEN 'negative_person' THEN r.reason LIKE 'person_id must be a positive integer, got -%'
                    WHEN 'unknown_person' THEN r.reason LIKE 'person % does not exist'
                    WHEN 'latitude' THEN r.reason ~ '^latitude must be a finite number of degrees in \[-90, 90\], got -?[0-9.]+$'
                    WHEN 'longitude' THEN r.reason ~ '^longitude must be a finite number of degrees in \[-180, 180\], got -?[0-9.]+$'
                    WHEN 'nan' THEN r.reason = 'latitude must be a finite number of degrees in [-90, 90], got nan'
                    WHEN 'infinite' THEN r.reason ~ '^longitude must be a finite number of degrees in \[-180, 180\], got -?inf$'
                    WHEN 'future' THEN r.reason ~ '^creation_time is [0-9]+ s in the future \(at most 300 s allowed\)$'
                    WHEN 'nanos' THEN r.reason = 'creation_time.nanos must be in [0, 999999999], got 1500000000'
                    WHEN 'empty' THEN r.reason LIKE 'empty message%'
                    ELSE false END) || ' ' ||
       (SELECT count(DISTINCT kind) FROM er);
SQL
	my $res = $node->safe_psql('postgres', $sql);
	my ($nexp, $ngot, $ndistinct, $missing, $extra, $nrej_exp, $nrej_got, $rej_missing, $rej_extra, $bad_reason, $kinds) =
	  split / /, $res;
	note "$label: expected $nexp rows, got $ngot ($ndistinct distinct); rejects expected $nrej_exp, got $nrej_got; $kinds kinds of bad messages";
	ok($nexp > 0 && $ngot == $nexp, "$label: every valid message became one row ($ngot of $nexp)");
	is($ndistinct, $ngot, "$label: no duplicate rows");
	is("$missing/$extra", "0/0", "$label: rows are exactly the valid messages (missing/extra)");
	is($nrej_got, $nrej_exp, "$label: one reject per bad message");
	is("$rej_missing/$rej_extra", "0/0", "$label: rejects are exactly the bad messages (missing/extra by partition and offset)");
	is($bad_reason, 0, "$label: every reject names the right reason");
	return;
}

# Every btree index of every leaf of udaconnect.location (the table itself
# when it is not partitioned) checked by amcheck with heapallindexed: valid,
# an entry for each heap row.  Returns "checked/expected", expected being
# three per leaf (the key and the two finder indexes).
sub check_indexes
{
	my ($node) = @_;
	$node->safe_psql('postgres', 'CREATE EXTENSION IF NOT EXISTS amcheck');
	return $node->safe_psql('postgres', q{
	WITH leaf AS (SELECT c.oid FROM pg_class c
	               WHERE c.relkind = 'r' AND (c.oid = 'udaconnect.location'::regclass
	                  OR c.oid IN (SELECT relid FROM pg_partition_tree('udaconnect.location'))))
	SELECT count(*) || '/' || 3 * (SELECT count(*) FROM leaf)
	  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
	  JOIN pg_am am ON am.oid = ic.relam AND am.amname = 'btree',
	       LATERAL (SELECT bt_index_check(i.indexrelid, true)) c
	 WHERE i.indrelid IN (SELECT oid FROM leaf)});
}

# Each valid message of the expectation files is one row in the partition
# whose bounds cover its creation_time, or in location_default when none
# does (udaconnect.location_partitions()); nothing else is anywhere.
# Emits one ok().
sub check_partitions
{
	my ($node, $label, @files) = @_;
	my $sql = "CREATE TEMP TABLE exp_raw (line text);\n";
	$sql .= "COPY exp_raw FROM '$_';\n" for @files;
	$sql .= <<'SQL';
CREATE TEMP TABLE bounds AS SELECT * FROM udaconnect.location_partitions();
CREATE TEMP TABLE want AS
  SELECT v.person_id, v.creation_time, v.lat, v.lon,
         coalesce((SELECT b.partition FROM bounds b
                    WHERE NOT b.is_default AND v.creation_time >= b.from_time AND v.creation_time < b.to_time),
                  (SELECT b.partition FROM bounds b WHERE b.is_default)) AS part
    FROM (SELECT split_part(line, ' ', 4)::int AS person_id,
                 'epoch'::timestamptz + split_part(line, ' ', 5)::bigint * interval '1 microsecond' AS creation_time,
                 split_part(line, ' ', 6)::float8 AS lat, split_part(line, ' ', 7)::float8 AS lon
            FROM exp_raw WHERE line LIKE 'V %') v;
CREATE TEMP TABLE got AS
  SELECT person_id, creation_time, ST_Y(coordinate) AS lat, ST_X(coordinate) AS lon, tableoid::regclass AS part
    FROM udaconnect.location WHERE person_id BETWEEN 1001 AND 1100;
SELECT (SELECT count(*) FROM want) || ' ' || (SELECT count(DISTINCT part) FROM want) || ' ' ||
       (SELECT count(*) FROM (SELECT * FROM want EXCEPT ALL SELECT * FROM got) m) || ' ' ||
       (SELECT count(*) FROM (SELECT * FROM got EXCEPT ALL SELECT * FROM want) x);
SQL
	my ($n, $parts, $missing, $extra) = split / /, $node->safe_psql('postgres', $sql);
	ok($n > 0 && $missing == 0 && $extra == 0,
		"$label: each of the $n rows is once in its partition, $parts partitions (missing/extra: $missing/$extra)");
	return;
}

1;
