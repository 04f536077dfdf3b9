"""A client from another gRPC implementation (Python grpcio) runs order sagas
through `dslab serve saga-orchestrator` and reads the ledgers it changed.

It knows nothing about dslab's protos: every request type comes from the
servers' reflection.

usage: python3 saga_client.py ACCOUNTS INVENTORY ORCHESTRATOR   (each HOST:PORT)
"""

import sys

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


class Reflected:
    """Calls unary methods of one server, with types found by reflection."""

    def __init__(self, target: str):
        self.channel = grpc.insecure_channel(target)
        grpc.channel_ready_future(self.channel).result(timeout=5)
        self.pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(self.channel))

    def call(self, service: str, method: str, timeout: float = 10, **fields):
        found = self.pool.FindServiceByName(service).FindMethodByName(method)
        request_type = message_factory.GetMessageClass(found.input_type)
        reply_type = message_factory.GetMessageClass(found.output_type)
        stub = self.channel.unary_unary(
            f"/{service}/{method}",
            request_serializer=request_type.SerializeToString,
            response_deserializer=reply_type.FromString,
        )
        return stub(request_type(**fields), timeout=timeout)


def main(accounts_addr: str, inventory_addr: str, orchestrator_addr: str) -> None:
    accounts = Reflected(accounts_addr)
    inventory = Reflected(inventory_addr)
    orchestrator = Reflected(orchestrator_addr)

    accounts.call("consensus.v1.Accounts", "Open", key="carol", amount=100)
    inventory.call("consensus.v1.Inventory", "AddItem", key="lamp", amount=5)

    def order(saga_id: str, destination: str, quantity: str = "2"):
        return orchestrator.call(
            "consensus.v1.SagaOrchestrator",
            "Start",
            saga_id=saga_id,
            saga_type="order",
            params={
                "customer": "carol",
                "sku": "lamp",
                "quantity": quantity,
                "price": "15",
                "destination": destination,
            },
            wait=True,
        )

    state_names = orchestrator.pool.FindEnumTypeByName("consensus.v1.SagaState")
    for saga_id, destination in [("order-1", "paris"), ("order-2", "atlantis")]:
        saga = order(saga_id, destination)
        state = state_names.values_by_number[saga.state].name
        print(f"{saga_id}: {state} failure_code={saga.failure_code}")

    try:
        order("order-3", "paris", quantity="two")
        print("bad quantity: accepted")
    except grpc.RpcError as err:
        print("bad quantity:", err.code().name)

    carol = accounts.call("consensus.v1.Accounts", "Balance", key="carol")
    lamp = inventory.call("consensus.v1.Inventory", "Item", key="lamp")
    print(f"carol: {carol.available} held {carol.held}")
    print(f"lamp: {lamp.available} held {lamp.held}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
