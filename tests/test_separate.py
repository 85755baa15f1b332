"""Spleeter 2stems through the chunked worker, on a real song."""

import numpy as np
import psutil
import pytest
import soundfile as sf
from scipy.signal import butter, sosfiltfilt

from helpers import ffmpeg
from nr4dl_tasks.core import models
from nr4dl_tasks.core.errors import ModelError
from nr4dl_tasks.core.layout import ACCOMPANIMENT_WAV, FULL_WAV, VOCALS_ANALYSIS_WAV, VOCALS_WAV
from nr4dl_tasks.dsp.separation import worker
from nr4dl_tasks.dsp.spleeter_worker import BLOCK
from nr4dl_tasks.pipeline import open_work, run_stage


def db(error: np.ndarray, reference: np.ndarray) -> float:
    return 10 * np.log10(np.sum(error**2) / np.sum(reference**2) + 1e-30)


def test_vocals_plus_accompaniment_reconstruct_the_input(media, make_settings):
    settings = make_settings(separate__mode="all")
    work = open_work(media / "music" / "audio_example.mp3", settings)
    run_stage("ingest", work, settings)
    run_stage("segment", work, settings)
    result = run_stage("separate", work, settings)
    assert result.info["mode"] == "all" and result.info["chunks"] == 1
    mix, rate = sf.read(str(work.input(FULL_WAV)))
    vocals, _ = sf.read(str(work.input(VOCALS_WAV)))
    accompaniment, _ = sf.read(str(work.input(ACCOMPANIMENT_WAV)))
    assert vocals.shape == mix.shape == accompaniment.shape
    # Spleeter's 2stems masks cover 0-11 kHz (F=1024 bins); compare below 10 kHz.
    band = butter(8, 10000, fs=rate, output="sos")
    residual = sosfiltfilt(band, mix - vocals - accompaniment, axis=0)
    assert db(residual, sosfiltfilt(band, mix, axis=0)) < -40
    # both stems carry real signal: the song has vocals and music throughout
    assert db(vocals, mix) > -15 and db(accompaniment, mix) > -15
    assert sf.info(str(work.input(VOCALS_ANALYSIS_WAV))).samplerate == 16000
    # the worker's ~2 GB are not carried into the later stages: the stage closed it (the next test starts another)
    workers = [p for p in psutil.Process().children(recursive=True) if "spleeter_worker.py" in " ".join(p.cmdline())]
    assert not [p for p in workers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_chunked_equals_whole_file_away_from_seams(media, tmp_path, make_settings):
    song = tmp_path / "song_x6.wav"
    listing = tmp_path / "list.txt"
    listing.write_text(f"file '{media / 'music' / 'audio_example.mp3'}'\n" * 6)
    ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-ac", "2", "-ar", "44100", str(song))
    sep = worker(make_settings())
    outputs = {}
    for name, blocks, spans in (("whole", 40, None), ("chunked", 2, None), ("span", 1, [[BLOCK, 3 * BLOCK]])):
        vocals, accompaniment = tmp_path / f"{name}_v.wav", tmp_path / f"{name}_a.wav"
        reply = sep.separate(
            {
                "input": str(song),
                "vocals": str(vocals),
                "accompaniment": str(accompaniment),
                "spans": spans,
                "chunk_blocks": blocks,
                "margin_blocks": 1,
                "crossfade_seconds": 0.5,
            }
        )
        assert reply["ok"], reply
        outputs[name] = (reply, sf.read(str(vocals))[0])
    assert outputs["whole"][0]["chunks"] == 1 and outputs["chunked"][0]["chunks"] == 3
    whole, chunked = outputs["whole"][1], outputs["chunked"][1]
    assert whole.shape == chunked.shape
    away = np.ones(len(whole), bool)
    for seam in range(2 * BLOCK, len(whole), 2 * BLOCK):
        away[seam - 44100 : seam + 44100] = False
    assert db((whole - chunked)[away], whole[away]) < -60
    assert db(whole - chunked, whole) < -40  # the seams themselves are inaudible too
    # A routed span (two blocks, in chunks of one) equals the whole-file run up to 0.1 s from its outer edges, which
    # carry no context, and the stems are silent outside it.
    span = outputs["span"][1]
    assert span.shape == whole.shape and outputs["span"][0]["separated_frames"] == 2 * BLOCK
    inside = slice(BLOCK + 4410, 3 * BLOCK - 4410)
    assert db((whole - span)[inside], whole[inside]) < -55
    assert not span[:BLOCK].any() and not span[3 * BLOCK :].any()


def test_missing_checkpoint_is_refused(tmp_path, make_settings):
    empty = tmp_path / "models"
    with pytest.raises(ModelError, match="missing; run scripts/setup.sh"):
        models.check(empty, models.SPLEETER_PACKAGE.files)
    settings = make_settings(paths__models_dir=str(empty))
    with pytest.raises(ModelError, match="2stems/checkpoint is missing"):
        worker(settings)


def test_altered_model_file_is_refused(tmp_path):
    for mf in models.INA_PACKAGE.files:
        target = tmp_path / mf.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"\0" * mf.size)
    with pytest.raises(ModelError, match="does not match its recorded checksum"):
        models.check(tmp_path, models.INA_PACKAGE.files)


def test_separation_can_be_switched_off(media, make_settings):
    settings = make_settings(separate__mode="off")
    work = open_work(media / "segmentation" / "0021.mp3", settings)
    run_stage("ingest", work, settings)
    result = run_stage("separate", work, settings)
    assert result.info == {"mode": "off"} and not work.input(VOCALS_WAV).exists()


def test_a_tail_shorter_than_the_cross_fade_joins_the_last_chunk(media, tmp_path, make_settings):
    """One block plus 100 samples, in chunks of one block: the 100-sample tail must not become a chunk."""
    song = tmp_path / "block_plus_100.wav"
    listing = tmp_path / "list.txt"
    listing.write_text(f"file '{media / 'music' / 'audio_example.mp3'}'\n" * 2)
    ffmpeg(
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        str(listing),
        "-ac",
        "2",
        "-ar",
        "44100",
        "-af",
        f"atrim=end_sample={BLOCK + 100}",
        str(song),
    )
    assert sf.info(str(song)).frames == BLOCK + 100
    vocals, accompaniment = tmp_path / "v.wav", tmp_path / "a.wav"
    reply = worker(make_settings()).separate(
        {
            "input": str(song),
            "vocals": str(vocals),
            "accompaniment": str(accompaniment),
            "chunk_blocks": 1,
            "margin_blocks": 1,
            "crossfade_seconds": 0.5,
        }
    )
    assert reply["ok"] and reply["chunks"] == 1, reply
    assert sf.info(str(vocals)).frames == BLOCK + 100
