"""The shared pacing of streamed edits (Slack and Discord delivery)."""

from __future__ import annotations

from adapters.pacing import CURSOR, PacedText


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_first_delta_shows_then_at_most_once_an_interval() -> None:
    clock = Clock()
    pace = PacedText(1.0, clock)
    shown = []
    for n, piece in enumerate(["a ", "b ", "c ", "d ", "e "]):
        clock.now = n * 0.4
        if pace.add(piece):
            shown.append(pace.preview())
            pace.shown()
    assert shown == ["a" + CURSOR, "a b c d" + CURSOR]  # at 0 s and 1.2 s


def test_previews_are_cut_to_the_platform_limit() -> None:
    pace = PacedText()
    pace.add("x" * 50 + "END")
    assert pace.preview(10) == "x" * 10 + CURSOR
    assert pace.preview(10, tail=True) == "x" * 7 + "END" + CURSOR
