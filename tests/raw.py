"""Helpers for tests that talk to the reference server with raw websockets."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest
import sniffio
import websockets.asyncio.client
import websockets.trio.client

if TYPE_CHECKING:
    from collections.abc import Iterator


def connect(url: str, **kwargs: Any) -> Any:
    """Return a websockets client for the running backend: `async with` it."""
    if sniffio.current_async_library() == "trio":
        return websockets.trio.client.connect(url, proxy=None, **kwargs)
    return websockets.asyncio.client.connect(url, proxy=None, **kwargs)


@pytest.fixture(autouse=True)
def no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test if the server logged an error: it means a connection crashed.

    Import it into a test module to apply it there.
    """
    yield
    errors = [
        record.getMessage()
        for record in caplog.records
        if record.name == "wsclient.server" and record.levelno >= logging.ERROR
    ]
    assert errors == []
