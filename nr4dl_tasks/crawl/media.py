"""Media, or nothing: a download is kept only when it is audio or video.

Two checks, before the file is handed to processing: the answer's Content-Type
(an HTML page, a JSON error or a text file is refused at once, however the URL
ends), then ffprobe on the first bytes that arrive, so an error page served as
`audio/mpeg` is refused after half a megabyte, not after the whole file. A
file whose first bytes ffprobe cannot read although the server calls it audio
or video (an MP4 with its index at the end) is read to the end and probed
whole. The size limit is counted on the bytes that arrive. The file is written
as `<name>.part` (resumed from there by the next crawl) and renamed only once
it has passed.
"""

from __future__ import annotations

import mimetypes
import re
import subprocess
from http.client import HTTPResponse
from pathlib import Path
from urllib.parse import unquote, urlparse

from nr4dl_tasks.crawl.web import Refused

HEAD_BYTES = 512 * 1024
CHUNK = 256 * 1024
PAGE_TYPES = ("text/html", "application/xhtml+xml")
# Sent for media by servers that do not know better; ffprobe decides.
NEUTRAL_TYPES = ("application/octet-stream", "binary/octet-stream", "application/ogg", "application/mp4", "")
_EXT = re.compile(r"^\.[a-z0-9]{1,5}$")


def content_type(response: HTTPResponse) -> str:
    return (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()


def is_page(response: HTTPResponse) -> bool:
    return content_type(response) in PAGE_TYPES


def declared_media(kind: str) -> bool:
    return kind.startswith(("audio/", "video/"))


def extension(url: str, kind: str) -> str:
    """The file's extension: the URL's when it is a plain one, else the content type's, else `.media`."""
    suffix = Path(unquote(urlparse(url).path)).suffix.lower()
    if _EXT.match(suffix):
        return suffix
    guessed = mimetypes.guess_extension(kind) or ""
    return guessed if _EXT.match(guessed) else ".media"


def probe(path: Path) -> str | None:
    """None when ffprobe finds an audio or video stream in the file, else what it said."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
    )
    kinds = set(result.stdout.split())
    if result.returncode == 0 and kinds & {"audio", "video"}:
        return None
    said = (result.stderr.strip().splitlines() or ["no audio or video stream"])[-1]
    return said.removeprefix(f"{path}: ")


def _looks_like_text(head: bytes) -> bool:
    start = head[:2048].lstrip()
    return start.startswith((b"<", b"{", b"[")) or (bool(start) and start.isascii() and b"\0" not in start)


def save(response: HTTPResponse, part: Path, final: Path, limit: int) -> Path:
    """Stream the answer into `part` (appended to on a 206), check it is media, rename it to `final`.

    Refused, with nothing left behind, for what is not audio or video or is larger than `limit` bytes."""
    kind = content_type(response)
    if not (declared_media(kind) or kind in NEUTRAL_TYPES):
        raise Refused(f"not audio or video: the server sent {kind}")
    length = response.headers.get("Content-Length")
    resumed = response.status == 206 and part.is_file()
    offset = part.stat().st_size if resumed else 0
    if length and length.isdigit() and offset + int(length) > limit:
        raise Refused(f"larger than crawl.max_megabytes ({limit / 2**20:g} MiB) by its Content-Length")
    try:
        with part.open("ab" if resumed else "wb") as out:
            size, probed = offset, False
            while chunk := response.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise Refused(f"larger than crawl.max_megabytes ({limit / 2**20:g} MiB)")
                out.write(chunk)
                if not probed and size >= HEAD_BYTES:
                    out.flush()
                    probed = _head_passes(part, kind)
        if (reason := probe(part)) is not None:
            raise Refused(f"not audio or video: ffprobe: {reason}")
    except Refused:
        part.unlink(missing_ok=True)
        raise
    part.replace(final)
    return final


def _head_passes(part: Path, kind: str) -> bool:
    """Probe the first bytes; Refused unless they are media or a server-declared media file may index at its end."""
    reason = probe(part)
    if reason is None:
        return True
    with part.open("rb") as fh:
        head = fh.read(HEAD_BYTES)
    if declared_media(kind) and not _looks_like_text(head):
        return True  # read on, and probe the whole file
    raise Refused(f"not audio or video: ffprobe on its first bytes: {reason}")
