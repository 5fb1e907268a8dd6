"""The report arithmetic against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from duda.bench import stats


def test_median_odd_and_even():
    assert stats.median([3.0, 1.0, 2.0]) == 2.0
    assert stats.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    with pytest.raises(ValueError):
        stats.median([])


def test_ratio_and_missing_reference():
    assert stats.ratio(1.35, 1.0) == pytest.approx(1.35)
    assert stats.ratio(3.0, 6.0) == 0.5
    assert math.isnan(stats.ratio(1.0, 0.0))
    assert math.isnan(stats.ratio(1.0, float("nan")))


def test_mean_std_is_the_sample_std_and_skips_missing_runs():
    mean, std = stats.mean_std([60.0, 62.0, 64.0])
    assert mean == 62.0 and std == pytest.approx(2.0)  # sqrt((4 + 0 + 4) / 2)
    assert stats.mean_std([60.0, None, 64.0, float("nan")]) == (62.0, pytest.approx(2.8284271))
    assert stats.mean_std([5.0]) == (5.0, 0.0)
    assert all(math.isnan(v) for v in stats.mean_std([None]))


def test_gap_closed():
    # source-only 20, oracle 70: 60 closes 40 of the 50 points
    assert stats.gap_closed(60.0, 20.0, 70.0) == pytest.approx(0.8)
    assert stats.gap_closed(20.0, 20.0, 70.0) == 0.0
    assert stats.gap_closed(70.0, 20.0, 70.0) == 1.0
    assert stats.gap_closed(10.0, 20.0, 70.0) == pytest.approx(-0.2)
    assert math.isnan(stats.gap_closed(50.0, 40.0, 40.0))  # no gap: nothing to close


def test_bandwidth_floor_and_copy_bandwidth():
    # 1 M fp32 parameters, three arrays of 4 MB at 12 GB/s: 1 ms
    assert stats.bandwidth_floor_s(1_000_000, 12e9) == pytest.approx(1e-3)
    # copying 1 GB in 0.2 s reads 1 GB and writes 1 GB: 10 GB/s
    assert stats.copy_bandwidth(10**9, 0.2) == pytest.approx(1e10)


def test_markdown_table_and_cells():
    table = stats.markdown_table(["a", "b"], [["x", 1], ["y", 2]])
    assert table == "| a | b |\n|:--|--:|\n| x | 1 |\n| y | 2 |\n"
    with pytest.raises(ValueError):
        stats.markdown_table(["a", "b"], [["only one"]])
    assert stats.fmt(1.234, 1, "×") == "1.2×"
    assert stats.fmt(float("nan")) == "–" and stats.fmt(None) == "–"
    assert stats.fmt_mean_std([1.0, 2.0, 3.0]) == "2.0 ± 1.0"
    assert stats.fmt_mean_std([21.55, float("nan")]) == "21.6"  # one finite seed: no spread


def test_json_safe_turns_non_finite_into_none():
    assert stats.json_safe({"a": [1.0, float("nan")], "b": (float("inf"), 2)}) == {
        "a": [1.0, None],
        "b": [None, 2],
    }
