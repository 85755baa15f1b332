"""Benchmark: wall time, speed and peak memory of each pipeline stage, and of the manual "seed way".

What it measures
    For a 10-minute and a 2-hour recording, each stage of the real CLI
    (`nr4dl process FILE --out data/bench/work --until STAGE`, STAGE = ingest,
    separate, segment, slice, denoise, speakers, transcribe, gate) runs in its own fresh process. The engine skips
    stages already done, so each run times exactly one stage. Per stage it
    records wall seconds, x real-time (audio seconds / wall seconds) and peak
    RSS: the maximum over time of the summed RSS of the process tree (nr4dl and
    its children, e.g. the Spleeter worker), polled with psutil every 0.2 s.
    Every stage process pays its own interpreter start, imports and model
    loading; that is included, as it is when Airflow runs one stage per task.

    The "seed way" (10-minute input only) is what users did by hand:
    `spleeter separate -p spleeter:2stems` on the whole file, then
    `ina_speech_segmenter.py` on the vocals, measured the same way.

How the inputs are made
    Recordings from ../shared/media (relative to the project root) are
    normalised to 44.1 kHz stereo WAV parts (speech, music, speech mixed over
    music), and joined with ffmpeg's concat demuxer into an MP3, streaming, so
    no recording is ever held in Python memory. Each 10-minute cycle rotates
    the order of the parts. `<name>.timeline.tsv` beside each input gives the
    exact offset and content of every part. Everything lives in the git-ignored
    `data/bench/` and is reused when present.

Offline
    Every measured command runs with HTTP(S)_PROXY pointing at a closed local
    port, so any attempt to download a model fails loudly instead of silently
    using the network. Spleeter gets MODEL_PATH=models/spleeter (the
    provisioned 2stems checkpoint, with its `.probe`); ina gets KERAS_HOME set
    to a folder whose `inaSpeechSegmenter/` links the provisioned
    models/ina/*.hdf5, where keras' get_file finds them without downloading.

Usage: .venv/bin/python bench/run.py [--inputs 10min,2h] [--skip-seed] [--keep]
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import soundfile as sf

from nr4dl_tasks.pipeline import STAGE_NAMES

ROOT = Path(__file__).resolve().parent.parent
MEDIA = (ROOT / ".." / "shared" / "media").resolve()
BENCH = ROOT / "data" / "bench"
PARTS = BENCH / "parts"
WORK = BENCH / "work"
SEED = BENCH / "seed"
LOGS = BENCH / "logs"
NR4DL = ROOT / ".venv" / "bin" / "nr4dl"
SPLEETER = ROOT / ".venv-spleeter" / "bin" / "spleeter"
INA_CLI = ROOT / ".venv" / "bin" / "ina_speech_segmenter.py"

RATE = 44100
INPUTS = {"10min": 600.0, "2h": 7200.0}
STAGES = STAGE_NAMES
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


def timeline(seconds: float) -> list[tuple[float, Part]]:
    """(offset, part) until `seconds` are covered, each cycle rotated so no two cycles are identical."""
    base = cycle()
    out: list[tuple[float, Part]] = []
    at, turn = 0.0, 0
    while at < seconds:
        shift = (turn * 7) % len(base)
        for part in base[shift:] + base[:shift]:
            out.append((at, part))
            at += part.seconds
            if at >= seconds:
                break
        turn += 1
    return out


def build_input(name: str, seconds: float) -> Path:
    """`data/bench/bench_<name>.mp3`, joined by ffmpeg's concat demuxer and cut to exactly `seconds`."""
    dst = BENCH / f"bench_{name}.mp3"
    if dst.exists():
        return dst
    parts = timeline(seconds)
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


# ---------------------------------------------------------------- measuring


@dataclass
class Measure:
    wall: float
    peak_mb: float
    returncode: int
    guard_killed: bool
    log: Path

    @property
    def status(self) -> str:
        if self.returncode == 0:
            return "ok"
        if self.guard_killed:
            return "killed (OOM guard)"
        if self.returncode == -9:
            return "killed (OOM)"
        return f"failed (rc {self.returncode})"


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass  # exited between listing and reading
    return total


def _kill_tree(proc: psutil.Process) -> None:
    for p in [*proc.children(recursive=True), proc]:
        try:
            p.kill()
        except psutil.Error:
            pass


def measure(cmd: list[str], log: Path, env: dict[str, str]) -> Measure:
    """Run `cmd` (output to `log`), polling the summed RSS of its process tree."""
    log.parent.mkdir(parents=True, exist_ok=True)
    peak, guard_killed = 0, False
    with log.open("w") as out:
        began = time.monotonic()
        popen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        proc = psutil.Process(popen.pid)
        while popen.poll() is None:
            try:
                peak = max(peak, _tree_rss(proc))
            except psutil.Error:
                pass
            if psutil.virtual_memory().available < MIN_AVAILABLE_BYTES:
                guard_killed = True
                _kill_tree(proc)
            time.sleep(POLL_SECONDS)
        wall = time.monotonic() - began
    return Measure(wall, peak / 2**20, popen.returncode, guard_killed, log)


def offline_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy",)}
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[key] = DEAD_PROXY
    env.update(extra)
    return env


def last_error(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    failed = [line for line in lines if line.startswith("FAILED") or "Error" in line]
    return (failed or lines or ["(no output)"])[-1][:300]


# ---------------------------------------------------------------- table


@dataclass
class Row:
    input: str
    stage: str
    audio: float
    wall: float | None
    peak_mb: float | None
    status: str = "ok"

    def cells(self) -> list[str]:
        speed = f"{self.audio / self.wall:.1f}" if self.wall and self.status == "ok" else self.status
        wall = f"{self.wall:.1f}" if self.wall is not None else ""
        peak = f"{self.peak_mb:.0f}" if self.peak_mb is not None else ""
        return [self.input, self.stage, f"{self.audio:.0f}", wall, speed, peak]


def row(name: str, stage: str, audio: float, m: Measure) -> Row:
    return Row(name, stage, audio, m.wall, m.peak_mb, m.status)


def combined(name: str, stage: str, audio: float, *rows: Row) -> Row:
    """Summed wall time and the larger peak of several rows (failed if any failed)."""
    bad = [r.status for r in rows if r.status != "ok"]
    return Row(
        name, stage, audio, sum(r.wall or 0 for r in rows), max(r.peak_mb or 0 for r in rows), bad[0] if bad else "ok"
    )


def markdown(rows: list[Row], extra: list[list[str]]) -> str:
    header = ["input", "stage", "audio s", "wall s", "x real-time", "peak RSS MB"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    lines += ["| " + " | ".join(cells) + " |" for cells in extra]
    return "\n".join(lines)


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
    return f"Machine: nproc={cores}, CPU: {model}, RAM {ram:.0f} GiB, Python {platform.python_version()}"


# ---------------------------------------------------------------- runs


def wipe(*paths: Path) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def run_pipeline(name: str, media_path: Path, audio: float, keep: bool) -> list[Row]:
    """Each stage in a fresh `nr4dl process --until STAGE`; returns the stage rows plus separate+segment."""
    if not keep:
        wipe(*WORK.glob(f"{media_path.stem}-*"))
    rows: list[Row] = []
    for stage in STAGES:
        print(f"[{name}] {stage} ...", flush=True)
        m = measure(
            [str(NR4DL), "process", str(media_path), "--out", str(WORK), "--until", stage],
            LOGS / f"{name}-{stage}.log",
            offline_env(),
        )
        rows.append(row(name, stage, audio, m))
        print(f"[{name}] {stage}: {m.status}, {m.wall:.1f} s, peak {m.peak_mb:.0f} MB", flush=True)
        if m.status != "ok":
            print(f"[{name}] {stage} error: {last_error(m.log)} (log: {m.log})", flush=True)
            break
    by_stage = {r.stage: r for r in rows}
    if "separate" in by_stage and "segment" in by_stage:
        rows.append(combined(name, "separate+segment", audio, by_stage["separate"], by_stage["segment"]))
    return rows


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


def run_seed(name: str, media_path: Path, audio: float, keep: bool) -> list[Row]:
    """The manual way: the spleeter CLI on the whole file, then ina's CLI on its vocals."""
    sep_dir, seg_dir = SEED / name / "spleeter", SEED / name / "ina"
    if not keep:
        wipe(sep_dir, seg_dir)
    seg_dir.mkdir(parents=True, exist_ok=True)
    print(f"[{name}] seed spleeter ...", flush=True)
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
        LOGS / f"{name}-seed-spleeter.log",
        offline_env(MODEL_PATH=str(ROOT / "models" / "spleeter")),
    )
    rows = [row(name, "seed: spleeter separate", audio, sep)]
    print(f"[{name}] seed spleeter: {sep.status}, {sep.wall:.1f} s, peak {sep.peak_mb:.0f} MB", flush=True)
    vocals = sep_dir / media_path.stem / "vocals.wav"
    if sep.status == "ok" and vocals.exists():
        print(f"[{name}] seed ina ...", flush=True)
        seg = measure(
            [str(INA_CLI), "-i", str(vocals), "-o", str(seg_dir)],
            LOGS / f"{name}-seed-ina.log",
            offline_env(KERAS_HOME=str(keras_home())),
        )
        rows.append(row(name, "seed: ina_speech_segmenter", audio, seg))
        print(f"[{name}] seed ina: {seg.status}, {seg.wall:.1f} s, peak {seg.peak_mb:.0f} MB", flush=True)
        rows.append(combined(name, "seed: separate+segment", audio, *rows))
    else:
        print(f"[{name}] seed spleeter error: {last_error(sep.log)} (log: {sep.log})", flush=True)
    return rows


def find(rows: list[Row], stage: str) -> Row | None:
    return next((r for r in rows if r.stage == stage), None)


def ratio_row(name: str, ours: Row | None, seed: Row | None) -> list[str] | None:
    if not ours or not seed or ours.status != "ok" or seed.status != "ok":
        return None
    return [
        name,
        "seed / ours (separate+segment)",
        "",
        f"{seed.wall / ours.wall:.2f}x wall",
        "",
        f"{seed.peak_mb / ours.peak_mb:.2f}x peak",
    ]


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", default="10min,2h", help="comma-separated, from: " + ", ".join(INPUTS))
    parser.add_argument("--skip-seed", action="store_true", help="do not run the manual spleeter + ina CLIs")
    parser.add_argument("--keep", action="store_true", help="do not wipe work folders first (done stages skip)")
    args = parser.parse_args(argv)
    args.inputs = [name.strip() for name in args.inputs.split(",") if name.strip()]
    unknown = [name for name in args.inputs if name not in INPUTS]
    if unknown:
        parser.error(f"unknown input(s) {unknown}; choose from {list(INPUTS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows: list[Row] = []
    extra: list[list[str]] = []
    for name in args.inputs:
        media_path = build_input(name, INPUTS[name])
        audio = audio_seconds(media_path)
        ours = run_pipeline(name, media_path, audio, args.keep)
        rows += ours
        if name == "10min" and not args.skip_seed:
            seed = run_seed(name, media_path, audio, args.keep)
            rows += seed
            ratio = ratio_row(name, find(ours, "separate+segment"), find(seed, "seed: separate+segment"))
            extra += [ratio] if ratio else []
    footer = [
        "",
        "Each stage ran in a fresh process: its wall time includes interpreter start, imports and model loading.",
        "Peak RSS: maximum over time of the summed RSS of the process tree (incl. the Spleeter worker), polled every "
        f"{POLL_SECONDS} s. x real-time = audio s / wall s. Logs: {LOGS.relative_to(ROOT)}/.",
    ]
    failed = [r for r in rows if r.status != "ok"]
    footer += [f"FAILED: {r.input} {r.stage}: {r.status}" for r in failed]
    report = "\n".join([machine(), "", markdown(rows, extra), *footer])
    print("\n" + report)
    (BENCH / "results.md").write_text(report + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
