"""Rendering a route to mp4: camera frames when the route has video, the overlays (path, lanes, speed,
engagement, alert) either way, and clear errors."""

import os

import av
import numpy as np
import pytest

from cereal import messaging
from selfdrive.controls.tests.synth import fill_model
from selfdrive.loggerd.video_writer import VideoWriter
from tools.lib.make_route import write_route
from tools.render import render

T0 = 3_000_000_000
W, H = 1164, 874


def drive(n: int, with_video: bool) -> list:
    msgs = []
    for i in range(n):
        t = T0 + i * 50_000_000
        md = messaging.new_message("modelV2")
        md.logMonoTime = t + 2
        fill_model(md.modelV2, v=20.0, curvature=0.01)
        cs = messaging.new_message("carState")
        cs.logMonoTime, cs.carState.vEgo = t + 3, 20.0
        sd = messaging.new_message("selfdriveState")
        sd.logMonoTime = t + 4
        sd.selfdriveState.enabled = True
        sd.selfdriveState.alertText1, sd.selfdriveState.alertStatus = "TAKE CONTROL", "critical"
        msgs += [md, cs, sd]
        if with_video:
            idx = messaging.new_message("roadEncodeIdx")
            idx.logMonoTime = t
            e = idx.roadEncodeIdx
            e.frameId, e.segmentNum, e.segmentId, e.path = i, 0, i, "0/road.mp4"
            cam = messaging.new_message("roadCameraState")
            cam.logMonoTime, cam.roadCameraState.frameId = t + 1, i
            msgs[-3:-3] = [idx, cam]
    return msgs


def frames_of(path: str) -> list[np.ndarray]:
    with av.open(path) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(c.streams.video[0])]


class TestRender:
    def test_camera_video_with_overlays(self, tmp_path, capsys):
        route = write_route(drive(5, True), "v", root=str(tmp_path))
        vw = VideoWriter(os.path.join(route, "0", "road.mp4"), W, H)
        for _ in range(5):
            vw.write(np.full((H * 3 // 2, W), 128, np.uint8))  # mid grey (Y 128, neutral chroma)
        vw.close()
        out = str(tmp_path / "out.mp4")
        assert render.main([route, "-o", out, "--scale", "0.5"]) == 0
        assert "5 frames at 20 fps, camera video" in capsys.readouterr().out
        frames = frames_of(out)
        assert len(frames) == 5 and frames[0].shape == (436, 582, 3)
        img = frames[-1]
        assert abs(int(img[150, 150].mean()) - 128) < 20           # the camera picture shows through
        assert img[1, 290, 1] > 120 and img[1, 290, 2] < 80         # green border: engaged
        assert img[-20, 290, 2] > 120 and img[-20, 290, 0] < 80     # red banner: a critical alert
        # the path (orange) is drawn ahead of the car, in the lower half of the picture
        lower = img[220:400].reshape(-1, 3).astype(int)
        assert np.any((lower[:, 2] > 200) & (lower[:, 1] > 150) & (lower[:, 0] < 80))

    def test_route_without_video_renders_overlays_on_dark(self, tmp_path, capsys):
        route = write_route(drive(8, False), "nv", root=str(tmp_path))
        out = str(tmp_path / "out.mp4")
        assert render.main([route, "-o", out, "--scale", "0.25", "--start", "0.1"]) == 0
        assert "no camera video" in capsys.readouterr().out
        frames = frames_of(out)
        assert len(frames) == 6  # modelV2 at 0.15 ... 0.35 s
        assert int(frames[0][60, 270].mean()) < 60  # the dark background (the path bends left, away from here)

    def test_errors(self, tmp_path, capsys):
        assert render.main(["no-such-route", "-o", str(tmp_path / "x.mp4")]) == 2
        assert "no route" in capsys.readouterr().err
        route = write_route(drive(2, False), "r", root=str(tmp_path))
        assert render.main([route, "-o", str(tmp_path / "x.mp4"), "--start", "100"]) == 2
        assert "no frames in the selected time" in capsys.readouterr().err

    def test_a_route_with_only_can_is_refused_not_rendered_empty(self, tmp_path, capsys):
        can = messaging.new_message("can", 0)  # an imported drive: CAN and nothing the overlays draw
        can.logMonoTime = 1_000_000_000
        route = write_route([can], "imported", root=str(tmp_path))
        out = tmp_path / "x.mp4"
        assert render.main([route, "-o", str(out)]) == 2 and not out.exists()
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "no messages for " in err and "modelV2" in err

    @pytest.mark.parametrize("args, why", [
        (["-o", "missing/x.mp4"], "no such folder"),
        (["-o", "x.avi"], "must end in .mp4"),
        (["-o", "."], "is a folder"),
        (["--start", "nan"], "not a finite number"),
        (["--seconds", "inf"], "not a finite number"),
        (["--seconds", "0"], "--seconds must be positive"),
        (["--scale", "nan"], "not a finite number"),
    ])
    def test_bad_arguments_are_refused_before_reading(self, tmp_path, capsys, monkeypatch, args, why):
        monkeypatch.chdir(tmp_path)
        with pytest.raises(SystemExit) as e:
            render.main(["no-such-route", *args])
        err = capsys.readouterr().err
        assert e.value.code == 2 and len(err.splitlines()) == 1 and why in err
        assert list(tmp_path.iterdir()) == []
