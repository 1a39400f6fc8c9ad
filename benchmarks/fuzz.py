"""Fuzzing, the long run: damaged variants of small valid clips through decode and transcode.

    .venv/bin/python benchmarks/fuzz.py [--seconds 600] [--cases 5000] [--transcode-share 0.3]
    .venv/bin/python benchmarks/fuzz.py --only transcode:54 --keep /tmp/case   # one case again

The same fuzzer as tests/test_fuzz.py (tests/fuzzing.py: six seed clips made
in code, eleven mutators, a case per number), run until --cases cases or
--seconds have passed, whichever comes first. Decode cases (probe, every
frame, every audio packet) and whole-transcode cases (16 px processing size,
the real engine) are interleaved, --transcode-share of them transcodes; each
stream counts its own case numbers from --start.

Each case ends as: ok; error (vidstyle's own, one line, grouped here by
message with paths and numbers taken out); crash (any other exception, also
inside a PipelineError); hang (no end within --timeout); leak (a thread, a
native thread or a file descriptor still open after the case, or freed
only by the garbage collector); dirty (the
input changed, an output or a temporary file left after a failure, or an
output that does not hold the frames reported). Every failure is listed with
its case label, which --only replays. Results go to
benchmarks/results/fuzz-*.json.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import fuzzing  # noqa: E402  (tests/fuzzing.py)
from benchmarks.common import save_results, system_block  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=600.0, help="stop after this long (default 600)")
    p.add_argument("--cases", type=int, default=5000, help="stop after this many cases (default 5000)")
    p.add_argument("--transcode-share", type=float, default=0.3,
                   help="share of the cases run through the whole transcode (default 0.3)")
    p.add_argument("--start", type=int, default=0, help="first case number of each stream (default 0)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds before a case counts as a hang")
    p.add_argument("--only", action="append", metavar="STREAM:N",
                   help="run just these cases (decode:12, transcode:3), repeatable; prints each report")
    p.add_argument("--keep", type=Path, metavar="DIR", help="with --only: write each mutant file here")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    return p.parse_args(argv)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def warm_up(seeds: dict, work: Path) -> None:
    """A clean transcode before any case: the engine loads and TensorFlow starts its pools."""
    case = fuzzing.Case("transcode", -1, "h264-aac.mp4", (), seeds["h264-aac.mp4"], ".mp4")
    outcome = fuzzing.run_case(case, work / "warm", timeout=600)
    if outcome.kind not in (fuzzing.OK, fuzzing.LEAK):
        raise SystemExit(f"warm-up transcode failed: {outcome.report()}")


def replay(labels: list[str], seeds: dict, work: Path, keep: Path | None, timeout: float) -> int:
    if any(label.startswith("transcode:") for label in labels):
        warm_up(seeds, work)
    failed = 0
    for label in labels:
        stream, number = label.split(":")
        case = fuzzing.mutant(stream, int(number), seeds)
        if keep:
            keep.mkdir(parents=True, exist_ok=True)
            path = keep / f"{stream}-{number}{case.suffix}"
            path.write_bytes(case.data)
            print(f"wrote {path}")
        outcome = fuzzing.run_case(case, work / "case", timeout)
        failed += outcome.failed
        print(f"{outcome.report()} ({outcome.seconds:.2f} s, {outcome.frames} frame(s))")
    return 1 if failed else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vidstyle-fuzz-") as tmp:
        work = Path(tmp)
        seeds = fuzzing.make_seeds(work / "seeds")
        if args.only:
            return replay(args.only, seeds, work, args.keep, args.timeout)
        return fuzz(args, seeds, work)


def fuzz(args, seeds: dict, work: Path) -> int:
    import hashlib

    warm_up(seeds, work)
    rss_start = rss_mb()
    counts = {s: collections.Counter() for s in fuzzing.STREAMS}
    errors: collections.Counter = collections.Counter()
    failures, slowest = [], []
    next_number = {s: args.start for s in fuzzing.STREAMS}
    start = time.monotonic()
    last_print = start
    tried = 0
    while tried < args.cases and time.monotonic() - start < args.seconds:
        done_transcode = sum(counts["transcode"].values())
        stream = "transcode" if done_transcode < args.transcode_share * (tried + 1) else "decode"
        number = next_number[stream]
        next_number[stream] += 1
        outcome = fuzzing.run_case(fuzzing.mutant(stream, number, seeds), work / "case", args.timeout)
        tried += 1
        counts[stream][outcome.kind] += 1
        if outcome.kind == fuzzing.ERROR:
            errors[outcome.detail] += 1
        if outcome.failed:
            failures.append({"case": outcome.case.label, "kind": outcome.kind, "detail": outcome.detail,
                             "mutations": list(outcome.case.mutations), "seed": outcome.case.seed})
            print(f"  FAIL {outcome.report()}", flush=True)
        slowest = sorted(slowest + [(outcome.seconds, outcome.case.label)], reverse=True)[:5]
        if time.monotonic() - last_print > 30:
            last_print = time.monotonic()
            print(f"  {tried} cases in {last_print - start:.0f} s: "
                  + ", ".join(f"{s} {dict(c)}" for s, c in counts.items()), flush=True)
    elapsed = time.monotonic() - start

    total = sum(counts.values(), collections.Counter())
    print(f"\n{tried} cases in {elapsed:.0f} s ({tried / elapsed:.1f}/s): "
          f"decode {sum(counts['decode'].values())} (numbers {args.start}..{next_number['decode'] - 1}), "
          f"transcode {sum(counts['transcode'].values())} (numbers {args.start}..{next_number['transcode'] - 1})")
    for stream, c in counts.items():
        print(f"  {stream:<9} " + ", ".join(f"{k} {c[k]}" for k in (fuzzing.OK, fuzzing.ERROR, *fuzzing.FAILURES)))
    print(f"  successes {total[fuzzing.OK]}, vidstyle errors {total[fuzzing.ERROR]}, crashes {total[fuzzing.CRASH]}, "
          f"hangs {total[fuzzing.HANG]}, leaks {total[fuzzing.LEAK]}, dirty {total[fuzzing.DIRTY]}")
    print("\nvidstyle errors by message:")
    for detail, n in errors.most_common():
        print(f"  {n:5d}  {detail}")
    if failures:
        print("\nfailures (replay: benchmarks/fuzz.py --only CASE --keep DIR):")
        for f in failures:
            print(f"  {f['kind']:<6} {f['case']:<16} {f['detail']}")
    print(f"slowest cases: {', '.join(f'{label} {s:.2f} s' for s, label in slowest)}")
    rss_end = rss_mb()
    print(f"resident set: {rss_start:.0f} MB after the warm-up, {rss_end:.0f} MB at the end")
    path = save_results(args.out, "fuzz", {
        "command": sys.argv, "system": system_block(), "seconds": elapsed, "cases": tried,
        "limits": {"cases": args.cases, "seconds": args.seconds, "timeout": args.timeout},
        "transcode_share": args.transcode_share, "start": args.start,
        "last_number": {s: next_number[s] - 1 for s in fuzzing.STREAMS},
        "seeds": {name: hashlib.sha1(data).hexdigest() for name, data in seeds.items()},
        "counts": {s: dict(c) for s, c in counts.items()},
        "totals": {"tried": tried, "ok": total[fuzzing.OK], "vidstyle_errors": total[fuzzing.ERROR],
                   "crashes": total[fuzzing.CRASH], "hangs": total[fuzzing.HANG], "leaks": total[fuzzing.LEAK],
                   "dirty": total[fuzzing.DIRTY]},
        "errors_by_message": dict(errors.most_common()), "failures": failures,
        "slowest": [{"case": label, "seconds": s} for s, label in slowest],
        "rss_mb": {"after_warm_up": rss_start, "end": rss_end}})
    print(f"wrote {path}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
