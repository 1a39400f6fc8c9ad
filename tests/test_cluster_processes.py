"""Scale-out as processes: a stopped job keeps its segments and resumes, nothing is
left running, and the same command runs on a two-node Ray cluster (both nodes on this machine).

Each test drives `vidstyle` as a subprocess, as a user would, with its own Ray runtime: the
in-process runtime of test_cluster.py is shut down by then (module scope).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from test_cluster import gop_video, timeline
from vidstyle.cluster.plan import preroll_frames
from vidstyle.cluster.run import work_dir
from vidstyle.apps.interrupt import descendants
from vidstyle.offline import TranscodeConfig, transcode

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

SEGMENT = 10
STRENGTH = 0.6  # smoothing that settles in a few frames: a short pre-roll keeps these runs quick
PREROLL = preroll_frames("flow", STRENGTH)


def vidstyle(*args) -> list[str]:
    return [sys.executable, "-m", "vidstyle.apps.cli", *map(str, args), "--temporal-strength", str(STRENGTH)]


def work_of(clip, out) -> Path:
    return work_dir(TranscodeConfig(input=clip, output=out, temporal_strength=STRENGTH), SEGMENT, PREROLL)


def env(**extra) -> dict:
    # A token file left by an earlier ray.init turns token auth on for `ray start --head`
    # (Ray >= 2.59); these clusters live for one test on localhost, so it stays off.
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "RAY_AUTH_MODE": "disabled", **extra}


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """120 frames, a keyframe every 5: twelve 10-frame segments, each a second or more of work."""
    return gop_video(tmp_path_factory.mktemp("long") / "in.mp4", frames=120, size=(160, 120))


@pytest.fixture(scope="module")
def single(long_clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "single.mp4"
    transcode(TranscodeConfig(input=long_clip, output=out))
    return timeline(out)


def wait_until(found, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout} s")


def gone(pids: list[int], timeout: float = 15) -> list[int]:
    """The pids still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if Path(f"/proc/{p}").exists() and _state(p) != "Z"]
        time.sleep(0.1)
    return [f"{p} {_comm(p)}" for p in alive]


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    return stat[stat.rindex(")") + 2]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def stop_after_first_segment(cmd: list[str], work: Path, signals: list[int], tmp_path: Path):
    """Start ``cmd``; once a segment file is finished send ``signals`` (0.2 s apart); return
    (exit code, stderr, the processes it had started)."""
    err = tmp_path / "stderr.txt"
    with open(err, "w") as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, env=env())
        try:
            wait_until(lambda: list(work.glob("segment-*.mp4")) if work.exists() else None, 300,
                       "finished segment")
            children = descendants(proc.pid)
            for i, s in enumerate(signals):
                if i:
                    time.sleep(0.2)
                proc.send_signal(s)
            code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return code, err.read_text(), children


@pytest.mark.timeout(600)
@pytest.mark.parametrize("cluster, stop", [("local", signal.SIGINT), (None, signal.SIGTERM)])
def test_a_stopped_job_keeps_its_segments_and_resumes(long_clip, single, tmp_path, cluster, stop):
    out = tmp_path / "out.mp4"
    work = work_of(long_clip, out)
    # Without --cluster, --resume alone makes the segmented path run here, inline.
    cmd = vidstyle("transcode", long_clip, "-o", out, "--segment-frames", SEGMENT, "--no-progress",
                   *(["--cluster", cluster, "--workers", 1] if cluster else ["--resume"]))
    code, err, children = stop_after_first_segment(cmd, work, [stop], tmp_path)
    assert code == 128 + stop, err
    assert "--resume" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
    kept = sorted(work.glob("segment-*.mp4"))
    assert 1 <= len(kept) < 12
    assert bool(children) == bool(cluster)  # a local Ray runtime: GCS, raylet, workers...
    assert not gone(children)  # ... and they ended with the command

    done = subprocess.run(vidstyle("transcode", long_clip, "-o", out, "--segment-frames", SEGMENT,
                                   "--no-progress", "--resume"), capture_output=True, text=True, env=env())
    assert done.returncode == 0, done.stderr
    assert f"{len(kept)} reused" in done.stdout
    pts, audio = timeline(out)
    assert pts == single[0] and audio == pytest.approx(single[1], abs=1e-6)
    assert not work.exists()


@pytest.mark.timeout(600)
def test_a_second_signal_ends_at_once_and_leaves_no_ray_process(long_clip, tmp_path):
    out = tmp_path / "out.mp4"
    work = work_of(long_clip, out)
    cmd = vidstyle("transcode", long_clip, "-o", out, "--segment-frames", SEGMENT, "--no-progress",
                   "--cluster", "local", "--workers", 1)
    code, err, children = stop_after_first_segment(cmd, work, [signal.SIGINT, signal.SIGINT], tmp_path)
    assert code == 128 + signal.SIGINT, err
    assert children and not gone(children)
    assert not out.exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def two_nodes():
    """A Ray head and a worker node on this machine, one CPU each; yields (GCS address, client port).
    The head also declares a GPU (Ray only counts it), so one actor is placed as on a GPU node:
    with num_gpus=1, and --engine auto still finding no GPU there."""
    ray_bin = Path(sys.executable).with_name("ray")
    gcs, client = free_port(), free_port()
    temp = tempfile.mkdtemp(prefix="vr")  # short: Ray's socket paths must fit 107 bytes
    common = ["--num-cpus", "1", "--disable-usage-stats", "--block"]
    head = subprocess.Popen([ray_bin, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
                             "--ray-client-server-port", str(client), "--include-dashboard", "false", "--num-gpus", "1",
                             "--temp-dir", temp, *common],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env())
    procs = [head]
    try:
        status = lambda: subprocess.run([ray_bin, "status", "--address", f"127.0.0.1:{gcs}"],  # noqa: E731
                                        capture_output=True, text=True, env=env()).stdout
        wait_until(lambda: "1.0 CPU" in status(), 120, "head node")
        procs.append(subprocess.Popen([ray_bin, "start", "--address", f"127.0.0.1:{gcs}",
                                       "--node-ip-address", "127.0.0.1", *common],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env()))
        wait_until(lambda: "2.0 CPU" in status(), 120, "second node")
        yield f"127.0.0.1:{gcs}", client
    finally:
        children = [p for proc in procs for p in descendants(proc.pid)]
        for proc in reversed(procs):  # `ray start --block` stops its node's processes on SIGTERM
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        for pid in gone(children, timeout=20):
            os.kill(int(pid.split()[0]), signal.SIGKILL)


@pytest.mark.timeout(600)
def test_two_nodes_share_a_transcode_and_a_batch(two_nodes, long_clip, single, tmp_path):
    address, client_port = two_nodes
    out = tmp_path / "out.mp4"
    # From outside the cluster, through Ray's client server (ray://), as from a laptop.
    run = subprocess.run(vidstyle("transcode", long_clip, "-o", out, "--segment-frames", SEGMENT,
                                  "--no-progress", "--cluster", f"ray://127.0.0.1:{client_port}"),
                         capture_output=True, text=True, env=env())
    assert run.returncode == 0, run.stderr
    assert "12 segments on 2 nodes" in run.stdout
    pts, audio = timeline(out)
    assert pts == single[0] and audio == pytest.approx(single[1], abs=1e-6)
    # From a node of the cluster (its GCS address), a folder of files.
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        gop_video(folder / name, frames=30, size=(160, 120))
    run = subprocess.run(vidstyle("batch", folder, "-o", tmp_path / "styled", "--no-progress",
                                  "--cluster", address), capture_output=True, text=True, env=env())
    assert run.returncode == 0, run.stderr
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        assert len(timeline(tmp_path / "styled" / name)[0]) == 30
