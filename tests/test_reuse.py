"""Reusing work across frames: keyframe decisions, region crops, propagation, and the pipeline."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from media import read_video
from vidstyle.frame import Frame
from vidstyle.offline import TranscodeConfig, transcode
from vidstyle.pipeline.runner import Pipeline, Stage
from vidstyle.pipeline.stages import stylize_stages
from vidstyle.processing import reuse, temporal
from vidstyle.processing.temporal import Motion


def texture(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.normalize(cv2.GaussianBlur(noise, (0, 0), 2), None, 0, 255, cv2.NORM_MINMAX)


BACKGROUND = texture(96, 160, 1)
OBJECT = np.clip(texture(32, 32, 2).astype(int) // 2 + (128, 0, 0), 0, 255).astype(np.uint8)  # reddish


def scene(t: int, speed: int = 4) -> np.ndarray:
    """A textured block moving right over a textured background."""
    image = BACKGROUND.copy()
    x = 20 + speed * t
    image[32:64, x:x + 32] = OBJECT
    return image


def stylize(image: np.ndarray) -> np.ndarray:
    """A stand-in for the network: any fixed per-pixel map will do for propagation."""
    return 255 - image


def motion(index: int, prev: int, shape=(96, 160), cut=False, untrusted=None, seen=BACKGROUND) -> Motion:
    """Still motion, with the estimator's view of the frame ``seen``."""
    trust = np.ones(shape, np.float32)
    if untrusted is not None:
        trust[untrusted] = 0.0
    return Motion(index, prev, np.zeros((*shape, 2), np.float32), trust, np.zeros(shape, np.float32), cut,
                  cv2.GaussianBlur(seen, (3, 3), 0))


# -- the keyframe policy -----------------------------------------------------------------

def test_the_start_a_cut_and_a_gap_force_keyframes():
    policy = reuse.KeyframePolicy()
    rgb = BACKGROUND
    assert policy.decide(0, None, rgb).key  # the start
    assert not policy.decide(1, motion(1, 0), rgb).key  # nothing moved: carried
    assert policy.decide(2, motion(2, 1, cut=True), rgb).key  # a cut
    assert policy.decide(4, motion(4, 3), rgb).key  # frame 3 was dropped: no history to carry
    assert policy.stats.keyframes == 3 and policy.stats.frames == 4


def test_every_n_frames_a_keyframe_when_asked():
    policy = reuse.KeyframePolicy(every=3)
    keys = [policy.decide(i, None if i == 0 else motion(i, i - 1), BACKGROUND).key for i in range(9)]
    assert keys == [True, False, False, True, False, False, True, False, False]


def test_an_untrusted_region_is_refreshed_and_scattered_noise_is_not():
    policy = reuse.KeyframePolicy()
    policy.decide(0, None, BACKGROUND)
    noise = np.zeros((96, 160), bool)
    noise[::9, ::11] = True  # single pixels here and there
    assert not policy.decide(1, motion(1, 0, untrusted=noise), BACKGROUND).fill
    block = np.zeros((96, 160), bool)
    block[40:56, 60:80] = True
    plan = policy.decide(2, motion(2, 1, untrusted=block), BACKGROUND)
    assert plan.fill and not plan.key
    assert plan.regions[40:56, 60:80].all() and plan.regions.mean() < 0.1  # the block, grown a little


def test_live_keyframes_come_from_their_thread_and_only_a_large_change_is_filled():
    policy = reuse.KeyframePolicy(asynchronous=True)
    assert policy.decide(0, None, BACKGROUND).key  # nothing to carry: a whole frame is needed now
    block = np.zeros((96, 160), bool)
    block[40:56, 60:80] = True
    assert not policy.decide(1, motion(1, 0, untrusted=block), BACKGROUND).fill  # waits for the next keyframe
    half = np.zeros((96, 160), bool)
    half[:, :96] = True
    plan = policy.decide(2, motion(2, 1, untrusted=half), BACKGROUND)
    assert plan.fill and not plan.key  # however large, never a keyframe in line
    assert all(not policy.decide(i, motion(i, i - 1), BACKGROUND).key for i in range(3, 3 + reuse.MAX_GAP + 5))
    assert policy.stats.keyframes == 0  # only landings (rebase) count
    policy.rebase(cv2.GaussianBlur(BACKGROUND, (3, 3), 0))
    assert policy.stats.keyframes == 1


def test_a_region_the_size_of_the_frame_makes_a_keyframe():
    policy = reuse.KeyframePolicy()
    policy.decide(0, None, BACKGROUND)
    most = np.zeros((96, 160), bool)
    most[8:88, 8:152] = True
    assert policy.decide(1, motion(1, 0, untrusted=most), BACKGROUND).key


def test_a_lighting_change_is_refreshed_although_the_flow_is_trusted():
    policy = reuse.KeyframePolicy()
    policy.decide(0, None, BACKGROUND)
    lit = BACKGROUND.copy()
    lit[30:60, 50:90] = np.clip(lit[30:60, 50:90].astype(int) + 60, 0, 255)
    plan = policy.decide(1, motion(1, 0, seen=lit), lit)
    assert plan.fill and plan.regions[35:55, 55:85].all()


@pytest.mark.parametrize("mask, size, limit", [
    ((slice(40, 50), slice(60, 70)), (160, 96), (160, 96)),  # one region
    ((slice(0, 6), slice(150, 160)), (160, 96), (160, 96)),  # at a corner
    ((slice(40, 50), slice(60, 70)), (158, 94), (160, 96)),  # a frame padded for the network
])
def test_boxes_cover_their_region_with_context_on_the_network_grid(mask, size, limit):
    regions = np.zeros((size[1], size[0]), np.uint8)
    regions[mask] = 1
    (x0, y0, x1, y1), = reuse.boxes(regions, *size, limit=limit)
    ys, xs = np.nonzero(regions)
    assert x0 <= max(0, xs.min() - reuse.MARGIN) and x1 >= min(limit[0], xs.max() + 1 + reuse.MARGIN)
    assert y0 <= max(0, ys.min() - reuse.MARGIN) and y1 >= min(limit[1], ys.max() + 1 + reuse.MARGIN)
    assert 0 <= x0 < x1 <= limit[0] and 0 <= y0 < y1 <= limit[1] and (x1 - x0) % 4 == 0 and (y1 - y0) % 4 == 0


def test_overlapping_boxes_merge():
    regions = np.zeros((96, 160), np.uint8)
    regions[40:44, 40:44] = regions[40:44, 60:64] = 1  # 16 px apart: their margins overlap
    assert len(reuse.boxes(regions, 160, 96, margin=16)) == 1
    assert len(reuse.boxes(regions, 160, 96, margin=4, align=4)) == 2


# -- propagation --------------------------------------------------------------------------

def propagate(frames: list[np.ndarray], fills: dict[int, reuse.Fill] | None = None) -> list[np.ndarray]:
    """Frame 0 is the keyframe; the others are carried along the real flow of the input."""
    smoother = temporal.create("flow", 0.95)
    propagator = reuse.Propagator(smoother)
    out = []
    for i, image in enumerate(frames):
        m = smoother.observe(i, image)
        key = stylize(image) if i == 0 else None
        out.append(propagator.step(i, m, key=key, fill=(fills or {}).get(i)))
    return out


def test_between_keyframes_the_stylized_texture_moves_with_the_object():
    frames = [scene(t) for t in range(6)]
    out = propagate(frames)
    keyed = stylize(frames[0])[36:60, 24:48].astype(int)  # inside the object at t = 0
    for t in (3, 5):
        x = 24 + 4 * t
        moved = out[t][36:60, x:x + 24].astype(int)
        assert np.abs(moved - keyed).mean() < 12, t  # the keyframe's object texture, shifted with it
        assert np.abs(out[t][36:60, 24:48].astype(int) - keyed).mean() > 30  # not left behind


def test_a_region_uncovered_behind_the_object_is_filled_fresh():
    frames = [scene(t, speed=8) for t in range(4)]
    smoother = temporal.create("flow", 0.95)
    regions = {}
    for i, image in enumerate(frames):
        m = smoother.observe(i, image)
        if m is not None:
            regions[i] = reuse._regions((m.trust < reuse.UNTRUSTED).astype(np.uint8)).astype(np.float32)
    fills = {i: reuse.Fill(stylize(frames[i]), mask) for i, mask in regions.items()}
    out = propagate(frames, fills)
    uncovered = out[3][36:60, 20:40].astype(int)  # where the object was at t = 0..2, background now
    fresh = stylize(frames[3])[36:60, 20:40].astype(int)
    stale = stylize(frames[0])[36:60, 20:40].astype(int)
    assert np.abs(uncovered - fresh).mean() < 12  # the background, freshly stylized
    assert np.abs(uncovered - stale).mean() > 40  # no stale copy of the object
    assert uncovered.min() > 0 and out[3].mean() > 20  # no holes, no black


# -- the network: frozen statistics, the pipeline ------------------------------------------

def test_a_crop_with_frozen_statistics_matches_the_whole_frame_away_from_its_margin():
    from vidstyle.engines.ort_engine import ORTEngine
    from vidstyle.processing import styles

    engine = ORTEngine("multistyle26")
    style = styles.parse("7").weights
    frame = np.ascontiguousarray(cv2.resize(scene(2), (192, 160)))
    whole, stats = engine.run_stats(frame[None], style)
    np.testing.assert_array_equal(whole, engine.run(frame[None], style))  # measuring changes nothing
    m = reuse.MARGIN
    x0, y0, x1, y1 = 64, 48, 128, 112  # the region; the crop adds the margin
    crop, = engine.run_frozen([frame[y0 - m:y1 + m, x0 - m:x1 + m]], style, stats)
    seam = np.abs(crop[m:-m, m:-m].astype(int) - whole[0, y0:y1, x0:x1].astype(int))
    assert seam.mean() <= 1.0 and crop.shape == (y1 - y0 + 2 * m, x1 - x0 + 2 * m, 3)
    own, = engine.run_frozen([frame[y0 - m:y1 + m, x0 - m:x1 + m]], style, engine.run_stats(frame[None, ::-1], style)[1])
    assert np.abs(own.astype(int) - crop.astype(int)).mean() > 1.0  # the statistics are really used


@pytest.fixture(scope="module")
def moving_clip(tmp_path_factory) -> Path:
    """The moving block as an H.264 clip, 16 frames at 25 fps."""
    import av

    path = tmp_path_factory.mktemp("reuse") / "moving.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        stream.options = {"crf": "10"}
        for t in range(16):
            for packet in stream.encode(av.VideoFrame.from_ndarray(scene(t, speed=2), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_a_keyframe_on_every_frame_is_the_plain_pipeline_bit_for_bit(moving_clip, tmp_path, threads):
    plain = transcode(TranscodeConfig(moving_clip, tmp_path / "plain.mp4", reuse="off"))
    every = transcode(TranscodeConfig(moving_clip, tmp_path / "every.mp4", reuse=1))
    assert plain.reuse is None and every.reuse.keyframes == every.frames == plain.frames == 16
    for a, b in zip(read_video(plain.output).frames, read_video(every.output).frames, strict=True):
        np.testing.assert_array_equal(a, b)
    threads.assert_back_to_start()


def test_auto_runs_the_network_on_part_of_the_frames_and_keeps_every_frame(moving_clip, tmp_path, threads):
    result = transcode(TranscodeConfig(moving_clip, tmp_path / "auto.mp4", reuse="auto"))
    video = read_video(result.output)
    assert video.pts == read_video(moving_clip).pts  # every frame, at its own time
    assert 1 <= result.reuse.keyframes < 16 and 0 < result.reuse.network_work < 1
    threads.assert_back_to_start()


def test_the_shared_stages_reuse_work_only_with_flow_smoothing():
    from test_live import SlowEngine
    from vidstyle.pipeline.stylizer import Stylizer
    from vidstyle.processing import geometry, styles

    class Counter(SlowEngine):
        pixels = 0

        def run(self, batch, style):
            Counter.pixels += batch.shape[0] * batch.shape[1] * batch.shape[2]
            return super().run(batch, style)

    engine = Counter(0.0)
    stylizer = Stylizer(styles.parse("7"), engine=engine)
    frames = [Frame(i, i, None, scene(i)) for i in range(8)]

    def run(mode: str, policy) -> list[np.ndarray]:
        got = []
        stages = stylize_stages(stylizer, geometry.plan(160, 96), 4, temporal.create(mode), keyframes=policy)
        Pipeline(lambda: iter(frames), stages + [Stage("collect", lambda f: got.append(f.image) or ())]).run()
        return got

    assert len(run("flow", reuse.KeyframePolicy(every=4))) == 8
    reused, Counter.pixels = Counter.pixels, 0
    assert len(run("off", reuse.KeyframePolicy(every=4))) == 8  # no flow to carry along: every frame runs
    assert Counter.pixels == 8 * 160 * 96 and reused < Counter.pixels


def test_vidstyle_live_with_reuse_reports_its_keyframes(tmp_path, capsys, threads):
    import json

    from media import make_video
    from vidstyle.apps.cli import main

    clip = make_video(tmp_path / "cam.mp4", frames=20, size=(96, 64), audio=False)
    out = tmp_path / "stats.json"
    assert main(["live", "--camera", str(clip), "--stats-json", str(out)]) == 0  # live reuses by default
    stats = json.loads(out.read_text())
    assert stats["delivered"] + stats["dropped_source"] + stats["dropped_stale"] == 20
    assert stats["keyframe_size"] == "96x64" and stats["keyframe_fps"] > 0  # the camera's size: below 480
    assert 0 < stats["recomputed"] <= 1
    assert "keyframes at" in capsys.readouterr().out
    assert main(["live", "--camera", str(clip), "--reuse", "off", "--stats-json", str(out)]) == 0
    assert "keyframe_fps" not in json.loads(out.read_text())  # without reuse, nothing about keyframes
    threads.assert_back_to_start()
