"""Noisy speech with an exact clean reference, built from ../shared/media, split into tuning and held-out sets.

The split is by speaker (and by noise recording where there are several):
anything tuned on data (the distortion tolerance, the harmonic prominence)
is tuned on TUNING only, and every figure quoted comes from HELD_OUT.

    tuning    VCTK p225, p226; LJ001-0001..0006; VoiceBank p287_001, p287_002;
              Korean ada, adc; LibriSpeech 1688; the first half of the café
              recording; music 'Vibe Ace'; noise seeds 0-999
    held-out  VCTK p227, p228 and the nine one-utterance speakers; LJ001-0009..0014;
              VoiceBank p287_003; Korean ema, emb, nea, pma; LibriSpeech 1998,
              2033, 3080; fish.wav; the second half of the café recording; music
              'Lets Go Fishin'; noise seeds 1000 and up

Each utterance is mixed under one or two conditions, turn by turn:
café noise at 0/5/10/20 dB SNR, mains hum (50 or 60 Hz with its 2nd to 5th
harmonics at decreasing levels, over faint pink noise), quiet speech over
faint white noise (the case where a gate cuts speech), a music bed at 10 dB,
pink noise at 5 dB. The VoiceBank pairs are taken as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from nr4dl_tasks.dsp import audio

MEDIA = (Path(__file__).resolve().parent.parent / ".." / "shared" / "media").resolve()
HUM_LEVELS_DB = (0.0, -4.0, -8.0, -12.0, -16.0)  # fundamental and 2nd-5th harmonics, relative to the fundamental


@dataclass
class Mix:
    name: str
    noisy: np.ndarray
    clean: np.ndarray
    hum_hz: tuple[float, ...] = ()  # injected tones, for measuring what is left of them


def load(path: Path, rate: int) -> np.ndarray:
    samples, src_rate = sf.read(str(path), dtype="float32", always_2d=True)
    return audio.resample(audio.mono(samples), src_rate, rate)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def scaled(noise: np.ndarray, speech: np.ndarray, snr_db: float) -> np.ndarray:
    """`noise` looped or cut to the speech's length, at `snr_db` below the speech's mean power."""
    noise = np.resize(noise, len(speech))
    return (noise * _rms(speech) / max(_rms(noise), 1e-12) / 10 ** (snr_db / 20)).astype(np.float32)


def coloured_noise(length: int, seed: int, exponent: float) -> np.ndarray:
    """Gaussian noise with a 1/f^exponent power spectrum (0: white, 1: pink)."""
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(length))
    freqs = np.maximum(np.fft.rfftfreq(length), 1.0 / length)
    return np.fft.irfft(spectrum / freqs ** (exponent / 2), length).astype(np.float32)


def hum(length: int, rate: int, hz: float, level_dbfs: float, seed: int) -> tuple[np.ndarray, tuple[float, ...]]:
    """Mains hum: `hz` at `level_dbfs` (a sine's peak) and its 2nd to 5th harmonics at decreasing levels."""
    t = np.arange(length) / rate
    phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, len(HUM_LEVELS_DB))
    freqs = tuple(hz * (k + 1) for k in range(len(HUM_LEVELS_DB)))
    wave = sum(
        10 ** ((level_dbfs + rel) / 20) * np.sin(2 * np.pi * f * t + p)
        for f, rel, p in zip(freqs, HUM_LEVELS_DB, phases, strict=True)
    )
    return wave.astype(np.float32), freqs


def _utterances(rate: int, held_out: bool) -> list[tuple[str, np.ndarray]]:
    vctk = MEDIA / "speakers_vctk"
    if held_out:
        files = [p for spk in ("p227", "p228") for p in sorted((vctk / spk).glob("*.flac"))[:8]]
        files += [
            p
            for d in sorted(vctk.iterdir())
            if d.name not in ("p225", "p226", "p227", "p228")
            for p in sorted(d.glob("*.flac"))
        ]
        files += [MEDIA / "speech_en" / f"LJ001-{n:04d}.wav" for n in range(9, 15)]
        files += [
            p
            for spk in ("ema", "emb", "nea", "pma")
            for p in sorted((MEDIA / "korean" / "emotiontts" / spk).glob("*.flac"))[:3]
        ]
        files += [p for spk in ("1998", "2033", "3080") for p in sorted((MEDIA / "speakers" / spk).glob("*.flac"))[:3]]
        files += [MEDIA / "noise" / "fish.wav"]
    else:
        files = [p for spk in ("p225", "p226") for p in sorted((vctk / spk).glob("*.flac"))[:8]]
        files += [MEDIA / "speech_en" / f"LJ001-{n:04d}.wav" for n in range(1, 7)]
        files += [
            p for spk in ("ada", "adc") for p in sorted((MEDIA / "korean" / "emotiontts" / spk).glob("*.flac"))[:3]
        ]
        files += [p for p in sorted((MEDIA / "speakers" / "1688").glob("*.flac"))[:3]]
    return [(p.stem, load(p, rate)) for p in files]


def mixes(
    rate: int, held_out: bool, per_utterance: int = 1, utterances: list[tuple[str, np.ndarray]] | None = None
) -> list[Mix]:
    """The tuning or the held-out mixes at `rate` Hz, the same ones on every call; with `utterances` (name,
    samples) those under the tuning or held-out noises instead, without the VoiceBank pairs."""
    cafe = load(MEDIA / "noise" / "cafe_short.wav", rate)
    cafe = cafe[len(cafe) // 2 :] if held_out else cafe[: len(cafe) // 2]
    music = load(
        MEDIA / "music" / ("Karissa_Hobbs_-_Lets_Go_Fishin.ogg" if held_out else "Kevin_MacLeod_-_Vibe_Ace.ogg"), rate
    )[10 * rate : 40 * rate]
    seed0 = 1000 if held_out else 0
    made = []
    for n in () if utterances is not None else ("003",) if held_out else ("001", "002"):
        made.append(
            Mix(
                f"vb_{n}",
                load(MEDIA / "noisy" / "noisy" / f"p287_{n}.wav", rate),
                load(MEDIA / "noisy" / "clean" / f"p287_{n}.wav", rate),
            )
        )
    turn = 0
    for index, (name, speech) in enumerate(utterances if utterances is not None else _utterances(rate, held_out)):
        speech = speech * (0.1 / max(_rms(speech), 1e-6))  # -20 dBFS
        for _ in range(per_utterance):
            seed, kind = seed0 + turn, turn % 8
            turn += 1
            tones: tuple[float, ...] = ()
            clean = speech
            if kind < 4:
                label, noise = f"cafe{(0, 5, 10, 20)[kind]}", scaled(cafe, speech, (0, 5, 10, 20)[kind])
            elif kind in (4, 5):
                hz = 50.0 if kind == 4 else 60.0
                wave, tones = hum(len(speech), rate, hz, -40.0 - 6 * (seed % 3), seed)
                label, noise = f"hum{int(hz)}", wave + scaled(coloured_noise(len(speech), seed, 1.0), speech, 35)
            elif kind == 6:
                clean = speech * 0.125  # -38 dBFS: quiet read speech
                label, noise = "quiet", scaled(coloured_noise(len(speech), seed, 0.0), clean, 30 + 5 * (seed % 2))
            else:
                offset = (index * rate * 3) % max(1, len(music) - len(speech))
                label, noise = (
                    ("music10", scaled(music[offset:], speech, 10))
                    if (turn // 8) % 2
                    else ("pink5", scaled(coloured_noise(len(speech), seed, 1.0), speech, 5))
                )
            made.append(Mix(f"{name}_{label}", (clean + noise).astype(np.float32), clean.astype(np.float32), tones))
    return made


def tone_level_db(x: np.ndarray, hz: float, rate: int) -> float:
    """Power at `hz` (the strongest of the three FFT bins nearest it, Hann window over the whole signal)."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    k = int(round(hz * len(x) / rate))
    return float(10 * np.log10(spectrum[k - 1 : k + 2].max() / len(x) + 1e-20))


def tone_left(out: np.ndarray, noisy: np.ndarray, clean: np.ndarray, hz: float, rate: int) -> tuple[float, float]:
    """(dB above the clean level, dB below the noisy level) of what is left at `hz`."""
    left = tone_level_db(out, hz, rate)
    return left - tone_level_db(clean, hz, rate), tone_level_db(noisy, hz, rate) - left


def tone_removed(out: np.ndarray, noisy: np.ndarray, clean: np.ndarray, hz: float, rate: int) -> bool:
    """The issue's criterion: at most 3 dB above the clean level, or 30 dB down."""
    above, down = tone_left(out, noisy, clean, hz, rate)
    return above <= 3.0 or down >= 30.0
