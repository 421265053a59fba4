"""modeld as a real process: refusing wrong models, deterministic outputs, the Udacity video through camerad,
dropping frames instead of queueing them."""

import os
import signal
import subprocess
import sys
import time
from itertools import pairwise

import numpy as np
import pytest
from onnx import TensorProto

from cereal import messaging
from cereal.visionipc import VisionIpcClient, VisionIpcServer, VisionStreamType
from selfdrive.modeld.constants import INPUT_NAME, INPUT_SHAPE, OUTPUTS
from selfdrive.modeld.fill_msg import fill_model_v2
from selfdrive.modeld.modeld import THREADS, FrameWarper, newest_frame
from selfdrive.modeld.runner import DEFAULT_MODEL, ModelRunner
from selfdrive.modeld.tests.onnx_models import contract_outputs, write_model, write_slow_model
from tools.sim.lib.renderer import lane_centre_frames

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
UDACITY = os.path.join(REPO, "..", "shared", "data", "udacity-dashcam", "solidWhiteRight.mp4")
needs_udacity = pytest.mark.skipif(not os.path.isfile(UDACITY),
                                   reason=f"the Udacity dash-cam clip is not at {os.path.normpath(UDACITY)}")
W, H = 1164, 874


def start(tmp_path, name: str, module: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", module, *args], stderr=open(tmp_path / f"{name}.stderr", "w"))


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def outputs_of(m) -> dict[str, np.ndarray]:
    """Every model-derived number of a modelV2 (not the timing and drop counters)."""
    xyz = lambda d: np.array([d.x, d.y, d.z], np.float32)  # noqa: E731
    return {
        "position": xyz(m.position), "positionStd": np.array([m.position.xStd, m.position.yStd, m.position.zStd]),
        "velocity": xyz(m.velocity), "laneLines": np.array([xyz(line) for line in m.laneLines]),
        "laneLineStds": np.array([line.yStd for line in m.laneLines]), "laneLineProbs": np.array(m.laneLineProbs),
        "roadEdges": np.array([xyz(e) for e in m.roadEdges]), "roadEdgeStds": np.array([e.yStd for e in m.roadEdges]),
        "lead": np.array([[ld.x[0], ld.v[0], ld.xStd[0], ld.vStd[0], ld.prob] for ld in m.leads]),
        "scalars": np.array([m.desiredCurvature, m.confidence]),
    }


def assert_identical(a: dict[str, np.ndarray], b: dict[str, np.ndarray], what: str) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes(), f"{what}: {k} differs"


class Feeder:
    """The test as the road camera: a VisionIPC server whose frames modeld answers with modelV2."""

    def __init__(self, width: int = W, height: int = H, num_buffers: int = 4):
        self.server = VisionIpcServer(VisionStreamType.ROAD, width, height, num_buffers=num_buffers)
        self.sock = messaging.sub_sock("modelV2")
        self.next_id = 0

    def close(self) -> None:
        self.server.close()
        self.sock.close()

    def send(self, frame: np.ndarray, frame_id: int | None = None) -> int:
        fid = self.next_id if frame_id is None else frame_id
        self.next_id = fid + 1
        self.server.send(frame, fid, fid * 50_000_000, fid * 50_000_000 + 1)
        return fid

    def warm_up(self, frame: np.ndarray, proc: subprocess.Popen, tmp_path, timeout: float = 30.0) -> None:
        """Sends `frame` with new ids until modeld answers one (it connects and subscribes some time after it
        starts, and ignores a frame id it has answered), then takes every answer still on its way."""
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, (tmp_path / "modeld.stderr").read_text()
            assert time.monotonic() < deadline, "modeld never answered"
            self.send(frame)
            if messaging.recv_one(self.sock, 100) is not None:
                break
        while messaging.recv_one(self.sock, 300) is not None:
            pass

    def step(self, frame: np.ndarray, timeout: float = 10.0):
        """Sends one frame and returns modeld's answer to it."""
        fid = self.send(frame)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = messaging.recv_one(self.sock, 100)
            if m is not None and m.modelV2.frameId == fid:
                return m
        raise AssertionError(f"no modelV2 for frame {fid}")


# --- (a) the model file is checked at start -------------------------------------------------------------------

def _wrong_models(tmp_path) -> dict[str, tuple[str, str]]:
    """file -> (what is wrong, the words modeld's message must hold)."""
    good = contract_outputs()
    frames = [(INPUT_NAME, TensorProto.UINT8, INPUT_SHAPE)]
    cases = {
        "float_input": ({"inputs": [(INPUT_NAME, TensorProto.FLOAT, INPUT_SHAPE)]},
                        "input must be frames(1, 2, 128, 256) tensor(uint8), got frames(1, 2, 128, 256) tensor(float)"),
        "one_frame": ({"inputs": [(INPUT_NAME, TensorProto.UINT8, (1, 1, 128, 256))]},
                      "got frames(1, 1, 128, 256) tensor(uint8)"),
        "renamed_input": ({"inputs": [("img", TensorProto.UINT8, INPUT_SHAPE)]}, "got img(1, 2, 128, 256)"),
        "two_inputs": ({"inputs": frames + [("calib", TensorProto.FLOAT, (1, 3))]}, "calib(1, 3) tensor(float)"),
        "no_lanes": ({"outputs": {k: v for k, v in good.items() if k != "lanes"}}, "output lanes(1, 4, 8) is missing"),
        "short_path": ({"outputs": {**good, "path": good["path"][:, :6]}},
                       "output path must be (1, 13, 3) tensor(float), got (1, 6, 3) tensor(float)"),
        "double_lead": ({"outputs": {**good, "lead": good["lead"].astype(np.float64)}},
                        "output lead must be (1, 2) tensor(float), got (1, 2) tensor(double)"),
        "extra_output": ({"outputs": {**good, "meta": np.zeros((1, 5), np.float32)}}, "unexpected outputs ['meta']"),
    }
    out = {}
    for name, (kw, words) in cases.items():
        path = str(tmp_path / f"{name}.onnx")
        write_model(path, kw.get("outputs", good), kw.get("inputs"))
        out[path] = (name, words)
    (tmp_path / "garbage.onnx").write_bytes(np.random.default_rng(0).bytes(5000))
    out[str(tmp_path / "garbage.onnx")] = ("garbage", "cannot load model")
    out[str(tmp_path / "missing.onnx")] = ("missing", "model file not found")
    return out


def test_wrong_or_missing_model_is_refused_at_start(tmp_path):
    cases = _wrong_models(tmp_path)
    # side by side: each refuses before it opens any socket
    procs = {path: subprocess.Popen([sys.executable, "-m", "selfdrive.modeld.modeld", "--model", path],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for path in cases}
    for path, proc in procs.items():
        name, words = cases[path]
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"{name}: modeld did not exit (it accepted the model)") from None
        assert proc.returncode == 1, f"{name}: exit status {proc.returncode}\n{err}"
        assert "modeld: " in err and words in err, f"{name}: {err}"
        assert path in err or name not in ("garbage", "missing"), f"{name}: the message names the file: {err}"
    # the contract's own test model is accepted (so the refusals above are about what was changed)
    ok = write_model(str(tmp_path / "ok.onnx"), contract_outputs())
    assert set(ModelRunner(ok).run(np.zeros(INPUT_SHAPE, np.uint8))) == set(OUTPUTS)


# --- (b) deterministic outputs ------------------------------------------------------------------------------------

def test_same_frames_give_bit_identical_outputs_across_sessions():
    frames = lane_centre_frames(3)
    pairs = []
    warper = FrameWarper()
    warper.set_calibration((0.0, 0.02, -0.03))
    for f in frames:
        pairs.append(warper.push(f[:H]).copy())
    a, b = ModelRunner(DEFAULT_MODEL, THREADS), ModelRunner(DEFAULT_MODEL, THREADS)
    for pair in pairs:
        first = a.run(pair)
        for again in (a.run(pair), b.run(pair)):
            assert_identical({k: v for k, v in first.items()}, again, "second run")
    # and the pairs differ, so equal outputs are not an accident of the input
    assert not np.array_equal(a.run(pairs[1])["path"], a.run(pairs[2])["path"])


def test_daemon_outputs_are_deterministic_across_runs(tmp_path):
    frames = lane_centre_frames(5)
    # what modeld must answer, computed here: its first frame after the warm-up is paired with the warm-up frame
    warper, runner = FrameWarper(), ModelRunner(DEFAULT_MODEL, THREADS)
    warper.push(frames[0][:H])
    expected = []
    for f in frames[1:]:
        msg = messaging.new_message("modelV2")
        fill_model_v2(msg.modelV2, runner.run(warper.push(f[:H])), 0, 0, 0.0, 0, 0.0)
        expected.append(outputs_of(msg.modelV2))

    feeder = Feeder()
    runs = []
    try:
        for _ in range(2):
            proc = start(tmp_path, "modeld", "selfdrive.modeld.modeld")
            try:
                feeder.warm_up(frames[0], proc, tmp_path)
                got = [feeder.step(f) for f in frames[1:]]
            finally:
                stop(proc)
            assert all(m.valid for m in got)
            runs.append([outputs_of(m.modelV2) for m in got])
    finally:
        feeder.close()
    for i, (r1, r2, ref) in enumerate(zip(runs[0], runs[1], expected, strict=True)):
        assert_identical(r1, r2, f"frame {i}, run 1 vs run 2")
        assert_identical(r1, ref, f"frame {i}, daemon vs in-process")


# --- (c) the Udacity dash-cam video through camerad ---------------------------------------------------------------

@needs_udacity
def test_runs_on_the_udacity_video(tmp_path):
    models, cams = messaging.sub_sock("modelV2"), messaging.sub_sock("roadCameraState")
    camerad = start(tmp_path, "camerad", "selfdrive.camerad.camerad", "--source", "video", "--path", UDACITY,
                    "--loop")
    modeld = start(tmp_path, "modeld", "selfdrive.modeld.modeld")
    got, states = [], []
    try:
        deadline = time.monotonic() + 30
        while not got:
            assert time.monotonic() < deadline, "no modelV2 from the video"
            for name, p in (("camerad", camerad), ("modeld", modeld)):
                assert p.poll() is None, (tmp_path / f"{name}.stderr").read_text()
            got += messaging.drain_sock(models)
            time.sleep(0.05)
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            got += messaging.drain_sock(models)
            states += messaging.drain_sock(cams)
            time.sleep(0.05)
        assert modeld.poll() is None, (tmp_path / "modeld.stderr").read_text()
        time.sleep(0.2)       # the camera states of the last answered frames
        states += messaging.drain_sock(cams)
    finally:
        stop(modeld)
        stop(camerad)
        models.close()
        cams.close()
    cam = {s.roadCameraState.frameId: s.roadCameraState.timestampEof for s in states if s.roadCameraState.sourceOk}
    # answers to frames served before this test's roadCameraState subscription took hold cannot be checked
    got = [m for m in got if m.modelV2.frameId >= min(cam, default=0)]
    ids = [m.modelV2.frameId for m in got]
    assert len(got) >= 0.5 * 3.0 * 20, f"only {len(got)} model outputs in 3 s"
    assert all(b > a for a, b in pairwise(ids)), f"frame ids must increase: {ids}"
    for m in got:
        md = m.modelV2
        assert md.frameId in cam, f"frame {md.frameId} is not one the camera served"
        assert md.timestampEof == cam[md.frameId]
        assert m.valid
        assert 0.0 < md.modelExecutionTime < 0.5
        vals = np.concatenate([v.ravel() for v in outputs_of(md).values()])
        assert np.isfinite(vals).all()
        assert all(0.0 <= p <= 1.0 for p in md.laneLineProbs) and 0.0 <= md.confidence <= 1.0
    # every frame id skipped between two answers is counted as dropped, and nothing else is
    drops = [m.modelV2.framesDropped for m in got]
    for i in range(1, len(got)):
        assert drops[i] - drops[i - 1] == ids[i] - ids[i - 1] - 1, (ids[i - 1:i + 1], drops[i - 1:i + 1])


# --- (d) behind the camera: drop, never queue ---------------------------------------------------------------------

def test_slow_model_answers_the_newest_frame_and_reports_drops(tmp_path):
    slow = write_slow_model(str(tmp_path / "slow.onnx"), 400)   # ~0.15 s per run here
    w, h = 64, 48                       # small frames: sending one takes no time
    frames = [np.full((h * 3 // 2, w), 16 * i, np.uint8) for i in range(8)]
    feeder = Feeder(w, h, num_buffers=8)
    proc = start(tmp_path, "modeld", "selfdrive.modeld.modeld", "--model", slow)
    try:
        feeder.warm_up(frames[0], proc, tmp_path)
        # how fast this modeld is on this machine now, by its own account (for the wait at the end)
        run_s = min(feeder.step(frames[0]).modelV2.modelExecutionTime for _ in range(3))
        # frames every 10 ms, 5x faster than even a quick run of this model (~0.1 s here): a load spike slows
        # modeld, never speeds it up, and one that stalls this test only sends the frames in bursts. (A period
        # taken from a measured run was too slow whenever the measurement caught a spike: modeld then kept up.)
        period = 0.01
        sent: dict[int, float] = {}
        answers: list[tuple[float, object]] = []
        t_next = time.monotonic()
        n = 100
        for k in range(n):
            fid = feeder.send(frames[k % len(frames)])
            sent[fid] = time.monotonic()
            t_next += period
            while (left := t_next - time.monotonic()) > 0:
                if (m := messaging.recv_one(feeder.sock, max(1, int(left * 1000)))) is not None:
                    answers.append((time.monotonic(), m))
        last = max(sent)
        deadline = time.monotonic() + 20 * run_s + 2.0
        while not answers or answers[-1][1].modelV2.frameId != last:
            assert time.monotonic() < deadline, f"the last frame {last} was never answered"
            if (m := messaging.recv_one(feeder.sock, 100)) is not None:
                answers.append((time.monotonic(), m))
        assert proc.poll() is None, (tmp_path / "modeld.stderr").read_text()
    finally:
        stop(proc)
        feeder.close()

    published = {m.modelV2.frameId: m.logMonoTime / 1e9 for _, m in answers}
    answers = [(t, m.modelV2) for t, m in answers if m.modelV2.frameId in sent]
    ids = [md.frameId for _, md in answers]
    runs = [round(md.modelExecutionTime, 3) for _, md in answers]
    assert all(b > a for a, b in pairwise(ids)), f"frame ids must increase: {ids}"
    assert len(answers) <= n / 2, f"{len(answers)} answers to {n} frames ({runs} s each): modeld queues"
    # each answer is to a frame that was new when modeld took it: never older than what was sent before the
    # previous answer went out (a queue would fall further and further behind). Stamps are CLOCK_MONOTONIC in
    # both processes; 2 ms leave the notification of a frame sent just before time to arrive.
    for (_, prev), (_, md) in pairwise(answers):
        newest_then = max((fid for fid, ts in sent.items() if ts < published[prev.frameId] - 0.002), default=-1)
        assert md.frameId >= newest_then, f"answered {md.frameId}, frame {newest_then} was waiting"
    # so an answer comes at most the rest of the run in progress plus its own run after its frame
    for (_, prev), (t, md) in pairwise(answers):
        latency = t - sent[md.frameId]
        assert latency < prev.modelExecutionTime + md.modelExecutionTime + 0.25, (md.frameId, latency, runs)
    # the skipped frames are reported, as a count and as a share
    final = answers[-1][1]
    skipped = sum(b - a - 1 for a, b in pairwise(ids))
    assert final.framesDropped - answers[0][1].framesDropped == skipped > 0
    assert 40.0 < final.frameDropPerc < 100.0


def test_newest_frame_counts_every_frame_lost_on_the_way():
    w, h = 64, 48
    server, client = VisionIpcServer(VisionStreamType.ROAD, w, h, num_buffers=8), VisionIpcClient(VisionStreamType.ROAD)
    try:
        frame = np.zeros((h * 3 // 2, w), np.uint8)
        base = 0
        while client.recv(20) is None:      # until the client is subscribed
            base += 1
            assert base < 200
            server.send(frame, base)
        while client.recv(50) is not None:
            pass
        for fid in (base + 1, base + 3, base + 4):    # base + 2 never sent: the client sees the gap
            server.send(frame, fid)
        time.sleep(0.05)
        f, lost = newest_frame(client, 100, base)
        assert f.frame_id == base + 4
        assert lost + f.dropped_before == 3, "skipped base+1 and base+3, never got base+2"
        # a resend of the frame already answered is no loss
        server.send(frame, base + 4)
        server.send(frame, base + 5)
        time.sleep(0.05)
        f, lost = newest_frame(client, 100, base + 4)
        assert (f.frame_id, lost + f.dropped_before) == (base + 5, 0)
    finally:
        client.close()
        server.close()
