"""A real OTLP/gRPC trace receiver (Python grpcio + opentelemetry-proto).

It listens on 127.0.0.1, prints `listening on PORT`, then one JSON line per
span it receives, until it is terminated:

    {"service": "relay-hop-1", "trace_id": "...", "span_id": "...",
     "parent_span_id": "...", "name": "...", "kind": 2, "status": 1}

(`kind`: OTLP's SpanKind, 2 = server, 3 = client; `status`: OTLP's status
code, 0 = unset, 1 = ok, 2 = error.)

usage: python3 otlp_receiver.py
"""

import json
import signal
import sys
import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self):
        self.lock = threading.Lock()

    def Export(self, request, context):
        lines = []
        for resource_spans in request.resource_spans:
            service = ""
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name":
                    service = attribute.value.string_value
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    lines.append(
                        json.dumps(
                            {
                                "service": service,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_span_id": span.parent_span_id.hex(),
                                "name": span.name,
                                "kind": span.kind,
                                "status": span.status.code,
                            }
                        )
                    )
        with self.lock:
            for line in lines:
                print(line, flush=True)
        return trace_service_pb2.ExportTraceServiceResponse()


def main() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"listening on {port}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    server.stop(grace=1)
    sys.exit(0)


if __name__ == "__main__":
    main()
