"""The plot tool: dotted paths with list indices, bools and enums, time from the route's start, and clear
errors for bad paths and bad sources."""

import numpy as np
import pytest

from cereal import messaging
from tools.lib.make_route import write_route
from tools.plot import plot

T0 = 5_000_000_000


def route(tmp_path) -> str:
    msgs = []
    for i in range(20):
        cs = messaging.new_message("carState")
        cs.logMonoTime = T0 + i * 10_000_000
        cs.carState.vEgo = float(i)
        cs.carState.standstill = i % 2 == 0
        msgs.append(cs)
        if i % 5 == 0:
            md = messaging.new_message("modelV2")
            md.logMonoTime = T0 + i * 10_000_000 + 1
            md.modelV2.laneLineProbs = [0.1, 0.2 + i, 0.3]
            md.modelV2.init("laneLines", 2)[1].y = [float(i), float(-i)]
            msgs.append(md)
            sd = messaging.new_message("selfdriveState")
            sd.logMonoTime = T0 + i * 10_000_000 + 2
            sd.selfdriveState.state = "enabled" if i >= 10 else "disabled"
            msgs.append(sd)
    return write_route(msgs, "r", root=str(tmp_path))


class TestSeries:
    def test_fields_indices_bools_enums(self, tmp_path):
        series, lr = plot.read_series(route(tmp_path), ["carState.vEgo", "carState.standstill",
                                                        "modelV2.laneLineProbs[1]", "modelV2.laneLines[1].y[-1]",
                                                        "selfdriveState.state"])
        v, still, prob, y, state = series
        assert np.allclose(v.t, np.arange(20) * 0.01) and np.allclose(v.y, np.arange(20))
        assert list(still.y[:4]) == [1, 0, 1, 0]
        assert np.allclose(prob.y, [0.2, 5.2, 10.2, 15.2]) and np.allclose(prob.t, np.arange(4) * 0.05, atol=1e-8)
        assert np.allclose(y.y, [0, -5, -10, -15])
        assert list(state.y) == [0, 0, 2, 2] and state.labels == {0: "disabled", 2: "enabled"}
        assert lr.problems == []

    def test_index_past_the_end_is_a_gap(self, tmp_path):
        (s,), _ = plot.read_series(route(tmp_path), ["modelV2.laneLineProbs[7]"])
        assert len(s.t) == 4 and np.isnan(s.y).all()

    def test_png_is_written(self, tmp_path, capsys):
        out = tmp_path / "p.png"
        assert plot.main([route(tmp_path), "carState.vEgo", "selfdriveState.state", "-o", str(out)]) == 0
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "carState.vEgo: 20 samples, 0..19" in capsys.readouterr().out


class TestErrors:
    @pytest.mark.parametrize("field, why", [
        ("carState.noSuchField", "no field 'noSuchField'"),
        ("notAService.x", "unknown service"),
        ("carState..vEgo", "bad field path"),
        ("carState.vEgo[x]", "bad field path"),
        ("carState.cruiseState", "not a number"),
    ])
    def test_bad_paths(self, tmp_path, capsys, field, why):
        assert plot.main([route(tmp_path), field, "-o", str(tmp_path / "p.png")]) == 2
        assert why in capsys.readouterr().err
        assert not (tmp_path / "p.png").exists()

    def test_bad_source(self, tmp_path, capsys):
        (tmp_path / "notes.txt").write_text("hello")
        assert plot.main([str(tmp_path / "notes.txt"), "carState.vEgo"]) == 2
        assert "not a roadpilot log" in capsys.readouterr().err
        assert plot.main(["no-such-route", "carState.vEgo"]) == 2

    def test_a_field_without_messages_is_refused(self, tmp_path, capsys):
        out = tmp_path / "p.png"
        assert plot.main([route(tmp_path), "carState.vEgo", "liveCalibration.height[0]", "-o", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"plot: no messages in {tmp_path / 'r'} for liveCalibration.height[0] (no liveCalibration); " \
                      "nothing written"
        assert not out.exists()

    @pytest.mark.parametrize("out, why", [
        ("missing/p.png", "no such folder"),
        ("p.jpg", "must end in .png"),
        ("p", "must end in .png"),  # savefig would have written p.png
        (".", "is a folder"),
    ])
    def test_bad_out_is_refused_before_reading(self, tmp_path, capsys, monkeypatch, out, why):
        monkeypatch.chdir(tmp_path)
        with pytest.raises(SystemExit) as e:
            plot.main(["no-such-route", "carState.vEgo", "-o", out])
        err = capsys.readouterr().err
        assert e.value.code == 2 and len(err.splitlines()) == 1 and why in err
        assert list(tmp_path.iterdir()) == []  # nothing written
