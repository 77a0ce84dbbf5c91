# syntax=docker/dockerfile:1
# UdaConnect database image: PostgreSQL 15 + PostGIS 3 + pg_udaconnect (with
# its Kafka ingest workers), all from Debian 12 (bookworm) packages, the
# extension from postgresql-15-udaconnect as `make deb` builds it
# (docs/packages.md): one build path for hosts and images.
#
# Build from the top of the source tree (the build context is the repo):
#   make deb
#   docker build -f deployment/docker/postgres.Dockerfile -t udaconnect/postgres:1.0.0 .
#
# On first start the entrypoint initialises $PGDATA, creates the database
# geoconnections, the extension, the gateway roles and the hot standby's
# replication role (passwords from the Secret created by scripts/deploy.sh),
# then runs postgres as uid 999.
ARG DEBIAN_IMAGE=debian:12.11-slim

FROM ${DEBIAN_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
COPY build/deb/postgresql-15-udaconnect_*.deb /tmp/debs/
# A fixed uid/gid for postgres (999, as in the common PostgreSQL images) so the
# pod's securityContext can name it; created before the packages so that
# postgresql-common adopts it.  The extension's package brings PostgreSQL 15,
# PostGIS 3 and the ingest's libraries (librdkafka, protobuf-c) as its
# dependencies.
RUN groupadd -r -g 999 postgres \
 && useradd -r -u 999 -g postgres -d /var/lib/postgresql -s /bin/bash postgres \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql-common \
 && sed -ri 's/^#?\s*create_main_cluster\s*=.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf \
 && apt-get install -y --no-install-recommends \
        /tmp/debs/postgresql-15-udaconnect_*.deb tini \
 && rm -rf /var/lib/apt/lists/* /tmp/debs \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
 && chmod 2775 /var/run/postgresql
COPY deployment/docker/postgres/entrypoint.sh /usr/local/bin/udaconnect-postgres-entrypoint
COPY deployment/docker/postgres/init.sql /usr/share/udaconnect/init.sql
COPY deployment/docker/postgres/postgresql.conf /usr/share/udaconnect/postgresql.conf
COPY deployment/docker/postgres/pg_hba.conf /usr/share/udaconnect/pg_hba.conf
RUN chmod 0755 /usr/local/bin/udaconnect-postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data/pgdata \
    PGPORT=5432 \
    PGHOST=/var/run/postgresql
USER 999:999
EXPOSE 5432
# SIGINT = PostgreSQL's "fast" shutdown
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/udaconnect-postgres-entrypoint"]
