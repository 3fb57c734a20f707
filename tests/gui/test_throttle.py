"""The dock's report throttle: the first value at once, then at most one a period, and never the last lost."""

from __future__ import annotations

from napari_unet._throttle import Throttled


def test_shows_the_first_at_once_and_the_latest_of_a_burst_later(qtbot):
    shown: list[int] = []
    throttled = Throttled(shown.append, interval_ms=200)
    for value in range(10):
        throttled(value)
    assert shown == [0]  # the burst waits for the interval to end
    qtbot.waitUntil(lambda: shown == [0, 9], timeout=5000)  # only the latest of the burst, not every value
    qtbot.wait(400)
    assert shown == [0, 9]  # nothing kept back: nothing more


def test_flush_shows_what_was_kept_back_now(qtbot):
    shown: list[str] = []
    throttled = Throttled(shown.append, interval_ms=60_000)
    throttled("first")
    throttled("second")
    throttled("last")
    throttled.flush()
    assert shown == ["first", "last"]
    throttled.flush()
    assert shown == ["first", "last"]
