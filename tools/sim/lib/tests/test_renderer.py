import math
from dataclasses import replace

import numpy as np
import pytest

from tools.sim.lib.dynamics import VehicleState
from tools.sim.lib.renderer import Look, Renderer, bgr_to_yuv, nv12_to_bgr
from tools.sim.lib.scenarios import make_world

W, H = 1164, 874
DISTANCES = (6.0, 9.0, 13.0, 18.0, 25.0, 32.0)
LOOKS = [Look.plain(), Look.random(1), Look.random(2), Look.random(5), Look.random(11)]


def empty_world(name: str, seed: int):
    world = make_world(name, seed)
    world.vehicles = []
    return world


def ego_at(world, s: float, lane: int | None = None, yaw_offset: float = 0.0) -> VehicleState:
    lane = world.ego_lane if lane is None else lane
    x, y, yaw = world.road.position(s, world.road.lane_center_offset(lane))
    return VehicleState(x=x, y=y, yaw=yaw + yaw_offset, vx=20.0)


def curve_start(road, min_s: float = 100.0) -> float:
    """Arc length a little before the first constant-radius section past min_s."""
    return next(sec.s0 for sec in road.sections if sec.kind == "arc" and sec.s0 > min_s) - 5.0


class Planes:
    """The frame's Y and UV planes and the look's expected levels after its tone curve and vignette."""

    def __init__(self, renderer: Renderer, frame: np.ndarray):
        self.r, self.y = renderer, frame[:H].astype(float)
        self.uv = frame[H:].reshape(H // 2, W // 2, 2).astype(float)

    def y_at(self, u: float, v: float) -> float:
        ui, vi = int(round(u)), int(round(v))
        return float(self.y[vi - 1:vi + 2, ui - 1:ui + 2].mean())

    def y_along(self, uv: np.ndarray, direction: np.ndarray) -> float:
        """Mean Y of 5 pixels along a painted line (averages the noise without mixing in its surroundings)."""
        pts = np.rint(uv + np.arange(-2, 3)[:, None] * direction).astype(int)
        return float(self.y[pts[:, 1], pts[:, 0]].mean())

    def uv_at(self, u: float, v: float) -> np.ndarray:
        ui, vi = int(round((u - 0.5) / 2)), int(round((v - 0.5) / 2))
        return self.uv[vi, ui]

    def expected_y(self, bgr, u: float, v: float) -> float:
        look = self.r.look
        y = float(self.r._lut[bgr_to_yuv(bgr, look.saturation)[0]])
        return y * (self.r._vig[int(round(v)), int(round(u))] / 255.0 if self.r._vig is not None else 1.0)


def painted_points(road, s_ego: float):
    """(world points, colour name, boundary) for the centre of every painted stripe at the test distances:
    the centre, the stripe's two edges and a point 1 m further along it."""
    out = []
    for m in road.markings:
        for dist in DISTANCES:
            s = s_ego + dist
            if m.kind == "dashed":  # the centre of the dash nearest to s
                period = m.dash + m.gap
                s = math.floor(s / period) * period + 0.5 * m.dash
                assert m.painted(s)
            for off in m.stripes():
                pts = [(s, off), (s, off + 0.5 * m.width), (s, off - 0.5 * m.width), (s + 1.0, off)]
                out.append(([(*road.position(a, d)[:2], road.elevation(a)) for a, d in pts], m.colour, m))
    return out


def check_frame(renderer: Renderer, world, ego: VehicleState) -> tuple[int, int]:
    """Projects the ground truth with the renderer's own camera and checks the painted pixels. Returns
    (marking points checked, asphalt points checked)."""
    road, look = world.road, renderer.look
    frame = renderer.render(world, ego)
    p = Planes(renderer, frame)
    pose = renderer.camera_pose(world, ego)
    s_ego, _ = road.project(ego.x, ego.y)
    asphalt_uv = np.array(bgr_to_yuv(look.asphalt, look.saturation)[1:], dtype=float)
    marks = painted_points(road, s_ego)
    pix, depth = renderer.project_points(np.array([pts for pts, _, _ in marks]), pose)
    checked_marks = 0
    for (_, colour, m), (c, left, right, ahead), z in zip(marks, pix, depth[:, 0], strict=True):
        u, v = c
        if not (z > 0 and 5 <= u < W - 5 and 5 <= v < H - 5):
            continue
        direction = (ahead - c) / np.linalg.norm(ahead - c)
        e = left - right
        across = abs(e[0] * direction[1] - e[1] * direction[0])   # the stripe's thickness in pixels
        if across < (2.5 if look.blur > 0 else 1.2):      # thinner lines are smeared by blur: skipped
            continue
        bgr = look.white if colour == "white" else look.yellow
        y, y_paint, y_asph = p.y_along(c, direction), p.expected_y(bgr, u, v), p.expected_y(look.asphalt, u, v)
        assert abs(y - y_paint) < abs(y - y_asph), f"{m.kind} {colour} at ({u:.0f}, {v:.0f}): Y {y:.0f} " \
                                                  f"is not paint ({y_paint:.0f}) but asphalt ({y_asph:.0f})"
        if colour == "yellow":   # yellow is told from white by its chroma: less blue than the asphalt
            paint_uv = np.array(bgr_to_yuv(bgr, look.saturation)[1:], dtype=float)
            got = p.uv_at(u, v)
            assert abs(got[0] - paint_uv[0]) < abs(got[0] - asphalt_uv[0]), f"not yellow at ({u:.0f}, {v:.0f})"
        checked_marks += 1
    # between the markings: lane centres, the gap of a double line, the gaps between dashes
    gaps = [(s_ego + d, road.lane_center_offset(lane)) for d in DISTANCES for lane in range(road.num_lanes)]
    for m in road.markings:
        for d in DISTANCES[:3]:
            if m.kind == "double":
                gaps.append((s_ego + d, m.offset))
            elif m.kind == "dashed":
                period = m.dash + m.gap
                gaps.append((math.floor((s_ego + d) / period) * period + m.dash + 0.5 * m.gap, m.offset))
    pts = np.array([(*road.position(s, d)[:2], road.elevation(s)) for s, d in gaps])
    pix, depth = renderer.project_points(pts, pose)
    checked_asphalt = 0
    for (u, v), z in zip(pix, depth, strict=True):
        if not (z > 0 and 3 <= u < W - 3 and 3 <= v < H - 3):
            continue
        y = p.y_at(u, v)
        y_asph, y_white = p.expected_y(look.asphalt, u, v), p.expected_y(look.white, u, v)
        assert abs(y - y_asph) < abs(y - y_white), f"asphalt expected at ({u:.0f}, {v:.0f}): Y {y:.0f}"
        checked_asphalt += 1
    return checked_marks, checked_asphalt


class TestGeometry:
    @pytest.mark.parametrize("look", LOOKS, ids=lambda lk: f"look{lk.seed}")
    def test_markings_fall_on_painted_pixels_highway(self, look):
        world = empty_world("highway", 3)
        renderer = Renderer(look=look)
        marks, asphalt = check_frame(renderer, world, ego_at(world, world.ego_s + 20.0))
        assert marks >= 2 * len(DISTANCES) and asphalt >= 2 * len(DISTANCES)

    @pytest.mark.parametrize("look", LOOKS[:3], ids=lambda lk: f"look{lk.seed}")
    def test_double_yellow_and_narrow_lanes_suburban(self, look):
        world = empty_world("suburban", 2)
        assert any(m.kind == "double" for m in world.road.markings)
        marks, _ = check_frame(Renderer(look=look), world, ego_at(world, world.ego_s + 5.0))
        assert marks >= 2 * len(DISTANCES)

    @pytest.mark.parametrize("look", LOOKS[:3], ids=lambda lk: f"look{lk.seed}")
    def test_on_a_curve_with_camera_offsets_and_a_heading_error(self, look):
        world = empty_world("curvy", 4)
        renderer = Renderer(look=look, pitch=0.03, yaw=-0.02, roll=0.01)
        s = curve_start(world.road)
        marks, asphalt = check_frame(renderer, world, ego_at(world, s, yaw_offset=0.03))
        assert marks >= len(DISTANCES) and asphalt >= len(DISTANCES)

    def test_on_a_grade(self):
        world = empty_world("suburban", 6)
        s = np.arange(world.ego_s, world.road.length - 300, 5.0)
        steepest = float(s[np.argmax(np.abs(np.diff(world.road.grade(s))))])  # where the grade changes most
        marks, _ = check_frame(Renderer(look=Look.random(3)), world, ego_at(world, steepest))
        assert marks >= len(DISTANCES)

    def test_horizon_follows_pitch(self):
        world = empty_world("straight", 0)
        ego = ego_at(world, world.ego_s + 10)
        far = np.array([[ego.x + 5000.0, ego.y, 1.22]])
        for pitch in (0.0, 0.03, -0.02):
            r = Renderer(pitch=pitch)
            (u, v), = r.project_points(far, r.camera_pose(world, ego))[0]
            assert u == pytest.approx(582.0, abs=0.5) and v == pytest.approx(437.0 - 910.0 * math.tan(pitch), abs=0.6)
            frame = r.render(world, ego)
            col = frame[:H, 200].astype(int)
            sky, ground = col[: int(v) - 30], col[int(v) + 30:int(v) + 60]
            assert sky.min() > ground.max()   # bright sky above the horizon, darker ground below


class TestVehicles:
    def test_lead_is_drawn_with_tail_lights_that_brighten_when_braking(self):
        world = make_world("stopped_car", 0)
        car = world.vehicles[0]
        world.vehicles = [car]
        renderer = Renderer()
        ego = ego_at(world, car.s - 20.0)
        pose = renderer.camera_pose(world, ego)
        x, y, z, yaw = car.pose(world.road)
        back = np.array([x - math.cos(yaw) * car.length / 2, y - math.sin(yaw) * car.length / 2, z])
        left = np.array([-math.sin(yaw), math.cos(yaw), 0.0])
        body_top = 0.55 * car.height
        lamp = back + left * (car.width / 2 - 0.2) + np.array([0, 0, body_top - 0.22])
        (lu, lv), = renderer.project_points(lamp[None], pose)[0]
        p = Planes(renderer, renderer.render(world, ego))
        assert car.brake_lights
        v_braking = p.uv_at(lu, lv)[1]
        car.v, car.a = 20.0, 0.0
        assert not car.brake_lights
        v_cruising = Planes(renderer, renderer.render(world, ego)).uv_at(lu, lv)[1]
        assert v_braking > 180 and v_braking > v_cruising > 150     # red (V high), brighter when braking

    def test_vehicle_covers_the_road_behind_it(self):
        world = make_world("stopped_car", 0)
        car = world.vehicles[0]
        world.vehicles = [car]
        renderer = Renderer()
        ego = ego_at(world, car.s - 15.0)
        with_car = renderer.render(world, ego).copy()
        world.vehicles = []
        without = renderer.render(world, ego)
        pose = renderer.camera_pose(world, ego)
        x, y, z, _ = car.pose(world.road)
        (u, v), = renderer.project_points(np.array([[x, y, z + 1.0]]), pose)[0]
        diff = np.abs(with_car[:H].astype(int) - without[:H].astype(int)) > 3
        assert diff[int(v), int(u)]
        expected_px = 910.0 * car.width / 15.0
        cols = np.flatnonzero(diff[int(v)])
        assert cols.max() - cols.min() == pytest.approx(expected_px, rel=0.25)


class TestFrames:
    def test_nv12_shape_out_buffer_and_bgr_helper(self):
        world = make_world("highway", 0)
        renderer = Renderer()
        ego = world.initial_ego_state()
        frame = renderer.render(world, ego)
        assert frame.shape == (H * 3 // 2, W) and frame.dtype == np.uint8
        out = np.zeros_like(frame)
        assert renderer.render(world, ego, out=out) is out and np.array_equal(out, frame)
        bgr = nv12_to_bgr(frame)
        assert bgr.shape == (H, W, 3)
        assert bgr[50, 600, 0] > bgr[50, 600, 2]      # the sky is blue
        padded = np.zeros((H * 3 // 2, W + 64), np.uint8)   # a VisionIPC buffer with a padded stride
        assert renderer.render(world, ego, out=padded[:, :W]) is not None
        assert np.array_equal(padded[:, :W], frame) and not padded[:, W:].any()
        for bad in (np.zeros((H, W), np.uint8), np.zeros((H * 3 // 2, W), np.int16),
                    np.zeros((H * 3 // 2, 2 * W), np.uint8)[:, ::2]):
            with pytest.raises(ValueError):
                renderer.render(world, ego, out=bad)

    @pytest.mark.parametrize("size", [(1163, 874), (0, 10), (640, 481)])
    def test_odd_sizes_are_refused(self, size):
        with pytest.raises(ValueError):
            Renderer(width=size[0], height=size[1])

    def test_other_sizes_work(self):
        world = make_world("highway", 0)
        frame = Renderer(width=640, height=480, focal=500.0).render(world, world.initial_ego_state())
        assert frame.shape == (720, 640)

    def test_same_inputs_same_frames_including_noise(self):
        world = make_world("mixed", 1)
        ego = world.initial_ego_state()
        a, b = Renderer(look=Look.random(4)), Renderer(look=Look.random(4))
        for _ in range(3):
            assert np.array_equal(a.render(world, ego), b.render(world, ego))
            world.step(0.05)

    def test_domain_randomisation_changes_the_look(self):
        world = make_world("highway", 0)
        ego = world.initial_ego_state()
        renderer = Renderer()
        frames = [renderer.render(world, ego, look).astype(float) for look in (Look.plain(), 1, 2, 3)]
        means = [f[:H].mean() for f in frames]
        assert len({round(m) for m in means}) == 4
        assert Look.random(1) != Look.random(2) and Look.random(3) == Look.random(3)
        noisy = replace(Look.plain(), noise=4.0)
        f1, f2 = renderer.render(world, ego, noisy).copy(), renderer.render(world, ego, noisy)
        assert not np.array_equal(f1, f2)      # sensor noise differs frame to frame

    def test_ego_off_the_road_and_looking_sideways_does_not_break(self):
        world = make_world("suburban", 0)
        x, y, yaw = world.road.position(world.ego_s + 30, -25.0)
        for dyaw in (0.0, math.pi / 2, math.pi, -2.0):
            frame = Renderer(look=Look.random(9)).render(world, VehicleState(x=x, y=y, yaw=yaw + dyaw))
            assert frame.shape == (H * 3 // 2, W)
