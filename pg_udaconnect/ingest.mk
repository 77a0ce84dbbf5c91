# Kafka ingest (src/ingest*.c): protobuf-c code for the wire format and the
# librdkafka / protobuf-c libraries.  Included by the Makefile before PGXS.
#
# protoc-c generates gen/udaconnect/v1/location.pb-c.[ch] from
# ../proto/udaconnect/v1/location.proto, and gen/google/protobuf/
# timestamp.pb-c.[ch] from the timestamp.proto Debian ships in /usr/include
# (libprotobuf-dev).  Generated files are never committed.
PROTOC_C ?= protoc-c
PROTO_INCLUDE ?= /usr/include
UDC_PROTO_DIR = ../proto
UDC_PROTOS = udaconnect/v1/location.proto google/protobuf/timestamp.proto
UDC_GEN_C = $(patsubst %.proto,gen/%.pb-c.c,$(UDC_PROTOS))
UDC_GEN_H = $(patsubst %.proto,gen/%.pb-c.h,$(UDC_PROTOS))

GEN_SRCS += $(UDC_GEN_C)
PG_CPPFLAGS += -Igen
SHLIB_LINK += -lrdkafka -lprotobuf-c

# this file is read before PGXS: keep PGXS's default target
.DEFAULT_GOAL := all

# one protoc-c run makes all four files (grouped target, GNU make >= 4.3)
$(UDC_GEN_C) $(UDC_GEN_H) &: $(UDC_PROTO_DIR)/udaconnect/v1/location.proto
	@mkdir -p gen
	$(PROTOC_C) --c_out=gen -I$(UDC_PROTO_DIR) -I$(PROTO_INCLUDE) $(UDC_PROTOS)
	@touch $(UDC_GEN_C) $(UDC_GEN_H)

# everything that includes a generated header waits for protoc-c
UDC_INGEST_SRCS = $(wildcard src/ingest*.c)
$(UDC_INGEST_SRCS:.c=.o) $(UDC_INGEST_SRCS:.c=.bc) $(UDC_GEN_C:.c=.o) $(UDC_GEN_C:.c=.bc): $(UDC_GEN_H)

# (the Makefile sets EXTRA_CLEAN after including this file)
clean: udc-clean-gen
.PHONY: udc-clean-gen
udc-clean-gen:
	rm -rf gen
