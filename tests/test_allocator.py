"""The allocator settings of `scgw run`: one arena, and free pages handed back."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = """
from gateway.ops.allocator import give_back, one_arena
assert one_arena()

def rss_kib():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmRSS"))

# 40 MiB in blocks malloc keeps in its heap; every 16th stays, so the heap cannot shrink
# from its top by itself
blocks = [bytes(2048) for _ in range(20_000)]
kept = blocks[::16]
del blocks
before = rss_kib()
returned = give_back()
print(before - rss_kib(), returned, len(kept))
"""


def test_free_pages_go_back_to_the_kernel() -> None:
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    released_kib, returned = int(out[0]), out[1]
    assert returned == "True"
    assert released_kib > 20_000  # most of the 37 MiB freed between the kept blocks


SETTLE = """
import gc, weakref
from gateway.ops.allocator import settle_heap

class Node:
    def __init__(self):
        self.me = self  # a cycle: only the cyclic collector frees it

kept = [Node() for _ in range(10_000)]  # what a start-up leaves behind
garbage = Node()
gone = weakref.ref(garbage)
del garbage
frozen = settle_heap()
walked = {id(o) for g in range(3) for o in gc.get_objects(generation=g)}
print(frozen, sum(id(n) in walked for n in kept), gone() is None)
"""


def test_a_settled_heap_is_not_walked_by_full_collections() -> None:
    """What the start-up left is in none of the collector's generations any more (a full
    collection walks only those), and its garbage was collected before."""
    out = subprocess.run([sys.executable, "-c", SETTLE], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    frozen, still_walked, collected = int(out[0]), int(out[1]), out[2]
    assert frozen >= 10_000
    assert still_walked == 0
    assert collected == "True"
