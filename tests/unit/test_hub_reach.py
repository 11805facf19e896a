"""Whether the hub can be asked, what a failed request means, and which failures are tried again."""

import socket

import pytest

from redsm5_hpo.hub_reach import RetriesExhausted, failure_kind, unreachable_reason, with_retries


class HttpError(Exception):
    """An HTTP error as the hub client raises them: the server's answer on ``response``."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.response = type("Response", (), {"status_code": status})()


def chained(outer: Exception, inner: BaseException) -> Exception:
    outer.__cause__ = inner
    return outer


def test_offline_mode_or_an_unresolvable_host_is_found_without_a_request(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert unreachable_reason() == "HF_HUB_OFFLINE is set"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")  # .invalid never resolves (RFC 2606)
    reason = unreachable_reason()
    assert reason is not None and reason.startswith("its host hub.invalid does not resolve")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert unreachable_reason() is None
    asked: list[tuple] = []
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example.org")
    assert unreachable_reason(resolve=lambda *a: asked.append(a)) is None and asked == [("hub.example.org", 443)]


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (HttpError(404), "missing"),
        (HttpError(401), "auth"),
        (HttpError(403), "auth"),
        (HttpError(503), "transient"),
        (HttpError(429), "transient"),
        (
            chained(OSError("We couldn't connect"), chained(RuntimeError("entry"), socket.gaierror(-2, "no"))),
            "transient",
        ),
        (chained(OSError("couldn't connect"), TimeoutError("slow")), "transient"),
        (chained(OSError("wrapped"), HttpError(404)), "missing"),  # the cause decides, however deep
        (ValueError("config.json is not valid JSON"), "other"),
    ],
)
def test_failed_requests_are_told_apart(error, kind) -> None:
    assert failure_kind(error) == kind


def test_transient_failures_are_tried_again_with_backoff_and_others_raise_at_once() -> None:
    waits: list[float] = []
    outcomes = iter([ConnectionError("reset"), HttpError(502), "loaded"])

    def call() -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    retried: list[int] = []
    assert with_retries(call, (1, 2, 4), waits.append, lambda attempt, e: retried.append(attempt)) == "loaded"
    assert waits == [1, 2] and retried == [1, 2]

    waits.clear()
    with pytest.raises(HttpError):
        with_retries(lambda: (_ for _ in ()).throw(HttpError(404)), (1, 2), waits.append)
    assert waits == []  # no such repository: no retry

    with pytest.raises(RetriesExhausted) as gave_up:
        with_retries(lambda: (_ for _ in ()).throw(TimeoutError("slow")), (1, 2, 4, 8, 16), waits.append)
    assert waits == [1, 2, 4, 8] and gave_up.value.attempts == 5 and isinstance(gave_up.value.last, TimeoutError)
