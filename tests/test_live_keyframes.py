"""Live keyframes: composed flows, a late keyframe carried to the present, the worker, recording."""
from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from test_live import SlowEngine
from test_reuse import scene, texture
from vidstyle.frame import Frame
from vidstyle.pipeline import keyframes
from vidstyle.pipeline.sizing import Fixed
from vidstyle.pipeline.stylizer import Stylizer
from vidstyle.processing import geometry, reuse, styles, temporal
from vidstyle.processing.carry import Trail, carry, compose


def smooth_flow(seed: int, shape=(48, 64)) -> np.ndarray:
    """A shift of a pixel or two, bent a little."""
    rng = np.random.default_rng(seed)
    bend = cv2.GaussianBlur(rng.normal(0, 1, (*shape, 2)).astype(np.float32), (0, 0), 8)
    return rng.uniform(-2, 2, 2).astype(np.float32) + 8 * bend


def test_composed_flows_carry_a_picture_as_the_steps_one_by_one_do():
    picture = texture(48, 64, 0)
    flows = [smooth_flow(seed) for seed in range(4)]  # oldest first: frame 1 -> 0, ..., 4 -> 3
    stepwise = picture
    for flow in flows:
        stepwise = carry(stepwise, flow)
    once = carry(picture, compose(flows[::-1]))
    inner = np.s_[8:-8, 8:-8]  # the edges replicate differently
    # Within the blur that four resamplings add and one does not.
    assert np.abs(once[inner].astype(int) - stepwise[inner].astype(int)).mean() < 3.0
    assert np.abs(picture[inner].astype(int) - stepwise[inner].astype(int)).mean() > 20.0  # it did move


def test_the_trail_reaches_back_only_as_far_as_the_chain_is_unbroken():
    trail, est = Trail(length=4), temporal.FlowEstimator()
    frames = [scene(t) for t in range(7)]
    for i, image in enumerate(frames):
        m = est(i, image)
        if i == 5:
            m = temporal.Motion(m.index, m.prev_index, m.flow, m.trust, m.moving, True, m.colour)  # a cut
        trail.add(i, m, est.colour)
        if i == 4:
            assert trail.path(1) is not None and trail.path(0) is None  # four frames kept
            newest, colour, flow = trail.path(2)
            assert newest == 4 and flow.shape == (96, 160, 2) and colour.shape == (96, 160, 3)
            assert trail.path(4)[2] is None  # the newest itself: nothing to carry
    assert trail.path(4) is None and trail.path(5) is not None  # nothing reaches across the cut


def drive(stages, frames, after=lambda i: None):
    """The stages run in frame order on this thread, as the pipeline's threads would."""
    out = []
    for frame in frames:
        items = [frame]
        for stage in stages:
            items = [o for item in items for o in stage.process(item)]
        out.extend(items)
        after(frame.index)
    return out


def wait_for(condition, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def test_a_keyframe_that_finishes_three_frames_late_lands_where_the_object_is_now(threads, monkeypatch):
    """The stand-in inverts the picture, the first keyframe halves it, the late one (of
    frame 3, finished while frames 4-6 went by) is the picture itself: where its texture
    shows after the fade tells whether it was carried to the present. No fills: they
    would put fresh pixels over the object's edges and hide where it landed."""
    monkeypatch.setattr(reuse, "FILL_SHARE", 2.0)
    monkeypatch.setattr(reuse.Carrier, "KEEP", 0.0)  # the landing replaces the carried picture outright
    frames = [Frame(t, t, None, scene(t)) for t in range(12)]
    key = geometry.plan(160, 96)
    stylizer = Stylizer(styles.parse("7"), engine=SlowEngine(0.0))
    trail, smoother = Trail(), temporal.Flow()
    policy = reuse.KeyframePolicy(asynchronous=True)
    looks = {0: lambda net: net // 2, 3: lambda net: net}
    job = keyframes.keyframe_job(lambda net: looks[current[0]](net), key, trail)
    current = [None]

    def stylize(index, net):
        if index not in looks:
            return None
        current[0] = index
        if index != 3:
            return job(index, net)
        wait_for(lambda: trail.newest >= 4, "frame 4")
        carried = job(index, net)  # carried as far as the trail went: frame 4 or 5 ...
        wait_for(lambda: trail.newest >= 6, "frame 6")  # ... the camera path bridges the rest
        return carried

    worker = keyframes.KeyframeWorker(stylize)
    stages = keyframes.keyframe_stages(stylizer, key, Fixed(geometry.plan(160, 96, 80)), smoother, policy,
                                       worker, trail)

    def after(i):  # frames 0-2 are taken before the next frame comes; frame 3's lands after frame 6
        if i < 3 or i == 6:
            wait_for(lambda: worker.done >= min(i, 3) + 1, f"the worker past frame {i}")

    try:
        out = drive(stages, frames, after)
    finally:
        worker.close()
    assert not worker.alive and policy.stats.keyframes == 2
    t, x = 11, 20 + 4 * 11
    inside = np.s_[38:58, x + 6:x + 26]  # the object now, away from its edges
    assert np.abs(out[t].image[inside].astype(int) - frames[t].image[inside].astype(int)).mean() < 12
    threads.assert_back_to_start()


def test_a_landing_keyframe_keeps_part_of_the_carried_keyframe_but_none_of_a_cheap_fill():
    """Consecutive keyframes differ (the network is not temporally stable): a landing keeps
    KEEP of what an earlier keyframe put there, and fades in; a cheap fill it replaces."""
    still = lambda i: reuse_motion(i)  # noqa: E731
    carrier = reuse.Carrier(temporal.Flow())
    a, b = np.full((96, 160, 3), 100, np.uint8), np.full((96, 160, 3), 200, np.uint8)
    mask = np.zeros((96, 160), np.float32)
    mask[:, :80] = 1.0  # the left half refreshed by a fill (value 0) before the landing
    carrier.step(0, None, stand_in=a, cheap=False)
    carrier.step(1, still(1), fill=reuse.Fill(np.zeros_like(a), mask))
    shown = [carrier.step(i, still(i), landed=b if i == 2 else None) for i in range(2, 2 + reuse.Carrier.RAMP + 1)]
    kept = round(reuse.Carrier.KEEP * 100 + (1 - reuse.Carrier.KEEP) * 200)
    assert abs(int(shown[-1][48, 120, 0]) - kept) <= 1  # from the earlier keyframe: partly kept
    assert abs(int(shown[-1][48, 40, 0]) - 200) <= 1  # a fill's pixels: replaced
    assert int(shown[-1][48, 120, 0]) - int(shown[0][48, 120, 0]) > 5  # and it came in over the fade


def reuse_motion(index: int) -> temporal.Motion:
    shape = (96, 160)
    return temporal.Motion(index, index - 1, np.zeros((*shape, 2), np.float32), np.ones(shape, np.float32),
                           np.zeros(shape, np.float32), False, np.zeros((*shape, 3), np.uint8))


def test_live_fills_what_the_moving_object_uncovers(threads, monkeypatch):
    """One keyframe (halving the picture), then only fills (inverting it): behind the object
    the background comes back fresh, not as a stale copy of the object. (Live video fills
    only large changes; here every change is, to see the fill's pixels land.)"""
    monkeypatch.setattr(reuse, "LIVE_FILL_SHARE", reuse.FILL_SHARE)
    frames = [Frame(t, t, None, scene(t)) for t in range(9)]
    key = geometry.plan(160, 96)
    stylizer = Stylizer(styles.parse("7"), engine=SlowEngine(0.0))
    trail, smoother = Trail(), temporal.Flow()
    policy = reuse.KeyframePolicy(asynchronous=True)
    job = keyframes.keyframe_job(lambda net: net // 2, key, trail)
    worker = keyframes.KeyframeWorker(lambda index, net: job(index, net) if index == 0 else None)
    stages = keyframes.keyframe_stages(stylizer, key, Fixed(key), smoother, policy, worker, trail)
    try:
        out = drive(stages, frames, lambda i: wait_for(lambda: worker.done >= i + 1, f"frame {i} taken"))
    finally:
        worker.close()
    uncovered = np.s_[36:60, 22:50]  # the object at t = 0, background since t = 8
    now = out[8].image[uncovered].astype(int)
    assert np.abs(now - (255 - frames[8].image[uncovered].astype(int))).mean() < 12  # freshly filled
    assert np.abs(now - frames[0].image[uncovered].astype(int) // 2).mean() > 40  # no stale object
    assert now.min() > 0 and policy.stats.fills >= 6
    threads.assert_back_to_start()


def test_a_failing_keyframe_stops_the_camera_path_with_its_error_and_leaves_no_thread(threads):
    def fail(index, net):
        raise RuntimeError("device lost")

    worker = keyframes.KeyframeWorker(fail)
    worker.offer(0, np.zeros((4, 4, 3), np.uint8))
    wait_for(lambda: not worker.alive, "the worker to stop")
    with pytest.raises(RuntimeError, match="device lost"):
        worker.landed()
    worker.close()
    threads.assert_back_to_start()


def test_the_worker_takes_the_newest_frame_and_close_waits_for_the_one_in_progress(threads):
    seen, release = [], threading.Event()

    def slow(index, net):
        seen.append(index)
        release.wait(5)
        return index, net

    worker = keyframes.KeyframeWorker(slow)
    worker.offer(0, np.zeros(1))
    wait_for(lambda: seen == [0], "the first frame")
    for i in range(1, 5):
        worker.offer(i, np.zeros(1))  # each replaces the one before: the worker is busy
    release.set()
    wait_for(lambda: worker.done == 2, "two keyframes")
    assert seen == [0, 4] and worker.landed()[0] == 4 and worker.landed() is None
    worker.close()
    assert not worker.alive
    threads.assert_back_to_start()


def test_live_record_keeps_the_file_cameras_timestamps(tmp_path, threads):
    import av

    from media import make_video
    from vidstyle.apps.cli import main

    clip = make_video(tmp_path / "cam.mp4", frames=30, size=(96, 64), audio=False)
    rec = tmp_path / "rec.mp4"
    assert main(["live", "--camera", str(clip), "--reuse", "auto", "--record", str(rec), "--size", "96"]) == 0
    with av.open(str(clip)) as c:
        source = {f.pts: f.to_ndarray(format="rgb24") for f in c.decode(video=0)}
    with av.open(str(rec)) as c:
        recorded = [(f.pts, f.time_base) for f in c.decode(video=0)]
        assert c.streams.video[0].time_base == av.open(str(clip)).streams.video[0].time_base
    assert recorded and {pts for pts, _ in recorded} <= set(source)  # every frame is a source frame's
    assert len(recorded) >= 15  # a few may be dropped as stale on a loaded machine
    threads.assert_back_to_start()


def test_a_looped_file_cameras_timestamps_keep_rising():
    from vidstyle.io.paced import PacedSource

    tb = 1 / __import__("fractions").Fraction(90000)
    pictures = lambda: (Frame(i, 3000 * i, tb, np.zeros((4, 4, 3), np.uint8)) for i in range(3))  # noqa: E731
    produced = []  # every frame, as the producer hands it on (the reader's mailbox would keep the newest)
    PacedSource(pictures, rate=1000, loop=True, count=7).produce(produced.append, threading.Event())
    stamps = [f.pts for f in produced]
    assert stamps == [0, 3000, 6000, 6090, 9090, 12090, 12180]  # a loop resumes one frame (at 1000 fps) on


def test_a_recording_is_dropped_when_the_run_fails(tmp_path, threads):
    from vidstyle.io.record import Recorder

    rec = Recorder(tmp_path / "rec.mp4", 64, 48, 30)
    for i in range(3):
        rec(Frame(i, None, None, np.zeros((48, 64, 3), np.uint8), time.monotonic()))
    rec.close(ok=False)
    assert list(tmp_path.iterdir()) == []
    threads.assert_back_to_start()


def test_a_browser_viewer_with_reuse_gets_its_picture_and_keyframe_figures(threads):
    import asyncio
    from dataclasses import replace

    from test_serve import SETTINGS, Peer, picture_a, picture_b, running, stylized

    a, b = picture_a(), picture_b()
    want = stylized(a, "7")

    async def scenario(url):
        peer = Peer(url, a)
        try:
            await peer.connect()
            near = await peer.settle_on(want, [stylized(b, "7"), a, b])
            await asyncio.sleep(1.0)  # the stats message comes every half second
            return near, peer.stats[-1] if peer.stats else None
        finally:
            await peer.close()

    with running(replace(SETTINGS, reuse="auto", temporal="flow")) as server:
        near, stats = asyncio.run(scenario(server.url))
    assert near < 25  # a still picture: its keyframes are its stylization
    assert stats is not None and stats["keyframe_size"] == stats["size"] == "128x96" and stats["keyframe_fps"] > 0
    threads.assert_back_to_start()
