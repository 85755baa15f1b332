"""Find persistent narrow-band tones (mains hum and its harmonics, a whine, a carrier) and notch exactly those.

A tone is a peak that stands well above the spectrum around it in the median
spectrum of many 1 s frames, and does so in most frames: speech harmonics move
with the pitch and drop out of the median, a hum does not. Frequencies are
refined between FFT bins by parabolic interpolation, and each notch's Q comes
from the measured width of its peak, so a drifting carrier gets a wider notch
than a crystal-clean 50 Hz. A tone must also be loud enough to matter
(`min_level_dbfs`, as a sine's peak level): studio recordings carry hum at -80
dBFS that nobody hears, and notching it would only touch a clean file. Filters
run forwards and backwards (zero phase, and twice the attenuation in dB).

Mains hum is a series: a fundamental at 50 or 60 Hz and harmonics at exact
multiples, the higher ones weaker and sitting among the voice's own harmonics,
where a 12 dB prominence misses them (60 Hz hum's 180 Hz harmonic was left 9 dB
above the clean level). So once a fundamental is found (a tone at 50 or 60 Hz,
or any tone whose 2nd or 3rd harmonic was found too), every multiple of it is
looked at with a lower prominence (`harmonic_min_prominence_db`) on a
spectrum of 8 s segments, where a steady tone gains on the speech around it;
its position is known, which is what makes a weaker peak trustworthy, and the
search ends after two harmonics in a row are missing (peaks of the voice
at random multiples are no series). The series is then placed on the
median of the same spectra of unbroken blocks of the file, not on the noise
sample: the noise sample is pieces of pauses put end to end, and at every
join the hum's phase jumps, which splits and shifts its peak (50 Hz hum was
placed at 49.68 Hz, where a narrow notch leaves most of it). Those notches are narrower (0.5
Hz: every 3 Hz notch under a voice costs it about 1 % of its energy). Other
tones (a whine, a carrier) keep the plain rule.

A notch is applied to a clip only where what it removes there is mostly its
steady tone (`Notches.for_clip`): a weak hum harmonic where a voice's own
harmonics dwell is masked by them, and notching it took more of the voice
than of the hum (a held-out hum clip lost 5.4 dB of SI-SDR to well-placed notches alone). Each clip is filtered with its
edges extended by the tones fitted to them, so that a notch's long ringing
(a 0.5 Hz notch has a time constant of 0.6 s) starts outside the clip.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

ANALYSIS_SECONDS = 1.0  # frame length: 1 Hz bins
BACKGROUND_HZ = 41  # width of the running median that stands for the spectrum around a peak
PERSISTENT_DB = 6.0  # a tone must stand this far above the background ...
PERSISTENT_SHARE = 0.8  # ... in at least this share of frames
MIN_HZ = 20.0
MIN_BANDWIDTH_HZ = 3.0  # narrower notches would miss a tone that drifts by a fraction of a hertz
MAX_TONES = 24
MAINS_HZ = (50.0, 60.0)
HARMONIC_TOLERANCE = 0.01  # a harmonic lies within 1 % of its multiple of the fundamental (and within a bin)
MAX_HARMONIC = 25  # highest multiple looked for (1.25 kHz for 50 Hz mains)
FUNDAMENTAL_ERROR_HZ = 0.5  # a fundamental from 1 s frames is re-measured within this of where they put it
HARMONIC_ERROR_HZ = 0.02  # then the k-th harmonic lies within k times this (and a bin) of k times it
SERIES_GAP = 2  # the series ends at this many harmonics in a row not found (speech peaks are not a series)
SERIES_MIN_BANDWIDTH_HZ = 0.5  # a harmonic's place is known to a few hundredths of a hertz: a narrower notch
SERIES_SECONDS = 8.0  # segment of the spectrum harmonics are looked for in (1/8 Hz bins)
SIDES = (-3.0, -2.0, 2.0, 3.0)  # where, in notch bandwidths off a tone, the voice under it is read
FIT_SECONDS = 1.0  # clip edge the tones are fitted to, to extend it
RING_TIME_CONSTANTS = 4.0  # the extension lasts this many time constants of the narrowest notch (99 % decayed)


@dataclass(frozen=True)
class Tone:
    hz: float
    q: float
    prominence_db: float  # above the spectrum around it
    level_dbfs: float  # peak level of the sine
    fundamental_hz: float | None = None  # set on every member of a harmonic series, the fundamental included
    harmonic: int | None = None  # 1 for the fundamental, 2 for the first overtone, ...

    def as_dict(self) -> dict[str, float | int]:
        facts: dict[str, float | int] = {
            "hz": round(self.hz, 2),
            "q": round(self.q, 1),
            "prominence_db": round(self.prominence_db, 1),
            "level_dbfs": round(self.level_dbfs, 1),
        }
        if self.fundamental_hz is not None and self.harmonic is not None:
            facts.update(fundamental_hz=round(self.fundamental_hz, 2), harmonic=self.harmonic)
        return facts


def _frames_db(samples: np.ndarray, rate: int) -> np.ndarray:
    """Power spectra in dB of 1 s Hann frames with half overlap, shape (frames, bins)."""
    from scipy.signal import stft

    n = int(rate * ANALYSIS_SECONDS)
    _, _, spec = stft(samples, fs=rate, window="hann", nperseg=n, noverlap=n // 2, boundary=None, padded=False)
    return 10 * np.log10(np.abs(spec.T) ** 2 + 1e-20)


def _refine(spectrum_db: np.ndarray, k: int) -> float:
    """Sub-bin peak position by fitting a parabola through the peak bin and its neighbours."""
    a, b, c = spectrum_db[k - 1], spectrum_db[k], spectrum_db[k + 1]
    denom = a - 2 * b + c
    return k + (0.5 * (a - c) / denom if denom < 0 else 0.0)


@dataclass
class _Spectrum:
    """A power spectrum in dB and how far each bin stands above its surroundings."""

    level_db: np.ndarray  # per bin; a sine's peak level is level_db + level_offset_db
    prominence: np.ndarray
    hz_per_bin: float
    level_offset_db: float

    @classmethod
    def of(cls, level_db: np.ndarray, hz_per_bin: float, level_offset_db: float) -> _Spectrum:
        from scipy.ndimage import median_filter

        background = median_filter(level_db, size=int(BACKGROUND_HZ / hz_per_bin) | 1, mode="nearest")
        return cls(level_db, level_db - background, hz_per_bin, level_offset_db)

    def level_dbfs(self, k: int) -> float:
        return float(self.level_db[k] + self.level_offset_db)

    def tone(
        self,
        k: int,
        min_bandwidth_hz: float = MIN_BANDWIDTH_HZ,
        fundamental_hz: float | None = None,
        harmonic: int | None = None,
    ) -> Tone:
        from scipy.signal import peak_widths

        is_peak = self.level_db[k] >= max(self.level_db[k - 1], self.level_db[k + 1])
        width_hz = (
            float(peak_widths(10 ** (self.prominence / 10), [k], rel_height=0.5)[0][0]) * self.hz_per_bin
            if is_peak
            else 0.0
        )
        hz = _refine(self.level_db, k) * self.hz_per_bin
        bandwidth = max(min_bandwidth_hz, 2 * width_hz)
        return Tone(
            float(hz), float(hz / bandwidth), float(self.prominence[k]), self.level_dbfs(k), fundamental_hz, harmonic
        )


def _long_spectrum(blocks: list[np.ndarray], rate: int) -> _Spectrum:
    """Median over continuous blocks of their Welch spectra with SERIES_SECONDS segments: a steady harmonic gains on
    the speech around it with length, and the median drops what only some blocks hold (a sung note, a voice)."""
    from scipy.signal import welch

    n = min(int(SERIES_SECONDS * rate), *(len(b) for b in blocks))
    spectra = [welch(b, fs=rate, window="hann", nperseg=n, noverlap=n // 2, scaling="spectrum")[1] for b in blocks]
    # 'spectrum' scaling gives a sine of amplitude A as A^2/2 in its bin: +3 dB gives the sine's peak level.
    return _Spectrum.of(10 * np.log10(np.median(spectra, axis=0) + 1e-20), rate / n, 3.01)


def _near(hz: float, target: float) -> bool:
    return abs(hz - target) <= max(HARMONIC_TOLERANCE * target, 1.0 / ANALYSIS_SECONDS)


def _fundamentals(tones: list[Tone]) -> list[Tone]:
    """Tones that start a series: mains frequencies, and any tone whose 2nd or 3rd harmonic is a tone too."""
    roots: list[Tone] = []
    for tone in sorted(tones, key=lambda t: t.hz):
        if any(_near(tone.hz, k * r.hz) for r in roots for k in range(1, MAX_HARMONIC + 1)):
            continue  # found twice (in 1 s frames and the long spectrum), or a member of a lower series
        if any(_near(tone.hz, hz) for hz in MAINS_HZ) or any(
            _near(other.hz, k * tone.hz) for other in tones for k in (2, 3)
        ):
            roots.append(tone)
    return roots


def _strongest(spectrum: _Spectrum, hz: float, error_hz: float) -> int:
    """The most prominent bin within one bin and `error_hz` of `hz`."""
    reach = 1 + error_hz / spectrum.hz_per_bin
    centre = hz / spectrum.hz_per_bin
    lo, hi = int(np.ceil(centre - reach)), int(np.floor(centre + reach)) + 1
    return lo + int(np.argmax(spectrum.prominence[lo:hi]))


def _mains(spectrum: _Spectrum, min_prominence_db: float, min_level_dbfs: float) -> list[Tone]:
    """A 50 or 60 Hz fundamental too weak for 1 s frames but standing out in the long spectrum."""
    found = []
    for hz in MAINS_HZ:
        k = _strongest(spectrum, hz, HARMONIC_TOLERANCE * hz)
        if spectrum.prominence[k] >= min_prominence_db and spectrum.level_dbfs(k) >= min_level_dbfs:
            found.append(spectrum.tone(k))
    return found


def _series(
    found: _Spectrum,
    placed: _Spectrum,
    root: Tone,
    min_prominence_db: float,
    min_level_dbfs: float,
    top_hz: float,
) -> list[Tone]:
    """The fundamental and each of its harmonics that stands `min_prominence_db` out and is audible.

    A member stands out on the unbroken blocks' long spectrum (`placed`), and is placed at its peak there, or on
    the noise sample's (`found`: the file's pauses, where a weak harmonic under a voice still stands out, but
    where the joins of the pauses split the peaks), and is placed at its multiple of the fundamental. The
    fundamental is placed on the blocks, to a few hundredths of a hertz, where it stands out there.
    """
    k0 = _strongest(placed, root.hz, FUNDAMENTAL_ERROR_HZ)
    placed_well = placed.prominence[k0] >= min_prominence_db
    f0 = _refine(placed.level_db, k0) * placed.hz_per_bin if placed_well else root.hz
    members = [
        placed.tone(k0, SERIES_MIN_BANDWIDTH_HZ, fundamental_hz=f0, harmonic=1)
        if placed_well
        else Tone(root.hz, root.q, root.prominence_db, root.level_dbfs, f0, 1)
    ]
    missed = 0
    for k in range(2, MAX_HARMONIC + 1):
        if k * f0 + 1 >= top_hz or missed == SERIES_GAP:
            break
        b, p = _strongest(found, k * f0, k * HARMONIC_ERROR_HZ), _strongest(placed, k * f0, k * HARMONIC_ERROR_HZ)
        on_blocks = placed.prominence[p] >= min_prominence_db and placed.level_dbfs(p) >= min_level_dbfs
        if on_blocks:
            members.append(placed.tone(p, SERIES_MIN_BANDWIDTH_HZ, fundamental_hz=f0, harmonic=k))
        elif found.prominence[b] >= min_prominence_db and found.level_dbfs(b) >= min_level_dbfs:
            bandwidth = SERIES_MIN_BANDWIDTH_HZ
            members.append(Tone(k * f0, k * f0 / bandwidth, float(found.prominence[b]), found.level_dbfs(b), f0, k))
        else:
            missed += 1
            continue
        missed = 0
    return members


def find_tones(
    samples: np.ndarray,
    rate: int,
    min_prominence_db: float,
    min_level_dbfs: float,
    harmonic_min_prominence_db: float | None = None,
    continuous: list[np.ndarray] | None = None,
) -> list[Tone]:
    """Persistent, audible narrow-band tones in a mono signal (at least 2 s of it): harmonic series, then the rest.

    A harmonic of a found fundamental needs `harmonic_min_prominence_db`
    (default: `min_prominence_db`), measured on a longer-window spectrum; the
    series is placed on `continuous` (blocks of unbroken audio of the same
    recording; default: `samples` itself, when that is unbroken).
    """
    from scipy.signal import find_peaks

    if len(samples) < 2 * rate * ANALYSIS_SECONDS:
        return []
    samples = samples.astype(np.float64)
    frames = _frames_db(samples, rate)
    # scipy's stft scales a sine of amplitude A to a bin of magnitude A/2: +6 dB gives the sine's level.
    spectrum = _Spectrum.of(np.median(frames, axis=0), 1.0 / ANALYSIS_SECONDS, 6.02)
    top_hz = 0.95 * rate / 2
    peaks, _ = find_peaks(
        spectrum.prominence[: int(top_hz / spectrum.hz_per_bin)], height=min_prominence_db, distance=3
    )
    peaks = [
        int(k)
        for k in peaks
        if k * spectrum.hz_per_bin >= MIN_HZ
        and spectrum.level_dbfs(k) >= min_level_dbfs
        and np.mean(frames[:, k] - (spectrum.level_db[k] - spectrum.prominence[k]) > PERSISTENT_DB) >= PERSISTENT_SHARE
    ]
    tones = sorted((spectrum.tone(k) for k in peaks), key=lambda t: -t.prominence_db)[:MAX_TONES]
    found = _long_spectrum([samples], rate)
    placed = _long_spectrum([b.astype(np.float64) for b in continuous], rate) if continuous else found
    roots = _fundamentals(tones + _mains(found, min_prominence_db, min_level_dbfs))
    harmonic_db = harmonic_min_prominence_db or min_prominence_db
    series = [member for root in roots for member in _series(found, placed, root, harmonic_db, min_level_dbfs, top_hz)]
    return series + [t for t in tones if not any(_near(t.hz, s.hz) for s in series)]


def filter_design(
    rate: int, tones: list[Tone], highpass_hz: float | None, lowpass_hz: float | None
) -> np.ndarray | None:
    """One second-order-sections cascade for every notch and band edge, or None when there is nothing to do."""
    from scipy.signal import butter, iirnotch, tf2sos

    sections = [tf2sos(*iirnotch(t.hz, t.q, fs=rate)) for t in tones if t.hz < 0.98 * rate / 2]
    if highpass_hz:
        sections.append(butter(4, highpass_hz, "highpass", fs=rate, output="sos"))
    if lowpass_hz:
        sections.append(butter(4, lowpass_hz, "lowpass", fs=rate, output="sos"))
    return np.concatenate(sections) if sections else None


def _edge_extension(edge: np.ndarray, edge_t: np.ndarray, t: np.ndarray, hz: np.ndarray) -> np.ndarray:
    """The tones (and the mean) least-squares fitted to `edge` at times `edge_t`, continued to times `t`."""

    def basis(times: np.ndarray) -> np.ndarray:
        phase = 2 * np.pi * times[:, None] * hz[None, :]
        return np.concatenate([np.ones((len(times), 1)), np.cos(phase), np.sin(phase)], axis=1)

    coef = np.linalg.lstsq(basis(edge_t), edge, rcond=None)[0]
    return basis(t) @ coef


@dataclass(frozen=True)
class Notches:
    """The notches and band edges of one file, applied to a clip (`for_clip` picks the notches that clip needs)."""

    rate: int
    tones: tuple[Tone, ...]
    highpass_hz: float | None = None
    lowpass_hz: float | None = None

    @cached_property
    def sos(self) -> np.ndarray | None:
        return filter_design(self.rate, list(self.tones), self.highpass_hz, self.lowpass_hz)

    def for_clip(self, samples: np.ndarray) -> Notches:
        """The notches that take from this clip more of their tone than of the voice and noise around it.

        What a notch takes is read from the clip's power spectrum weighted by
        the notch's own removal, (1 - |H|^2)^2 of a zero-phase notch. At the
        tone that is tone plus voice; the same notch moved 2 to 3 bandwidths to
        either side takes voice alone, and the voice's spectrum is smooth over a few
        hertz where a tone's is a line. A notch whose tone is the smaller part
        would cost the clip SI-SDR to clean a hum the voice masks.
        """
        if not self.tones:
            return self
        x = samples.astype(np.float64)
        x = x.mean(axis=1) if x.ndim > 1 else x
        power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2  # a tone's leakage must not reach the sides
        freqs = np.fft.rfftfreq(len(x), 1.0 / self.rate)

        def taken(hz: float, bandwidth: float) -> float:
            near = np.abs(freqs - hz) <= 20 * bandwidth
            removal = (bandwidth / 2) ** 2 / ((freqs[near] - hz) ** 2 + (bandwidth / 2) ** 2)
            return float(power[near] @ removal**2)

        kept = []
        for tone in self.tones:
            bandwidth = tone.hz / tone.q
            voice = float(np.mean([taken(tone.hz + d * bandwidth, bandwidth) for d in SIDES]))
            if taken(tone.hz, bandwidth) - voice > voice:
                kept.append(tone)
        return replace(self, tones=tuple(kept))

    def apply(self, samples: np.ndarray) -> np.ndarray:
        """Zero-phase filtering along the time axis (a no-op without filters).

        The clip is extended at both ends by its tones fitted to its first and
        last second, long enough for the narrowest notch to ring out there, so
        the clip itself is filtered as if it were cut from the whole recording.
        """
        sos = self.sos
        if sos is None or len(samples) < 16:
            return samples
        from scipy.signal import sosfiltfilt

        x = samples.astype(np.float64)
        hz = np.array([t.hz for t in self.tones])
        narrowest = min((t.hz / t.q for t in self.tones), default=None)
        pad = int(RING_TIME_CONSTANTS / (np.pi * narrowest) * self.rate) if narrowest else 3 * (2 * len(sos) + 1)
        n, fit = len(x), min(len(x), int(FIT_SECONDS * self.rate))
        edge_t = np.arange(fit) / self.rate
        head = _edge_extension(x[:fit], edge_t, np.arange(-pad, 0) / self.rate, hz)
        tail = _edge_extension(x[n - fit :], edge_t, np.arange(fit, fit + pad) / self.rate, hz)
        extended = np.concatenate([head, x, tail])
        return sosfiltfilt(sos, extended, axis=0, padlen=0)[pad : pad + n].astype(np.float32)
