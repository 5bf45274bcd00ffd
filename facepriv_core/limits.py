"""The caps on everything that enters FacePriv, local and hosted.

One place for every limit, so the decoder, the dataset readers, the app and the job queue agree
and messages state the caps that are really applied. `FACEPRIV_HOSTED=1` (set by the
Dockerfile) selects the tighter hosted caps: a public server shared by many sessions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

HOSTED_ENV = "FACEPRIV_HOSTED"
MiB = 2**20


@dataclass(frozen=True)
class Limits:
    hosted: bool
    #: Largest image file or upload, in bytes (Streamlit's maxUploadSize is in MiB too).
    image_bytes: int
    #: Images with more pixels are refused from their header, before decoding.
    max_pixels: int
    #: Decoded images with more pixels are downscaled to this while decoding.
    work_pixels: int
    #: Zip datasets: members, bytes of one member, bytes of all members (declared and read).
    zip_members: int
    zip_member_bytes: int
    zip_total_bytes: int
    #: Jobs one app session may have queued or running at once.
    session_jobs: int
    #: Whether the app offers inputs naming paths on the server (a dataset folder).
    server_paths: bool


LOCAL = Limits(hosted=False, image_bytes=50 * MiB, max_pixels=40_000_000,
               work_pixels=12_000_000, zip_members=5000, zip_member_bytes=50 * MiB,
               zip_total_bytes=1024 * MiB, session_jobs=8, server_paths=True)
HOSTED = Limits(hosted=True, image_bytes=10 * MiB, max_pixels=24_000_000,
                work_pixels=8_000_000, zip_members=500, zip_member_bytes=10 * MiB,
                zip_total_bytes=200 * MiB, session_jobs=2, server_paths=False)


def hosted() -> bool:
    return os.environ.get(HOSTED_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def current() -> Limits:
    """The caps in force now (read each time: tests and deployments set the environment)."""
    return HOSTED if hosted() else LOCAL
