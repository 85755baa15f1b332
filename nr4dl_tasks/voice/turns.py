"""Speaker turns inside a clip: short CAM++ windows split into the clip's own two voices, if it has two.

The purity check (stages/speakers.py) compares the voice averaged before a
point with the voice averaged after it. With rapid turn-taking (turns of 1-4 s,
as in a talk show) both averages hold both voices and the clip looks pure. Here
every 1 s window, every 0.25 s, is embedded on its own (CAM++, which separates
voices by a far wider margin than Resemblyzer on short audio), and the windows
are split into two groups of similar voice, wherever they lie in time:

* **one voice or two**: the two groups' centroids are compared. Splitting one
  voice's windows in two still leaves similar halves; two voices leave centroids
  far apart. Below `threshold` (and each group holding MIN_WINDOWS windows), the
  clip may hold two voices (checked last). The threshold comes from tuning
  speakers (bench/speakers.py);
* **where each voice speaks**: each window goes to the nearer centroid. Its
  margin (similarity to its own centroid minus the other's) says how clearly;
  a window whose margin is under half the median margin of its group (a scale
  set by the clip itself) mixes the voices: a change of speaker inside it, or
  two voices at once. Such windows belong to no span, so overlapped speech is
  never kept in a single-voice piece;
* **spans**: runs of clear windows of one voice, each window standing for the
  0.25 s around its centre (the first and last reach the clip's ends). A change
  of voice is placed midway between two runs, and each side gives up GUARD
  (0.75 s) next to it: turns in conversation overlap at their edges, and a 1 s
  window over a short overlap is still dominated by one voice, so the margin
  alone leaves part of the overlap in a piece. On mixes of tuning speakers with
  1 s of overlap at the change, a guard of 0.5 s kept 31 % of the overlapped
  speech, 0.75 s 15 % and 1 s 9 %, losing 5 %, 10 % and 17 % of the clean speech;
* **the check of a cut** (`verify`): 1 s windows leave one voice's and two
  voices' centroid similarities overlapping (on the tuning mixes, 0.61-0.78 for
  rapid exchanges, 0.70-0.88 for one voice split in two), since a window's
  embedding moves with what is said in it. So each group's runs of clear windows
  are joined and embedded as one utterance, several seconds that CAM++ places
  far more surely, and the cut stands only when the two voices are less similar
  than `voice_threshold`; otherwise the clip is one voice and stays whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

WINDOW = 100  # frames (10 ms) per window: 1 s, short enough for one turn, long enough for CAM++
HOP = 25  # frames between windows: 0.25 s, the resolution of a change
MIN_WINDOWS = 4  # a voice needs this many windows (about 1 s of its own speech) to count
SPLIT_WINDOWS = 2 * MIN_WINDOWS  # a clip with fewer windows is one voice: no need to embed them
GUARD = 75  # frames each side of a change that no span keeps (module docstring)
KMEANS_ROUNDS = 20
FRAME_SECONDS = 0.01


@dataclass(frozen=True)
class Turns:
    """The windows' split into the clip's voices and the single-voice spans found."""

    similarity: float  # cosine of the two groups' centroids (1.0 when the clip is too short to split)
    two_voices: bool
    spans: tuple[tuple[float, float], ...]  # seconds; the whole clip when it holds one voice
    changes: tuple[float, ...]  # seconds: where the voice changes (midway between two runs of different voices)
    runs: tuple[tuple[float, float, int], ...] = ()  # each voice's (0/1) runs of clear windows, unguarded
    voice_similarity: float = 1.0  # cosine of the two voices' joined runs, embedded whole (1.0: not checked)

    @classmethod
    def one_voice(cls, duration: float, similarity: float = 1.0, voice_similarity: float = 1.0) -> Turns:
        """The whole clip of `duration` seconds as one voice, with the similarities that decided so."""
        return cls(similarity, False, ((0.0, duration),), (), voice_similarity=voice_similarity)


def centres(n_windows: int) -> np.ndarray:
    """Each window's centre in seconds."""
    return (np.arange(n_windows) * HOP + WINDOW / 2) * FRAME_SECONDS


def _unit(x: np.ndarray) -> np.ndarray:
    return x / max(float(np.linalg.norm(x)), 1e-12)


def split_in_two(emb: np.ndarray) -> np.ndarray:
    """Labels 0/1 of unit embeddings (n, d): average-linkage into two groups, refined by spherical 2-means.

    Linkage alone may set one odd window apart; the 2-means rounds move every
    window to the nearer centroid until nothing changes.
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    labels = fcluster(linkage(emb.astype(np.float64), method="average", metric="cosine"), 2, "maxclust") - 1
    for _ in range(KMEANS_ROUNDS):
        if labels.min() == labels.max():
            break
        c = np.array([_unit(emb[labels == k].mean(axis=0)) for k in (0, 1)])
        new = np.argmax(emb @ c.T, axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
    return np.asarray(labels)


def _runs(labels: np.ndarray, duration: float) -> list[tuple[float, float, int]]:
    """Runs of equal labels >= 0 as (start, end seconds, label), each window standing for the hop around its
    centre."""
    c = centres(len(labels))
    edges = np.concatenate([[0.0], (c[:-1] + c[1:]) / 2, [duration]])
    spans = []
    i = 0
    while i < len(labels):
        j = i
        while j + 1 < len(labels) and labels[j + 1] == labels[i]:
            j += 1
        if labels[i] >= 0:
            spans.append((float(edges[i]), float(edges[j + 1]), int(labels[i])))
        i = j + 1
    return spans


def _guarded(runs: list[tuple[float, float, int]]) -> tuple[list[tuple[float, float]], list[float]]:
    """The runs' spans, each shortened by GUARD next to a change of voice, and the changes."""
    guard = GUARD * FRAME_SECONDS
    spans = [[a, b] for a, b, _ in runs]
    changes = []
    for k in range(len(runs) - 1):
        if runs[k][2] != runs[k + 1][2]:
            change = (runs[k][1] + runs[k + 1][0]) / 2
            changes.append(change)
            spans[k][1] = min(spans[k][1], change - guard)
            spans[k + 1][0] = max(spans[k + 1][0], change + guard)
    return [(a, b) for a, b in spans if b > a], changes


def find_turns(emb: np.ndarray, duration: float, threshold: float) -> Turns:
    """The single-voice spans of a clip of `duration` seconds from its window embeddings (module docstring)."""
    whole = Turns.one_voice(duration)
    if len(emb) < SPLIT_WINDOWS:
        return whole
    labels = split_in_two(emb)
    if min(np.sum(labels == 0), np.sum(labels == 1)) < MIN_WINDOWS:
        return whole
    c = np.array([_unit(emb[labels == k].mean(axis=0)) for k in (0, 1)])
    similarity = float(c[0] @ c[1])
    if similarity >= threshold:
        return Turns.one_voice(duration, similarity)
    scores = emb @ c.T
    labels = np.argmax(scores, axis=1)
    margin = scores[np.arange(len(emb)), labels] - scores[np.arange(len(emb)), 1 - labels]
    clear = labels.copy()
    for k in (0, 1):
        own = labels == k
        if own.any():
            clear[own & (margin < 0.5 * float(np.median(margin[own])))] = -1
    runs = _runs(clear, duration)
    spans, changes = _guarded(runs)
    return Turns(similarity, True, tuple(spans), tuple(changes), tuple(runs))


def verify(
    found: Turns, wav: np.ndarray, rate: int, embed: Callable[[np.ndarray], np.ndarray], voice_threshold: float
) -> Turns:
    """`found` if its two voices' runs, each voice's joined and embedded whole by `embed`, are less similar
    than `voice_threshold`; else the clip as one voice (module docstring). A voice without a clear run of its
    own is no evidence of a second speaker."""
    if not found.two_voices:
        return found
    voices = []
    for k in (0, 1):
        parts = [wav[int(a * rate) : int(b * rate)] for a, b, label in found.runs if label == k]
        if not parts:
            return Turns.one_voice(len(wav) / rate, found.similarity)
        voices.append(embed(np.concatenate(parts)))
    similarity = float(_unit(voices[0]) @ _unit(voices[1]))
    if similarity >= voice_threshold:
        return Turns.one_voice(len(wav) / rate, found.similarity, similarity)
    return replace(found, voice_similarity=similarity)
