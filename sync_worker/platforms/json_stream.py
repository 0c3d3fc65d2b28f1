"""The items of one array inside a JSON document, read while the body arrives.

A 50,000-game GetOwnedGames answer is 17 MB of JSON and far more as Python objects.
`ArrayStream` walks the document from a stream of byte chunks, yields the items of the
array at `path` one at a time together with their exact JSON text, and keeps only the
rest of the document (the envelope, e.g. `{"response": {"game_count": 3}}`) whole.
Each item is parsed by the standard library's C scanner; only the structure around the
array is walked here. Strict JSON: NaN, Infinity and trailing garbage are errors.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Generator, Iterable, Iterator
from typing import Any

#: One item (or one value outside the array) longer than this is refused, which also
#: bounds how much a malformed body is re-scanned while waiting for more chunks.
MAX_VALUE_CHARS = 1 << 20

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_SEPARATOR = re.compile(r"[ \t\n\r]*,[ \t\n\r]*")


class JsonStreamError(ValueError):
    """The body is not valid JSON (or an item is absurdly large)."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# The C scanner behind json.loads, called directly: (value, end) or StopIteration.
_SCAN = json.JSONDecoder(parse_constant=_refuse_constant).scan_once  # type: ignore[attr-defined]


class ArrayStream:
    """Iterate to get `(item, item_json)` for each item of the array at `path`.

    After the iteration, `envelope` holds the document without that array and `found`
    says whether the array was there. Raises JsonStreamError on invalid JSON and
    UnicodeDecodeError on a body that is not UTF-8.
    """

    def __init__(self, chunks: Iterable[bytes], path: tuple[str, ...]) -> None:
        self._chunks = iter(chunks)
        self._path = path
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._text = ""
        self._pos = 0
        self._eof = False
        self.envelope: Any = None
        self.found = False

    def __iter__(self) -> Iterator[tuple[Any, str]]:
        self.envelope = yield from self._walk(0)
        if self._peek():
            raise JsonStreamError("extra data after the JSON document")

    def _walk(self, depth: int) -> Generator[tuple[Any, str], None, Any]:
        """Yield the array's items; return the value at this level without the array."""
        if self._peek() != "{":
            return self._value()[0]
        self._pos += 1
        members: dict[str, Any] = {}
        first = True
        while self._peek() != "}":
            if not first:
                self._expect(",")
            first = False
            key = self._value()[0]
            if not isinstance(key, str):
                raise JsonStreamError("object keys must be strings")
            self._expect(":")
            if key != self._path[depth]:
                members[key] = self._value()[0]
            elif depth + 1 < len(self._path):
                members[key] = yield from self._walk(depth + 1)
            elif self._peek() == "[":
                self._pos += 1
                self.found = True
                yield from self._items()
            else:
                members[key] = self._value()[0]
        self._pos += 1
        return members

    def _items(self) -> Iterator[tuple[Any, str]]:
        if self._peek() == "]":
            self._pos += 1
            return
        yield self._value()
        while True:
            # The hot path (a comma and the next item already buffered) skips _peek.
            separator = _SEPARATOR.match(self._text, self._pos)
            if separator is not None and separator.end() < len(self._text):
                self._pos = separator.end()
            elif self._peek() == "]":
                self._pos += 1
                return
            else:
                self._expect(",")
                self._peek()
            yield self._read_value()

    # -- reading -----------------------------------------------------------------

    def _value(self) -> tuple[Any, str]:
        """The next JSON value and its text, reading more chunks until it is complete."""
        self._peek()
        return self._read_value()

    def _read_value(self) -> tuple[Any, str]:
        """The JSON value starting at the current position (no whitespace before it)."""
        while True:
            try:
                value, end = _SCAN(self._text, self._pos)
            except (StopIteration, ValueError):
                value, end = None, -1
            # A number that ends with the buffer may go on in the next chunk.
            complete = end != -1 and (end < len(self._text) or self._eof)
            if complete:
                text = self._text[self._pos : end]
                self._pos = end
                return value, text
            if len(self._text) - self._pos > MAX_VALUE_CHARS or not self._read_more():
                raise JsonStreamError("invalid or truncated JSON")

    def _peek(self) -> str:
        """The next character that is not whitespace ('' at the end of the body)."""
        while True:
            match = _WHITESPACE.match(self._text, self._pos)
            assert match is not None  # the pattern matches the empty string
            self._pos = match.end()
            if self._pos < len(self._text):
                return self._text[self._pos]
            if not self._read_more():
                return ""

    def _expect(self, char: str) -> None:
        if self._peek() != char:
            raise JsonStreamError(f"expected {char!r}")
        self._pos += 1

    def _read_more(self) -> bool:
        """Append the next chunk (dropping what was consumed); False at the end of the body."""
        if self._eof:
            return False
        chunk = next(self._chunks, None)
        if chunk is None:
            self._eof = True
            more = self._utf8.decode(b"", final=True)
        else:
            more = self._utf8.decode(chunk)
        self._text = self._text[self._pos :] + more
        self._pos = 0
        return True
