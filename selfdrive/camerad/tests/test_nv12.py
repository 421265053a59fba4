import cv2
import numpy as np
import pytest

from selfdrive.camerad.nv12 import bgr_to_nv12, cover_crop, i420_to_nv12, nv12_to_bgr, to_nv12


def bt601_limited(bgr: np.ndarray) -> np.ndarray:
    """Y, U, V (last axis) of BGR colours, from the BT.601 limited-range equations (not from OpenCV)."""
    b, g, r = (bgr[..., i].astype(np.float64) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return np.stack([y, u, v], axis=-1)


class TestConversion:
    @pytest.mark.parametrize("w,h", [(1164, 874), (64, 48), (2, 2), (6, 10)])
    def test_colour_blocks_match_bt601(self, w, h):
        # 2x2-aligned blocks of one colour each, so chroma subsampling cannot blur them
        rng = np.random.default_rng(w * h)
        colours = rng.integers(0, 256, (h // 2, w // 2, 3), dtype=np.uint8)
        bgr = np.repeat(np.repeat(colours, 2, axis=0), 2, axis=1)
        nv12 = bgr_to_nv12(bgr)
        assert nv12.shape == (h * 3 // 2, w) and nv12.dtype == np.uint8
        ref = bt601_limited(colours)
        y = nv12[:h].reshape(h // 2, 2, w // 2, 2)
        uv = nv12[h:].reshape(h // 2, w // 2, 2)
        for dy in (0, 1):
            for dx in (0, 1):
                assert np.abs(y[:, dy, :, dx] - ref[..., 0]).max() <= 1.5
        assert np.abs(uv[..., 0] - ref[..., 1]).max() <= 1.5   # U first: NV12, not NV21
        assert np.abs(uv[..., 1] - ref[..., 2]).max() <= 1.5

    def test_round_trip_through_opencv_nv12_decoder(self):
        y, x = np.mgrid[0:874, 0:1164]
        bgr = np.stack([x * 255 // 1163, y * 255 // 873, (x + y) * 255 // 2036], axis=-1).astype(np.uint8)
        back = nv12_to_bgr(bgr_to_nv12(bgr))
        assert np.abs(back.astype(int) - bgr).mean() < 2.0

    def test_i420_planes_are_interleaved_in_order_when_half_height_is_odd(self):
        w, h = 12, 10    # h / 2 = 5: the U and V planes do not start on I420 row boundaries
        ysz, csz = w * h, (w // 2) * (h // 2)
        i420 = np.arange(ysz + 2 * csz, dtype=np.uint32).astype(np.uint8)
        nv12 = i420_to_nv12(i420, w, h)
        assert (nv12[:h].ravel() == i420[:ysz]).all()
        assert (nv12[h:, 0::2].ravel() == i420[ysz:ysz + csz]).all()
        assert (nv12[h:, 1::2].ravel() == i420[ysz + csz:]).all()

    def test_writes_into_a_given_buffer(self):
        out = np.zeros((72, 64), dtype=np.uint8)
        bgr = np.full((48, 64, 3), 200, dtype=np.uint8)
        assert bgr_to_nv12(bgr, out) is out and out[:48].min() > 150

    @pytest.mark.parametrize("shape", [(5, 4, 3), (4, 5, 3), (4, 4), (4, 4, 4)])
    def test_rejects_what_is_not_even_sized_bgr(self, shape):
        with pytest.raises(ValueError):
            bgr_to_nv12(np.zeros(shape, dtype=np.uint8))

    def test_rejects_wrong_i420_size_and_dtype(self):
        with pytest.raises(ValueError):
            i420_to_nv12(np.zeros(100, dtype=np.uint8), 8, 8)
        with pytest.raises(ValueError):
            bgr_to_nv12(np.zeros((4, 4, 3), dtype=np.float32))


class TestCoverCrop:
    def test_wider_source_loses_its_sides(self):
        img = np.random.default_rng(0).integers(0, 256, (100, 200, 3), dtype=np.uint8)
        assert (cover_crop(img, 100, 100) == img[:, 50:150]).all()

    def test_taller_source_loses_top_and_bottom(self):
        img = np.random.default_rng(1).integers(0, 256, (300, 100, 3), dtype=np.uint8)
        assert (cover_crop(img, 100, 100) == img[100:200]).all()

    def test_exact_size_is_untouched(self):
        img = np.zeros((874, 1164, 3), dtype=np.uint8)
        assert cover_crop(img, 1164, 874) is img

    @pytest.mark.parametrize("src", [(960, 540), (640, 480), (1920, 1080), (320, 240), (480, 640)])
    def test_aspect_ratio_is_kept(self, src):
        # a centred circle stays a circle of the expected size: scale = max(w ratio, h ratio), no stretching
        sw, sh = src
        img = np.zeros((sh, sw, 3), dtype=np.uint8)
        r = min(sw, sh) // 6
        cv2.circle(img, (sw // 2, sh // 2), r, (255, 255, 255), -1)
        out = cover_crop(img, 1164, 874)
        assert out.shape == (874, 1164, 3)
        ys, xs = np.nonzero(out[..., 0] > 127)
        scale = max(1164 / sw, 874 / sh)
        width, height = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
        assert abs(width - height) <= 3
        assert abs(width - 2 * r * scale) <= 3 + 0.02 * width
        assert abs((xs.max() + xs.min()) / 2 - 581.5) <= 2 and abs((ys.max() + ys.min()) / 2 - 436.5) <= 2

    def test_to_nv12_fits_bgr_and_checks_nv12(self):
        assert to_nv12(np.zeros((540, 960, 3), np.uint8), 64, 48).shape == (72, 64)
        nv12 = np.zeros((72, 64), np.uint8)
        assert to_nv12(nv12, 64, 48) is nv12
        with pytest.raises(ValueError, match="neither BGR"):
            to_nv12(np.zeros((36, 32), np.uint8), 64, 48)   # NV12 of another size is never rescaled silently
