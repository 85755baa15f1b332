"""The dataset report as HTML: one page for the dataset, one per source file, and the static file of both.

Plots are inline SVG drawn here (no CDN, no JavaScript library, no network):
the pages open offline, inside Airflow's sandboxed plugin frame and from a
mail attachment alike. Where audio comes from is the caller's choice
(`AudioSrc`): the Airflow plugin links its own authenticated endpoint, the
static file embeds each sampled clip as Opus in a data: URI (about 3 KB per
second, so a report with a hundred players stays a few megabytes).

Every figure carries its exact value in a `data-*` attribute beside the text
a person reads, so tests compare the page with the manifests without parsing
prose.
"""

from __future__ import annotations

import base64
import html
import logging
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from nr4dl_tasks.core.settings import Settings
from nr4dl_tasks.report.data import ClipView, DatasetReport, FileReport, Step, histogram

log = logging.getLogger("nr4dl")

# (clip, "original" | "denoised") -> URL of the audio, or None to show no player
AudioSrc = Callable[[ClipView, str], "str | None"]
# source id -> URL of that file's report page
FileLink = Callable[[str], str]

STATIC_NAME = "report.html"  # in export.dataset_dir
KEPT_SAMPLE = 8  # kept clips with players, spread over the list
DROPPED_SAMPLE = 3  # dropped clips with players per reason
REVIEW_SAMPLE = 12
LABEL_COLOURS = {
    "male": "#4a7bd0",
    "female": "#c8509a",
    "speech": "#6a5acd",
    "music": "#e0a030",
    "noise": "#8c8c8c",
    "noEnergy": "#d8d8d8",
}
KEPT_COLOUR, DROPPED_COLOUR = "#2e9e5b", "#d04a3a"

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;padding:16px 24px;color:#222;background:#fff}
h1{font-size:22px;margin:4px 0 12px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:16px 0 6px}table{border-collapse:collapse;margin:6px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}
td.n{text-align:right;font-variant-numeric:tabular-nums}.drop td{color:#a33}.drop td:first-child{padding-left:24px}
.add td{color:#2e7d32}.add td:first-child{padding-left:24px}
.clip{border:1px solid #ddd;border-radius:6px;padding:8px;margin:8px 0;max-width:980px}
.clip.kept{border-left:5px solid #2e9e5b}.clip.dropped{border-left:5px solid #d04a3a}
.meta{color:#555;font-size:12px}.why{color:#a33;font-weight:600}.review{color:#b26a00}
.players{display:flex;gap:16px;flex-wrap:wrap;margin:4px 0}.players label{font-size:12px;color:#555;display:block}
.text{margin:4px 0;font-size:15px}.scroll{overflow-x:auto;max-width:100%}
.legend span{display:inline-block;margin-right:12px;font-size:12px}.legend i{display:inline-block;width:12px;
height:12px;margin-right:4px;vertical-align:-2px}.plots{display:flex;flex-wrap:wrap;gap:18px}
.note{color:#666;font-size:12px;max-width:980px}
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def hms(seconds: float) -> str:
    """1:02:03, 2:03 or 12.3 s: how long a stretch of audio is, for a person."""
    if abs(seconds) < 60:
        return f"{seconds:.1f} s"
    total = int(round(seconds))
    sign, total = ("-" if total < 0 else ""), abs(total)
    hours, rest = divmod(total, 3600)
    return f"{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{sign}{rest // 60}:{rest % 60:02d}"


def num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f'<meta name="viewport" content="width=device-width"><style>{CSS}</style></head>'
        f"<body>{body}</body></html>"
    )


# --- SVG plots ------------------------------------------------------------------------------------------------------


def _svg(width: int, height: int, inner: str, name: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" data-plot="{esc(name)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img"><title>{esc(name)}</title>{inner}</svg>'
    )


def funnel_svg(steps: list[Step], name: str = "funnel") -> str:
    """Horizontal bars, one per step, as long as the seconds left after it."""
    top = max([s.seconds for s in steps] + [1e-9])
    row, width, label_w = 24, 640, 170
    bars = []
    for i, step in enumerate(steps):
        w = max(1.0, (width - label_w - 90) * step.seconds / top)
        y = 4 + i * row
        bars.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" font-size="12">{esc(step.name)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{row - 6}" fill="#4a7bd0"/>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 15}" font-size="12">{esc(hms(step.seconds))}</text>'
        )
    return _svg(width, 8 + row * len(steps), "".join(bars), name)


def histogram_svg(title: str, kept: list[float], dropped: list[float], lo: float, hi: float, bins: int = 20) -> str:
    """Kept (green) stacked on dropped (red) counts per bin."""
    edges, k = histogram(kept, bins, lo, hi)
    _, d = histogram(dropped, bins, lo, hi)
    width, height, pad = 320, 170, 28
    top = max(1, int((k + d).max()) if bins else 1)
    bar_w = (width - 2 * pad) / bins
    parts = [f'<text x="{width / 2}" y="13" text-anchor="middle" font-size="12" font-weight="600">{esc(title)}</text>']
    for i in range(bins):
        x = pad + i * bar_w
        hk = (height - 2 * pad) * k[i] / top
        hd = (height - 2 * pad) * d[i] / top
        base = height - pad
        parts.append(
            f'<rect x="{x:.1f}" y="{base - hk:.1f}" width="{bar_w - 1:.1f}" height="{hk:.1f}" '
            f'fill="{KEPT_COLOUR}"><title>{edges[i]:.2f}–{edges[i + 1]:.2f}: {k[i]} kept</title></rect>'
        )
        parts.append(
            f'<rect x="{x:.1f}" y="{base - hk - hd:.1f}" width="{bar_w - 1:.1f}" height="{hd:.1f}" '
            f'fill="{DROPPED_COLOUR}"><title>{edges[i]:.2f}–{edges[i + 1]:.2f}: {d[i]} dropped</title></rect>'
        )
    parts.append(f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#444"/>')
    parts.append(
        f'<text x="{pad}" y="{height - pad + 14}" font-size="11">{lo:g}</text>'
        f'<text x="{width - pad}" y="{height - pad + 14}" font-size="11" text-anchor="end">{hi:g}</text>'
        f'<text x="{pad - 4}" y="{pad}" font-size="11" text-anchor="end">{top}</text>'
    )
    return _svg(width, height, "".join(parts), f"histogram: {title}")


def yield_svg(rows: list[dict], tiers: list[str]) -> str:
    """Hours against slice.min_duration: clips cut, kept, and kept per tier."""
    series = [("clip_seconds", "clips cut", "#8c8c8c"), ("kept_seconds", "kept", KEPT_COLOUR)]
    series += [(f"tier:{t}", f"kept, {t} or better", c) for t, c in zip(tiers, ("#d4a017", "#7f8fa6", "#a0522d"))]
    width, height, pad, legend_w = 560, 200, 36, 150
    values = [r[key] for r in rows for key, _, _ in series if r.get(key) is not None]
    top = max(values + [1e-9])
    xs = {
        m: pad + (width - 2 * pad - legend_w) * i / max(1, len(rows) - 1)
        for i, m in enumerate(r["min_duration"] for r in rows)
    }
    parts = []
    for key, label, colour in series:
        points = [
            (xs[r["min_duration"]], height - pad - (height - 2 * pad) * r[key] / top)
            for r in rows
            if r.get(key) is not None
        ]
        if points:
            line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{line}">'
                f"<title>{esc(label)}</title></polyline>"
            )
            parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in points]
    parts += [
        f'<text x="{x:.1f}" y="{height - pad + 14}" font-size="11" text-anchor="middle">{m:g} s</text>'
        for m, x in xs.items()
    ]
    parts.append(f'<text x="{pad - 4}" y="{pad}" font-size="11" text-anchor="end">{hms(top)}</text>')
    parts.append(
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad - legend_w}" y2="{height - pad}" stroke="#444"/>'
    )
    legend = "".join(
        f'<text x="{width - legend_w + 4}" y="{pad + 14 * i}" font-size="11" fill="{c}">{esc(label)}</text>'
        for i, (_, label, c) in enumerate(series)
    )
    return _svg(width, height, "".join(parts) + legend, "yield against slice.min_duration")


def timeline_svg(report: FileReport) -> str:
    """Segment labels over the waveform, and below them the clips: kept green, dropped red (hover: why)."""
    duration = max(report.duration, 1e-6)
    width = int(min(12000, max(1000, duration * 12)))
    wave_h, seg_h, clip_h = 70, 18, 16
    x = lambda t: width * t / duration  # noqa: E731 - a one-line scale
    parts = []
    for seg in report.segments:
        colour = LABEL_COLOURS.get(seg.label, "#bbb")
        parts.append(
            f'<rect class="segment" data-label="{esc(seg.label)}" x="{x(seg.start):.1f}" y="0" '
            f'width="{max(0.5, x(seg.end) - x(seg.start)):.1f}" height="{wave_h + seg_h}" fill="{colour}" '
            f'fill-opacity="0.35"><title>{esc(seg.label)} {seg.start:.2f}–{seg.end:.2f} s</title></rect>'
        )
    if report.waveform:
        step = width / len(report.waveform)
        mid = wave_h / 2
        path = "".join(
            f"M{i * step:.1f} {mid - hi * mid:.1f}V{mid - lo * mid:.1f}" for i, (lo, hi) in enumerate(report.waveform)
        )
        parts.append(f'<path class="waveform" d="{path}" stroke="#333" stroke-width="{max(step, 0.6):.2f}"/>')
    for seg in report.segments:
        if x(seg.end) - x(seg.start) > 40:
            parts.append(f'<text x="{x(seg.start) + 3:.1f}" y="{wave_h + 13}" font-size="11">{esc(seg.label)}</text>')
    y = wave_h + seg_h + 4
    for clip in report.clips:
        colour = KEPT_COLOUR if clip.kept else "#bbb" if clip.replaced else DROPPED_COLOUR
        why = "kept" if clip.kept else clip.detail or ""
        parts.append(
            f'<rect class="clip-mark" data-clip="{esc(clip.id)}" data-kept="{int(clip.kept)}" '
            f'x="{x(clip.start):.1f}" y="{y}" width="{max(1.0, x(clip.end) - x(clip.start)):.1f}" '
            f'height="{clip_h}" fill="{colour}" stroke="#fff"><title>{esc(clip.id)} '
            f"{clip.start:.2f}–{clip.end:.2f} s: {esc(why)}</title></rect>"
        )
    ticks = max(1.0, round(duration / 10))
    t = 0.0
    while t <= duration:
        parts.append(f'<text x="{x(t) + 2:.1f}" y="{y + clip_h + 13}" font-size="10">{esc(hms(t))}</text>')
        t += ticks
    return _svg(width, y + clip_h + 18, "".join(parts), f"timeline {report.source}")


def legend() -> str:
    items = [(c, n) for n, c in LABEL_COLOURS.items()] + [
        (KEPT_COLOUR, "kept clip"),
        (DROPPED_COLOUR, "dropped clip"),
        ("#bbb", "split into pieces"),
    ]
    return (
        '<div class="legend">'
        + "".join(f'<span><i style="background:{c}"></i>{esc(n)}</span>' for c, n in items)
        + "</div>"
    )


# --- tables ---------------------------------------------------------------------------------------------------------


def funnel_table(steps: list[Step], scope: str) -> str:
    """Each step's kept audio, and under it every drop (and addition) by reason."""
    rows = ["<tr><th>step</th><th>clips</th><th>audio</th><th>seconds</th></tr>"]
    for step in steps:
        clips = "" if step.clips is None else str(step.clips)
        rows.append(
            f'<tr class="step" data-scope="{esc(scope)}" data-step="{esc(step.name)}" '
            f'data-seconds="{step.seconds:.3f}" data-clips="{clips}"><td><b>{esc(step.name)}</b></td>'
            f'<td class="n">{clips}</td><td class="n">{esc(hms(step.seconds))}</td>'
            f'<td class="n">{step.seconds:.1f}</td></tr>'
        )
        for reason, drop in sorted(step.drops.items(), key=lambda item: -item[1].seconds):
            if not drop.clips and abs(drop.seconds) < 5e-4:  # e.g. no speech too short to slice
                continue
            rows.append(
                f'<tr class="drop" data-scope="{esc(scope)}" data-step="{esc(step.name)}" '
                f'data-reason="{esc(reason)}" data-seconds="{drop.seconds:.3f}" data-clips="{drop.clips}">'
                f'<td>− {esc(reason)}</td><td class="n">{drop.clips or ""}</td>'
                f'<td class="n">{esc(hms(drop.seconds))}</td><td class="n">{drop.seconds:.1f}</td></tr>'
            )
        if step.added_seconds or step.added_clips:
            what = "padding and merged gaps" if step.added_seconds else "single-voice pieces of split clips"
            rows.append(
                f'<tr class="add" data-scope="{esc(scope)}" data-step="{esc(step.name)}" '
                f'data-added-seconds="{step.added_seconds:.3f}" data-added-clips="{step.added_clips}">'
                f'<td>+ {what}</td><td class="n">{step.added_clips or ""}</td>'
                f'<td class="n">{esc(hms(step.added_seconds))}</td>'
                f'<td class="n">{step.added_seconds:.1f}</td></tr>'
            )
    return f'<table class="funnel" data-scope="{esc(scope)}">{"".join(rows)}</table>'


def yield_table(rows: list[dict], tiers: list[str], scope: str) -> str:
    head = (
        "<tr><th>slice.min_duration</th><th>clips cut</th><th>audio in clips</th><th>kept</th>"
        + "".join(f"<th>kept, {esc(t)} or better</th>" for t in tiers)
        + "</tr>"
    )
    body = []
    for row in rows:
        cells = [
            f'<td class="n">{row["min_duration"]:g} s</td>',
            f'<td class="n">{row.get("clips", 0)}</td>',
            f'<td class="n">{esc(hms(row.get("clip_seconds") or 0))}</td>',
        ]
        for key in ["kept_seconds", *(f"tier:{t}" for t in tiers)]:
            value = row.get(key)
            exact = "" if value is None else f"{value:.3f}"
            cells.append(
                f'<td class="n" data-key="{esc(key)}" data-seconds="{exact}">'
                f"{'not cut at this setting' if value is None else esc(hms(value))}</td>"
            )
        body.append(
            f'<tr class="yield" data-scope="{esc(scope)}" data-min="{row["min_duration"]:g}">'
            + "".join(cells)
            + "</tr>"
        )
    return f'<table class="yield">{head}{"".join(body)}</table>'


def files_table(report: DatasetReport, link: FileLink) -> str:
    head = (
        "<tr><th>file</th><th>length</th><th>speech</th><th>clips cut</th><th>kept after gates</th>"
        "<th>exported</th><th>stage reached</th></tr>"
    )
    rows = []
    for f in report.files:
        by = {s.name: s for s in f.funnel}

        def cell(name: str, by: dict[str, Step] = by) -> str:
            return esc(hms(by[name].seconds)) if name in by else "–"

        reached = f"failed at {f.failed_stage}" if f.failed_stage else f.last_stage or "ingest"
        rows.append(
            f'<tr class="file" data-source="{esc(f.source)}"><td><a href="{esc(link(f.source))}">'
            f'{esc(f.source)}</a><div class="meta">{esc(f.media)}</div></td>'
            f'<td class="n">{esc(hms(f.duration))}</td><td class="n">{cell("speech (segmenter)")}</td>'
            f'<td class="n">{cell("clips (duration rules)")}</td><td class="n">{cell("quality gates")}</td>'
            f'<td class="n">{cell("exported")}</td><td>{esc(reached)}</td></tr>'
        )
    return f'<table class="files">{head}{"".join(rows)}</table>'


def speakers_table(report: DatasetReport) -> str:
    if not report.speakers:
        return '<p class="note">No speaker registry yet (or speakers were enrolled by name).</p>'
    rows = "".join(
        f'<tr class="speaker" data-speaker="{esc(s.id)}"><td>{esc(s.id)}</td><td class="n">{s.clips}</td>'
        f'<td class="n">{esc(hms(s.kept_seconds))}</td><td>{esc(s.gender or "–")}</td>'
        f"<td>{esc(', '.join(s.files))}</td></tr>"
        for s in report.speakers
    )
    return (
        "<table><tr><th>speaker id / name</th><th>clips (registry)</th><th>kept audio</th><th>gender</th>"
        f"<th>files</th></tr>{rows}</table>"
    )


def failed_table(report: DatasetReport) -> str:
    if not report.failed:
        return '<p class="note" id="no-failures">No file is failing: every latest run succeeded.</p>'
    rows = "".join(
        f'<tr class="failed"><td>{esc(f.media)}</td><td>{esc(f.stage)}</td><td>{esc(f.error)}</td>'
        f"<td>{esc(f.run_id or '')}</td><td>{esc(f.failed_at)}</td></tr>"
        for f in report.failed
    )
    return f"<table><tr><th>file</th><th>stage</th><th>error</th><th>run</th><th>when</th></tr>{rows}</table>"


# --- listening ------------------------------------------------------------------------------------------------------


def player(clip: ClipView, audio: AudioSrc) -> str:
    scores = [f"{clip.start:.2f}–{clip.end:.2f} s ({clip.duration:.2f} s)", clip.label]
    if clip.speaker:
        scores.append(
            f"speaker {clip.speaker}" + (f" ({clip.speaker_score:.2f})" if clip.speaker_score is not None else "")
        )
    if clip.dnsmos_ovrl is not None:
        scores.append(f"DNSMOS OVRL {clip.dnsmos_ovrl:.2f}")
    if clip.tier:
        scores.append(f"tier {clip.tier}")
    if clip.cps is not None:
        scores.append(f"{clip.cps:.1f} chars/s")
    if clip.language:
        scores.append(
            f"language {clip.language}"
            + (f" ({clip.language_probability:.2f})" if clip.language_probability is not None else "")
        )
    players = []
    for which in ("original", "denoised"):
        if which == "denoised" and (not clip.denoised_path or clip.denoised_path == clip.path):
            continue
        src = audio(clip, which)
        if src:
            players.append(
                f'<div><label>{which}</label><audio controls preload="metadata" data-which="{which}" '
                f'src="{esc(src)}"></audio></div>'
            )
    why = "" if clip.kept else f'<div class="why">dropped — {esc(clip.detail)}</div>'
    review = "".join(f'<div class="review">review: {esc(flag)}</div>' for flag in clip.review)
    state = "kept" if clip.kept else "dropped"
    return (
        f'<div class="clip {state}" data-clip="{esc(clip.id)}" data-source="{esc(clip.source)}">'
        f'<div><b>{esc(clip.id)}</b> <span class="meta">{esc(" · ".join(scores))}</span></div>{why}{review}'
        f'<div class="players">{"".join(players)}</div>'
        f'<p class="text">{esc(clip.text) or "<i>no transcript</i>"}</p></div>'
    )


def _spread(items: list[ClipView], count: int) -> list[ClipView]:
    if len(items) <= count:
        return items
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)] if count > 1 else items[:1]


def listening(clips: list[ClipView], audio: AudioSrc) -> str:
    """Clips for review first, then a spread of kept clips, then dropped clips of every reason."""
    out = []
    review = [c for c in clips if c.review][:REVIEW_SAMPLE]
    out.append(f'<h3 id="review">For review ({len([c for c in clips if c.review])})</h3>')
    out.append("".join(player(c, audio) for c in review) or '<p class="note">Nothing close to a threshold.</p>')
    kept = [c for c in clips if c.kept]
    out.append(f'<h3 id="kept">Kept ({len(kept)}; {len(_spread(kept, KEPT_SAMPLE))} shown)</h3>')
    out.append("".join(player(c, audio) for c in _spread(kept, KEPT_SAMPLE)) or '<p class="note">None.</p>')
    reasons: dict[str, list[ClipView]] = {}
    for clip in clips:
        if not clip.kept and not clip.replaced and clip.reason:
            reasons.setdefault(clip.reason, []).append(clip)
    for reason, group in sorted(reasons.items()):
        out.append(f'<h3 class="dropped-reason" data-reason="{esc(reason)}">Dropped: {esc(reason)} ({len(group)})</h3>')
        out.append("".join(player(c, audio) for c in _spread(group, DROPPED_SAMPLE)))
    return "".join(out)


def histograms(clips: list[ClipView]) -> str:
    cut = [c for c in clips if not c.replaced]

    def split(get: Callable[[ClipView], float | None]) -> tuple[list[float], list[float]]:
        kept = [v for c in cut if c.kept and (v := get(c)) is not None]
        dropped = [v for c in cut if not c.kept and (v := get(c)) is not None]
        return kept, dropped

    top_duration = max([c.duration for c in cut] + [1.0])
    plots = [
        histogram_svg("clip duration (s)", *split(lambda c: c.duration), 0, float(int(top_duration) + 1)),
        histogram_svg("DNSMOS OVRL", *split(lambda c: c.dnsmos_ovrl), 1, 5),
        histogram_svg("speaker score", *split(lambda c: c.speaker_score), -0.2, 1),
        histogram_svg("characters per second", *split(lambda c: c.cps), 0, 35),
        histogram_svg("language probability", *split(lambda c: c.language_probability), 0, 1),
    ]
    return (
        '<div class="legend"><span><i style="background:#2e9e5b"></i>kept</span><span><i style="background:'
        f'#d04a3a"></i>dropped</span></div><div class="plots">{"".join(plots)}</div>'
    )


# --- pages ----------------------------------------------------------------------------------------------------------


def _summary(steps: list[Step]) -> str:
    by = {s.name: s for s in steps}
    first, last = steps[0], steps[-1]
    share = f" ({100 * last.seconds / first.seconds:.1f} % of the input)" if first.seconds else ""
    clips = f", {last.clips} clips" if last.clips is not None else ""
    speech = by.get("speech (segmenter)")
    return (
        f'<p class="summary"><b>{esc(hms(first.seconds))}</b> of media in, '
        + (f"{esc(hms(speech.seconds))} of it speech, " if speech else "")
        + f"<b>{esc(hms(last.seconds))}</b> {esc(last.name)}{clips}{share}.</p>"
    )


def file_section(
    report: FileReport, audio: AudioSrc, yield_tiers: list[str], heading: str = "h2", listen: bool = True
) -> str:
    """One file's funnel, timeline and yield, and with `listen` its players."""
    return (
        f'<{heading} id="file-{esc(report.source)}">{esc(report.source)}</{heading}>'
        f'<p class="meta">{esc(report.media)} · {esc(hms(report.duration))} · last stage: '
        f"{esc(report.last_stage or 'ingest')}</p>{_summary(report.funnel)}"
        f"<h3>Funnel</h3>{funnel_svg(report.funnel, f'funnel {report.source}')}"
        f"{funnel_table(report.funnel, report.source)}"
        f'<h3 class="timeline">Timeline</h3>{legend()}<div class="scroll">{timeline_svg(report)}</div>'
        f"<h3>Yield against slice.min_duration</h3>{yield_table(report.yield_rows, yield_tiers, report.source)}"
        + (f"<h3>Listen</h3>{listening(report.clips, audio)}" if listen else "")
    )


def file_page(report: FileReport, audio: AudioSrc, tiers: list[str], back: str | None = None) -> str:
    nav = f'<p><a href="{esc(back)}">← nr4dl dataset</a></p>' if back else ""
    body = (
        f"{nav}<h1>File report</h1>"
        + file_section(report, audio, tiers, "h2")
        + f"<h3>Histograms</h3>{histograms(report.clips)}"
    )
    return page(f"nr4dl file report {report.source}", body)


def dataset_page(report: DatasetReport, audio: AudioSrc, link: FileLink, with_files: bool = False) -> str:
    """The dataset report; `with_files` adds every file's section (the static report), else links to them."""
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    export = report.export
    exported = (
        f"Dataset {esc(report.dataset_dir)}: <b>{export.get('clips', 0)}</b> clips, "
        f"{esc(export.get('hours', 0))} h in export.json"
        f"{'' if export.get('complete', True) else ' (an export is under way)'}."
        if export
        else f"No export in {esc(report.dataset_dir)} yet."
    )
    pending = (
        f'<p class="note">Still processing (not through the gate): {esc(", ".join(report.pending))}</p>'
        if report.pending
        else ""
    )
    body = [
        f'<h1>nr4dl dataset</h1><p class="meta">Work folders {esc(report.work_dir)} · '
        f"{len(report.files)} files · report made {made}</p>",
        _summary(report.funnel) if report.files else "",
        f"<p>{exported}</p>{pending}",
        '<h2 id="funnel">Funnel, all files</h2>',
        funnel_svg(report.funnel),
        funnel_table(report.funnel, "total"),
        '<h2 id="files">Files</h2>',
        files_table(report, link),
        '<h2 id="yield">Yield against slice.min_duration and DNSMOS tier</h2>',
        '<p class="note">Clips cut: what the slicing rules make of the segments at each minimum. Kept: the clips '
        "that passed every stage in this run, at least that long; a minimum below the one a file was sliced with "
        "cannot be judged without cutting again.</p>",
        yield_svg(report.yield_rows, report.tiers),
        yield_table(report.yield_rows, report.tiers, "total"),
        '<h2 id="histograms">Histograms</h2>',
        histograms(report.clips),
        '<h2 id="listen">Listen</h2>',
        listening(report.clips, audio),
        '<h2 id="speakers">Speakers</h2>',
        speakers_table(report),
        '<h2 id="failed">Failed files</h2>',
        failed_table(report),
    ]
    if with_files:
        body.append('<h2 id="per-file">Per file</h2>')
        # players only in the dataset's Listen section above: embedded audio for every file would not mail
        body += [file_section(f, audio, report.tiers, "h2", listen=False) for f in report.files]
    return page("nr4dl dataset report", "".join(body))


# --- the static file ------------------------------------------------------------------------------------------------


def embedded_audio(clip: ClipView, which: str, root: Path) -> str | None:
    """The clip as Opus (32 kbit/s mono) in a data: URI, so the report plays mailed or offline; None when the
    file is gone or ffmpeg cannot read it (the player is left out, the rest of the report stands)."""
    rel = clip.denoised_path if which == "denoised" else clip.path
    path = root / clip.source / rel if rel else None
    if path is None or not path.is_file():
        return None
    cmd = [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-i",
        str(path),
        "-ac",
        "1",
        "-c:a",
        "libopus",
        "-b:a",
        "32k",
        "-f",
        "ogg",
        "pipe:1",
    ]
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0 or not proc.stdout:
        log.warning("%s: not embedded in the report (%s)", path, proc.stderr.decode(errors="replace").strip())
        return None
    return "data:audio/ogg;base64," + base64.b64encode(proc.stdout).decode()


def write_static(settings: Settings) -> Path:
    """`<export.dataset_dir>/report.html`: the dataset report with every file's section, audio embedded; written
    under a temporary name and renamed, so a reader never opens half a report."""
    from nr4dl_tasks.core.workdir import WorkDir
    from nr4dl_tasks.report.data import build

    report = build(settings)
    audio = lambda clip, which: embedded_audio(clip, which, report.work_dir)  # noqa: E731
    text = dataset_page(report, audio, lambda source: f"#file-{source}", with_files=True)
    report.dataset_dir.mkdir(parents=True, exist_ok=True)
    with WorkDir(report.dataset_dir).atomic(STATIC_NAME) as tmp:
        tmp.write_text(text, encoding="utf-8")
    log.info(
        "%s: dataset report written (%d files, %d clips, %.1f MB)",
        report.dataset_dir / STATIC_NAME,
        len(report.files),
        len(report.clips),
        len(text) / 1e6,
    )
    return report.dataset_dir / STATIC_NAME
