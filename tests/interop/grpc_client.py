"""A client from another gRPC implementation (Python grpcio) against `dslab serve relay`.

It knows nothing about dslab's protos: it checks health, discovers the Relay
service by reflection, builds the request type from the reflected descriptors
and calls Forward.

usage: python3 grpc_client.py HOST:PORT
"""

import sys

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def main(target: str) -> None:
    channel = grpc.insecure_channel(target)
    grpc.channel_ready_future(channel).result(timeout=5)

    health = health_pb2_grpc.HealthStub(channel)
    reply = health.Check(health_pb2.HealthCheckRequest(service="observability.v1.Relay"), timeout=5)
    print("health:", health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    database = ProtoReflectionDescriptorDatabase(channel)
    services = database.get_services()
    for name in services:
        print("service:", name)

    pool = descriptor_pool.DescriptorPool(database)
    method = pool.FindServiceByName("observability.v1.Relay").FindMethodByName("Forward")
    request_type = message_factory.GetMessageClass(method.input_type)
    reply_type = message_factory.GetMessageClass(method.output_type)
    forward = channel.unary_unary(
        "/observability.v1.Relay/Forward",
        request_serializer=request_type.SerializeToString,
        response_deserializer=reply_type.FromString,
    )
    reply = forward(request_type(payload="from python"), timeout=5)
    print("path:", " -> ".join(hop.name for hop in reply.path))
    print("payload:", reply.payload)


if __name__ == "__main__":
    main(sys.argv[1])
