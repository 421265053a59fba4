"""card's logic on the real RAV4 minute (../shared/data/comma2k19-rav4), in 10 ms batches as canbridged
delivers them: speed, steering angle and the radar's tracks as the data set decoded them, and CAN validity that
matches how that car was wired (DSU unplugged, radar on bus 1, no camera bus recorded)."""

import numpy as np
import pytest

from selfdrive.car.car_specific import CarSetup
from selfdrive.car.tests.helpers import (
    DATA,
    SKIP_REASON,
    batches,
    car_logic_for,
    have_data,
    load_npy,
    real_frames,
)

pytestmark = pytest.mark.skipif(not have_data(), reason=SKIP_REASON)
STARTUP_S = 2.0  # fingerprint window (1 s) + every message seen and its rate learned


@pytest.fixture(scope="module")
def packets():
    return batches(real_frames())


def run(packets, setup=None, seconds=None):
    logic, used = car_logic_for(packets, setup=setup)
    rest = packets[used:] if seconds is None else packets[used:used + int(seconds * 100)]
    rows = []
    for t, frames in rest:
        CS = logic.update([(t, frames)])
        rows.append((t * 1e-9, CS.vEgoRaw, CS.steeringAngleDeg, CS.canValid, CS.canTimeout, CS.canErrorCounter))
    return logic, np.array(rows)


def reference(name: str) -> tuple[np.ndarray, np.ndarray]:
    base = DATA / "processed_log" / "CAN" / name
    return load_npy(base / "t").reshape(-1), load_npy(base / "value").reshape(-1)


def matched(rows: np.ndarray, col: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """For each data set sample, card's value from the first batch that contains the sample's frame."""
    t, v = reference(name)
    k = np.searchsorted(rows[:, 0], t, side="right")
    ok = (k < len(rows)) & (t >= rows[0, 0] + STARTUP_S)
    return rows[k[ok], col], v[ok]


@pytest.fixture(scope="module")
def auto(packets):
    return run(packets)


# The data set's radar points are measured from 2.7 m further back than opendbc's (from the front of the car):
# every one of them is LONG_DIST + 2.7 (checked over the minute: 99% of card's points match one to 0.05 m)
DATA_SET_RADAR_OFFSET = 2.7


@pytest.fixture(scope="module")
def radar(packets):
    """(time s, [(dRel, yRel, vRel)], canError) of every radar cycle card completed after the fingerprint window."""
    logic, used = car_logic_for(packets)
    out = []
    for t, frames in packets[used:]:
        logic.update([(t, frames)])
        if logic.tracks is not None:
            out.append((t * 1e-9, [(p.dRel, p.yRel, p.vRel) for p in logic.tracks.points],
                        logic.tracks.errors.canError))
    return out


class TestRealRav4:
    def test_radar_tracks_every_50_ms_as_the_data_set_has_them(self, radar):
        base = DATA / "processed_log" / "CAN" / "radar"
        t, value = load_npy(base / "t").reshape(-1), load_npy(base / "value")  # value: dRel, yRel, vRel, ...
        assert len(radar) >= 0.98 * 20 * (radar[-1][0] - radar[0][0])  # 20 Hz
        assert not any(err for _, _, err in radar)
        assert np.mean([len(pts) > 0 for _, pts, _ in radar]) > 0.9
        hit = total = 0
        for tc, pts, _ in radar:
            ref = value[(t > tc - 0.05) & (t <= tc)]  # the data set's points of this cycle
            for d, y, v in pts:
                total += 1
                hit += bool(np.any((np.abs(ref[:, 0] - DATA_SET_RADAR_OFFSET - d) < 0.05) &
                                   (np.abs(ref[:, 1] - y) < 0.05) & (np.abs(ref[:, 2] - v) < 0.05)))
        assert total > 5000 and hit / total >= 0.98

    def test_speed_matches_the_data_set(self, auto):
        got, want = matched(auto[1], 1, "speed")
        assert len(want) > 4000
        assert np.mean(np.abs(got - want) <= 0.05) >= 0.99

    def test_steering_angle_matches_the_data_set(self, auto):
        got, want = matched(auto[1], 2, "steering_angle")
        assert len(want) > 4000
        # 1e-4: carState is float32, the data set's 0.1° steps are not exact in it
        assert np.mean(np.abs(got - want) <= 0.1 + 1e-4) >= 0.99

    def test_detects_the_unplugged_dsu_and_missing_camera_bus(self, auto):
        logic, _ = auto
        notes = " | ".join(logic.plan.notes)
        assert "DSU absent" in notes and "no PRE_COLLISION/ACC_CONTROL from the car" in notes
        assert logic.plan.connected_buses == frozenset({0, 1})
        assert logic.CP.openpilotLongitudinalControl
        assert logic.not_expected == ["LKAS_HUD"]  # the camera's bus 2 is not in the recording

    def test_can_valid_after_startup_and_nothing_dropped(self, auto):
        logic, rows = auto
        after = rows[rows[:, 0] >= rows[0, 0] + STARTUP_S]
        assert after[:, 3].all(), f"canValid false at {np.flatnonzero(after[:, 3] == 0)[:5]}: {logic.problems}"
        assert not after[:, 4].any()
        assert logic.problems == []
        assert rows[-1, 5] == 0 and logic.filter.total_dropped == 0  # every frame's length and checksum were right

    def test_stock_expectation_is_invalid_and_names_pre_collision(self, packets):
        logic, rows = run(packets, CarSetup(dsu="present"), seconds=5)
        assert not rows[:, 3].any()
        assert logic.problems == ["PRE_COLLISION (bus 0): never received"]
        assert not logic.CP.openpilotLongitudinalControl

    def test_claiming_a_camera_bus_that_is_not_there_names_lkas_hud(self, packets):
        logic, rows = run(packets, CarSetup(buses=frozenset({0, 1, 2})), seconds=4)
        assert not rows[:, 3].any()
        assert logic.problems == ["LKAS_HUD (bus 2): never received"]

    def test_lengths_lost_by_the_recording_are_counted_not_trusted(self, packets):
        # Without the DBC lengths, the S8 payloads come back short: those frames are dropped and
        # counted, and the messages they carry never become valid.
        short = [(t, [(a, d.rstrip(b"\0"), b) for a, d, b in frames]) for t, frames in packets[:400]]
        logic, used = car_logic_for(short)
        for t, frames in short[used:]:
            CS = logic.update([(t, frames)])
        assert not CS.canValid
        assert CS.canErrorCounter == logic.filter.total_dropped > 0
        assert any(why == "length" for (_, _, why) in logic.filter.dropped)
        assert any("never received" in p or "timed out" in p for p in logic.problems)
