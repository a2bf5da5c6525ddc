from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

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
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def server(anyio_backend: object) -> AsyncIterator[Server]:
    """The reference server, on the backend under test, on a free port."""
    async with serve() as running:
        yield running
