"""The comparison itself: float tolerance, NaN, ignored timing fields, counts, and the readable lines."""

from cereal import messaging
from tests.process_replay.compare import compare, format_diff


def cs(v: float, t: int, valid: bool = True, **kw):
    msg = messaging.new_message("carState", valid=valid)
    msg.logMonoTime = t
    msg.carState.vEgo = v
    for k, val in kw.items():
        setattr(msg.carState, k, val)
    return messaging.log_from_bytes(msg.to_bytes())


class TestCompare:
    def test_equal_within_tolerance_and_timing_ignored(self):
        ref = [cs(10.0, 1), cs(20.0, 2)]
        new = [cs(10.0 + 1e-7, 5), cs(20.0, 9)]
        assert not compare(ref, new, 1e-5)

    def test_nan_equals_nan_but_not_a_number(self):
        assert not compare([cs(float("nan"), 1)], [cs(float("nan"), 1)])
        assert compare([cs(float("nan"), 1)], [cs(1.0, 1)])

    def test_readable_lines(self):
        ref = [cs(float(i), i * 10**7) for i in range(10)]
        new = [cs(float(i) + (0.5 if i >= 4 else 0.0), i * 10**7, valid=i != 7, gearShifter="drive")
               for i in range(10)]
        lines = format_diff("card", compare(ref, new, 1e-5))
        assert "card: carState.vEgo: 6 of 10 messages differ, first #4 at 0.040 s: 4 -> 4.5 (max |d| 0.5)" in lines
        assert any(ln.startswith("card: valid: 1 of 10 messages differ, first #7") for ln in lines)
        assert any("carState.gearShifter: 10 of 10 messages differ" in ln and "'unknown' -> 'drive'" in ln
                   for ln in lines)

    def test_message_counts_and_ignored_paths(self):
        ref = [cs(1.0, 1), cs(2.0, 2)]
        new = [cs(1.0, 1), cs(2.0, 2), cs(3.0, 3)]
        assert format_diff("x", compare(ref, new)) == ["x: carState: 2 messages in the reference, 3 now"]
        assert not compare([cs(1.0, 1, aEgo=1.0)], [cs(1.0, 1, aEgo=2.0)], ignore=("logMonoTime", "carState.aEgo"))
