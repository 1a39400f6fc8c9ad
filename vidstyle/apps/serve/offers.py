"""An offer is checked before a peer connection is made for it.

The server reads one video track, the camera. aiortc would accept any number of tracks and
decode every one, and a track nobody reads piles its decoded frames up on the event loop
without bound, so an offer must send exactly one video track and nothing else but the
data channel. Each section must carry its DTLS fingerprint and ICE credentials: without a
fingerprint aiortc answers, then fails later in a task of its own.
"""
from __future__ import annotations

from aiortc import RTCSessionDescription
from aiortc.sdp import SessionDescription

from vidstyle.apps.serve.answers import Refused

FINGERPRINTS = ("sha-256", "sha-384", "sha-512")  # the digests aiortc can check
SENDING = (None, "sendrecv", "sendonly")  # no direction line means sendrecv


def offer_from(body: object) -> RTCSessionDescription:
    """The offer in ``{"sdp": ..., "type": "offer"}``, checked; else :class:`Refused` (400)."""
    if not isinstance(body, dict) or not isinstance(body.get("sdp"), str) or not isinstance(body.get("type"), str):
        raise Refused(400, "expected JSON {sdp, type} holding a WebRTC offer")
    if body["type"] != "offer":
        raise Refused(400, f"expected an offer, got {body['type']!r}")
    check_sdp(body["sdp"])
    return RTCSessionDescription(sdp=body["sdp"], type="offer")


def check_sdp(sdp: str) -> None:
    try:
        session = SessionDescription.parse(sdp)
    except Exception as exc:  # noqa: BLE001 - aiortc's parser raises anything from assert to KeyError
        raise Refused(400, f"cannot read this offer's SDP ({type(exc).__name__}: {exc})"[:300]) from None
    kinds = [m.kind for m in session.media]
    videos = [m for m in session.media if m.kind == "video"]
    if len(videos) != 1:
        raise Refused(400, f"the offer must send exactly one video track (the camera); it has {len(videos)}")
    if videos[0].direction not in SENDING:
        raise Refused(400, f"the offer's video track must send the camera; it is {videos[0].direction}")
    others = sorted({k for k in kinds if k not in ("video", "application")})
    if others:
        raise Refused(400, f"the offer has {' and '.join(others)} tracks; send the camera's video only")
    if kinds.count("application") > 1:
        raise Refused(400, "the offer has more than one data channel section")
    for media in session.media:
        fingerprints = [f.algorithm.lower() for f in media.dtls.fingerprints] if media.dtls else []
        if not any(f in FINGERPRINTS for f in fingerprints):
            raise Refused(400, f"the offer's {media.kind} section has no DTLS fingerprint "
                               f"({'/'.join(FINGERPRINTS)}) and setup role")
        if not media.ice.usernameFragment or not media.ice.password:
            raise Refused(400, f"the offer's {media.kind} section has no ICE username and password")
