#!/usr/bin/env bash
# gRPC gateway (udaconnect-grpcd): clients generated at test time from proto/
# by Debian's python3-grpc-tools, run with python3-grpcio (test/grpc/).
set -euo pipefail
PY=/usr/bin/python3
GEN=$SUITE_DIR
rm -rf "$GEN/gen" "$GEN/gen_health" "$GEN/gen_orig"
mkdir -p "$GEN/gen" "$GEN/gen_health" "$GEN/gen_orig"
# udaconnect.v1 (imports google/protobuf/timestamp.proto from libprotobuf-dev)
$PY -m grpc_tools.protoc -I"$TOP/proto" -I/usr/include --python_out="$GEN/gen" --grpc_python_out="$GEN/gen" \
  udaconnect/v1/location.proto udaconnect/v1/location_service.proto
# grpc.health.v1, generated as a top-level module (a package named "grpc"
# would shadow grpcio itself)
$PY -m grpc_tools.protoc -I"$TOP/proto/grpc/health/v1" --python_out="$GEN/gen_health" \
  --grpc_python_out="$GEN/gen_health" health.proto
# the original UdaConnect proto (no package)
$PY -m grpc_tools.protoc -I"$TOP/proto/original" -I/usr/include --python_out="$GEN/gen_orig" \
  --grpc_python_out="$GEN/gen_orig" location.proto
rc=0
$PY "$TOP/test/grpc/test_grpc.py" || rc=1
# ListEncounters and WatchEncounters
$PY "$TOP/test/grpc/test_encounters.py" || rc=1
exit $rc
