"""The split of ../shared/media's speakers into a tuning set and a held-out set, and programmes mixed from them.

Used by tests/test_speaker_calibration.py and bench/speakers.py, so both measure on the same speakers:

* **tuning** (the defaults were chosen on these; they also serve as the open
  impostor cohort, `speakers.cohort_dir`, when held-out speakers are measured):
  LibriSpeech 1688 1998 2033 3080, VCTK p225 p226 and the nine VCTK speakers with
  one utterance, the Korean emotiontts speakers ada adc ava avb ema emb emf emg lmy
  nea, and the music beds Hungarian Dance and Sugar Plum Fairy;
* **held-out** (figures are quoted on these only): VCTK p227 p228, the Korean
  speakers neb nec nek nel nem pfa pfb pfc pma pmb pmc (5 F, 6 M), and the music beds
  Lets Go Fishin and Vibe Ace.

A programme is a set of hosts (the enrolled targets: their first ENROLL
utterances, clean, are the enrollment recordings) and guests (impostors), each
remaining utterance one clip with a music bed under it at MUSIC_SNR_DB, as a
radio programme's talk over a jingle.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from nr4dl_tasks.core.settings import SpeakerSettings
from nr4dl_tasks.dsp import audio
from nr4dl_tasks.stages.speakers import cluster, cluster_voices
from nr4dl_tasks.voice import calibration
from nr4dl_tasks.voice.registry import SpeakerRegistry

MEDIA = (Path(__file__).resolve().parent.parent / ".." / "shared" / "media").resolve()
RATE = 16000
ENROLL = 3
MUSIC_SNR_DB = 12.0

LIBRISPEECH = ("1688", "1998", "2033", "3080")
VCTK_TUNING = ("p225", "p226", "p230", "p233", "p236", "p243", "p244", "p254", "p258", "p259", "p273")
VCTK_HELD_OUT = ("p227", "p228")
KOREAN_TUNING = ("ada", "adc", "ava", "avb", "ema", "emb", "emf", "emg", "lmy", "nea")
KOREAN_HELD_OUT = ("neb", "nec", "nek", "nel", "nem", "pfa", "pfb", "pfc", "pma", "pmb", "pmc")
TUNING = LIBRISPEECH + VCTK_TUNING + KOREAN_TUNING
HELD_OUT = VCTK_HELD_OUT + KOREAN_HELD_OUT
BEDS_TUNING = ("Hungarian_Dance", "Sugar_Plum")
BEDS_HELD_OUT = ("Lets_Go_Fishin", "Vibe_Ace")


def utterances(speaker: str) -> list[Path]:
    """A speaker's recordings, in name order."""
    if speaker in LIBRISPEECH:
        folder = MEDIA / "speakers" / speaker
    elif speaker in VCTK_TUNING + VCTK_HELD_OUT:
        folder = MEDIA / "speakers_vctk" / speaker
    else:
        folder = MEDIA / "korean" / "emotiontts" / speaker
    return sorted(folder.glob("*.flac"))


@functools.cache
def load(path: Path) -> np.ndarray:
    samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return audio.resample(audio.mono(samples), rate, RATE)


@functools.cache
def bed(name: str) -> np.ndarray:
    (path,) = [p for p in (MEDIA / "music").glob("*.ogg") if name in p.name]
    return load(path)


def with_music(speech: np.ndarray, bed_name: str, seed: int) -> np.ndarray:
    """`speech` with a stretch of the bed under it (from a seeded offset), MUSIC_SNR_DB below the speech."""
    music = bed(bed_name)
    start = np.random.default_rng(seed).integers(0, len(music) - len(speech))
    part = music[start : start + len(speech)]
    gain = np.sqrt(np.mean(speech**2) / max(float(np.mean(part**2)), 1e-12) / 10 ** (MUSIC_SNR_DB / 10))
    return (speech + gain * part).astype(np.float32)


@dataclass(frozen=True)
class Programme:
    hosts: tuple[str, ...]
    guests: tuple[str, ...]

    def enrollment(self, host: str) -> list[Path]:
        return utterances(host)[:ENROLL]

    def clips(self) -> list[tuple[str, Path]]:
        """(true speaker, recording) of every clip: the hosts' other utterances and all of the guests'."""
        return [(s, f) for s in self.hosts for f in utterances(s)[ENROLL:]] + [
            (s, f) for s in self.guests for f in utterances(s)
        ]


def held_out_programmes() -> list[Programme]:
    """Each held-out Korean speaker hosts once with the next as co-host and the three after as guests
    (cyclically); the two held-out VCTK speakers host an English programme with three Korean guests."""
    k = KOREAN_HELD_OUT
    korean = [
        Programme((k[i], k[(i + 1) % len(k)]), tuple(k[(i + j) % len(k)] for j in (2, 3, 4))) for i in range(len(k))
    ]
    return [*korean[::2], Programme(VCTK_HELD_OUT, k[:3])]


def tuning_cohort(leave_out: tuple[str, ...] = ()) -> list[Path]:
    """One recording in three of every tuning speaker (but those left out): the open impostor cohort."""
    return [f for s in TUNING if s not in leave_out for f in utterances(s)[::3]]


def tuning_programmes() -> list[Programme]:
    """Programmes of the Korean tuning speakers built as held_out_programmes' (for choosing the defaults; their
    cohort leaves their own speakers out)."""
    k = KOREAN_TUNING[2:]  # ada and adc have 5 utterances each
    return [
        Programme((k[i], k[(i + 1) % len(k)]), tuple(k[(i + j) % len(k)] for j in (2, 3, 4))) for i in range(len(k))
    ]


# The tuning speakers ema, lmy and nea are most likely one reader under three codes: both encoders place their
# centroids closer than any other pair (CAM++ 0.95-0.97, the next pair 0.85, held-out pairs at most 0.80;
# Resemblyzer 0.98-0.99). Clustering is scored with them as one voice.
SAME_VOICE = {"lmy": "ema", "nea": "ema"}


def programme_files(programmes: list[Programme], guest_clips: int | None = None) -> list[list[tuple[str, Path]]]:
    """Each programme as one file of (voice, recording) for clustering across files. A voice's recordings are
    dealt out between the programmes it speaks in, so no recording is in two files and linking must match
    different utterances of a voice; `guest_clips` keeps only that many of each guest's (a guest says little)."""
    slots: dict[str, list[int]] = {}
    for n, prog in enumerate(programmes):
        for speaker in (*prog.hosts, *prog.guests):
            slots.setdefault(speaker, []).append(n)
    files = []
    for n, prog in enumerate(programmes):
        clips = []
        for speaker in (*prog.hosts, *prog.guests):
            dealt = utterances(speaker)[slots[speaker].index(n) :: len(slots[speaker])]
            if guest_clips is not None and speaker in prog.guests:
                dealt = dealt[:guest_clips]
            clips += [(SAME_VOICE.get(speaker, speaker), f) for f in dealt]
        files.append(clips)
    return files


Embed = Callable[[Path, bool], np.ndarray]  # (recording, with a music bed) -> unit embedding


def music_clip(path: Path) -> np.ndarray:
    """A recording with a bed under it (a held-out one for a held-out speaker), the same in every run."""
    index = zlib.crc32(path.name.encode()) % 1000
    beds = BEDS_TUNING if path.parent.name in TUNING else BEDS_HELD_OUT
    return with_music(load(path), beds[index % 2], index)


def ids_across_files(
    files: list[list[tuple[str, Path]]], emb: Embed, cfg: SpeakerSettings, registry: SpeakerRegistry
) -> list[tuple[str, str]]:
    """(true voice, registry id) of every clip of `files` (programme_files), each file's clips (music under
    each) clustered and linked through `registry` as the speakers stage does without enrollment."""
    cluster_threshold, link_threshold = cfg.clustering()
    pairs: list[tuple[str, str]] = []
    for n, clips in enumerate(files):
        truth, paths = zip(*clips, strict=True)
        prints = np.array([emb(f, True) for f in paths])
        labels = cluster(prints, [len(load(f)) / RATE for f in paths], cluster_threshold)
        ids = registry.link(f"file{n}", cluster_voices(prints, labels), link_threshold)
        pairs += [(voice, ids[label][0]) for voice, label in zip(truth, labels, strict=True)]
    return pairs


@dataclass(frozen=True)
class Outcome:
    """One host's decisions in a programme."""

    target: str
    threshold: float
    precision: float
    recall: float
    kept: int
    review: int


def evaluate(prog: Programme, emb: Embed, cfg: SpeakerSettings) -> list[Outcome]:
    """Calibrate the hosts as the speakers stage does (the open cohort, the other host, and the programme's other
    voices found by clustering its clips' embeddings, `emb` being cfg.encoder's) and score every clip."""
    files = [f for _, f in prog.clips()]
    durations = [len(load(f)) / RATE for f in files]
    clips = np.array([emb(f, True) for f in files])
    labels = cluster(clips, durations, cfg.clustering()[0])
    recordings = {h: np.array([emb(f, False) for f in prog.enrollment(h)]) for h in prog.hosts}
    open_cohort = np.array([emb(f, False) for f in tuning_cohort(leave_out=prog.hosts + prog.guests)])
    targets = calibration.calibrate_targets(
        recordings, open_cohort, clips, labels, cfg.false_accept_rate, cfg.cohort_top
    )
    _, norm = calibration.score_clips(targets, clips)
    best, accepted = calibration.decide(norm, np.array([t.threshold for t in targets]))
    truth = [s for s, _ in prog.clips()]
    out = []
    for k, cal in enumerate(targets):
        chosen = [i for i in range(len(truth)) if accepted[i] and best[i] == k]
        hits = sum(truth[i] == cal.name for i in chosen)
        near = int(np.sum(np.abs(norm[:, k] - cal.threshold) <= cfg.review_margin))
        out.append(
            Outcome(
                cal.name, cal.threshold, hits / max(1, len(chosen)), hits / truth.count(cal.name), len(chosen), near
            )
        )
    return out


# --- clips with speaker turns, built from the speakers' utterances ---------------------------------------------

TURN_SECONDS = (1.5, 4.0)  # the length of each turn of a rapid exchange, drawn uniformly
OVERLAP_SECONDS = 1.0  # two voices at once in an overlap clip


def trimmed(path: Path) -> np.ndarray:
    """A recording without its leading and trailing quiet (20 ms frames 40 dB below the loudest)."""
    wav = load(path)
    frame = RATE // 50
    energy = np.array([np.mean(wav[i : i + frame] ** 2) for i in range(0, len(wav) - frame + 1, frame)])
    loud = np.flatnonzero(energy > energy.max() * 1e-4)
    return wav[loud[0] * frame : (loud[-1] + 1) * frame]


def _speech(speaker: str) -> np.ndarray:
    """A speaker's utterances, trimmed and back to back, at -23 dBFS RMS (so two voices mix at equal level)."""
    wav = np.concatenate([trimmed(f) for f in utterances(speaker)])
    return (wav * 10 ** (-23 / 20) / max(float(np.sqrt(np.mean(wav**2))), 1e-9)).astype(np.float32)


def turn_clip(a: str, b: str, seed: int, turns: int = 4) -> tuple[np.ndarray, list[float]]:
    """A rapid exchange a, b, a, b... (each turn TURN_SECONDS long, cut from a seeded point of the speaker's
    speech) and the true change times in seconds."""
    rng = np.random.default_rng(seed)
    parts, changes, t = [], [], 0.0
    for i in range(turns):
        speech = _speech((a, b)[i % 2])
        n = int(rng.uniform(*TURN_SECONDS) * RATE)
        start = int(rng.integers(0, len(speech) - n))
        parts.append(speech[start : start + n])
        t += n / RATE
        changes.append(t)
    return np.concatenate(parts), changes[:-1]


def overlap_clip(a: str, b: str, seed: int) -> tuple[np.ndarray, tuple[float, float]]:
    """4 s of a, then 4 s of b starting OVERLAP_SECONDS before a ends (both at once), and that overlap's span."""
    rng = np.random.default_rng(seed)
    first, second = (_speech(s) for s in (a, b))
    n = 4 * RATE
    x, y = (
        s[o : o + n] for s, o in ((first, rng.integers(0, len(first) - n)), (second, rng.integers(0, len(second) - n)))
    )
    start = n - int(OVERLAP_SECONDS * RATE)
    wav = np.zeros(start + n, np.float32)
    wav[:n] += x
    wav[start:] += y
    return wav, (start / RATE, n / RATE)


def one_voice_clip(speaker: str, seed: int) -> np.ndarray:
    """About 8 s of one speaker's speech (the same kind of cut as a turn clip's, for false changes)."""
    speech = _speech(speaker)
    start = int(np.random.default_rng(seed).integers(0, len(speech) - 8 * RATE))
    return speech[start : start + 8 * RATE]


def speaker_pairs(speakers: tuple[str, ...]) -> list[tuple[str, str]]:
    """Each speaker with the next (cyclically): the pairs of a turn or overlap clip."""
    return [(speakers[i], speakers[(i + 1) % len(speakers)]) for i in range(len(speakers))]
