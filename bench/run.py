"""Benchmark: the whole pipeline's speed and peak memory through the CLI, and archive throughput through Airflow.

What it measures
    cli      Each input (`10min`, `2h`) goes through the whole pipeline in one
             `nr4dl process FILE` process, as a user runs it. Wall time, x real
             time and peak RSS (the summed RSS of the process tree, the Spleeter
             worker included, polled every 0.2 s) are those of that process;
             each stage's share comes from the seconds its stamp recorded. "without
             transcribe" is the same run's wall time less the transcribe stage.
    airflow  `batch`: eight different 10-minute files triggered at once on a
             fresh `airflow standalone` (its own AIRFLOW_HOME under data/bench/,
             LocalExecutor, SQLite, the nr4dl_heavy pool sized for this machine),
             the way scripts/run_dag.py triggers them. Throughput is audio hours
             per machine hour, from the first trigger to the last task's end.
             Airflow's overhead is the task time that is not stage work: summed
             task durations less the stages' own recorded seconds.
    seed     (`--seed`, 10-minute input) what users did by hand: `spleeter
             separate` on the whole file, then `ina_speech_segmenter.py` on the
             vocals, against our separate + segment.

    Beside the speed it prints what came out (clips kept, their hours, mean
    DNSMOS OVRL, share of the input's speech kept), so a speed-up that loses
    data shows, and the share of the speech that has a music bed under it.

How the inputs are made
    Recordings from ../shared/media (relative to the project root) are
    normalised to 44.1 kHz stereo WAV parts (speech, music, speech mixed over
    music), and joined with ffmpeg's concat demuxer into an MP3, streaming, so
    no recording is ever held in Python memory. Each 10-minute cycle rotates
    the order of the parts; each batch file starts the rotation elsewhere.
    `<name>.timeline.tsv` beside each input gives the exact offset and content
    of every part. Everything lives in the git-ignored `data/bench/` and is
    reused when present.

Offline
    Every measured command runs with HTTP(S)_PROXY pointing at a closed local
    port (local addresses excepted, for Airflow's own API), so any attempt to
    download a model fails loudly instead of silently using the network.

Usage: .venv/bin/python bench/run.py [--inputs 10min,2h,batch] [--seed]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from math import inf
from pathlib import Path

import psutil
import soundfile as sf

from nr4dl_tasks.core import layout
from nr4dl_tasks.core.records import read_clips
from nr4dl_tasks.pipeline import STAGE_NAMES

ROOT = Path(__file__).resolve().parent.parent
MEDIA = (ROOT / ".." / "shared" / "media").resolve()
BENCH = ROOT / "data" / "bench"
PARTS = BENCH / "parts"
WORK = BENCH / "work"
SEED = BENCH / "seed"
LOGS = BENCH / "logs"
AIRFLOW_HOME = BENCH / "airflow"
PYTHON = ROOT / ".venv" / "bin" / "python"
NR4DL = ROOT / ".venv" / "bin" / "nr4dl"
SPLEETER = ROOT / ".venv-spleeter" / "bin" / "spleeter"
INA_CLI = ROOT / ".venv" / "bin" / "ina_speech_segmenter.py"

RATE = 44100
INPUTS = {"10min": 600.0, "2h": 7200.0}
BATCH = 8  # files of BATCH_SECONDS in the Airflow run
BATCH_SECONDS = 600.0
AIRFLOW_PORT = 8097  # not the 8080 of a user's own Airflow
POLL_SECONDS = 0.2
# Kill a measured process tree before the kernel does when free memory gets this low (the machine has no swap).
MIN_AVAILABLE_BYTES = 1 << 30
DEAD_PROXY = "http://127.0.0.1:9"


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Part:
    """One normalised piece of audio and what it contains."""

    path: Path
    content: str

    @property
    def seconds(self) -> float:
        return wav_seconds(self.path)


@functools.cache
def wav_seconds(path: Path) -> float:
    info = sf.info(str(path))
    return info.frames / info.samplerate


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def _cached(dst: Path, build) -> Path:
    """Build `dst` through a temporary name unless it already exists."""
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".tmp-{dst.name}")
        build(tmp)
        tmp.replace(dst)
    return dst


_TO_WAV = ("-ar", str(RATE), "-ac", "2", "-c:a", "pcm_s16le", "-f", "wav")
SONG = "music/audio_example.mp3"


def normalised(rel: str) -> Path:
    """A media file as 44.1 kHz stereo 16-bit WAV."""
    dst = PARTS / (rel.replace("/", "__").rsplit(".", 1)[0] + ".wav")
    return _cached(dst, lambda tmp: ffmpeg("-i", str(MEDIA / rel), *_TO_WAV, str(tmp)))


def over_music(rel: str, music_gain: float = 0.15) -> Path:
    """A speech file with the song looped underneath it, as long as the speech."""
    dst = PARTS / ("mix__" + rel.replace("/", "__").rsplit(".", 1)[0] + ".wav")
    graph = (
        f"[0:a]aresample={RATE},aformat=channel_layouts=stereo[s];"
        f"[1:a]aresample={RATE},aformat=channel_layouts=stereo,volume={music_gain}[m];"
        "[s][m]amix=inputs=2:duration=first:normalize=0[out]"
    )
    return _cached(
        dst,
        lambda tmp: ffmpeg(
            "-i",
            str(MEDIA / rel),
            "-stream_loop",
            "-1",
            "-i",
            str(MEDIA / SONG),
            "-filter_complex",
            graph,
            "-map",
            "[out]",
            *_TO_WAV,
            str(tmp),
        ),
    )


def media(pattern: str) -> list[str]:
    return sorted(str(p.relative_to(MEDIA)) for p in MEDIA.glob(pattern))


def cycle() -> list[Part]:
    """About nine minutes alternating speech, music and speech over music."""

    def plain(rels: list[str], content: str) -> list[Part]:
        return [Part(normalised(rel), content) for rel in rels]

    def mixed(rels: list[str]) -> list[Part]:
        return [Part(over_music(rel), "speech over music") for rel in rels]

    song = Part(normalised(SONG), "music (song with vocals)")
    lj = media("speech_en/LJ*.wav")
    return [
        *plain(lj[:8], "speech F (en)"),
        song,
        song,
        song,
        *mixed(media("speakers/2033/*.flac")),
        Part(normalised("segmentation/musanmix.mp3"), "music 0-22.4, noise -62.8, speech M"),
        *plain(media("speakers/1998/*.flac"), "speech F"),
        Part(normalised("segmentation/lamartine.wav"), "speech F 0-8.65, M (fr)"),
        song,
        song,
        Part(normalised("diarization/sample.wav"), "speech, 2 speakers"),
        *plain(media("speakers/1688/*.flac"), "speech M"),
        *mixed(lj[8:]),
        *plain(media("speakers/3080/*.flac"), "speech F"),
    ]


def timeline(seconds: float, first_turn: int = 0) -> list[tuple[float, Part]]:
    """(offset, part) until `seconds` are covered, each cycle rotated so no two cycles are identical;
    `first_turn` starts the rotation later, so the files of a batch differ."""
    base = cycle()
    out: list[tuple[float, Part]] = []
    at, turn = 0.0, first_turn
    while at < seconds:
        shift = (turn * 7) % len(base)
        for part in base[shift:] + base[:shift]:
            out.append((at, part))
            at += part.seconds
            if at >= seconds:
                break
        turn += 1
    return out


def build_input(name: str, seconds: float, first_turn: int = 0) -> Path:
    """`data/bench/bench_<name>.mp3`, joined by ffmpeg's concat demuxer and cut to exactly `seconds`."""
    dst = BENCH / f"bench_{name}.mp3"
    if dst.exists():
        return dst
    parts = timeline(seconds, first_turn)
    listing = BENCH / f"bench_{name}.concat.txt"
    listing.write_text("".join(f"file '{part.path}'\n" for _, part in parts))
    with (BENCH / f"bench_{name}.timeline.tsv").open("w") as tsv:
        tsv.write("start\tend\tcontent\tpart\n")
        for at, part in parts:
            tsv.write(f"{at:.3f}\t{min(at + part.seconds, seconds):.3f}\t{part.content}\t{part.path.name}\n")
    print(f"building {dst.name} ({seconds:.0f} s from {len(parts)} parts)", flush=True)
    return _cached(
        dst,
        lambda tmp: ffmpeg(
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(listing),
            "-t",
            str(seconds),
            "-c:a",
            "libmp3lame",
            "-b:a",
            "192k",
            str(tmp),
        ),
    )


def audio_seconds(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out)


def speech_seconds(media_path: Path) -> tuple[float, float]:
    """(speech, speech with a music bed under it) in seconds, from the input's timeline."""
    speech = bed = 0.0
    with media_path.with_suffix(".timeline.tsv").open() as tsv:
        next(tsv)
        for line in tsv:
            start, end, content, _ = line.rstrip("\n").split("\t")
            seconds = float(end) - float(start)
            if content.startswith("speech"):
                speech += seconds
                bed += seconds if content == "speech over music" else 0.0
    return speech, bed


# ---------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Sample:
    at: float  # epoch seconds
    rss: int  # summed RSS of the watched process trees, bytes
    cpu: float  # CPU seconds of the measured command's tree so far (its exited, waited-for children included)


@dataclass
class Measure:
    wall: float
    returncode: int
    guard_killed: bool
    log: Path
    samples: list[Sample]  # one per poll

    def between(self, start: float, end: float) -> tuple[float, float]:
        """(peak RSS in MB, cores busy on average) between two epoch times."""
        inside = [s for s in self.samples if start <= s.at < end]
        if len(inside) < 2:
            return 0.0, 0.0
        peak = max(s.rss for s in inside) / 2**20
        return peak, (inside[-1].cpu - inside[0].cpu) / (inside[-1].at - inside[0].at)

    @property
    def peak_mb(self) -> float:
        return max((s.rss for s in self.samples), default=0) / 2**20

    @property
    def status(self) -> str:
        if self.returncode == 0:
            return "ok"
        if self.guard_killed:
            return "killed (OOM guard)"
        if self.returncode == -9:
            return "killed (OOM)"
        return f"failed (rc {self.returncode})"


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []  # exited


def _sample(roots: list[psutil.Process]) -> Sample:
    rss, cpu = 0, 0.0
    for root in roots:
        for p in _tree(root):
            try:
                rss += p.memory_info().rss
                if root is roots[0]:
                    times = p.cpu_times()
                    cpu += times.user + times.system + (times.children_user + times.children_system) * (p is root)
            except psutil.Error:
                pass  # exited between listing and reading
    return Sample(time.time(), rss, cpu)


def _kill_tree(proc: psutil.Process) -> None:
    for p in reversed(_tree(proc)):
        try:
            p.kill()
        except psutil.Error:
            pass


def measure(cmd: list[str], log: Path, env: dict[str, str], also: psutil.Process | None = None) -> Measure:
    """Run `cmd` (output to `log`), polling the summed RSS of its process tree and of `also`'s."""
    log.parent.mkdir(parents=True, exist_ok=True)
    samples: list[Sample] = []
    guard_killed = False
    with log.open("w") as out:
        began = time.monotonic()
        popen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        proc = psutil.Process(popen.pid)
        roots = [proc, *([also] if also else [])]
        while popen.poll() is None:
            samples.append(_sample(roots))
            if psutil.virtual_memory().available < MIN_AVAILABLE_BYTES:
                guard_killed = True
                _kill_tree(proc)
            time.sleep(POLL_SECONDS)
        wall = time.monotonic() - began
    return Measure(wall, popen.returncode, guard_killed, log, samples)


def offline_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[key] = DEAD_PROXY
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


def last_error(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    failed = [line for line in lines if line.startswith("FAILED") or "Error" in line]
    return (failed or lines or ["(no output)"])[-1][:300]


# ---------------------------------------------------------------- what came out


def work_folders(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if (p / layout.STAMPS_DIR).is_dir())


def stage_starts(log: Path) -> dict[str, float]:
    """Epoch time at which each stage started, from the "<stage> started" lines of a CLI log."""
    starts = {}
    for line in log.read_text(errors="replace").splitlines():
        words = line.split()
        if len(words) >= 5 and words[-1] == "started" and words[-2] in STAGE_NAMES:
            when = datetime.strptime(f"{words[0]} {words[1]}", "%Y-%m-%d %H:%M:%S,%f").astimezone()
            starts[words[-2]] = when.timestamp()
    return starts


def stage_seconds(folder: Path) -> dict[str, float]:
    """The seconds each stage's stamp recorded (its own work, no start-up)."""
    stamps = {stage: folder / layout.stamp_name(stage) for stage in STAGE_NAMES}
    return {stage: json.loads(p.read_text()).get("seconds", 0.0) for stage, p in stamps.items() if p.exists()}


@dataclass
class Outcome:
    clips: int = 0
    kept: int = 0
    kept_seconds: float = 0.0
    ovrl_sum: float = 0.0
    ovrl_n: int = 0

    def add(self, folder: Path) -> None:
        gate = folder / layout.manifest("gate").name
        for clip in read_clips(gate) if gate.exists() else []:
            self.clips += 1
            if clip.kept:
                self.kept += 1
                self.kept_seconds += clip.duration
                ovrl = (clip.quality or {}).get("dnsmos_ovrl")
                if ovrl is not None:
                    self.ovrl_sum, self.ovrl_n = self.ovrl_sum + ovrl, self.ovrl_n + 1

    def line(self, name: str, speech: float, bed: float) -> str:
        ovrl = f"{self.ovrl_sum / self.ovrl_n:.2f}" if self.ovrl_n else "-"
        return (
            f"{name}: {self.kept} of {self.clips} clips kept, {self.kept_seconds / 3600:.2f} h "
            f"({self.kept_seconds / max(speech, 1e-9):.0%} of the input's {speech / 3600:.2f} h of speech, "
            f"{bed / max(speech, 1e-9):.0%} of which over a music bed), mean DNSMOS OVRL {ovrl}"
        )


# ---------------------------------------------------------------- table

HEADER = ["input", "what", "audio s", "wall s", "x real time", "share of wall", "peak RSS MB", "cores busy"]


def cells(
    name: str,
    what: str,
    audio: float,
    wall: float,
    total: float | None = None,
    peak: float | None = None,
    cores: float | None = None,
) -> list[str]:
    return [
        name,
        what,
        f"{audio:.0f}",
        f"{wall:.1f}",
        f"{audio / max(wall, 1e-9):.1f}",
        f"{wall / total:.0%}" if total else "",
        f"{peak:.0f}" if peak is not None else "",
        f"{cores:.2f}" if cores is not None else "",
    ]


def markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    ram = psutil.virtual_memory().total / 2**30
    cores = len(os.sched_getaffinity(0))
    load = os.getloadavg()[0]
    return (
        f"Machine: nproc={cores}, CPU: {model}, RAM {ram:.0f} GiB, Python {platform.python_version()}, load {load:.1f}"
    )


# ---------------------------------------------------------------- runs


@dataclass
class Report:
    rows: list[list[str]]
    notes: list[str]
    failed: list[str]


def wipe(*paths: Path) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def run_cli(name: str, media_path: Path, report: Report) -> None:
    """The whole pipeline in one `nr4dl process` process; each stage's share from its stamp."""
    audio = audio_seconds(media_path)
    out = WORK / name
    wipe(out)
    print(f"[{name}] whole pipeline ...", flush=True)
    m = measure([str(NR4DL), "process", str(media_path), "--out", str(out)], LOGS / f"{name}-cli.log", offline_env())
    print(f"[{name}] {m.status}, {m.wall:.1f} s, peak {m.peak_mb:.0f} MB", flush=True)
    if m.status != "ok":
        report.failed.append(f"{name}: {m.status}: {last_error(m.log)} (log: {m.log})")
        return
    (folder,) = work_folders(out)
    seconds = stage_seconds(folder)
    starts = stage_starts(m.log)
    ends = [*list(starts.values())[1:], inf]
    spans = {stage: m.between(start, end) for (stage, start), end in zip(starts.items(), ends, strict=True)}
    for stage, wall in seconds.items():
        peak, cores = spans.get(stage, (None, None))
        report.rows.append(cells(name, stage, audio, wall, m.wall, peak, cores))
    report.rows.append(cells(name, "**whole pipeline**", audio, m.wall, m.wall, m.peak_mb, m.between(0, inf)[1]))
    without = m.wall - seconds.get("transcribe", 0.0)
    report.rows.append(cells(name, "**without transcribe**", audio, without, m.wall))
    outcome = Outcome()
    outcome.add(folder)
    report.notes.append(outcome.line(name, *speech_seconds(media_path)))


def _task_seconds(db: Path) -> tuple[dict[str, float], datetime | None]:
    """Summed duration of each task of nr4dl_process_file over its finished runs, and when the last one ended,
    from Airflow's database."""
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT task_id, start_date, end_date FROM task_instance WHERE dag_id = 'nr4dl_process_file' "
            "AND start_date IS NOT NULL AND end_date IS NOT NULL"
        ).fetchall()
    seconds: dict[str, float] = dict.fromkeys(STAGE_NAMES, 0.0)
    for task, start, end in rows:
        seconds[task] = seconds.get(task, 0.0) + (_utc(end) - _utc(start)).total_seconds()
    return seconds, max((_utc(end) for _, _, end in rows), default=None)


def _utc(stamp: str) -> datetime:
    when = datetime.fromisoformat(stamp)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def run_airflow(report: Report) -> None:
    """BATCH different files triggered at once on a fresh airflow standalone; throughput and overhead."""
    files = [build_input(f"batch{k}", BATCH_SECONDS, first_turn=k) for k in range(1, BATCH + 1)]
    audio = sum(audio_seconds(f) for f in files)
    work, dataset = BENCH / "airflow-work", BENCH / "airflow-dataset"
    wipe(AIRFLOW_HOME, work, dataset)
    env = offline_env(
        AIRFLOW_HOME=str(AIRFLOW_HOME),
        AIRFLOW__API__PORT=str(AIRFLOW_PORT),
        NR4DL__PATHS__WORK_DIR=str(work),
        NR4DL__EXPORT__DATASET_DIR=str(dataset),
    )
    subprocess.run(["bash", "scripts/standalone.sh", "start"], env=env, cwd=ROOT, check=True)
    try:
        airflow = psutil.Process(int((AIRFLOW_HOME / "standalone.pid").read_text()))
        began, cpu_before = datetime.now(UTC), _busy_cpu()
        print(f"[batch] {len(files)} files through Airflow ...", flush=True)
        m = measure(
            [str(PYTHON), "scripts/run_dag.py", *map(str, files), "--timeout", "14400"],
            LOGS / "batch-airflow.log",
            env,
            also=airflow,
        )
        cpu_s = _busy_cpu() - cpu_before
    finally:
        subprocess.run(["bash", "scripts/standalone.sh", "stop"], env=env, cwd=ROOT, check=False)
    print(f"[batch] {m.status}, {m.wall:.1f} s, peak {m.peak_mb:.0f} MB", flush=True)
    if m.status != "ok":
        report.failed.append(f"batch: {m.status}: {last_error(m.log)} (log: {m.log})")
    task_s, last_end = _task_seconds(AIRFLOW_HOME / "airflow.db")
    if last_end is None:
        report.failed.append("batch: no task finished")
        return
    span = (last_end - began).total_seconds()
    folders = work_folders(work)
    stamped = [stage_seconds(folder) for folder in folders]
    stage_s = {stage: sum(seconds.get(stage, 0.0) for seconds in stamped) for stage in STAGE_NAMES}
    for stage in STAGE_NAMES:
        report.rows.append(
            cells(
                "batch", f"{stage}: task s (stage s {stage_s[stage]:.0f})", audio, task_s[stage], sum(task_s.values())
            )
        )
    tasks = sum(map(len, stamped))
    report.rows.append(
        cells("batch", f"**{len(files)} files through Airflow**", audio, span, None, m.peak_mb, cpu_s / span)
    )
    overhead = sum(task_s.values()) - sum(stage_s.values())
    report.notes.append(
        f"batch: {audio / 3600:.2f} audio h in {span / 3600:.2f} machine h (first trigger to last task) = "
        f"{audio / span:.2f} audio h per machine hour. {tasks} tasks ran {sum(task_s.values()):.0f} s, the stages' "
        f"own work {sum(stage_s.values()):.0f} s: Airflow's per-task overhead {overhead / max(tasks, 1):.1f} s a task, "
        f"{overhead / max(sum(stage_s.values()), 1e-9):.1%} of the compute. Cores busy: the whole machine's. Peak RSS "
        "includes Airflow's scheduler, API server, DAG processor and triggerer."
    )
    outcome = Outcome()
    for folder in folders:
        outcome.add(folder)
    speech, bed = (sum(part) for part in zip(*map(speech_seconds, files), strict=True))
    report.notes.append(outcome.line("batch", speech, bed))


def _busy_cpu() -> float:
    """CPU seconds the whole machine has spent busy (not idle or waiting on I/O) since boot."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def keras_home() -> Path:
    """A KERAS_HOME whose inaSpeechSegmenter/ cache holds links to the provisioned ina models."""
    home = BENCH / "keras"
    cache = home / "inaSpeechSegmenter"
    cache.mkdir(parents=True, exist_ok=True)
    for model in sorted((ROOT / "models" / "ina").glob("*.hdf5")):
        link = cache / model.name
        if not link.exists():
            link.symlink_to(model)
    return home


def run_seed(media_path: Path, report: Report) -> None:
    """The manual way: the spleeter CLI on the whole file, then ina's CLI on its vocals."""
    audio = audio_seconds(media_path)
    sep_dir, seg_dir = SEED / "spleeter", SEED / "ina"
    wipe(sep_dir, seg_dir)
    seg_dir.mkdir(parents=True, exist_ok=True)
    print("[seed] spleeter ...", flush=True)
    # -d: spleeter only separates the first 600 s unless told otherwise; ask for the whole file.
    sep = measure(
        [
            str(SPLEETER),
            "separate",
            "-p",
            "spleeter:2stems",
            "-d",
            f"{audio + 1:.0f}",
            "-o",
            str(sep_dir),
            str(media_path),
        ],
        LOGS / "seed-spleeter.log",
        offline_env(MODEL_PATH=str(ROOT / "models" / "spleeter")),
    )
    vocals = sep_dir / media_path.stem / "vocals.wav"
    if sep.status != "ok" or not vocals.exists():
        report.failed.append(f"seed spleeter: {sep.status}: {last_error(sep.log)} (log: {sep.log})")
        return
    print("[seed] ina ...", flush=True)
    seg = measure(
        [str(INA_CLI), "-i", str(vocals), "-o", str(seg_dir)],
        LOGS / "seed-ina.log",
        offline_env(KERAS_HOME=str(keras_home())),
    )
    if seg.status != "ok":
        report.failed.append(f"seed ina: {seg.status}: {last_error(seg.log)} (log: {seg.log})")
        return
    report.rows.append(cells("10min", "seed: spleeter separate", audio, sep.wall, None, sep.peak_mb))
    report.rows.append(cells("10min", "seed: ina_speech_segmenter", audio, seg.wall, None, seg.peak_mb))


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    choices = [*INPUTS, "batch"]
    parser.add_argument("--inputs", default=",".join(choices), help="comma-separated, from: " + ", ".join(choices))
    parser.add_argument("--seed", action="store_true", help="also run the manual spleeter + ina CLIs (10 min)")
    args = parser.parse_args(argv)
    args.inputs = [name.strip() for name in args.inputs.split(",") if name.strip()]
    unknown = [name for name in args.inputs if name not in choices]
    if unknown:
        parser.error(f"unknown input(s) {unknown}; choose from {choices}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = Report([], [], [])
    print(machine(), flush=True)
    for name in args.inputs:
        if name == "batch":
            run_airflow(report)
        else:
            run_cli(name, build_input(name, INPUTS[name]), report)
    if args.seed:
        run_seed(build_input("10min", INPUTS["10min"]), report)
    footer = [
        "",
        "x real time = audio s / wall s. A stage's wall s is what its stamp recorded; the whole pipeline's includes",
        "interpreter start, imports and model loading. Peak RSS: maximum over time of the summed RSS of the process",
        f"tree, polled every {POLL_SECONDS} s. Logs: {LOGS.relative_to(ROOT)}/.",
        "",
        *report.notes,
        *(f"FAILED: {line}" for line in report.failed),
    ]
    text = "\n".join([machine(), "", markdown(report.rows), *footer])
    print("\n" + text)
    (BENCH / "results.md").write_text(text + "\n")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
