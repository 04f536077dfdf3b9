"""A Python grpcio client against `dslab serve crdt-replica`.

Like grpc_client.py it uses no generated code: it finds CrdtReplica by
reflection, builds requests from the reflected descriptors, updates a
counter, a set and a multi-value register, reads them back, and sends an
update with an unknown object type, which must be refused INVALID_ARGUMENT.

usage: python3 crdt_client.py HOST:PORT
"""

import sys

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

SERVICE = "replication.v1.CrdtReplica"


def main(target: str) -> None:
    channel = grpc.insecure_channel(target)
    grpc.channel_ready_future(channel).result(timeout=5)
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    service = pool.FindServiceByName(SERVICE)

    def method(name):
        descriptor = service.FindMethodByName(name)
        request = message_factory.GetMessageClass(descriptor.input_type)
        reply = message_factory.GetMessageClass(descriptor.output_type)
        call = channel.unary_unary(
            f"/{SERVICE}/{name}",
            request_serializer=request.SerializeToString,
            response_deserializer=reply.FromString,
        )
        return request, call

    crdt_type = pool.FindEnumTypeByName("replication.v1.CrdtType").values_by_name
    UpdateRequest, update = method("Update")
    ReadRequest, read = method("Read")

    def obj(kind, name):
        return {"type": crdt_type[kind].number, "name": name}

    for amount in (5, 3):
        update(UpdateRequest(object=obj("G_COUNTER", "likes"), increment=amount), timeout=5)
    for element in ("milk", "eggs", "milk"):
        update(UpdateRequest(object=obj("OR_SET", "cart"), insert=element), timeout=5)
    reply = update(UpdateRequest(object=obj("OR_SET", "cart"), remove="bread"), timeout=5)
    print("remove of an absent element changed:", reply.changed)
    update(UpdateRequest(object=obj("MV_REGISTER", "title"), write={"value": "draft"}), timeout=5)

    likes = read(ReadRequest(object=obj("G_COUNTER", "likes")), timeout=5)
    cart = read(ReadRequest(object=obj("OR_SET", "cart")), timeout=5)
    title = read(ReadRequest(object=obj("MV_REGISTER", "title")), timeout=5)
    print("likes:", likes.value.count)
    print("cart:", ",".join(cart.value.elements))
    print("title:", ",".join(title.value.siblings))

    try:
        update(UpdateRequest(object={"type": 42, "name": "x"}, increment=1), timeout=5)
        print("unknown type: accepted")
    except grpc.RpcError as error:
        print("unknown type:", error.code().name)


if __name__ == "__main__":
    main(sys.argv[1])
