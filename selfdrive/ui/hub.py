"""Latest-only fan-out of frames and state to the open pages (asyncio side of uid).

The producer posts each encoded frame and serialised state once; every page has its own sender task that
wakes up, sends whatever is newest and goes back to sleep. A page that has not taken the previous frame yet
simply gets the newer one when it is ready: nothing queues per page, so a slow link costs that page frames
and costs uid neither memory nor CPU. Sending blocks (in `ws.send`) only the slow page's own task, once its
socket buffer is past the server's write limit.
"""

import asyncio
import json
import math
import struct

# binary frame message: magic, frame id, camera width, camera height, then the JPEG
FRAME_HEADER = struct.Struct("<4sIHH")
FRAME_MAGIC = b"RPF1"


def frame_message(jpeg: bytes, frame_id: int, cam_width: int, cam_height: int) -> bytes:
    return FRAME_HEADER.pack(FRAME_MAGIC, frame_id & 0xFFFFFFFF, cam_width, cam_height) + jpeg


class Client:
    """One open page: what it has been sent, and what it asked for."""

    def __init__(self, hub: "Hub"):
        self.hub = hub
        self.wake = asyncio.Event()
        self.sent_frame_seq = 0
        self.sent_state_seq = 0
        self.frames_sent = 0
        self.frames_skipped = 0   # frames posted while this page was still taking an older one
        self.pong: str | None = None
        self.bad_input = 0

    async def pump(self, ws) -> None:
        """Sends the newest state and frame whenever there is something new; returns when the page closes."""
        hub = self.hub
        while True:
            await self.wake.wait()
            self.wake.clear()
            if self.pong is not None:
                msg, self.pong = self.pong, None
                await ws.send(msg)
            if hub.state_seq != self.sent_state_seq and hub.state:
                self.sent_state_seq = hub.state_seq
                await ws.send(hub.state)
            if hub.frame_seq != self.sent_frame_seq and hub.frame:
                if self.sent_frame_seq:
                    self.frames_skipped += hub.frame_seq - self.sent_frame_seq - 1
                self.sent_frame_seq = hub.frame_seq
                await ws.send(hub.frame)
                self.frames_sent += 1

    def on_message(self, msg: str | bytes) -> bool:
        """A message from the page. The only one understood is {"type": "ping", "t": <number>}, answered with a
        pong carrying the same t (the page measures its link with it). Anything else is counted and ignored;
        True when it was understood."""
        try:
            obj = json.loads(msg)
        except (ValueError, TypeError, RecursionError):  # not JSON, not text, not UTF-8, nested deeper than json parses
            obj = None
        t = obj.get("t") if isinstance(obj, dict) and obj.get("type") == "ping" else None
        if not _finite_number(t):
            self.bad_input += 1
            return False
        self.pong = json.dumps({"type": "pong", "t": t})
        self.wake.set()
        return True


def _finite_number(t) -> bool:
    if not isinstance(t, int | float) or isinstance(t, bool):
        return False
    try:
        return math.isfinite(t)
    except OverflowError:  # a JSON integer too big for a float
        return False


class Hub:
    def __init__(self):
        self.clients: set[Client] = set()
        self.frame = b""
        self.frame_seq = 0
        self.state = ""
        self.state_seq = 0

    def add(self) -> Client:
        c = Client(self)
        self.clients.add(c)
        if self.state:
            c.wake.set()  # a new page gets the current state right away
        return c

    def remove(self, c: Client) -> None:
        self.clients.discard(c)
        if not self.clients:
            self.state, self.frame = "", b""  # the producer stops while nobody looks: these would go stale

    def _wake_all(self) -> None:
        for c in self.clients:
            c.wake.set()

    def post_frame(self, msg: bytes) -> None:
        self.frame, self.frame_seq = msg, self.frame_seq + 1
        self._wake_all()

    def post_state(self, msg: str) -> None:
        self.state, self.state_seq = msg, self.state_seq + 1
        self._wake_all()
