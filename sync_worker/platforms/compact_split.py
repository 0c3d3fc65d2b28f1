"""The entries of GetOwnedGames' `games` array, split on bytes, without parsing them.

Steam sends compact JSON: `{"response":{"game_count":2,"games":[{"appid":10,...},
{"appid":20,...}]}}`. In valid JSON the bytes `},{"appid":` cannot occur inside a
string (a quote there is escaped), so between entries of that array they are the
separator, found by `bytes.find` at C speed: no per-character work in Python, and no
Python objects for the games. Each piece must start with `{"appid":` and close every
brace it opens (a nested object that also has an `appid` would otherwise be cut);
anything else raises NotCompact, and the caller parses the body as JSON instead.
The envelope (the body with the array emptied) is parsed as JSON; the entries are
parsed only when they are written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

_ARRAY = b'"games":['
_FIRST = b'{"appid":'
_SEPARATOR = b'},{"appid":'
_LAST = b"}]"
#: The envelope before the array, or one entry, longer than this is not Steam's layout.
MAX_PIECE_BYTES = 1 << 20


class NotCompact(ValueError):
    """The body is not laid out as Steam's compact answer: parse it as JSON instead."""


class CompactEntries:
    """Iterate for the `games` entries (bytes, exactly as sent); then `envelope` holds the
    rest of the body with an empty array (b"" until the iteration has ended), and `found`
    whether there was an array (the caller checks that it is the envelope's `games`)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self.envelope = b""
        self.found = False

    def __iter__(self) -> Iterator[bytes]:
        buffer = b""
        for chunk in self._chunks:
            buffer += chunk
            start = buffer.find(_ARRAY)
            if start >= 0:
                break
            if len(buffer) > MAX_PIECE_BYTES:
                raise NotCompact("no games array where Steam puts it")
        else:
            self.envelope = buffer  # no array at all: no games, or a private profile
            return
        self.found = True
        head = buffer[: start + len(_ARRAY)]
        buffer, position = buffer[start + len(_ARRAY) :], 0
        while True:
            separator = buffer.find(_SEPARATOR, position)
            if separator >= 0:
                yield _checked(buffer[position : separator + 1])
                position = separator + 2
                continue
            more = next(self._chunks, None)
            if more is None:
                break
            buffer, position = buffer[position:] + more, 0
            if len(buffer) > MAX_PIECE_BYTES:
                raise NotCompact("an entry longer than any game's")
        tail = buffer[position:]
        if tail.startswith(b"]"):  # an empty array (every entry yielded is followed by one)
            self.envelope = head + tail
            return
        end = tail.find(_LAST)
        if end < 0:
            raise NotCompact("the games array does not end as Steam ends it")
        yield _checked(tail[: end + 1])
        self.envelope = head + tail[end + 1 :]


def _checked(entry: bytes) -> bytes:
    if not entry.startswith(_FIRST) or entry.count(b"{") != entry.count(b"}"):
        raise NotCompact("an entry that is not one object starting with its app id")
    return entry
