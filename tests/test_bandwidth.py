"""Band-limited clips are measured, never rated the best tier, and can be dropped by gates.min_bandwidth_hz."""

import csv

import soundfile as sf

from nr4dl_tasks.core.records import Clip, read_manifest, write_manifest
from nr4dl_tasks.core.workdir import WorkDir
from nr4dl_tasks.dsp.audio import resample
from nr4dl_tasks.stages.gate import GateStage

RATE = 22050
DNSMOS = {"dnsmos": {"before": {"ovrl": 4.5}, "after": {"ovrl": 4.5}}}  # as if denoise had scored them gold


def banded_folder(tmp_path, media) -> WorkDir:
    """One LJ Speech sentence three times: full band, through a 16 kHz recording and through a telephone (8 kHz)."""
    with (media / "speech_en" / "transcripts.tsv").open() as fh:
        text = {row[0]: row[1] for row in csv.reader(fh, delimiter="\t")}["LJ001-0006.wav"]
    samples, rate = sf.read(str(media / "speech_en" / "LJ001-0006.wav"), dtype="float32")
    work = WorkDir(tmp_path / "banded")
    (work.root / "clips").mkdir()
    clips = []
    for name, band_rate in (("full", None), ("wide16k", 16000), ("phone", 8000)):
        audio = (
            resample(samples, rate, RATE)
            if band_rate is None
            else resample(resample(samples, rate, band_rate), band_rate, RATE)
        )
        sf.write(str(work.root / "clips" / f"{name}.wav"), audio, RATE, subtype="PCM_16")
        duration = round(len(audio) / RATE, 3)
        clips.append(
            Clip(
                name,
                "banded",
                "female",
                0.0,
                duration,
                duration,
                f"clips/{name}.wav",
                {"text": text, "language": "en", "language_probability": 0.99, "denoise": DNSMOS},
            )
        )
    write_manifest(work, "transcribe", clips)
    return work


def test_band_limited_clips_are_measured_and_never_gold(media, make_settings, tmp_path):
    work = banded_folder(tmp_path, media)
    GateStage().process(work, make_settings(gates__min_dnsmos_ovrl=None))
    gated = {c.id: c.extra for c in read_manifest(work, "gate")}
    assert [gated[n]["gates"]["bandwidth_hz"] > 10000 for n in ("full", "wide16k", "phone")] == [True, False, False]
    assert gated["phone"]["gates"]["bandwidth_hz"] < 5000 < gated["wide16k"]["gates"]["bandwidth_hz"]
    assert {n: gated[n]["tier"] for n in gated} == {"full": "gold", "wide16k": "silver", "phone": "silver"}
    assert not any(extra.get("dropped") for extra in gated.values())  # the drop gate is off by default


def test_the_bandwidth_gate_drops_what_is_below_it(media, make_settings, tmp_path):
    work = banded_folder(tmp_path, media)
    GateStage().process(work, make_settings(gates__min_dnsmos_ovrl=None, gates__min_bandwidth_hz=6000))
    gated = {c.id: c.extra for c in read_manifest(work, "gate")}
    assert gated["phone"]["dropped"].startswith("gate bandwidth: ")
    assert not gated["full"].get("dropped") and not gated["wide16k"].get("dropped")
