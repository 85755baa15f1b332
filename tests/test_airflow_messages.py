"""Airflow tasks fail with the engine's own one-line messages, secrets hidden (the operators, without a scheduler)."""

import random
import sys

import pytest

from helpers import ROOT

sys.path.insert(0, str(ROOT / "plugins"))

from airflow.sdk.exceptions import AirflowFailException  # noqa: E402

from nr4dl_operators import IngestOperator, StageOperator  # noqa: E402

SECRET = "s3cretPASSWORD"


def test_a_bad_setting_fails_the_task_without_the_password():
    overrides = {"crawl.catalog_url": f"postgresql://u:{SECRET}@host/db", "slice.min_duration": "abc"}
    with pytest.raises(AirflowFailException) as err:
        StageOperator(task_id="slice", stage="slice", overrides=overrides).load_settings()
    assert SECRET not in str(err.value) and "slice.min_duration" in str(err.value)


def test_undecodable_media_fails_the_task_with_the_decoders_reason(tmp_path):
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(random.Random(0).randbytes(200_000))
    task = IngestOperator(task_id="ingest", media=str(noise), overrides={"paths.work_dir": str(tmp_path / "work")})
    with pytest.raises(AirflowFailException, match=f"^{noise}: decoding failed \\(Header missing"):
        task.execute({})
