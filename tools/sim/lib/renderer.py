"""The simulator's road camera: draws a World as the car's camera sees it, straight into an NV12 frame.

Everything is a polygon on the ground or on a box, projected with the one camera model in
common/transformations/camera.py, clipped at a near plane and filled with cv2.fillPoly into the Y plane
(full resolution) and the interleaved UV plane (half resolution) of the output frame, so no BGR image is
ever made. Occlusion is painter's: the road is cut into distance bands drawn far to near, each band's
road, paint, posts and vehicles before the nearer band's (hill crests hide what is behind them).

Domain randomisation lives in `Look` (colours, lighting, wear, texture, blur, sensor noise, vignette),
drawn from a seed by Look.random(seed); Look.plain() is the fixed, noise-free look.
"""

import itertools
import math
from dataclasses import dataclass, replace
from functools import lru_cache

import cv2
import numpy as np

from common.transformations.camera import CameraModel, Pose, project_points
from tools.sim.lib.road import Road

NEAR = 0.3                      # m, near clipping plane
SHIFT = 4                       # fractional bits of the polygon coordinates given to cv2.fillPoly
BANDS = (-4.0, 12.0, 30.0, 60.0, 110.0, 180.0, 260.0)  # m along the road from the ego: painter's bands
MARKING_RANGE = 170.0           # m, dashes further away are sub-pixel: not drawn
POST_SPACING = 50.0             # m between roadside posts
PATCH_SLOT = 9.0                # m, one asphalt patch slot (patches are shorter, so never overlap)

Colour = tuple[float, float, float]   # BGR, 0..255


# --- colours ----------------------------------------------------------------------------------------------
def _yuv_matrix() -> tuple[np.ndarray, np.ndarray]:
    """The affine BGR -> YUV map of OpenCV's BGR2YUV_I420, which NV12 -> BGR decoding inverts."""
    def conv(bgr):
        img = np.empty((2, 2, 3), np.uint8)
        img[:] = bgr
        i420 = cv2.cvtColor(img, cv2.COLOR_BGR2YUV_I420).ravel()
        return np.array([i420[0], i420[4], i420[5]], dtype=float)
    base = conv((0, 0, 0))
    m = np.stack([(conv(c) - base) / 255.0 for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))], axis=1)
    return m, base


_YUV_M, _YUV_OFF = _yuv_matrix()


@lru_cache(maxsize=4096)
def bgr_to_yuv(bgr: Colour, saturation: float = 1.0) -> tuple[int, int, int]:
    y, u, v = _YUV_M @ np.asarray(bgr, dtype=float) + _YUV_OFF
    u, v = 128.0 + (u - 128.0) * saturation, 128.0 + (v - 128.0) * saturation
    return tuple(int(round(min(255.0, max(0.0, c)))) for c in (y, u, v))


def nv12_to_bgr(frame: np.ndarray) -> np.ndarray:
    """An NV12 frame ((h * 3 / 2, w) uint8) as a BGR image, for debugging and recording."""
    return cv2.cvtColor(frame, cv2.COLOR_YUV2BGR_NV12)


def _mix(a: Colour, b: Colour, t: float) -> Colour:
    return tuple(x + (y - x) * t for x, y in zip(a, b, strict=True))


def _scale(c: Colour, k: float) -> Colour:
    return tuple(min(255.0, x * k) for x in c)


# --- look ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Look:
    """How a frame looks: everything domain randomisation varies. Colours are BGR."""
    seed: int = 0
    sky_top: Colour = (205, 150, 95)
    sky_horizon: Colour = (230, 215, 200)
    ground: Colour = (70, 115, 85)
    asphalt: Colour = (95, 95, 98)
    white: Colour = (232, 232, 232)
    yellow: Colour = (45, 190, 230)
    hills: Colour = (120, 135, 125)
    sun_azimuth: float = 0.8          # rad, world frame
    sun_elevation: float = 0.7        # rad
    exposure: float = 1.0             # gain on luminance
    gamma: float = 1.0
    saturation: float = 1.0
    patches: float = 0.06             # relative shade of asphalt repairs
    tracks: float = 0.03              # relative darkening of the wheel tracks
    texture: float = 0.0              # Y levels (std) of fixed-pattern texture
    noise: float = 0.0                # Y levels (std) of per-frame sensor noise
    blur: float = 0.0                 # px, Gaussian sigma
    vignette: float = 0.0             # relative darkening at the corners
    paint: bool = True                # False: a road with no painted line at all (training negatives)

    @classmethod
    def plain(cls) -> "Look":
        return cls()

    @classmethod
    def random(cls, seed: int) -> "Look":
        rng = np.random.default_rng([int(seed), 0x100C])
        u = lambda lo, hi: float(rng.uniform(lo, hi))
        cloud = u(0.0, 1.0)
        sky_top = _mix((u(190, 235), u(130, 170), u(70, 110)), (190, 190, 188), cloud)
        ground = [(60, 115, 75), (70, 125, 135), (90, 110, 120), (60, 90, 60), (210, 210, 212)][
            int(rng.choice(5, p=[0.35, 0.25, 0.2, 0.15, 0.05]))]
        grey = u(60, 135)
        asphalt = (grey * u(0.95, 1.08), grey, grey * u(0.95, 1.05))
        wear = u(0.65, 1.0)
        white = _mix(asphalt, (u(215, 250),) * 3, wear)
        yellow = _mix(asphalt, (u(20, 80), u(165, 210), u(210, 250)), wear)
        return cls(seed=int(seed), sky_top=sky_top, sky_horizon=_mix(sky_top, (235, 230, 225), u(0.4, 0.9)),
                   ground=tuple(c * u(0.85, 1.15) for c in ground), asphalt=asphalt, white=white, yellow=yellow,
                   hills=_mix(ground, sky_top, u(0.3, 0.7)), sun_azimuth=u(-math.pi, math.pi),
                   sun_elevation=u(0.15, 1.2), exposure=u(0.65, 1.3), gamma=u(0.8, 1.25), saturation=u(0.6, 1.25),
                   patches=u(0.0, 0.12), tracks=u(0.0, 0.08), texture=u(0.0, 5.0), noise=u(0.0, 5.0),
                   blur=float(rng.choice([0.0, u(0.4, 1.3)])), vignette=u(0.0, 0.35))

    def without_noise(self) -> "Look":
        return replace(self, texture=0.0, noise=0.0, blur=0.0)


@lru_cache(maxsize=8)
def _patch_table(seed: int, length: float, left: float, right: float) -> np.ndarray:
    """Asphalt repairs, one per PATCH_SLOT at most: rows (s0, s1, d0, d1, sign), fixed to the road."""
    n = int(length / PATCH_SLOT) + 1
    rng = np.random.default_rng([seed, 0xA5])
    keep = rng.random(n) < 0.45
    s0 = np.arange(n) * PATCH_SLOT + rng.uniform(0.0, 2.0, n)
    s1 = s0 + rng.uniform(1.0, 6.5, n)
    width = rng.uniform(0.4, 3.5, n)
    d0 = rng.uniform(right, left - width)
    sign = np.where(rng.random(n) < 0.7, -1.0, 1.0)
    return np.stack((s0, s1, d0, d0 + width, sign), axis=1)[keep]


# box faces: corner indices (corner = 4 ix + 2 iy + iz of the (x0, x1) x (y0, y1) x (z0, z1) box), outward normals
_FACES = np.array([(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (1, 3, 7, 5)])
_NORMALS = np.array([(-1, 0, 0), (1, 0, 0), (0, -1, 0), (0, 1, 0), (0, 0, 1)], dtype=float)
_CORNER_COLS = np.array([[ix, 2 + iy, 4 + iz] for ix in (0, 1) for iy in (0, 1) for iz in (0, 1)])


# --- the frame being drawn ----------------------------------------------------------------------------------
class _Canvas:
    """The output frame's Y and UV planes and the frame's camera transform.

    Fills are queued and drawn, in the order they came, by `draw()`: every vertex of the frame is projected in one
    go and turned into fillPoly's fixed point once. Done per fill (~45 a frame), projecting and converting cost
    more than the fills themselves (~4 ms of a 10 ms frame); the pixels are the same either way."""

    def __init__(self, frame: np.ndarray, cam: CameraModel, pose: Pose, saturation: float):
        h, w = cam.height, cam.width
        self.y, self.uv = frame[:h], frame[h:].reshape(h // 2, w // 2, 2)
        if not np.shares_memory(self.uv, frame):   # reshape copied: drawing would be lost
            raise ValueError("out's UV rows cannot be viewed as (h/2, w/2, 2)")
        self.cam, self.sat = cam, saturation
        self.r, self.t = cam.view_from_world(pose)
        # per fill: (vertices, view space or pixels, vertex count of each polygon, colour)
        self.queue: list[tuple[np.ndarray, bool, list[int], Colour]] = []

    def view(self, world: np.ndarray) -> np.ndarray:
        return world @ self.r.T + self.t

    def fill(self, polys: list[np.ndarray], bgr: Colour) -> None:
        """Queues view-space polygons (each (n, 3)) of one colour; polygons of one call must not overlap.
        Only polygons crossing the near plane are clipped."""
        if not polys:
            return
        pts = polys[0] if len(polys) == 1 else np.concatenate(polys)
        if pts[:, 2].min() < NEAR:
            polys = [c for c in map(_clip_near, polys) if c is not None]
            if not polys:
                return
            pts = np.concatenate(polys)
        self.queue.append((pts, True, [len(p) for p in polys], bgr))

    def fill_pixels(self, pix: np.ndarray, lengths: list[int], bgr: Colour) -> None:
        """Queues polygons given as stacked pixel vertices (n, 2) and the vertex count of each polygon."""
        self.queue.append((pix, False, lengths, bgr))

    def draw(self) -> None:
        """Draws the queued fills in order (a later one covers an earlier one)."""
        if not self.queue:
            return
        views = [pts for pts, is_view, _, _ in self.queue if is_view]
        projected = iter(_pieces(self.cam.view_to_pixels(np.concatenate(views)), [len(v) for v in views])
                         if views else ())
        pix = np.concatenate([next(projected) if is_view else pts for pts, is_view, _, _ in self.queue])
        full = np.rint(pix * (1 << SHIFT)).astype(np.int32)
        half = (full - (1 << (SHIFT - 1))) >> 1      # chroma sample j sits at full-resolution 2 j + 0.5
        lengths = [n for _, _, ns, _ in self.queue for n in ns]
        fulls, halfs = _pieces(full, lengths), _pieces(half, lengths)
        yuv: dict[Colour, tuple[int, int, int]] = {}
        i = 0
        for _, _, ns, bgr in self.queue:
            if bgr not in yuv:
                yuv[bgr] = bgr_to_yuv(bgr, self.sat)
            y, u, v = yuv[bgr]
            cv2.fillPoly(self.y, fulls[i:i + len(ns)], y, cv2.LINE_8, SHIFT)
            cv2.fillPoly(self.uv, halfs[i:i + len(ns)], (u, v), cv2.LINE_8, SHIFT)
            i += len(ns)
        self.queue.clear()


def _pieces(a: np.ndarray, lengths: list[int]) -> list[np.ndarray]:
    """`a` cut into consecutive pieces of `lengths` rows (views; np.split is 3x slower for this many)."""
    ends = itertools.accumulate(lengths)
    return [a[e - n:e] for n, e in zip(lengths, ends, strict=True)]


def _clip_near(p: np.ndarray) -> np.ndarray | None:
    """Sutherland-Hodgman against the plane z = NEAR (view space), vectorised over the edges: each
    vertex a_i is kept when inside, and edge (a_i, a_i+1) adds its crossing point when it crosses."""
    inside = p[:, 2] >= NEAR
    if inside.all():
        return p
    if not inside.any():
        return None
    b = np.roll(p, -1, axis=0)
    crosses = inside != np.roll(inside, -1)
    dz = np.where(crosses, b[:, 2] - p[:, 2], 1.0)
    cut = p + ((NEAR - p[:, 2]) / dz)[:, None] * (b - p)
    out = np.stack((p, cut), axis=1)[np.stack((inside, crosses), axis=1)]
    return out if len(out) >= 3 else None


def _distance_template(draw_distance: float) -> np.ndarray:
    """Sample distances along the road: 0.5 m near the car, growing with distance, band edges included."""
    d, out = BANDS[0], []
    while d < draw_distance:
        out.append(d)
        d += min(8.0, max(0.5, 0.04 * abs(d)))
    return np.unique(np.concatenate((out, [b for b in BANDS if b <= draw_distance], [draw_distance])))


# --- renderer -----------------------------------------------------------------------------------------------
class _Lens:
    """A distorted camera's pictures from a pinhole canvas: the world is drawn by the pinhole camera `canvas` (the
    same focal lengths, big enough to hold every ray the lens sees), then one remap per plane bends it as the lens
    does (for every output pixel, where its ray lies on the canvas: OpenCV's undistortPoints)."""

    def __init__(self, cam: CameraModel):
        w, h = cam.width, cam.height
        u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        pix = np.stack([u.ravel(), v.ravel()], -1).reshape(-1, 1, 2)
        crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 20, 1e-6)
        norm = cv2.undistortPoints(pix, cam.intrinsics, cam.distortion, None, None, None, crit).reshape(h, w, 2)
        lo, hi = norm.reshape(-1, 2).min(0), norm.reshape(-1, 2).max(0)
        cw = int(math.ceil((hi[0] - lo[0]) * cam.fx / 2.0)) * 2 + 4
        ch = int(math.ceil((hi[1] - lo[1]) * cam.fy / 2.0)) * 2 + 4
        principal = (-lo[0] * cam.fx + 2.0, -lo[1] * cam.fy + 2.0)
        self.canvas = replace(cam, width=cw, height=ch, principal=principal, dist=())
        mx = (norm[..., 0] * cam.fx + principal[0]).astype(np.float32)
        my = (norm[..., 1] * cam.fy + principal[1]).astype(np.float32)
        self.y_maps = cv2.convertMaps(mx, my, cv2.CV_16SC2)
        # chroma sample j sits at full-resolution 2 j + 0.5, on the canvas as on the output
        self.uv_maps = cv2.convertMaps(np.ascontiguousarray((mx[::2, ::2] + mx[1::2, 1::2] - 1.0) / 4.0),
                                       np.ascontiguousarray((my[::2, ::2] + my[1::2, 1::2] - 1.0) / 4.0),
                                       cv2.CV_16SC2)
        self.frame = np.empty((ch * 3 // 2, cw), np.uint8)

    def bend(self, out: np.ndarray, h: int, w: int) -> None:
        ch, cw = self.canvas.height, self.canvas.width
        cv2.remap(self.frame[:ch], *self.y_maps, cv2.INTER_LINEAR, dst=out[:h], borderMode=cv2.BORDER_REPLICATE)
        uv_in = self.frame[ch:].reshape(ch // 2, cw // 2, 2)
        uv_out = out[h:].reshape(h // 2, w // 2, 2)
        cv2.remap(uv_in, *self.uv_maps, cv2.INTER_LINEAR, dst=uv_out, borderMode=cv2.BORDER_REPLICATE)


class Renderer:
    def __init__(self, width: int = 1164, height: int = 874, focal: float = 910.0, cam_height: float = 1.22,
                 pitch: float = 0.0, yaw: float = 0.0, roll: float = 0.0, look: Look | None = None,
                 draw_distance: float = 250.0, camera: CameraModel | None = None):
        """`camera`: the camera the frames come from (intrinsics, lens distortion and mount); without it, a pinhole
        camera of `width` x `height`, `focal`, mounted as the other arguments say."""
        if camera is None:
            camera = CameraModel(width, height, focal, cam_height, pitch=pitch, yaw=yaw, roll=roll)
        width, height = camera.width, camera.height
        if width % 2 or height % 2 or width <= 0 or height <= 0:
            raise ValueError(f"NV12 needs a positive even width and height, got {width}x{height}")
        self.camera = camera                      # what the frames are
        self._lens = _Lens(camera) if camera.distorted else None
        self.canvas_cam = self._lens.canvas if self._lens else camera  # what the world is drawn with
        width, height = self.canvas_cam.width, self.canvas_cam.height
        self.draw_distance = min(draw_distance, BANDS[-1])
        self._dist = _distance_template(self.draw_distance)
        self._band_idx = [int(np.searchsorted(self._dist, b)) for b in BANDS if b <= self.draw_distance]
        self._frame_noise = np.clip(np.random.default_rng(7).normal(128, 32, (height + 64, width + 64)), 0, 255
                                    ).astype(np.uint8)
        self._vignette = self._vignette_base()
        self.look = look or Look.plain()
        self.set_look(self.look)

    # --- look ---
    def set_look(self, look: Look) -> None:
        self.look = look
        self._rng = np.random.default_rng([look.seed, 0xF4A])
        h, w = self.canvas_cam.height, self.canvas_cam.width
        self._texture = (np.clip(self._rng.normal(128, 32, (h, w)), 0, 255).astype(np.uint8)
                         if look.texture > 0 else None)
        g = max(look.gamma, 1e-3)
        self._lut = np.clip(255.0 * (np.arange(256) / 255.0) ** g * look.exposure, 0, 255).astype(np.uint8)
        self._vig = (np.clip(255.0 * (1.0 - look.vignette * self._vignette), 0, 255).astype(np.uint8)
                     if look.vignette > 0 else None)
        az, el = look.sun_azimuth, look.sun_elevation
        self._sun = np.array([math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), math.sin(el)])

    def _vignette_base(self) -> np.ndarray:
        h, w = self.canvas_cam.height, self.canvas_cam.width
        yy, xx = np.mgrid[0:h, 0:w]
        return (((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2) / 2.0

    # --- geometry ---
    def camera_pose(self, world, ego_state) -> Pose:
        """The car body's pose: the ego's (x, y, yaw) on the road surface, pitched with the road's grade."""
        road: Road = world.road if hasattr(world, "road") else world
        s, _ = road.project(ego_state.x, ego_state.y)
        return Pose(ego_state.x, ego_state.y, road.elevation(s), ego_state.yaw, -math.atan(road.grade(s)), 0.0)

    def project_points(self, points_world, pose: Pose) -> tuple[np.ndarray, np.ndarray]:
        """World points (..., 3) -> (pixels (..., 2), depth (...)); the shared camera projection."""
        return project_points(self.camera, pose, points_world)

    # --- drawing ---
    def render(self, world, ego_state, look: "Look | int | None" = None, out: np.ndarray | None = None) -> np.ndarray:
        """Draws the world seen from the ego; returns the NV12 frame ((h * 3 / 2, w) uint8; `out` if given).
        `look` switches the look first (an int is a seed for Look.random)."""
        if look is not None:
            look = Look.random(look) if isinstance(look, int) else look
            if look != self.look:
                self.set_look(look)
        h, w = self.camera.height, self.camera.width
        if out is None:
            out = np.empty((h * 3 // 2, w), np.uint8)
        elif out.shape != (h * 3 // 2, w) or out.dtype != np.uint8 or out.strides[1] != 1:
            raise ValueError(f"out must be a ({h * 3 // 2}, {w}) uint8 array with contiguous rows (a padded "
                             f"stride is fine, as in a VisionIPC buffer)")
        pose = self.camera_pose(world, ego_state)
        canvas = self._lens.frame if self._lens else out
        cv = _Canvas(canvas, self.canvas_cam, pose, self.look.saturation)
        self._sky_and_ground(cv, pose)
        s_ego, _ = world.road.project(ego_state.x, ego_state.y)
        self._road(cv, world, s_ego, pose)
        cv.draw()
        self._post(canvas[:self.canvas_cam.height])
        if self._lens:
            self._lens.bend(out, h, w)
        return out

    def render_bgr(self, world, ego_state, look: "Look | int | None" = None) -> np.ndarray:
        return nv12_to_bgr(self.render(world, ego_state, look))

    def _horizon(self, cv: _Canvas, pose: Pose) -> tuple[float, float]:
        """Image rows of the horizon at the left and right image borders (a flat world's vanishing line)."""
        cam = self.canvas_cam
        pts = []
        for side in (-1.0, 1.0):
            yaw = pose.yaw + cam.yaw + side * 0.5
            d = np.array([math.cos(yaw), math.sin(yaw), 0.0])
            q = cv.r @ d
            if q[2] <= 1e-6:
                return (-1e4, -1e4) if q[1] > 0 else (1e4, 1e4)
            pts.append((cam.cx + cam.fx * q[0] / q[2], cam.cy + cam.fy * q[1] / q[2]))
        (u0, v0), (u1, v1) = pts
        slope = (v1 - v0) / (u1 - u0)
        return v0 + slope * (0.0 - u0), v0 + slope * (cam.width - u0)

    def _sky_and_ground(self, cv: _Canvas, pose: Pose) -> None:
        lk, cam = self.look, self.canvas_cam
        h, w = cam.height, cam.width
        vl, vr = self._horizon(cv, pose)
        vh = 0.5 * (vl + vr)
        rows = np.arange(h, dtype=float)
        t = np.clip((vh - rows) / max(vh, 150.0), 0.0, 1.0)[:, None]
        top, hor = np.array(bgr_to_yuv(lk.sky_top, lk.saturation)), np.array(bgr_to_yuv(lk.sky_horizon, lk.saturation))
        col = np.round(hor + (top - hor) * t).astype(np.uint8)
        n = int(np.clip(math.ceil(max(vl, vr)) + 8, 0, h)) // 2 * 2   # rows below are ground anyway
        cv.y[:n] = col[:n, 0:1]
        # chroma as one 16-bit (u, v) word a pixel: broadcasting pairs of bytes along a row costs 0.7 ms a frame
        cv.uv.view(np.uint16)[:n // 2, :, 0] = np.ascontiguousarray(col[1:n:2, 1:3]).view(np.uint16)
        big = 4.0 * w
        # distant hills: a silhouette above the horizon that turns with the car's heading
        xs = np.linspace(-0.1 * w, 1.1 * w, 48)
        az = pose.yaw + cam.yaw + np.arctan((cam.cx - xs) / cam.fx)
        rnd = lk.seed * 0.37
        height_px = cam.focal * (0.012 + 0.01 * np.sin(3 * az + rnd) + 0.006 * np.sin(7 * az + 2 * rnd)
                                 + 0.003 * np.sin(17 * az + 3 * rnd))
        hv = vl + (vr - vl) * xs / w
        hills = np.concatenate((np.stack((xs, hv - height_px), 1), [[xs[-1], hv[-1] + 2], [xs[0], hv[0] + 2]]))
        cv.fill_pixels(hills, [len(hills)], lk.hills)
        ground = np.array([[-big, vl - big * (vr - vl) / w], [w + big, vr + big * (vr - vl) / w],
                           [w + big, h + big], [-big, h + big]])
        cv.fill_pixels(ground, [4], lk.ground)
        haze = np.array([[-big, vl - 0.5], [w + big, vr - 0.5], [w + big, vr + 6], [-big, vl + 6]])
        cv.fill_pixels(haze, [4], _mix(lk.ground, lk.sky_horizon, 0.5))

    def _road(self, cv: _Canvas, world, s_ego: float, pose: Pose) -> None:
        road, lk = world.road, self.look
        s = s_ego + self._dist
        cx, cy, yaw = road.centerline_array(s)
        z = road.elevation(s)
        left, right = road.edges
        cols = [left, right]
        stripes = []        # (colour, column of the left edge) of solid / double stripes
        for m in road.markings:
            if m.kind == "dashed":
                continue
            for off in m.stripes():
                stripes.append((lk.white if m.colour == "white" else lk.yellow, len(cols)))
                cols += [off + 0.5 * m.width, off - 0.5 * m.width]
        tracks = []
        if lk.tracks > 0:
            for lane in range(road.num_lanes):
                c = road.lane_center_offset(lane)
                for side in (-0.8, 0.8):
                    tracks.append(len(cols))
                    cols += [c + side + 0.25, c + side - 0.25]
        off = np.asarray(cols)
        sn, cs = np.sin(yaw)[:, None], np.cos(yaw)[:, None]
        grid = np.stack((cx[:, None] - off * sn, cy[:, None] + off * cs, np.repeat(z[:, None], len(off), 1)), -1)
        view = cv.view(grid)
        extras = self._extras(cv, world, s_ego)
        asphalt, track_colour = lk.asphalt, _scale(lk.asphalt, 1.0 - lk.tracks)
        for bi in range(len(self._band_idx) - 1, 0, -1):
            a, b = self._band_idx[bi - 1], self._band_idx[bi] + 1

            def strip(col: int, a: int = a, b: int = b) -> np.ndarray:
                return np.concatenate((view[a:b, col], view[a:b, col + 1][::-1]))
            cv.fill([strip(0)], asphalt)
            if tracks:
                cv.fill([strip(c) for c in tracks], track_colour)
            for key, colour in (("patch_dark", _scale(asphalt, 1.0 - lk.patches)),
                                ("patch_light", _scale(asphalt, 1.0 + lk.patches))):
                if lk.patches > 0 and extras[key][bi]:
                    cv.fill(extras[key][bi], colour)
            for colour in (lk.white, lk.yellow) if lk.paint else ():
                cv.fill([strip(col) for c, col in stripes if c == colour], colour)
            for colour in (lk.white, lk.yellow) if lk.paint else ():
                if extras["dashes", colour][bi]:
                    cv.fill(extras["dashes", colour][bi], colour)
            if extras["posts"][bi]:
                cv.fill(extras["posts"][bi], (225, 228, 230))
            for veh in extras["vehicles"][bi]:
                self._vehicle(cv, world, veh, pose)

    def _band_of(self, dist: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.asarray(BANDS[:len(self._band_idx)]), dist)

    def _extras(self, cv: _Canvas, world, s_ego: float) -> dict:
        """Per band: dash quads, patches, posts (view space) and the vehicles, far to near."""
        road, lk = world.road, self.look
        nb = len(self._band_idx)
        out: dict = {k: [[] for _ in range(nb)] for k in ("patch_dark", "patch_light", "posts", "vehicles")}
        lo, hi = s_ego + BANDS[0], s_ego + self.draw_distance

        def quads(s0, s1, d0, d1, z0=None, z1=None) -> np.ndarray:
            """World quads (n, 4, 3) of road rectangles [s0, s1] x [d0, d1] (on the road surface)."""
            ss = np.stack((s0, s1, s1, s0), 1)
            dd = np.stack((d0, d0, d1, d1), 1)
            x, y, _ = road.positions(ss, dd)
            zz = road.elevation(ss.ravel()).reshape(ss.shape) + 0.005
            return np.stack((x, y, zz), -1)

        edges = s_ego + np.asarray(BANDS[:nb])

        def split(s0: np.ndarray, s1: np.ndarray, *rest: np.ndarray) -> tuple[np.ndarray, ...]:
            """Cuts road intervals [s0, s1] at the band edges, so each piece is drawn with its own band and
            a nearer band's road cannot cover part of it. Pieces are shorter than a band: one cut is enough."""
            i0 = np.searchsorted(edges, s0)
            cut = i0 != np.searchsorted(edges, s1)
            if not cut.any():
                return (s0, s1, *rest)
            at = edges[i0[cut]]
            first_end = s1.copy()
            first_end[cut] = at
            return (np.concatenate((s0, at)), np.concatenate((first_end, s1[cut])),
                    *(np.concatenate((r, r[cut])) for r in rest))

        def assign(key, polys_world: np.ndarray, dist: np.ndarray) -> None:
            if not len(polys_world):
                return
            view = cv.view(polys_world)
            for p, band in zip(view, self._band_of(dist), strict=True):
                if 0 < band < nb:
                    out[key][band].append(p)

        for colour in (lk.white, lk.yellow):
            out["dashes", colour] = [[] for _ in range(nb)]
        for m in road.markings:
            if m.kind != "dashed":
                continue
            period = m.dash + m.gap
            k = np.arange(math.floor(lo / period), math.ceil(min(hi, s_ego + MARKING_RANGE) / period))
            s0 = np.maximum(k * period, lo)
            s1 = np.minimum(k * period + m.dash, hi)
            keep = s1 > s0
            s0, s1 = split(s0[keep], s1[keep])
            q = quads(s0, s1, np.full_like(s0, m.offset + 0.5 * m.width), np.full_like(s0, m.offset - 0.5 * m.width))
            assign(("dashes", lk.white if m.colour == "white" else lk.yellow), q, 0.5 * (s0 + s1) - s_ego)
        if lk.patches > 0:
            left, right = road.edges
            table = _patch_table(road.seed, road.length, left - 0.3, right + 0.3)
            sel = table[(table[:, 1] > lo) & (table[:, 0] < hi)]
            for key, sign in (("patch_dark", -1.0), ("patch_light", 1.0)):
                t = sel[sel[:, 4] == sign]
                s0, s1, d0, d1 = split(t[:, 0], t[:, 1], t[:, 2], t[:, 3])
                assign(key, quads(s0, s1, d1, d0), 0.5 * (s0 + s1) - s_ego)
        ks = np.arange(math.ceil(lo / POST_SPACING), math.floor(hi / POST_SPACING) + 1) * POST_SPACING
        if len(ks):
            posts = []
            for edge in road.edges:
                d = edge + math.copysign(0.4, edge)
                x0, y0, _ = road.positions(ks, np.full_like(ks, d - 0.06))
                x1, y1, _ = road.positions(ks, np.full_like(ks, d + 0.06))
                zg = road.elevation(ks)
                posts.append(np.stack((np.stack((x0, y0, zg), 1), np.stack((x1, y1, zg), 1),
                                       np.stack((x1, y1, zg + 1.0), 1), np.stack((x0, y0, zg + 1.0), 1)), 1))
            assign("posts", np.concatenate(posts), np.concatenate((ks, ks)) - s_ego)
        vehicles = [v for v in world.vehicles if lo < v.s < hi]
        vehicles.sort(key=lambda v: -v.s)
        for v, band in zip(vehicles, self._band_of(np.array([v.s - s_ego for v in vehicles])), strict=True):
            if 0 < band < nb:
                out["vehicles"][band].append(v)
        return out

    def _vehicle(self, cv: _Canvas, world, veh, pose: Pose) -> None:
        """A vehicle as shaded boxes (wheels, body, cabin), a contact shadow, lights and a rear window."""
        x, y, z, yaw = veh.pose(world.road)
        L, W, H = veh.length, veh.width, veh.height
        cam_pos = self.camera.camera_position(pose)
        c, s = math.cos(yaw), math.sin(yaw)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        origin = np.array([x, y, z])
        tall = H > 2.0
        body_top = H if tall else 0.55 * H
        boxes = [((-L / 2 + 0.3, L / 2 - 0.3, -W / 2 + 0.1, W / 2 - 0.1, 0.0, 0.4), (22.0, 22.0, 24.0)),
                 ((-L / 2, L / 2, -W / 2, W / 2, 0.3, body_top), veh.colour)]
        if not tall:
            boxes.append(((-0.42 * L, 0.18 * L, -0.44 * W, 0.44 * W, body_top, H), veh.colour))
        ext = np.array([b for b, _ in boxes])
        local = ext[:, None, :].take(_CORNER_COLS, axis=2).reshape(-1, 3)        # 8 corners per box
        to_cam_local = (cam_pos - origin) @ rot                                    # camera in the car's frame
        end = -1.0 if to_cam_local[0] < 0 else 1.0                                 # -1: we see its rear
        xe = end * L / 2
        zl0, zl1 = (0.55, 0.8) if tall else (body_top - 0.35, body_top - 0.1)
        quads = [np.array([[xe, sy * (W / 2 - 0.05), zl0], [xe, sy * (W / 2 - 0.38), zl0],
                           [xe, sy * (W / 2 - 0.38), zl1], [xe, sy * (W / 2 - 0.05), zl1]]) for sy in (1.0, -1.0)]
        xw = end * (0.42 * L if end < 0 else 0.18 * L)
        quads.append(np.array([[xw, 0.38 * W, body_top + 0.08], [xw, -0.38 * W, body_top + 0.08],
                               [xw, -0.32 * W, H - 0.08], [xw, 0.32 * W, H - 0.08]]))
        quads.append(np.array([[-L / 2 - 0.2, -W / 2 - 0.15, 0.01], [L / 2 + 0.2, -W / 2 - 0.15, 0.01],
                               [L / 2 + 0.2, W / 2 + 0.15, 0.01], [-L / 2 - 0.2, W / 2 + 0.15, 0.01]]))
        pts_world = np.concatenate([local] + quads) @ rot.T + origin
        view = cv.view(pts_world)
        if view[:, 2].max() < NEAR:
            return
        nq = len(quads)
        lights, window, shadow = view[-4 * nq:].reshape(nq, 4, 3)[:2], view[-8:-4], view[-4:]
        if math.hypot(*(cam_pos[:2] - origin[:2])) < 60.0:
            cv.fill([shadow], _scale(self.look.asphalt, 0.45))
        normals = _NORMALS @ rot.T
        shade = np.round((0.55 + 0.45 * np.clip(normals @ self._sun, 0.0, None) + 0.1 * _NORMALS[:, 2]) * 64) / 64
        for b, (_, colour) in enumerate(boxes):
            wc = pts_world[8 * b:8 * b + 8]
            visible = np.einsum("ij,ij->i", cam_pos - wc[_FACES].mean(axis=1), normals) > 0.0
            for f in np.flatnonzero(visible):
                cv.fill([view[8 * b + _FACES[f]]], _scale(colour, float(shade[f])))
        if abs(to_cam_local[0]) < L / 2:   # beside it: neither end faces the camera
            return
        braking = end < 0 and veh.brake_lights
        lamp = ((40, 40, 255) if braking else (35, 35, 150)) if end < 0 else (200, 230, 240)
        cv.fill(list(lights), lamp)
        if not tall:
            cv.fill([window], (38, 34, 32))

    def _post(self, y: np.ndarray) -> None:
        lk = self.look
        if lk.exposure != 1.0 or lk.gamma != 1.0:
            cv2.LUT(y, self._lut, dst=y)
        if self._vig is not None:
            cv2.multiply(y, self._vig, dst=y, scale=1.0 / 255.0)
        if self._texture is not None:
            cv2.addWeighted(y, 1.0, self._texture, lk.texture / 32.0, -128.0 * lk.texture / 32.0, dst=y)
        if lk.blur > 0.2:   # a 5-tap kernel is enough for the sigmas used (<= 1.3 px) and much cheaper
            k = 3 if lk.blur < 0.7 else 5
            cv2.GaussianBlur(y, (k, k), lk.blur, dst=y)
        if lk.noise > 0:
            h, w = y.shape
            oy, ox = self._rng.integers(0, 64, 2)
            crop = self._frame_noise[oy:oy + h, ox:ox + w]
            cv2.addWeighted(y, 1.0, crop, lk.noise / 32.0, -128.0 * lk.noise / 32.0, dst=y)


def lane_centre_frames(n: int, seed: int = 0, scenario: str = "highway") -> list[np.ndarray]:
    """n NV12 road-camera frames, 50 ms apart, of a car driving the centre of its lane at the scenario's start
    speed while the traffic moves: model inputs without running the whole simulation (tests, benchmarks)."""
    from tools.sim.lib.dynamics import VehicleState  # imported here: the simulator builds on this module
    from tools.sim.lib.scenarios import make_world
    world, renderer = make_world(scenario, seed), Renderer(look=Look.random(seed + 1))
    d = world.road.lane_center_offset(world.ego_lane)
    out = []
    for i in range(n):
        x, y, yaw = world.road.position(world.ego_s + world.ego_speed * i * 0.05, d)
        out.append(renderer.render(world, VehicleState(x=x, y=y, yaw=yaw, vx=world.ego_speed)).copy())
        world.step(0.05)
    return out
