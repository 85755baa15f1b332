"""Airflow tasks fail with the engine's own one-line messages, secrets hidden (the operators, without a scheduler)."""

import random
from types import SimpleNamespace

import pytest

from helpers import ROOT

SECRET = "s3cretPASSWORD"


@pytest.fixture
def operators(airflow_home, monkeypatch):
    """The plugin's operators and Airflow's failure exception, imported once the session's Airflow home is set."""
    monkeypatch.syspath_prepend(str(ROOT / "plugins"))
    from airflow.sdk.exceptions import AirflowFailException

    from nr4dl_operators import IngestOperator, StageOperator

    return SimpleNamespace(fail=AirflowFailException, ingest=IngestOperator, stage=StageOperator)


def test_a_bad_setting_fails_the_task_without_the_password(operators):
    overrides = {"crawl.catalog_url": f"postgresql://u:{SECRET}@host/db", "slice.min_duration": "abc"}
    with pytest.raises(operators.fail) as err:
        operators.stage(task_id="slice", stage="slice", overrides=overrides).load_settings()
    assert SECRET not in str(err.value) and "slice.min_duration" in str(err.value)


def test_undecodable_media_fails_the_task_with_the_decoders_reason(operators, tmp_path):
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(random.Random(0).randbytes(200_000))
    task = operators.ingest(task_id="ingest", media=str(noise), overrides={"paths.work_dir": str(tmp_path / "work")})
    with pytest.raises(operators.fail, match=f"^{noise}: decoding failed \\(Header missing"):
        task.execute({})
