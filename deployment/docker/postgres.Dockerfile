# syntax=docker/dockerfile:1
# UdaConnect database image: PostgreSQL 15 + PostGIS 3 + pg_udaconnect (with
# its Kafka ingest workers), all from Debian 12 (bookworm) packages.
#
# Build from the top of the source tree (the build context is the repo):
#   docker build -f deployment/docker/postgres.Dockerfile -t udaconnect/postgres:1.0.0 .
#
# On first start the entrypoint initialises $PGDATA, creates the database
# geoconnections, the extension and the gateway roles (passwords from the
# Secret created by scripts/deploy.sh), then runs postgres as uid 999.
ARG DEBIAN_IMAGE=debian:12.11-slim

# ---------------------------------------------------------------------------
# build: compile and stage the extension
# ---------------------------------------------------------------------------
FROM ${DEBIAN_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential pkg-config ca-certificates \
        postgresql-server-dev-15 \
        librdkafka-dev libprotobuf-c-dev protobuf-c-compiler libprotobuf-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pg_udaconnect/ pg_udaconnect/
COPY sql/ sql/
COPY proto/ proto/
RUN make -C pg_udaconnect clean PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config \
 && make -C pg_udaconnect PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config \
 && make -C pg_udaconnect install DESTDIR=/out PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config

# ---------------------------------------------------------------------------
# runtime
# ---------------------------------------------------------------------------
FROM ${DEBIAN_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
# A fixed uid/gid for postgres (999, as in the common PostgreSQL images) so the
# pod's securityContext can name it; created before the packages so that
# postgresql-common adopts it.
RUN groupadd -r -g 999 postgres \
 && useradd -r -u 999 -g postgres -d /var/lib/postgresql -s /bin/bash postgres \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql-common \
 && sed -ri 's/^#?\s*create_main_cluster\s*=.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf \
 && apt-get install -y --no-install-recommends \
        postgresql-15 postgresql-15-postgis-3 librdkafka1 libprotobuf-c1 tini \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
 && chmod 2775 /var/run/postgresql
COPY --from=build /out/usr/ /usr/
COPY deployment/docker/postgres/entrypoint.sh /usr/local/bin/udaconnect-postgres-entrypoint
COPY deployment/docker/postgres/init.sql /usr/share/udaconnect/init.sql
COPY deployment/docker/postgres/postgresql.conf /usr/share/udaconnect/postgresql.conf
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
