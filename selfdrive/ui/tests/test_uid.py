"""uid as a real process on a real port: the page over HTTP, the stream over WebSockets, bad input from one
page not disturbing another, a page that never reads not growing uid's memory, clean start and stop."""

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from selfdrive.manager.process_config import MODES, PROCESSES
from selfdrive.ui.config import UiConfig, ui_url
from selfdrive.ui.tests import stack
from selfdrive.ui.tests.stack import FrameServer, Reader, SynthServices, free_port, gradient_frame, http_get
from selfdrive.ui.uid import MAX_INPUT, Producer, UiServer

WAIT_S = 20.0


def raw_ws(port: int, rcvbuf: int | None = None) -> socket.socket:
    """A WebSocket opened by hand (so it can misbehave below the protocol, or never read)."""
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)  # byte by byte: nothing after the handshake is read
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


@pytest.fixture
def uid(tmp_path):
    procs: list[subprocess.Popen] = []

    def start(*args: str, port: int | None = None) -> tuple[subprocess.Popen, int]:
        port = port or free_port()
        procs.append(stack.start_uid(tmp_path, port, *args))
        return procs[-1], port
    yield start
    for p in procs:
        stack.stop(p)


def test_uid_runs_in_every_mode():
    row = [p for p in PROCESSES if p.name == "uid"]
    assert len(row) == 1 and row[0].module == "selfdrive.ui.uid" and all(row[0].runs_in(m) for m in MODES)


def test_url_follows_the_environment():
    assert ui_url({}) == "http://127.0.0.1:8880/"
    assert ui_url({"ROADPILOT_UI_PORT": "9001", "ROADPILOT_UI_HOST": "0.0.0.0"}) == "http://127.0.0.1:9001/"
    with pytest.raises(ValueError, match="ROADPILOT_UI_PORT"):
        ui_url({"ROADPILOT_UI_PORT": "eighty"})


class TestServing:
    def test_page_files_and_nothing_else(self, uid):
        _, port = uid()
        status, headers, body = http_get(port, "/")
        assert status == 200 and headers["content-type"].startswith("text/html") and b'src="ui.js"' in body
        assert headers["cache-control"] == "no-store"
        status, headers, body = http_get(port, "/ui.js")
        assert status == 200 and "javascript" in headers["content-type"] and b"new WebSocket" in body
        assert http_get(port, "/ui.css")[0] == 200
        for path in ("/nope", "/../uid.py", "/static/index.html", "/%2e%2e/uid.py", "/ui.js/"):
            assert http_get(port, path)[0] == 404, path
        assert http_get(port, "/ws")[0] == 426  # a plain GET of the stream: "upgrade required"

    def test_port_from_environment_taken_port_fails_clearly_sigterm_exits_cleanly(self, tmp_path):
        port = free_port()
        env = {**os.environ, "ROADPILOT_UI_PORT": str(port)}
        first = subprocess.Popen([sys.executable, "-m", "selfdrive.ui.uid"], env=env, stderr=subprocess.PIPE,
                                 text=True)
        try:
            deadline = time.monotonic() + WAIT_S
            while True:
                try:
                    if http_get(port, "/", 0.5)[0] == 200:
                        break
                except OSError:
                    assert time.monotonic() < deadline and first.poll() is None, "uid did not come up"
                    time.sleep(0.1)
            second = subprocess.run([sys.executable, "-m", "selfdrive.ui.uid"], env=env, capture_output=True,
                                    text=True, timeout=30)
            assert second.returncode == 1 and "cannot serve" in second.stderr and str(port) in second.stderr
            first.send_signal(signal.SIGTERM)
            assert first.wait(15) == 0
        finally:
            if first.poll() is None:
                first.kill()
            first.communicate()

    def test_bad_arguments_are_refused(self):
        r = subprocess.run([sys.executable, "-m", "selfdrive.ui.uid", "--quality", "0"], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 2 and "quality" in r.stderr


class TestStream:
    def setup_method(self):
        self.frames = FrameServer([gradient_frame()])
        self.services = SynthServices()

    def teardown_method(self):
        self.services.close()
        self.frames.close()

    def test_frames_are_the_camera_and_state_comes_alongside(self, uid):
        _, port = uid()
        page = Reader(port)
        try:
            page.wait(lambda: len(page.frame_ids) >= 5 and page.state and page.state["selfdrive"], "frames and state")
            jpeg = cv2.imdecode(np.frombuffer(page.last_jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert jpeg.shape == (437, 582, 3)  # half the camera by default
            ref = cv2.resize(cv2.cvtColor(gradient_frame(), cv2.COLOR_YUV2BGR_NV12), (582, 437),
                             interpolation=cv2.INTER_AREA)
            assert np.abs(jpeg.astype(int) - ref).mean() < 6  # the camera's picture, through JPEG
            assert page.frame_ids == sorted(page.frame_ids)
            st = page.state
            assert st["selfdrive"]["alertText1"] == "Take Control" and st["car"]["speedKph"] == 90.0
            assert st["overlay"]["path"] and st["alive"]["modelV2"]
        finally:
            page.close()

    def test_malformed_input_from_one_page_disturbs_no_other(self, uid):
        proc, port = uid()
        good, bad = Reader(port), Reader(port)
        try:
            good.wait(lambda: len(good.frame_ids) >= 3, "the good page's first frames")
            before = len(good.frame_ids)
            for msg in ("not json", "{", "[1]", "null", '{"type":"ping"}', '{"type":"ping","t":"x"}',
                        '{"type":"ping","t":NaN}', '{"type":"hack","t":1}', b"\x00\xffgarbage", b"\xc3\x28",
                        "\u00e9" * 100, "[" * 2000 + "]" * 2000):  # the last: deeper than json recurses
                bad.ws.send(msg)
            bad.ws.send('{"type":"ping","t":7}')  # after all that, the bad page itself still works
            bad.wait(lambda: {"type": "pong", "t": 7} in bad.texts, "the pong after the garbage")
            assert bad.texts == [{"type": "pong", "t": 7}], "nothing but the one pong came back"
            n_bad = len(bad.frame_ids)
            bad.wait(lambda: len(bad.frame_ids) > n_bad + 2, "frames to the page that sent garbage")

            # too big: the server closes that page (1009), only that one
            bad.ws.send("x" * (MAX_INPUT + 1))
            bad._thread.join(10)
            assert bad.closed is not None and bad.closed.rcvd is not None and bad.closed.rcvd.code == 1009

            # below the protocol: a reserved opcode, an unmasked frame, and not even HTTP
            for junk in (bytes([0x83, 0x80]) + os.urandom(4), bytes([0x81, 0x05]) + b"hello"):
                s = raw_ws(port)
                s.sendall(junk)
                s.settimeout(5)
                data = b""
                while chunk := s.recv(65536):
                    data += chunk  # the server closes this connection (after a close frame 1002)
                s.close()
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64) + b"\r\n\r\n")
                reply = s.recv(1024)
                assert reply == b"" or reply.startswith(b"HTTP/1.1 400"), reply  # refused, and closed

            n = len(good.frame_ids)
            good.wait(lambda: len(good.frame_ids) > n + 5, "the good page's frames after the abuse")
            assert good.closed is None and proc.poll() is None
            assert len(good.frame_ids) - before > 5 and good.frame_ids == sorted(good.frame_ids)
        finally:
            good.close()
            bad.close()


def test_page_that_never_reads_does_not_grow_uid_memory(uid):
    """Noise frames (JPEG cannot shrink them, ~280 KB each at quality 95) at 20 Hz: a per-page queue would
    grow by ~5 MB a second. The stuck page gets the newest frame when it reads again, nothing more is kept."""
    frames = FrameServer(stack.noise_frames(3))
    try:
        proc, port = uid("--quality", "95")
        stuck = raw_ws(port, rcvbuf=4096)
        page = Reader(port)
        page.wait(lambda: len(page.frame_ids) >= 20, "a reading page's frames")
        time.sleep(1.0)   # past warm-up: the stuck page's socket buffers are full now
        base, bytes0 = stack.rss_mb(proc.pid), page.frame_bytes
        peak = base
        for _ in range(16):
            time.sleep(0.5)
            peak = max(peak, stack.rss_mb(proc.pid))
        sent_meanwhile = (page.frame_bytes - bytes0) / 2**20
        assert sent_meanwhile > 20, f"too few frames to tell ({sent_meanwhile:.1f} MB): the test proves nothing"
        assert peak - base < 12, f"uid grew {peak - base:.1f} MB while {sent_meanwhile:.1f} MB were not read"
        assert page.closed is None and proc.poll() is None
        stuck.close()
        page.close()
    finally:
        frames.close()


def test_a_crashed_producer_takes_uid_down_instead_of_freezing_the_pages(monkeypatch):
    # in-process, with a producer that fails on its first step: the server stops and reports it (main exits 1)
    def broken(self):
        raise RuntimeError("injected")
    monkeypatch.setattr(Producer, "step", broken)
    server = UiServer(UiConfig(port=free_port()))
    assert asyncio.run(asyncio.wait_for(server.run(), 20)) is False
