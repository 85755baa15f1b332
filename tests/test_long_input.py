"""Inputs longer than a plain WAV can hold (4 GiB: 6.8 h at 44.1 kHz stereo) are converted and read whole.

The 7-hour input costs almost nothing to make: an ffconcat list that plays one 10 s tone 2,520 times. The tone is
already at the full rate, so the conversion is a copy (about 4.4 GB written, then deleted), not a resampling.
"""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import ffmpeg
from nr4dl_tasks.core.layout import FULL_RATE
from nr4dl_tasks.dsp import audio

HOURS = 7


def long_input(folder: Path, hours: float, rate: int = FULL_RATE, channels: int = 2) -> Path:
    """A `hours`-long media file ffmpeg reads (a tone repeated by the concat demuxer), a few kB on disk."""
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=440:sample_rate={rate}:duration=10",
        "-ac",
        str(channels),
        str(folder / "tone.wav"),
    )
    listing = folder / "long.ffconcat"
    listing.write_text("ffconcat version 1.0\n" + "file tone.wav\n" * int(hours * 360))
    return listing


@pytest.mark.long
def test_a_7_hour_input_is_converted_and_read_whole_past_4_gib(tmp_path):
    out = tmp_path / "audio_44k.wav"
    audio.convert(long_input(tmp_path, HOURS), out, FULL_RATE, 2)
    try:
        assert out.stat().st_size > 1 << 32  # past what a plain WAV header can describe
        assert audio.duration(out) == HOURS * 3600
        samples, rate = audio.read_span(out, HOURS * 3600 - 2, HOURS * 3600)  # how slice cuts the last clip
        assert rate == FULL_RATE and samples.shape == (2 * FULL_RATE, 2)
        assert np.abs(samples).max() > 0.05
    finally:
        out.unlink(missing_ok=True)


def test_a_short_input_stays_a_plain_wav(tmp_path):
    out = tmp_path / "audio_16k.wav"
    audio.convert(long_input(tmp_path, 0.01), out, 16000, 1)
    assert sf.info(str(out)).format == "WAV" and audio.duration(out) == 30.0
