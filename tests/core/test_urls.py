"""URL validation, redaction and rotation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

from wsclient._core.failure import Failure, FailureKind
from wsclient._urls import UrlRotation, check_url, redact_url

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

BACKENDS = ["asyncio", "trio"]


def url_for(
    rotation: UrlRotation,
    attempt: int = 1,
    last: Failure | None = None,
    backend: str = "asyncio",
) -> str:
    """Run ``rotation.url_for`` to completion in a throwaway event loop."""
    return anyio.run(rotation.url_for, attempt, last, backend=backend)


# check_url.


@pytest.mark.parametrize(
    "url",
    [
        "ws://localhost",
        "ws://localhost:8765/",
        "wss://example.com/feed?x=1",
        "ws://127.0.0.1:1/path",
        "ws://[::1]:8000/",
        "wss://user:pass@example.com/",
    ],
)
def test_check_url_accepts_ws_urls(url: str) -> None:
    """A ws:// or wss:// URL with a host is returned unchanged."""
    assert check_url(url) == url


@pytest.mark.parametrize("url", [None, 123, b"ws://localhost/", ["ws://h/"]])
def test_check_url_rejects_non_str(url: object) -> None:
    """A URL that is not a str raises TypeError showing the expected form."""
    with pytest.raises(TypeError, match=r"url must be a str like 'ws://host"):
        check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/",
        "https://localhost/",
        "ftp://x",
        "ws://",
        "ws:///path",
        "ws://:8765/",
        "localhost:8765",
        "/path",
        "",
    ],
)
def test_check_url_rejects_other_urls(url: str) -> None:
    """A URL with another scheme or no host raises ValueError."""
    with pytest.raises(ValueError, match=r"must start with ws:// or wss:// and name"):
        check_url(url)


def test_check_url_names_the_argument() -> None:
    """The error names the argument being checked."""
    with pytest.raises(ValueError, match=r"^backup_url must"):
        check_url("http://h/", "backup_url")
    with pytest.raises(TypeError, match=r"^backup_url must"):
        check_url(5, "backup_url")


def test_check_url_error_is_redacted() -> None:
    """The error message does not leak the password or query values."""
    with pytest.raises(ValueError, match="http://u:") as info:
        check_url("http://u:secret@h/p?token=abc")
    assert "secret" not in str(info.value)
    assert "abc" not in str(info.value)


# redact_url.


def test_redact_password_and_query() -> None:
    """redact_url hides the password and query values, keeps host and path."""
    redacted = redact_url("wss://u:secret@h/p?token=abc&x=1")
    assert "secret" not in redacted
    assert "abc" not in redacted
    assert redacted == "wss://u:***@h/p?token=***&x=***"


@pytest.mark.parametrize(
    "url",
    ["wss://example.com/feed", "ws://127.0.0.1:8765/", "ws://h"],
)
def test_redact_leaves_plain_urls(url: str) -> None:
    """A URL without user info or query comes back unchanged."""
    assert redact_url(url) == url


def test_redact_user_alone() -> None:
    """A user name without a password is hidden: it is often a token."""
    assert redact_url("ws://TOKEN@h/p") == "ws://***@h/p"


def test_redact_keeps_port() -> None:
    """The port stays visible next to a hidden password."""
    assert redact_url("ws://u:pw@h:8765/x") == "ws://u:***@h:8765/x"


def test_redact_blank_query_values() -> None:
    """A bare query field is hidden whole (it may be a token); a key with an
    empty value keeps its key."""
    assert redact_url("ws://h/?flag&token=") == "ws://h/?***&token=***"


def test_redact_drops_fragment() -> None:
    """The fragment, which a server never sees, is dropped."""
    assert redact_url("ws://h/p#secret") == "ws://h/p"


def test_redact_invalid_url() -> None:
    """A URL that cannot be parsed is replaced by a placeholder."""
    assert redact_url("ws://[::1/") == "<invalid URL>"


# UrlRotation over fixed URLs.


def test_single_url_never_changes() -> None:
    """One URL is used for every attempt; failed() does not change it."""
    rotation = UrlRotation("ws://a/")
    assert url_for(rotation, 1) == "ws://a/"
    rotation.failed()
    assert url_for(rotation, 2) == "ws://a/"


def test_list_rotates_on_failure_and_wraps() -> None:
    """A list advances one URL per failure and wraps around to the first."""
    rotation = UrlRotation(["ws://a/", "ws://b/", "ws://c/"])
    seen = []
    for attempt in range(1, 8):
        seen.append(url_for(rotation, attempt))
        rotation.failed()
    assert seen == [
        "ws://a/",
        "ws://b/",
        "ws://c/",
        "ws://a/",
        "ws://b/",
        "ws://c/",
        "ws://a/",
    ]


def test_list_stays_without_failure() -> None:
    """Without a failure, the list keeps returning the current URL."""
    rotation = UrlRotation(["ws://a/", "ws://b/"])
    rotation.failed()
    assert url_for(rotation, 1) == "ws://b/"
    assert url_for(rotation, 2) == "ws://b/"


def test_tuple_accepted() -> None:
    """A tuple of URLs works like a list."""
    rotation = UrlRotation(("ws://a/", "wss://b/"))
    rotation.failed()
    assert url_for(rotation) == "wss://b/"


def test_list_with_bad_url_raises() -> None:
    """A list with a non-ws URL raises ValueError at construction."""
    with pytest.raises(ValueError, match=r"^each url must start with ws://"):
        UrlRotation(["ws://a/", "http://b/"])


def test_list_with_non_str_raises() -> None:
    """A list with a non-str entry raises TypeError at construction."""
    with pytest.raises(TypeError, match=r"^each url must be a str"):
        UrlRotation(["ws://a/", 5])  # type: ignore[list-item]


@pytest.mark.parametrize("source", [[], ()])
def test_empty_list_raises(source: Any) -> None:
    """An empty list raises ValueError."""
    with pytest.raises(ValueError, match="non-empty list"):
        UrlRotation(source)


@pytest.mark.parametrize("source", [None, 123, 1.5, {"ws://a/"}, {"a": "ws://a/"}])
def test_other_source_raises_type_error(source: Any) -> None:
    """Neither str, list nor callable raises TypeError saying what is accepted."""
    with pytest.raises(TypeError, match="a non-empty list of them, or a callable"):
        UrlRotation(source)


def test_str_source_checked() -> None:
    """A single non-ws URL raises ValueError at construction."""
    with pytest.raises(ValueError, match="ws:// or wss://"):
        UrlRotation("http://a/")


def test_all_insecure() -> None:
    """all_insecure is True only when every known URL is ws://."""
    assert UrlRotation("ws://a/").all_insecure()
    assert UrlRotation(["ws://a/", "ws://b/"]).all_insecure()
    assert not UrlRotation("wss://a/").all_insecure()
    assert not UrlRotation(["ws://a/", "wss://b/"]).all_insecure()
    assert not UrlRotation(lambda attempt, last: "ws://a/").all_insecure()


# UrlRotation over a provider.


def make_provider(
    *, is_async: bool, url: object = "ws://p/"
) -> tuple[Callable[[int, Failure | None], str | Awaitable[str]], list[Any]]:
    """A sync or async provider returning ``url`` and recording its calls."""
    calls: list[tuple[int, Failure | None]] = []

    def sync_provider(attempt: int, last: Failure | None) -> Any:
        calls.append((attempt, last))
        return url if url != "ws://p/" else f"ws://p/{attempt}"

    async def async_provider(attempt: int, last: Failure | None) -> Any:
        await anyio.lowlevel.checkpoint()
        return sync_provider(attempt, last)

    return (async_provider if is_async else sync_provider), calls


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_provider_receives_attempt_and_last_failure(
    is_async: bool, backend: str
) -> None:
    """A provider is called per attempt with the attempt and the last failure."""
    provider, calls = make_provider(is_async=is_async)
    rotation = UrlRotation(provider)
    refused = Failure(FailureKind.REFUSED)
    closed = Failure(FailureKind.CLOSED, code=1006)
    assert url_for(rotation, 1, None, backend) == "ws://p/1"
    rotation.failed()  # A no-op for a provider.
    assert url_for(rotation, 2, refused, backend) == "ws://p/2"
    assert url_for(rotation, 3, closed, backend) == "ws://p/3"
    assert calls == [(1, None), (2, refused), (3, closed)]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("bad", ["http://p/", "ftp://x", "ws://", ""])
def test_provider_returning_bad_url_raises(is_async: bool, bad: str) -> None:
    """A provider returning a non-ws URL raises ValueError naming the provider."""
    provider, _ = make_provider(is_async=is_async, url=bad)
    rotation = UrlRotation(provider)
    with pytest.raises(ValueError, match="the URL returned by the url provider"):
        url_for(rotation)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_provider_returning_non_str_raises(is_async: bool) -> None:
    """A provider returning something other than a str raises TypeError."""
    provider, _ = make_provider(is_async=is_async, url=None)
    rotation = UrlRotation(provider)
    with pytest.raises(TypeError, match="the URL returned by the url provider"):
        url_for(rotation)
