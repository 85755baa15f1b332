"""The dataset report inside the Airflow UI: a "nr4dl dataset" page and a "File report" tab on each run.

Airflow 3 plugins add pages as `external_views` (the UI shows them in an
iframe, in the navigation or as a tab of a DAG run) served by the plugin's own
`fastapi_apps` app, mounted by the api-server under `/nr4dl`. The UI's iframe
shares the UI's origin, so the browser sends the login's JWT cookie with every
request of the page, its images and its audio.

Security: FastAPI apps of plugins get no authentication from Airflow. Every
route here depends on `require_reader`, which authenticates exactly as
Airflow's own REST API does (`airflow.api_fastapi.core_api.security.get_user`:
a Bearer token, else the `_token` cookie, validated by the configured auth
manager; no token 401, a bad or expired one 401/403) and then asks the auth
manager whether the user may read `nr4dl_process_file` runs. Audio is served
only from inside the configured work folder and dataset folder: the requested
path is resolved (symlinks included) and refused with 403 unless it lies under
one of them and names an audio file.

Nothing heavy at import: the report modules load on the first request.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import get_user
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

URL_PREFIX = "/nr4dl"
PROCESS_DAG = "nr4dl_process_file"
AUDIO_TYPES = {
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".m4a": "audio/mp4",
}


async def require_reader(request: Request, user: BaseUser = Depends(get_user)) -> BaseUser:
    """A logged-in user allowed to read the processing runs, else 401/403 (see the module doc)."""
    from airflow.api_fastapi.app import get_auth_manager

    allowed = get_auth_manager().is_authorized_dag(
        method="GET", access_entity=DagAccessEntity.RUN, details=DagDetails(id=PROCESS_DAG), user=user
    )
    if not allowed:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"not allowed to read {PROCESS_DAG} runs")
    return user


app = FastAPI(
    title="nr4dl dataset report",
    dependencies=[Depends(require_reader)],
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)


def _settings() -> Any:
    from nr4dl_tasks.core import settings

    return settings.load()


def _roots(settings: Any) -> dict[str, Path]:
    return {
        "work": settings.resolve(settings.paths.work_dir).resolve(),
        "dataset": settings.resolve(settings.export.dataset_dir).resolve(),
    }


def safe_audio(root: Path, rel: str) -> Path:
    """`root/rel` when it is an audio file inside `root` after resolving every link; else 403 (or 404)."""
    target = (root / rel).resolve()
    if not target.is_relative_to(root) or target.suffix.lower() not in AUDIO_TYPES:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only audio inside the work and dataset folders is served")
    if not target.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such audio file")
    return target


def _base(request: Request) -> str:
    """This app's path as the browser sees it (the api-server may itself sit under a base URL)."""
    return request.scope.get("root_path", "").rstrip("/")


def _links(request: Request) -> tuple[Any, Any]:
    base = _base(request)
    from urllib.parse import quote

    def audio(clip: Any, which: str) -> str | None:
        rel = clip.denoised_path if which == "denoised" else clip.path
        return f"{base}/audio/work/{quote(clip.source)}/{quote(rel)}" if rel else None

    return audio, lambda source: f"{base}/file/{quote(source)}"


@app.get("/dataset", response_class=HTMLResponse)
def dataset(request: Request) -> HTMLResponse:
    from nr4dl_tasks.report.data import build
    from nr4dl_tasks.report.html import dataset_page

    audio, link = _links(request)
    return HTMLResponse(dataset_page(build(_settings(), with_waveforms=False), audio, link))


def _file_response(request: Request, source: str) -> HTMLResponse:
    from nr4dl_tasks.report.data import find_file, tier_order
    from nr4dl_tasks.report.html import file_page

    settings = _settings()
    report = find_file(settings, source)
    if report is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no work folder {source!r}")
    audio, _ = _links(request)
    return HTMLResponse(file_page(report, audio, tier_order(settings), back=f"{_base(request)}/dataset"))


@app.get("/file/{source}", response_class=HTMLResponse)
def file_report(request: Request, source: str) -> HTMLResponse:
    return _file_response(request, source)


def run_work_folder(dag_id: str, run_id: str) -> str | None:
    """The work folder a processing run's ingest task pushed as its XCom; None before ingest succeeded."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id == "ingest",
                XComModel.key == "return_value",
                XComModel.map_index == -1,
            )
        )
    if isinstance(value, str):
        import json

        value = json.loads(value)
    return value.get("work_dir") if isinstance(value, dict) else None


@app.get("/run/{dag_id}/{run_id}", response_class=HTMLResponse)
def run_report(request: Request, dag_id: str, run_id: str) -> HTMLResponse:
    """The "File report" tab of a DAG run: the report of the file the run processed."""
    if dag_id != PROCESS_DAG:
        return HTMLResponse(f"<p>The file report belongs to {PROCESS_DAG} runs; this is a {dag_id} run.</p>")
    work = run_work_folder(dag_id, run_id)
    if work is None:
        return HTMLResponse("<p>This run has not ingested its file yet: no work folder to report on.</p>")
    return _file_response(request, Path(work).name)


@app.get("/audio/{root}/{rel:path}")
def audio(root: str, rel: str) -> FileResponse:
    roots = _roots(_settings())
    if root not in roots:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "audio comes from 'work' or 'dataset'")
    path = safe_audio(roots[root], rel)
    return FileResponse(path, media_type=AUDIO_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path)[0])


@app.get("/data/funnel.json")
def funnel() -> JSONResponse:
    """The funnel of every file and the total, as numbers (seconds, clips, drops by reason)."""
    from dataclasses import asdict

    from nr4dl_tasks.report.data import build

    report = build(_settings(), with_waveforms=False)
    return JSONResponse(
        {
            "total": [asdict(s) for s in report.funnel],
            "files": {f.source: [asdict(s) for s in f.funnel] for f in report.files},
        }
    )


@app.get("/report.html")
def static_report() -> FileResponse:
    """The static report the export wrote (report.html in the dataset folder)."""
    from nr4dl_tasks.report.html import STATIC_NAME

    path = _roots(_settings())["dataset"] / STATIC_NAME
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no report.html yet: run the nr4dl_dataset DAG or nr4dl report")
    return FileResponse(path, media_type="text/html")


class Nr4dlReportPlugin(AirflowPlugin):
    name = "nr4dl_report"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "nr4dl dataset report"}]
    external_views = [
        {
            "name": "nr4dl dataset",
            "href": "nr4dl/dataset",
            "destination": "nav",
            "url_route": "nr4dl-dataset",
            "nav_top_level": True,
        },
        {
            "name": "File report",
            "href": "nr4dl/run/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "nr4dl-file-report",
        },
    ]
