"""The retry/fatal table: close codes, handshake statuses, failure kinds."""

from __future__ import annotations

import email.utils

import pytest

from wsclient._core.classify import (
    AUTH_CLOSE_CODES,
    AUTH_STATUSES,
    CLOSE_CODES,
    HANDSHAKE_STATUSES,
    KIND_VERDICTS,
    MAX_RETRY_AFTER,
    Verdict,
    classify,
    parse_retry_after,
)
from wsclient._core.failure import Failure, FailureKind

# A whole second, so that an HTTP-date (one-second resolution) is exact.
NOW = 1_700_000_000.0

RETRY = True
FATAL = False


def closed(code: int | None) -> Failure:
    """A connection that ended with close code ``code``."""
    return Failure(FailureKind.CLOSED, code=code)


def status(code: int | None, **headers: str) -> Failure:
    """A handshake refused with HTTP ``code`` and these (lower-case) headers."""
    return Failure(
        FailureKind.STATUS,
        status=code,
        headers={k.replace("_", "-"): v for k, v in headers.items()},
        during_handshake=True,
    )


# Close codes.


@pytest.mark.parametrize(("code", "entry"), sorted(CLOSE_CODES.items()))
def test_close_code_follows_table(code: int, entry: tuple[bool, str]) -> None:
    """Every close code in CLOSE_CODES gets the table's verdict and reason."""
    retry, why = entry
    verdict = classify(closed(code), NOW)
    assert verdict.retry is retry
    assert verdict.delay is None
    assert str(code) in verdict.why
    assert why in verdict.why


@pytest.mark.parametrize(
    ("code", "retry"),
    [
        (1000, RETRY),
        (1001, RETRY),
        (1003, FATAL),
        (1006, RETRY),
        (1008, FATAL),
        (1011, RETRY),
        (1012, RETRY),
        (1015, FATAL),
        (3000, FATAL),
        (4000, RETRY),
        (4999, RETRY),
        (2999, RETRY),
    ],
)
def test_close_code_documented_verdict(code: int, retry: bool) -> None:
    """The important close codes have the documented retry/fatal verdict."""
    assert classify(closed(code), NOW).retry is retry


@pytest.mark.parametrize("code", [1016, 2000, 2999, 3001, 3999, 4000, 4500, 4999])
def test_unlisted_close_code_retries(code: int) -> None:
    """A close code missing from the table retries: its meaning is unknown."""
    assert code not in CLOSE_CODES
    verdict = classify(closed(code), NOW)
    assert verdict.retry is True
    assert "unknown close code" in verdict.why


def test_missing_close_code_is_abnormal_closure() -> None:
    """A CLOSED failure without a code is treated as 1006 (abnormal closure)."""
    assert classify(closed(None), NOW) == classify(closed(1006), NOW)
    assert "1006" in classify(closed(None), NOW).why


# Handshake statuses.


@pytest.mark.parametrize(("code", "entry"), sorted(HANDSHAKE_STATUSES.items()))
def test_handshake_status_follows_table(code: int, entry: tuple[bool, str]) -> None:
    """Every status in HANDSHAKE_STATUSES gets the table's verdict and reason."""
    retry, why = entry
    verdict = classify(status(code), NOW)
    assert verdict.retry is retry
    assert verdict.delay is None
    assert f"HTTP {code}" in verdict.why
    assert why in verdict.why


@pytest.mark.parametrize(
    ("code", "retry"),
    [
        (401, FATAL),
        (403, FATAL),
        (404, FATAL),
        (426, FATAL),
        (429, RETRY),
        (500, RETRY),
        (502, RETRY),
        (503, RETRY),
        (504, RETRY),
        (418, FATAL),
        (599, RETRY),
        (302, FATAL),
    ],
)
def test_handshake_status_documented_verdict(code: int, retry: bool) -> None:
    """The important statuses have the documented retry/fatal verdict."""
    assert classify(status(code), NOW).retry is retry


@pytest.mark.parametrize("code", [501, 505, 520, 599])
def test_unlisted_5xx_retries(code: int) -> None:
    """A 5xx status missing from the table retries: the server may recover."""
    assert code not in HANDSHAKE_STATUSES
    assert classify(status(code), NOW).retry is True


@pytest.mark.parametrize("code", [200, 301, 302, 307, 400, 405, 410, 418, 451, 600])
def test_unlisted_other_status_is_fatal(code: int) -> None:
    """A non-5xx status missing from the table is fatal."""
    assert code not in HANDSHAKE_STATUSES
    assert classify(status(code), NOW).retry is False


def test_missing_status_is_fatal() -> None:
    """A STATUS failure without a status is fatal rather than an error."""
    assert classify(status(None), NOW).retry is False


# Failure kinds other than CLOSED and STATUS.


def test_kind_table_covers_every_other_kind() -> None:
    """KIND_VERDICTS has an entry for every kind except CLOSED and STATUS."""
    expected = set(FailureKind) - {FailureKind.CLOSED, FailureKind.STATUS}
    assert set(KIND_VERDICTS) == expected


@pytest.mark.parametrize(("kind", "entry"), list(KIND_VERDICTS.items()))
def test_kind_follows_table(kind: FailureKind, entry: tuple[bool, str]) -> None:
    """Every kind in KIND_VERDICTS gets the table's verdict and reason."""
    retry, why = entry
    auth = kind is FailureKind.AUTH
    assert classify(Failure(kind), NOW) == Verdict(retry, None, why, auth)


@pytest.mark.parametrize(
    ("kind", "retry"),
    [
        (FailureKind.DNS, RETRY),
        (FailureKind.REFUSED, RETRY),
        (FailureKind.RESET, RETRY),
        (FailureKind.TIMEOUT, RETRY),
        (FailureKind.TLS_VERIFY, FATAL),
        (FailureKind.TLS, RETRY),
        (FailureKind.HANDSHAKE, RETRY),
        (FailureKind.NEGOTIATION, FATAL),
        (FailureKind.INVALID_URL, FATAL),
        (FailureKind.ERROR, FATAL),
    ],
)
def test_kind_documented_verdict(kind: FailureKind, retry: bool) -> None:
    """Each failure kind has the documented retry/fatal verdict."""
    assert classify(Failure(kind), NOW).retry is retry


# Retry-After in classify.


@pytest.mark.parametrize("code", [429, 503])
def test_retry_after_seconds_honoured(code: int) -> None:
    """Retry-After in delay-seconds sets the verdict's delay on 429 and 503."""
    verdict = classify(status(code, retry_after="120"), NOW)
    assert verdict.retry is True
    assert verdict.delay == 120.0


@pytest.mark.parametrize("code", [429, 503])
def test_retry_after_date_honoured(code: int) -> None:
    """Retry-After as an HTTP-date 30 s ahead gives a 30 s delay on 429 and 503."""
    header = email.utils.formatdate(NOW + 30, usegmt=True)
    verdict = classify(status(code, retry_after=header), NOW)
    assert verdict.retry is True
    assert verdict.delay == pytest.approx(30.0, abs=1e-6)


@pytest.mark.parametrize("code", [429, 503])
def test_retry_after_absent(code: int) -> None:
    """Without Retry-After, 429 and 503 retry with no minimum delay."""
    verdict = classify(status(code), NOW)
    assert verdict.retry is True
    assert verdict.delay is None


@pytest.mark.parametrize("code", [500, 502, 404, 401])
@pytest.mark.parametrize(
    "header", ["120", email.utils.formatdate(NOW + 30, usegmt=True)]
)
def test_retry_after_ignored_on_other_statuses(code: int, header: str) -> None:
    """Retry-After is ignored on statuses other than 429 and 503."""
    assert classify(status(code, retry_after=header), NOW).delay is None


@pytest.mark.parametrize("code", [429, 503])
def test_retry_after_malformed_gives_no_delay(code: int) -> None:
    """A malformed Retry-After on 429/503 still retries, with backoff only."""
    verdict = classify(status(code, retry_after="soon"), NOW)
    assert verdict.retry is True
    assert verdict.delay is None


def test_retry_after_ignored_on_close() -> None:
    """A close code never carries a delay, whatever the failure's headers."""
    failure = Failure(FailureKind.CLOSED, code=1013, headers={"retry-after": "120"})
    assert classify(failure, NOW).delay is None


# parse_retry_after directly.


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), ("0", 0.0), ("1", 1.0), (" 120 ", 120.0), ("007", 7.0)],
)
def test_parse_delay_seconds(value: str, expected: float) -> None:
    """delay-seconds parses into that many seconds."""
    assert parse_retry_after(value, NOW) == expected


def test_parse_http_date_future() -> None:
    """An HTTP-date 30 s after now parses into 30 s."""
    header = email.utils.formatdate(NOW + 30, usegmt=True)
    assert parse_retry_after(header, NOW) == pytest.approx(30.0, abs=1e-6)


def test_parse_http_date_uses_now() -> None:
    """The delay for a date is measured from the ``now`` argument."""
    header = email.utils.formatdate(NOW + 30, usegmt=True)
    assert parse_retry_after(header, NOW + 10) == pytest.approx(20.0, abs=1e-6)


def test_parse_http_date_rfc_example() -> None:
    """The RFC 9110 example date parses relative to now."""
    when = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    value = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert parse_retry_after(value, when - 5) == pytest.approx(5.0, abs=1e-6)


@pytest.mark.parametrize("seconds_ago", [1, 30, 86_400])
def test_parse_http_date_past_is_zero(seconds_ago: int) -> None:
    """A date in the past gives 0, never a negative delay."""
    header = email.utils.formatdate(NOW - seconds_ago, usegmt=True)
    assert parse_retry_after(header, NOW) == 0.0


def test_parse_http_date_now_is_zero() -> None:
    """A date equal to now gives 0."""
    assert parse_retry_after(email.utils.formatdate(NOW, usegmt=True), NOW) == 0.0


@pytest.mark.parametrize(
    "value", ["soon", "", "   ", "-5", "1.5", "1e3", "+5", "12s", "0x10", "Wed"]
)
def test_parse_malformed_is_none(value: str) -> None:
    """A malformed header gives None, so the ordinary backoff applies."""
    assert parse_retry_after(value, NOW) is None


def test_parse_absent_is_none() -> None:
    """A missing header gives None."""
    assert parse_retry_after(None, NOW) is None


@pytest.mark.parametrize(
    "value", ["Wed, 21 Oct 2015 07:28:00", "Wed, 21 Oct 2015 07:28:00 -0000"]
)
def test_parse_date_without_zone_is_none(value: str) -> None:
    """A date without a time zone gives None rather than a guess."""
    assert parse_retry_after(value, NOW) is None


# Verdict.


def test_verdict_fatal() -> None:
    """Verdict.fatal stops, with no delay."""
    assert Verdict.fatal("bad token") == Verdict(False, None, "bad token")


def test_verdict_again() -> None:
    """Verdict.again retries, with an optional minimum delay."""
    assert Verdict.again("later", delay=5.0) == Verdict(True, 5.0, "later")
    assert Verdict.again() == Verdict(True, None, "")


@pytest.mark.parametrize("value", ["9" * 400, "999999999"])
def test_retry_after_is_capped(value: str) -> None:
    """A huge Retry-After is capped, so a server cannot park the client forever."""
    assert parse_retry_after(value, 0.0) == MAX_RETRY_AFTER


def test_retry_after_http_date_is_capped() -> None:
    """A far-future Retry-After date is capped too."""
    when = email.utils.formatdate(10**9, usegmt=True)
    assert parse_retry_after(when, 0.0) == MAX_RETRY_AFTER


@pytest.mark.parametrize("value", ["²", "٣"])
def test_retry_after_non_ascii_digits(value: str) -> None:
    """Non-ASCII digits are malformed, not a delay."""
    assert parse_retry_after(value, 0.0) is None


@pytest.mark.parametrize("code", sorted(AUTH_CLOSE_CODES))
def test_auth_close_codes_are_fatal_auth(code: int) -> None:
    """Close codes meaning "credentials refused" are fatal and flagged auth."""
    verdict = classify(Failure(FailureKind.CLOSED, code=code), NOW)
    assert (verdict.retry, verdict.auth) == (False, True)


@pytest.mark.parametrize("status", sorted(AUTH_STATUSES))
def test_auth_statuses_are_fatal_auth(status: int) -> None:
    verdict = classify(Failure(FailureKind.STATUS, status=status), NOW)
    assert (verdict.retry, verdict.auth) == (False, True)


@pytest.mark.parametrize(
    "failure",
    [
        Failure(FailureKind.CLOSED, code=1011),
        Failure(FailureKind.STATUS, status=404),
        Failure(FailureKind.TLS_VERIFY),
    ],
)
def test_other_failures_are_not_auth(failure: Failure) -> None:
    assert not classify(failure, NOW).auth
