"""student26, the distilled network (docs/student.md): cost, weights and held-out quality."""
from __future__ import annotations

import json

import numpy as np
import pytest

from vidstyle.models import BUILTIN_NETWORKS, MODEL_NAMES, WEIGHTS_DIR, load_weights, pretrained
from tools.distill import BOUND_MAE, BOUND_SSIM, HOLDOUT

# Styles checked here (the full 26-style table is in student26.json / docs/student.md):
# the two weakest in the held-out evaluation (3, 17) and the best (23).
STYLES = (3, 17, 23)


def test_registered():
    assert "student26" in MODEL_NAMES and "student26" in BUILTIN_NETWORKS


def test_half_the_teacher_multiply_adds():
    from vidstyle.measure import flops

    teacher, student = pretrained("multistyle26"), pretrained("student26")
    for h, w in ((480, 640), (272, 640), (144, 176)):
        t, s = flops.multiply_adds(teacher, h, w), flops.multiply_adds(student, h, w)
        assert s <= 0.5 * t, f"{h}x{w}: student {s} MACs vs teacher {t}"


def test_weights_load_strictly(tmp_path):
    from vidstyle.errors import EngineError
    from vidstyle.models.student import build_student

    model = build_student()
    load_weights(model, WEIGHTS_DIR / "student26.npz")  # every key used, none missing
    data = dict(np.load(WEIGHTS_DIR / "student26.npz"))
    data.pop(next(iter(data)))
    np.savez(tmp_path / "short.npz", **data)
    with pytest.raises(EngineError):
        load_weights(build_student(), tmp_path / "short.npz")
    report = json.loads((WEIGHTS_DIR / "student26.json").read_text())
    assert report["model"] == "student26" and report["steps"] > 0


def _held_out_frames() -> dict[str, np.ndarray]:
    """Two frames from the held-out end of cup (never trained on), halved to 320x240 so the
    check stays fast. (carphone, the other held-out clip of training, was real footage
    that is no longer at hand; benchmarks/clips.py makes a stand-in, not the same pictures.)"""
    clips = pytest.importorskip("benchmarks.clips")
    import cv2

    cup = clips.real_frames("cup")
    start = int(round(len(cup) * (1 - HOLDOUT)))
    small = [cv2.resize(cup[i], (320, 240), interpolation=cv2.INTER_AREA) for i in (start + 5, len(cup) - 1)]
    return {"cup": np.stack(small).astype(np.float32) / 255.0}


def _quality() -> dict[tuple[str, int], tuple[float, float]]:
    """(mean abs, SSIM) of the student against the teacher per (clip, style)."""
    from vidstyle.measure.metrics import ssim

    teacher, student = pretrained("multistyle26"), pretrained("student26")
    out = {}
    for name, frames in _held_out_frames().items():
        for style in STYLES:
            w = np.zeros((len(frames), 26), np.float32)
            w[:, style] = 1
            want = np.asarray(teacher([frames, w]))
            got = np.asarray(student([frames, w]))
            out[(name, style)] = (float(np.abs(got - want).mean()),
                                  float(np.mean([ssim(g, t) for g, t in zip(got, want)])))
    return out


@pytest.fixture(scope="module")
def quality():
    return _quality()


def test_held_out_quality_no_worse_than_recorded(quality):
    """The shipped weights are as close to the teacher as when they were trained: the
    held-out figures recorded in student26.json (worst style) with a small margin."""
    worst = json.loads((WEIGHTS_DIR / "student26.json").read_text())["held_out"]["summary"]
    mae_limit = worst["worst_clip_mae"]["max"] + 0.01
    ssim_limit = worst["worst_clip_ssim"]["min"] - 0.03
    for key, (mae, sim) in quality.items():
        assert mae <= mae_limit and sim >= ssim_limit, f"{key}: mean abs {mae:.4f}, SSIM {sim:.4f}"


@pytest.mark.xfail(strict=True, reason="the quality bound of the CPU levers (mean abs <= 0.02, SSIM >= 0.92 against the teacher) "
                   "is not met yet by the 40-minute CPU distillation: see docs/student.md")
def test_held_out_quality_meets_the_cpu_levers_bound(quality):
    for key, (mae, sim) in quality.items():
        assert mae <= BOUND_MAE and sim >= BOUND_SSIM, f"{key}: mean abs {mae:.4f}, SSIM {sim:.4f}"


def test_ssim_reference_points():
    from vidstyle.measure.metrics import ssim

    rng = np.random.default_rng(0)
    a = rng.random((40, 48, 3))
    assert ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1)
    assert 0.3 < ssim(a, noisy) < 0.9
    assert ssim(a, 1 - a) < 0.0
