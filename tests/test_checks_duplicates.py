"""The duplicate checks' messages: large counts read as a person would write them."""

from __future__ import annotations

from splitaudit.checks.duplicates import NearDuplicates


def _numbers(pairs: int, n_hit: int, expected: float | None) -> dict:
    return {"pairs": pairs, "n_val": 9_500, "val_with_train_duplicate": n_hit, "fraction_val": n_hit / 9_500,
            "expected": expected, "ratio": None if expected is None else pairs / expected, "p_value": 1.0}


def test_large_counts_have_thousands_separators_and_no_decimals():
    message = NearDuplicates()._message(_numbers(39_074, 8_123, 143_353.6))
    assert message.startswith("8,123 of 9,500 val images (85.51%) have a near duplicate in train (39,074 pairs)")
    assert "would give about 143,354 (observed/expected 0.27" in message
    assert "143353" not in message


def test_small_expectations_keep_one_decimal():
    message = NearDuplicates()._message(_numbers(1, 1, 2.46))
    assert "1 of 9,500 val images (0.01%) has a near duplicate in train (1 pair)" in message
    assert "would give about 2.5 " in message
