"""A fetched library, held compactly: sorted ids, per-slice digests, entries spilled to a file.

Memory stays flat in the library's size: per game only its id, where its JSON entry
sits in a temporary file (in memory while small) and a 16-byte hash are kept; games
are rebuilt from their entries a batch at a time, only for what has to be written.

A slice is the games whose ids share `id >> SLICE_BITS` (256 consecutive app ids).
A game added later never moves another game to a different slice, so a slice's digest
changes only when one of its own games was added, removed or changed: the engine
skips every slice whose digest matches the one stored with the rows it wrote last.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import operator
import os
import tempfile
from array import array
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from hashlib import blake2b as _blake2b
from types import TracebackType
from typing import IO

from .owned_game import OwnedGame

SLICE_BITS = 8
#: Bump when the stored columns are derived differently from an entry (e.g. a change to
#: `normalise_game`): every stored digest then differs and the next sync rewrites all.
DIGEST_VERSION = b"owned-games/1"
_SPILL_IN_MEMORY_BYTES = 1 << 20  # libraries of up to ~3,000 games never touch the disk
_SPILL_WRITE_BYTES = 1 << 18  # beyond that, entries go to the file in writes this large
_HASH_BYTES = 16
_READ_BYTES = 1 << 16  # a kept answer is read back (to be parsed) in pieces this large
_POSITION_BITS = 24  # libraries of up to 16 million games; app ids below 2**39
_POSITION = (1 << _POSITION_BITS) - 1
_SORT_RUN = 1 << 16  # games sorted as Python ints at once: about 3 MB

Decode = Callable[[bytes], OwnedGame]


@dataclass(frozen=True, slots=True)
class Slice:
    """Games `start` to `end` (exclusive, in id order) of a library: one slice number."""

    number: int
    start: int
    end: int
    last_key: int  # the slice's highest id: the checkpoint once the slice is written
    digest: bytes


class _Spill:
    """Append-only bytes: in memory while small, then in a temporary file read with pread.

    Past the in-memory size, appends fill one reused buffer that is written out when
    full: a buffer freed and grown again costs fresh pages (page faults) every time.
    """

    def __init__(self) -> None:
        self._memory = bytearray()
        self._file: IO[bytes] | None = None
        self._buffer = memoryview(bytearray())
        self._buffered = 0
        self.size = 0

    def append(self, data: bytes) -> int:
        """Add `data`; return the size so far (where the next entry starts)."""
        self.size += len(data)
        if self._file is None:
            self._memory += data
            if len(self._memory) > _SPILL_IN_MEMORY_BYTES:
                self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
                self._file.write(self._memory)
                self._memory = bytearray()
                self._buffer = memoryview(bytearray(_SPILL_WRITE_BYTES))
            return self.size
        end = self._buffered + len(data)
        if end > len(self._buffer):
            self._write_buffer()
            if len(data) > len(self._buffer):
                self._file.write(data)
                return self.size
            end = len(data)
        self._buffer[self._buffered : end] = data
        self._buffered = end
        return self.size

    def seal(self) -> None:
        """No more appends: everything goes to one place, for reading."""
        if self._file is not None:
            self._write_buffer()
            self._file.flush()

    def read(self, start: int, end: int) -> bytes:
        """Bytes `start` to `end` (after `seal`)."""
        if self._file is None:
            return bytes(self._memory[start:end])
        return os.pread(self._file.fileno(), end - start, start)

    def close(self) -> None:
        """Free the memory and delete the file."""
        self._memory = bytearray()
        self._buffer = memoryview(bytearray())
        if self._file is not None:
            self._file.close()

    def _write_buffer(self) -> None:
        assert self._file is not None
        self._file.write(self._buffer[: self._buffered])
        self._buffered = 0


class ReceivedAnswer:
    """A platform's whole answer as received, kept like the entries (in memory while small,
    else in a temporary file), and its digest; close when done."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._spill = _Spill()
        digest = _blake2b(DIGEST_VERSION, digest_size=_HASH_BYTES)
        try:
            for chunk in chunks:
                digest.update(chunk)
                self._spill.append(chunk)
        except BaseException:
            self._spill.close()
            raise
        self._spill.seal()
        self.digest = digest.digest()

    def chunks(self) -> Iterator[bytes]:
        """The body again, a piece at a time."""
        size = self._spill.size
        for start in range(0, size, _READ_BYTES):
            yield self._spill.read(start, min(start + _READ_BYTES, size))

    def close(self) -> None:
        """Free the body."""
        self._spill.close()


@dataclass(frozen=True, slots=True)
class SameAnswer:
    """The platform answered, byte for byte, what the library's last completed sync read:
    nothing to parse, nothing to write."""

    digest: bytes


class OwnedLibraryBuilder:
    """Collects a platform's entries as they are parsed, in any order."""

    def __init__(self) -> None:
        self._spill = _Spill()  # owned by the library built from it, which closes it
        self._keys = array("q")
        self._ends = array("q")
        self._hashes = bytearray()

    def add(self, sort_key: int, entry: bytes) -> None:
        """One game: its numeric id and its JSON entry exactly as it will be stored."""
        self._keys.append(sort_key)
        self._ends.append(self._spill.append(entry))
        self._hashes += _blake2b(entry, digest_size=_HASH_BYTES).digest()

    def discard(self) -> None:
        """Drop what was collected (the answer turned out unusable)."""
        self._spill.close()

    def build(self, decode: Decode, answer: bytes) -> OwnedLibrary:
        """The library, sorted by id; a repeated id keeps its last entry (as Steam means it).
        `answer` is the digest of the answer it was read from."""
        self._spill.seal()
        # Sorted as one int per game, id and position packed (stable: equal ids keep their
        # order), through `map` over arrays: C-speed loops, no object per game beyond one
        # sort run. Each array collected is freed as soon as it is used up.
        packed = _sorted_in_runs(map(_pack, self._keys, range(len(self._keys))))
        self._keys = array("q")
        kept = array("q", map(_POSITION.__and__, packed))
        sorted_keys = array("q", map(_POSITION_BITS.__rrshift__, packed))
        del packed
        if any(map(operator.eq, sorted_keys, itertools.islice(sorted_keys, 1, None))):
            last = [
                n + 1 == len(kept) or sorted_keys[n + 1] != k for n, k in enumerate(sorted_keys)
            ]
            kept = array("q", itertools.compress(kept, last))  # a repeat: the last one wins
            sorted_keys = array("q", itertools.compress(sorted_keys, last))
        hashes, self._hashes = self._hashes, bytearray()
        sorted_hashes = bytearray(len(kept) * _HASH_BYTES)
        for position, i in enumerate(kept):
            sorted_hashes[position * _HASH_BYTES : (position + 1) * _HASH_BYTES] = hashes[
                i * _HASH_BYTES : (i + 1) * _HASH_BYTES
            ]
        del hashes
        ends, self._ends = self._ends, array("q")
        offsets = array("q", map(lambda i: ends[i - 1] if i else 0, kept))
        return OwnedLibrary(
            self._spill,
            sorted_keys,
            offsets,
            array("q", map(ends.__getitem__, kept)),
            sorted_hashes,
            decode,
            answer,
        )


def _sorted_in_runs(values: Iterator[int]) -> array[int]:
    """`values` sorted: up to _SORT_RUN at a time as a list (one Python int object each), then
    the sorted runs, kept as compact arrays, merged. A single run needs no merge."""
    runs: list[array[int]] = []
    while run := list(itertools.islice(values, _SORT_RUN)):
        run.sort()
        runs.append(array("q", run))
        del run
    if len(runs) == 1:
        return runs[0]
    return array("q", heapq.merge(*runs))


def _pack(key: int, position: int) -> int:
    if not 0 <= key < 1 << (63 - _POSITION_BITS) or position > _POSITION:
        raise ValueError("an id or a library too large to sort")
    return key << _POSITION_BITS | position


class OwnedLibrary:
    """Every game a user owns, in id order, without holding the games; close when done."""

    def __init__(
        self,
        spill: _Spill,
        keys: array[int],
        offsets: array[int],
        ends: array[int],
        hashes: bytes | bytearray,
        decode: Decode,
        answer: bytes,
    ) -> None:
        self._spill = spill
        self.answer = answer  # the digest of the whole answer (see ReceivedAnswer)
        self._keys = keys
        self._offsets = offsets
        self._ends = ends
        self._decode = decode
        self.slices = _slices(keys, hashes)

    def __len__(self) -> int:
        return len(self._keys)

    def ids(self) -> OwnedIds:
        """Every owned id as the platform spells it (removal detection needs only these)."""
        return OwnedIds(self._keys)

    def key_at(self, index: int) -> int:
        """The id of game `index`, as a number."""
        return self._keys[index]

    def count_up_to(self, sort_key: int) -> int:
        """How many games have an id <= `sort_key`."""
        return bisect.bisect_right(self._keys, sort_key)

    def games(self, start: int, end: int) -> list[OwnedGame]:
        """Games `start` to `end` (exclusive), rebuilt from their entries."""
        read, decode = self._spill.read, self._decode
        return [decode(read(self._offsets[i], self._ends[i])) for i in range(start, end)]

    def close(self) -> None:
        """Delete the spilled entries."""
        self._spill.close()

    def __enter__(self) -> OwnedLibrary:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class OwnedIds(Collection[str]):
    """The owned ids as strings, made one at a time from the compact array."""

    def __init__(self, keys: array[int]) -> None:
        self._keys = keys

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[str]:
        return map(str, self._keys)

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, str) or not (item.isascii() and item.lstrip("-").isdigit()):
            return False
        position = bisect.bisect_left(self._keys, int(item))
        return position < len(self._keys) and self._keys[position] == int(item)


def _slices(keys: array[int], hashes: bytes | bytearray) -> list[Slice]:
    slices: list[Slice] = []
    start = 0
    while start < len(keys):
        number = keys[start] >> SLICE_BITS
        end = bisect.bisect_left(keys, (number + 1) << SLICE_BITS, lo=start)
        digest = _blake2b(DIGEST_VERSION, digest_size=_HASH_BYTES)
        digest.update(hashes[start * _HASH_BYTES : end * _HASH_BYTES])
        slices.append(Slice(number, start, end, keys[end - 1], digest.digest()))
        start = end
    return slices


@dataclass(frozen=True, slots=True)
class Batch:
    """Up to `size` games of changed slices, in id order, and the slices it finishes."""

    ranges: list[tuple[int, int]]  # (start, end) index ranges of the games to write
    finished: list[Slice]  # their digests are saved with this batch: all their games are in
    end: int  # index after the batch's last game: games processed once it is committed

    def __len__(self) -> int:
        return sum(end - start for start, end in self.ranges)


def iter_batches(slices: list[Slice], start: int, size: int) -> Iterator[Batch]:
    """The games of `slices` from index `start` on, `size` at a time."""
    ranges: list[tuple[int, int]] = []
    finished: list[Slice] = []
    room = size
    for s in slices:
        position = max(s.start, start)
        while position < s.end:
            end = min(s.end, position + room)
            ranges.append((position, end))
            room -= end - position
            position = end
            if position == s.end:
                finished.append(s)
            if room == 0:
                yield Batch(ranges, finished, end)
                ranges, finished, room = [], [], size
    if ranges:
        yield Batch(ranges, finished, ranges[-1][1])
