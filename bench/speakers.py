"""Benchmark of the speakers stage: encoders' equal error rates, automatic thresholds, speed and purity.

Measured on HELD-OUT speakers only (the split is in tests/speaker_sets.py and printed at the top):
    * equal error rate per encoder: each held-out speaker enrolled with its
      first 3 clean utterances, tested on every other held-out utterance with a
      held-out music bed 12 dB below the speech; raw cosine and s-normalised
      (against the tuning speakers as the open cohort);
    * programmes: two hosts (enrolled) and three guests (impostors) from the
      held-out speakers, every clip over a music bed; each host's threshold is
      calibrated as the stage does (open cohort = tuning speakers, the other host,
      the programme's other voices found by clustering), at the default
      false_accept_rate; precision and recall per host, clips kept, and clips
      within review_margin of the threshold;
    * clustering without enrollment: the programmes as files (a voice's recordings dealt out between
      its files; once with every guest clip, once with GUEST_CLIPS per guest), clustered and linked
      through a speaker registry at the encoder's default thresholds; voices, ids, ids per voice, and
      clips given a wrong id (on tuning programmes ema, lmy and nea count as one voice, SAME_VOICE);
    * encoder speed: x real time of embedding 20 held-out utterances, in this process;
    * turns (voice/turns.py, each cut checked by its two voices embedded whole, those
      similarities printed per kind of mix): rapid exchanges of two held-out speakers (4 turns of
      1.5-4 s each), cut error of each change found and changes missed or false;
      one-voice clips split; overlap mixes (4 s of one, then 4 s of the next
      starting 1 s before the first ends) and the overlapped seconds still inside a
      piece; and the two multi-turn clips of diarization/sample.wav against its rttm
      (not a held-out recording: it was looked at while the turn finder was written);
    * with --stage: x real time of the real stage on a 6-minute file of the 40
      LibriSpeech utterances (tuning speakers; separation and denoising off), and
      purity splits of two LibriSpeech utterances of different speakers back to back.

Usage: .venv/bin/python bench/speakers.py [resemblyzer] [campplus] [--stage] [--tuning] [--turns]
  (--tuning: the programmes and turns tables on tuning speakers instead, to choose the defaults; never quote
  them; --turns: only the turns tables)
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import shutil
import sys
import tempfile
import time
from collections import Counter
from itertools import permutations
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nr4dl_tasks.core import resources
from nr4dl_tasks.core import settings as settings_mod
from nr4dl_tasks.dsp import audio  # noqa: E402
from nr4dl_tasks.pipeline import process_file, run_stage  # noqa: E402
from nr4dl_tasks.stages.speakers import pure_pieces, single_voice_pieces  # noqa: E402
from nr4dl_tasks.voice import calibration, campplus, encoders, turns  # noqa: E402
from nr4dl_tasks.voice import embedding as voices  # noqa: E402
from nr4dl_tasks.voice.registry import REGISTRY_NAME, SpeakerRegistry  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
import speaker_sets as sets  # noqa: E402

MEDIA = (ROOT / ".." / "shared" / "media").resolve()
SPEAKERS = ("1688", "1998", "2033", "3080")
ENROLL = 3
CACHE = "NR4DL_BENCH_CACHE"  # a folder: embeddings kept between runs of this script (for tuning)
THREADS = resources.cores()  # one job on the machine, as with nr4dl process
GUEST_CLIPS = 2  # clips per guest in the second clustering table: a voice heard briefly


def files(speaker: str) -> list[Path]:
    return sorted((MEDIA / "speakers" / speaker).glob("*.flac"))


def load(path: Path) -> np.ndarray:
    samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return audio.resample(audio.mono(samples), rate, voices.RATE)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def stage_speed(tmp: Path) -> list[list[str]]:
    gap = np.zeros(voices.RATE, np.float32)
    episode = tmp / "episode.wav"
    sf.write(str(episode), np.concatenate([x for s in SPEAKERS for f in files(s) for x in (load(f), gap)]), voices.RATE)
    enroll = tmp / "enroll" / "target"
    enroll.mkdir(parents=True)
    for f in files("1998")[:ENROLL]:
        shutil.copy(f, enroll / f.name)
    rows = []
    for mode, extra in (("warm-up", {}), ("clustered", {}), ("enrolled", {"speakers.enroll_dir": str(enroll.parent)})):
        settings = settings_mod.load(
            overrides={
                "paths.work_dir": str(tmp / "work" / mode),
                "separate.mode": "off",
                "denoise.method": "none",
                **extra,
            }
        )
        work, _ = process_file(episode, settings, until="denoise")
        began = time.monotonic()
        result = run_stage("speakers", work, settings)
        wall = time.monotonic() - began
        seconds = audio.duration(work.path("audio_16k.wav"))
        if mode != "warm-up":
            rows.append(
                [
                    mode,
                    f"{seconds:.0f}",
                    f"{wall:.1f}",
                    f"{seconds / wall:.1f}",
                    str(result.info["clips_in"]),
                    str(result.info["clips_kept"]),
                ]
            )
    return rows


def eer(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """The equal error rate: where the share of impostors accepted equals the share of genuine trials rejected."""
    points = np.sort(np.concatenate([genuine, impostor]))
    far = np.array([(impostor >= t).mean() for t in points])
    frr = np.array([(genuine < t).mean() for t in points])
    i = int(np.argmin(np.abs(far - frr)))
    return float((far[i] + frr[i]) / 2)


class Embeddings:
    """Every recording's embedding by one encoder, clean or with a held-out music bed (computed once)."""

    def __init__(self, encoder: encoders.Encoder) -> None:
        self.encoder, self.cache = encoder, {}
        settings = settings_mod.load()
        self.model = encoders.VoiceModel(encoder, settings.resolve(settings.paths.models_dir), THREADS)
        self.store = Path(os.environ[CACHE]) / f"{encoder}.pkl" if os.environ.get(CACHE) else None
        if self.store and self.store.exists():
            self.cache = pickle.loads(self.store.read_bytes())

    def save(self) -> None:
        if self.store:
            self.store.parent.mkdir(parents=True, exist_ok=True)
            self.store.write_bytes(pickle.dumps(self.cache))

    def __call__(self, path: Path, music: bool = False) -> np.ndarray:
        key = (path, music)
        if key not in self.cache:
            wav = sets.music_clip(path) if music else sets.load(path)
            self.cache[key] = self.model.embed(wav)
        return self.cache[key]


def encoder_speed(emb: Embeddings) -> list[str]:
    """x real time of embedding 20 held-out utterances (clean, 90 s or so), after a warm-up; never cached."""
    files = [f for s in sets.KOREAN_HELD_OUT[:4] for f in sets.utterances(s)[:5]]
    emb.model.embed(sets.load(files[0]))
    began = time.monotonic()
    for f in files:
        emb.model.embed(sets.load(f))
    wall = time.monotonic() - began
    seconds = sum(len(sets.load(f)) for f in files) / sets.RATE
    return [f"{seconds:.0f}", f"{wall:.1f}", f"{seconds / wall:.1f}"]


def equal_error_rates(emb: Embeddings) -> list[str]:
    """Raw and s-normalised EER on held-out speakers: each enrolled with 3 clean utterances, tested on every
    held-out utterance with music (not its enrollment ones)."""
    cohort = np.array([emb(f) for f in sets.tuning_cohort()])
    top = settings_mod.SpeakerSettings().cohort_top
    raw_g, raw_i, norm_g, norm_i = [], [], [], []
    tests = [(s, f) for s in sets.HELD_OUT for f in sets.utterances(s)]
    clips = np.array([emb(f, music=True) for _, f in tests])
    for target in sets.HELD_OUT:
        enrolled = sets.utterances(target)[: sets.ENROLL]
        cal = calibration.calibrate(target, np.array([emb(f) for f in enrolled]), cohort, cohort[:0], 0.01, top)
        keep = [i for i, (_, f) in enumerate(tests) if f not in enrolled]
        raw, norm = calibration.score_clips([cal], clips[keep])
        same = np.array([tests[i][0] == target for i in keep])
        raw_g += list(raw[same, 0])
        raw_i += list(raw[~same, 0])
        norm_g += list(norm[same, 0])
        norm_i += list(norm[~same, 0])
    return [
        f"{eer(np.array(raw_g), np.array(raw_i)):.3f}",
        f"{eer(np.array(norm_g), np.array(norm_i)):.3f}",
        f"{len(raw_g)} / {len(raw_i)}",
    ]


def split_programmes() -> list[sets.Programme]:
    """The held-out programmes, or the tuning ones with --tuning."""
    return sets.tuning_programmes() if "--tuning" in sys.argv else sets.held_out_programmes()


def programmes(emb: Embeddings, far: float) -> list[list[str]]:
    """Precision and recall per host of every programme of the split at the automatic threshold."""
    cfg = settings_mod.SpeakerSettings(false_accept_rate=far, encoder=emb.encoder)
    rows = []
    for prog in split_programmes():
        for o in sets.evaluate(prog, emb, cfg):
            programme = f"{'+'.join(prog.hosts)} / {'+'.join(prog.guests)}"
            row = [f"{o.threshold:.2f}", f"{o.precision:.3f}", f"{o.recall:.3f}", str(o.kept), str(o.review)]
            rows.append([f"{o.target} ({programme})", *row])
    return rows


def purity() -> list[list[str]]:
    cfg = settings_mod.SpeakerSettings()
    errors, split, wrong = [], 0, 0
    pairs = list(permutations(SPEAKERS, 2))
    for a, b in pairs:
        first, second = load(files(a)[0]), load(files(b)[1])
        pieces = single_voice_pieces(np.concatenate([first, second]), cfg, voices.RATE, THREADS)
        if len(pieces) == 2:
            split += 1
            errors.append(abs(pieces[0].end - len(first)) / voices.RATE)
    for s in SPEAKERS:
        wav = np.concatenate([load(files(s)[0]), load(files(s)[1])])
        wrong += len(single_voice_pieces(wav, cfg, voices.RATE, THREADS)) != 1
    return [
        [
            f"{split}/{len(pairs)}",
            f"{np.mean(errors):.2f}" if errors else "-",
            f"{np.max(errors):.2f}" if errors else "-",
            f"{wrong}/{len(SPEAKERS)}",
        ]
    ]


TOLERANCE = 1.0  # s: a change found further than this from every true change is false, and the true one missed
SAMPLE_CLIPS = ((6.61, 17.995), (17.895, 30.0))  # the speech clips the pipeline cuts from diarization/sample.wav


class TurnFinder:
    """Turns of a clip by voice/turns.py at the default settings, window embeddings kept between runs (CACHE)."""

    def __init__(self) -> None:
        settings = settings_mod.load()
        self.models_dir = settings.resolve(settings.paths.models_dir)
        self.threshold = settings.speakers.turn_threshold
        self.voice_threshold = settings.speakers.turn_voice_threshold
        self.checked: list[tuple[str, float, float]] = []  # (kind, window similarity, voice similarity) per check
        self.store = Path(os.environ[CACHE]) / "turns.pkl" if os.environ.get(CACHE) else None
        self.cache: dict[tuple[object, ...], np.ndarray] = {}
        if self.store and self.store.exists():
            self.cache = pickle.loads(self.store.read_bytes())

    def __call__(self, key: tuple[object, ...], wav: np.ndarray) -> turns.Turns:
        if key not in self.cache:
            self.cache[key] = campplus.embed_windows(wav, turns.WINDOW, turns.HOP, self.models_dir, THREADS)
            if self.store:
                self.store.parent.mkdir(parents=True, exist_ok=True)
                self.store.write_bytes(pickle.dumps(self.cache))
        found = turns.find_turns(self.cache[key], len(wav) / voices.RATE, self.threshold)
        embed = functools.partial(campplus.embed, models_dir=self.models_dir, threads=THREADS)
        verified = turns.verify(found, wav, voices.RATE, embed, self.voice_threshold)
        if verified.voice_similarity < 1.0:
            self.checked.append((str(key[0]), found.similarity, verified.voice_similarity))
        return verified


def match_changes(true: list[float], found: tuple[float, ...]) -> tuple[list[float], int, int]:
    """(cut errors of the true changes found within TOLERANCE, missed, false), nearest first."""
    errors, used = [], set()
    for t in true:
        near = sorted((abs(f - t), j) for j, f in enumerate(found) if j not in used)
        if near and near[0][0] <= TOLERANCE:
            errors.append(near[0][0])
            used.add(near[0][1])
    return errors, len(true) - len(errors), len(found) - len(used)


def turn_tables(tuning: bool) -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    """Turn changes, one-voice clips and overlap mixes of the held-out (or tuning) speakers, and the similarities
    of the cuts checked (voice/turns.py's `verify`)."""
    finder = TurnFinder()
    if tuning:
        speakers = sets.KOREAN_TUNING + sets.LIBRISPEECH
        pairs = sets.speaker_pairs(sets.KOREAN_TUNING) + sets.speaker_pairs(sets.LIBRISPEECH)
    else:
        speakers, pairs = sets.HELD_OUT, [*sets.speaker_pairs(sets.KOREAN_HELD_OUT), sets.VCTK_HELD_OUT]
    errors: list[float] = []
    missed = false = true = whole = 0
    kept = total = 0.0
    for i, (a, b) in enumerate(pairs):
        wav, changes = sets.turn_clip(a, b, i)
        found = finder(("turn", a, b, i), wav)
        kept, total = kept + sum(e - s for s, e in found.spans), total + len(wav) / voices.RATE
        e, m, f = match_changes(changes, found.changes)
        errors, missed, false, true, whole = (
            errors + e,
            missed + m,
            false + f,
            true + len(changes),
            whole + (not found.two_voices),
        )
    split = sum(finder(("one", s, i), sets.one_voice_clip(s, i)).two_voices for i, s in enumerate(speakers))
    overlap_kept = overlap_total = 0.0
    leaking = 0
    for i, (a, b) in enumerate(pairs):
        wav, (lo, hi) = sets.overlap_clip(a, b, i)
        inside = [max(0.0, min(e, hi) - max(s, lo)) for s, e in finder(("overlap", a, b, i), wav).spans]
        overlap_kept, overlap_total = overlap_kept + sum(inside), overlap_total + hi - lo
        leaking += max(inside, default=0.0) > 0.25
    changes_row = [
        str(len(pairs)),
        str(true),
        str(len(errors)),
        str(missed),
        str(false),
        f"{np.mean(errors):.2f}" if errors else "-",
        f"{np.median(errors):.2f}" if errors else "-",
        f"{np.max(errors):.2f}" if errors else "-",
        str(whole),
        f"{kept / total:.2f}",
    ]
    other_row = [
        f"{split}/{len(speakers)}",
        f"{overlap_kept:.2f} / {overlap_total:.0f}",
        f"{leaking}/{len(pairs)}",
    ]
    return [changes_row], [other_row], checked_rows(finder.checked)


def checked_rows(checked: list[tuple[str, float, float]]) -> list[list[str]]:
    """Per kind of mix: the window and whole-voice similarities of every candidate cut, sorted by the latter."""
    rows = []
    for kind, name in (("turn", "rapid exchange"), ("overlap", "overlap mix"), ("one", "one voice")):
        pairs = sorted((v, w) for k, w, v in checked if k == kind)
        rows.append(
            [
                name,
                str(len(pairs)),
                " ".join(f"{w:.2f}" for _, w in pairs) or "-",
                " ".join(f"{v:.2f}" for v, _ in pairs) or "-",
            ]
        )
    return rows


def turn_speed(finder: TurnFinder) -> list[list[str]]:
    """x real time of the turn finder's windows on 5 held-out one-voice clips (40 s), after a warm-up; never
    cached."""
    clips = [sets.one_voice_clip(s, i) for i, s in enumerate(sets.HELD_OUT[:5])]
    campplus.embed_windows(clips[0][: 2 * voices.RATE], turns.WINDOW, turns.HOP, finder.models_dir, THREADS)
    began = time.monotonic()
    for wav in clips:
        campplus.embed_windows(wav, turns.WINDOW, turns.HOP, finder.models_dir, THREADS)
    wall = time.monotonic() - began
    seconds = sum(len(w) for w in clips) / voices.RATE
    return [[f"{seconds:.0f}", f"{wall:.1f}", f"{seconds / wall:.1f}"]]


def sample_turns() -> list[list[str]]:
    """Pieces the stage's splits make of sample.wav's two multi-turn clips, and how much of each is one speaker."""
    rttm = [line.split() for line in (MEDIA / "diarization" / "sample.rttm").read_text().splitlines()]
    spans = [(float(r[3]), float(r[3]) + float(r[4]), r[7]) for r in rttm]
    wav = load(MEDIA / "diarization" / "sample.wav")
    settings = settings_mod.load()
    rows = []
    for lo, hi in SAMPLE_CLIPS:
        clip = wav[int(lo * voices.RATE) : int(hi * voices.RATE)]
        pieces = pure_pieces(clip, settings.speakers, voices.RATE, settings.resolve(settings.paths.models_dir), THREADS)
        for p in pieces:
            a, b = lo + p.start / voices.RATE, lo + p.end / voices.RATE
            talk: dict[str, float] = {}
            for s, e, who in spans:
                talk[who] = talk.get(who, 0.0) + max(0.0, min(e, b) - max(s, a))
            main = max(talk, key=lambda w: talk[w])
            rows.append(
                [f"{lo:.1f}-{hi:.1f}", f"{a:.2f}-{b:.2f}", main, f"{talk[main] / max(sum(talk.values()), 1e-9):.2f}"]
            )
        if not pieces:
            rows.append([f"{lo:.1f}-{hi:.1f}", "dropped", "-", "-"])
    return rows


def clustering(emb: Embeddings, guest_clips: int | None) -> list[str]:
    """Clustering without enrollment across files: each programme of the split is one file (sets.programme_files:
    no recording in two files), its clips (music under each) clustered and linked through a real speaker registry
    at the encoder's default thresholds, as the stage does. An id counts as right for a clip when that id is its
    voice's most frequent one and that voice is the id's most frequent."""
    cfg = settings_mod.SpeakerSettings(encoder=emb.encoder)
    with tempfile.TemporaryDirectory(prefix="nr4dl-bench-registry-") as tmp:
        registry = SpeakerRegistry(Path(tmp) / REGISTRY_NAME, emb.encoder)
        pairs = sets.ids_across_files(sets.programme_files(split_programmes(), guest_clips), emb, cfg, registry)
    by_voice: dict[str, Counter[str]] = {}
    by_id: dict[str, Counter[str]] = {}
    for voice, sid in pairs:
        by_voice.setdefault(voice, Counter())[sid] += 1
        by_id.setdefault(sid, Counter())[voice] += 1
    voice_id = {v: c.most_common(1)[0][0] for v, c in by_voice.items()}
    id_voice = {i: c.most_common(1)[0][0] for i, c in by_id.items()}
    right = sum(voice_id[v] == i and id_voice[i] == v for v, i in pairs)
    cluster_threshold, link_threshold = cfg.clustering()
    return [
        f"{cluster_threshold} / {link_threshold}",
        "all" if guest_clips is None else str(guest_clips),
        f"{len(by_voice)}",
        f"{len(by_id)}",
        f"{np.mean([len(c) for c in by_voice.values()]):.2f}",
        f"{sum(c.most_common(1)[0][1] for c in by_id.values()) / len(pairs):.3f}",
        f"{1 - right / len(pairs):.3f}",
    ]


def encoder_tables(chosen: list[str], far: float) -> None:
    """Equal error rates, held-out programmes and speed of each chosen encoder."""
    rows, speed, clusters = [], [], []
    which = "tuning" if "--tuning" in sys.argv else "held-out"
    for encoder in chosen:
        emb = Embeddings(encoder)  # type: ignore[arg-type]
        rows.append([encoder, *equal_error_rates(emb)])
        emb.save()
        speed.append([encoder, *encoder_speed(emb)])
        clusters += [[encoder, *clustering(emb, guest_clips)] for guest_clips in (None, GUEST_CLIPS)]
        print(f"## {encoder}: {which} programmes, false_accept_rate {far}, music {sets.MUSIC_SNR_DB:.0f} dB below\n")
        header = ["target (hosts / guests)", "threshold", "precision", "recall", "kept", "review"]
        print(table(header, programmes(emb, far)))
        emb.save()
        print()
    print("## equal error rate on held-out speakers (3 clean enrollment utterances, tests with music)\n")
    print(table(["encoder", "EER raw cosine", "EER s-norm", "genuine / impostor trials"], rows) + "\n")
    print(f"## clustering without enrollment across {which} programmes (one file each, the stage's thresholds)\n")
    header = [
        "encoder",
        "cluster / link threshold",
        "clips per guest",
        "voices",
        "ids",
        "ids per voice",
        "clips in their id's main voice",
        "clip error",
    ]
    print(table(header, clusters) + "\n")
    print(f"## encoder speed ({THREADS} thread(s), this process)\n")
    print(table(["encoder", "audio s", "wall s", "x real time"], speed) + "\n")


def turn_report(tuning: bool) -> None:
    which = "tuning" if tuning else "held-out"
    changes, others, checked = turn_tables(tuning)
    cfg = settings_mod.SpeakerSettings()
    print(
        f"## turns inside a clip ({which} speakers, turn_threshold {cfg.turn_threshold}, turn_voice_threshold "
        f"{cfg.turn_voice_threshold}, changes within {TOLERANCE} s)\n"
    )
    header = [
        "pairs",
        "true changes",
        "found",
        "missed",
        "false",
        "cut error mean s",
        "median",
        "max",
        "kept whole",
        "audio kept",
    ]
    print(table(header, changes) + "\n")
    print(table(["one-voice clips split", "overlap s kept / total", "overlap clips keeping > 0.25 s"], others) + "\n")
    print(f"## cuts checked ({which} mixes whose window groups are below turn_threshold), sorted by voice similarity\n")
    header = ["mix", "cuts checked", "window-group similarity", "whole-voice similarity (cut stands below threshold)"]
    print(table(header, checked) + "\n")
    print("## diarization/sample.wav's two multi-turn clips: pieces kept (seen while developing, not held out)\n")
    print(table(["clip s", "piece s", "main speaker", "share of its talk"], sample_turns()) + "\n")
    print(f"## turn finder speed (CAM++ windows, {THREADS} thread(s), this process)\n")
    print(table(["audio s", "wall s", "x real time"], turn_speed(TurnFinder())) + "\n")


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    chosen = [e for e in ("resemblyzer", "campplus") if e in sys.argv[1:]] or ["resemblyzer", "campplus"]
    far = settings_mod.SpeakerSettings().false_accept_rate
    print("# speakers benchmark\n")
    print(f"Held-out speakers: {' '.join(sets.HELD_OUT)}; beds {', '.join(sets.BEDS_HELD_OUT)}.")
    print(f"Tuning speakers (also the open cohort): {' '.join(sets.TUNING)}.\n")
    if "--turns" not in sys.argv:
        encoder_tables(chosen, far)
    turn_report("--tuning" in sys.argv)
    if "--stage" in sys.argv:
        with tempfile.TemporaryDirectory(prefix="nr4dl-bench-speakers-") as tmp:
            print("## stage speed (6-minute file, 40 utterances)\n")
            print(table(["mode", "audio s", "wall s", "x real time", "clips", "kept"], stage_speed(Path(tmp))) + "\n")
        print("## purity (two utterances of different speakers back to back)\n")
        print(table(["split", "mean cut error s", "max cut error s", "same speaker split"], purity()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
