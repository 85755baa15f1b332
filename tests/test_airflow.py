"""The DAG under real Airflow: import check, an in-process dag.test(), and the standalone scheduler.

Airflow gets a fresh home (SQLite database) in a temporary folder; the environment
is set before airflow is imported anywhere in this process.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, airflow_env, ffmpeg, js_page, serve
from nr4dl_tasks.core import settings as settings_mod
from nr4dl_tasks.core.records import read_clips
from nr4dl_tasks.pipeline import STAGE_NAMES
from nr4dl_tasks.state.failures import FailureLog
from services import free_port

pytestmark = pytest.mark.airflow

BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def airflow_db(airflow_home):
    """The session's Airflow home with its database migrated and the nr4dl_heavy pool made."""
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], check=True, capture_output=True)
    subprocess.run([str(BIN / "airflow"), "pools", "set", "nr4dl_heavy", "1", "test"], check=True, capture_output=True)
    return airflow_home


def test_dags_import_without_errors(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    dag = bag.get_dag("nr4dl_process_file")
    assert [t.task_id for t in dag.topological_sort()] == list(STAGE_NAMES)
    assert all(t.retries >= 1 for t in dag.tasks)
    assert {t.task_id for t in dag.tasks if t.pool == "nr4dl_heavy"} == {
        "separate",
        "segment",
        "denoise",
        "speakers",
        "transcribe",
    }
    assert {type(t).__name__ for t in dag.tasks} == {"IngestOperator", "StageOperator", "TranscribeOperator"}
    assert [a.name for a in dag.get_task("gate").outlets] == ["nr4dl_clips"]
    dataset = bag.get_dag("nr4dl_dataset")
    assert [a.name for a in dataset.timetable.asset_condition.objects] == ["nr4dl_clips"]
    assert all(t.on_failure_callback for t in dag.tasks) and dag.get_task("gate").on_success_callback
    assert bag.get_dag("nr4dl_failed_files").get_task("list")
    crawl = bag.get_dag("nr4dl_crawl")
    assert crawl.timetable.expression == "0 2 * * *" and not crawl.catchup
    assert [t.task_id for t in crawl.topological_sort()] == ["crawl", "process", "mark_handed_over"]


def test_parsing_the_dags_loads_no_stage_and_no_heavy_library(airflow_db):
    """A process that ran TensorFlow, torch or CTranslate2 hangs when the scheduler forks it: parsing imports none."""
    code = (
        "import sys; from airflow.dag_processing.dagbag import DagBag; "
        f"bag = DagBag(dag_folder={str(ROOT / 'dags')!r}); assert not bag.import_errors, bag.import_errors; "
        "print(sorted(m for m in sys.modules if m.startswith('nr4dl_tasks.stages.') or m.split('.')[0] in "
        "('tensorflow', 'torch', 'ctranslate2', 'onnxruntime', 'faster_whisper', 'resemblyzer', 'keras')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip().splitlines()[-1] == "[]", loaded.stdout + loaded.stderr


def test_dag_test_processes_one_file(airflow_db, media, tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags")).get_dag("nr4dl_process_file")
    conf = {
        "media": str(media / "segmentation" / "lamartine.wav"),
        "overrides": {"paths.work_dir": str(tmp_path / "work"), "slice.min_duration": 0.5},
    }
    run = dag.test(run_conf=conf)
    assert run.state == "success"
    (folder,) = [p for p in (tmp_path / "work").iterdir() if p.is_dir()]  # beside it: the speaker registry
    assert (folder / "vocals.wav").exists() and (folder / "segments.csv").exists()
    clips = read_clips(folder / "clips.jsonl")
    assert clips and all((folder / c.path).exists() and (folder / c.extra["denoised_path"]).exists() for c in clips)
    kept = [c for c in clips if not c.extra.get("dropped")]
    assert kept and all(c.extra["language"] == "fr" and c.extra["text"] for c in kept)

    dataset_dir = tmp_path / "dataset"
    export = DagBag(dag_folder=str(ROOT / "dags")).get_dag("nr4dl_dataset")
    run = export.test(
        run_conf={"overrides": {"paths.work_dir": str(tmp_path / "work"), "export.dataset_dir": str(dataset_dir)}}
    )
    assert run.state == "success"
    report = json.loads((dataset_dir / "export.json").read_text())
    assert report["clips"] == len(kept)
    assert {Path(p).name for p in report["outputs"]} == {"ljspeech", "audiofolder", "nemo"}


def test_standalone_nightly_crawl_fans_out_one_run_per_new_file_and_isolates_a_bad_one(media, tmp_path):
    """`airflow standalone` (scheduler, LocalExecutor, SQLite): the crawl DAG, triggered over REST, finds a good
    and a bad file on a script-rendered page, starts one processing run each, and the good run's export follows;
    a second crawl finds nothing new."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(media / "segmentation" / "musanmix.mp3", site / "musanmix.mp3")
    # media to the crawl (ffprobe reads a video stream), useless to processing: it has no sound
    ffmpeg("-f", "lavfi", "-i", "testsrc=duration=1:size=64x64:rate=5", str(site / "broken.mp4"))
    (site / "index.html").write_text(
        js_page([["musanmix.mp3", "Music, noise, then a reader", "ep"], ["broken.mp4", "A broken upload", "ep"]])
    )
    home, work, dataset = tmp_path / "airflow", tmp_path / "work", tmp_path / "dataset"
    with serve(site) as base:
        # Crawl sources, and where the scheduled export reads and writes, come from the settings file.
        settings_file = tmp_path / "settings.yaml"
        settings_file.write_text(
            json.dumps(
                {
                    "paths": {"work_dir": str(work)},
                    "export": {"dataset_dir": str(dataset)},
                    "crawl": {
                        # triggered over REST only: unpausing the DAG after the nightly hour would also start
                        # the night's scheduled crawl, which would take the new files first
                        "schedule": None,
                        "download_dir": str(tmp_path / "downloads"),
                        "domain_interval_seconds": 0,
                        "sources": [
                            {"name": "site", "kind": "page", "url": f"{base}/index.html", "link_selector": "a.ep"}
                        ],
                    },
                }
            )
        )
        env = {**airflow_env(home, free_port()), "NR4DL_SETTINGS": str(settings_file)}
        crawl = [sys.executable, str(ROOT / "scripts/run_dag.py"), "--crawl", "--timeout", "900"]
        subprocess.run(["bash", str(ROOT / "scripts/standalone.sh"), "start"], env=env, check=True)
        try:
            result = subprocess.run(crawl, env=env, capture_output=True, text=True, timeout=1200)
            again = subprocess.run(crawl, env=env, capture_output=True, text=True, timeout=600)
        finally:
            subprocess.run(["bash", str(ROOT / "scripts/standalone.sh"), "stop"], env=env)
    lines = result.stdout.splitlines()
    good = [line for line in lines if "run=site__Music-noise-then-a-reader-" in line]  # named from the link text
    bad = [line for line in lines if "run=site__A-broken-upload-" in line]
    assert good and good[0].startswith("success"), result.stdout + result.stderr
    assert bad and bad[0].startswith("failed") and "ingest=failed" in bad[0], result.stdout
    assert any(line.startswith("success  dataset export") for line in lines), result.stdout
    assert result.returncode == 1
    (folder,) = list(work.glob("Music-noise-then-a-reader-*"))
    clips = read_clips(folder / "clips.jsonl")
    assert clips and {c.label for c in clips} == {"male"}
    report = json.loads((dataset / "export.json").read_text())
    assert report["complete"] and report["clips"] == len([c for c in clips if not c.extra.get("dropped")])
    assert "nothing new to process" in again.stdout and again.returncode == 0, again.stdout + again.stderr
    failed = FailureLog(settings_mod.load(settings_file)).failures()  # recorded by the tasks' failure callback
    assert [(Path(f.media).name[:15], f.stage) for f in failed] == [("A-broken-upload", "ingest")]
    assert "no audio stream" in failed[0].error and "\n" not in failed[0].error
