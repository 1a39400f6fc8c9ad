"""Distil ``multistyle26`` (teacher) into ``student26`` (see student.py, docs/student.md).

    python -m tools.distill [--minutes 40] [--out vidstyle/models/weights/student26.npz]

Needs the ``tf`` extra (TensorFlow and Keras). New weights ship once
``python -m tools.export_onnx`` has rewritten vidstyle/models/onnx/student26.onnx.

1. Initialise the student from the teacher: each factored conv (k x k cin->cout
   becomes k x k cin->rank then 1x1 rank->cout, student.RANKS) is fitted by an
   SVD weighted by the covariance of its input patches in the teacher on real
   frames (the best rank-r fit for real inputs, not for white noise); every
   other layer (norms included) is copied.
2. Train everything by distillation on real frames only (cup and bikes, less
   their last 25%, and scikit-image photos), random 160/224 crops, a random
   built-in style per sample (one-hots mostly, some two-style mixes):
   L1 on the output + a feature loss on the trunk (after contract.0 and after
   the residual blocks) + a small temporal loss on consecutive frame pairs
   (DIS flow on the input crops, forward-backward consistency mask): the
   student's frame-to-frame change, warped, should equal the teacher's.
3. Evaluate on held-out frames (carphone entirely, the last 25% of cup and
   bikes) at their native sizes, all 26 styles: mean abs difference and SSIM
   against the teacher's float32 output; write the npz and a json beside it.

The learning rate follows a cosine over the wall-clock budget, so a short run
(--minutes 1) is a complete, if weak, run. Seeds are fixed; with a time budget
the number of steps depends on the machine.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from vidstyle.models import NUM_STYLES, WEIGHTS_DIR, weight_arrays  # noqa: E402

SEED = 7
HOLDOUT = 0.25  # last share of cup and bikes frames kept for evaluation
CROPS = (160, 224)
BATCH = 4  # images 0, 1: a consecutive frame pair (same crop, same style); 2, 3: independent
FEATURES = ("contract.0.relu", "trunk")  # intermediate activations matched to the teacher's
FEATURE_WEIGHT = 0.05
TEMPORAL_WEIGHT = 0.5
LR = 1e-3
LR_FLOOR = 0.05  # the cosine ends at LR * LR_FLOOR
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle", "immunohistochemistry",
          "hubble_deep_field", "retina", "colorwheel")
EVAL_FRAMES = 4  # held-out frames per clip for the final evaluation
BOUND_MAE, BOUND_SSIM = 0.02, 0.92


def log(*args) -> None:
    print(time.strftime("%H:%M:%S"), *args, flush=True)


# ---------------------------------------------------------------- data


def _clips_module():
    repo = Path(__file__).resolve().parents[1]
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    from benchmarks import clips

    return clips


def split_frames():
    """{'train': {name: frames}, 'held': {name: frames}}: cup and bikes split in time
    (the last HOLDOUT share held out), carphone held out entirely."""
    clips = _clips_module()
    train, held = {}, {}
    for name in ("cup", "bikes"):
        frames = clips.real_frames(name)
        cut = int(round(len(frames) * (1 - HOLDOUT)))
        train[name], held[name] = frames[:cut], frames[cut:]
    held["carphone"] = clips.real_frames("carphone")
    return train, held


def photos() -> list[np.ndarray]:
    clips = _clips_module()
    out = []
    for name in PHOTOS:
        try:
            img = clips._photo(name)
        except (ImportError, AttributeError, OSError, ValueError) as exc:
            log(f"photo {name} skipped: {exc}")
            continue
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, -1)
        img = img[..., :3]
        if img.dtype != np.uint8:
            img = (np.clip(img, 0, 1) * 255).astype(np.uint8) if img.max() <= 1 else img.astype(np.uint8)
        out.append(img)
    return out


def held_out_set(held: dict, per_clip: int = EVAL_FRAMES) -> dict[str, np.ndarray]:
    """Evenly spaced held-out frames of each clip at native size rounded down to a
    multiple of 4 (a centre crop of at most 3 pixels), float32 on [0, 1]."""
    out = {}
    for name, frames in held.items():
        idx = np.linspace(0, len(frames) - 1, per_clip).round().astype(int)
        f = frames[idx]
        h, w = f.shape[1] // 4 * 4, f.shape[2] // 4 * 4
        y, x = (f.shape[1] - h) // 2, (f.shape[2] - w) // 2
        out[name] = f[:, y : y + h, x : x + w].astype(np.float32) / 255.0
    return out


def style_vector(rng: np.random.Generator, step_style: int) -> np.ndarray:
    """One-hot of ``step_style`` (75%), else a mix of it and another style."""
    w = np.zeros(NUM_STYLES, np.float32)
    w[step_style] = 1.0
    if rng.random() < 0.25:
        other = (step_style + rng.integers(1, NUM_STYLES)) % NUM_STYLES
        a = rng.uniform(0.2, 0.8)
        w[step_style], w[other] = a, 1 - a
    return w


class Sampler:
    """Training batches: crops of frames and photos, random styles, one flow pair each."""

    def __init__(self, train: dict, photos_: list, seed: int = SEED):
        self.rng = np.random.default_rng(seed)
        self.videos = list(train.values())
        self.photos = photos_
        self.styles: list[int] = []

    def _style(self) -> np.ndarray:
        if not self.styles:
            self.styles = list(self.rng.permutation(NUM_STYLES))
        return style_vector(self.rng, int(self.styles.pop()))

    def _scaled(self, img: np.ndarray, size: int) -> np.ndarray:
        import cv2

        h, w = img.shape[:2]
        lo = size / min(h, w)  # never smaller than the crop
        s = self.rng.uniform(max(lo, 0.5), max(lo, 1.0))
        if abs(s - 1) > 1e-3:
            img = cv2.resize(img, (max(size, round(w * s)), max(size, round(h * s))), interpolation=cv2.INTER_AREA)
        return img

    def _crop(self, imgs: list[np.ndarray], size: int) -> list[np.ndarray]:
        h, w = imgs[0].shape[:2]
        y, x = self.rng.integers(0, h - size + 1), self.rng.integers(0, w - size + 1)
        flip = self.rng.random() < 0.5
        out = [im[y : y + size, x : x + size] for im in imgs]
        return [np.ascontiguousarray(o[:, ::-1]) if flip else o for o in out]

    def batch(self):
        from vidstyle.measure.metrics import pair_motion

        size = int(self.rng.choice(CROPS))
        video = self.videos[self.rng.integers(len(self.videos))]
        t = int(self.rng.integers(0, len(video) - 2))
        gap = int(self.rng.integers(1, 3))
        pair_scale = self.rng.uniform(max(size / min(video.shape[1:3]), 0.6), 1.0)
        a, b = video[t], video[t + gap]
        if pair_scale < 0.999:
            import cv2

            dsize = (max(size, round(a.shape[1] * pair_scale)), max(size, round(a.shape[0] * pair_scale)))
            a, b = (cv2.resize(im, dsize, interpolation=cv2.INTER_AREA) for im in (a, b))
        a, b = self._crop([a, b], size)
        motion = pair_motion(a, b)
        # nearest-neighbour gather index of frame b at each pixel of frame a
        mx = np.clip(np.rint(motion.map_x), 0, size - 1).astype(np.int32)
        my = np.clip(np.rint(motion.map_y), 0, size - 1).astype(np.int32)
        index = (my * size + mx).reshape(-1)
        valid = motion.valid.astype(np.float32)[..., None]
        images, styles = [a, b], []
        s = self._style()
        styles += [s, s]
        for _ in range(BATCH - 2):
            if self.photos and self.rng.random() < 0.3:
                src = self.photos[self.rng.integers(len(self.photos))]
            else:
                v = self.videos[self.rng.integers(len(self.videos))]
                src = v[self.rng.integers(len(v))]
            images.append(self._crop([self._scaled(src, size)], size)[0])
            styles.append(self._style())
        x = np.stack(images).astype(np.float32) / 255.0
        return x, np.stack(styles), index, valid


# ---------------------------------------------------------------- initialisation


def input_covariances(teacher, names: list[str], frames: list[np.ndarray], samples: int = 30000,
                      seed: int = SEED) -> dict[str, np.ndarray]:
    """Covariance of the teacher's k x k x cin input patches of each conv in ``names``
    (its padded input, per-image channel mean removed, as the instance norm after the
    conv would remove it) on real ``frames``: the metric the low-rank fits minimise in."""
    import keras

    rng = np.random.default_rng(seed)
    probe = keras.Model(teacher.inputs, [teacher.get_layer(f"{n}.pad").output for n in names])
    rows = {n: [] for n in names}
    per = max(1, samples // len(frames))
    style = np.zeros((1, NUM_STYLES), np.float32)
    for f in frames:
        h, w = f.shape[0] // 4 * 4, f.shape[1] // 4 * 4
        style[:] = 0
        style[0, rng.integers(NUM_STYLES)] = 1
        acts = probe([f[None, :h, :w].astype(np.float32) / 255.0, style], training=False)
        acts = acts if isinstance(acts, (list, tuple)) else [acts]
        for n, act in zip(names, acts):
            act = np.asarray(act)[0]
            act = act - act.mean(axis=(0, 1))
            conv = teacher.get_layer(f"{n}.conv")
            k, st = conv.kernel_size[0], conv.strides[0]
            oh, ow = (act.shape[0] - k) // st + 1, (act.shape[1] - k) // st + 1
            ys, xs = rng.integers(0, oh, per) * st, rng.integers(0, ow, per) * st
            rows[n].append(np.stack([act[y : y + k, x : x + k].reshape(-1) for y, x in zip(ys, xs)]))
    out = {}
    for n in names:
        m = np.concatenate(rows[n]).astype(np.float64)
        out[n] = (m.T @ m) / len(m)
    return out


def low_rank(kernel: np.ndarray, rank: int, cov: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Factor a (k, k, cin, cout) kernel into (k, k, cin, rank) and (1, 1, rank, cout)
    minimising E||(W - AB)^T p||^2 over patches p with covariance ``cov``."""
    k, _, cin, cout = kernel.shape
    w = kernel.reshape(-1, cout).astype(np.float64)
    if cov is None:
        cov = np.eye(w.shape[0])
    cov = cov + 1e-6 * np.trace(cov) / len(cov) * np.eye(len(cov))
    ell = np.linalg.cholesky(cov)  # cov = L L^T; error = ||L^T (W - AB)||
    u, s, vt = np.linalg.svd(ell.T @ w, full_matrices=False)
    a = np.linalg.solve(ell.T, u[:, :rank] * np.sqrt(s[:rank]))
    b = np.sqrt(s[:rank])[:, None] * vt[:rank]
    return a.reshape(k, k, cin, rank).astype(np.float32), b.reshape(1, 1, rank, cout).astype(np.float32)


def factored(student) -> list[str]:
    """Names of the student's factored convs (a "<name>.convk" layer)."""
    return [l.name[: -len(".convk")] for l in student.layers if l.name.endswith(".convk")]


def init_from_teacher(student, teacher, covs: dict | None) -> None:
    """Factored convs: covariance-weighted SVD of the teacher's kernel; the rest copied."""
    t = weight_arrays(teacher)
    lowrank = factored(student)
    for n in lowrank:
        rank = student.get_layer(f"{n}.convk").filters
        a, b = low_rank(t[f"{n}.conv:0"], rank, None if covs is None else covs[n])
        student.get_layer(f"{n}.convk").set_weights([a])
        student.get_layer(f"{n}.conv").set_weights([b])
    skip = {f"{n}.convk" for n in lowrank} | {f"{n}.conv" for n in lowrank}
    for layer in student.layers:
        n = len(layer.get_weights())
        if n and layer.name not in skip:
            layer.set_weights([t[f"{layer.name}:{i}"] for i in range(n)])


def _patches(act: np.ndarray, k: int, stride: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    return np.stack([act[y * stride : y * stride + k, x * stride : x * stride + k].reshape(-1) for y, x in zip(ys, xs)])


def sequential_fit(student, teacher, frames: list[np.ndarray], samples: int = 24000, ridge: float = 1e-3,
                   seed: int = SEED) -> None:
    """Refit each factored conv in order, on the student's own input (earlier layers
    already factored) against the teacher's conv output at the same place: reduced-rank
    regression (least squares, then the rank-r projection of its fitted values), so
    the factorisation errors of earlier layers are compensated, not compounded.
    Per-image channel means are removed from both sides (the instance norm after each
    conv removes them)."""
    import keras

    rng = np.random.default_rng(seed)
    frames = [f[: f.shape[0] // 4 * 4, : f.shape[1] // 4 * 4] for f in frames]
    styles = rng.integers(0, NUM_STYLES, len(frames))
    per = max(1, samples // len(frames))
    for n in factored(student):
        s_probe = keras.Model(student.inputs, student.get_layer(f"{n}.pad").output)
        t_probe = keras.Model(teacher.inputs, teacher.get_layer(f"{n}.conv").output)
        conv = teacher.get_layer(f"{n}.conv")
        k, st = conv.kernel_size[0], conv.strides[0]
        xs_rows, ys_rows = [], []
        for f, sty in zip(frames, styles):
            w = np.zeros((1, NUM_STYLES), np.float32)
            w[0, sty] = 1
            img = f[None].astype(np.float32) / 255.0
            xin = np.asarray(s_probe([img, w], training=False))[0]
            yout = np.asarray(t_probe([img, w], training=False))[0]
            xin = xin - xin.mean(axis=(0, 1))
            yout = yout - yout.mean(axis=(0, 1))
            ys, xs = rng.integers(0, yout.shape[0], per), rng.integers(0, yout.shape[1], per)
            xs_rows.append(_patches(xin, k, st, ys, xs))
            ys_rows.append(yout[ys, xs])
        x = np.concatenate(xs_rows).astype(np.float64)
        y = np.concatenate(ys_rows).astype(np.float64)
        gram = x.T @ x
        m = np.linalg.solve(gram + ridge * np.trace(gram) / len(gram) * np.eye(len(gram)), x.T @ y)
        rank = student.get_layer(f"{n}.convk").filters
        _, _, vt = np.linalg.svd(x @ m, full_matrices=False)
        v = vt[:rank].T  # cout x rank
        cin = x.shape[1] // (k * k)
        student.get_layer(f"{n}.convk").set_weights([(m @ v).reshape(k, k, cin, rank).astype(np.float32)])
        student.get_layer(f"{n}.conv").set_weights([v.T.reshape(1, 1, rank, -1).astype(np.float32)])
        fit = 1 - ((x @ m @ v @ v.T - y) ** 2).sum() / (y ** 2).sum()
        log(f"fitted {n}: rank {rank}, explained {fit:.4f}")


def initialised_student(teacher, train_frames: dict, pics: list, ranks: dict | None = None, sequential: bool = False):
    from vidstyle.models.student import build_student

    student = build_student(ranks)
    src = [v[i] for v in train_frames.values() for i in range(0, len(v), 20)] + pics
    covs = input_covariances(teacher, factored(student), src)
    init_from_teacher(student, teacher, covs)
    if sequential:
        sequential_fit(student, teacher, src)
    return student


# ---------------------------------------------------------------- models with features


def _last_block(model) -> str:
    names = [l.name for l in model.layers if l.name.startswith("res.") and l.name.endswith(".add")]
    return names[-1]


def with_features(model):
    import keras

    outs = [model.output]
    for f in FEATURES:
        outs.append(model.get_layer(_last_block(model) if f == "trunk" else f).output)
    return keras.Model(model.inputs, outs)


# ---------------------------------------------------------------- evaluation


def teacher_outputs(teacher, held: dict[str, np.ndarray], styles=range(NUM_STYLES)) -> dict:
    return {(name, s): _run(teacher, frames, s) for name, frames in held.items() for s in styles}


def _run(model, frames: np.ndarray, style: int) -> np.ndarray:
    w = np.zeros((len(frames), NUM_STYLES), np.float32)
    w[:, style] = 1
    return np.asarray(model([frames, w], training=False))


def evaluate(student, held: dict[str, np.ndarray], reference: dict, styles=range(NUM_STYLES)) -> dict:
    """{style: {clip: {"mae", "ssim"}}} against the teacher's outputs ``reference``."""
    from vidstyle.measure.metrics import ssim

    out = {}
    for s in styles:
        row = {}
        for name, frames in held.items():
            got, want = _run(student, frames, s), reference[(name, s)]
            row[name] = {"mae": float(np.abs(got - want).mean()),
                         "ssim": float(np.mean([ssim(g, t) for g, t in zip(got, want)]))}
        out[int(s)] = row
    return out


def summary(result: dict) -> dict:
    """Worst clip per style, then min/mean/max over styles, and the styles that miss the bound."""
    mae = {s: max(r[c]["mae"] for c in r) for s, r in result.items()}
    sim = {s: min(r[c]["ssim"] for c in r) for s, r in result.items()}
    fails = [s for s in result if mae[s] > BOUND_MAE or sim[s] < BOUND_SSIM]
    v = lambda d: {"min": min(d.values()), "mean": float(np.mean(list(d.values()))), "max": max(d.values())}  # noqa: E731
    return {"worst_clip_mae": v(mae), "worst_clip_ssim": v(sim), "failing_styles": fails}


# ---------------------------------------------------------------- training


def train(minutes: float, out: Path, ranks: dict, eval_every: float, seed: int = SEED,
          feature_weight: float = FEATURE_WEIGHT, temporal_weight: float = TEMPORAL_WEIGHT, lr: float = LR,
          final_eval: bool = True) -> dict:
    import keras
    import tensorflow as tf

    from vidstyle.models import pretrained
    keras.utils.set_random_seed(seed)
    started = time.time()
    teacher = pretrained("multistyle26")
    train_frames, held_frames = split_frames()
    pics = photos()
    log(f"frames: train {', '.join(f'{k} {len(v)}' for k, v in train_frames.items())}; "
        f"held {', '.join(f'{k} {len(v)}' for k, v in held_frames.items())}; photos {len(pics)}")
    student = initialised_student(teacher, train_frames, pics, ranks)
    held = held_out_set(held_frames)
    quick = held_out_set(held_frames, 2)
    quick_styles = list(range(0, NUM_STYLES, 5))
    quick_ref = teacher_outputs(teacher, quick, quick_styles)
    res0 = summary(evaluate(student, quick, quick_ref, quick_styles))
    log(f"init: quick held-out {json.dumps(res0)}")

    t_feat, s_feat = with_features(teacher), with_features(student)
    opt = keras.optimizers.Adam(learning_rate=lr)
    lr_var = opt.learning_rate  # a variable: the step reads it, the loop sets it
    params = student.trainable_variables

    def losses(x, w, index, valid):
        t_out, *t_fs = t_feat([x, w], training=False)
        s_out, *s_fs = s_feat([x, w], training=False)
        l1 = tf.reduce_mean(tf.abs(s_out - t_out))
        feat = tf.add_n([tf.reduce_mean(tf.abs(s - t)) / (tf.reduce_mean(tf.abs(t)) + 1e-3) for s, t in zip(s_fs, t_fs)])
        hw = tf.shape(x)[1] * tf.shape(x)[2]

        def warped_change(y):  # frame 0 minus frame 1 sampled along the flow
            flat = tf.reshape(y[1], (hw, 3))
            back = tf.reshape(tf.gather(flat, index), tf.shape(y[0]))
            return y[0] - back

        diff = tf.abs(warped_change(s_out) - warped_change(t_out)) * valid
        temporal = tf.reduce_sum(diff) / (3 * tf.reduce_sum(valid) + 1.0)
        return l1, feat, temporal

    @tf.function(reduce_retracing=True)
    def step(x, w, index, valid):
        with tf.GradientTape() as tape:
            l1, feat, temporal = losses(x, w, index, valid)
            total = l1 + feature_weight * feat + temporal_weight * temporal
        grads = tape.gradient(total, params)
        grads, _ = tf.clip_by_global_norm(grads, 1.0)
        opt.apply_gradients(zip(grads, params))
        return l1, feat, temporal

    sampler = Sampler(train_frames, pics, seed)
    budget = minutes * 60
    t0 = time.time()
    history, acc, n, last_eval = [], np.zeros(3), 0, t0
    while True:
        elapsed = time.time() - t0
        if elapsed >= budget:
            break
        frac = elapsed / budget
        lr_var.assign(lr * (LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * frac))))
        x, w, index, valid = sampler.batch()
        vals = step(tf.constant(x), tf.constant(w), tf.constant(index), tf.constant(valid))
        acc += [float(v) for v in vals]
        n += 1
        if n % 25 == 0:
            m = acc / 25
            acc[:] = 0
            history.append({"step": n, "seconds": round(time.time() - t0, 1), "l1": m[0], "feature": m[1], "temporal": m[2]})
            log(f"step {n} {time.time() - t0:.0f}s lr {float(lr_var.numpy()):.2e} l1 {m[0]:.4f} feat {m[1]:.4f} temporal {m[2]:.4f}")
        if eval_every and time.time() - last_eval > eval_every * 60:
            last_eval = time.time()
            log(f"quick held-out {json.dumps(summary(evaluate(student, quick, quick_ref, quick_styles)))}")
    train_seconds = time.time() - t0
    log(f"trained {n} steps in {train_seconds:.0f}s")

    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **weight_arrays(student))
    report = {
        "model": "student26", "ranks": ranks,
        "seed": seed, "minutes_budget": minutes, "steps": n, "train_seconds": round(train_seconds, 1),
        "batch": BATCH, "crops": list(CROPS), "lr": lr, "lr_floor": LR_FLOOR,
        "feature_weight": feature_weight, "features": list(FEATURES), "temporal_weight": temporal_weight,
        "holdout": {"carphone": "all", "cup": f"last {HOLDOUT:.0%}", "bikes": f"last {HOLDOUT:.0%}"},
        "history": history[-20:],
    }
    if final_eval:
        ref = teacher_outputs(teacher, held)
        result = evaluate(student, held, ref)
        report["held_out"] = {"frames_per_clip": EVAL_FRAMES,
                              "sizes": {k: f"{v.shape[2]}x{v.shape[1]}" for k, v in held.items()},
                              "per_style": result, "summary": summary(result)}
        log(f"held-out: {json.dumps(report['held_out']['summary'])}")
    report["total_seconds"] = round(time.time() - started, 1)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    log(f"wrote {out} and {out.with_suffix('.json')}")
    return report


def main(argv=None) -> int:
    from vidstyle.models.student import RANKS, ranks

    p = argparse.ArgumentParser(prog="python -m tools.distill", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=40.0, help="training wall-clock budget (default 40)")
    p.add_argument("--out", type=Path, default=WEIGHTS_DIR / "student26.npz")
    p.add_argument("--ranks", default=None, help="contract.0,contract.1,contract.2,residual ranks (0: full conv); "
                   "default student.RANKS (a non-default table needs build_student(ranks) to load)")
    p.add_argument("--eval-every", type=float, default=5.0, help="minutes between quick held-out checks (0: none)")
    p.add_argument("--feature-weight", type=float, default=FEATURE_WEIGHT)
    p.add_argument("--temporal-weight", type=float, default=TEMPORAL_WEIGHT)
    p.add_argument("--lr", type=float, default=LR)
    p.add_argument("--no-final-eval", action="store_true")
    p.add_argument("--seed", type=int, default=SEED)
    a = p.parse_args(argv)
    table = RANKS if a.ranks is None else ranks(*(int(r) for r in a.ranks.split(",")))
    train(a.minutes, a.out, table, a.eval_every, a.seed, a.feature_weight, a.temporal_weight, a.lr,
          not a.no_final_eval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
