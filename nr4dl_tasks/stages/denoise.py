"""Denoise: clips/*.wav -> clips_denoised/*.wav, with what was done recorded per clip in the manifest.

Nothing here needs a human to pick a noise sample or a frequency band:

1. The file's own non-speech (segments ina labelled noise/noEnergy) is its noise
   sample. With too little of it, the noise is estimated from the clips by
   minimum statistics instead, and the log says so.
2. Persistent tones in that audio (hum and harmonics, whines, carriers) are
   found and notched (`tones.py`); optional high-/low-pass corners are added.
3. Then one method: `gate` (spectral gating, `spectral_gate.py`), `deepfilter`
   (DeepFilterNet3, `deepfilter.py`), `none` (the filters only), or `auto`:
   per file, whichever scores the best DNSMOS OVRL on a sample of its clips
   without lowering SIG by more than `sig_tolerance` and without an estimated
   SI-SDR loss above `max_sdr_loss_db` (`distortion.py`: DNSMOS cannot see
   speech taken away with the noise); per clip, a result failing either check
   gives way to the next acceptable method, then to the notches alone, then to
   the input, and the record says which checks failed.

Speech recognition should read the original clip (`path`): denoising raised
Whisper base's word error rate on noisy speech from 7 % to 10-20 % in the
project owner's measurement. So the originals
stay, and each clip record gains `denoised_path` (the original's path when the
clip was left unchanged) and a `denoise` object: method, notch frequencies,
blind SNR and DNSMOS SIG/BAK/OVRL before and after.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from nr4dl_tasks.core import layout, resources
from nr4dl_tasks.core.layout import CLIPS_DIR, DENOISED_DIR, FULL_WAV, SEGMENTS_CSV, Artifact
from nr4dl_tasks.core.progress import Progress
from nr4dl_tasks.core.records import Clip, Segment, read_clip_audio, read_manifest, read_segments, write_manifest
from nr4dl_tasks.core.settings import DenoiseSettings, Settings
from nr4dl_tasks.core.stage import Stage
from nr4dl_tasks.core.workdir import WorkDir, atomic_dir
from nr4dl_tasks.dsp import audio, distortion
from nr4dl_tasks.dsp.deepfilter import DeepFilterStream
from nr4dl_tasks.dsp.quality import DnsmosPool, Mos, snr_estimate
from nr4dl_tasks.dsp.spectral_gate import (
    EXP_MEAN_OFFSET_DB,
    NoiseProfile,
    gate,
    profile_from_min_statistics,
    profile_from_noise,
)
from nr4dl_tasks.dsp.tones import SERIES_SECONDS, Notches, find_tones

log = logging.getLogger("nr4dl")

SERIES_BLOCKS = 8  # continuous blocks of the file, spread over it, that harmonics are measured on
EDGE_SECONDS = 0.1  # trimmed from both ends of a non-speech segment: speech onsets and tails bleed into it
PROFILE_MAX_SECONDS = 60.0  # non-speech read for the profile, longest segments first
FALLBACK_MAX_SECONDS = 120.0  # clip audio read when the profile falls back to minimum statistics
CANDIDATES = ("deepfilter", "gate")
MAX_IN_FLIGHT = 8  # clips denoised ahead of their scores (bounds memory)


@dataclass
class FileNoise:
    """What all clips of one file share: its tones, the filter removing them, and its noise profile."""

    notches: Notches
    profile: NoiseProfile | None  # None: the gate tracks noise per clip (nonstationary)
    note: str  # where the noise estimate came from, for the log and the stamp
    noise_db: np.ndarray | None = None  # mean noise power per STFT band before the notches, for the distortion check


def noise_spans(segments: list[Segment], labels: list[str]) -> list[Segment]:
    """Non-speech segments, trimmed at both ends, longest first, up to PROFILE_MAX_SECONDS in all."""
    trimmed = [
        Segment(s.label, s.start + EDGE_SECONDS, s.end - EDGE_SECONDS)
        for s in segments
        if s.label in labels and s.duration > 2 * EDGE_SECONDS + 0.1
    ]
    chosen, total = [], 0.0
    for span in sorted(trimmed, key=lambda s: -s.duration):
        if total >= PROFILE_MAX_SECONDS:
            break
        take = min(span.duration, PROFILE_MAX_SECONDS - total)  # a 30-minute silence is read for a minute only
        chosen.append(Segment(span.label, span.start, span.start + take))
        total += take
    return chosen


def _read_mono(path: Path, rate: int, span: Segment) -> np.ndarray:
    samples, src_rate = audio.read_span(path, span.start, span.end)
    return audio.resample(audio.mono(samples), src_rate, rate)


def _blocks(path: Path, rate: int) -> list[np.ndarray]:
    """Up to SERIES_BLOCKS unbroken blocks of SERIES_SECONDS spread over the recording (the whole of a short one)."""
    duration = audio.duration(path)
    if duration <= SERIES_SECONDS:
        return [_read_mono(path, rate, Segment("all", 0.0, duration))]
    starts = np.linspace(0.0, duration - SERIES_SECONDS, min(SERIES_BLOCKS, int(duration // SERIES_SECONDS)))
    return [_read_mono(path, rate, Segment("all", float(a), float(a) + SERIES_SECONDS)) for a in starts]


def _spread(items: list[Any], count: int) -> list[Any]:
    """Up to `count` items evenly spread over the list (the whole list when it is short)."""
    if len(items) <= count:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def _read_clip(work: WorkDir, clip: Clip) -> np.ndarray:
    return read_clip_audio(work, clip.path, "slice")[0]


def analyse_file(work: WorkDir, settings: Settings, clips: list[Clip]) -> FileNoise:
    """Measure the file's noise once: tones to notch and the gate's profile."""
    cfg, rate = settings.denoise, settings.slice.sample_rate
    spans = noise_spans(read_segments(work.input(SEGMENTS_CSV)), cfg.noise_labels)
    # The original: separation runs only on speech with music under it, so the vocals are silent in noise spans.
    noise = [_read_mono(work.input(FULL_WAV), rate, span) for span in spans]
    noise_seconds = sum(len(n) for n in noise) / rate
    enough = noise_seconds >= cfg.min_noise_seconds and noise_seconds > 0
    if enough:
        analysed = noise
    else:
        mean = np.mean([c.duration for c in clips]) if clips else 1.0
        sample = _spread(clips, max(1, int(FALLBACK_MAX_SECONDS / max(mean, 0.1))))
        analysed = [audio.mono(_read_clip(work, c)) for c in sample]  # clips are at `rate` already
        log.info(
            "%s: only %.1f s of %s audio (< %.1f s): estimating the noise from the clips by minimum statistics",
            work.source_id,
            noise_seconds,
            "/".join(cfg.noise_labels),
            cfg.min_noise_seconds,
        )
    tones = (
        find_tones(
            np.concatenate(analysed),
            rate,
            cfg.notch_min_prominence_db,
            cfg.notch_min_level_dbfs,
            cfg.notch_harmonic_min_prominence_db,
            continuous=_blocks(work.input(FULL_WAV), rate),
        )
        if cfg.notch and analysed
        else []
    )
    notches = Notches(rate, tuple(tones), cfg.highpass_hz, cfg.lowpass_hz)
    filtered = [notches.apply(a) for a in analysed]
    # The distortion check measures noise before the notches: a hum taken out is noise removed, not speech.
    unfiltered = profile_from_noise(analysed, rate) if enough else profile_from_min_statistics(analysed, rate)
    if cfg.gate_mode == "nonstationary":
        profile, note = None, "running noise floor per clip"
    elif enough:
        profile = profile_from_noise(filtered, rate)
        note = f"profile from {profile.seconds:.1f} s of non-speech"
    else:
        profile = profile_from_min_statistics(filtered, rate)
        note = f"profile by minimum statistics over {profile.seconds:.1f} s of clips"
    if tones:
        log.info(
            "%s: persistent tones found and notched at %s Hz", work.source_id, ", ".join(f"{t.hz:.1f}" for t in tones)
        )
    return FileNoise(notches, profile, note, unfiltered.mean_db + EXP_MEAN_OFFSET_DB)


class ClipDenoiser:
    """One method applied to the clips of one file, in order (DeepFilterNet keeps a stream per channel)."""

    def __init__(self, method: str, noise: FileNoise, cfg: DenoiseSettings, rate: int) -> None:
        self.method, self.noise, self.cfg, self.rate = method, noise, cfg, rate
        self._streams: dict[int, DeepFilterStream] = {}

    def changes(self, notches: Notches) -> bool:
        """Whether this method with these notches changes a clip at all."""
        return self.method != "none" or notches.sos is not None

    def _channel(self, x: np.ndarray, channel: int) -> np.ndarray:
        if self.method == "gate":
            return gate(x, self.rate, self.noise.profile, self.cfg.n_std, self.cfg.max_attenuation_db)
        if self.method == "deepfilter":
            if channel not in self._streams:
                self._streams[channel] = DeepFilterStream(self.cfg.max_attenuation_db)
            return self._streams[channel].process(x, self.rate)
        return x

    def __call__(self, filtered: np.ndarray) -> np.ndarray:
        """(frames, channels) of a clip through its notches (`Notches.apply`) in, the same shape out."""
        out = np.stack([self._channel(filtered[:, ch], ch) for ch in range(filtered.shape[1])], axis=1)
        return np.clip(out, -1.0, 1.0).astype(np.float32)

    def __enter__(self) -> ClipDenoiser:
        return self

    def __exit__(self, *exc: object) -> None:
        for stream in self._streams.values():
            stream.close()


@dataclass
class Choice:
    """auto's decision for one file, the sample scores behind it, and every candidate's sample results."""

    method: str
    fallbacks: list[str] = field(default_factory=list)  # other acceptable methods, best first
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    results: dict[str, dict[str, tuple[np.ndarray, Future[Mos]]]] = field(default_factory=dict)  # method -> clip id


def _mean_mos(scores: list[Mos]) -> Mos:
    return Mos(*(float(np.mean([getattr(s, k) for s in scores])) for k in ("sig", "bak", "ovrl")))


def acceptable(before: Mos, after: Mos, sig_tolerance: float) -> bool:
    """auto's DNSMOS rule: better overall, and speech not noticeably more distorted."""
    return after.ovrl > before.ovrl and after.sig >= before.sig - sig_tolerance


def sdr_loss(samples: np.ndarray, out: np.ndarray, rate: int, noise: FileNoise) -> float:
    """Estimated SI-SDR loss in dB (negative: a gain) of `out` against the clip `samples` it came from."""
    return -distortion.sdr_change_estimate_db(samples, out, rate, noise.noise_db)


@dataclass
class Verdict:
    """One method's result for one clip and the check it failed, if any."""

    method: str
    mos: Mos | None
    sdr_loss_db: float
    failed: str | None  # 'dnsmos' or 'distortion'

    def as_dict(self) -> dict[str, Any]:
        facts: dict[str, Any] = {
            "method": self.method,
            "sdr_loss_est_db": round(self.sdr_loss_db, 2),
            "failed": self.failed,
        }
        if self.mos:
            facts["dnsmos"] = self.mos.as_dict()
        return facts


def judge(
    method: str,
    samples: np.ndarray,
    out: np.ndarray,
    mos_in: Mos | None,
    mos_out: Mos | None,
    noise: FileNoise,
    cfg: DenoiseSettings,
    rate: int,
) -> Verdict:
    """auto's per-clip rule. The notches alone ('none') always pass: the estimate charges a notch with the voice
    it takes at the tone's frequency but cannot see the hum it removes there, and on the held-out hum files it
    sent clips back to their input, hum and all."""
    loss = sdr_loss(samples, out, rate, noise)
    failed = None
    if method != "none" and mos_in and mos_out and not acceptable(mos_in, mos_out, cfg.sig_tolerance):
        failed = "dnsmos"
    elif method != "none" and loss > cfg.max_sdr_loss_db:
        failed = "distortion"
    return Verdict(method, mos_out, loss, failed)


def choose_method(
    sample: dict[str, np.ndarray],
    before: dict[str, Future[Mos]],
    noise: FileNoise,
    cfg: DenoiseSettings,
    rate: int,
    scorer: DnsmosPool,
) -> Choice:
    """Try every candidate on the sample clips; keep the best OVRL among the acceptable ones, else none.

    A candidate is acceptable when its mean DNSMOS passes `acceptable` and its
    mean estimated SI-SDR loss is within `max_sdr_loss_db`. Every candidate is
    computed before any score is awaited, so the scoring threads work while the
    next candidate runs.
    """
    results: dict[str, dict[str, tuple[np.ndarray, Future[Mos]]]] = {}
    filtered = {cid: noise.notches.for_clip(x).apply(x) for cid, x in sample.items()}
    for method in CANDIDATES:
        with ClipDenoiser(method, noise, cfg, rate) as denoiser:
            results[method] = {}
            for cid, x in filtered.items():
                out = denoiser(x)
                results[method][cid] = (out, scorer.submit(out, rate))
    base = _mean_mos([before[cid].result() for cid in sample])
    choice = Choice("none", scores={"input": base.as_dict()}, results=results)
    ranked = []
    for method, outputs in results.items():
        result = _mean_mos([future.result() for _, future in outputs.values()])
        loss = float(np.mean([sdr_loss(sample[cid], out, rate, noise) for cid, (out, _) in outputs.items()]))
        choice.scores[method] = {**result.as_dict(), "sdr_loss_est_db": round(loss, 2)}
        if acceptable(base, result, cfg.sig_tolerance) and loss <= cfg.max_sdr_loss_db:
            ranked.append((result.ovrl, method))
    ranked.sort(reverse=True)
    if ranked:
        choice.method, choice.fallbacks = ranked[0][1], [method for _, method in ranked[1:]]
    return choice


@dataclass
class _Pending:
    """A clip denoised but not yet scored, checked and written."""

    clip: Clip
    method: str  # what made `out`: the file's method, or the notches alone for a clip clean enough
    samples: np.ndarray
    notches: Notches  # the file's notches this clip gets
    filtered: np.ndarray  # samples through those notches (samples itself without any)
    out: np.ndarray
    before: Future[Mos] | None
    after: Future[Mos] | None


class _FileDenoise:
    """Denoising one file's clips: choose the method, run it in clip order, check and write each result.

    Denoising runs in the calling thread, in clip order (DeepFilterNet streams);
    DNSMOS scoring runs on the pool beside it, and clips are checked and written
    in order as their scores arrive, at most MAX_IN_FLIGHT behind.
    """

    def __init__(self, work: WorkDir, settings: Settings, clips: list[Clip], scorer: DnsmosPool, out_dir: Path) -> None:
        self.work, self.cfg, self.rate = work, settings.denoise, settings.slice.sample_rate
        self.clips, self.scorer, self.out_dir = clips, scorer, out_dir
        self.noise = (
            analyse_file(work, settings, clips) if clips else FileNoise(Notches(self.rate, ()), None, "no clips")
        )
        self.before: dict[str, Future[Mos]] = {}
        self.choice = Choice(self.cfg.method)
        self.changed = self.reverted = 0
        self.reverted_by: Counter[str] = Counter()  # clips whose chosen method failed each check
        self._denoisers: dict[str, ClipDenoiser] = {}

    def score_before(self, clip: Clip, samples: np.ndarray) -> Future[Mos] | None:
        if self.cfg.score and clip.id not in self.before:
            self.before[clip.id] = self.scorer.submit(samples, self.rate)
        return self.before.get(clip.id)

    def choose(self) -> None:
        sample = {c.id: _read_clip(self.work, c) for c in _spread(self.clips, self.cfg.auto_sample_clips)}
        for clip in self.clips:
            if clip.id in sample:
                self.score_before(clip, sample[clip.id])
        self.choice = choose_method(sample, self.before, self.noise, self.cfg, self.rate, self.scorer)
        log.info(
            "%s: auto chose %s for this file (mean DNSMOS of %d sample clips: %s)",
            self.work.source_id,
            self.choice.method,
            len(sample),
            self.choice.scores,
        )

    def run(self) -> None:
        if self.cfg.method == "auto" and self.clips:
            self.choose()
        pending: deque[_Pending] = deque()
        progress = Progress(f"{self.work.source_id}: denoising", sum(c.duration for c in self.clips))
        with ExitStack() as stack:
            self._denoisers = {
                m: stack.enter_context(ClipDenoiser(m, self.noise, self.cfg, self.rate))
                for m in dict.fromkeys([self.choice.method, *self.choice.fallbacks, "none"])
            }
            for clip in self.clips:
                samples = _read_clip(self.work, clip)
                notches = self.noise.notches.for_clip(samples)
                filtered = notches.apply(samples)
                method = self.method_for(filtered)
                out, after = self.result(method, clip, samples, notches, filtered)
                before = self.score_before(clip, samples)
                pending.append(_Pending(clip, method, samples, notches, filtered, out, before, after))
                while len(pending) > MAX_IN_FLIGHT:
                    self.finish(pending.popleft())
                progress.add(clip.duration)
            while pending:
                self.finish(pending.popleft())

    def method_for(self, filtered: np.ndarray) -> str:
        """auto leaves a clip that is clean already (blind SNR at least `clean_snr_db`, measured once its notches
        have taken out its hum, which is no noise left for a denoiser) to its notches: there a denoiser can only take
        speech away."""
        cfg = self.cfg
        if cfg.method == "auto" and cfg.clean_snr_db is not None:
            snr = snr_estimate(filtered, self.rate)
            if snr is not None and snr >= cfg.clean_snr_db:
                return "none"
        return self.choice.method

    def result(
        self, method: str, clip: Clip, samples: np.ndarray, notches: Notches, filtered: np.ndarray
    ) -> tuple[np.ndarray, Future[Mos] | None]:
        """One method's output for a clip and its pending score (the input itself where the method changes nothing).

        Each method keeps its own denoiser, fed the clips it is asked for in clip order.
        """
        if clip.id in self.choice.results.get(method, {}):  # done while choosing
            return self.choice.results[method][clip.id]
        denoiser = self._denoisers[method]
        out = denoiser(filtered) if denoiser.changes(notches) else samples
        return out, self.scorer.submit(out, self.rate) if self.cfg.score and out is not samples else None

    def _checked(self, job: _Pending, mos_in: Mos | None) -> tuple[str, np.ndarray, Mos | None, list[Verdict]]:
        """auto's per-clip rule: the chosen method, else the next acceptable one, the notches alone, the input."""
        verdicts: list[Verdict] = []
        for method in dict.fromkeys([self.choice.method, *self.choice.fallbacks, "none"]):
            if method == self.choice.method:
                out, after = job.out, job.after
            else:
                out, after = self.result(method, job.clip, job.samples, job.notches, job.filtered)
            if out is job.samples:
                break  # nothing left to try: the input is kept
            verdict = judge(
                method, job.samples, out, mos_in, after.result() if after else None, self.noise, self.cfg, self.rate
            )
            verdicts.append(verdict)
            if verdict.failed is None:
                return method, out, verdict.mos, verdicts
        return "input", job.samples, mos_in, verdicts

    def finish(self, job: _Pending) -> None:
        """Check the result (auto), write what is kept, record what was done and checked."""
        cfg = self.cfg
        mos_in = job.before.result() if job.before else None
        method, out, mos_out = job.method, job.out, job.after.result() if job.after else mos_in
        record: dict[str, Any] = {}
        if job.method != self.choice.method:
            record["clean"] = f"blind SNR at least clean_snr_db ({cfg.clean_snr_db} dB): notches only"
        elif cfg.method == "auto" and out is not job.samples:
            method, out, mos_out, verdicts = self._checked(job, mos_in)
            record["checks"] = [v.as_dict() for v in verdicts]
            if method != self.choice.method:
                failed = verdicts[0].failed
                record["reverted"] = f"{self.choice.method} failed the {failed} check; kept: {method}"
                self.reverted += 1
                self.reverted_by[failed or ""] += 1
        filtered = method != "input"
        applied = job.notches.tones if filtered else ()
        record.update(
            method="none" if method == "input" else method,
            notch_hz=[round(t.hz, 2) for t in applied],
            notches=[t.as_dict() for t in applied],
            highpass_hz=cfg.highpass_hz if filtered else None,
            lowpass_hz=cfg.lowpass_hz if filtered else None,
            sdr_loss_est_db=round(sdr_loss(job.samples, out, self.rate, self.noise), 2)
            if out is not job.samples
            else 0.0,
        )
        record["snr_db"] = {"before": snr_estimate(job.samples, self.rate), "after": snr_estimate(out, self.rate)}
        if mos_in and mos_out:
            record["dnsmos"] = {"before": mos_in.as_dict(), "after": mos_out.as_dict()}
        job.clip.denoised_path = job.clip.path
        if out is not job.samples:
            name = Path(job.clip.path).name
            sf.write(str(self.out_dir / name), out, self.rate, subtype="PCM_16")
            job.clip.denoised_path = f"{DENOISED_DIR.name}/{name}"
            self.changed += 1
        job.clip.denoise = record

    def info(self, elapsed: float) -> dict[str, Any]:
        """Facts for the stamp and the task's XCom."""
        seconds = sum(c.duration for c in self.clips)
        info: dict[str, Any] = {
            "clips": len(self.clips),
            "changed": self.changed,
            "reverted": self.reverted,
            "reverted_by": dict(self.reverted_by),
            "method": self.choice.method,
            "auto_scores": self.choice.scores,
            "noise": self.noise.note,
            "tones": [t.as_dict() for t in self.noise.notches.tones],
            "clip_seconds_per_second": round(seconds / elapsed, 1) if elapsed > 0 and seconds else None,
        }
        if self.cfg.score and self.clips:
            info["dnsmos_mean"] = {
                when: _mean_mos([Mos(**(c.denoise or {})["dnsmos"][when]) for c in self.clips]).as_dict()
                for when in ("before", "after")
            }
        return info


class DenoiseStage(Stage):
    name = "denoise"
    # 2: hum notched as a harmonic series; auto checks the estimated SI-SDR loss. 3: the noise is measured on the
    # original (separation no longer covers the noise spans). 4: harmonics measured on unbroken blocks of the file,
    # notches per clip where the tone stands above the voice, clip edges extended by their tones, auto leaves clips
    # with a blind SNR of clean_snr_db or more to their notches. 5: that SNR measured after the notches;
    # sig_tolerance 0.5
    version = 5
    manifest = True

    def reads(self, settings: Settings) -> tuple[Artifact, ...]:
        return layout.manifest("slice"), CLIPS_DIR, SEGMENTS_CSV, FULL_WAV

    def inputs(self, work: WorkDir, settings: Settings) -> dict[str, Any]:
        return {
            "denoise": settings.denoise.model_dump(),
            "rate": settings.slice.sample_rate,
        }

    def process(self, work: WorkDir, settings: Settings) -> tuple[list[str], dict[str, Any]]:
        clips = read_manifest(work, "slice")
        began = time.monotonic()
        with DnsmosPool(resources.threads(settings)) as scorer, atomic_dir(work.path(DENOISED_DIR.name)) as out_dir:
            run = _FileDenoise(work, settings, clips, scorer, out_dir)
            run.run()
            manifest = write_manifest(work, self.name, clips)
        log.info(
            "%s: denoised %d clips (%d changed, %d left as they were)",
            work.source_id,
            len(clips),
            run.changed,
            len(clips) - run.changed,
        )
        return [DENOISED_DIR.name, manifest], run.info(time.monotonic() - began)
