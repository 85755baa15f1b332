"""Gate: the quality checks a clip must pass to enter the dataset, each a setting, each recorded.

Reads `manifests/transcribe.jsonl`, writes `manifests/gate.jsonl`. Every kept
clip gains `gates` (the measured values: duration, characters per second,
compression ratio, language probability, DNSMOS OVRL), `quality`
({"dnsmos_ovrl": ...}) and `tier` (the best of `gates.tiers` its OVRL reaches,
else "rest"). A clip failing any check gets `gates_failed` (every failed check,
with its reason) and `dropped` (the first of them), and stays in the manifest so
the decision can be inspected; exports skip it.

The checks, in order:

* duration within [min_duration, max_duration];
* empty text (no letter or digit): nothing was recognised;
* no speech: Whisper's own rule (no-speech probability above `max_no_speech_prob`
  and mean token log-probability below -1), for a short sentence made up on noise
  that the rates below cannot tell from speech;
* characters per second within [min_cps, max_cps]: a hallucinated sentence on a
  noise burst is far too fast, speech the recogniser skipped far too slow;
* compression ratio and repeated pieces of text: Whisper's repetition loops
  ("thank you thank you ...");
  (these four are `asr/checks.py`, which the transcribe stage also applies: a clip
  failing them there is decoded again before it reaches this stage);
* other language: the transcribe stage marked the clip as confidently in another
  language than its file's (`other_language`), for code-switching or a guest;
* language probability (off by default): the probability of the clip's language
  from its own detection, a coin toss on short noisy clips;
* characters per second within `cps_outlier_factor` of the file's median;
* bandwidth (`gates.min_bandwidth_hz`, off by default): the highest frequency the
  exported audio really holds (`dsp/bandwidth.py`), recorded for every clip that
  passed the checks above; a band-limited clip (below `gates.full_band_fraction`
  of the clip's Nyquist frequency: a telephone call, a 16 kHz recording) never
  gets the best tier, whatever DNSMOS, which rates clarity and not band, says;
* DNSMOS OVRL of the audio the export takes (`export.audio`).

DNSMOS comes from the denoise stage's record where it scored exactly that audio,
and is computed here otherwise (split pieces, `denoise.score: false`), only for
clips that passed the other checks (a dropped clip's tier does not matter).
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from concurrent.futures import Future
from typing import Any

from nr4dl_tasks.asr.checks import hallucinations
from nr4dl_tasks.core import layout, resources
from nr4dl_tasks.core.layout import Artifact
from nr4dl_tasks.core.progress import Progress
from nr4dl_tasks.core.records import REST_TIER, Clip, read_clip_audio, read_manifest, write_manifest
from nr4dl_tasks.core.settings import GateSettings, Settings
from nr4dl_tasks.core.stage import Stage
from nr4dl_tasks.core.workdir import WorkDir
from nr4dl_tasks.dsp.bandwidth import effective_bandwidth
from nr4dl_tasks.dsp.quality import DnsmosPool, Mos
from nr4dl_tasks.text.metrics import compression_ratio, letter_count

log = logging.getLogger("nr4dl")

MIN_CLIPS_FOR_OUTLIERS = 5
SCORE_BATCH = 16  # clips scored with DNSMOS at a time


def recorded_ovrl(clip: Clip, which: str) -> float | None:
    """DNSMOS OVRL the denoise stage measured on exactly this audio, if it did."""
    scores = (clip.denoise or {}).get("dnsmos")
    if not scores or clip.split_from:  # a split piece carries its parent's scores
        return None
    return scores["after" if which == "denoised" else "before"]["ovrl"]


def tier_of(ovrl: float | None, tiers: dict[str, float], band_limited: bool = False) -> str | None:
    """The best tier `ovrl` reaches; a band-limited clip's best is the second tier (or 'rest' with one tier)."""
    if ovrl is None:
        return None
    if band_limited and tiers:
        best = max(tiers, key=lambda name: tiers[name])
        tiers = {name: minimum for name, minimum in tiers.items() if name != best}
    reached = [(minimum, name) for name, minimum in tiers.items() if ovrl >= minimum]
    return max(reached)[1] if reached else REST_TIER


def music_checks(clip: Clip, cfg: GateSettings, values: dict[str, Any]) -> list[str]:
    """Music left in the clip's audio and sung clips, as the slice stage measured them (recorded in `values`)."""
    failed = []
    if clip.music_bleed is not None:
        values["music_bleed"] = clip.music_bleed
        if cfg.max_music_bleed is not None and clip.music_bleed > cfg.max_music_bleed:
            failed.append(f"music_bleed: {clip.music_bleed:.3f} above {cfg.max_music_bleed} (music in the audio)")
    if clip.singing is not None:
        values["singing"] = clip.singing
        if cfg.max_singing is not None and clip.singing > cfg.max_singing:
            failed.append(f"singing: {clip.singing:.2f} of the voiced time on held notes, above {cfg.max_singing}")
    return failed


def text_checks(clip: Clip, cfg: GateSettings, median_cps: float | None) -> tuple[dict[str, Any], list[str]]:
    """The measured values of one clip and the reasons it fails, for every check but DNSMOS."""
    text = clip.text or ""
    letters = letter_count(text)
    cps = letters / clip.duration if clip.duration > 0 else 0.0
    ratio = compression_ratio(text)
    probability = clip.language_probability
    values = {
        "duration": clip.duration,
        "cps": round(cps, 2),
        "compression_ratio": round(ratio, 3),
        "language_probability": probability,
    }
    failed = music_checks(clip, cfg, values)
    if not cfg.min_duration <= clip.duration <= cfg.max_duration:
        failed.append(f"duration: {clip.duration:.2f} s outside [{cfg.min_duration}, {cfg.max_duration}]")
    if letters == 0:  # the text measures below say nothing about an empty text
        if cfg.drop_empty_text:
            failed.append("empty_text: no letter or digit recognised")
        return values, failed
    failed += hallucinations(text, clip.duration, clip.asr, cfg)
    if cfg.drop_other_language and clip.other_language:
        failed.append(
            f"other_language: detected as {clip.other_language} ({clip.detected_language_probability}) in a "
            f"file in {clip.file_language}"
        )
    if (
        cfg.min_language_probability is not None
        and probability is not None
        and probability < cfg.min_language_probability
    ):
        failed.append(
            f"language_probability: {probability:.2f} for {clip.language} below {cfg.min_language_probability}"
        )
    if (
        cfg.cps_outlier_factor
        and median_cps
        and cfg.min_cps <= cps <= cfg.max_cps
        and not (median_cps / cfg.cps_outlier_factor <= cps <= median_cps * cfg.cps_outlier_factor)
    ):
        failed.append(
            f"cps_outlier: {cps:.1f} characters/s against the file's median {median_cps:.1f} "
            f"(factor {cfg.cps_outlier_factor})"
        )
    return values, failed


def file_median_cps(clips: list[Clip]) -> float | None:
    """Median characters per second of a file's clips with text, when there are enough of them to judge."""
    rates = [letter_count(c.text or "") / c.duration for c in clips if c.duration > 0 and letter_count(c.text or "")]
    return statistics.median(rates) if len(rates) >= MIN_CLIPS_FOR_OUTLIERS else None


class GateStage(Stage):
    name = "gate"
    # 2: clips record their bandwidth, and band-limited clips never get the best tier; 3: repetition loops and clips
    # marked in another language are dropped (asr/checks.py), and music bleed and singing are gated
    version = 3
    manifest = True

    def reads(self, settings: Settings) -> tuple[Artifact, ...]:
        return layout.manifest("transcribe"), *layout.clip_audio(settings.export.audio)

    def inputs(self, work: WorkDir, settings: Settings) -> dict[str, Any]:
        return {"gates": settings.gates.model_dump(), "audio": settings.export.audio}

    def process(self, work: WorkDir, settings: Settings) -> tuple[list[str], dict[str, Any]]:
        cfg, which = settings.gates, settings.export.audio
        clips = read_manifest(work, "transcribe")
        kept = [c for c in clips if c.kept]
        median_cps = file_median_cps(kept)
        checked = [(clip, *text_checks(clip, cfg, median_cps)) for clip in kept]
        for clip, values, failed in checked:
            if not failed:
                samples, rate = read_clip_audio(work, clip.audio(which), "transcribe")
                values["bandwidth_hz"] = round(effective_bandwidth(samples, rate))
                values["band_limited"] = (
                    cfg.full_band_fraction is not None and values["bandwidth_hz"] < cfg.full_band_fraction * rate / 2
                )
                if cfg.min_bandwidth_hz is not None and values["bandwidth_hz"] < cfg.min_bandwidth_hz:
                    failed.append(f"bandwidth: {values['bandwidth_hz']} Hz below {cfg.min_bandwidth_hz}")
        scored = [clip for clip, _, failed in checked if not failed]  # DNSMOS only where it can still matter
        scored_at_all = cfg.min_dnsmos_ovrl is not None or cfg.tiers
        scores = self._dnsmos(work, scored, which, resources.threads(settings)) if scored_at_all else {}
        failures: Counter[str] = Counter()
        for clip, values, failed in checked:
            ovrl = scores.get(clip.id)
            values["dnsmos_ovrl"] = ovrl
            if cfg.min_dnsmos_ovrl is not None and ovrl is not None and ovrl < cfg.min_dnsmos_ovrl:
                failed.append(f"dnsmos: OVRL {ovrl:.2f} below {cfg.min_dnsmos_ovrl}")
            clip.gates, clip.quality = values, {"dnsmos_ovrl": ovrl, "audio": which}
            clip.tier = tier_of(ovrl, cfg.tiers, bool(values.get("band_limited")))
            if failed:
                clip.gates_failed, clip.dropped = failed, f"gate {failed[0]}"
                failures.update(reason.split(":")[0] for reason in failed)
        manifest = write_manifest(work, self.name, clips)
        passed = [c for c in kept if c.kept]
        info = {
            "clips_in": len(kept),
            "clips_kept": len(passed),
            "failed": dict(failures.most_common()),
            "kept_seconds": round(sum(c.duration for c in passed), 1),
            "tiers": dict(Counter(c.tier for c in passed).most_common()),
        }
        log.info("%s: %d of %d clips passed the gates %s", work.source_id, len(passed), len(kept), info)
        return [manifest], info

    @staticmethod
    def _dnsmos(work: WorkDir, clips: list[Clip], which: str, threads: int) -> dict[str, float]:
        """OVRL per clip id: recorded by denoise where it scored this audio, else scored now."""
        recorded = {c.id: recorded_ovrl(c, which) for c in clips}
        scores = {cid: ovrl for cid, ovrl in recorded.items() if ovrl is not None}
        todo = [c for c in clips if recorded[c.id] is None]
        progress = Progress(f"{work.source_id}: DNSMOS", sum(c.duration for c in todo))
        with DnsmosPool(threads) as pool:
            for start in range(0, len(todo), SCORE_BATCH):  # bounds the audio held in memory
                pending: dict[str, Future[Mos]] = {}
                for clip in todo[start : start + SCORE_BATCH]:
                    samples, rate = read_clip_audio(work, clip.audio(which), "transcribe")
                    pending[clip.id] = pool.submit(samples, rate)
                scores.update({cid: round(future.result().ovrl, 3) for cid, future in pending.items()})
                progress.add(sum(c.duration for c in todo[start : start + SCORE_BATCH]))
        if todo:
            log.info(
                "%s: scored %d clips with DNSMOS (no earlier score of the exported audio)", work.source_id, len(todo)
            )
        return scores
