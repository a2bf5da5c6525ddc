"""Pick the backend of the running async library."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Opener

__all__ = ["get_opener"]


def get_opener() -> Opener:
    """Return ``open_connection`` of the running backend (asyncio or trio).

    trio is optional, so it is detected without importing it: if it is not
    imported yet, it cannot be running.
    """
    trio = sys.modules.get("trio")
    if trio is not None and trio.lowlevel.in_trio_run():
        from ._trio import open_connection

        return open_connection
    from ._asyncio import open_connection as open_asyncio_connection

    return open_asyncio_connection
