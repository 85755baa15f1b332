"""The voice encoders `speakers.encoder` chooses from, behind one call: a clip's unit identity embedding.

Resemblyzer (the seed's choice, 256-d GE2E) also serves purity, whose windows
it embeds densely; CAM++ (`campplus.py`, 192-d) separates voices by a much
wider margin (docs/speakers.md gives the measured equal error rates), so it
names the voice when chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from nr4dl_tasks.voice import campplus
from nr4dl_tasks.voice import embedding as resemblyzer

Encoder = Literal["resemblyzer", "campplus"]


@dataclass(frozen=True)
class VoiceModel:
    """An encoder ready to embed: which one, where CAM++'s files are, and the CPU threads it may use."""

    encoder: Encoder
    models_dir: Path
    threads: int

    def embed(self, wav: np.ndarray) -> np.ndarray:
        """The unit embedding of 16 kHz mono audio."""
        if self.encoder == "campplus":
            return campplus.embed(wav, self.models_dir, self.threads)
        return resemblyzer.voiceprint(wav, self.threads).embedding
