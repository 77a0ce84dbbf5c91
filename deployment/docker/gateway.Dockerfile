# syntax=docker/dockerfile:1
# UdaConnect gateways image: udaconnect-grpcd (gRPC -> Kafka, port 30005) and
# udaconnect-httpd (REST API + web app, port 30001), built from this tree on
# Debian 12 (bookworm) packages.  One image, two Deployments: each sets its
# command (deployment/grpcd.yaml, deployment/httpd.yaml).
#
# Build from the top of the source tree (the build context is the repo):
#   docker build -f deployment/docker/gateway.Dockerfile -t udaconnect/gateway:1.0.0 .
ARG DEBIAN_IMAGE=debian:12.11-slim

# ---------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------
FROM ${DEBIAN_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential pkg-config ca-certificates \
        libgrpc-dev libprotobuf-c-dev protobuf-c-compiler libprotobuf-dev protobuf-compiler \
        librdkafka-dev libmicrohttpd-dev libpq-dev libjansson-dev libjwt-dev libsystemd-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY gateway/ gateway/
COPY proto/ proto/
# the location rule grpcd shares with the extension (plain C, no PostgreSQL headers)
COPY pg_udaconnect/core/ pg_udaconnect/core/
RUN make -C gateway clean && make -C gateway

# ---------------------------------------------------------------------------
# runtime: the shared libraries the two daemons link, nothing else
# ---------------------------------------------------------------------------
FROM ${DEBIAN_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        libgrpc29 libprotobuf-c1 librdkafka1 libmicrohttpd12 libpq5 libjansson4 libjwt0 libsystemd0 \
        ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd -g 10001 udaconnect \
 && useradd -u 10001 -g udaconnect -M -d /nonexistent -s /usr/sbin/nologin udaconnect
# The tree's layout is kept under /opt/udaconnect so that relative defaults
# (e.g. the web app in gateway/web) resolve the same way as in a checkout.
WORKDIR /opt/udaconnect
COPY --from=build /src/gateway/grpcd/udaconnect-grpcd /opt/udaconnect/gateway/grpcd/udaconnect-grpcd
COPY --from=build /src/gateway/httpd/udaconnect-httpd /opt/udaconnect/gateway/httpd/udaconnect-httpd
# signs tokens and makes JWT keys (deployment scripts run it in the pod)
COPY --from=build /src/gateway/token/udaconnect-token /opt/udaconnect/gateway/token/udaconnect-token
# udaconnect-httpd serves <binary dir>/openapi.json and <binary dir>/../web
COPY gateway/httpd/openapi.json /opt/udaconnect/gateway/httpd/openapi.json
COPY gateway/web/ /opt/udaconnect/gateway/web/
ENV PATH=/opt/udaconnect/gateway/grpcd:/opt/udaconnect/gateway/httpd:/opt/udaconnect/gateway/token:$PATH \
    UDACONNECT_GRPC_PORT=30005 \
    UDACONNECT_HTTP_PORT=30001
USER 10001:10001
EXPOSE 30001 30005
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["/opt/udaconnect/gateway/httpd/udaconnect-httpd"]
