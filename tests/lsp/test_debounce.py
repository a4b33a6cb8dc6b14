"""The edit debounce follows the document's own trace cost, within [MIN_DEBOUNCE_S, the debounceMs setting]:
the setting stays the maximum, a document never traced yet waits the setting, and a setting over a second (a
user holding traces while typing) is kept as it is. An edit after a pause waits MIN_DEBOUNCE_S only."""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Any

from shapelens.lsp.configuration import Config
from shapelens.lsp.scheduler import MIN_DEBOUNCE_S, PAUSE_S, Scheduler


def _scheduler(debounce_ms: int) -> Scheduler:
    config = Config()
    config.settings = dataclasses.replace(config.settings, debounce_ms=debounce_ms)
    stub: Any = object()
    return Scheduler(config, stub, stub, stub, stub, stub)


def test_the_wait_is_the_trace_cost_within_the_setting() -> None:
    scheduler = _scheduler(300)
    assert scheduler.debounce_s("file:///a.py") == 0.3  # never traced: the setting
    scheduler.costs["file:///a.py"] = deque([0.04, 0.05, 0.045])
    assert scheduler.debounce_s("file:///a.py") == 0.045  # a 45 ms trace waits 45 ms, not 300
    scheduler.costs["file:///a.py"] = deque([1.2, 0.9, 2.0])
    assert scheduler.debounce_s("file:///a.py") == 0.3  # an expensive trace: the setting is the maximum
    scheduler.costs["file:///a.py"] = deque([0.001])
    assert scheduler.debounce_s("file:///a.py") == MIN_DEBOUNCE_S  # a burst of keystrokes still coalesces
    assert scheduler.debounce_s("file:///b.py") == 0.3  # per document


def test_a_setting_over_a_second_holds_traces_as_it_says() -> None:
    scheduler = _scheduler(60000)
    scheduler.costs["file:///a.py"] = deque([0.05])
    assert scheduler.debounce_s("file:///a.py") == 60.0


def test_a_smaller_setting_wins() -> None:
    scheduler = _scheduler(10)
    scheduler.costs["file:///a.py"] = deque([0.2])
    assert scheduler.debounce_s("file:///a.py") == 0.01


def test_an_edit_after_a_pause_is_traced_at_once_a_burst_waits() -> None:
    scheduler = _scheduler(300)
    uri = "file:///a.py"
    scheduler.costs[uri] = deque([0.12, 0.1, 0.11])
    assert scheduler.debounce_s(uri, now=100.0) == MIN_DEBOUNCE_S  # the first edit: nothing to coalesce with
    assert scheduler.debounce_s(uri, now=100.15) == 0.11  # the next keystroke of a burst: the trace's cost
    assert scheduler.debounce_s(uri, now=100.3) == 0.11
    assert scheduler.debounce_s(uri, now=100.3 + PAUSE_S) == MIN_DEBOUNCE_S  # after a pause: at once again
    held = _scheduler(60000)
    held.costs[uri] = deque([0.05])
    assert held.debounce_s(uri, now=1.0) == 60.0  # a user holding traces is never overruled
