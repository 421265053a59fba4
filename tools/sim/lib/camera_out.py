"""The bridge's road camera: renders the world at 20 Hz, hands each frame to camerad's sim source (which
serves it on VisionIPC with the bridge's frame id and clock) and, when asked, writes it to an mp4."""

from dataclasses import dataclass

import numpy as np

from common.swaglog import cloudlog, log_due

FPS = 20


class Mp4Writer:
    """NV12 frames -> H.264 mp4 (PyAV, libx264 ultrafast)."""

    def __init__(self, path: str, width: int, height: int, fps: int = FPS):
        import av  # imported here: only recording needs PyAV
        self.path = path
        self.container = av.open(path, "w")
        self.stream = self.container.add_stream("libx264", rate=fps)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        self.stream.options = {"preset": "ultrafast", "crf": "23"}
        self._frame_cls = av.VideoFrame
        self.frames = 0

    def write(self, nv12: np.ndarray) -> None:
        frame = self._frame_cls.from_ndarray(nv12, format="nv12")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


@dataclass
class CameraStats:
    rendered: int = 0
    pushed: int = 0
    not_taken: int = 0   # camerad absent or behind: the frame was dropped at the bridge


class CameraOut:
    def __init__(self, look_seed: int | None = None, push: bool = True, record: str = "", camera=None):
        from tools.sim.lib.renderer import Look, Renderer  # imported here: OpenCV only where frames are drawn
        look = Look.random(look_seed) if look_seed is not None else Look.plain()
        self.renderer = Renderer(look=look, camera=camera)
        w, h = self.renderer.camera.width, self.renderer.camera.height
        self.frame = np.empty((h * 3 // 2, w), np.uint8)
        self.pusher = None
        if push:
            from selfdrive.camerad.sources.sim import SimFramePusher
            self.pusher = SimFramePusher(w, h, self.renderer.camera)
        self.recorder = Mp4Writer(record, w, h) if record else None
        self.stats = CameraStats()

    def shoot(self, world, ego_state, frame_id: int, sof_ns: int, eof_ns: int, push_timeout_ms: int = 20) -> None:
        self.render(world, ego_state)
        self.deliver(frame_id, sof_ns, eof_ns, push_timeout_ms)

    def render(self, world, ego_state) -> None:
        """Draws the frame (deliver shows it to camerad and the recording)."""
        self.renderer.render(world, ego_state, out=self.frame)
        self.stats.rendered += 1

    def deliver(self, frame_id: int, sof_ns: int, eof_ns: int, push_timeout_ms: int = 20) -> None:
        if self.pusher is not None:
            if self.pusher.push(self.frame, frame_id, sof_ns, eof_ns, timeout_ms=push_timeout_ms):
                self.stats.pushed += 1
            else:
                self.stats.not_taken += 1
                if log_due(self.stats.not_taken):
                    cloudlog.warning("camerad did not take a sim frame", extra={"not_taken": self.stats.not_taken})
        if self.recorder is not None:
            self.recorder.write(self.frame)

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
        if self.pusher is not None:
            self.pusher.close()
