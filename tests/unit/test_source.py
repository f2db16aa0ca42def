import os

import pytest

from gostg.policy.source import LineSource, read_lines


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_read_lines_strips_comments_and_blanks(tmp_path):
    f = tmp_path / "l"
    f.write_text("# head\n\n a.com  # trailing\n10.0.0.0/8\n   \n")
    assert read_lines(f) == ["a.com", "10.0.0.0/8"]


def test_inline_items_come_first(tmp_path):
    f = tmp_path / "l"
    f.write_text("b\n")
    assert LineSource(["a"], file=str(f)).value() == ["a", "b"]


def test_missing_file_at_build_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        LineSource([], file=str(tmp_path / "nope"))


def test_reload_only_after_period_and_change(tmp_path):
    f = tmp_path / "l"
    f.write_text("a\n")
    clock = Clock()
    calls = []
    src = LineSource([], file=str(f), reload=10, parse=lambda ls: calls.append(ls) or list(ls), clock=clock)
    f.write_text("a\nb\n")
    assert src.value() == ["a"]          # period not over yet
    clock.t += 11
    assert src.value() == ["a", "b"]
    clock.t += 11
    src.value()
    assert len(calls) == 2               # unchanged file is not re-parsed


def test_no_reload_without_period(tmp_path):
    f = tmp_path / "l"
    f.write_text("a\n")
    clock = Clock()
    src = LineSource([], file=str(f), clock=clock)
    f.write_text("z\n")
    clock.t += 1000
    assert src.value() == ["a"]


def test_vanished_or_broken_file_keeps_last_good_value(tmp_path):
    f = tmp_path / "l"
    f.write_text("1\n")
    clock = Clock()

    def parse(lines):
        return [int(x) for x in lines]

    src = LineSource([], file=str(f), reload=1, parse=parse, clock=clock)
    f.write_text("1\nnot-a-number\n")
    clock.t += 2
    assert src.value() == [1]
    os.unlink(f)
    clock.t += 2
    assert src.value() == [1]
    f.write_text("1\n2\n")
    clock.t += 2
    assert src.value() == [1, 2]
