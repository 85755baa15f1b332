"""Per-target decision thresholds calibrated from the data, with adaptive score normalisation.

A fixed cosine threshold suits the voices it was tuned on: a new voice,
microphone or show moves both its own scores and its impostors'. Speaker
verification answers this with two tools, both used here:

* **adaptive s-norm** (AS-norm): a raw score s between a target voice and a clip
  is compared with how that target scores against a cohort of other voices, and
  with how that clip scores against the same cohort, each time using only the
  `top` closest cohort members (those that matter for a false accept):
  ``norm = ((s - mu_target) / sd_target + (s - mu_clip) / sd_clip) / 2``.
  A voice that resembles many others, or a clip with music under it that
  resembles everything a little, no longer passes on a raw score that is high
  only because everything is high;
* **the operating point from impostor trials**: clips of other voices are
  scored (and normalised) against the target as any clip is. The threshold is
  the point a normal fit of those impostor scores exceeds with probability
  `false_accept_rate`, so the setting says how often a clip of another voice
  may pass, not where on a cosine scale a voice lies. The impostors are the
  file's own other voices where it has enough of them (same channel, music and
  language as the target's clips), else the cohort members themselves.

Genuine scores, each enrollment recording against the others (leave-one-out),
are normalised the same way; they say how much of the target's own speech the
threshold is expected to keep (`expected_recall`), a warning sign when few
enrollment recordings or a poor cohort leave the target unreachable. Clean
enrollment recordings score higher than a programme's clips, so this estimate
is optimistic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_COHORT = 8  # fewer impostor voices than this give no reliable estimate of the impostor scores' spread


@dataclass(frozen=True)
class Calibrated:
    """A target's voice, its cohort and the threshold on its normalised scores."""

    name: str
    voice: np.ndarray  # unit mean of the enrollment recordings
    cohort: np.ndarray  # (n, d) unit embeddings of other voices
    mu: float  # the voice's top-`top` cohort score statistics (the target side of s-norm)
    sd: float
    threshold: float  # on the normalised score
    impostor: tuple[float, float]  # mean and sd of the normalised impostor scores
    genuine: tuple[float, ...]  # normalised leave-one-out scores of the enrollment recordings
    top: int
    reliable: bool  # at least MIN_COHORT impostor trials set the threshold

    @property
    def expected_recall(self) -> float | None:
        """Share of the enrollment recordings that pass the threshold against the others (None with one)."""
        if not self.genuine:
            return None
        return float(np.mean(np.array(self.genuine) >= self.threshold))

    def normalise(self, raw: np.ndarray, clips: np.ndarray) -> np.ndarray:
        """Normalised scores of clips (n, d) whose raw scores against the voice are `raw` (n,)."""
        mu, sd = top_stats(clips @ self.cohort.T, self.top)
        return 0.5 * ((raw - self.mu) / self.sd + (raw - mu) / sd)


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def top_stats(scores: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the `top` largest scores along the last axis (-inf entries left out)."""
    finite = int(np.isfinite(scores).sum(axis=-1).min()) if scores.size else 0
    k = max(1, min(top, finite))  # -inf sorts last, so the k largest are finite
    best = -np.sort(-scores, axis=-1)[..., :k]
    return best.mean(axis=-1), np.maximum(best.std(axis=-1), 1e-3)


def calibrate(
    name: str,
    recordings: np.ndarray,
    cohort: np.ndarray,
    in_file: np.ndarray,
    false_accept_rate: float,
    top: int,
) -> Calibrated:
    """The target `name` with enrollment embeddings `recordings` (n, d), against `cohort` (m, d) of other voices
    (the open cohort and the other targets) and `in_file` (k, d), the file's clips of other voices.

    Scores are normalised against `cohort`. The impostor trials that set the
    threshold are the file's other voices when there are at least MIN_COHORT of
    them: they share the clips' channel, music and language, so their scores
    are what a false accept looks like in this file. Without them the cohort
    members are scored (each leaving itself out), a stricter estimate: clean
    recordings of other voices spread wider than a file's clips. Fewer than
    MIN_COHORT trials give an unreliable threshold; a ValueError with fewer
    than 2 cohort members.
    """
    from scipy.stats import norm

    if len(cohort) < 2:
        raise ValueError(f"{len(cohort)} other voice(s) to calibrate {name} against")
    voice = unit_rows(recordings.mean(axis=0))
    raw = cohort @ voice
    mu, sd = top_stats(raw, top)
    reliable = len(in_file) >= MIN_COHORT or len(cohort) >= MIN_COHORT
    if len(in_file) >= MIN_COHORT:
        s = in_file @ voice
        c_mu, c_sd = top_stats(in_file @ cohort.T, top)
        impostor = 0.5 * ((s - mu) / sd + (s - c_mu) / c_sd)
    else:  # each cohort member as a clip, the cohort without it
        others = cohort @ cohort.T
        np.fill_diagonal(others, -np.inf)
        clip_mu, clip_sd = top_stats(others, top)
        target_side = np.tile(raw, (len(raw), 1))
        np.fill_diagonal(target_side, -np.inf)
        t_mu, t_sd = top_stats(target_side, top)
        impostor = 0.5 * ((raw - t_mu) / t_sd + (raw - clip_mu) / clip_sd)
    i_mean, i_sd = float(impostor.mean()), float(max(impostor.std(), 1e-3))
    threshold = i_mean + float(norm.ppf(1 - false_accept_rate)) * i_sd
    genuine = []
    for j in range(len(recordings) if len(recordings) > 1 else 0):
        model = unit_rows(np.delete(recordings, j, axis=0).mean(axis=0))
        m_mu, m_sd = top_stats(cohort @ model, top)
        r_mu, r_sd = top_stats(cohort @ recordings[j], top)
        s = float(recordings[j] @ model)
        genuine.append(0.5 * ((s - m_mu) / m_sd + (s - r_mu) / r_sd))
    return Calibrated(
        name, voice, cohort, float(mu), float(sd), threshold, (i_mean, i_sd), tuple(map(float, genuine)), top, reliable
    )


def score_clips(targets: list[Calibrated], clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw and normalised scores (n, len(targets)) of clip embeddings (n, d) against each target."""
    raw = clips @ np.array([t.voice for t in targets]).T
    norm = np.stack([t.normalise(raw[:, i], clips) for i, t in enumerate(targets)], axis=1)
    return raw, norm


def decide(norm: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of the best target, whether it is accepted) per clip: the target a clip passes by the widest
    margin over its own threshold, so a voice with a strict threshold does not win clips on a high score."""
    margin = norm - thresholds[None, :]
    best = np.argmax(margin, axis=1)
    return best, margin[np.arange(len(norm)), best] >= 0


def file_impostors(voice: np.ndarray, clips: np.ndarray, labels: list[int]) -> np.ndarray:
    """Mask of the clips (n, d) that are another voice than `voice`'s, by the file's clustering `labels`: all but
    the cluster whose centroid is nearest the voice (the target's own, when it speaks in the file)."""
    groups = sorted(set(labels))
    lab = np.array(labels)
    centroids = unit_rows(np.array([clips[lab == g].mean(axis=0) for g in groups]))
    return lab != groups[int(np.argmax(centroids @ voice))]


def calibrate_targets(
    recordings: dict[str, np.ndarray],
    open_cohort: np.ndarray,
    clips: np.ndarray,
    labels: list[int],
    false_accept_rate: float,
    top: int,
) -> list[Calibrated]:
    """Every target calibrated against the open cohort with the other targets' recordings, and the file's clips
    of voices other than its own. Without MIN_COHORT of the former, the file's other voices are the cohort too."""
    targets = []
    for name, own in recordings.items():
        known = [open_cohort.reshape(-1, own.shape[1])] + [r for n, r in recordings.items() if n != name]
        voice = unit_rows(own.mean(axis=0))
        in_file = clips[file_impostors(voice, clips, labels)] if len(clips) else clips.reshape(0, own.shape[1])
        cohort = np.concatenate(known)
        if len(cohort) < MIN_COHORT:
            cohort, in_file = np.concatenate([cohort, in_file]), in_file[:0]
        targets.append(calibrate(name, own, cohort, in_file, false_accept_rate, top))
    return targets
