"""The structure the stages stand in: one floor of peers, an order written once, dependencies derived from reads.

Pure logic: these tests need no recordings, no model and no Airflow.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT
from nr4dl_tasks import pipeline
from nr4dl_tasks.core import layout
from nr4dl_tasks.core import settings as settings_mod
from nr4dl_tasks.core.records import Clip
from nr4dl_tasks.core.workdir import WorkDir

STAGES_DIR = ROOT / "nr4dl_tasks" / "stages"
# What each stage depended on when the dependencies were written by hand: deriving them from `reads` must give
# the same lists under the default settings, or every existing work folder would be recomputed.
HAND_WRITTEN = {
    "ingest": [],
    "segment": ["ingest"],
    "separate": ["ingest", "segment"],
    "slice": ["ingest", "segment", "separate"],
    "denoise": ["ingest", "segment", "separate", "slice"],
    "speakers": ["ingest", "segment", "separate", "slice", "denoise"],
    "transcribe": ["ingest", "segment", "separate", "slice", "denoise", "speakers"],
    "gate": ["ingest", "segment", "separate", "slice", "denoise", "speakers", "transcribe"],
}
VARIANTS = [
    {},
    {"separate.mode": "off"},
    {"segment.input": "vocals"},
    {"separate.mode": "all"},
    {"slice.source": "original"},
    {"transcribe.input": "denoised"},
    {"export.audio": "original"},
    {"speakers.input": "original"},
]


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_stage_module_imports_another():
    stage_modules = {f"nr4dl_tasks.stages.{p.stem}" for p in STAGES_DIR.glob("*.py") if p.stem != "__init__"}
    for path in STAGES_DIR.glob("*.py"):
        others = _imported_modules(path) & (stage_modules - {f"nr4dl_tasks.stages.{path.stem}"})
        assert not others, f"{path.name} imports {sorted(others)}"


def test_the_pipeline_lists_every_stage_module_once():
    listed = [spec.target.partition(":")[0] for spec in pipeline.STAGES]
    on_disk = sorted(f"nr4dl_tasks.stages.{p.stem}" for p in STAGES_DIR.glob("*.py") if p.stem != "__init__")
    assert sorted(listed) == on_disk and len(set(listed)) == len(listed)
    assert [pipeline.stage(name).name for name in pipeline.STAGE_NAMES] == list(pipeline.STAGE_NAMES)


def test_dependencies_derived_from_reads_equal_the_hand_written_ones():
    defaults = settings_mod.Settings()
    assert {name: pipeline.upstream(name, defaults) for name in pipeline.STAGE_NAMES} == HAND_WRITTEN


@pytest.mark.parametrize("overrides", VARIANTS)
def test_every_stage_reads_only_what_earlier_stages_write(overrides):
    settings = settings_mod.load(overrides=overrides)
    for name in pipeline.STAGE_NAMES:
        for artifact in pipeline.stage(name).reads(settings):
            assert pipeline.STAGE_NAMES.index(artifact.stage) <= pipeline.STAGE_NAMES.index(name), (name, artifact)
        pipeline.upstream(name, settings)  # raises on a read of a later stage's output


def test_segmenting_the_mix_does_not_depend_on_separation():
    mix = settings_mod.Settings()
    assert pipeline.upstream("segment", mix) == ["ingest"]
    assert "separate" in pipeline.upstream("slice", mix)  # bed clips are cut from the vocals
    assert "separate" not in pipeline.upstream("slice", settings_mod.load(overrides={"slice.source": "original"}))


def test_a_stage_may_open_only_what_it_lists(tmp_path):
    view = WorkDir(tmp_path / "work").reading([layout.SEGMENTS_CSV])
    assert view.input(layout.SEGMENTS_CSV) == view.root / "segments.csv"
    with pytest.raises(RuntimeError, match="vocals.wav .written by separate. is read by a stage that does not list"):
        view.input(layout.VOCALS_WAV)


def test_importing_the_order_loads_no_stage_and_no_heavy_library():
    code = (
        "import sys, nr4dl_tasks.pipeline, nr4dl_tasks.cli; "
        "print(sorted(m for m in sys.modules if m.startswith('nr4dl_tasks.stages.') or m.split('.')[0] in "
        "('numpy', 'tensorflow', 'torch', 'ctranslate2', 'onnxruntime', 'soundfile')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_a_clip_keeps_its_fields_in_the_order_stages_added_them():
    line = json.dumps(
        {
            "id": "a_00001",
            "source": "a",
            "label": "female",
            "start": 1.0,
            "end": 2.5,
            "duration": 1.5,
            "path": "clips/a_00001.wav",
            "speech_start": 1.05,
            "denoised_path": "clips_denoised/a_00001.wav",
            "purity": 0.9,
            "speaker": None,
            "text": "안녕하세요",
        },
        ensure_ascii=False,
    )
    clip = Clip.from_json(line)
    assert clip.to_json() == line
    assert clip.kept and clip.speaker is None and clip.text == "안녕하세요"
    assert clip.audio("denoised") == "clips_denoised/a_00001.wav" and clip.audio("original") == clip.path
    clip.dropped = "gate dnsmos: OVRL 1.80 below 2.0"
    assert not clip.kept and json.loads(clip.to_json())["dropped"].startswith("gate dnsmos")
    assert list(json.loads(clip.to_json()))[-1] == "dropped"  # a new field goes last, as before it was typed
    del clip.dropped
    assert clip.kept and clip.to_json() == line
