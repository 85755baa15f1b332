"""Slice: the wanted segments -> `clips/*.wav` and the first clip manifest (`manifests/slice.jsonl`).

The rules run in this order, each a small pure function so it can be tested on
its own: keep the wanted labels, merge same-label neighbours across short gaps,
split what is longer than `max_duration` at its quietest 10 ms, drop what is
shorter than `min_duration`, then pad. Audio is read span by span from disk
(never the whole file), resampled with an anti-aliasing polyphase filter
(pydub's own `set_frame_rate` interpolates without one) and written with pydub.

A clip is cut from the vocals where the separate stage separated its whole span
(speech with a music bed), else from the original, and records its music bed,
the music left in the audio it was cut from, and how much of it is sung; the
gate bounds the last two (docs/music.md).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nr4dl_tasks.core.layout import (
    ANALYSIS_WAV,
    CLIPS_DIR,
    FULL_WAV,
    MUSIC_NPY,
    SEGMENTS_CSV,
    SEPARATED_JSON,
    VOCALS_MUSIC_NPY,
    VOCALS_WAV,
    Artifact,
    analysis_input,
    separation_outputs,
)
from nr4dl_tasks.core.progress import Progress
from nr4dl_tasks.core.records import Clip, Segment, read_segments, write_manifest
from nr4dl_tasks.core.settings import Settings, SliceSettings
from nr4dl_tasks.core.stage import Stage
from nr4dl_tasks.core.workdir import WorkDir, atomic_dir
from nr4dl_tasks.dsp import audio, music, singing

log = logging.getLogger("nr4dl")

ENERGY_HOP = 0.01  # seconds per loudness value when looking for the quietest split point

# (start_s, end_s) -> loudness per 10 ms frame over that span
LoudnessFn = Callable[[float, float], np.ndarray]


def keep_labels(segments: list[Segment], wanted: set[str]) -> list[Segment]:
    return [seg for seg in segments if seg.label in wanted]


def merge_gaps(segments: list[Segment], max_gap: float) -> list[Segment]:
    """Join neighbours with the same label when the gap between them is at most `max_gap` seconds."""
    merged: list[Segment] = []
    for seg in segments:
        last = merged[-1] if merged else None
        if last and last.label == seg.label and seg.start - last.end <= max_gap + 1e-9:
            merged[-1] = Segment(last.label, last.start, seg.end)
        else:
            merged.append(seg)
    return merged


def split_long(seg: Segment, max_len: float, min_len: float, loudness: LoudnessFn) -> list[Segment]:
    """Cut a segment longer than `max_len` at its quietest frame, searching where both parts stay valid.

    The cut is looked for between half the maximum (so pieces are not tiny) and the
    maximum, and never so late that the rest would be shorter than `min_len`.
    """
    pieces: list[Segment] = []
    start = seg.start
    while seg.end - start > max_len:
        lo = start + max(max_len / 2, min_len)
        hi = min(start + max_len, seg.end - min_len)
        if hi <= lo:
            hi = start + max_len
            lo = min(lo, hi)
        level = loudness(lo, hi)
        cut = lo + (int(np.argmin(level)) + 0.5) * ENERGY_HOP if len(level) else hi
        cut = round(min(max(cut, lo), hi), 3)
        pieces.append(Segment(seg.label, start, cut))
        start = cut
    pieces.append(Segment(seg.label, start, seg.end))
    return pieces


def plan_clips(
    segments: list[Segment], cfg: SliceSettings, loudness: LoudnessFn, total: float
) -> list[tuple[Segment, Segment]]:
    """Apply every slicing rule; return (speech span, padded span) pairs in time order."""
    kept = merge_gaps(keep_labels(segments, cfg.wanted_labels()), cfg.merge_gap)
    pieces = [piece for seg in kept for piece in split_long(seg, cfg.max_duration, cfg.min_duration, loudness)]
    long_enough = [seg for seg in pieces if seg.duration >= cfg.min_duration - 1e-9]
    return [
        (
            seg,
            Segment(
                seg.label, round(max(0.0, seg.start - cfg.padding), 3), round(min(total, seg.end + cfg.padding), 3)
            ),
        )
        for seg in long_enough
    ]


def loudness_of(wav: Path) -> LoudnessFn:
    def loudness(start: float, end: float) -> np.ndarray:
        samples, rate = audio.read_span(wav, start, end)
        hop = int(rate * ENERGY_HOP)
        frames = len(samples) // hop
        if frames == 0:
            return np.zeros(0)
        power = (samples[: frames * hop].mean(axis=1) ** 2).reshape(frames, hop).mean(axis=1)
        return 10 * np.log10(power + 1e-12)

    return loudness


def write_clip(src: Path, span: Segment, dst: Path, rate: int, channels: int) -> np.ndarray:
    """Cut one span from `src`, resample it and write a 16-bit WAV with pydub; return it as 16 kHz mono, for
    measuring."""
    from pydub import AudioSegment

    samples, src_rate = audio.read_span(src, span.start, span.end)
    pcm = (np.clip(audio.resample(samples, src_rate, rate), -1.0, 1.0) * 32767).astype("<i2")
    clip = AudioSegment(data=pcm.tobytes(), sample_width=2, frame_rate=rate, channels=pcm.shape[1])
    clip.set_channels(channels).export(str(dst), format="wav")
    return audio.resample(audio.mono(samples), src_rate, singing.RATE)


class Sources:
    """Which audio each clip is cut from, and the music measures of each: with `separate.mode: all` the vocals;
    routed, the vocals where its speech overlaps a bed and separation ran over its whole span, else the original."""

    def __init__(self, work: WorkDir, settings: Settings) -> None:
        self.work = work
        self.mix_music = music.load(work.input(MUSIC_NPY))
        self.spans: list[tuple[float, float]] = []
        self.beds: list[tuple[float, float]] = []
        self.everywhere = False
        if separation_outputs(settings):
            separated = json.loads(work.input(SEPARATED_JSON).read_text())
            self.everywhere = separated["mode"] == "all"
            self.spans = [(a, b) for a, b in separated["spans"]]
            self.beds = [(bed["start"], bed["end"]) for bed in separated["beds"]]
            self.vocals_music = music.load(work.input(VOCALS_MUSIC_NPY))

    def measure(self, clip: Clip, speech: Segment, span: Segment) -> Path:
        """Set the clip's source and music measures; return the file to cut it from."""
        on_bed = self.everywhere or any(a < speech.end and speech.start < b for a, b in self.beds)
        clip.cut_from = "vocals" if on_bed and music.covered(self.spans, span.start, span.end) else "original"
        clip.music_bed = music.score(self.mix_music, speech.start, speech.end)
        if clip.cut_from == "vocals":
            clip.music_bleed = music.score(self.vocals_music, speech.start, speech.end)
            return self.work.input(VOCALS_WAV)
        clip.music_bleed = clip.music_bed
        return self.work.input(FULL_WAV)


class SliceStage(Stage):
    name = "slice"
    manifest = True

    version = 2  # 2: cut from the vocals only where separation ran; music bed, bleed and singing measured

    def reads(self, settings: Settings) -> tuple[Artifact, ...]:
        return FULL_WAV, SEGMENTS_CSV, MUSIC_NPY, analysis_input(settings), ANALYSIS_WAV, *separation_outputs(settings)

    def inputs(self, work: WorkDir, settings: Settings) -> dict[str, Any]:
        return {"slice": settings.slice.model_dump(), "separated": bool(separation_outputs(settings))}

    def process(self, work: WorkDir, settings: Settings) -> tuple[list[str], dict[str, Any]]:
        cfg = settings.slice
        sources = Sources(work, settings)
        segments = read_segments(work.input(SEGMENTS_CSV))
        loudness = loudness_of(work.input(analysis_input(settings)))
        plan = plan_clips(segments, cfg, loudness, audio.duration(work.input(ANALYSIS_WAV)))
        clips = []
        progress = Progress(f"{work.source_id}: slicing", sum(span.duration for _, span in plan))
        with atomic_dir(work.path(CLIPS_DIR.name)) as tmp_dir:
            for index, (speech, span) in enumerate(plan):
                progress.add(span.duration)
                clip_id = f"{work.source_id}_{index:05d}"
                clip = Clip(
                    clip_id,
                    work.source_id,
                    span.label,
                    span.start,
                    span.end,
                    round(span.end - span.start, 3),
                    f"{CLIPS_DIR.name}/{clip_id}.wav",
                )
                clip.speech_start, clip.speech_end = speech.start, speech.end
                source = sources.measure(clip, speech, span)
                clip.singing = singing.score(
                    write_clip(source, span, tmp_dir / f"{clip_id}.wav", cfg.sample_rate, cfg.channels)
                )
                clips.append(clip)
            manifest = write_manifest(work, self.name, clips)
        if not clips:
            log.warning(
                "%s: no segment labelled %s lasts %.2f s or more; no clips written",
                work.source_id,
                sorted(cfg.wanted_labels()),
                cfg.min_duration,
            )
        seconds = round(sum(c.duration for c in clips), 2)
        from_vocals = sum(1 for c in clips if c.cut_from == "vocals")
        return [CLIPS_DIR.name, manifest], {"clips": len(clips), "clip_seconds": seconds, "from_vocals": from_vocals}
