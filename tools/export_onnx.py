"""Export the Keras networks to the ONNX files the package ships (vidstyle/models/onnx).

    python -m tools.export_onnx            # write them (make onnx)
    python -m tools.export_onnx --check    # exit 1 naming each file that differs from a fresh export

Needs the ``tf`` extra (the Keras models are the definition of the networks). The export
is deterministic, so the check compares bytes; a difference also reports how far the
outputs of the two files are apart on a test picture, which tells a reordered graph
(0 levels) from changed weights.
"""
from __future__ import annotations

import argparse
import sys

from vidstyle.errors import VidstyleError
from vidstyle.models import MODEL_NAMES, ONNX_DIR, PREDICTORS


def exported(name: str) -> bytes:
    from vidstyle.engines.export.onnx_export import export_network

    return export_network(name).SerializeToString()


def output_gap(name: str, a: bytes, b: bytes) -> float:
    """The largest difference between the outputs of two exports of ``name`` on a fixed
    random picture (levels for stylizers, units of the vector for the predictor)."""
    import numpy as np
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    if name in PREDICTORS:
        feeds = {"image": rng.integers(0, 256, (1, 256, 256, 3), dtype=np.uint8)}
    else:
        from vidstyle.engines.export import style_dim

        feeds = {"image": rng.integers(0, 256, (1, 64, 96, 3), dtype=np.uint8),
                 "style": rng.random(style_dim(a), dtype=np.float32)}
    outs = [ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(None, feeds)[0].astype(np.float64)
            for m in (a, b)]
    return float(np.abs(outs[0] - outs[1]).max())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.export_onnx", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="compare the shipped files with a fresh export; write nothing")
    p.add_argument("--model", action="append", choices=MODEL_NAMES, help="only these networks (default: all)")
    args = p.parse_args(argv)
    stale = []
    try:
        for name in args.model or MODEL_NAMES:
            path = ONNX_DIR / f"{name}.onnx"
            fresh = exported(name)
            if args.check:
                if not path.is_file():
                    stale.append(name)
                    print(f"{path}: missing")
                elif path.read_bytes() != fresh:
                    stale.append(name)
                    print(f"{path}: differs from a fresh export (outputs up to "
                          f"{output_gap(name, path.read_bytes(), fresh):g} apart)")
                else:
                    print(f"{path}: up to date ({len(fresh) / 1e6:.2f} MB)")
                continue
            ONNX_DIR.mkdir(exist_ok=True)
            path.write_bytes(fresh)
            print(f"wrote {path} ({len(fresh) / 1e6:.2f} MB)")
    except VidstyleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if stale:
        print(f"run python -m tools.export_onnx to rewrite: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
