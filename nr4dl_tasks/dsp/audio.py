"""ffmpeg/ffprobe wrappers and block-wise WAV reading.

Long recordings never enter memory whole: conversion streams through ffmpeg,
and analysis reads WAV files block by block with soundfile.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

from nr4dl_tasks.core.children import die_with_parent
from nr4dl_tasks.core.errors import DiskFull, MediaError


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise MediaError(f"{name} is not installed; run scripts/setup.sh (it installs ffmpeg)")
    return found


def _cause(stderr: str) -> str:
    """ffmpeg's first complaint (the decoder's own, e.g. 'Header missing') and its last (often only the
    consequence, 'Error configuring filter graph'), without the '[mp3float @ 0x...]' prefixes."""
    lines = [re.sub(r"^\[[^]]*@ 0x[0-9a-f]+\]\s*", "", line.strip()) for line in stderr.splitlines() if line.strip()]
    if not lines:
        return "no error message"
    return lines[0] if lines[0] == lines[-1] else f"{lines[0]}; {lines[-1]}"


def probe(path: Path) -> dict:
    """ffprobe's view of a media file; MediaError when ffmpeg cannot read it."""
    cmd = [_tool("ffprobe"), "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=die_with_parent)
    if proc.returncode != 0:
        raise MediaError(f"{path}: not readable as media ({_cause(proc.stderr)})")
    return json.loads(proc.stdout or "{}")


def convert(src: Path, dst: Path, rate: int, channels: int) -> None:
    """Decode the first audio stream of `src` into a 16-bit PCM WAV at `rate` Hz with `channels` channels.

    `-rf64 auto`: a plain WAV's size fields are 32-bit, so past 4 GiB (6.8 h at 44.1 kHz stereo) they wrap and a
    reader sees a fraction of the audio; ffmpeg then writes RF64 (64-bit sizes, read block-wise by soundfile) and
    keeps plain WAV below that size."""
    cmd = [
        _tool("ffmpeg"),
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-i",
        str(src),
        "-map",
        "0:a:0",
        "-vn",
        "-ac",
        str(channels),
        "-ar",
        str(rate),
        "-c:a",
        "pcm_s16le",
        "-rf64",
        "auto",
        "-f",
        "wav",
        str(dst),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=die_with_parent)
    if proc.returncode != 0:
        if "No space left on device" in proc.stderr:
            raise DiskFull(f"{dst.parent}: the disk is full; ffmpeg could not write {dst.name}")
        raise MediaError(f"{src}: decoding failed ({_cause(proc.stderr)})")


def blocks(path: Path, block_frames: int, overlap: int = 0, dtype: str = "float32") -> Iterator[tuple[int, np.ndarray]]:
    """Yield (start_frame, samples) blocks of a WAV file; each block also carries `overlap` following frames."""
    with sf.SoundFile(str(path)) as snd:
        start = 0
        while start < snd.frames:
            snd.seek(start)
            data = snd.read(block_frames + overlap, dtype=dtype, always_2d=False)
            yield start, data
            start += block_frames


def read_span(path: Path, start_s: float, end_s: float, dtype: str = "float32") -> tuple[np.ndarray, int]:
    """Read only the frames between two times (seconds) of a WAV file."""
    with sf.SoundFile(str(path)) as snd:
        first = max(0, int(round(start_s * snd.samplerate)))
        last = min(snd.frames, int(round(end_s * snd.samplerate)))
        snd.seek(first)
        return snd.read(max(0, last - first), dtype=dtype, always_2d=True), snd.samplerate


def duration(path: Path) -> float:
    info = sf.info(str(path))
    return info.frames / info.samplerate


def resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Anti-aliased polyphase resampling along the first axis (pydub's `set_frame_rate` has no such filter)."""
    if src_rate == dst_rate:
        return samples
    from scipy.signal import resample_poly

    g = gcd(src_rate, dst_rate)
    return resample_poly(samples, dst_rate // g, src_rate // g, axis=0).astype(np.float32)


def mono(samples: np.ndarray) -> np.ndarray:
    """A (frames, channels) array downmixed to (frames,); 1-D input is returned as is."""
    return samples.mean(axis=1) if samples.ndim == 2 else samples
