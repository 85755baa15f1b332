"""Speaker identity on real recordings: enrollment, purity splits, clustering and the cross-file registry."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from speaker_sets import tuning_cohort

from nr4dl_tasks.core.errors import SettingsError, StageError
from nr4dl_tasks.core.records import read_clips
from nr4dl_tasks.core.settings import SpeakerSettings
from nr4dl_tasks.dsp import audio
from nr4dl_tasks.pipeline import process_file, run_stage
from nr4dl_tasks.stages.speakers import cluster, cluster_voices, enrolled_voices, single_voice_pieces
from nr4dl_tasks.voice import embedding as voices
from nr4dl_tasks.voice.encoders import VoiceModel
from nr4dl_tasks.voice.registry import SpeakerRegistry, Voice

SPEAKERS = ("1688", "1998", "2033", "3080")  # LibriSpeech test-other: M, F, M, F
THREADS = 2
RESEMBLYZER = VoiceModel("resemblyzer", Path("models"), THREADS)
IDENTITY = VoiceModel(SpeakerSettings().encoder, Path("models"), THREADS)  # what clusters and the registry use
CLUSTER_THRESHOLD, LINK_THRESHOLD = SpeakerSettings().clustering()


def utterance_files(media: Path, speaker: str) -> list[Path]:
    return sorted((media / "speakers" / speaker).glob("*.flac"))


@functools.cache
def load16k(path: Path) -> np.ndarray:
    samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return audio.resample(audio.mono(samples), rate, voices.RATE)


@functools.cache
def embedding(path: Path) -> np.ndarray:
    return IDENTITY.embed(load16k(path))


def enroll(tmp_path: Path, files: dict[str, list[Path]]) -> Path:
    root = tmp_path / "enroll"
    for name, paths in files.items():
        (root / name).mkdir(parents=True)
        for path in paths:
            shutil.copy(path, root / name / path.name)
    return root


def test_enrollment_errors_name_the_folder(tmp_path):
    with pytest.raises(SettingsError, match="is not a folder"):
        enrolled_voices(tmp_path / "missing", RESEMBLYZER)
    (tmp_path / "empty" / "host").mkdir(parents=True)
    with pytest.raises(SettingsError, match=r"empty: \['host'\]"):
        enrolled_voices(tmp_path / "empty", RESEMBLYZER)
    (tmp_path / "bad" / "host").mkdir(parents=True)
    (tmp_path / "bad" / "host" / "ref.mp3").write_bytes(b"not audio")
    with pytest.raises(SettingsError, match="enrollment recording unusable"):
        enrolled_voices(tmp_path / "bad", RESEMBLYZER)


@pytest.mark.parametrize("first, second", [("1688", "1998"), ("1688", "2033"), ("3080", "1998")])
def test_a_clip_of_two_speakers_is_split_at_the_change(media, first, second):
    a, b = load16k(utterance_files(media, first)[0]), load16k(utterance_files(media, second)[1])
    pieces = single_voice_pieces(np.concatenate([a, b]), SpeakerSettings(), voices.RATE, THREADS)
    assert len(pieces) == 2, [(p.start, p.end, p.purity) for p in pieces]
    assert abs(pieces[0].end - len(a)) <= 0.5 * voices.RATE


@pytest.mark.parametrize("speaker", ["1688", "3080"])
def test_one_speaker_is_not_split(media, speaker):
    files = utterance_files(media, speaker)
    wav = np.concatenate([load16k(files[0]), load16k(files[1])])
    assert len(single_voice_pieces(wav, SpeakerSettings(), voices.RATE, THREADS)) == 1


def test_clustering_finds_the_four_speakers(media):
    files = [f for s in SPEAKERS for f in utterance_files(media, s)]
    durations = [len(load16k(f)) / voices.RATE for f in files]
    labels = cluster(np.array([embedding(f) for f in files]), durations, CLUSTER_THRESHOLD)
    by_speaker = {s: {labels[i] for i, f in enumerate(files) if f.parent.name == s} for s in SPEAKERS}
    assert all(len(found) == 1 for found in by_speaker.values()), by_speaker
    assert len(set(labels)) == 4


def _episodes(media: Path) -> dict[str, list[Path]]:
    """Three 'episodes', each a few utterances of two or three of the four speakers."""
    files = {s: utterance_files(media, s) for s in SPEAKERS}
    return {
        "ep1": files["1688"][:3] + files["1998"][:3],
        "ep2": files["1998"][3:6] + files["2033"][:3],
        "ep3": files["2033"][3:6] + files["3080"][:3] + files["1688"][3:5],
    }


def _link(registry: SpeakerRegistry, episode: str, files: list[Path]) -> dict[Path, str]:
    prints = np.array([embedding(f) for f in files])
    labels = cluster(prints, [len(load16k(f)) / voices.RATE for f in files], CLUSTER_THRESHOLD)
    ids = registry.link(episode, cluster_voices(prints, labels), LINK_THRESHOLD)
    return {f: ids[lab][0] for f, lab in zip(files, labels, strict=True)}


def test_registry_ids_follow_the_voice_in_any_file_order_and_survive_reruns(media, tmp_path):
    episodes = _episodes(media)
    forward, backward = (SpeakerRegistry(tmp_path / f"{name}.json", IDENTITY.encoder) for name in ("a", "b"))
    ids_forward: dict[Path, str] = {}
    for name in episodes:
        ids_forward |= _link(forward, name, episodes[name])
    ids_backward: dict[Path, str] = {}
    for name in reversed(episodes):
        ids_backward |= _link(backward, name, episodes[name])
    # one id per real speaker, the same grouping whatever the order
    for ids in (ids_forward, ids_backward):
        assert {s: {ids[f] for f in ids if f.parent.name == s} for s in SPEAKERS} == {
            s: {ids[next(f for f in ids if f.parent.name == s)]} for s in SPEAKERS
        }
        assert len(set(ids.values())) == 4
    # reprocessing a file finds the ids it had, and does not count its clips twice
    before = forward.speakers()
    assert _link(forward, "ep3", episodes["ep3"]) == {f: ids_forward[f] for f in episodes["ep3"]}
    assert forward.speakers() == before


@pytest.fixture
def two_speaker_file(media, tmp_path) -> Path:
    """Four utterances of 1998 (F, 0-34.4 s) and three of 2033 (M, 34.4-51.2 s), each followed by a 1 s pause."""
    gap = np.zeros(voices.RATE, np.float32)
    parts = [load16k(f) for f in utterance_files(media, "1998")[3:7]] + [
        load16k(f) for f in utterance_files(media, "2033")[3:6]
    ]
    path = tmp_path / "two_speakers.wav"
    sf.write(str(path), np.concatenate([x for p in parts for x in (p, gap)]), voices.RATE)
    return path


def cohort(tmp_path: Path) -> Path:
    """The open impostor cohort: one utterance in three of the VCTK and Korean tuning speakers (speaker_sets)."""
    root = tmp_path / "cohort"
    root.mkdir()
    for f in tuning_cohort():
        if f.parent.name not in SPEAKERS:
            shutil.copy(f, root / f"{f.parent.name}_{f.name}")
    return root


def test_stage_keeps_only_the_enrolled_target(media, tmp_path, make_settings, two_speaker_file):
    target = enroll(tmp_path, {"host": utterance_files(media, "1998")[:3]})
    common = dict(
        separate__mode="off",
        denoise__method="none",
        speakers__enroll_dir=str(target),
        speakers__cohort_dir=str(cohort(tmp_path)),
    )
    settings = make_settings(**common, speakers__genders={"host": "female"})
    work, results = process_file(two_speaker_file, settings, until="speakers")
    # a clip cut into turns stays as a dropped parent, not labelled (the turn finder cuts one of 1998's clips in two:
    # a false change, docs/speakers.md); the others are all labelled
    clips = [
        c for c in read_clips(work.path("clips.jsonl")) if not c.extra.get("dropped", "").startswith("speakers: split")
    ]
    kept = [c for c in clips if not c.extra.get("dropped")]
    assert kept and all(c.speaker == "host" and c.speaker_norm >= c.speaker_threshold for c in kept)
    assert all(c.end <= 34.6 for c in kept)
    dropped = [c for c in clips if c.extra.get("dropped")]
    assert dropped and all("closest target host" in c.extra["dropped"] for c in dropped)
    assert all(c.speaker_norm < c.speaker_threshold for c in dropped)
    assert all(c.speaker_review == (abs(c.speaker_norm - c.speaker_threshold) <= 0.5) for c in clips)
    assert all(c.extra["gender_mismatch"] == (c.label != "female") for c in kept)
    info = results[-1].info
    assert info["mode"] == "enrolled" and info["targets"]["host"]["threshold"] == kept[0].speaker_threshold

    everyone = make_settings(**common, speakers__keep="all")
    assert run_stage("denoise", work, everyone).skipped
    relabelled = run_stage("speakers", work, everyone)
    assert not relabelled.skipped and relabelled.info["clips_kept"] == len(clips)


def test_stage_without_enrollment_registers_each_voice(make_settings, two_speaker_file):
    settings = make_settings(separate__mode="off", denoise__method="none")
    work, results = process_file(two_speaker_file, settings, until="speakers")
    clips = [c for c in read_clips(work.path("clips.jsonl")) if not c.extra.get("dropped")]
    assert results[-1].info["mode"] == "clustered" and len(results[-1].info["speakers"]) == 2
    first = {c.extra["speaker"] for c in clips if c.end < 34.6}
    second = {c.extra["speaker"] for c in clips if c.start > 34.2}
    assert len(first) == 1 and len(second) == 1 and first != second
    registry = SpeakerRegistry(settings.resolve(settings.paths.work_dir) / "speaker_registry.json")
    assert set(registry.speakers()) == first | second


def test_clustering_separates_the_two_voices_of_a_real_conversation(media):
    """diarization/sample.wav: the stretches where sample.rttm has exactly one speaker talking."""
    wav = load16k(media / "diarization" / "sample.wav")
    turns = {
        "speaker90": [(8.35, 9.92), (11.03, 14.49), (18.59, 21.49), (28.5, 30.0)],
        "speaker91": [(14.70, 17.92), (21.78, 27.85)],
    }
    spans = [(who, a, b) for who, parts in turns.items() for a, b in parts]
    prints = np.array([IDENTITY.embed(wav[int(a * voices.RATE) : int(b * voices.RATE)]) for _, a, b in spans])
    labels = cluster(prints, [b - a for _, a, b in spans], CLUSTER_THRESHOLD)
    assert labels == [0, 0, 0, 0, 1, 1], labels


def test_registry_never_reuses_a_number_keeps_renamed_ids_and_names_a_corrupt_file(tmp_path):
    registry = SpeakerRegistry(tmp_path / "registry.json")
    a, b = np.eye(4)[0], np.eye(4)[1]
    assert registry.link("ep1", [Voice(a, 3)], 0.78) == [("spk0001", 1.0)]
    assert registry.link("ep2", [Voice(b, 2)], 0.78) == [("spk0002", 1.0)]
    assert registry.link("ep2", [Voice(a, 2)], 0.78)[0][0] == "spk0001"  # ep2 reprocessed: its voice is spk0001
    state = json.loads(registry.path.read_text())
    state["sources"]["ep1"][0]["speaker"] = "alice"  # renamed by hand
    registry.path.write_text(json.dumps(state))
    assert registry.link("ep3", [Voice(np.eye(4)[2], 1)], 0.78) == [("spk0003", 1.0)]  # spk0002 is not reused
    registry.path.write_text("{")
    with pytest.raises(StageError, match=f"speaker registry {registry.path} is unreadable"):
        registry.link("ep4", [Voice(a, 1)], 0.78)


def test_registry_holds_the_voices_of_one_encoder(tmp_path):
    """A CAM++ centroid (192-d) cannot be compared with a Resemblyzer one: the registry says which it holds."""
    path = tmp_path / "registry.json"
    SpeakerRegistry(path, "resemblyzer").link("ep1", [Voice(np.eye(4)[0], 3)], 0.78)
    with pytest.raises(StageError, match=f"{path} holds resemblyzer voices, but speakers.encoder is campplus"):
        SpeakerRegistry(path, "campplus").link("ep2", [Voice(np.eye(3)[0], 2)], 0.8)
    state = json.loads(path.read_text())
    del state["encoder"]  # written before encoders were recorded: Resemblyzer's
    path.write_text(json.dumps(state))
    assert SpeakerRegistry(path, "resemblyzer").link("ep2", [Voice(np.eye(4)[0], 2)], 0.78)[0][0] == "spk0001"
    assert json.loads(path.read_text())["encoder"] == "resemblyzer"
