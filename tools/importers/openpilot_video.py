"""An openpilot route's road video as roadpilot records it (tools/importers/openpilot.py calls this).

Each openpilot segment's fcamera.hevc (where there is none, its qcamera.ts) is decoded with PyAV; every frame the
log indexes (roadEncodeIdx for fcamera, qRoadEncodeIdx for qcamera: frameId -> segmentNum, segmentId = position in
that segment's file) is fitted to the model camera as camerad fits any video (cover + centre crop to its size,
selfdrive/camerad/nv12.py) and written as encoderd writes (road.mp4, selfdrive/loggerd/video_writer.py) into the
roadpilot segment its index message falls in. Each frame written gets roadpilot's roadEncodeIdx (its file and
position there) and a roadCameraState: openpilot's own for that frame, or one made from the index's times where the
log has none (a qlog keeps one roadCameraState in ten). Frames the video lacks or cannot decode are left out and
counted, with their messages; the rest of the video is still read.
"""

import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import NamedTuple

import av
import numpy as np

from cereal import log
from selfdrive.camerad.camerad import HEIGHT, WIDTH
from selfdrive.camerad.nv12 import to_nv12
from selfdrive.loggerd.video_writer import VIDEO_NAME, VideoWriter

# (video file in an openpilot segment folder, the Event member that indexes it), preferred first
VIDEOS = (("fcamera.hevc", "roadEncodeIdx"), ("qcamera.ts", "qRoadEncodeIdx"))
CAMERA_MEMBERS = ("roadCameraState", *(member for _, member in VIDEOS))
SOURCE = "openpilot"   # roadCameraState.source of an imported frame
PROGRESS_FRAMES = 200  # a progress line per this many frames (~10 s of a 20 fps video)


class CameraEntry(NamedTuple):
    """One openpilot roadCameraState or encode index message, as read (segment, position: -1 for a state)."""
    logMonoTime: int
    frame_id: int
    segment: int
    position: int
    sof: int
    eof: int


class Video(NamedTuple):
    path: str
    member: str                 # the index member whose entries point into it
    entries: list[CameraEntry]  # those entries for this segment, by position


def camera_entry(which: str, ev) -> CameraEntry:
    """The CameraEntry of an openpilot Event whose member is one of CAMERA_MEMBERS."""
    m = getattr(ev, which)
    if which == "roadCameraState":
        return CameraEntry(ev.logMonoTime, m.frameId, -1, -1, m.timestampSof, m.timestampEof)
    return CameraEntry(ev.logMonoTime, m.frameId, m.segmentNum, m.segmentId, m.timestampSof, m.timestampEof)


def find_videos(folders: dict[int, str], entries: dict[str, list[CameraEntry]]) -> dict[int, Video]:
    """openpilot segment number -> the video to import for it: the first of VIDEOS that its folder holds and the
    log indexes for that segment. `folders`: segment number -> the folder its log came from."""
    by_segment: dict[tuple[str, int], list[CameraEntry]] = defaultdict(list)
    for member, es in entries.items():
        for e in es:
            by_segment[(member, e.segment)].append(e)
    out = {}
    for n, folder in sorted(folders.items()):
        for name, member in VIDEOS:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and by_segment.get((member, n)):
                out[n] = Video(path, member, sorted(by_segment[(member, n)], key=lambda e: e.position))
                break
    return out


def _decoded(path: str, wanted: set[int], skipped: Counter) -> Iterator[tuple[int, np.ndarray]]:
    """(position, BGR picture) of each frame of `path` whose position is in `wanted`, decoding it in order; a decode
    error ends the file (what follows in it cannot be placed) and is counted."""
    last = max(wanted)
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for pos, frame in enumerate(container.decode(stream)):
                if pos in wanted:
                    yield pos, frame.to_ndarray(format="bgr24")
                if pos >= last:
                    return
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as e:
        skipped[f"undecodable video ({type(e).__name__})"] += 1


class _Writers:
    """road.mp4 per roadpilot segment, under a staging folder; a segment's file is closed once frames move on to the
    next (they only go forward)."""

    def __init__(self, staging: str):
        self.staging, self.segment, self.writer, self.positions = staging, -1, None, Counter()

    def write(self, segment: int, nv12: np.ndarray) -> int:
        if segment != self.segment:
            self.close()
            os.makedirs(os.path.join(self.staging, str(segment)), exist_ok=True)
            path = os.path.join(self.staging, str(segment), VIDEO_NAME)
            self.writer, self.segment = VideoWriter(path, WIDTH, HEIGHT), segment
        return self.writer.write(nv12)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def encode_videos(videos: dict[int, Video], states: list[CameraEntry], segment_of: Callable[[int], int],
                  staging: str, progress: Callable[[str], None]) -> tuple[list[tuple[int, bytes]], Counter]:
    """Writes the frames of `videos` under `staging/<roadpilot segment>/road.mp4`; returns the roadCameraState and
    roadEncodeIdx messages of the frames written ((logMonoTime, bytes), in time order) and the frames left out, by
    why. `segment_of(logMonoTime)`: the roadpilot segment a message at that time lands in."""
    state_of = {s.frame_id: s for s in states}
    out: list[tuple[int, bytes]] = []
    skipped: Counter = Counter()
    writers = _Writers(staging)
    total, done = sum(len(v.entries) for v in videos.values()), 0
    try:
        for n, video in sorted(videos.items()):
            at = {e.position: e for e in video.entries}
            written = 0
            for pos, bgr in _decoded(video.path, set(at), skipped):
                e = at[pos]
                # never back to an earlier file: the index message's path says where the frame is, whatever folder
                segment = max(segment_of(e.logMonoTime), writers.segment)
                position = writers.write(segment, to_nv12(bgr, WIDTH, HEIGHT))
                out.extend(_messages(e, state_of.get(e.frame_id), segment, position))
                written += 1
                if written % PROGRESS_FRAMES == 0:
                    progress(f"video {os.path.basename(video.path)} of segment {n}: {written} of {len(at)} frames")
            skipped["indexed frames not decoded"] += len(at) - written
            done += len(at)
            progress(f"video {os.path.basename(video.path)} of segment {n}: {written} of {len(at)} frames "
                     f"({done} of {total})")
    finally:
        writers.close()
    out.sort(key=lambda m: m[0])
    return out, +skipped


def _messages(e: CameraEntry, state: CameraEntry | None, segment: int, position: int) -> list[tuple[int, bytes]]:
    idx = log.Event.new_message(logMonoTime=e.logMonoTime)
    i = idx.init("roadEncodeIdx")
    i.frameId, i.segmentNum, i.segmentId, i.path = e.frame_id, segment, position, f"{segment}/{VIDEO_NAME}"
    s = state or e  # a qlog keeps few roadCameraStates: the index's own times stand in
    i.timestampSof, i.timestampEof = s.sof, s.eof
    cam = log.Event.new_message(logMonoTime=s.logMonoTime)
    c = cam.init("roadCameraState")
    c.frameId, c.timestampSof, c.timestampEof, c.width, c.height = e.frame_id, s.sof, s.eof, WIDTH, HEIGHT
    c.source, c.sourceOk = SOURCE, True
    return [(cam.logMonoTime, cam.to_bytes()), (idx.logMonoTime, idx.to_bytes())]


def move_into(staging: str, route: str) -> None:
    """The staged segment videos into the route's segment folders (made where no message landed)."""
    for name in os.listdir(staging):
        os.makedirs(os.path.join(route, name), exist_ok=True)
        os.replace(os.path.join(staging, name, VIDEO_NAME), os.path.join(route, name, VIDEO_NAME))
    shutil.rmtree(staging, ignore_errors=True)
