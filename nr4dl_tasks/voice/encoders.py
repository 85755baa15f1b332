"""The voice encoders `speakers.encoder` chooses from, behind one call: a clip's unit identity embedding.

Resemblyzer (the seed's choice, 256-d GE2E) also serves purity, whose windows
it embeds densely; CAM++ (`campplus.py`, 192-d) separates voices by a much
wider margin (docs/speakers.md gives the measured equal error rates), so it
names the voice when chosen.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from nr4dl_tasks.voice import campplus
from nr4dl_tasks.voice import embedding as resemblyzer

Encoder = Literal["resemblyzer", "campplus"]


def embed(encoder: Encoder, wav: np.ndarray, threads: int) -> np.ndarray:
    """The unit embedding of 16 kHz mono audio by `encoder`."""
    if encoder == "campplus":
        return campplus.embed(wav, threads)
    return resemblyzer.voiceprint(wav, threads).embedding
