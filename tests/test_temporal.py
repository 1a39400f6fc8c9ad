"""Temporal smoothing: less flicker, no trails, fresh starts where history is wrong."""
from __future__ import annotations

import numpy as np
import pytest

from test_metrics import texture
from vidstyle.measure import metrics
from vidstyle.processing import temporal
from vidstyle.apps.cli import main

RED = np.array((240, 30, 30), np.uint8)


def scene(frames: int = 16, h: int = 96, w: int = 128):
    """A slow pan over a texture with a red square moving right 4 px a frame on top of it."""
    big = texture(h, w + frames, seed=3)
    clips = []
    for i in range(frames):
        frame = big[:, i: i + w].copy()
        frame[36:60, 10 + 4 * i: 34 + 4 * i] = RED
        clips.append(frame)
    return clips


def fake_stylize(frames, flicker: float = 25.0, seed: int = 4):
    """A "stylization" (the negative) plus blotchy noise that changes every frame: flicker."""
    rng = np.random.default_rng(seed)
    out = []
    for f in frames:
        blotches = np.kron(rng.normal(0, flicker, (f.shape[0] // 8, f.shape[1] // 8, 3)), np.ones((8, 8, 1)))
        out.append(np.clip(255.0 - f + blotches, 0, 255).astype(np.uint8))
    return out


def run(mode: str, strength: float, inputs, stylized):
    return list(temporal.smooth(inputs, stylized, temporal.create(mode, strength)))


def test_flow_removes_most_flicker_and_leaves_no_trail():
    inputs = scene()
    stylized = fake_stylize(inputs)
    motion = list(metrics.input_motion(inputs))
    off = metrics.evaluate(inputs, stylized, motion=motion)
    flow_out = run("flow", 0.95, inputs, stylized)
    ema_out = run("ema", 0.8, inputs, stylized)
    flow = metrics.evaluate(inputs, flow_out, motion=motion)
    assert flow.warp_error < off.warp_error / 3

    # Where the square was two frames ago the clean stylization is background: a trail
    # is the square's colour (its negative) still showing there.
    last = len(inputs) - 1
    x = 10 + 4 * (last - 2)
    trail = (slice(40, 56), slice(x, x + 6))
    clean = 255 - inputs[last].astype(float)

    def trail_error(out):
        return np.abs(out[last][trail].astype(float) - clean[trail]).mean()

    assert trail_error(flow_out) < 20  # the flicker's own size, no square colour
    assert trail_error(ema_out) > 2 * trail_error(flow_out)  # the baseline does trail: the test can fail


def test_a_scene_cut_starts_afresh():
    a, b = (np.clip((texture(seed=seed) - 76.0) * 2.5, 0, 255).astype(np.uint8) for seed in (5, 6))
    inputs = [a] * 4 + [b] * 3
    stylized = fake_stylize(inputs)
    out = run("flow", 1.0, inputs, stylized)
    assert not np.array_equal(out[3], stylized[3])  # history was used before the cut ...
    np.testing.assert_array_equal(out[4], stylized[4])  # ... and none of it crosses the cut


def test_a_frame_missing_from_the_sequence_restarts_the_history():
    inputs = scene(4)
    stylized = fake_stylize(inputs)
    smoother = temporal.create("flow", 1.0)
    motions = [smoother.observe(i, f) for i, f in enumerate(inputs)]
    smoother.blend(0, stylized[0], motions[0])
    smoother.blend(1, stylized[1], motions[1])
    # frame 2 was dropped downstream (live mode): frame 3's flow points to 2, not to 1
    np.testing.assert_array_equal(smoother.blend(3, stylized[3], motions[3]), stylized[3])


def test_a_size_change_restarts_the_history():
    small, large = texture(48, 64), texture(96, 128)
    out = run("flow", 1.0, [small, small, large], fake_stylize([small, small, large]))
    assert out[2].shape == large.shape


@pytest.mark.parametrize("mode", temporal.MODES)
def test_strength_zero_and_off_pass_frames_through(mode):
    inputs = scene(5)
    stylized = fake_stylize(inputs)
    for a, b in zip(run(mode, 0.0, inputs, stylized), stylized):
        np.testing.assert_array_equal(a, b)


def test_off_keeps_frames_and_ema_mixes_them():
    inputs = scene(3)
    stylized = fake_stylize(inputs)
    assert all(a is b for a, b in zip(run("off", 0.9, inputs, stylized), stylized))
    ema = run("ema", 0.5, inputs, stylized)
    expected = (stylized[0].astype(float) + stylized[1]) / 2
    assert np.abs(ema[1] - expected).max() <= 1


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="between 0 and 1"):
        temporal.create("flow", 1.5)
    with pytest.raises(ValueError, match="choose one of off, ema, flow"):
        temporal.create("blur")


def test_the_cli_refuses_a_bad_temporal_strength(tmp_path, capsys):
    code = main(["transcode", str(tmp_path / "in.mp4"), "-o", str(tmp_path / "out.mp4"),
                 "--temporal-strength", "1.5"])
    assert code == 1
    assert capsys.readouterr().err.strip() == "vidstyle: error: --temporal-strength must be between 0 and 1, got 1.5"


@pytest.mark.slow
def test_the_pipeline_smooths_exactly_like_one_thread(threads):
    """Motion and blend run on two pipeline threads; the result must not depend on that."""
    from media import draw_frame
    from vidstyle.processing import geometry, styles
    from vidstyle.frame import Frame
    from vidstyle.pipeline.runner import Pipeline, Stage
    from vidstyle.pipeline.stylizer import Stylizer
    from vidstyle.pipeline.stages import stylize_stages

    inputs = [draw_frame(i, 64, 48) for i in range(9)]
    stylizer = Stylizer(styles.parse("7"))
    geom = geometry.plan(64, 48)

    def through_pipeline(mode):
        got = []
        stages = stylize_stages(stylizer, geom, 4, temporal.create(mode, 0.9))
        stages.append(Stage("collect", lambda f: got.append(f.image) or ()))
        source = lambda: (Frame(i, i, None, f) for i, f in enumerate(inputs))  # noqa: E731
        stats = Pipeline(source, stages).run()
        return got, set(stats.stages)

    per_frame, names = through_pipeline("off")
    assert "motion" not in names
    smoothed, names = through_pipeline("flow")
    assert {"motion", "engine", "temporal"} <= names
    expected = list(temporal.smooth(inputs, per_frame, temporal.create("flow", 0.9)))
    for a, b in zip(smoothed, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(smoothed, per_frame))
    threads.assert_back_to_start()
