"""The fan-out: every page gets the newest frame and state, a slow page skips frames instead of queueing them,
and what a page sends is either a well-formed ping or ignored."""

import asyncio
import json

import pytest

from selfdrive.ui.hub import FRAME_HEADER, FRAME_MAGIC, Hub, frame_message


class FakeWs:
    """Records what was sent; while `gate` is clear, a send blocks like a socket past its write limit."""

    def __init__(self):
        self.sent: list = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def send(self, msg) -> None:
        await self.gate.wait()
        self.sent.append(msg)


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_frame_message_header():
    msg = frame_message(b"\xff\xd8jpeg", 2**32 + 5, 1164, 874)
    assert FRAME_HEADER.unpack(msg[:FRAME_HEADER.size]) == (FRAME_MAGIC, 5, 1164, 874)
    assert msg[FRAME_HEADER.size:] == b"\xff\xd8jpeg"


def test_every_page_gets_the_same_newest_bytes():
    async def run():
        hub = Hub()
        pages = [(hub.add(), FakeWs()) for _ in range(3)]
        tasks = [asyncio.create_task(c.pump(ws)) for c, ws in pages]
        for i in range(5):
            hub.post_state(json.dumps({"i": i}))
            hub.post_frame(bytes([i]) * 10)
            await settle()
        for t in tasks:
            t.cancel()
        return pages
    pages = asyncio.run(run())
    first = pages[0][1].sent
    assert first == [json.dumps({"i": i}) if k == 0 else bytes([i]) * 10 for i in range(5) for k in (0, 1)]
    for c, ws in pages:
        assert ws.sent == first and c.frames_sent == 5 and c.frames_skipped == 0
    assert all(ws.sent[1] is first[1] for _, ws in pages), "the frame is one object, not a copy per page"


def test_slow_page_skips_to_the_newest_frame_and_does_not_hold_up_others():
    async def run():
        hub = Hub()
        (slow, slow_ws), (fast, fast_ws) = (hub.add(), FakeWs()), (hub.add(), FakeWs())
        tasks = [asyncio.create_task(slow.pump(slow_ws)), asyncio.create_task(fast.pump(fast_ws))]
        hub.post_frame(b"f0")
        await settle()
        slow_ws.gate.clear()          # the slow page's link stalls
        for i in range(1, 50):
            hub.post_frame(b"f%d" % i)
            await settle()
        assert len(fast_ws.sent) == 50, "the fast page got every frame while the other was stuck"
        slow_ws.gate.set()
        await settle()
        for t in tasks:
            t.cancel()
        return slow, slow_ws
    slow, ws = asyncio.run(run())
    # f0, then f1 (the send that was blocked), then only the newest: nothing in between was kept for it
    assert ws.sent == [b"f0", b"f1", b"f49"]
    assert slow.frames_sent == 3 and slow.frames_skipped == 47


def test_a_new_page_gets_the_current_state_at_once():
    async def run():
        hub = Hub()
        hub.post_state('{"type":"state"}')
        c, ws = hub.add(), FakeWs()
        task = asyncio.create_task(c.pump(ws))
        await settle()
        task.cancel()
        hub.remove(c)
        return hub, ws
    hub, ws = asyncio.run(run())
    assert ws.sent == ['{"type":"state"}'] and not hub.clients


class TestInput:
    def test_ping_gets_a_pong_with_its_time(self):
        async def run():
            hub = Hub()
            c, ws = hub.add(), FakeWs()
            task = asyncio.create_task(c.pump(ws))
            assert c.on_message('{"type": "ping", "t": 1234.5}')
            await settle()
            task.cancel()
            return c, ws
        c, ws = asyncio.run(run())
        assert [json.loads(m) for m in ws.sent] == [{"type": "pong", "t": 1234.5}] and c.bad_input == 0

    @pytest.mark.parametrize("msg", [
        "", "not json", "{", "[1, 2]", "null", "42", '"ping"', '{"type": "pong", "t": 1}', '{"type": "ping"}',
        '{"type": "ping", "t": "1"}', '{"type": "ping", "t": NaN}', '{"type": "ping", "t": Infinity}',
        '{"type": "ping", "t": true}', '{"type": "ping", "t": [1]}', '{"type": ["ping"], "t": 1}',
        b"\x00\xff\xfe garbage", b"\xc3\x28", b'{"type": "ping", "t": 1}\xff', "\ud800",
        "[" * 2000 + "]" * 2000, '{"a":' * 2000 + "1" + "}" * 2000, "[" * 100_000,  # deeper than json recurses
    ])
    def test_malformed_input_is_counted_and_ignored(self, msg):
        async def run():
            hub = Hub()
            c = hub.add()
            understood = c.on_message(msg)
            return c, understood
        c, understood = asyncio.run(run())
        assert not understood and c.bad_input == 1 and c.pong is None and not c.wake.is_set()


def test_the_last_page_leaving_drops_what_would_go_stale():
    async def run():
        hub = Hub()
        c = hub.add()
        hub.post_state('{"old":1}')
        hub.post_frame(b"old")
        hub.remove(c)
        late, ws = hub.add(), FakeWs()
        task = asyncio.create_task(late.pump(ws))
        await settle()
        assert ws.sent == [] and not late.wake.is_set()
        hub.post_state('{"new":1}')
        await settle()
        task.cancel()
        return ws
    assert asyncio.run(run()).sent == ['{"new":1}']
