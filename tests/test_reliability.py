"""Bad input and interruptions, through the real command line.

Every case runs ``vidstyle.apps.cli.main([...])`` in this process (TensorFlow loads
once) on a file made here, and checks what a user would: the exit code, one
``vidstyle:`` line on stderr and no traceback (FFmpeg's own stderr included:
``capfd`` captures the file descriptor), the input's bytes, and what is left in
the folder: nothing, the complete output, or the documented partial file.
Signals need a process of their own: those tests run ``python -m vidstyle``.
docs/reliability.md lists every case with the test that proves it.
"""
from __future__ import annotations

import errno
import hashlib
import os
import random
import re
import signal
import shutil
import subprocess
import sys
import threading
import time
import uuid
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import vidstyle.io.sink
import vidstyle.pipeline.memory
from media import draw_frame, make_audio_only, make_corrupt_video, make_video, read_video
from vidstyle.apps.cli import main
from vidstyle.errors import Cancelled
from vidstyle.pipeline.runner import Pipeline, Stage
from vidstyle.offline import TranscodeConfig, transcode

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--no-progress", "--preset", "ultrafast"]
AAC_FRAME = 1024 / 44100


# --- helpers ------------------------------------------------------------------------------------


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(folder: Path) -> list[str]:
    """Every file under ``folder``, hidden temp files included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def cli(capfd, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return code, out, err


def cut(src: Path, fraction: float, dst: Path) -> Path:
    """The first ``fraction`` of ``src``'s bytes: a half-downloaded file."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def flip(src: Path, dst: Path, positions) -> Path:
    data = bytearray(src.read_bytes())
    for i in positions:
        data[i] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


def make_png(path: Path) -> Path:
    import cv2

    path.write_bytes(cv2.imencode(".png", cv2.cvtColor(draw_frame(1, 64, 48), cv2.COLOR_RGB2BGR))[1].tobytes())
    return path


def make_size_change(path: Path, sizes=((64, 48), (96, 64)), frames_each: int = 6) -> Path:
    """One H.264 stream whose picture size changes mid-way: MPEG-TS segments of
    each size, timestamps continuing, concatenated byte for byte (as `cat a.ts b.ts`
    or a camera that renegotiates its resolution would make). No B-frames, so every
    segment starts at its own first pts."""
    data = b""
    for n, (width, height) in enumerate(sizes):
        segment = path.with_name(f"{path.stem}.seg{n}.ts")
        with av.open(str(segment), "w", format="mpegts") as out:
            video = out.add_stream("libx264", rate=25)
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            video.codec_context.time_base = Fraction(1, 25)
            video.codec_context.options = {"bf": "0"}
            for i in range(n * frames_each, (n + 1) * frames_each):
                picture = av.VideoFrame.from_ndarray(draw_frame(i, width, height), format="rgb24")
                picture.pts, picture.time_base = i, Fraction(1, 25)
                out.mux(video.encode(picture))
            out.mux(video.encode(None))
        data += segment.read_bytes()
        segment.unlink()
    path.write_bytes(data)
    return path


def make_8k(path: Path) -> Path:
    """Two 7680x4320 frames, fast to encode (flat stripes, x264 ultrafast)."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 7680, 4320, "yuv420p"
        video.codec_context.options = {"preset": "ultrafast"}
        image = np.zeros((4320, 7680, 3), np.uint8)
        image[::8] = (200, 120, 40)
        for i in range(2):
            picture = av.VideoFrame.from_ndarray(np.roll(image, 4 * i, axis=0), format="rgb24")
            picture.pts = i
            out.mux(video.encode(picture))
        out.mux(video.encode(None))
    return path


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, Path]:
    """Clean clips the damaged inputs are cut from: 50 frames at 25 fps with an AAC tone."""
    folder = tmp_path_factory.mktemp("seeds")
    return {ext: make_video(folder / f"seed.{ext}", frames=50) for ext in ("mp4", "mkv")}


# --- bad input: one error line, exit 1, input untouched, nothing written ------------------------

# (case id, make the input in folder d, extra arguments, words the one error line must hold)
FAILURES = [
    # Half-downloaded files. MP4 keeps its index (moov) at the end: any cut loses it.
    ("truncated-mp4-1%", lambda d, s: cut(s["mp4"], 0.01, d / "in.mp4"), [], "not a readable media file"),
    ("truncated-mp4-50%", lambda d, s: cut(s["mp4"], 0.50, d / "in.mp4"), [], "not a readable media file"),
    ("truncated-mp4-99%", lambda d, s: cut(s["mp4"], 0.99, d / "in.mp4"), [], "not a readable media file"),
    # Matroska streams: a cut file opens and decodes up to the cut, but it declares 2 s.
    ("truncated-mkv-1%", lambda d, s: cut(s["mkv"], 0.01, d / "in.mkv"), [], "not a readable media file"),
    ("truncated-mkv-50%", lambda d, s: cut(s["mkv"], 0.50, d / "in.mkv"), [],
     "the video stops at 1.08 s of the 2.00 s it declares: truncated or damaged; "
     "--on-decode-error skip keeps the 25 frame(s) before that"),
    # Flipped bytes in the container header.
    ("flipped-header-mp4", lambda d, s: flip(s["mp4"], d / "in.mp4", range(32)), [], "not a readable media file"),
    ("flipped-header-mkv", lambda d, s: flip(s["mkv"], d / "in.mkv", range(32)), [], "not a readable media file"),
    # Frame 5 of 10 is garbage (MJPEG refuses it, where H.264 would conceal it).
    ("decode-error-stop", lambda d, s: make_corrupt_video(d / "in.mkv", frames=10, bad_frame=5), [],
     "cannot decode frame 5 (Invalid data found when processing input); --on-decode-error skip drops such frames"),
    ("zero-frames-mkv", lambda d, s: make_video(d / "in.mkv", frames=0), [], "the video stream has no frames"),
    ("zero-frames-mp4", lambda d, s: make_video(d / "in.mp4", frames=0), [], "no video stream (the file holds audio)"),
    ("audio-only", lambda d, s: make_audio_only(d / "in.m4a"), [], "no video stream (the file holds audio)"),
    ("image-as-video", lambda d, s: make_png(d / "in.png"), [], "is a still picture (png), not a video; use `vidstyle image`"),
    ("image-named-mp4", lambda d, s: make_png(d / "in.mp4"), [], "is a still picture (png)"),
    ("text-as-video", lambda d, s: (d / "in.mp4").write_text("not a video\n" * 50) and d / "in.mp4", [],
     "not a readable media file"),
    ("output-is-input", lambda d, s: shutil.copy(s["mp4"], d / "in.mp4") and d / "in.mp4", ["-o", "{input}"],
     "output would overwrite the input"),
    ("output-unwritable", lambda d, s: shutil.copy(s["mp4"], d / "in.mp4") and d / "in.mp4",
     ["-o", "/proc/out.mp4"], "cannot write in /proc"),  # even root cannot create files there
    ("style-not-an-image", lambda d, s: shutil.copy(s["mp4"], d / "in.mp4") and d / "in.mp4",
     ["--style", "{input}"], "cannot read style picture"),
]


@pytest.mark.parametrize("make, extra, words", [case[1:] for case in FAILURES], ids=[case[0] for case in FAILURES])
def test_bad_input_is_one_error_line_and_changes_nothing(tmp_path, seeds, capfd, make, extra, words):
    src = Path(make(tmp_path, seeds))
    before, kept = listing(tmp_path), digest(src)
    extra = [a.replace("{input}", str(src)) for a in extra]
    output = [] if "-o" in extra else ["-o", tmp_path / "out.mp4"]
    code, out, err = cli(capfd, "transcode", src, *output, *extra, *FAST)
    assert code == 1
    assert err.startswith("vidstyle: error: ") and err.count("\n") == 1 and err.endswith("\n"), err
    assert words in err and "Traceback" not in err
    assert out == ""
    assert digest(src) == kept and listing(tmp_path) == before  # no output, no hidden temp file


def test_a_huge_frame_is_refused_with_the_memory_it_needs_and_processed_with_size(tmp_path, capfd, monkeypatch):
    # The machine's memory is fixed here so that the verdict does not depend on it.
    monkeypatch.setattr(vidstyle.pipeline.memory, "available_bytes", lambda: 5 << 30)
    src = make_8k(tmp_path / "8k.mp4")
    kept = digest(src)
    code, out, err = cli(capfd, "transcode", src, "-o", tmp_path / "out.mp4", *FAST)
    assert code == 1 and out == "" and err.count("\n") == 1
    assert re.fullmatch(r"vidstyle: error: a 7680x4320 frame needs about 4\d\.\d GiB \(batch 4\), more than the "
                        r"3\.8 GiB this machine can spare; use --size 640 \(or smaller\)\n", err), err
    assert listing(tmp_path) == ["8k.mp4"]
    # What it advised works (batch 2: two frames need no padded batch; no smoothing: quick).
    code, out, err = cli(capfd, "transcode", src, "-o", tmp_path / "out.mp4", "--size", "640", "--batch", "2",
                         "--temporal", "off", *FAST)
    assert code == 0 and err == "", err
    result = read_video(tmp_path / "out.mp4")
    assert (result.width, result.height, len(result.frames)) == (7680, 4320, 2)
    assert digest(src) == kept and listing(tmp_path) == ["8k.mp4", "out.mp4"]


class FullDisk:
    """Stands in for the output container: the disk fills after ``room`` writes."""

    def __init__(self, container, room: int):
        self._container, self._room = container, room

    def mux(self, packets):
        self._room -= 1
        if self._room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._container.mux(packets)

    def __getattr__(self, name):
        return getattr(self._container, name)


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, seeds, capfd, monkeypatch):
    src = shutil.copy(seeds["mp4"], tmp_path / "in.mp4")
    real_open = av.open
    monkeypatch.setattr(vidstyle.io.sink.av, "open", lambda path, mode="r", **kw: (
        FullDisk(real_open(path, mode, **kw), room=20) if mode == "w" else real_open(path, mode, **kw)))
    code, out, err = cli(capfd, "transcode", src, "-o", tmp_path / "out.mp4", *FAST)
    assert code == 1 and out == ""
    assert re.fullmatch(rf"vidstyle: error: {re.escape(str(tmp_path))}/out\.mp4: no space left on device; "
                        r"could not encode frame \d+\n", err), err
    assert listing(tmp_path) == ["in.mp4"]


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs, if this process may mount one (root on Linux); else the test skips."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root on Linux")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_really_full_disk_is_one_line_and_leaves_nothing(tmp_path, small_disk, capfd):
    src = make_video(tmp_path / "in.mp4", frames=120, size=(96, 64))
    kept = digest(src)
    code, out, err = cli(capfd, "transcode", src, "-o", small_disk / "out.mp4", "--temporal", "off", *FAST)
    assert code == 1 and out == "" and err.count("\n") == 1, err
    assert re.fullmatch(rf"vidstyle: error: {re.escape(str(small_disk))}/out\.mp4: no space left on device; "
                        r"could not (encode frame \d+|finish the file)\n", err), err
    assert os.listdir(small_disk) == [] and digest(src) == kept


@pytest.mark.parametrize("seed", range(6))
def test_flipped_bytes_end_in_an_error_line_or_a_whole_output(tmp_path, seeds, capfd, seed):
    """Twenty bytes flipped anywhere: a one-line error with nothing written, or (the
    damage landed where FFmpeg conceals it) an output with every frame the file declares."""
    rng = random.Random(seed)
    src = flip(seeds["mp4"], tmp_path / "in.mp4", [rng.randrange(64, seeds["mp4"].stat().st_size) for _ in range(20)])
    kept = digest(src)
    code, out, err = cli(capfd, "transcode", src, "-o", tmp_path / "out.mp4", "--temporal", "off", *FAST)
    assert "Traceback" not in err and digest(src) == kept
    if code == 1:
        assert err.startswith("vidstyle: error: ") and err.count("\n") == 1 and out == "", err
        assert listing(tmp_path) == ["in.mp4"]
    else:
        assert code == 0 and err == "", err
        assert len(read_video(tmp_path / "out.mp4").frames) == 50


# --- bad input with a documented result ---------------------------------------------------------


def test_skip_drops_undecodable_frames_and_keeps_the_others_in_time(tmp_path, capfd):
    src = make_corrupt_video(tmp_path / "in.mkv", frames=10, bad_frame=5)
    code, out, err = cli(capfd, "transcode", src, "-o", tmp_path / "out.mp4", "--on-decode-error", "skip", *FAST)
    assert code == 0
    assert err == "vidstyle: warning: skipped 1 undecodable frame(s): 5\n"
    assert re.fullmatch(r"wrote .*out\.mp4 \(9 frames, \d+\.\d fps\)\n", out)
    source_times = [Fraction(i, 25) for i in range(10)]
    assert read_video(tmp_path / "out.mp4").times == source_times[:5] + source_times[6:]


def test_skip_keeps_what_a_truncated_file_holds_and_says_so(tmp_path, seeds, capfd):
    src = cut(seeds["mkv"], 0.5, tmp_path / "in.mkv")
    code, out, err = cli(capfd, "transcode", src, "-o", tmp_path / "out.mp4", "--on-decode-error", "skip", *FAST)
    assert code == 0
    assert err == (f"vidstyle: warning: {src}: the video stops at 1.08 s of the 2.00 s it declares: "
                   "truncated or damaged; kept the frames before that\n")
    a, b = read_video(src), read_video(tmp_path / "out.mp4")
    assert len(b.frames) == len(a.frames) == 25 and b.times == a.times
    assert b.audio_end <= b.times[-1] + Fraction(1, 25) + 2 * AAC_FRAME  # no sound past the pictures


def test_a_cut_that_loses_only_the_index_loses_no_frame(tmp_path, seeds, capfd):
    # The last 1% of this Matroska file is its cue index and tags, not pictures.
    src = cut(seeds["mkv"], 0.99, tmp_path / "in.mkv")
    code, out, err = cli(capfd, "transcode", src, "-o", tmp_path / "out.mp4", *FAST)
    assert code == 0 and err == "", err
    assert read_video(tmp_path / "out.mp4").times == read_video(seeds["mkv"]).times


@pytest.mark.parametrize("size, pix_fmt, coded", [
    ((1, 1), "yuv444p", (2, 2)),  # yuv420p output needs whole 2x2 chroma blocks: edge-padded
    ((2, 2), "yuv420p", (2, 2)),
    ((33, 17), "yuv444p", (34, 18)),
], ids=["1x1", "2x2", "33x17"])
def test_tiny_and_odd_sizes_are_stylized(tmp_path, capfd, size, pix_fmt, coded):
    src = make_video(tmp_path / "in.mkv", frames=6, size=size, pix_fmt=pix_fmt)
    code, out, err = cli(capfd, "transcode", src, "-o", tmp_path / "out.mp4", *FAST)
    assert code == 0 and err == "", err
    a, b = read_video(src), read_video(tmp_path / "out.mp4")
    assert (b.width, b.height) == coded and b.times == a.times


def test_a_resolution_change_is_letterboxed_into_the_first_size(tmp_path, capfd):
    src = make_size_change(tmp_path / "in.ts")
    # Strength 0 gives back the input, so the black bars can be seen in the output.
    code, out, err = cli(capfd, "transcode", src, "-o", tmp_path / "out.mp4", "--strength", "0", "--temporal", "off",
                         *FAST)
    assert code == 0
    assert err == (f"vidstyle: warning: {src}: the picture size changes at frame 6 (96x64); "
                   "later frames are fitted into 64x48\n")
    a, b = read_video(src), read_video(tmp_path / "out.mp4")
    assert (b.width, b.height) == (64, 48) and len(b.frames) == 12 and b.times == a.times
    # 96x64 scaled by 2/3 is 64x43: black bars of 2 and 3 rows (4:2:0 chroma bleeds into the
    # third); the first six frames have none.
    assert b.frames[8][:2].max() < 40 and b.frames[8][-2:].max() < 40 and b.frames[8][2:-3].max() > 200
    assert b.frames[2][:2].max() > 200 and b.frames[2][-2:].max() > 200


def test_variable_frame_rate_keeps_every_timestamp(tmp_path, capfd):
    src = make_video(tmp_path / "in.mp4", frames=12, vfr=True)
    code, out, err = cli(capfd, "transcode", src, "-o", tmp_path / "out.mp4", *FAST)
    assert code == 0 and err == ""
    a, b = read_video(src), read_video(tmp_path / "out.mp4")
    assert b.times == a.times and len(set(np.diff(a.pts))) > 2


def test_a_rotated_phone_video_keeps_its_rotation(tmp_path, capfd):
    src = make_video(tmp_path / "in.mp4", frames=6, size=(64, 48), rotation=90)
    code, out, err = cli(capfd, "transcode", src, "-o", tmp_path / "out.mp4", *FAST)
    assert code == 0 and err == ""
    b = read_video(tmp_path / "out.mp4")
    assert (b.width, b.height, b.rotation, len(b.frames)) == (64, 48, 90, 6)  # stored as shot, shown upright


def test_non_ascii_and_spaces_in_every_path(tmp_path, capfd):
    folder = tmp_path / "my vidéos ☃"
    folder.mkdir()
    src = make_video(folder / "clip ü 1.mp4", frames=6)
    style = make_png(folder / "peinture à l'huile.png")
    kept = digest(src)
    code, out, err = cli(capfd, "transcode", src, "-o", folder / "sortie é.mp4", "--style", style, *FAST)
    assert code == 0 and err == "", err
    assert out.startswith(f"wrote {folder / 'sortie é.mp4'} (6 frames")
    assert len(read_video(folder / "sortie é.mp4").frames) == 6 and digest(src) == kept
    assert sorted(os.listdir(folder)) == ["clip ü 1.mp4", "peinture à l'huile.png", "sortie é.mp4"]


# --- interruptions: the library ---------------------------------------------------------------


def test_a_cancel_keeps_the_finished_frames_when_asked(tmp_path, seeds, threads):
    src = shutil.copy(seeds["mp4"], tmp_path / "in.mp4")
    pipelines = []

    def on_progress(done, total):
        if done == 12:
            pipelines[0].cancel()

    with pytest.raises(Cancelled) as caught:
        transcode(TranscodeConfig(Path(src), tmp_path / "out.mp4", keep_partial=True, cancel_wait=0.5),
                  progress=on_progress, on_pipeline=pipelines.append)
    stop = caught.value
    assert (stop.kept, stop.total, stop.partial) == (12, 50, tmp_path / "out.partial.mp4")
    assert str(stop) == f"kept 12 of 50 frames in {tmp_path / 'out.partial.mp4'}"
    assert listing(tmp_path) == ["in.mp4", "out.partial.mp4"]
    a, b = read_video(src), read_video(stop.partial)
    assert b.times == a.times[:12] and abs(b.audio_end - 12 / 25) <= AAC_FRAME
    deadline = time.monotonic() + 10  # a stage left in a long call ends by itself
    while threads.leaked() and time.monotonic() < deadline:
        time.sleep(0.05)
    threads.assert_back_to_start()


def test_a_cancel_does_not_wait_for_a_stage_stuck_in_a_long_call(threads):
    started, release = threading.Event(), threading.Event()

    def engine(item):  # one batch that takes long, as HD inference on a CPU does
        started.set()
        release.wait(30)
        yield item

    pipeline = Pipeline(lambda: iter(range(100)), [Stage("engine", engine)], cancel_wait=0.2)
    canceller = threading.Thread(target=lambda: started.wait(30) and pipeline.cancel())
    canceller.start()
    begin = time.monotonic()
    with pytest.raises(Cancelled):
        pipeline.run()
    took = time.monotonic() - begin
    canceller.join(30)
    assert took < 2 and "vidstyle-engine" in threads.leaked()
    release.set()  # the call returns; the stage sees the stop at its next queue operation
    deadline = time.monotonic() + 10
    while threads.leaked() and time.monotonic() < deadline:
        time.sleep(0.05)
    threads.assert_back_to_start()


# --- interruptions: a process of its own -------------------------------------------------------

STOP_LIMIT = 5.0  # seconds from the signal to the exit; generous for a shared machine (typically 0.15)


class Process:
    """``python -m vidstyle ARGS`` (or ``python -c PRELUDE ...``) with stdout and stderr read as they come.

    Every process gets a token in its environment: anything still running with it
    after the exit (a child, a grandchild) is a leak.
    """

    def __init__(self, args, cwd: Path, prelude: str | None = None):
        self.token = uuid.uuid4().hex
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               "TF_CPP_MIN_LOG_LEVEL": "3", "VIDSTYLE_TEST_TOKEN": self.token}
        head = [sys.executable, "-c", prelude + "\nfrom vidstyle.apps.cli import main\nsys.exit(main(sys.argv[1:]))"] \
            if prelude else [sys.executable, "-m", "vidstyle"]
        self.proc = subprocess.Popen(head + [str(a) for a in args], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out, self.err = bytearray(), bytearray()
        self._changed = threading.Condition()
        self._readers = [threading.Thread(target=self._read, args=(pipe, buf), daemon=True)
                         for pipe, buf in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for reader in self._readers:
            reader.start()

    def _read(self, pipe, buf: bytearray) -> None:
        while chunk := pipe.read1(4096):
            with self._changed:
                buf += chunk
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, found, timeout: float = 120):
        """Block until ``found(stdout, stderr)`` is truthy (returns it) or the process ends (fails)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                result = found(self.out.decode(errors="replace"), self.err.decode(errors="replace"))
                if result:
                    return result
                assert self.proc.poll() is None, f"ended before that: {self.err.decode(errors='replace')[-500:]}"
                assert time.monotonic() < deadline, "timed out waiting"
                self._changed.wait(0.05)

    def stop(self, signum) -> float:
        """Send ``signum`` and return the seconds until the process had exited."""
        start = time.monotonic()
        self.proc.send_signal(signum)
        self.proc.wait(timeout=60)
        return time.monotonic() - start

    def finish(self) -> tuple[int, str, str]:
        self.proc.wait(timeout=60)
        for reader in self._readers:
            reader.join(10)
        return self.proc.returncode, self.out.decode(), self.err.decode()

    def survivors(self) -> list[int]:
        """Processes still alive that carry this one's token."""
        if not Path("/proc/self/environ").exists():
            return []
        mark, alive = f"VIDSTYLE_TEST_TOKEN={self.token}".encode(), []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and mark in (entry / "environ").read_bytes().split(b"\0"):
                    alive.append(int(entry.name))
            except OSError:
                pass  # gone meanwhile, or not ours to read
        return alive


def messages(err: str) -> list[str]:
    """stderr without the progress bar's redraws."""
    return [part for part in re.split(r"[\r\n]", err) if part.strip() and not part.startswith("stylizing:")]


def progress(count: int, total: int):
    """A wait_for condition: the progress bar has shown at least ``count`` frames written."""
    return lambda out, err: any(int(n) >= count for n in re.findall(rf"(\d+)/{total}\b", err))


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """Long enough that a run is still going when the signal comes: 600 frames (24 s) at 64x48."""
    return make_video(tmp_path_factory.mktemp("long") / "in.mp4", frames=600)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_mid_run_keeps_the_finished_frames_playable(tmp_path, long_clip, signum):
    src = shutil.copy(long_clip, tmp_path / "in.mp4")
    kept_bytes = digest(Path(src))
    run = Process(["transcode", "in.mp4", "-o", "out.mp4", "--preset", "ultrafast"], cwd=tmp_path)
    run.wait_for(progress(5, 600))
    seconds = run.stop(signum)
    code, out, err = run.finish()
    print(f"\n{signal.Signals(signum).name}: exited {seconds:.2f} s after the signal")
    assert code == 128 + signum
    assert seconds < STOP_LIMIT
    (line,) = messages(err)  # one line, no traceback
    kept = int(re.fullmatch(r"vidstyle: interrupted: kept (\d+) of 600 frames in out\.partial\.mp4", line)[1])
    assert 5 <= kept < 600 and out == ""
    assert listing(tmp_path) == ["in.mp4", "out.partial.mp4"] and digest(Path(src)) == kept_bytes
    assert run.survivors() == []
    # Playable: every kept frame at its source time, the sound up to the end of the last one.
    a, b = read_video(src), read_video(tmp_path / "out.partial.mp4")
    assert len(b.frames) == kept and b.times == a.times[:kept]
    assert abs(b.audio_end - kept / 25) <= AAC_FRAME + 1 / 25


# A finalization that takes long (an encoder flushing a long lookahead at 4K).
SLOW_FINISH = """
import sys, time
import vidstyle.io.sink as sink
real_close = sink.FileSink.close
def slow_close(self, **kw):
    if kw.get("partial"):
        print("finishing the partial file", flush=True)
        time.sleep(60)
    return real_close(self, **kw)
sink.FileSink.close = slow_close
"""


def test_a_second_ctrl_c_during_finalization_ends_at_once_leaving_nothing(tmp_path, long_clip):
    shutil.copy(long_clip, tmp_path / "in.mp4")
    run = Process(["transcode", "in.mp4", "-o", "out.mp4", "--preset", "ultrafast"], cwd=tmp_path,
                  prelude=SLOW_FINISH)
    run.wait_for(progress(5, 600))
    run.proc.send_signal(signal.SIGINT)
    run.wait_for(lambda out, err: "finishing the partial file" in out)
    seconds = run.stop(signal.SIGINT)
    code, out, err = run.finish()
    print(f"\nsecond Ctrl-C: exited {seconds:.2f} s after it")
    assert code == 130 and seconds < STOP_LIMIT
    assert messages(err) == ["vidstyle: interrupted again: stopped at once; nothing was kept"]
    assert listing(tmp_path) == ["in.mp4"]  # the hidden temp file is gone, no partial either
    assert run.survivors() == []


def test_ctrl_c_before_any_frame_is_finished_leaves_nothing(tmp_path, long_clip):
    shutil.copy(long_clip, tmp_path / "in.mp4")
    run = Process(["transcode", "in.mp4", "-o", "out.mp4", "--preset", "ultrafast"], cwd=tmp_path)
    # The output's hidden temp file appears before the engine loads: signal then.
    deadline = time.monotonic() + 60
    while not [name for name in os.listdir(tmp_path) if name.startswith(".out.partial-")]:
        assert run.proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    seconds = run.stop(signal.SIGINT)
    code, out, err = run.finish()
    print(f"\nCtrl-C while loading: exited {seconds:.2f} s after it")
    assert code == 130 and seconds < STOP_LIMIT
    assert messages(err) == ["vidstyle: interrupted: no frame was finished; nothing was written"], repr(err)
    assert listing(tmp_path) == ["in.mp4"] and out == ""
    assert run.survivors() == []
