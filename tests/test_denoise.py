"""Denoising on real noisy speech: tones, spectral gating, DeepFilterNet, DNSMOS and the stage end to end."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from nr4dl_tasks.core.errors import StageError
from nr4dl_tasks.core.layout import DENOISED_DIR
from nr4dl_tasks.core.records import Segment, read_clips
from nr4dl_tasks.core.settings import DenoiseSettings
from nr4dl_tasks.dsp import audio, quality
from nr4dl_tasks.dsp.deepfilter import DeepFilterStream
from nr4dl_tasks.dsp.spectral_gate import gate
from nr4dl_tasks.dsp.tones import Notches, find_tones
from nr4dl_tasks.pipeline import process_file, run_stage
from nr4dl_tasks.stages.denoise import PROFILE_MAX_SECONDS, ClipDenoiser, FileNoise, noise_spans

RATE = 22050
HUM = {50.0: 0.02, 100.0: 0.012, 150.0: 0.008, 200.0: 0.006, 6000.0: 0.004}  # Hz -> amplitude


def load(path: Path, rate: int = RATE) -> np.ndarray:
    samples, src_rate = sf.read(str(path), dtype="float32", always_2d=True)
    return audio.resample(audio.mono(samples), src_rate, rate)


def tones_signal(length: int, rate: int = RATE) -> np.ndarray:
    t = np.arange(length) / rate
    return sum(amp * np.sin(2 * np.pi * hz * t + hz) for hz, amp in HUM.items()).astype(np.float32)


def mixture(media: Path, snr_db: float) -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy): fish.wav speech with real café noise at `snr_db`."""
    speech, noise = load(media / "noise" / "fish.wav"), load(media / "noise" / "cafe_short.wav")
    n = min(len(speech), len(noise))
    speech, noise = speech[:n], noise[:n]
    gain = np.sqrt(np.mean(speech**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return speech, (speech + gain * noise).astype(np.float32)


def bin_power_db(x: np.ndarray, hz: float, rate: int = RATE) -> float:
    """Power of the FFT bin nearest `hz` over the whole (Hann-windowed) signal."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    k = int(round(hz * len(x) / rate))
    return float(10 * np.log10(spectrum[k - 1 : k + 2].max() + 1e-20))


def test_injected_hum_and_whine_are_found_within_2_percent_and_notched(media):
    """Tones are looked for where the stage looks: in a file's non-speech, here real café noise 12 dB down."""
    noise = 0.25 * load(media / "noise" / "cafe_short.wav")
    tones = find_tones(noise + tones_signal(len(noise)), RATE, min_prominence_db=12, min_level_dbfs=-60)
    for true_hz in HUM:
        assert any(abs(t.hz - true_hz) <= 0.02 * true_hz for t in tones), (true_hz, tones)
    speech = load(media / "noisy" / "clean" / "p287_003.wav")
    hummed = speech + tones_signal(len(speech))
    notches = Notches(RATE, tuple(tones))
    cleaned = notches.apply(hummed)
    for hz in HUM:
        assert bin_power_db(cleaned, hz) <= bin_power_db(hummed, hz) - 20, hz
    # The speech itself passes: the notches are narrow (this speaker's voice has 2 % of its energy within
    # 2 Hz of 100 Hz, which the 100 Hz notch takes with the hum).
    assert quality.si_sdr(notches.apply(speech), speech) > 15


@pytest.mark.parametrize(
    "rel",
    [
        "noisy/clean/p287_001.wav",
        "noisy/clean/p287_002.wav",
        "noisy/clean/p287_003.wav",
        "speech_en/LJ001-0001.wav",
        "speech_en/LJ001-0003.wav",
        "noise/fish.wav",
        "segmentation/lamartine.wav",
    ],
)
def test_clean_recordings_get_no_notch(media, rel):
    assert find_tones(load(media / rel), RATE, min_prominence_db=12, min_level_dbfs=-60) == []


def test_dnsmos_ranks_clean_speech_above_its_noisy_copy(media):
    for name in ("p287_002", "p287_003"):
        clean = quality.dnsmos(load(media / "noisy" / "clean" / f"{name}.wav", 16000), 16000)
        noisy = quality.dnsmos(load(media / "noisy" / "noisy" / f"{name}.wav", 16000), 16000)
        assert clean.ovrl > noisy.ovrl + 0.5 and clean.bak > noisy.bak + 1.0, (name, clean, noisy)


def test_dnsmos_windows_cover_long_clips_and_fill_short_ones():
    short = quality._windows(np.arange(1, 48_001, dtype=np.float32))  # 3 s: a whole number of hops
    assert short.shape == (1, quality.DNSMOS_WINDOW)
    assert (short[0, 48_000:48_080] == 0).all() and short[0, 48_080] == 1  # repeated half a hop off the grid
    long = quality._windows(np.arange(400_000, dtype=np.float32))
    assert long.shape == (3, quality.DNSMOS_WINDOW) and long[0, 0] == 0 and long[-1, -1] == 399_999


@pytest.mark.parametrize("snr_db", [0, 5, 10])
def test_deepfilter_and_gate_improve_speech_in_cafe_noise(media, snr_db):
    clean, noisy = mixture(media, snr_db)
    before = quality.dnsmos(noisy, RATE)
    with DeepFilterStream(max_attenuation_db=30) as stream:
        filtered = stream.process(noisy, RATE)
    after = quality.dnsmos(filtered, RATE)
    assert len(filtered) == len(noisy)
    assert after.ovrl >= before.ovrl + 0.5, (before, after)
    assert quality.si_sdr(filtered, clean) >= quality.si_sdr(noisy, clean) + 3
    gated = quality.dnsmos(gate(noisy, RATE, None, n_std=1.5, max_attenuation_db=30), RATE)
    assert gated.bak >= before.bak + 0.5, (before, gated)


def test_deepfilter_stream_is_deterministic_per_file(media):
    _, noisy = mixture(media, 5)
    runs = []
    for _ in range(2):
        with DeepFilterStream(max_attenuation_db=30) as stream:
            runs.append([stream.process(noisy[:40_000], RATE), stream.process(noisy[40_000:], RATE)])
    assert all(np.array_equal(a, b) for a, b in zip(*runs, strict=True))


def test_stereo_clips_are_denoised_channel_by_channel(media):
    _, noisy = mixture(media, 5)
    stereo = np.stack([noisy, 0.5 * noisy[::-1]], axis=1)
    noise, cfg = FileNoise(Notches(RATE, ()), None, "test"), DenoiseSettings(method="deepfilter")
    with ClipDenoiser("deepfilter", noise, cfg, RATE) as both, ClipDenoiser("deepfilter", noise, cfg, RATE) as left:
        out = both(stereo)
        assert out.shape == stereo.shape
        assert np.array_equal(out[:, 0], left(stereo[:, :1])[:, 0])


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_auto_never_makes_a_clip_worse_and_falls_back_without_non_speech(media, make_settings, caplog):
    """VoiceBank noisy utterances are speech from end to end: too little non-speech for a profile."""
    settings = make_settings(separate__mode="off", slice__min_duration=0.5)
    gains = []
    for name in ("p287_001", "p287_002", "p287_003"):
        with caplog.at_level(logging.INFO, logger="nr4dl"):
            work, results = process_file(media / "noisy" / "noisy" / f"{name}.wav", settings, until="denoise")
        assert "estimating the noise from the clips by minimum statistics" in caplog.text
        clips = read_clips(work.path("clips.jsonl"))
        assert clips, name
        for clip in clips:
            record = clip.extra["denoise"]
            before, after = record["dnsmos"]["before"], record["dnsmos"]["after"]
            assert after["ovrl"] >= before["ovrl"], (name, record)
            assert after["sig"] >= before["sig"] - settings.denoise.sig_tolerance, (name, record)
            assert (work.path(clip.extra["denoised_path"])).exists() and work.path(clip.path).exists()
            gains.append(after["ovrl"] - before["ovrl"])
        assert results[-1].info["noise"] == "running noise floor per clip"
    assert np.mean(gains) >= 0.5, gains


@pytest.fixture
def hum_file(media, tmp_path) -> Path:
    """3 s of café noise, then fish.wav over the same café at 15 dB; 50 Hz hum, harmonics and a whine throughout."""
    clean, noisy = mixture(media, 15)
    lead = (noisy - clean)[::-1][: 3 * RATE]  # noise only, played backwards so it is not the same samples
    signal = np.concatenate([lead, noisy])
    signal = signal + tones_signal(len(signal))
    path = tmp_path / "hum_cafe.wav"
    sf.write(str(path), signal, RATE, subtype="PCM_16")
    return path


def test_stage_profiles_the_files_own_noise_notches_its_hum_and_keeps_the_originals(hum_file, make_settings):
    settings = make_settings(
        separate__mode="off",
        denoise__method="gate",
        denoise__gate_mode="stationary",
        denoise__noise_labels=["noise", "noEnergy", "music"],
        denoise__min_noise_seconds=1.0,
    )
    work, _ = process_file(hum_file, settings, until="slice")
    originals = {p.name: _sha(p) for p in work.path("clips").iterdir()}
    result = run_stage("denoise", work, settings)
    assert result.info["noise"].startswith("profile from") and "non-speech" in result.info["noise"]
    found = sorted(t["hz"] for t in result.info["tones"])
    for hz in (50.0, 100.0, 150.0, 200.0, 6000.0):
        assert any(abs(f - hz) <= 0.02 * hz for f in found), found
    clips = read_clips(work.path("clips.jsonl"))
    assert clips
    for clip in clips:
        record = clip.extra["denoise"]
        assert record["method"] == "gate" and record["notch_hz"] and "dnsmos" in record and "snr_db" in record
        assert clip.extra["denoised_path"].startswith(f"{DENOISED_DIR.name}/")
        assert work.path(clip.extra["denoised_path"]).exists()
    assert {p.name: _sha(p) for p in work.path("clips").iterdir()} == originals  # originals untouched

    assert run_stage("denoise", work, settings).skipped
    other = make_settings(
        separate__mode="off",
        denoise__method="none",
        denoise__gate_mode="stationary",
        denoise__noise_labels=["noise", "noEnergy", "music"],
        denoise__min_noise_seconds=1.0,
    )
    assert run_stage("slice", work, other).skipped
    redone = run_stage("denoise", work, other)
    assert not redone.skipped and redone.info["method"] == "none"
    assert all(c.extra["denoise"]["method"] == "none" for c in read_clips(work.path("clips.jsonl")))


def test_a_file_without_clips_denoises_to_nothing(media, make_settings):
    settings = make_settings(separate__mode="off", slice__labels=["female"])
    work, results = process_file(media / "segmentation" / "musanmix.mp3", settings, until="denoise")
    assert results[-1].info["clips"] == 0 and read_clips(work.path("clips.jsonl")) == []


def test_a_missing_clip_is_named(media, make_settings):
    settings = make_settings(separate__mode="off", denoise__method="gate")
    work, _ = process_file(media / "segmentation" / "lamartine.wav", settings, until="slice")
    missing = work.path(read_clips(work.path("clips.jsonl"))[0].path)
    missing.unlink()
    with pytest.raises(StageError, match=f"{missing}: clip listed in manifests/slice.jsonl is unreadable"):
        run_stage("denoise", work, settings)
    assert not work.path(DENOISED_DIR.name).exists() and work.read_stamp("denoise") is None


def test_the_gate_takes_clips_shorter_than_one_fft_frame():
    noise = np.random.default_rng(0).normal(0, 0.01, 800).astype(np.float32)
    assert gate(noise, RATE, None, n_std=1.5, max_attenuation_db=30).shape == (800,)


def test_clips_jsonl_follows_the_last_stage_even_when_it_was_already_done(media, make_settings):
    settings = make_settings(separate__mode="off", denoise__method="gate")
    work, _ = process_file(media / "segmentation" / "lamartine.wav", settings, until="denoise")
    assert "denoise" in read_clips(work.path("clips.jsonl"))[0].extra
    run_stage("slice", work, settings)  # done already, but it publishes its own manifest
    assert "denoise" not in read_clips(work.path("clips.jsonl"))[0].extra
    assert run_stage("denoise", work, settings).skipped
    assert "denoise" in read_clips(work.path("clips.jsonl"))[0].extra


def test_the_noise_sample_is_capped_however_long_the_silence():
    spans = noise_spans(
        [Segment("noEnergy", 0.0, 1800.0), Segment("noise", 1900.0, 1930.0), Segment("male", 1930.0, 1990.0)],
        ["noise", "noEnergy"],
    )
    assert spans and sum(s.duration for s in spans) <= PROFILE_MAX_SECONDS + 1e-6
    assert all(s.label != "male" for s in spans)


def _hum_series(length: int, hz: float, level_dbfs: float, rate: int = RATE) -> np.ndarray:
    """Mains hum: `hz` at `level_dbfs` (a sine's peak), its 2nd to 5th harmonics 4, 8, 12 and 16 dB weaker."""
    t = np.arange(length) / rate
    return sum(10 ** ((level_dbfs - 4 * k) / 20) * np.sin(2 * np.pi * hz * (k + 1) * t + k) for k in range(5)).astype(
        np.float32
    )


def _aligned(ref: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """`ref` shifted by the fraction of a sample that best matches `clip` (clip starts are rounded to 1 ms, which
    falls between samples at 22.05 kHz and would cap SI-SDR near 6 dB)."""
    n = min(len(ref), len(clip))
    spectrum, freqs = np.fft.rfft(ref[:n]), np.fft.rfftfreq(n)
    shifts = [np.fft.irfft(spectrum * np.exp(-2j * np.pi * freqs * d), n) for d in np.arange(-1.0, 1.01, 0.05)]
    return max(shifts, key=lambda r: float(r @ clip[:n])).astype(np.float32)


def _clip_pairs(work, rate: int, clean: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(input clip, denoised clip, clean reference at the clip's span) per clip that holds speech."""
    pairs = []
    for clip in read_clips(work.path("clips.jsonl")):
        ref = clean[int(round(clip.start * rate)) : int(round(clip.end * rate))]
        if np.mean(ref**2) > 0.1 * np.mean(clean[np.abs(clean) > 1e-4] ** 2):
            before = load(work.path(clip.path), rate)
            pairs.append((before, load(work.path(clip.extra["denoised_path"]), rate), _aligned(ref, before)))
    return pairs


def _concatenated(media: Path, rels: list[str], rms: float) -> np.ndarray:
    """Utterances back to back with 0.5 s between, scaled to an RMS level."""
    gap = np.zeros(RATE // 2, np.float32)
    speech = np.concatenate([part for rel in rels for part in (load(media / rel), gap)])
    return (speech * rms / np.sqrt(np.mean(speech**2))).astype(np.float32)


@pytest.mark.parametrize("hz", [50.0, 60.0])
def test_hum_and_its_harmonics_come_out_of_clean_speech_without_costing_si_sdr(media, make_settings, tmp_path, hz):
    """Held-out speech (LJ001-0009/0010) at -20 dBFS, hum fundamental at -40 dBFS: every member of the series ends
    at most 3 dB above what the clean speech holds there, or 30 dB down; no clip's SI-SDR falls."""
    clean = _concatenated(media, ["speech_en/LJ001-0009.wav", "speech_en/LJ001-0010.wav"], 0.1)
    noisy = clean + _hum_series(len(clean), hz, -40.0)
    path = tmp_path / f"hum{int(hz)}.wav"
    sf.write(str(path), noisy, RATE, subtype="FLOAT")
    settings = make_settings(separate__mode="off", slice__min_duration=0.5)
    work, results = process_file(path, settings, until="denoise")
    notched = [t for t in results[-1].info["tones"] if t.get("fundamental_hz")]
    assert {t["harmonic"] for t in notched} >= {1, 2, 3, 4, 5}, results[-1].info["tones"]
    clips = read_clips(work.path("clips.jsonl"))
    assert all(c.extra["denoise"]["notches"] for c in clips)
    pairs = _clip_pairs(work, RATE, clean)
    assert pairs
    for before, after, ref in pairs:
        for k in range(1, 6):
            left = bin_power_db(after, k * hz)
            assert left <= bin_power_db(ref, k * hz) + 3 or left <= bin_power_db(before, k * hz) - 30, (k * hz, left)
        assert quality.si_sdr(after, ref) >= quality.si_sdr(before, ref), (
            quality.si_sdr(after, ref),
            quality.si_sdr(before, ref),
        )


def test_auto_costs_no_clip_more_than_1_db_of_si_sdr_on_quiet_speech_in_faint_noise(media, make_settings, tmp_path):
    """Held-out VCTK p227 at -38 dBFS over white noise 30 dB down: where a gate cuts the quiet half of each syllable
    (and DNSMOS likes it), auto must keep the speech."""
    clean = _concatenated(
        media,
        [f"speakers_vctk/p227/{p.name}" for p in sorted((media / "speakers_vctk" / "p227").glob("*.flac"))[:3]],
        0.0126,
    )
    noise = np.random.default_rng(7).standard_normal(len(clean)).astype(np.float32)
    noisy = clean + noise * np.sqrt(np.mean(clean**2)) / 10 ** (30 / 20)
    path = tmp_path / "quiet.wav"
    sf.write(str(path), noisy, RATE, subtype="FLOAT")
    settings = make_settings(separate__mode="off", slice__min_duration=0.5)
    work, results = process_file(path, settings, until="denoise")
    pairs = _clip_pairs(work, RATE, clean)
    assert pairs
    for before, after, ref in pairs:
        assert quality.si_sdr(after, ref) >= quality.si_sdr(before, ref) - 1.0, results[-1].info
    for clip in read_clips(work.path("clips.jsonl")):  # what auto tried on a clip, and why it kept what it kept
        record = clip.extra["denoise"]
        assert "sdr_loss_est_db" in record and ("checks" in record or clip.extra["denoised_path"] == clip.path)
