"""The work folder's layout: every file a stage writes there, which stage writes it, and which audio is read when.

Stages never import each other. What one stage needs of another is a file in the
work folder, named here once, together with the stage that writes it. A stage
lists the artifacts it opens (`Stage.reads`); the pipeline derives from those
which stages come before it, and `WorkDir.input` refuses an artifact the stage
did not list, so the list cannot drift from the code.

The "which audio" rules (the mix or the vocals for segmentation, what a clip may
be cut from) are written here once, for every stage that applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nr4dl_tasks.core.settings import Settings


@dataclass(frozen=True)
class Artifact:
    """One file or folder of a work folder (`name`, relative to it), written by the stage `stage`."""

    name: str
    stage: str


# Written before any stage runs, by the pipeline's open_work; the ingest stage reads and fingerprints it.
SOURCE_JSON = Artifact("source.json", "ingest")
ANALYSIS_WAV = Artifact("audio_16k.wav", "ingest")  # mono, for segmentation and loudness
FULL_WAV = Artifact("audio_44k.wav", "ingest")  # stereo at Spleeter's rate; clips are cut from it without separation
ANALYSIS_RATE = 16000  # inaSpeechSegmenter's features assume it
FULL_RATE = 44100  # Spleeter's training rate

SEGMENTS_CSV = Artifact("segments.csv", "segment")
MUSIC_NPY = Artifact("music.npy", "segment")  # ina's music posterior per 20 ms decision (dsp/music.py)
SEGMENT_VOCALS_WAV = Artifact("segment_vocals_16k.wav", "segment")  # only with segment.input: vocals

# Silent outside the separated spans; `separated.json` lists them and the speech regions they cover.
VOCALS_WAV = Artifact("vocals.wav", "separate")
ACCOMPANIMENT_WAV = Artifact("accompaniment.wav", "separate")
VOCALS_ANALYSIS_WAV = Artifact("vocals_16k.wav", "separate")
VOCALS_MUSIC_NPY = Artifact("vocals_music.npy", "separate")  # the music left in the vocals, per 20 ms
SEPARATED_JSON = Artifact("separated.json", "separate")

CLIPS_DIR = Artifact("clips", "slice")
DENOISED_DIR = Artifact("clips_denoised", "denoise")
SPLIT_DIR = Artifact("clips_split", "speakers")

MANIFESTS_DIR = "manifests"
CLIPS_JSONL = "clips.jsonl"  # a copy of the manifest of the last stage that ran: the file users read
STAMPS_DIR = "stamps"
FAILURE_JSON = "failure.json"  # the stage that last failed here and why; gone once that stage succeeds


def manifest(stage: str) -> Artifact:
    """`manifests/<stage>.jsonl`: the clips as `stage` wrote them."""
    return Artifact(f"{MANIFESTS_DIR}/{stage}.jsonl", stage)


def stamp_name(stage: str) -> str:
    """`stamps/<stage>.json`: the completion stamp of `stage` (fingerprint, outputs, facts)."""
    return f"{STAMPS_DIR}/{stage}.json"


def analysis_input(settings: Settings) -> Artifact:
    """The 16 kHz file to segment: the original mix, or with `segment.input: vocals` the whole file's vocals."""
    return SEGMENT_VOCALS_WAV if settings.segment.input == "vocals" else ANALYSIS_WAV


def separation_outputs(settings: Settings) -> tuple[Artifact, ...]:
    """What the slice stage reads of the separation: nothing when it is off or clips are cut from the original."""
    if settings.separate.mode == "off" or settings.slice.source == "original":
        return ()
    return VOCALS_WAV, VOCALS_MUSIC_NPY, SEPARATED_JSON


def clip_audio(which: str) -> tuple[Artifact, ...]:
    """The folders a clip's audio may lie in after the speakers stage: cut by slice, split by speakers, and with
    'denoised' the denoise stage's output."""
    return (CLIPS_DIR, SPLIT_DIR, DENOISED_DIR) if which == "denoised" else (CLIPS_DIR, SPLIT_DIR)
