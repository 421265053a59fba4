"""uid: the onroad UI, served to a browser. One port: the page over plain HTTP, the live stream over a WebSocket.

    python -m selfdrive.ui.uid [--host 127.0.0.1] [--port 8880] [--width 582] [--quality 70] [--fps 20]

ROADPILOT_UI_HOST / ROADPILOT_UI_PORT set the defaults of --host / --port (read once, in main).

    GET /        the page (static/index.html, ui.js, ui.css: no build step, nothing from outside)
    GET /ws      WebSocket: binary messages are frames (hub.FRAME_HEADER + JPEG), text messages are JSON
                 state (ui_state.build_state) and pongs; the page may send {"type": "ping", "t": <number>}

Two halves. The producer thread is the one loop: it takes the newest road camera frame from VisionIPC
(conflated: a frame uid cannot keep up with is skipped, never queued), encodes it to JPEG once (only while a
page is open), reads the services and serialises the state once, at the camera's rate (STATE_HZ without a
camera). The asyncio half hands the newest of each to every page (hub.py), so N pages cost N socket writes
of the same bytes, and a slow page gets fewer frames. Overlay geometry is projected here, server-side, with
the stack's camera model (overlay.py); the page only scales it with the picture.
"""

import argparse
import asyncio
import json
import mimetypes
import os
import signal
import sys
import threading
import time
from http import HTTPStatus

from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

from cereal import messaging
from cereal.visionipc import VisionIpcClient, VisionStreamType
from common.realtime import DT_MDL
from common.swaglog import cloudlog, cloudlog_bind, log_due
from selfdrive.ui.config import UiConfig, env_defaults
from selfdrive.ui.frames import encode_nv12
from selfdrive.ui.hub import Hub, frame_message
from selfdrive.ui.ui_state import SUBSCRIBES, build_state

PUBLISHES = ()
STATE_HZ = 1.0 / DT_MDL      # without a camera the state still flows at the model's rate
MAX_INPUT = 4096             # bytes per message from a page: pages only send pings; bigger closes that page
WRITE_LIMIT = 64 * 1024      # a page's unsent bytes before its sender waits (and so starts skipping frames)
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


class Producer:
    """Newest frame and services -> JPEG + JSON, posted with `post_frame(bytes)` / `post_state(str)`."""

    def __init__(self, cfg: UiConfig, post_frame, post_state, has_pages):
        self.cfg, self.post_frame, self.post_state, self.has_pages = cfg, post_frame, post_state, has_pages
        self.vipc = VisionIpcClient(VisionStreamType.ROAD, conflate=True)
        self.sm = messaging.SubMaster(SUBSCRIBES)
        self.last_frame_t = self.last_state_t = -1.0
        self.last_eof = 0
        self.torn = 0             # frames rewritten by camerad while we encoded them: dropped

    def step(self) -> None:
        frame = self.vipc.recv(int(1000 / STATE_HZ))
        self.sm.update(0)
        if not self.has_pages():
            return  # nobody is looking: no JPEG, no state (the SubMaster still drains, so health stays current)
        now = time.monotonic()
        sent = False
        if frame is not None and now - self.last_frame_t >= 0.8 / self.cfg.fps:
            jpeg = encode_nv12(frame.nv12, self.cfg.width, self.cfg.quality)
            if frame.valid_after_read():
                self.post_frame(frame_message(jpeg, frame.frame_id, frame.width, frame.height))
                self.last_frame_t, self.last_eof, sent = now, frame.timestamp_eof, True
            else:
                self.torn += 1
        if sent or now - self.last_state_t >= 1.0 / STATE_HZ:
            st = build_state(self.sm, self.last_eof, self.vipc.dropped_frames + self.torn)
            self.post_state(json.dumps(st, separators=(",", ":"), allow_nan=False))
            self.last_state_t = now

    def run(self, halt: threading.Event, on_crash) -> None:
        try:
            while not halt.is_set():
                self.step()
        except Exception:
            # a dead producer would leave pages connected to a frozen picture: take the whole process down instead,
            # so the manager restarts it (and the pages reconnect by themselves)
            cloudlog.exception("uid: producer crashed")
            on_crash()

    def close(self) -> None:
        self.vipc.close()
        self.sm.close()


def load_static(folder: str = STATIC_DIR) -> dict[str, tuple[str, bytes]]:
    """URL path -> (content type, body) for every file of the page, read once at start."""
    files = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            files["/" + name] = (ctype + ("; charset=utf-8" if ctype.startswith("text/") else ""), f.read())
    files["/"] = files["/index.html"]
    return files


class UiServer:
    def __init__(self, cfg: UiConfig):
        self.cfg = cfg
        self.hub = Hub()
        self.static = load_static()
        self.bad_input = 0

    def process_request(self, connection, request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/ws":
            return None  # the WebSocket handshake goes on
        if path not in self.static:
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        ctype, body = self.static[path]
        return Response(200, "OK", Headers([("Content-Type", ctype), ("Content-Length", str(len(body))),
                                            ("Cache-Control", "no-store"), ("Connection", "close")]), body)

    async def handle(self, ws) -> None:
        client = self.hub.add()
        pump = asyncio.create_task(client.pump(ws))
        try:
            async for msg in ws:
                if not client.on_message(msg):
                    self.bad_input += 1
                    if log_due(self.bad_input):
                        cloudlog.warning("uid: page sent a message it should not have; ignored",
                                         extra={"count": self.bad_input, "remote": str(ws.remote_address)})
        except ConnectionClosed:
            pass  # the page went away (or sent more than MAX_INPUT): only this page is affected
        finally:
            self.hub.remove(client)
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)

    async def run(self) -> bool:
        """Serves until SIGINT/SIGTERM (True) or until the producer crashes (False)."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        crashed: list[bool] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        producer = Producer(self.cfg, lambda m: loop.call_soon_threadsafe(self.hub.post_frame, m),
                            lambda m: loop.call_soon_threadsafe(self.hub.post_state, m),
                            lambda: bool(self.hub.clients))
        # compression off: deflating each page's copy would cost CPU per page, and JPEGs do not shrink anyway
        async with serve(self.handle, self.cfg.host, self.cfg.port, process_request=self.process_request,
                         compression=None, max_size=MAX_INPUT, write_limit=WRITE_LIMIT):
            cloudlog.info("uid: serving", extra={"url": f"http://{self.cfg.host}:{self.cfg.port}/"})
            halt = threading.Event()
            on_crash = lambda: (crashed.append(True), loop.call_soon_threadsafe(stop.set))
            thread = threading.Thread(target=producer.run, args=(halt, on_crash), name="uid-producer", daemon=True)
            thread.start()
            await stop.wait()
            halt.set()
            await asyncio.to_thread(thread.join, 1.0)
        if not thread.is_alive():
            producer.close()
        return not crashed


def parse_args(argv: list[str] | None = None, env=os.environ) -> UiConfig:
    """Flags, with ROADPILOT_UI_HOST / ROADPILOT_UI_PORT as the defaults (how the manager's uid is configured)."""
    p = argparse.ArgumentParser(prog="uid", description="Serves the onroad UI to a browser.")
    try:
        host, port = env_defaults(env)
    except ValueError as e:
        p.error(str(e))
    p.add_argument("--host", default=host, help="address to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=port, help="TCP port (default: %(default)s)")
    p.add_argument("--width", type=int, default=UiConfig.width, help="JPEG width in pixels (default: %(default)s)")
    p.add_argument("--quality", type=int, default=UiConfig.quality, help="JPEG quality 1-100 (default: %(default)s)")
    p.add_argument("--fps", type=float, default=UiConfig.fps, help="most frames a second (default: %(default)s)")
    a = p.parse_args(argv)
    if not 0 <= a.port < 65536 or a.width < 16 or not 1 <= a.quality <= 100 or not a.fps > 0:
        p.error("need 0 <= port < 65536, width >= 16, quality 1..100 and fps > 0")
    return UiConfig(a.host, a.port, a.width, a.quality, a.fps)


def main(argv: list[str] | None = None) -> None:
    cloudlog_bind(name="uid")
    cfg = parse_args(argv)
    try:
        ok = asyncio.run(UiServer(cfg).run())
    except OSError as e:  # the port is taken or the address is not ours: say so, exit non-zero
        cloudlog.error("uid: cannot serve", extra={"host": cfg.host, "port": cfg.port, "error": str(e)})
        sys.exit(1)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
