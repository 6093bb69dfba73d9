"""Loop reference for a cross-batch memory (Wang et al., "Cross-Batch Memory for Embedding
Learning", CVPR 2020): a ring buffer of rows, and the pairs/triplets of a batch against it."""

from __future__ import annotations


class RingMemory:
    """A queue of ``size`` slots written one row at a time, wrapping around."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.rows: list = [None] * size
        self.labels: list = [None] * size
        self.next = 0
        self.filled = False

    def write(self, rows, labels) -> list[int]:
        """Write each row at the next slot; return the slots used, in order."""
        slots = []
        for row, label in zip(rows, labels, strict=True):
            self.rows[self.next] = row
            self.labels[self.next] = label
            slots.append(self.next)
            self.next += 1
            if self.next == self.size:
                self.next = 0
                self.filled = True
        return slots

    def in_use(self) -> list[int]:
        """Slots taking part: all once filled, else those written so far."""
        return list(range(self.size if self.filled else self.next))


def pairs_against(labels, mem_labels, own_slot=None):
    """Positive and negative (query, slot) pairs in row-major order; ``own_slot[i]`` (when given)
    is query i's own slot, never its positive."""
    pos, neg = [], []
    for i, li in enumerate(labels):
        for j, lj in enumerate(mem_labels):
            if li == lj:
                if own_slot is None or own_slot[i] != j:
                    pos.append((i, j))
            else:
                neg.append((i, j))
    return pos, neg


def triplets_against(labels, mem_labels, own_slot=None):
    """Every (query, positive slot, negative slot), the query's own slot excluded."""
    out = []
    for i, li in enumerate(labels):
        for p, lp in enumerate(mem_labels):
            if lp != li or (own_slot is not None and own_slot[i] == p):
                continue
            for n, ln in enumerate(mem_labels):
                if ln != li:
                    out.append((i, p, n))
    return out
