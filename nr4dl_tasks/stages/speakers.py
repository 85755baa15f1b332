"""Speakers: who speaks in each clip, one voice per clip, and only the wanted voices.

ina's male/female label is not identity, and broadcasts mix hosts, guests,
callers and ads. This stage embeds every clip with Resemblyzer (`voices.py`)
for purity and with `speakers.encoder` (CAM++ by default) for identity, and

1. **purity**: compares the voice before and after every point of a clip; where
   they differ most and their similarity is below `purity_threshold`, the clip
   holds two voices. It is split there (the point placed to 0.08 s with dense
   windows), dropped, or only flagged, as set; pieces are checked again.
   **Turns** (`voice/turns.py`), checked first: rapid turn-taking mixes both
   voices into the averages before and after every point, so a clip's 1 s CAM++
   windows are split into two groups; groups less alike than `turn_threshold`,
   whose audio embedded whole is also less alike than `turn_voice_threshold`,
   are two speakers, and the clip is cut into their runs, without the overlapped
   speech around each change (same `purity_action`), before purity looks at
   each run.
2. **enrolled targets** (`enroll_dir/<name>/` holding a few recordings of each
   wanted voice, any format ffmpeg reads): each target's threshold is set from
   the data (`voice/calibration.py`): impostor trials against a cohort of other
   voices (`cohort_dir`, the other targets, and this file's voices that are not
   the target's), adaptive s-norm, and `false_accept_rate`. Each clip gets the
   best-matching name, its raw and normalised scores, the threshold and
   `speaker_review` when it lies within `review_margin` of it; with
   `keep: target` a clip below it is dropped, with `keep: all` only labelled.
3. **no enrollment**: the file's clips are clustered into voices (average-linkage
   on cosine similarity, as many voices as the similarities say; clips under
   2 s join the nearest voice rather than found their own) and each voice
   is linked to the dataset's speaker registry (`voice/registry.py`), so the
   same voice gets the same id in every episode. Both thresholds are the
   encoder's own unless set (`SpeakerSettings.clustering`): cosine scales differ.

A dropped clip stays in the manifest with `dropped` giving the reason, so the
decision can be inspected; exports skip it. Clips whose ina gender disagrees
with their speaker's (declared in `genders`, else the majority of that
speaker's clips in the file) get `gender_mismatch`.
"""

from __future__ import annotations

import functools
import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from nr4dl_tasks.core import layout, resources
from nr4dl_tasks.core.errors import MediaError, SettingsError
from nr4dl_tasks.core.layout import CLIPS_DIR, DENOISED_DIR, SPLIT_DIR, Artifact
from nr4dl_tasks.core.progress import Progress
from nr4dl_tasks.core.records import Clip, read_clip_audio, read_manifest, write_manifest
from nr4dl_tasks.core.settings import Settings, SpeakerSettings
from nr4dl_tasks.core.stage import Stage
from nr4dl_tasks.core.workdir import WorkDir, atomic_dir, file_sha256
from nr4dl_tasks.dsp import audio
from nr4dl_tasks.voice import calibration, campplus, encoders, turns
from nr4dl_tasks.voice import embedding as voices
from nr4dl_tasks.voice.registry import REGISTRY_NAME, SpeakerRegistry, Voice

log = logging.getLogger("nr4dl")

REFINE_STEP = 8  # frames between candidate change points when placing a change (0.08 s)
MAX_DEPTH = 3  # a clip is split into at most 2**MAX_DEPTH pieces
SHORT_CLIP_SECONDS = 2.0  # clips shorter than this do not found a voice when clustering ...
SHORT_CLIP_SLACK = 0.15  # ... but join one whose similarity is at most this much below the threshold


# --- purity -----------------------------------------------------------------------------------------------------


def coarse_change(vp: voices.VoicePrint) -> tuple[float, int | None]:
    """(purity, window index where the second voice starts), comparing all windows before a point with all after.

    Windows overlap, so only those that end before a window's start count as
    'before' it. A clip too short for one window on each side is pure (1.0).
    """
    best, where = 1.0, None
    for k, start in enumerate(vp.starts):
        left = [j for j, s in enumerate(vp.starts) if s + voices.WINDOW <= start]
        if not left:
            continue
        similarity = float(voices.unit(vp.windows[left]) @ voices.unit(vp.windows[k:]))
        if similarity < best:
            best, where = similarity, k
    return best, where


def place_change(vp: voices.VoicePrint, k: int, threads: int) -> int:
    """The frame of the change near window k: the point whose 1.6 s before and after differ most."""
    n = len(vp.frames)
    lo = max(voices.WINDOW, vp.starts[k] - voices.WINDOW)
    hi = min(n - voices.WINDOW // 2, vp.starts[k] + voices.CLIP_HOP)
    points = list(range(lo, max(lo, hi) + 1, REFINE_STEP))
    emb = voices.embed_windows(vp.frames, [p - voices.WINDOW for p in points] + points, threads)
    similarity = np.sum(emb[: len(points)] * emb[len(points) :], axis=1)
    return points[int(np.argmin(similarity))]


@dataclass
class Piece:
    """A single-voice part of a clip: sample range at 16 kHz and its voiceprint."""

    start: int
    end: int
    vp: voices.VoicePrint
    purity: float
    turn_similarity: float = 1.0  # voice/turns.py: the two window groups' similarity (1.0: not checked)
    turn_voice_similarity: float = 1.0  # voice/turns.py: the two groups' audio embedded whole (1.0: not checked)


def single_voice_pieces(
    wav: np.ndarray, cfg: SpeakerSettings, min_samples: int, threads: int, depth: int = 0
) -> list[Piece]:
    """Split 16 kHz audio at speaker changes until every piece is pure (pieces shorter than the minimum go)."""
    vp = voices.voiceprint(wav, threads)
    purity, k = coarse_change(vp)
    if purity >= cfg.purity_threshold or k is None or depth >= MAX_DEPTH:
        return [Piece(0, len(wav), vp, purity)]
    cut = place_change(vp, k, threads) * int(voices.RATE * voices.FRAME_SECONDS)
    pieces = []
    for lo, hi in ((0, cut), (cut, len(wav))):
        if hi - lo >= min_samples:
            pieces += [
                Piece(p.start + lo, p.end + lo, p.vp, p.purity)
                for p in single_voice_pieces(wav[lo:hi], cfg, min_samples, threads, depth + 1)
            ]
    return pieces


def find_turns(wav: np.ndarray, cfg: SpeakerSettings, models_dir: Path, threads: int) -> turns.Turns:
    """The speaker turns of 16 kHz audio from its 1 s CAM++ windows (voice/turns.py). A clip too short for two
    voices' windows is one voice without a window embedded."""
    duration = len(wav) / voices.RATE
    if campplus.window_count(len(wav), turns.WINDOW, turns.HOP) < turns.SPLIT_WINDOWS:
        return turns.Turns.one_voice(duration)
    emb = campplus.embed_windows(wav, turns.WINDOW, turns.HOP, models_dir, threads)
    found = turns.find_turns(emb, duration, cfg.turn_threshold)
    embed = functools.partial(campplus.embed, models_dir=models_dir, threads=threads)
    return turns.verify(found, wav, voices.RATE, embed, cfg.turn_voice_threshold)


def pure_pieces(wav: np.ndarray, cfg: SpeakerSettings, min_samples: int, models_dir: Path, threads: int) -> list[Piece]:
    """The single-voice pieces of a clip: cut at its speaker turns first (which leaves the overlap around each
    change out, where a purity cut would keep it), then each turn split by purity; pieces under `min_samples`
    go."""
    found = find_turns(wav, cfg, models_dir, threads)
    pieces = []
    for a, b in found.spans:
        lo, hi = int(a * voices.RATE), int(b * voices.RATE)
        if hi - lo >= min_samples:
            pieces += [
                Piece(p.start + lo, p.end + lo, p.vp, p.purity, found.similarity, found.voice_similarity)
                for p in single_voice_pieces(wav[lo:hi], cfg, min_samples, threads)
            ]
    return pieces


# --- enrollment ---------------------------------------------------------------------------------------------------


def enrollment_files(enroll_dir: Path) -> dict[str, list[Path]]:
    """name -> reference recordings, from one sub-folder per target speaker."""
    if not enroll_dir.is_dir():
        raise SettingsError(f"speakers.enroll_dir {enroll_dir} is not a folder")
    targets = {
        d.name: sorted(f for f in d.iterdir() if f.is_file() and not f.name.startswith("."))
        for d in sorted(enroll_dir.iterdir())
        if d.is_dir() and not d.name.startswith(".")
    }
    empty = [name for name, files in targets.items() if not files]
    if not targets or empty:
        raise SettingsError(
            f"speakers.enroll_dir {enroll_dir} needs one sub-folder of recordings per target "
            f"speaker{f'; empty: {empty}' if empty else ''}"
        )
    return targets


@functools.lru_cache(maxsize=4096)
def _reference_embedding(path: Path, sha256: str, model: encoders.VoiceModel) -> np.ndarray:
    """One reference recording's voice (cached per process by content); MediaError when it is unusable."""
    with tempfile.TemporaryDirectory(prefix="nr4dl-enroll-") as tmp:
        wav_path = Path(tmp) / "ref.wav"
        audio.convert(path, wav_path, voices.RATE, 1)
        wav, _ = sf.read(str(wav_path), dtype="float32")
    if len(wav) < voices.RATE * 0.5 or not wav.any():
        raise MediaError(f"{path}: holds less than 0.5 s of sound")
    return model.embed(wav)


def cohort_files(cohort_dir: Path) -> list[Path]:
    """The open cohort's recordings: every file under the folder (sub-folders too), hidden ones left out."""
    if not cohort_dir.is_dir():
        raise SettingsError(f"speakers.cohort_dir {cohort_dir} is not a folder")
    return sorted(f for f in cohort_dir.rglob("*") if f.is_file() and not any(p.startswith(".") for p in f.parts[-2:]))


def cohort_voices(cohort_dir: Path | None, model: encoders.VoiceModel) -> np.ndarray:
    """(n, d) embeddings of the open cohort's usable recordings (none without a cohort_dir)."""
    found = []
    for f in cohort_files(cohort_dir) if cohort_dir else []:
        try:
            found.append(_reference_embedding(f, file_sha256(f), model))
        except MediaError as exc:
            log.warning("speakers cohort: skipped %s", exc)
    return np.array(found)  # (0,) when there is none: calibration reshapes it to the encoder's width


def enrolled_voices(enroll_dir: Path, model: encoders.VoiceModel) -> dict[str, np.ndarray]:
    """name -> (n, d) embeddings of its usable reference recordings.

    A file that is not usable audio (notes.txt, Thumbs.db) is skipped with a
    warning; a target left without any usable recording is an error.
    """
    voices_by_name = {}
    for name, files in enrollment_files(enroll_dir).items():
        found, skipped = [], []
        for f in files:
            try:
                found.append(_reference_embedding(f, file_sha256(f), model))
            except MediaError as exc:
                skipped.append(str(exc))
        if skipped:
            log.warning("enrollment of %s: skipped %d file(s): %s", name, len(skipped), "; ".join(skipped))
        if not found:
            raise SettingsError(
                f"enrollment recording unusable: no file in {enroll_dir / name} is usable audio ({'; '.join(skipped)})"
            )
        voices_by_name[name] = np.array(found)
    return voices_by_name


def voice_model(settings: Settings) -> encoders.VoiceModel:
    """The encoder speakers.encoder names, with this task's threads."""
    return encoders.VoiceModel(
        settings.speakers.encoder, settings.resolve(settings.paths.models_dir), resources.threads(settings)
    )


# --- clustering ---------------------------------------------------------------------------------------------------


def _agglomerate(embeddings: np.ndarray, threshold: float) -> np.ndarray:
    """Average-linkage clusters, merging while the mean cosine similarity between them is at least `threshold`."""
    if len(embeddings) == 1:
        return np.zeros(1, dtype=int)
    from scipy.cluster.hierarchy import fcluster, linkage

    tree = linkage(embeddings.astype(np.float64), method="average", metric="cosine")
    return fcluster(tree, t=1 - threshold, criterion="distance")


def cluster(embeddings: np.ndarray, durations: list[float], threshold: float) -> list[int]:
    """Voice label per clip, numbered by first appearance (the same clips give the same labels).

    The embedding of a clip shorter than SHORT_CLIP_SECONDS rests on one
    zero-padded window and is too noisy to found a voice of its own: such clips
    join the nearest voice found among the longer clips when they are within
    SHORT_CLIP_SLACK of the threshold; the rest are clustered among themselves
    with the threshold lowered by the same slack.
    """
    n = len(embeddings)
    raw = np.full(n, -1)
    long = [i for i in range(n) if durations[i] >= SHORT_CLIP_SECONDS] or list(range(n))
    raw[long] = _agglomerate(embeddings[long], threshold)
    groups = sorted(set(raw[long]))
    centroids = np.array([voices.unit(embeddings[raw == g]) for g in groups])
    rest = []
    for i in set(range(n)) - set(long):
        similarity = centroids @ embeddings[i]
        best = int(np.argmax(similarity))
        if similarity[best] >= threshold - SHORT_CLIP_SLACK:
            raw[i] = groups[best]
        else:
            rest.append(i)
    rest.sort()
    if rest:
        raw[rest] = _agglomerate(embeddings[rest], threshold - SHORT_CLIP_SLACK) + max(groups) + 1
    order: dict[int, int] = {}
    return [order.setdefault(int(label), len(order)) for label in raw]


def cluster_voices(prints: np.ndarray, labels: list[int]) -> list[Voice]:
    """One Voice per label of `cluster` (labels 0, 1, ... in order): its clips' mean direction and count, what the
    speaker registry links across files."""
    lab = np.array(labels)
    return [Voice(voices.unit(prints[lab == g]), labels.count(g)) for g in sorted(set(labels))]


# --- the stage ----------------------------------------------------------------------------------------------------


def _gender_mismatch(clips: list[Clip], declared: Mapping[str, str]) -> None:
    by_speaker: dict[str, list[Clip]] = {}
    for clip in clips:
        if clip.speaker and clip.label in ("male", "female"):
            by_speaker.setdefault(clip.speaker, []).append(clip)
    for speaker, group in by_speaker.items():
        labels = [c.label for c in group]
        expected = declared.get(speaker) or max(set(labels), key=lambda g: (labels.count(g), g))
        for clip in group:
            clip.extra["gender_mismatch"] = clip.label != expected


def _name_targets(settings: Settings, clips: list[Clip], ids: np.ndarray, labels: list[int]) -> dict[str, Any]:
    """Each clip's best target by normalised score against thresholds calibrated on this file (module docstring)."""
    cfg = settings.speakers
    assert cfg.enroll_dir is not None
    model = voice_model(settings)
    recordings = enrolled_voices(settings.resolve(cfg.enroll_dir), model)
    open_cohort = cohort_voices(settings.resolve(cfg.cohort_dir) if cfg.cohort_dir else None, model)
    try:
        targets = calibration.calibrate_targets(
            recordings, open_cohort, ids, labels, cfg.false_accept_rate, cfg.cohort_top
        )
    except ValueError as exc:  # a file of one voice, no cohort_dir and one target: nothing to compare with
        log.warning("speakers: %s; no clip is named (put recordings of other voices in speakers.cohort_dir)", exc)
        for clip in clips:
            clip.speaker, clip.speaker_review = None, True
            if cfg.keep == "target":
                clip.dropped = "speakers: no other voices to set the targets' thresholds (speakers.cohort_dir)"
        return {"speakers": {}, "mode": "enrolled", "targets": None}
    raw, norm = calibration.score_clips(targets, ids)
    thresholds = np.array([t.threshold for t in targets])
    best, accepted = calibration.decide(norm, thresholds)
    for i, clip in enumerate(clips):
        k, target = int(best[i]), targets[int(best[i])]
        clip.speaker = target.name if accepted[i] else None
        clip.speaker_score = round(float(raw[i, k]), 3)
        clip.speaker_norm = round(float(norm[i, k]), 3)
        clip.speaker_threshold = round(target.threshold, 3)
        # a threshold resting on fewer than MIN_COHORT other voices is a guess: every decision is for review
        clip.speaker_review = bool(abs(norm[i, k] - target.threshold) <= cfg.review_margin or not target.reliable)
        if not accepted[i] and cfg.keep == "target":
            clip.dropped = (
                f"speakers: closest target {target.name} at {norm[i, k]:.2f} (normalised), below its "
                f"threshold {target.threshold:.2f}"
            )
    calibrated = {
        t.name: {
            "threshold": round(t.threshold, 3),
            "expected_recall": t.expected_recall,
            "cohort": len(t.cohort),
            "reliable": t.reliable,
            "clips": sum(c.speaker == t.name for c in clips),
        }
        for t in targets
    }
    for name, row in calibrated.items():
        recall = row["expected_recall"]
        if recall is not None and recall < 0.5:
            log.warning("speakers: %s's threshold keeps %.0f%% of its enrollment recordings", name, 100 * recall)
    return {"speakers": {n: row["clips"] for n, row in calibrated.items()}, "mode": "enrolled", "targets": calibrated}


class SpeakersStage(Stage):
    name = "speakers"
    manifest = True
    # 2: each target's threshold is calibrated from the data; 3: turns inside a clip (voice/turns.py);
    # 4: a turn cut checked on each voice's audio embedded whole (turn_voice_threshold); 5: clusters and the
    # registry on speakers.encoder's embeddings, at that encoder's thresholds
    version = 5

    def reads(self, settings: Settings) -> tuple[Artifact, ...]:
        return layout.manifest("denoise"), CLIPS_DIR, DENOISED_DIR

    def inputs(self, work: WorkDir, settings: Settings) -> dict[str, Any]:
        cfg = settings.speakers
        enrolled = None
        if cfg.enroll_dir:
            files = enrollment_files(settings.resolve(cfg.enroll_dir))
            enrolled = {name: [file_sha256(f) for f in paths] for name, paths in files.items()}
        cohort = [file_sha256(f) for f in cohort_files(settings.resolve(cfg.cohort_dir))] if cfg.cohort_dir else None
        return {
            "speakers": cfg.model_dump(),
            "enrolled": enrolled,
            "cohort": cohort,
            "min_duration": settings.slice.min_duration,
        }

    def process(self, work: WorkDir, settings: Settings) -> tuple[list[str], dict[str, Any]]:
        cfg = settings.speakers
        threads = resources.threads(settings)
        models_dir = settings.resolve(settings.paths.models_dir)
        began = time.monotonic()
        clips = read_manifest(work, "denoise")
        min_samples = int(settings.slice.min_duration * voices.RATE)
        out: list[Clip] = []
        ids: list[np.ndarray] = []  # speakers.encoder's embedding per kept, labelled clip in `out`
        labelled: list[Clip] = []
        splits = 0
        progress = Progress(f"{work.source_id}: speakers", sum(c.duration for c in clips))
        with atomic_dir(work.path(SPLIT_DIR.name)) as split_dir:
            for clip in clips:
                progress.add(clip.duration)
                if clip.dropped:
                    out.append(clip)
                    continue
                source_path = clip.audio(cfg.input)
                wav = self._read16k(work, source_path)
                if not wav.any():
                    clip.dropped = "speakers: silent clip"
                    out.append(clip)
                    continue
                if cfg.purity_action == "flag":
                    pieces = [self._whole(wav, cfg, models_dir, threads)]
                else:
                    pieces = pure_pieces(wav, cfg, min_samples, models_dir, threads)
                if len(pieces) == 1 and (pieces[0].start, pieces[0].end) == (0, len(wav)):  # kept whole
                    clip.extra["purity"] = round(pieces[0].purity, 3)
                    clip.extra["turn_similarity"] = round(pieces[0].turn_similarity, 3)
                    clip.extra["turn_voice_similarity"] = round(pieces[0].turn_voice_similarity, 3)
                    out.append(clip)
                    labelled.append(clip)
                    ids.append(self._identity(settings, wav, pieces[0]))
                elif cfg.purity_action == "drop" or not pieces:
                    clip.dropped = "speakers: more than one voice" + (
                        "" if pieces else ", no single-voice part long enough"
                    )
                    out.append(clip)
                else:
                    splits += 1
                    clip.dropped = f"speakers: split into {len(pieces)} single-voice clip(s)"
                    out.append(clip)
                    for index, piece in enumerate(pieces):
                        child = self._child(work, clip, piece, index, split_dir)
                        out.append(child)
                        labelled.append(child)
                        ids.append(self._identity(settings, wav, piece))
            info = self._assign(work, settings, labelled, np.array(ids))
            _gender_mismatch(labelled, cfg.genders)
            manifest = write_manifest(work, self.name, out)
        kept = [c for c in out if c.kept]
        seconds = sum(c.duration for c in clips)
        elapsed = time.monotonic() - began
        info.update(
            clips_in=len(clips),
            clips_kept=len(kept),
            split=splits,
            clip_seconds_per_second=round(seconds / elapsed, 1) if elapsed > 0 and seconds else None,
        )
        log.info("%s: %d of %d clips kept, %d split (%s)", work.source_id, len(kept), len(out), splits, info)
        return [SPLIT_DIR.name, manifest], info

    @staticmethod
    def _read16k(work: WorkDir, rel: str) -> np.ndarray:
        samples, rate = read_clip_audio(work, rel, "denoise")
        return audio.resample(audio.mono(samples), rate, voices.RATE)

    @staticmethod
    def _identity(settings: Settings, wav: np.ndarray, piece: Piece) -> np.ndarray:
        """A piece's embedding by speakers.encoder (resemblyzer's is at hand from purity)."""
        if settings.speakers.encoder == "resemblyzer":
            return piece.vp.embedding
        return voice_model(settings).embed(wav[piece.start : piece.end])

    @staticmethod
    def _whole(wav: np.ndarray, cfg: SpeakerSettings, models_dir: Path, threads: int) -> Piece:
        """The whole clip with its purity and turn similarity (purity_action: flag)."""
        vp = voices.voiceprint(wav, threads)
        found = find_turns(wav, cfg, models_dir, threads)
        return Piece(0, len(wav), vp, coarse_change(vp)[0], found.similarity, found.voice_similarity)

    @staticmethod
    def _child(work: WorkDir, parent: Clip, piece: Piece, index: int, split_dir: Path) -> Clip:
        """A piece of `parent` as a clip of its own, cut from the parent's original and denoised audio."""
        child_id = f"{parent.id}_p{index}"
        start_s, end_s = piece.start / voices.RATE, piece.end / voices.RATE
        extra = {k: v for k, v in parent.extra.items() if k not in ("dropped", "speech_start", "speech_end")}
        extra.update(
            split_from=parent.id,
            split_at=[round(parent.start + start_s, 3), round(parent.start + end_s, 3)],
            purity=round(piece.purity, 3),
            turn_similarity=round(piece.turn_similarity, 3),
            turn_voice_similarity=round(piece.turn_voice_similarity, 3),
        )
        for key, rel in (("path", parent.path), ("denoised_path", parent.denoised_path)):
            if rel is None or (key == "denoised_path" and rel == parent.path):  # not denoised: one file is enough
                extra[key] = extra.get("path")
                continue
            suffix = "" if key == "path" else ".denoised"
            samples, src_rate = audio.read_span(work.path(rel), start_s, end_s)
            sf.write(str(split_dir / f"{child_id}{suffix}.wav"), samples, src_rate, subtype="PCM_16")
            extra[key] = f"{SPLIT_DIR.name}/{child_id}{suffix}.wav"
        path = extra.pop("path")
        return Clip(
            child_id,
            parent.source,
            parent.label,
            round(parent.start + start_s, 3),
            round(parent.start + end_s, 3),
            round(end_s - start_s, 3),
            path,
            extra,
        )

    @staticmethod
    def _assign(work: WorkDir, settings: Settings, clips: list[Clip], identities: np.ndarray) -> dict[str, Any]:
        """Name every clip's voice: by enrolled targets, else by clustering and the registry."""
        cfg = settings.speakers
        if not clips:
            return {"speakers": {}}
        cluster_threshold, link_threshold = cfg.clustering()
        labels = cluster(identities, [c.duration for c in clips], cluster_threshold)
        if cfg.enroll_dir:
            return _name_targets(settings, clips, identities, labels)
        groups = sorted(set(labels))
        found = cluster_voices(identities, labels)
        registry = SpeakerRegistry(settings.resolve(settings.paths.work_dir) / REGISTRY_NAME, cfg.encoder)
        ids = registry.link(work.source_id, found, link_threshold)
        for clip, label, emb in zip(clips, labels, identities, strict=True):
            speaker, _ = ids[label]
            clip.speaker, clip.speaker_score = speaker, round(float(emb @ found[label].centroid), 3)
        return {"speakers": {ids[g][0]: found[g].clips for g in groups}, "mode": "clustered"}
