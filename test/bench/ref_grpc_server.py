#!/usr/bin/python3
"""Reference gRPC ingest server for test/bench/30-grpc.sh, built the way the
original UdaConnect location service was: a Python grpcio server
(ThreadPoolExecutor) whose handler produces each location to Kafka with
kafka-python (Debian python3-kafka) and flushes the producer on every call.

Same services and wire format as udaconnect-grpcd (key = person id, value =
the serialised udaconnect.v1.Location), same guarantee (acks=all, answer after
flush), so the two can be compared call for call.

usage: ref_grpc_server.py --gen DIR --brokers HOST:PORT --topic T --port-file F
       [--port N] [--workers N]
DIR holds the Python stubs generated from proto/ (see 30-grpc.sh).  Prints
nothing; writes the bound port to --port-file; stops on SIGTERM.
"""
import argparse
import signal
import sys
import threading
from concurrent import futures

ap = argparse.ArgumentParser()
ap.add_argument("--gen", required=True)
ap.add_argument("--brokers", required=True)
ap.add_argument("--topic", default="locations")
ap.add_argument("--port", type=int, default=0)
ap.add_argument("--port-file", required=True)
ap.add_argument("--workers", type=int, default=10)
args = ap.parse_args()
sys.path.insert(0, args.gen)

import grpc  # noqa: E402
from kafka import KafkaProducer  # noqa: E402
from udaconnect.v1 import location_service_pb2 as svc  # noqa: E402
from udaconnect.v1 import location_service_pb2_grpc as svc_grpc  # noqa: E402

producer = KafkaProducer(bootstrap_servers=args.brokers.split(","), acks="all",
                         client_id="udaconnect-ref-grpc")


def invalid(context, msg):
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, msg)


def check(loc, context):
    if loc.person_id <= 0:
        invalid(context, "person_id must be a positive integer")
    if not (-90 <= loc.latitude <= 90):
        invalid(context, "latitude out of range")
    if not (-180 <= loc.longitude <= 180):
        invalid(context, "longitude out of range")


class LocationService(svc_grpc.LocationServiceServicer):
    def RecordLocation(self, request, context):
        check(request, context)
        fut = producer.send(args.topic, key=str(request.person_id).encode(), value=request.SerializeToString())
        producer.flush()
        md = fut.get(timeout=30)
        return svc.RecordLocationResponse(partition=md.partition, offset=md.offset)

    def RecordLocations(self, request_iterator, context):
        accepted = 0
        rejected = []
        futs = []
        for i, loc in enumerate(request_iterator):
            if loc.person_id <= 0 or not (-90 <= loc.latitude <= 90) or not (-180 <= loc.longitude <= 180):
                rejected.append(svc.Rejection(index=i, reason="invalid location"))
                continue
            futs.append(producer.send(args.topic, key=str(loc.person_id).encode(), value=loc.SerializeToString()))
        producer.flush()
        for f in futs:
            f.get(timeout=30)
            accepted += 1
        return svc.RecordLocationsResponse(accepted=accepted, rejected=len(rejected), rejections=rejected[:1000])


server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers))
svc_grpc.add_LocationServiceServicer_to_server(LocationService(), server)
port = server.add_insecure_port("127.0.0.1:%d" % args.port)
server.start()
with open(args.port_file + ".tmp", "w") as f:
    f.write("%d\n" % port)
import os  # noqa: E402
os.rename(args.port_file + ".tmp", args.port_file)

done = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: done.set())
signal.signal(signal.SIGINT, lambda *a: done.set())
done.wait()
server.stop(5).wait()
producer.close(10)
