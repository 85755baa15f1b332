"""Benchmark of Korean recognition: CER, yield and x real time per model and decoding setting, tuning apart.

Each set goes through the real transcribe stage (language detected once per file, failing clips decoded again)
and the gate's text checks, as `bench/transcribe.py --settings-only` does; CER against the references with the
hypothesis in spoken form, spaces and punctuation ignored, over all clips and over the kept ones.

The split (emotiontts speakers; bench/korean_text.py holds out every second one in sorted order, bench/mixes.py
holds out ema, emb, nea, pma for its mixes):
    tuning    ada, ava, emf, lmy, neb, nek, nem, pfb, pmc (tuning speakers in both splits), their utterances
              4-6, read and under bench/mixes.py's tuning noises (first half of the café recording, 'Vibe Ace',
              seeds 0-999). `--tuning` compares the decoding settings here; nothing else is looked at to choose.
    held-out  the sets of `bench/transcribe.py --settings-only` (noisy Korean mixes of ema, emb, nea, pma;
              the first three utterances of the read held-out speakers adc, avb, emb, emg, nea, nec, nel, pfa,
              pfc, pmb), and a broadcast-like set: utterances 4-6 of the held-out speakers avb, emg, nec, nel,
              pfa, pfc, pmb under the music beds of bench/programme.py (none of them 'Vibe Ace') at 10 dB and
              5 dB below the speech, the speakers taking turns, one file. The former decoding ('before') runs
              beside each setting in one run.

Usage: nice .venv/bin/python bench/korean_asr.py [--tuning] [--setting NAME ...]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import korean_text  # noqa: E402
import mixes as mixes_mod  # noqa: E402
import programme  # noqa: E402
import transcribe as bench_asr  # noqa: E402

from nr4dl_tasks.asr.recognition import RATE  # noqa: E402

TUNING = ("ada", "ava", "emf", "lmy", "neb", "nek", "nem", "pfb", "pmc")
BROADCAST = ("avb", "emg", "nec", "nel", "pfa", "pfc", "pmb")
LATER = slice(3, 6)  # utterances 4-6: the held-out read set takes the first three
# Written for this benchmark, not taken from any recording: spoken-form numbers, Hangul only, punctuation kept.
PROMPT = "네, 안녕하세요. 오늘 오후 세 시 삼십 분 현재, 서울의 기온은 이십오 도입니다."
BEFORE = "before: beam 1"
KO = "transcribe.by_language.ko"
SETTINGS: dict[str, dict[str, Any]] = {  # name -> overrides
    BEFORE: {KO: {"beam_size": 1, "prompt": None}},
    "beam 5 (default)": {KO: {"beam_size": 5, "prompt": None}},
    "prompt": {KO: {"beam_size": 1, "prompt": PROMPT}},
    "beam 5 + prompt": {KO: {"beam_size": 5, "prompt": PROMPT}},
}

Files = dict[str, list[tuple[str, Path, float]]]


def _speaker_rows(rows: list[dict[str, str]], speaker: str) -> list[dict[str, str]]:
    return [r for r in rows if r["speaker"] == speaker][LATER]


def _load(row: dict[str, str]) -> Any:
    return mixes_mod.load(korean_text.KOREAN / "emotiontts" / row["path"], RATE)


def tuning_sets(tmp: Path, rows: list[dict[str, str]]) -> list[tuple[str, Files]]:
    read = [(Path(r["path"]).stem, _load(r)) for spk in TUNING for r in _speaker_rows(rows, spk)]
    noisy = [(m.name, m.noisy) for m in mixes_mod.mixes(RATE, held_out=False, utterances=read)]
    return [
        ("Korean read, tuning speakers", {"read": bench_asr._clip_files(tmp, "read", read)}),
        ("noisy Korean mixes, tuning speakers", {"mix": bench_asr._clip_files(tmp, "mix", noisy)}),
    ]


def broadcast_set(tmp: Path, rows: list[dict[str, str]]) -> tuple[str, Files]:
    """Speakers in turn over the programme's music beds, 10 and 5 dB under the speech."""
    items = []
    for turn, row in enumerate(r for s in BROADCAST for r in _speaker_rows(rows, s)):
        snr = (10, 5)[turn % 2]
        bed = programme.bed(turn)
        items.append((f"{Path(row['path']).stem}_bed{snr}", programme.under(bed, _load(row), snr)))
    return ("Korean over music beds, held-out speakers", {"broadcast": bench_asr._clip_files(tmp, "broadcast", items)})


def held_out_sets(tmp: Path, rows: list[dict[str, str]]) -> list[tuple[str, Files]]:
    korean_read, _, noisy_ko = bench_asr.held_out_sets(tmp)
    return [(noisy_ko[0], noisy_ko[2]), broadcast_set(tmp, rows), (korean_read[0], korean_read[2])]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tuning", action="store_true", help="the tuning sets (to choose a setting)")
    parser.add_argument("--setting", action="append", choices=list(SETTINGS), help="besides 'before'")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = korean_text.utterances("emotiontts")
    refs = {Path(r["path"]).stem: r["text"] for r in rows}
    labels = [BEFORE, *(args.setting or [s for s in SETTINGS if s != BEFORE])]
    header = ["set", "setting", "clips", "yield", "CER, all clips", "CER, kept clips", "tried/recovered", "x RT"]
    print(bench_asr.table(header, []), flush=True)
    with tempfile.TemporaryDirectory(prefix="nr4dl-bench-ko-") as name:
        tmp = Path(name)
        sets = tuning_sets(tmp, rows) if args.tuning else held_out_sets(tmp, rows)
        for step, ((title, files), label) in enumerate((s, lab) for s in sets for lab in labels):
            cells = bench_asr.setting_row(
                tmp / f"run{step}", title, label, "ko", files, lambda cid: refs.get(cid.split("_")[0]), SETTINGS[label]
            )
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
