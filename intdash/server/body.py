"""A request's body: read no further than a limit, and parsed as JSON strictly.

Numbers are kept as the text the body wrote (:class:`~intdash.server.formats.JsonNumber`); a
name given twice in one object and a lone UTF-16 surrogate are refused rather than guessed at
(which copy counts? what would the database store?).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from intdash.server.formats import JsonNumber


class BodyError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


class _RepeatedName(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _RepeatedName(name)
            seen.add(name)
    return result


def _lone_surrogate(value: Any) -> str | None:
    """The first string in ``value`` that is not Unicode text (a lone UTF-16 surrogate)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and not item.isascii():
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return item
    return None


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, read no further than ``limit`` bytes (413 beyond it)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyError(413, "too_large", f"the body is over {limit:,} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyError(413, "too_large", f"the body is over {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON (:func:`parse_json`), read no further than ``limit`` bytes."""
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind != "application/json" and not kind.endswith("+json"):
        raise BodyError(415, "unsupported_media_type", "send the body as application/json")
    return parse_json(await read_body(request, limit))


def parse_json(raw: bytes) -> Any:
    """``raw`` as JSON: its numbers as written (:class:`JsonNumber`); a name given twice in one
    object, or a lone surrogate, refused."""
    if not raw.strip():
        raise BodyError(400, "empty", "the body is empty: send an invoice as JSON")
    try:
        body = json.loads(
            raw.decode("utf-8"),
            parse_constant=_no_constant,
            parse_float=JsonNumber,
            parse_int=JsonNumber,
            object_pairs_hook=_object,
        )
    except UnicodeDecodeError:
        raise BodyError(400, "not_json", "the body is not UTF-8 text") from None
    except RecursionError:
        raise BodyError(400, "not_json", "the body is nested too deeply") from None
    except _RepeatedName as exc:
        message = f"the body names {exc.name!r} twice in one object"
        raise BodyError(400, "not_json", message) from None
    except ValueError as exc:
        raise BodyError(400, "not_json", f"the body is not JSON: {exc}") from None
    if b"\\u" in raw and (lone := _lone_surrogate(body)) is not None:
        where = repr(lone if len(lone) <= 40 else lone[:40] + "…")
        message = f"the body's text {where} holds a lone UTF-16 surrogate: it is not Unicode"
        raise BodyError(400, "not_json", message)
    return body
