"""The dock's report throttle (superqt's ``qthrottled`` as the dock sets it up): the first value at once, then
at most one a period, and never the last lost."""

from __future__ import annotations

from superqt.utils import qthrottled


def test_shows_the_first_at_once_and_the_latest_of_a_burst_later(qtbot):
    shown: list[int] = []
    throttled = qthrottled(shown.append, timeout=200, leading=True)
    for value in range(10):
        throttled(value)
    assert shown == [0]  # the burst waits for the interval to end
    qtbot.waitUntil(lambda: shown == [0, 9], timeout=5000)  # only the latest of the burst, not every value
    qtbot.wait(400)
    assert shown == [0, 9]  # nothing kept back: nothing more


def test_flush_shows_what_was_kept_back_now(qtbot):
    shown: list[str] = []
    throttled = qthrottled(shown.append, timeout=60_000, leading=True)
    throttled("first")
    throttled("second")
    throttled("last")
    throttled.flush()
    assert shown == ["first", "last"]
    throttled.flush()
    assert shown == ["first", "last"]
