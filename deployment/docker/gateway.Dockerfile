# syntax=docker/dockerfile:1
# UdaConnect gateways image: udaconnect-grpcd (gRPC -> Kafka, port 30005) and
# udaconnect-httpd (REST API + web app, port 30001) from the Debian package
# udaconnect-gateways that `make deb` builds (docs/packages.md): one build
# path for hosts and images, nothing compiled here.  One image, two
# Deployments: each sets its command (deployment/grpcd.yaml, httpd.yaml).
#
# Build from the top of the source tree (the build context is the repo):
#   make deb
#   docker build -f deployment/docker/gateway.Dockerfile -t udaconnect/gateway:1.0.0 .
# (scripts/deploy.sh --build does both.)
ARG DEBIAN_IMAGE=debian:12.11-slim

FROM ${DEBIAN_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
COPY build/deb/udaconnect-gateways_*.deb /tmp/debs/
# The user first, with the fixed uid the pods' securityContext names: the
# package's postinst keeps an existing udaconnect.  apt resolves the
# package's own dependencies (the shared libraries its daemons link).
RUN groupadd -g 10001 udaconnect \
 && useradd -u 10001 -g udaconnect -M -d /nonexistent -s /usr/sbin/nologin udaconnect \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
        /tmp/debs/udaconnect-gateways_*.deb ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* /tmp/debs
# /usr/sbin/udaconnect-httpd serves /usr/share/udaconnect/web and openapi.json;
# udaconnect-token (deployment scripts run it in the pod) is in /usr/bin
ENV UDACONNECT_GRPC_PORT=30005 \
    UDACONNECT_HTTP_PORT=30001
USER 10001:10001
EXPOSE 30001 30005
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["/usr/sbin/udaconnect-httpd"]
