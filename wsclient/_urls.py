"""Where to connect: one URL, a list rotated on failure, or a provider."""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeAlias

from ._calls import call
from ._core.failure import Failure
from ._secrets import redact_url

__all__ = ["UrlProvider", "UrlRotation", "UrlSource", "check_url", "redact_url"]

UrlProvider: TypeAlias = Callable[[int, Failure | None], str | Awaitable[str]]
"""``provider(attempt, last_failure)`` → URL, sync or async, called per attempt."""

UrlSource: TypeAlias = str | Sequence[str] | UrlProvider
"""What :class:`wsclient.Client` accepts as ``url``."""


def check_url(url: object, what: str = "url") -> str:
    """Return ``url`` if it is a ws:// or wss:// URL with a host, else raise."""
    if not isinstance(url, str):
        raise TypeError(
            f"{what} must be a str like 'ws://host:port/path', got {type(url).__name__}"
        )
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError(
            f"{what} has an invalid host or port: {redact_url(url)!r}"
        ) from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(
            f"{what} must start with ws:// or wss:// and name a host, "
            f"got {redact_url(url)!r}"
        )
    return url


class UrlRotation:
    """Yield the URL of each attempt; advance to the next one on every failure."""

    def __init__(self, source: UrlSource) -> None:
        self._provider: UrlProvider | None = None
        self._urls: tuple[str, ...] = ()
        self._index = 0
        if isinstance(source, str):
            self._urls = (check_url(source),)
        elif callable(source):
            self._provider = source
        elif isinstance(source, Sequence) and source:
            self._urls = tuple(check_url(u, "each url") for u in source)
        else:
            raise (ValueError if isinstance(source, Sequence) else TypeError)(
                "url must be a ws:// or wss:// URL, a non-empty list of them, or a "
                f"callable(attempt, last_failure) returning one; got {source!r}"
            )

    @property
    def is_provider(self) -> bool:
        """True when a callable provides the URL of each attempt."""
        return self._provider is not None

    @property
    def static(self) -> tuple[str, ...]:
        """The URLs known in advance (none for a provider)."""
        return self._urls

    def all_insecure(self) -> bool:
        """True when every URL is known in advance and none is wss://."""
        return bool(self._urls) and not any(
            u.lower().startswith("wss:") for u in self._urls
        )

    async def url_for(self, attempt: int, last: Failure | None) -> str:
        """Return the URL for ``attempt`` (1-based, consecutive)."""
        if self._provider is None:
            return self._urls[self._index]
        url = await call(self._provider, attempt, last)
        return check_url(url, "the URL returned by the url provider")

    def failed(self) -> None:
        """Move on to the next URL of the list (a no-op for one URL or a provider)."""
        if self._urls:
            self._index = (self._index + 1) % len(self._urls)
