"""Ctrl-C and SIGTERM for a long command: the first stops the work cleanly, a second at once.

``run(work, request_stop, keeps_something)`` runs the work on a worker thread while the
main thread, the only one Python delivers signals to, waits in short joins and so
answers a signal at once even while the work is inside FFmpeg or TensorFlow. The first
signal asks the work to stop; a second (or GRACE seconds with nothing worth keeping)
ends the process now: open sinks' temp files removed, every child process killed, exit
128 + the signal. Cases and timings: docs/reliability.md.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Callable, TypeVar

from vidstyle.io.sink import remove_open_temps

T = TypeVar("T")

POLL = 0.05  # seconds between the main thread's looks at the worker
# After a first signal with nothing worth keeping, the work has this long to wind
# down by itself (it usually does, in one pipeline poll) before the process just
# ends: a worker inside a slow C call (TensorFlow loading) cannot be stopped sooner.
GRACE = 0.5
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run(work: Callable[[], T], request_stop: Callable[[], None], keeps_something: Callable[[], bool]) -> T:
    """``work()`` on a worker thread, its result or exception returned or raised here.

    First SIGINT/SIGTERM: ``request_stop()``; the work then ends as it sees fit
    (a transcode keeps its finished frames) and its exception carries
    ``signum``. If ``keeps_something()`` is false and the work has not ended
    within GRACE, or on a second signal, the process ends now: every open
    sink's temp file is removed and nothing half-written is left looking done.
    Off the main thread (no signals there) ``work()`` just runs.
    """
    if threading.current_thread() is not threading.main_thread():
        return work()
    outcome: dict[str, object] = {}
    received: list[tuple[int, float]] = []

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            outcome["error"] = exc

    # The worker may have fd 2 pointed at /dev/null for a while (TensorFlow's import is
    # silenced that way, see tfimport): a last word must go to the stderr we started with.
    try:
        stderr = os.dup(2)
    except OSError:  # no stderr at all (a daemon): nowhere to say it
        stderr = -1

    def on_signal(signum, _frame) -> None:
        received.append((signum, time.monotonic()))
        if len(received) == 1:
            request_stop()
        else:
            abandon(signum, "interrupted again: stopped at once; nothing was kept", stderr)

    worker = threading.Thread(target=target, name="vidstyle-work", daemon=True)
    previous = {s: signal.signal(s, on_signal) for s in SIGNALS}
    try:
        worker.start()
        while worker.is_alive():
            worker.join(POLL)
            if received and worker.is_alive() and not keeps_something() \
                    and time.monotonic() - received[0][1] > GRACE:
                abandon(received[0][0], "interrupted: no frame was finished; nothing was written", stderr)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if stderr >= 0:
            os.close(stderr)
    if "error" in outcome:
        error = outcome["error"]
        if received:
            error.signum = received[0][0]  # type: ignore[attr-defined]
        raise error  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def descendants(pid: int | None = None) -> list[int]:
    """Every living process below ``pid`` (default: this one), children before grandchildren;
    [] where /proc is missing."""
    parents: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])  # after "(comm)": state, ppid
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [os.getpid() if pid is None else pid]
    while todo:
        children = parents.get(todo.pop(0), [])
        found += children
        todo += children
    return found


def kill_descendants() -> None:
    """SIGKILL every process this one started, and theirs: a Ray runtime's raylet, GCS and
    agents outlive a driver that leaves by os._exit (its agents were seen alive minutes later)."""
    for pid in descendants():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def abandon(signum: int, message: str, stderr: int = 2) -> None:
    """End the process now: remove open temp files, stop child processes, say so on fd
    ``stderr``, exit 128 + signal number."""
    remove_open_temps()
    kill_descendants()
    try:
        sys.stderr.flush()  # what was already printed comes first
        os.write(stderr, f"vidstyle: {message}\n".encode(errors="replace"))
    except (OSError, ValueError):
        pass  # the exit matters more than the words
    exit_now(128 + signum)


def exit_now(code: int) -> None:
    """Leave without the interpreter's teardown: after a signal the user wants the prompt
    back, and unloading TensorFlow takes 1.5-2 s on its own. Only for the end of a
    command whose files are closed; os._exit runs no finally and no atexit."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
