"""Rides signed and verified ahead on a worker give the same city as rides signed and
verified at the ride; a ride whose inputs changed, or whose worker died, is done at the
ride and still counted once."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import polars as pl

from agents import CityModel
from agents.ride_codes import RideCodes
from platform_stub import InProcessClient, Platform
from scenarios.loader import load_scenario
from tests.conftest import TINY_SCENARIO

TRANSIT_HEAVY = {"adoption.initial_share": 0.7, "transit.card_claims_per_day": 0.8}


def _city(tmp: Path, name: str, days: int) -> tuple[CityModel, Platform]:
    scenario = load_scenario(TINY_SCENARIO, {**TRANSIT_HEAVY, "city.days": days})
    platform = Platform.open(f"sqlite:///{tmp / name}.db")
    model = CityModel(scenario, InProcessClient(platform), seed=5)
    platform.clock = model.sim_clock.aware
    return model, platform


def _run(tmp: Path, name: str, ride_codes: RideCodes) -> tuple[CityModel, pl.DataFrame]:
    model, platform = _city(tmp, name, days=5)
    model.ride_codes = ride_codes
    try:
        while model.running:
            model.step()
    finally:
        ride_codes.close()
        platform.close()
    return model, model.taps.frame()


def test_the_worker_changes_where_rides_are_verified_not_the_city(tmp_path: Path) -> None:
    ahead_model, ahead_taps = _run(tmp_path, "ahead", RideCodes(workers=1, rides_ahead_min=1))
    here_model, here_taps = _run(tmp_path, "here", RideCodes(workers=0))
    assert ahead_model.ride_codes.signed_ahead > 0
    assert here_model.ride_codes.signed_ahead == 0
    assert ahead_taps.height > 0
    assert ahead_taps.equals(here_taps)  # every column is sim time or seeded
    assert ahead_model.daily_rows == here_model.daily_rows


def _riders(model: CityModel, count: int) -> list:
    riders = [r for r in model.resident_list if r.credential is not None]
    assert len(riders) >= count, "the city has too few card holders for the test"
    return riders[:count]


def test_new_reader_keys_after_the_plan_mean_a_check_at_the_ride(tmp_path: Path) -> None:
    model, platform = _city(tmp_path, "keys", days=3)
    try:
        while model.running:
            model.step()
        rider, bus = _riders(model, 1)[0], model.bus_list[0]
        now_s = model.unix_s(model.clock(8 * 60))
        codes = RideCodes(workers=1, rides_ahead_min=1)
        codes.plan(model.rng, [(now_s, rider, bus), (now_s + 60, rider, bus)])
        assert codes.scan(codes.take(rider.index), rider, bus, now_s).accepted
        assert codes.signed_ahead == 1
        bus.reader.set_public_keys({**bus.reader.public_keys, 99: bytes(32)})
        second = codes.scan(codes.take(rider.index), rider, bus, now_s + 60)
        assert second.accepted and codes.signed_ahead == 1  # verified here, not taken
        codes.close()
    finally:
        platform.close()


def test_a_dead_worker_leaves_every_ride_verified_here(tmp_path: Path) -> None:
    model, platform = _city(tmp_path, "dead", days=3)
    try:
        while model.running:
            model.step()
        riders = _riders(model, 20)
        now_s = model.unix_s(model.clock(8 * 60))
        rides = [(now_s + 60 * i, r, model.bus_list[i % 2]) for i, r in enumerate(riders)]
        dying, steady = RideCodes(workers=1, rides_ahead_min=1), RideCodes(workers=0)
        dying.plan(np.random.default_rng(3), rides)
        steady.plan(np.random.default_rng(3), [(t, r, model.bus_list[2]) for t, r, _ in rides])
        for process in list(dying._pool._processes.values()):  # the worker, killed
            os.kill(process.pid, signal.SIGKILL)
        for now, rider, bus in rides:
            got = dying.scan(dying.take(rider.index), rider, bus, now)
            want = steady.scan(steady.take(rider.index), rider, model.bus_list[2], now)
            assert got.accepted and want.accepted, (got.reason, want.reason)
            assert got.verified.tap_id == want.verified.tap_id  # the same nonce, the same code
        assert dying.signed_ahead < len(rides)
        dying.close()
    finally:
        platform.close()
