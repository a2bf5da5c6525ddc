from __future__ import annotations

from typing import Any

import pytest


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
