"""Keras networks with the project's own pretrained weights.

``MODEL_NAMES`` lists the networks, ``pretrained(name)`` builds one with its weights
(Keras: the ``tf`` extra), ``for_style`` picks the network for a style. The weights were
imported once from the source ONNX files by ``tools/import_onnx.py`` (``make weights``)
and are stored here as ``weights/<name>.npz`` keyed ``<layer name>:<weight index>``, so
running vidstyle never needs the package they came from.

``onnx_file(name)`` is the network exported to ONNX (``onnx/<name>.onnx``), what every
engine but ``tf`` runs: made from the Keras model by ``python -m tools.export_onnx``
(``make onnx``) and checked against a fresh export by the tests, so the runtime needs
no TensorFlow.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from vidstyle.errors import EngineError

WEIGHTS_DIR = Path(__file__).parent / "weights"
ONNX_DIR = Path(__file__).parent / "onnx"
NUM_STYLES = 26  # built-in styles of the multistyle network
STYLE_DIM = 100  # length of the arbitrary-style embedding
STYLE_IMAGE_SIZE = 256  # the style predictor's input side
MODEL_NAMES = ("multistyle26", "arbitrary_transformer", "style_predictor", "student26")
# Networks that stylize with the 26 built-in styles (same inputs, interchangeable).
BUILTIN_NETWORKS = ("multistyle26", "student26")
# Networks that turn a picture into a style vector instead of stylizing frames.
PREDICTORS = ("style_predictor",)
TF_EXTRA = "pip install 'vidstyle[tf]'"


def for_style(style_model: str, requested: str = "auto") -> str:
    """The network to run for a style whose own network is ``style_model``: ``requested``
    when it is a built-in-style network and the style is built-in, else the style's own.
    "auto" keeps the style's own network."""
    if requested in ("auto", style_model):
        return style_model
    if requested not in BUILTIN_NETWORKS:
        raise EngineError(f"unknown model {requested!r}; choose auto or one of {', '.join(BUILTIN_NETWORKS)}")
    if style_model not in BUILTIN_NETWORKS:
        raise EngineError(f"--model {requested} runs the built-in styles only; a picture style needs its own network")
    return requested


def weight_arrays(model) -> dict[str, np.ndarray]:
    """The model's weights in the file layout (used by the import script)."""
    return {f"{layer.name}:{i}": np.asarray(w) for layer in model.layers for i, w in enumerate(layer.get_weights())}


def load_weights(model, path: Path) -> None:
    """Set every weight of ``model`` from ``path``; a missing or unused key is an error,
    so a renamed layer can never silently keep its random initialisation."""
    try:
        data = dict(np.load(path))
    except OSError as exc:
        raise EngineError(f"cannot read model weights {path}: {exc}") from None
    expected = weight_arrays(model)
    if set(expected) != set(data):
        missing, extra = sorted(set(expected) - set(data)), sorted(set(data) - set(expected))
        raise EngineError(f"weights {path.name} do not fit {model.name}: missing {missing[:3]}, unused {extra[:3]}")
    for layer in model.layers:
        n = len(layer.get_weights())
        if n:
            layer.set_weights([data[f"{layer.name}:{i}"] for i in range(n)])


def _builder(name: str):
    from vidstyle.models import arbitrary, multistyle, student

    return {
        "multistyle26": multistyle.build_multistyle,
        "arbitrary_transformer": arbitrary.build_transformer,
        "style_predictor": arbitrary.build_predictor,
        "student26": student.build_student,
    }[name]


def onnx_file(name: str) -> Path:
    """The shipped ONNX export of ``name``; a one-line error when it is missing."""
    if name not in MODEL_NAMES:
        raise EngineError(f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)}")
    path = ONNX_DIR / f"{name}.onnx"
    if not path.is_file():
        raise EngineError(f"the ONNX file of {name} is missing ({path}): reinstall vidstyle, "
                          "or run python -m tools.export_onnx in a checkout")
    return path


def require_keras() -> None:
    """Import TensorFlow and Keras, or a one-line error naming the extra that installs them."""
    from vidstyle.models.tfimport import import_tensorflow

    try:
        import_tensorflow()
        import keras  # noqa: F401
    except ImportError as exc:
        raise EngineError(f"the Keras networks need TensorFlow and Keras ({exc.name or exc} is not installed): "
                          f"{TF_EXTRA}") from None


@functools.lru_cache(maxsize=None)
def pretrained(name: str):
    """Build ``name`` and load its pretrained weights (cached: one copy per process)."""
    if name not in MODEL_NAMES:
        raise EngineError(f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)}")
    require_keras()
    model = _builder(name)()
    load_weights(model, WEIGHTS_DIR / f"{name}.npz")
    return model
