from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

import pytest
import trustme

from wsclient.server import Server, serve

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


# Spell both backends out: anyio's default uses get_available_backends() and
# would quietly drop trio if it were not installed.
@pytest.fixture(
    params=[
        pytest.param(("asyncio", {"debug": True}), id="asyncio"),
        pytest.param(("trio", {}), id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    backend, options = request.param
    if backend == "asyncio" and request.node.get_closest_marker("no_asyncio_debug"):
        options = {**options, "debug": False}
    return backend, options


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "no_asyncio_debug: run the asyncio variant without asyncio's debug mode. "
        "For stress tests only: in debug mode every Future records the whole "
        "call stack (traceback.extract_stack(), a stat() per frame), 0.1-0.4 "
        "ms each at pytest's stack depth, which makes a test of thousands of "
        "messages and hundreds of reconnections 3-7 times slower than on trio.",
    )


@pytest.fixture
async def server(anyio_backend: object) -> AsyncIterator[Server]:
    """The reference server, on the backend under test, on a free port."""
    async with serve() as running:
        yield running


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    """A throwaway certificate authority, which no system store trusts."""
    return trustme.CA()


@pytest.fixture
def tls_client_context(tls_ca: trustme.CA) -> ssl.SSLContext:
    """A client context (verifying, as by default) that trusts :func:`tls_ca`."""
    context = ssl.create_default_context()
    tls_ca.configure_trust(context)
    return context


@pytest.fixture
async def tls_server(
    anyio_backend: object, tls_ca: trustme.CA
) -> AsyncIterator[Server]:
    """The reference server over TLS (``wss://127.0.0.1:port``).

    Its certificate, from :func:`tls_ca`, names 127.0.0.1 (the host in its URL)
    and localhost.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    async with serve(ssl=context) as running:
        yield running
