"""Discovery against tokens or seconds (issue #15, item 3): the cost-grid estimators against brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sdpo_ttt.report.estimators import (
    band_on_cost_grid,
    bootstrap_discovery_cdf_cost,
    bootstrap_pass_at_k,
    cost_unit,
    pass_at_k,
)


def test_cost_cdf_equals_the_fraction_of_runs_solved_within_each_cost() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        r = int(rng.integers(1, 9))
        total = 1000.0
        disc = [None if rng.random() < 0.3 else float(rng.uniform(1, total)) for _ in range(r)]
        spent = [total] * r  # every run observed to the end
        unit = cost_unit(total, bins=50)
        band = bootstrap_discovery_cdf_cost(disc, spent, unit, n_boot=20)
        for j in range(1, len(band.estimate) + 1):
            brute = sum(1 for c in disc if c is not None and c <= j * unit + 1e-9) / r
            assert band.estimate[j - 1] == pytest.approx(brute)


def test_cost_cdf_ends_where_runs_were_last_observed() -> None:
    unit = cost_unit(100.0, bins=10)  # 10 per bin
    band = bootstrap_discovery_cdf_cost([None, None], [40.0, 65.0], unit, n_boot=10)
    assert len(band.estimate) == 6 and not band.estimate.any()  # bin 6 = (50, 60] is the last one wholly seen
    band = bootstrap_discovery_cdf_cost([35.0, None], [35.0, 100.0], unit, n_boot=10)
    assert band.estimate[2] == 0.0 and band.estimate[3] == 0.5 and len(band.estimate) == 10


def test_pass_at_k_moved_onto_the_cost_grid() -> None:
    n, c, per = 40, 3, 7.0  # 40 i.i.d. attempts of 7 tokens each on average
    band = bootstrap_pass_at_k(n, c, n, n_boot=30, seed=1)
    unit = cost_unit(500.0, bins=100)  # 5 tokens per bin
    moved = band_on_cost_grid(band, per, unit)
    assert len(moved.estimate) == math.floor(n * per / unit)  # ends where 40 attempts' cost does
    for j in range(1, len(moved.estimate) + 1):
        k = math.floor(j * unit / per + 1e-9)
        assert moved.estimate[j - 1] == pytest.approx(pass_at_k(n, c, k) if k >= 1 else 0.0)
    assert moved.replicates.shape == (30, len(moved.estimate))
    assert len(band_on_cost_grid(band, per, unit, max_bins=10).estimate) == 10
    assert (moved.low <= moved.estimate + 1e-12).all() and (moved.estimate <= moved.high + 1e-12).all()


def test_bad_costs_refused() -> None:
    with pytest.raises(ValueError, match="no cost recorded"):
        cost_unit(0.0)
    band = bootstrap_pass_at_k(4, 1, 4, n_boot=5)
    with pytest.raises(ValueError, match="cost per attempt must be > 0"):
        band_on_cost_grid(band, 0.0, 1.0)
