"""Calibration: how well a model's stated confidence matches how often it is right; and how
precisely a test set's accuracy tells a model's."""

import json

import pytest
import torch
from conftest import run_cli

from digitos.evaluate import (
    NOT_A_DIGIT,
    NOT_A_DIGIT_FROM,
    accuracy_interval,
    calibration,
    metrics_from_logits,
    rejection_report,
    share_with_interval,
)


def test_the_accuracy_interval_is_wilsons():
    # Textbook values (Wilson 1927; Newcombe 1998, table I): 0 of 10, 5 of 10, 81 of 263.
    assert accuracy_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert accuracy_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert accuracy_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    # It narrows as the test set grows, and always holds the accuracy measured.
    wide, narrow = accuracy_interval(491, 500), accuracy_interval(9820, 10000)
    assert wide[0] < narrow[0] <= 0.982 <= narrow[1] < wide[1]
    assert accuracy_interval(10, 10)[1] == 1.0 and accuracy_interval(0, 0) == (0.0, 1.0)
    # A benchmark's row, as numbers_accuracy.py and wild_accuracy.py print it.
    assert share_with_interval(491, 500) == " 98.20%  (491/500; 95% interval 96.6-99.1%)"
    # In the metrics, for the accuracy read: 3 of 4 right.
    logits = torch.eye(3)[[0, 1, 2, 0]] * 5
    metrics = metrics_from_logits(logits, torch.tensor([0, 1, 2, 1]), ["a", "b", "c"])
    assert metrics["accuracy"] == 0.75
    assert metrics["accuracy_interval"] == pytest.approx(accuracy_interval(3, 4))


def test_expected_calibration_error_is_the_gap_between_confidence_and_accuracy():
    # Says 90% and is right 9 times in 10: calibrated.
    right = torch.tensor([True] * 9 + [False])
    assert calibration(torch.full((10,), 0.9), right)["ece"] == pytest.approx(0.0, abs=1e-6)
    # Says 90% and is right half the time: 40 points too sure.
    half = torch.tensor([True, False] * 5)
    assert calibration(torch.full((10,), 0.9), half)["ece"] == pytest.approx(0.4)
    # Two bins, weighted by their counts: 6 images at 0.55 right 3 times (gap 0.05), 4 at
    # 0.95 right every time (gap 0.05).
    confidence = torch.tensor([0.55] * 6 + [0.95] * 4)
    correct = torch.tensor([True, False] * 3 + [True] * 4)
    report = calibration(confidence, correct, bins=10)
    assert report["ece"] == pytest.approx(0.05)
    assert [(b["count"], round(b["accuracy"], 2)) for b in report["bins"]] == [(6, 0.5), (4, 1.0)]
    assert calibration(torch.ones(3), torch.tensor([True] * 3))["bins"][-1]["to"] == 1.0


def test_the_rejection_report_counts_refusals_as_reading_decides_them():
    classes = [*map(str, range(10)), NOT_A_DIGIT]

    def probs(not_a_digit: float) -> list[float]:
        return [1 - not_a_digit] + [0.0] * 9 + [not_a_digit]

    digits = torch.tensor([probs(0.0), probs(0.1), probs(NOT_A_DIGIT_FROM - 0.05), probs(0.99)])
    others = torch.tensor([probs(0.99), probs(0.95), probs(0.2), probs(NOT_A_DIGIT_FROM + 0.05)])
    report = rejection_report(digits, others, classes)
    assert report["digits_refused"] == 0.25  # only the one at 0.99; under the bar is a digit
    assert report["non_digits_refused"] == 0.75
    assert report["threshold"] == NOT_A_DIGIT_FROM and report["calibration"]["ece"] > 0


def test_evaluate_reports_calibration_and_draws_the_reliability_plot(mnist_dir, tmp_path):
    """The shipped model (which has the not-a-digit class) on 500 test digits and 3x100
    held-out non-digits."""
    proc = run_cli("evaluate", "src/digitos/weights/digitnet.pt", "--data-dir", mnist_dir,
                   "--limit-test", 500, "--negatives", 100, "--json", "--out", tmp_path / "eval")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert 0 <= report["calibration"]["ece"] < 0.02
    assert sum(b["count"] for b in report["calibration"]["bins"]) == 500
    rejection = report["not_a_digit"]
    assert rejection["non_digits"] in (200, 300) and rejection["non_digits_refused"] > 0.9
    assert rejection["digits"] == 500 and rejection["digits_refused"] < 0.01
    assert (tmp_path / "eval" / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["not_a_digit"] == rejection
    table = run_cli("evaluate", "src/digitos/weights/digitnet.pt", "--data-dir", mnist_dir,
                    "--limit-test", 500, "--negatives", 0)
    assert "expected calibration error" in table.stdout and "held-out" not in table.stdout
