"""Benchmark of the Korean spoken form: what it changes in real transcripts, and Whisper's CER with and without it.

What it measures (on ../shared/media/korean: emotiontts, 21 speakers of read speech, and azure_ko, 3 paragraphs)
    * how many reference texts hold digits or Latin letters, and what the spoken form makes of them;
    * the speed of spoken_form and pronunciation (mecab-ko loaded once first);
    * the character error rate of the offline Whisper base, language forced to ko, on the held-out speakers
      (every second emotiontts speaker in sorted order; the others are the tuning set, unused here since
      nothing is tuned), against the references, with the hypothesis as Whisper wrote it and in spoken form.
      Characters are compared without spaces and punctuation, since Korean spacing varies between writers.

Usage: nice -n 10 .venv/bin/python bench/korean_text.py [--limit N]
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nr4dl_tasks.asr.recognition import AudioClip  # noqa: E402
from nr4dl_tasks.core import settings as settings_mod  # noqa: E402
from nr4dl_tasks.text.korean import pronunciation, spoken_form  # noqa: E402

KOREAN = (ROOT / ".." / "shared" / "media" / "korean").resolve()
WRITTEN = re.compile(r"[\dA-Za-z]")


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def utterances(corpus: str) -> list[dict[str, str]]:
    with (KOREAN / corpus / "utterances.tsv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def held_out(rows: list[dict[str, str]]) -> tuple[list[str], list[str]]:
    speakers = sorted({r["speaker"] for r in rows})
    return speakers[0::2], speakers[1::2]  # tuning, held-out


def letters(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())


def cer(references: list[str], hypotheses: list[str]) -> float:
    import jiwer

    return float(jiwer.cer([letters(t) for t in references], [letters(t) or "-" for t in hypotheses]))


def reference_report(rows: list[dict[str, str]]) -> None:
    written = [r for r in rows if WRITTEN.search(r["text"])]
    print(
        f"reference texts: {len(rows)}, with digits {sum(bool(re.search(r'[0-9]', r['text'])) for r in rows)}, "
        f"with Latin letters {sum(bool(re.search(r'[A-Za-z]', r['text'])) for r in rows)}"
    )
    for r in written:
        for before in re.findall(r"[^ ]*[\dA-Za-z][^ ]*(?: [^ ]+)?", r["text"]):
            print(f"  {r['path']}: {before!r} -> {spoken_form(before)!r}")


def speed(texts: list[str]) -> None:
    pronunciation("안녕하세요")  # mecab-ko loaded
    rows = []
    for name, fn in (("spoken_form", spoken_form), ("pronunciation", pronunciation)):
        start = time.perf_counter()
        for text in texts:
            fn(text)
        elapsed = time.perf_counter() - start
        rows.append([name, str(len(texts)), f"{1000 * elapsed / len(texts):.2f}"])
    print(table(["function", "texts", "ms per text"], rows))


def recognise(rows: list[dict[str, str]]) -> list[str]:
    from nr4dl_tasks.asr.whisper_local import LocalWhisper

    settings = settings_mod.load(
        overrides={"transcribe.language": "ko", "resources.threads": 1, "paths.models_dir": str(ROOT / "models")}
    )
    recogniser = LocalWhisper(settings)
    clips = [AudioClip(id=r["path"], path=KOREAN / "emotiontts" / r["path"]) for r in rows]
    return [t.text for t in recogniser.transcribe(clips)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=0, help="at most this many held-out utterances (0: all)")
    args = parser.parse_args()
    emotion = utterances("emotiontts")
    reference_report(emotion + utterances("azure_ko"))
    tuning, held = held_out(emotion)
    print(f"tuning speakers (unused): {' '.join(tuning)}\nheld-out speakers: {' '.join(held)}")
    test = [r for r in emotion if r["speaker"] in held]
    test = test[: args.limit] if args.limit else test
    start = time.perf_counter()
    hypotheses = recognise(test)
    seconds = time.perf_counter() - start
    written = sum(bool(WRITTEN.search(h)) for h in hypotheses)
    print(
        f"\nWhisper base, ko forced: {len(test)} held-out utterances in {seconds:.0f} s; "
        f"{written} hypotheses hold digits or Latin letters"
    )
    refs = [r["text"] for r in test]
    spoken_hyp = [spoken_form(h) for h in hypotheses]
    print(
        table(
            ["hypothesis", "reference", "CER %"],
            [
                ["as written", "as given", f"{100 * cer(refs, hypotheses):.1f}"],
                ["spoken form", "as given", f"{100 * cer(refs, spoken_hyp):.1f}"],
                ["spoken form", "spoken form", f"{100 * cer([spoken_form(t) for t in refs], spoken_hyp):.1f}"],
                [
                    "pronunciation",
                    "pronunciation",
                    f"{100 * cer([pronunciation(t) for t in refs], [pronunciation(h) for h in hypotheses]):.1f}",
                ],
            ],
        )
    )
    for ref, hyp, spoken in zip(refs, hypotheses, spoken_hyp, strict=True):
        if spoken != hyp:
            print(f"  ref: {ref}\n  hyp: {hyp}\n   ->  {spoken}")
    speed([r["text"] for r in emotion])


if __name__ == "__main__":
    main()
