"""The course outline's Python ConsistentHash, verbatim, as the reference for
`patterns::hashing::course_ring` and the baseline of `benches/hashing.rs`.

usage: python3 course_ring.py            # prints placements and lookups/s
"""

import bisect
import hashlib
import time


class ConsistentHash:
    def __init__(self, nodes=None, virtual_nodes=150):
        self.virtual_nodes = virtual_nodes
        self.ring = {}
        self.sorted_keys = []
        self.nodes = nodes or []

        for node in self.nodes:
            self.add_node(node)

    def _hash(self, key):
        return hashlib.md5(key.encode()).hexdigest()

    def add_node(self, node):
        for i in range(self.virtual_nodes):
            virtual_key = f"{node}:{i}"
            hash_value = self._hash(virtual_key)
            self.ring[hash_value] = node
            bisect.insort(self.sorted_keys, hash_value)

    def remove_node(self, node):
        for i in range(self.virtual_nodes):
            virtual_key = f"{node}:{i}"
            hash_value = self._hash(virtual_key)
            del self.ring[hash_value]
            self.sorted_keys.remove(hash_value)

    def get_node(self, key):
        if not self.ring:
            return None

        hash_value = self._hash(key)
        index = bisect.bisect_right(self.sorted_keys, hash_value)

        if index == len(self.sorted_keys):
            index = 0

        return self.ring[self.sorted_keys[index]]


if __name__ == "__main__":
    ring = ConsistentHash([f"node-{i}" for i in range(10)])
    for i in range(3):
        print(f"key-{i}\t{ring.get_node(f'key-{i}')}")
    keys = [f"key-{i}" for i in range(200_000)]
    start = time.perf_counter()
    for key in keys:
        ring.get_node(key)
    elapsed = time.perf_counter() - start
    print(f"{len(keys) / elapsed:,.0f} lookups/s, {elapsed / len(keys) * 1e9:.0f} ns per lookup")
