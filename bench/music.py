"""Music routing benchmark: segmentation of the mix, and `separate.mode` routed against all, side by side.

The input (bench/programme.py, held-out material only) is Korean read speech of
the 19 speakers not used for tuning, in blocks of about 20 s, a share of them
(`--bed-share`, by default a fifth of the speech) over a music bed 10 dB under
the voice; Spleeter's demo song with vocals, 4 s jingles and café noise between
blocks. Both modes run the real stages in this process, each in its own work
folder: ingest and segment (identical), then separate (timed, after a warm-up
that starts the Spleeter worker and loads ina, so neither mode pays for it),
then slice. It prints

* segmentation on 10 ms frames against the truth: music recall (songs and
  jingles), speech precision, recall and F1 (speech and bed speech, its frames
  within 40 dB of the loudest; the pauses between them count neither way);
* per mode: the separate stage's wall seconds and Spleeter's share of them
  (both include the residual-music run of ina on the vocals), seconds separated, the share of speech with
  a bed, bed clips, and the median and worst SI-SDR of the bed clips against the
  clean speech that went into the mix (dB);
* clips of songs and jingles that pass the music gates (must be 0).

Usage: .venv/bin/python bench/music.py [--minutes 10] [--bed-share 0.2]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import programme as built  # noqa: E402

from nr4dl_tasks.core import settings as settings_mod  # noqa: E402
from nr4dl_tasks.core.layout import SEGMENTS_CSV  # noqa: E402
from nr4dl_tasks.core.records import read_manifest, read_segments  # noqa: E402
from nr4dl_tasks.dsp import audio  # noqa: E402
from nr4dl_tasks.dsp.quality import si_sdr  # noqa: E402
from nr4dl_tasks.pipeline import open_work, run_stage  # noqa: E402
from nr4dl_tasks.stages.gate import music_checks  # noqa: E402

OUT = ROOT / "data" / "bench" / "music"
SPEECH = {"male", "female", "speech"}


def build(minutes: float, bed_share: float) -> built.Programme:
    speakers = sorted(p.name for p in built.KOREAN.iterdir() if p.is_dir() and p.name not in built.TUNING_KOREAN)
    show, block, speech_s, bed_s = built.Programme(), 0, 0.0, 0.0
    while show.seconds < minutes * 60:
        voice = built.korean(speakers[block % len(speakers)])
        samples = np.concatenate(voice[(block // len(speakers)) * 4 :][:4] or voice[:4])
        over_bed = bed_s < bed_share * (speech_s + len(samples) / built.RATE)
        show.speech(samples, block if over_bed else None)
        speech_s += len(samples) / built.RATE
        bed_s += len(samples) / built.RATE if over_bed else 0.0
        block += 1
        if block % 3 == 0:
            show.add("music", built.jingle(block))
        if block % 6 == 0:
            show.add("music", built.song())
        if block % 8 == 0:
            show.add("noise", built.cafe())
    return show


def voiced(clean: np.ndarray, total: float) -> np.ndarray:
    """10 ms frames where the clean speech is within 40 dB of its loudest frame: the pauses inside and between
    utterances are not speech a segmenter should find."""
    hop = built.RATE // 100
    level = np.zeros(int(total * 100) + 1)
    n = min(len(clean) // hop, len(level))
    level[:n] = 10 * np.log10(np.mean(clean[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1) + 1e-12)
    return level > level.max() - 40


def segmentation_scores(truth: list, segments: list, total: float, clean: np.ndarray) -> dict[str, float]:
    """Frame scores; the pauses inside a stretch of speech count neither way (a segmenter may bridge them)."""
    found = [(s.start, s.end, s.label) for s in segments]
    music_t, music_f = built.frames(truth, total, {"music"}), built.frames(found, total, {"music"})
    spans = built.frames(truth, total, {"speech", "bed"})
    speech_t, speech_f = spans & voiced(clean, total), built.frames(found, total, SPEECH)
    speech_f &= speech_t | ~spans
    precision = (speech_t & speech_f).sum() / max(speech_f.sum(), 1)
    recall = (speech_t & speech_f).sum() / max(speech_t.sum(), 1)
    return {
        "music recall": (music_t & music_f).sum() / max(music_t.sum(), 1),
        "speech precision": precision,
        "speech recall": recall,
        "speech F1": 2 * precision * recall / max(precision + recall, 1e-9),
    }


def kind_at(truth: list, start: float, end: float) -> str:
    middle = (start + end) / 2
    return next((k for a, b, k in truth if a <= middle <= b), "gap")


def run_mode(mode: str, path: Path, show: built.Programme) -> dict[str, object]:
    work_dir = OUT / f"work-{mode}"
    shutil.rmtree(work_dir, ignore_errors=True)
    settings = settings_mod.load(overrides={"paths.work_dir": str(work_dir), "separate.mode": mode})
    work = open_work(path, settings)
    for stage in ("ingest", "segment"):
        run_stage(stage, work, settings)
    began = time.monotonic()
    result = run_stage("separate", work, settings)
    seconds = time.monotonic() - began
    run_stage("slice", work, settings)
    clean = show.clean_speech
    scores, leaked = [], 0
    for clip in read_manifest(work, "slice"):
        kind = kind_at(show.truth, clip.speech_start, clip.speech_end)
        if kind == "bed":
            samples, rate = audio.read_span(work.path(clip.path), 0, clip.duration)
            estimate = audio.resample(audio.mono(samples), rate, built.RATE)
            reference = clean[int(clip.start * built.RATE) : int(clip.start * built.RATE) + len(estimate)]
            scores.append(si_sdr(estimate, reference))
        if kind == "music" and not music_checks(clip, settings.gates, {}):
            leaked += 1
    return {"info": result.info, "seconds": seconds, "sdr": scores, "leaked": leaked, "work": work}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--bed-share", type=float, default=0.2)
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    show = build(args.minutes, args.bed_share)
    path = show.write(OUT / f"programme_{args.minutes:g}min.wav")
    print(f"input: {path.name}, {show.seconds / 60:.1f} min, held-out material (bench/programme.py)", flush=True)
    warm = settings_mod.load(overrides={"paths.work_dir": str(OUT / "work-warmup"), "separate.mode": "all"})
    warm_work = open_work(ROOT.parent / "shared" / "media" / "segmentation" / "lamartine.wav", warm)
    for stage in ("ingest", "segment", "separate"):
        run_stage(stage, warm_work, warm)
    runs = {mode: run_mode(mode, path, show) for mode in ("routed", "all")}
    segments = read_segments(runs["routed"]["work"].input(SEGMENTS_CSV))  # type: ignore[attr-defined]
    print("\n| segmentation (10 ms frames) | value |\n|---|---|")
    for name, value in segmentation_scores(show.truth, segments, show.seconds, show.clean_speech).items():
        print(f"| {name} | {value:.3f} |")
    print(
        "\n| mode | separate stage s | Spleeter s | separated s | speech s | with a bed | bed clips | SI-SDR median | "
        "worst | song/jingle clips passing |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    for mode, run in runs.items():
        info, sdr = run["info"], np.array(run["sdr"])
        share = info.get("bed_seconds", 0) / max(info.get("speech_seconds", 0), 1e-9)
        print(
            f"| {mode} | {run['seconds']:.1f} | {info['separated_seconds'] / info['x_realtime']:.1f} | "
            f"{info['separated_seconds']:.0f} | {info['speech_seconds']:.0f} | "
            f"{share:.0%} | {len(sdr)} | {np.median(sdr):.1f} | {sdr.min():.1f} | {run['leaked']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
