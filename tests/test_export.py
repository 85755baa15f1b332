"""Dataset export on real audio: fake-but-real work folders cut from the LJ Speech recordings in ../shared/media.

Each folder holds what the gate stage leaves behind: 22050 Hz mono PCM16 clips
(original and denoised), `manifests/gate.jsonl` and `stamps/gate.json`. With
validation and test fractions of 0.25 the folder names below hash into all three
splits (alpha -> train, delta -> validation, ep6 -> test), and so do the speakers
(bob, unknown -> train; carol, dave -> validation; alice, S0002 -> test).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from nr4dl_tasks.core import settings as settings_mod
from nr4dl_tasks.core.errors import SettingsError
from nr4dl_tasks.export.build import export_dataset
from nr4dl_tasks.export.formats import AUDIOFOLDER_COLUMNS

RATE = 22050
NUMBER_TEXT = "Chapter 12 begins | here,\nin 1984."

# folder -> clips: (clip number, speaker, tier, dnsmos ovrl, text, dropped reason)
FOLDERS: dict[str, list[tuple[int, str | None, str, float, str, str | None]]] = {
    "alpha-0000000001": [
        (1, "alice", "gold", 3.6, NUMBER_TEXT, None),
        (2, "bob", "silver", 3.0, "in being comparatively modern.", None),
        (3, "alice", "gold", 3.5, "a clip the gate dropped", "gate: too many characters per second"),
        (4, None, "rest", 2.1, "for although the Chinese took impressions", None),
    ],
    "delta-0000000004": [
        (1, "carol", "gold", 3.4, "from wood blocks engraved in relief", None),
        (2, "dave", "rest", 2.5, "the earliest book printed with movable types", None),
        (3, "dave", "silver", 2.9, "dropped as well", "speakers: more than one voice"),
    ],
    "ep6": [
        (1, "S0002", "silver", 2.9, "the invention of movable metal letters", None),
        (2, "alice", "gold", 3.9, "in the middle of the fifteenth century", None),
    ],
}


@pytest.fixture(scope="module")
def pool(media: Path) -> list[np.ndarray]:
    """Short pieces of real speech to write as clips."""
    pieces = []
    for n in range(1, 6):
        samples, rate = sf.read(str(media / "speech_en" / f"LJ001-000{n}.wav"), dtype="int16")
        assert rate == RATE and samples.ndim == 1
        for start in (0.2, 2.0):
            pieces.append(samples[int(start * RATE) : int((start + 1.0 + 0.2 * n) * RATE)])
    return pieces


def make_folder(
    work: Path, name: str, pool: list[np.ndarray], clips=None, stamp: bool = True, language: str = "en-US"
) -> Path:
    """A work folder as the gate leaves it: clips/, denoised/, manifests/gate.jsonl and stamps/gate.json."""
    folder = work / name
    for sub in ("clips", "denoised", "manifests", "stamps"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    lines = []
    for number, speaker, tier, ovrl, text, dropped in clips if clips is not None else FOLDERS[name]:
        clip_id = f"{name}_{number:05d}"
        samples = pool[(3 * len(name) + number) % len(pool)]
        sf.write(str(folder / "clips" / f"{clip_id}.wav"), samples, RATE, subtype="PCM_16")
        sf.write(str(folder / "denoised" / f"{clip_id}.wav"), samples // 2, RATE, subtype="PCM_16")
        record = {
            "id": clip_id,
            "source": name,
            "label": "female",
            "start": 1.0,
            "end": 1.0 + len(samples) / RATE,
            "duration": round(len(samples) / RATE, 3),
            "path": f"clips/{clip_id}.wav",
            "denoised_path": f"denoised/{clip_id}.wav",
            "text": text,
            "language": language,
            "language_probability": 0.98,
            "confidence": 0.9,
            "speaker": speaker,
            "tier": tier,
            "quality": {"dnsmos_ovrl": ovrl, "dnsmos_sig": 3.5},
        }
        if dropped:
            record["dropped"] = dropped
        lines.append(json.dumps(record, ensure_ascii=False))
    (folder / "manifests" / "gate.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if stamp:
        stamp_record = {"fingerprint": "x", "outputs": ["manifests/gate.jsonl"]}
        (folder / "stamps" / "gate.json").write_text(json.dumps(stamp_record))
    return folder


@pytest.fixture
def work(tmp_path: Path, pool: list[np.ndarray]) -> Path:
    root = tmp_path / "work"
    for name in FOLDERS:
        make_folder(root, name, pool)
    (root / "speaker_registry.json").write_text("{}")  # a file, not a work folder
    return root


def make_settings(work: Path, dataset: Path, **overrides):
    """Real settings validation, with fractions that put the fixture's sources and speakers in all three splits."""
    return settings_mod.load(
        overrides={
            "paths.work_dir": str(work),
            "export.dataset_dir": str(dataset),
            "export.validation_fraction": 0.25,
            "export.test_fraction": 0.25,
            **{key.replace("__", "."): value for key, value in overrides.items()},
        }
    )


def kept(folders=FOLDERS) -> dict[str, dict]:
    """Exported id -> (folder, speaker, tier) of every clip not dropped."""
    return {
        f"{name}_{c[0]:05d}": {"source": name, "speaker": c[1] or "unknown", "tier": c[2]}
        for name, clips in folders.items()
        for c in clips
        if not c[5]
    }


def nemo_rows(subset_dir: Path) -> dict[str, list[dict]]:
    rows = {}
    for manifest in sorted((subset_dir / "nemo").glob("*_manifest.jsonl")):
        split = manifest.name.removesuffix("_manifest.jsonl")
        rows[split] = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
        for row in rows[split]:
            assert (manifest.parent / row["audio_filepath"]).is_file()
    return rows


def ljspeech_rows(subset_dir: Path) -> dict[str, list[list[str]]]:
    rows = {}
    for metadata in sorted((subset_dir / "ljspeech").glob("*/metadata.csv")):
        with metadata.open(encoding="utf-8", newline="") as fh:
            rows[metadata.parent.name] = list(csv.reader(fh, delimiter="|", quoting=csv.QUOTE_NONE))
    return rows


def metadata_files(dataset: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(dataset)): p.read_bytes()
        for p in sorted(dataset.rglob("*"))
        if p.is_file() and p.suffix != ".wav" and p.name not in ("export.json", ".lock")
    }


@pytest.mark.parametrize("metadata", ["csv", "parquet"])
def test_every_format_loads_back_and_points_at_audio(work: Path, tmp_path: Path, metadata: str) -> None:
    dataset = tmp_path / "dataset"
    report = export_dataset(make_settings(work, dataset, export__audiofolder_metadata=metadata))
    expected = kept()
    by_split = {"train": 3, "validation": 2, "test": 2}
    assert report.clips == len(expected) == 7 and not report.skipped and not report.unchanged
    assert report.counts["all"]["nemo"] == by_split and report.hours == pytest.approx(
        sum(
            json.loads(line)["duration"]
            for f in (dataset / "all/nemo").glob("*.jsonl")
            for line in f.read_text().splitlines()
        )
        / 3600,
        abs=1e-4,
    )

    lj = ljspeech_rows(dataset / "all")
    assert {split: len(rows) for split, rows in lj.items()} == by_split
    for split, rows in lj.items():
        for clip_id, _, _ in rows:
            wav = dataset / "all/ljspeech" / split / "wavs" / f"{clip_id}.wav"
            info = sf.info(str(wav))
            assert (info.samplerate, info.channels, info.subtype) == (RATE, 1, "PCM_16")

    nemo = nemo_rows(dataset / "all")
    assert {split: len(rows) for split, rows in nemo.items()} == by_split
    row = next(r for rows in nemo.values() for r in rows if r["audio_filepath"].endswith("alpha-0000000001_00004.wav"))
    assert row["speaker"] == "unknown" and row["tier"] == "rest" and row["language"] == "en-US"
    assert row["dnsmos_ovrl"] == 2.1 and row["source"] == "alpha-0000000001"
    # the denoised file, hard-linked, not re-encoded
    src = work / "alpha-0000000001/denoised/alpha-0000000001_00004.wav"
    assert (dataset / "all/nemo" / row["audio_filepath"]).stat().st_ino == src.stat().st_ino

    folder = dataset / "all/audiofolder"
    assert sorted(p.name for p in folder.glob(f"*/metadata.{metadata}")) == [f"metadata.{metadata}"] * 3
    loaded = load_audiofolder(folder, tmp_path / "hf")
    assert {split: loaded[split].num_rows for split in loaded} == by_split
    for split in loaded:
        part = loaded[split]
        assert set(AUDIOFOLDER_COLUMNS) - {"file_name"} <= set(part.column_names)
        names = (
            [Path(audio["path"]).name for audio in part["audio"]] if "audio" in part.column_names else part["file_name"]
        )
        assert sorted(names) == sorted(Path(row["audio_filepath"]).name for row in nemo[split])
        for name, text in zip(names, part["text"], strict=True):
            samples, rate = sf.read(str(folder / split / name))
            assert rate == RATE and len(samples) > RATE and isinstance(text, str)


def load_audiofolder(folder: Path, cache: Path):
    """The audiofolder dataset as `datasets.load_dataset("audiofolder", data_dir=...)` reads it.

    datasets 5 encodes the audio column with torchcodec while preparing the dataset, even when it is not decoded,
    and torchcodec is not installed here. The plain load still runs what can go wrong on the export's side (split
    discovery, and the check that every split's metadata has the same columns and types, which csv type inference
    can break) before it stops at torchcodec; the dataset is then loaded with `file_name` read as a string column,
    and the caller reads the files with soundfile. Where torchcodec is installed, the plain load is used and the
    audio column is cast with `datasets.Audio(decode=False)`.
    """
    import datasets

    try:
        loaded = datasets.load_dataset("audiofolder", data_dir=str(folder), cache_dir=str(cache))
        return datasets.DatasetDict(
            {split: part.cast_column("audio", datasets.Audio(decode=False)) for split, part in loaded.items()}
        )
    except datasets.exceptions.DatasetGenerationError as exc:
        if "torchcodec" not in str(exc.__cause__):
            raise
    features = datasets.Features(
        {
            name: datasets.Value("float64" if name in ("duration", "dnsmos_ovrl") else "string")
            for name in AUDIOFOLDER_COLUMNS
        }
    )
    return datasets.load_dataset("audiofolder", data_dir=str(folder), cache_dir=str(cache), features=features)


def test_dropped_clips_numbers_and_pipes(work: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    export_dataset(make_settings(work, dataset))
    rows = [row for split_rows in ljspeech_rows(dataset / "all").values() for row in split_rows]
    assert all(len(row) == 3 for row in rows)  # a '|' in the text never makes a fourth field
    assert sorted(row[0] for row in rows) == sorted(kept())
    text, normalized = next(row[1:] for row in rows if row[0] == "alpha-0000000001_00001")
    assert text == "Chapter 12 begins here, in 1984."
    assert normalized == "Chapter twelve begins here, in nineteen eighty-four."
    everything = b"".join(metadata_files(dataset).values()).decode()
    for name, clips in FOLDERS.items():
        for number, *_, dropped in clips:
            if dropped:
                assert f"{name}_{number:05d}" not in everything
                assert not list(dataset.rglob(f"{name}_{number:05d}.wav"))


def test_splits_never_share_a_source_or_a_speaker(work: Path, tmp_path: Path) -> None:
    for split_by, key in (("source", "source"), ("speaker", "speaker")):
        dataset = tmp_path / f"by-{split_by}"
        export_dataset(make_settings(work, dataset, export__split_by=split_by))
        nemo = nemo_rows(dataset / "all")
        assert sorted(nemo) == ["test", "train", "validation"]  # every split is used, so the check means something
        splits_of: dict[str, set[str]] = {}
        for split, rows in nemo.items():
            for row in rows:
                splits_of.setdefault(row[key], set()).add(split)
        assert all(len(splits) == 1 for splits in splits_of.values()), splits_of
        assert len(splits_of) == (3 if split_by == "source" else 6)


def test_same_inputs_give_identical_files_and_a_rerun_does_nothing(work: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    export_dataset(make_settings(work, first, export__tier_subsets=True))
    export_dataset(make_settings(work, second, export__tier_subsets=True))
    files = metadata_files(first)
    assert len(files) == 27 and files == metadata_files(second)  # 3 subsets x 3 splits x (lj, af, nemo)
    # The report names no folder of its own either: a dataset moved elsewhere still describes itself.
    assert (first / "export.json").read_bytes() == (second / "export.json").read_bytes()
    mtimes = {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()}
    again = export_dataset(make_settings(work, first, export__tier_subsets=True))
    assert again.unchanged and again.clips == 7 and again.counts["gold"]["nemo"]["test"] == 1
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()} == mtimes
    changed = export_dataset(make_settings(work, first, export__tier_subsets=False))
    assert not changed.unchanged and not (first / "gold").exists() and not (first / "silver").exists()


def test_incremental_export_links_only_new_clips(work: Path, tmp_path: Path, pool: list[np.ndarray]) -> None:
    dataset = tmp_path / "dataset"
    export_dataset(make_settings(work, dataset))
    old = {p: (p.stat().st_ino, p.stat().st_ctime_ns) for p in dataset.rglob("alpha-*.wav")}
    assert len(old) == 9  # 3 kept clips x 3 formats

    make_folder(
        work,
        "ep7",
        pool,
        [(1, "erin", "gold", 3.7, "a new episode arrives", None), (2, "erin", "rest", 2.0, "with 2 clips", None)],
    )
    shutil.rmtree(work / "delta-0000000004")
    report = export_dataset(make_settings(work, dataset))

    assert {p: (p.stat().st_ino, p.stat().st_ctime_ns) for p in dataset.rglob("alpha-*.wav")} == old  # not relinked
    assert report.linked == 6  # ep7's 2 clips in 3 formats
    assert report.removed == 2 * 3 + 3  # delta's audio, and the validation metadata of each format
    assert len(list(dataset.rglob("ep7_*.wav"))) == 6 and not list(dataset.rglob("delta-*"))
    assert report.counts["all"]["nemo"] == {"train": 3, "validation": 0, "test": 4}
    assert "all/validation" in report.empty_splits
    assert not (dataset / "all/audiofolder/validation").exists()  # no empty split folder for datasets to trip on
    assert not (dataset / "all/ljspeech/validation").exists()
    assert not (dataset / "all/nemo/validation_manifest.jsonl").exists()
    recorded = json.loads((dataset / "export.json").read_text())
    assert recorded["complete"] and recorded["clips"] == 7 and recorded["fingerprint"] == report.fingerprint


def test_broken_folders_are_skipped_and_reported(work: Path, tmp_path: Path, pool: list[np.ndarray]) -> None:
    broken = make_folder(work, "broken", pool, [(1, "bob", "gold", 3.5, "fine", None)])
    (broken / "manifests/gate.jsonl").write_text('{"id": "broken_00001", "source": "bro')
    missing = make_folder(
        work, "missing", pool, [(1, "bob", "gold", 3.5, "gone", None), (2, "bob", "gold", 3.5, "here", None)]
    )
    (missing / "denoised/missing_00001.wav").unlink()
    make_folder(work, "pending", pool, [(1, "bob", "gold", 3.5, "not through the gate yet", None)], stamp=False)

    dataset = tmp_path / "dataset"
    report = export_dataset(make_settings(work, dataset))
    assert sorted(report.skipped) == ["broken"] and report.pending == ["pending"]
    assert "unreadable" in report.skipped["broken"] and "gate.jsonl line 1: " in report.skipped["broken"]
    # one missing clip drops that clip, not its folder
    assert list(report.dropped) == ["missing/missing_00001"]
    assert "denoised/missing_00001.wav does not exist" in report.dropped["missing/missing_00001"]
    assert report.clips == 8 and not list(dataset.rglob("missing_00001*")) and list(dataset.rglob("missing_00002*"))
    assert not list(dataset.rglob("pending_*"))
    assert json.loads((dataset / "export.json").read_text())["skipped"] == report.skipped
    assert not export_dataset(make_settings(work, dataset)).unchanged  # skipped folders are tried again


def test_tier_subsets_are_cumulative(work: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    report = export_dataset(make_settings(work, dataset, export__tier_subsets=True))
    tiers = {
        subset: sorted(row["tier"] for rows in nemo_rows(dataset / subset).values() for row in rows)
        for subset in ("all", "gold", "silver")
    }
    assert tiers["gold"] == ["gold"] * 3
    assert tiers["silver"] == ["gold"] * 3 + ["silver"] * 2
    assert len(tiers["all"]) == 7 and sum(report.counts["silver"]["ljspeech"].values()) == 5
    assert sorted(report.outputs) == sorted(
        f"{s}/{f}" for s in ("all", "gold", "silver") for f in ("audiofolder", "ljspeech", "nemo")
    )


def test_a_tier_named_like_a_subset_is_refused(work: Path, tmp_path: Path) -> None:
    settings = make_settings(work, tmp_path / "dataset", export__tier_subsets=True, gates__tiers={"all": 3.0})
    with pytest.raises(SettingsError, match="gates.tiers"):
        export_dataset(settings)
    assert not (tmp_path / "dataset").exists()


def test_csv_metadata_that_datasets_would_refuse_is_reported(work: Path, tmp_path: Path, caplog) -> None:
    """Speakers named by number in one split and by name in another: pandas types the column differently."""
    for name in FOLDERS:  # re-label alpha's (train) speakers with numbers, as LibriSpeech names them
        if name.startswith("alpha"):
            lines = (work / name / "manifests/gate.jsonl").read_text().splitlines()
            records = [json.loads(line) | {"speaker": str(1688 + i)} for i, line in enumerate(lines)]
            (work / name / "manifests/gate.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with caplog.at_level("WARNING", logger="nr4dl"):
        export_dataset(make_settings(work, tmp_path / "dataset"))
    assert "column speaker reads as" in caplog.text and "audiofolder_metadata: parquet" in caplog.text


def test_korean_clips_get_spoken_form_and_pronunciation(tmp_path: Path, pool: list[np.ndarray]) -> None:
    """A Korean clip's normalized_text is its spoken form and it gets a pronunciation in every format; an English
    clip beside it keeps num2words and no pronunciation, and LJSpeech's metadata.csv keeps three columns."""
    work, dataset = tmp_path / "work", tmp_path / "dataset"
    make_folder(
        work,
        "ko-0000000009",
        pool,
        language="ko",
        clips=[
            (1, "minji", "gold", 3.5, "11시 30분에 KBS 뉴스를 봤다.", None),
            (2, "minji", "gold", 3.4, "사과 3개와 배 2개, 모두 5개!", None),
        ],
    )
    make_folder(work, "alpha-0000000001", pool, clips=[(1, "alice", "gold", 3.6, NUMBER_TEXT, None)])
    export_dataset(
        make_settings(
            work,
            dataset,
            export__validation_fraction=0.0,
            export__test_fraction=0.0,
            export__audiofolder_metadata="parquet",
        )
    )
    rows = {row[0]: row for row in ljspeech_rows(dataset / "all")["train"]}
    assert all(len(row) == 3 for row in rows.values())
    assert rows["ko-0000000009_00001"][2] == "열한 시 삼십 분에 케이비에스 뉴스를 봤다."
    assert rows["ko-0000000009_00002"][2] == "사과 세 개와 배 두 개, 모두 다섯 개!"
    assert rows["alpha-0000000001_00001"][2] == "Chapter twelve begins here, in nineteen eighty-four."
    pronounced = (dataset / "all/ljspeech/train/pronunciation.csv").read_text(encoding="utf-8").splitlines()
    assert pronounced == [
        "ko-0000000009_00001|열한 시 삼십 뿌네 케이비에스 뉴스를 봗따.",
        "ko-0000000009_00002|사과 세 개와 배 두 개, 모두 다섣 깨!",
    ]
    nemo = {row["audio_filepath"]: row for row in nemo_rows(dataset / "all")["train"]}
    assert nemo["wavs/ko-0000000009_00001.wav"]["normalized_text"] == rows["ko-0000000009_00001"][2]
    assert nemo["wavs/ko-0000000009_00001.wav"]["pronunciation"] == pronounced[0].split("|")[1]
    assert "pronunciation" not in nemo["wavs/alpha-0000000001_00001.wav"]
    import pyarrow.parquet as pq

    table = pq.read_table(dataset / "all/audiofolder/train/metadata.parquet").to_pylist()
    by_name = {row["file_name"]: row for row in table}
    assert by_name["ko-0000000009_00002.wav"]["pronunciation"] == pronounced[1].split("|")[1]
    assert by_name["alpha-0000000001_00001.wav"]["pronunciation"] == ""
