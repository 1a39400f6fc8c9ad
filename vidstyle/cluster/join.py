"""Join segment files without re-encoding, and carry the source's audio once."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

import av

from vidstyle.io.sink import AudioFeed, check_target, write_failure


def join_segments(parts: list, output, audio_from=None) -> Path:
    """Remux the video packets of ``parts`` (in order, source timestamps kept) into ``output``.

    The audio streams of ``audio_from`` are interleaved as the video advances and
    copied (re-encoded only if the container refuses the codec), exactly as the
    single-machine sink does. Decode timestamps are nudged up where two segments
    meet (each segment's encoder starts its own B-frame delay) so they stay
    increasing; presentation timestamps are never changed.
    """
    output = Path(output)
    check_target(output, parts)
    temp = output.with_name(f".{output.stem}.joining-{secrets.token_hex(4)}{output.suffix}")
    try:
        with av.open(str(temp), "w") as out:
            with av.open(str(parts[0])) as first:
                template = first.streams.video[0]
                video = out.add_stream_from_template(template)
                time_base = template.time_base
            audio = None
            try:
                if audio_from:
                    with av.open(str(audio_from)) as source:
                        has_audio = bool(source.streams.audio)
                    if has_audio:
                        audio = AudioFeed(out, str(audio_from))
                out.start_encoding()
                last_dts = None
                for part in parts:
                    with av.open(str(part)) as seg:
                        stream = seg.streams.video[0]
                        for packet in seg.demux(stream):
                            if packet.size == 0 or packet.dts is None:
                                continue
                            if stream.time_base != time_base:
                                packet.pts = None if packet.pts is None else round(packet.pts * stream.time_base / time_base)
                                packet.dts = round(packet.dts * stream.time_base / time_base)
                            if last_dts is not None and packet.dts <= last_dts:
                                packet.dts = last_dts + 1
                            last_dts = packet.dts
                            packet.stream = video
                            packet.time_base = time_base
                            out.mux(packet)
                            if audio and packet.pts is not None:
                                audio.feed_until(float(packet.dts * time_base))
                if audio:
                    audio.finish(None)
            finally:
                if audio:
                    audio.close()
        os.replace(temp, output)
    except (av.FFmpegError, OSError) as error:
        temp.unlink(missing_ok=True)
        raise write_failure(output, "join the segments", error) from error
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return output
