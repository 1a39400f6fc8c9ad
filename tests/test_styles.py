"""Style specs, and the promise that mixing built-in styles is linear in the weights."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from media import draw_frame
from vidstyle.processing import styles
from vidstyle.errors import StyleError, VidstyleError
from vidstyle.models import NUM_STYLES

pytestmark = pytest.mark.timeout(60)


def one_hot(*pairs: tuple[int, float]) -> np.ndarray:
    w = np.zeros(NUM_STYLES, np.float32)
    for index, weight in pairs:
        w[index] = weight
    return w


def file_with(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --- parse -------------------------------------------------------------------------------


@pytest.mark.parametrize("spec, weights, label", [
    ("7", one_hot((7, 1)), "7"),
    (7, one_hot((7, 1)), "7"),  # an int from the API, not only text from the CLI
    (" 25 ", one_hot((25, 1)), "25"),  # the last index; spaces around the spec are fine
    ("3:0.5,12:0.5", one_hot((3, 0.5), (12, 0.5)), "3:0.5,12:0.5"),
    ("3:1,12:3", one_hot((3, 0.25), (12, 0.75)), "3:1,12:3"),  # normalised to sum 1
    ("3,12", one_hot((3, 0.5), (12, 0.5)), "3:1,12:1"),  # a bare index weighs 1
    ("0:2,0:2", one_hot((0, 1)), "0"),  # a repeated index adds up
    ("5:0,6:1", one_hot((6, 1)), "5:0,6:1"),  # a zero weight among others is allowed
], ids=["index", "int", "last-index", "half-half", "normalised", "bare-indexes", "repeated", "zero-weight"])
def test_parse_builtin(spec, weights, label):
    style = styles.parse(spec)
    np.testing.assert_allclose(style.weights, weights, rtol=1e-6)
    assert style.weights.dtype == np.float32 and style.weights.sum() == pytest.approx(1.0)
    assert (style.label, style.picture, style.model) == (label, None, "multistyle26")


@pytest.mark.parametrize("spec, words", [
    ("26", "unknown style index 26"),  # one past the last built-in
    ("-1", "unknown style index -1"),
    ("3:0.5,40:0.5", "unknown style index 40"),
    ("3:-1", "negative"),
    ("3:0,4:0", "must not all be zero"),
    ("3:nan", "finite"),  # float() accepts these; they would make every weight NaN
    ("3:1,4:inf", "finite"),
    ("", "empty style"),
    ("   ", "empty style"),
    ("seven", "neither a style index"),  # not a number, and no such picture either
    ("3:x", "neither a style index"),
    ("3;12", "neither a style index"),
    ("1.5", "neither a style index"),
], ids=["index-26", "negative-index", "index-in-mix", "negative-weight", "all-zero", "nan", "inf",
        "empty", "blank", "word", "bad-weight", "bad-separator", "float-index"])
def test_parse_rejects_bad_specs_in_one_line(spec, words):
    with pytest.raises(StyleError) as caught:
        styles.parse(spec)
    assert words in str(caught.value) and "\n" not in str(caught.value)
    assert isinstance(caught.value, VidstyleError) and isinstance(caught.value, ValueError)


def test_a_picture_is_a_style(tmp_path):
    path = tmp_path / "brush strokes.png"
    cv2.imwrite(str(path), cv2.cvtColor(draw_frame(3, 40, 30), cv2.COLOR_RGB2BGR))
    style = styles.parse(str(path))
    assert (style.picture, style.label, style.model, style.weights) == (path, "brush strokes.png",
                                                                        "arbitrary_transformer", None)
    rgb = styles.read_picture(path)
    assert rgb.shape == (30, 40, 3)
    np.testing.assert_array_equal(rgb, draw_frame(3, 40, 30))  # RGB, not OpenCV's BGR


@pytest.mark.parametrize("make, words", [
    (lambda d: d / "missing.jpg", "neither a style index"),
    (lambda d: d, "neither a style index"),  # a folder
    (lambda d: file_with(d / "notes.jpg", b"not a picture\n"), "cannot read style picture"),
    (lambda d: file_with(d / "empty.png", b""), "cannot read style picture"),
], ids=["missing", "folder", "text-as-jpg", "empty-file"])
def test_a_picture_that_cannot_be_used_is_a_style_error(tmp_path, make, words):
    path: Path = make(tmp_path)
    with pytest.raises(StyleError) as caught:
        styles.parse(str(path))
    assert words in str(caught.value) and str(path) in str(caught.value)


# --- mixing is linear ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def multistyle():
    from vidstyle.models import pretrained

    return pretrained("multistyle26")


def norm_layers(model):
    from vidstyle.models.layers import ConditionalInstanceNorm

    found = [layer for layer in model.layers if isinstance(layer, ConditionalInstanceNorm)]
    assert len(found) == 3 + 6 * 2 + 3  # contract, residual pairs, expand
    return found


@pytest.mark.slow
@pytest.mark.parametrize("a", [0.0, 0.25, 0.5, 0.9])
def test_mixed_style_parameters_are_the_mix_of_the_pure_ones(multistyle, a):
    mixed = styles.parse(f"3:{a},12:{1 - a}").weights
    pure3, pure12 = styles.parse("3").weights, styles.parse("12").weights
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 1)).astype(np.float32)
    for layer in norm_layers(multistyle):
        for table in (np.asarray(layer.gamma), np.asarray(layer.beta)):
            np.testing.assert_allclose(mixed @ table, a * (pure3 @ table) + (1 - a) * (pure12 @ table),
                                       rtol=1e-5, atol=1e-6)
        # The layer's own output is affine in (gamma, beta), so it mixes the same way.
        features = np.repeat(x, table.shape[1], axis=-1)
        out = lambda w: np.asarray(layer(features, w[None]))  # noqa: E731
        np.testing.assert_allclose(out(mixed), a * out(pure3) + (1 - a) * out(pure12), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_an_even_mix_paints_differently_from_either_style():
    from vidstyle.engines import create

    engine = create("tf", "multistyle26")
    frame = draw_frame(0, 64, 48)
    vectors = np.stack([styles.parse(s).weights for s in ("3", "12", "3:0.5,12:0.5")])
    pure3, pure12, mixed = engine.run(np.repeat(frame[None], 3, axis=0), vectors).astype(int)
    distance = lambda a, b: np.abs(a - b).mean()  # noqa: E731
    assert distance(pure3, pure12) > 10  # the two styles are far apart to begin with
    assert distance(mixed, pure3) > 3 and distance(mixed, pure12) > 3
