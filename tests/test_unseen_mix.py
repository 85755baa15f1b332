"""Recordings the pipeline has never seen, joined at known offsets: are speech, music and noise found there?

The mix is LJ Speech, Spleeter's demo song, a LibriSpeech reader, 9 s of café noise and another LibriSpeech
reader. It runs through the default pipeline (segmentation of the mix, separation routed). Gender is not
scored here: ina calls LibriSpeech reader 1688 female, a known limit of its gender model.
"""

import pytest

from helpers import ffmpeg
from nr4dl_tasks.core.layout import SEGMENTS_CSV
from nr4dl_tasks.core.records import read_segments
from nr4dl_tasks.dsp.audio import probe
from nr4dl_tasks.pipeline import process_file

PARTS = [  # (file under ../shared/media, what it is)
    ("speech_en/LJ001-0001.wav", "speech"),
    ("music/audio_example.mp3", "music"),
    ("speakers/1688/1688-142285-0000.flac", "speech"),
    ("noise/cafe_short.wav", "noise"),
    ("noise/cafe_short.wav", "noise"),
    ("speakers/3080/3080-5032-0001.flac", "speech"),
]
KIND = {
    "male": "speech",
    "female": "speech",
    "speech": "speech",
    "music": "music",
    "noise": "noise",
    "noEnergy": "silence",
}


@pytest.fixture(scope="module")
def mix(media, tmp_path_factory):
    """The joined file and the (start, end, kind) of each part."""
    out = tmp_path_factory.mktemp("unseen") / "unseen_mix.mp3"
    inputs, chains = [], []
    for i, (rel, _) in enumerate(PARTS):
        inputs += ["-i", str(media / rel)]
        chains.append(f"[{i}:a]aresample=44100,aformat=channel_layouts=stereo[a{i}]")
    graph = (
        ";".join(chains) + ";" + "".join(f"[a{i}]" for i in range(len(PARTS))) + f"concat=n={len(PARTS)}:v=0:a=1[out]"
    )
    ffmpeg(*inputs, "-filter_complex", graph, "-map", "[out]", "-c:a", "libmp3lame", "-b:a", "128k", str(out))
    spans, at = [], 0.0
    for rel, kind in PARTS:
        seconds = float(probe(media / rel)["format"]["duration"])
        spans.append((at, at + seconds, kind))
        at += seconds
    return out, spans


def covered(segments, start: float, end: float, kind: str) -> float:
    """Seconds of [start, end] labelled as `kind`."""
    return sum(max(0.0, min(end, s.end) - max(start, s.start)) for s in segments if KIND[s.label] == kind)


def test_speech_music_and_noise_are_found_where_they_are(mix, make_settings):
    path, spans = mix
    work, _ = process_file(path, make_settings(), until="segment")
    segments = read_segments(work.input(SEGMENTS_CSV))
    speech = [s for s in segments if KIND[s.label] == "speech"]
    for start, end, kind in spans:
        inner = (start + 0.5, end - 0.5)
        length = inner[1] - inner[0]
        if kind == "speech":
            # speech, or the reader's pauses (no energy): never music or noise; on the mix, the LibriSpeech
            # reader's pauses between sentences are silence, 30 % of the part
            assert covered(segments, *inner, "speech") >= 0.6 * length, (start, end, segments)
            paused = covered(segments, *inner, "silence")
            assert covered(segments, *inner, "speech") + paused >= 0.95 * length, (start, end, segments)
            # the first and last words are found within 0.6 s of where the reader starts and stops
            assert min(abs(s.start - start) for s in speech) <= 0.6, (start, speech)
            assert min(abs(s.end - end) for s in speech) <= 0.6, (end, speech)
        else:
            assert covered(segments, *inner, "speech") <= 0.05 * length, (start, end, kind, segments)
            assert covered(segments, *inner, kind) >= 0.5 * length, (start, end, kind, segments)
