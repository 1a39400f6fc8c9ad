"""The ONNX files shipped in vidstyle/models/onnx: each is what a fresh export of its Keras
network writes, byte for byte; the style predictor's export computes what Keras does; the
region-recompute variants made from them; and the runtime (transcode with a built-in style
and with a picture) working in a process where TensorFlow and Keras cannot be imported."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tools/ sits beside the package
from vidstyle import models
from vidstyle.engines.export import model_file, norm_variants
from vidstyle.errors import EngineError

# Run first in a child process: TensorFlow and Keras are made unimportable, as in an
# install without the tf extra.
BLOCK_TF = textwrap.dedent("""
    import sys

    class Hidden:
        # Wraps each import finder so that TensorFlow and Keras are not found, as in an
        # install without the tf extra (find_spec answers None, import raises ModuleNotFoundError).
        def __init__(self, finder):
            self.finder = finder

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
                return None
            find = getattr(self.finder, "find_spec", None)
            return find(name, path, target) if find else None

        def __getattr__(self, attr):
            return getattr(self.finder, attr)

    sys.meta_path[:] = [Hidden(f) for f in sys.meta_path]
""")


def session(data):
    return ort.InferenceSession(data if isinstance(data, bytes) else str(data), providers=["CPUExecutionProvider"])


def test_each_network_ships_an_onnx_file_of_reasonable_size():
    sizes = {name: models.onnx_file(name).stat().st_size for name in models.MODEL_NAMES}
    print(f"\nshipped ONNX files: {', '.join(f'{k} {v / 1e6:.2f} MB' for k, v in sizes.items())}")
    assert all(size > 100_000 for size in sizes.values())
    assert sum(sizes.values()) < 16e6  # the predictor's MobileNet is most of it (9.4 MB)


@pytest.mark.slow
@pytest.mark.parametrize("name", models.MODEL_NAMES)
def test_the_shipped_file_is_a_fresh_export_of_the_keras_network(name):
    pytest.importorskip("tensorflow")
    from tools.export_onnx import exported

    assert models.onnx_file(name).read_bytes() == exported(name), (
        f"vidstyle/models/onnx/{name}.onnx is stale: run python -m tools.export_onnx (make onnx)")


@pytest.mark.slow
def test_the_predictor_export_computes_what_keras_does():
    pytest.importorskip("tensorflow")
    pictures = np.random.default_rng(3).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    keras_vectors = np.asarray(models.pretrained("style_predictor")(pictures.astype(np.float32) / 255.0))
    onnx_vectors = session(models.onnx_file("style_predictor")).run(None, {"image": pictures})[0]
    assert onnx_vectors.shape == (2, models.STYLE_DIM)
    assert np.abs(onnx_vectors - keras_vectors).max() < 1e-5


@pytest.mark.parametrize("name", ["multistyle26", "arbitrary_transformer"])
def test_frozen_statistics_of_the_frame_itself_give_the_plain_output(name, tmp_path, monkeypatch):
    monkeypatch.setenv("VIDSTYLE_CACHE", str(tmp_path))
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (1, 48, 64, 3), dtype=np.uint8)
    style = rng.random(26 if name == "multistyle26" else 100, dtype=np.float32)
    plain = session(model_file(name, "fp32")).run(None, {"image": image, "style": style})[0]
    stats_session = session(model_file(name, "fp32", "stats"))
    out, *stats = stats_session.run(None, {"image": image, "style": style})
    np.testing.assert_array_equal(out, plain)
    names = [o.name for o in stats_session.get_outputs()[1:]]
    assert names[:4] == ["norm0.mean", "norm0.var", "norm1.mean", "norm1.var"]
    frozen = session(model_file(name, "fp32", "frozen"))
    feeds = {i.name: s[0] for i, s in zip(frozen.get_inputs()[2:], stats)}
    again = frozen.run(None, {"image": image, "style": style, **feeds})[0]
    assert np.abs(again.astype(int) - plain.astype(int)).max() <= 1
    with pytest.raises(ValueError, match="norms must be one of"):
        norm_variants.variant(onnx.load(str(models.onnx_file(name))), "plain")


def test_a_missing_file_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(models, "ONNX_DIR", tmp_path)
    with pytest.raises(EngineError, match="ONNX file of multistyle26 is missing") as err:
        models.onnx_file("multistyle26")
    assert "\n" not in str(err.value)


def run_without_tensorflow(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TF + textwrap.dedent(code)], capture_output=True, text=True,
                          check=False, timeout=240, cwd=ROOT, env={"VIDSTYLE_CACHE": str(tmp_path / "cache"),
                                                      "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})


def test_transcode_runs_without_tensorflow(clip, tmp_path):
    """Built-in style and picture style, end to end (a video and a still picture), in a
    process that cannot import TensorFlow."""
    out = tmp_path / "out"
    picture = ROOT / "samples" / "starry_night.jpg"
    code = f"""
        from vidstyle.apps.cli import main
        for name, style in (("builtin", "7"), ("picture", {str(picture)!r})):
            assert main(["transcode", {str(clip)!r}, "-o", "{out}-" + name + ".mp4", "--style", style,
                         "--engine", "auto"]) in (0, None), name
            assert main(["image", {str(picture)!r}, "-o", "{out}-" + name + ".png", "--style", style,
                         "--size", "96"]) in (0, None), name
        import sys
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
        assert not loaded, loaded
        print("ok")
    """
    run = run_without_tensorflow(code, tmp_path)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]
    for name in ("builtin", "picture"):
        assert Path(f"{out}-{name}.mp4").stat().st_size > 1000 and Path(f"{out}-{name}.png").stat().st_size > 1000


def test_without_tensorflow_the_keras_paths_name_the_extra(tmp_path):
    code = """
        from vidstyle import engines, models
        from vidstyle.errors import EngineError
        for attempt in (lambda: models.pretrained("multistyle26"), lambda: engines.create("tf", "multistyle26"),
                        lambda: engines.create("auto", "multistyle26", precision="bf16")):
            try:
                attempt()
            except EngineError as exc:
                assert "vidstyle[tf]" in str(exc) and "\\n" not in str(exc), str(exc)
                print(exc)
            else:
                raise AssertionError("no error")
    """
    run = run_without_tensorflow(code, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(run.stdout.strip().splitlines()) == 3
