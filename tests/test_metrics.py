"""The flicker metric on cases whose answer is known."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from media import make_video
from vidstyle.measure import metrics
from vidstyle.apps.cli import main


def texture(h: int = 120, w: int = 160, seed: int = 0) -> np.ndarray:
    """Smooth colour noise in 0.3..0.7 (x255): trackable, and never clipped by a +-0.05 flicker."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 2.0)
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return (255 * (0.3 + 0.4 * noise)).astype(np.uint8)


def panning(frames: int, step: int = 2, h: int = 96, w: int = 128) -> list[np.ndarray]:
    big = texture(h, w + step * frames)
    return [big[:, i * step: i * step + w].copy() for i in range(frames)]


def test_a_static_scene_scores_zero():
    frame = texture()
    report = metrics.evaluate([frame] * 5, [frame] * 5, reference=[frame] * 5)
    assert report.warp_error < 1e-9 and report.input_warp_error < 1e-9
    assert report.deviation == 0
    assert math.isnan(report.moving_deviation)  # nothing moved: no figure, rather than a perfect one
    assert report.coverage > 0.95


def test_a_known_flicker_on_a_known_shift_scores_as_computed():
    inputs = panning(6)
    d = 0.05  # the whole picture alternates +d / -d on [0, 1]
    outputs = [np.clip(f.astype(np.int16) + (1 if i % 2 else -1) * round(255 * d), 0, 255).astype(np.uint8)
               for i, f in enumerate(inputs)]
    report = metrics.evaluate(inputs, outputs)
    # consecutive outputs differ by 2d in each of the three channels once aligned
    expected = 3 * (2 * round(255 * d) / 255) ** 2
    assert report.input_warp_error < 0.02 * expected  # the flow found the shift
    assert report.warp_error == pytest.approx(expected, rel=0.05)
    assert report.flicker_excess > 20


def test_occluded_and_boundary_pixels_are_excluded():
    """A 20x20 square moves right by 4 px over a still background (flows built by hand)."""
    h, w, x0, y0, side, dx = 64, 64, 20, 20, 20, 4
    forward = np.zeros((h, w, 2), np.float32)
    forward[y0:y0 + side, x0:x0 + side, 0] = dx
    backward = np.zeros((h, w, 2), np.float32)
    backward[y0:y0 + side, x0 + dx:x0 + dx + side, 0] = -dx
    valid = metrics.consistency_mask(forward, backward)
    rows = slice(y0 + 3, y0 + side - 3)
    # background about to be covered by the square: forward says "stays", backward says "square"
    assert not valid[rows, x0 + side:x0 + side + dx].any()
    assert not valid[rows, x0 + side - 1].any()  # the square's edge is a motion boundary
    assert valid[rows, x0 + 3:x0 + side - 3].all()  # inside the square: consistent
    assert valid[rows, :x0 - 2].all() and valid[rows, x0 + side + dx + 2:].all()  # far background
    # a flow that leaves the frame is not trusted either
    leaving = np.zeros((h, w, 2), np.float32)
    leaving[..., 0] = 8
    assert not metrics.consistency_mask(leaving, -leaving)[:, -8:].any()


def test_garbage_where_the_flow_is_not_trusted_does_not_count():
    inputs = panning(2, step=3)
    (pm,) = metrics.input_motion(inputs)
    assert 0 < (~pm.valid).sum()  # the pan uncovers a strip at the edge
    first = inputs[0].copy()
    first[~pm.valid] = np.random.default_rng(1).integers(0, 256, (int((~pm.valid).sum()), 3))
    report = metrics.evaluate(inputs, [first, inputs[1]], motion=[pm])
    assert report.warp_error == pytest.approx(report.input_warp_error, rel=0.05, abs=1e-6)
    everywhere = ((first.astype(float) - inputs[0]) / 255) ** 2
    assert everywhere.sum(-1).mean() > 1000 * report.warp_error  # the garbage would have counted


def test_a_scene_cut_is_left_out_of_the_means():
    first, second = panning(5), [255 - f for f in panning(4, step=3)]
    inputs = first + second
    d = round(255 * 0.05)
    outputs = [np.clip(f.astype(np.int16) + (d if i % 2 else -d), 0, 255).astype(np.uint8)
               for i, f in enumerate(inputs)]
    report = metrics.evaluate(inputs, outputs)
    assert report.cuts == [4]  # the pair (frame 4, frame 5)
    assert report.input_per_pair[4] > 100 * report.input_warp_error
    assert report.warp_error == pytest.approx(3 * (2 * d / 255) ** 2, rel=0.05)


def test_motion_from_another_clip_is_refused():
    inputs = panning(4)
    motion = list(metrics.input_motion(inputs[:3]))
    with pytest.raises(ValueError, match="motion ends before frame 3"):
        metrics.evaluate(inputs, inputs, motion=motion)
    with pytest.raises(ValueError):
        metrics.evaluate(inputs, inputs[:3])


def test_moving_deviation_looks_only_where_the_input_changed():
    still = texture(seed=2)
    inputs, reference, outputs = [], [], []
    for i in range(4):
        frame = still.copy()
        frame[40:60, 20 + 10 * i: 40 + 10 * i] = (250, 20, 20)  # a red square moves right
        inputs.append(frame)
        reference.append(255 - frame)
        out = 255 - frame
        if i:  # a ghost of the square where it was a frame ago
            out[40:60, 10 + 10 * i: 30 + 10 * i] = 255 - np.array((250, 20, 20))
        outputs.append(out)
    report = metrics.evaluate(inputs, outputs, reference=reference)
    assert report.moving_deviation > 10 * report.deviation > 0
    clean = metrics.evaluate(inputs, reference, reference=reference)
    assert clean.deviation == 0 and clean.moving_deviation == 0


def test_the_cli_prints_the_figures_and_writes_json(tmp_path, capsys):
    src = make_video(tmp_path / "in.mp4", frames=6, size=(64, 48), audio=False)
    out = tmp_path / "report.json"
    assert main(["metrics", str(src), str(src), "--reference", str(src), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "flicker excess" in printed and "1.00" in printed
    data = json.loads(out.read_text())
    assert data["frames"] == 6 and len(data["per_pair"]) == 5
    assert data["flicker_excess"] == pytest.approx(1.0)


def test_the_cli_refuses_videos_that_do_not_match(tmp_path, capsys):
    a = make_video(tmp_path / "a.mp4", frames=6, size=(64, 48), audio=False)
    b = make_video(tmp_path / "b.mp4", frames=5, size=(64, 48), audio=False)
    c = make_video(tmp_path / "c.mp4", frames=6, size=(96, 48), audio=False)
    assert main(["metrics", str(a), str(b)]) == 1
    assert "frame counts differ (input 6, output 5)" in capsys.readouterr().err
    assert main(["metrics", str(a), str(c)]) == 1
    assert "output is 96x48 but the input is 64x48" in capsys.readouterr().err
