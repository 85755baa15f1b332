"""Spleeter 2stems in its own interpreter, chunk by chunk, model loaded once.

Runs inside `.venv-spleeter` (spleeter 2.4.2 pins tensorflow 2.12.1 and numpy<2,
which cannot share an environment with Airflow 3), so it imports nothing from
nr4dl_tasks. It reads JSON requests on stdin, one per line, and answers one JSON
line each on stdout:

    {"input": ".../audio_44k.wav", "vocals": ".../tmp.wav", "accompaniment": ".../tmp.wav",
     "spans": [[0, 1048576]], "chunk_blocks": 5, "margin_blocks": 1, "crossfade_seconds": 0.5}
    -> {"progress": 1, "of": 3} ... then {"ok": true, "seconds": 12.3, "chunks": 3}
       or {"ok": false, "error": "..."}

Why chunks: Spleeter holds the whole spectrogram and every U-Net activation in
memory (13 GB for 10 minutes of audio). Its network already works on
independent blocks of T=512 STFT frames (524288 samples); chunks start on that
block grid and carry whole context blocks on each side, which are separated and
thrown away, so every kept sample is computed from exactly the same input as in
a whole-file run and the seams are inaudible.

`spans` (sample ranges starting on that block grid; null: the whole file)
separates only those ranges and writes silence elsewhere: the separate stage's
routing passes the speech that has music under it. Inside a span the chunks
carry context blocks as above; at a span's outer edges there is none (a range
starts on the block grid, so the network sees the same blocks as in a whole-file
run), which leaves the outermost 0.1 s (one STFT window) unlike a whole-file
run. The stage widens every region it separates by a second, so no clip lies there.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import time
import traceback
from collections.abc import Callable

import numpy as np
import soundfile as sf

BLOCK = 512 * 1024  # T frames x frame_step samples: Spleeter's own processing block
STEMS = ("vocals", "accompaniment")


class ChunkSeparator:
    """Keeps one TensorFlow estimator alive and feeds it waveforms through a queue.

    `Separator.separate` builds a new `estimator.predict` generator per call,
    which rebuilds the graph and restores the checkpoint each time; a single
    generator over a queue-backed dataset loads the model once per process. The
    queue blocks rather than ending, because tf.data prefetches the next element
    in the background and an empty queue would otherwise end the dataset.
    """

    def __init__(self, model_dir: str) -> None:
        os.environ["MODEL_PATH"] = os.path.dirname(os.path.abspath(model_dir))
        import tensorflow as tf

        tf.get_logger().setLevel(logging.ERROR)  # its deprecation warnings would flood every task log
        from spleeter.separator import create_estimator
        from spleeter.utils.configuration import load_configuration

        if tf.train.latest_checkpoint(model_dir) is None:
            raise RuntimeError(f"no Spleeter checkpoint in {model_dir}; refusing to separate with untrained weights")
        params = load_configuration("spleeter:2stems")
        params["model_dir"] = os.path.abspath(model_dir)
        self._queue: queue.Queue = queue.Queue()
        estimator = create_estimator(params, False)

        def feed():
            while True:
                yield self._queue.get()

        def input_fn():
            return tf.data.Dataset.from_generator(
                feed,
                output_types={"waveform": tf.float32, "audio_id": tf.string},
                output_shapes={"waveform": (None, 2), "audio_id": ()},
            )

        self._predictions = estimator.predict(input_fn, yield_single_examples=False)

    def __call__(self, waveform: np.ndarray) -> dict[str, np.ndarray]:
        self._queue.put({"waveform": waveform.astype(np.float32), "audio_id": ""})
        prediction = next(self._predictions)
        return {stem: prediction[stem][: len(waveform)] for stem in STEMS}


def separate_file(separator: ChunkSeparator, request: dict, report: Callable[[dict], None]) -> dict:
    chunk = int(request["chunk_blocks"]) * BLOCK
    margin = int(request["margin_blocks"]) * BLOCK
    with sf.SoundFile(request["input"]) as src:
        rate, total = src.samplerate, src.frames
        asked = request.get("spans")
        spans = [(int(a), min(int(b), total)) for a, b in ([(0, total)] if asked is None else asked) if int(a) < total]
        fade = min(int(request["crossfade_seconds"] * rate) // 2, margin)
        # A tail shorter than the fade joins the chunk before it (the cross-fade needs 2 * fade samples).
        plans = [[s for s in range(a, max(b, a + 1), chunk) if s == a or b - s >= fade] for a, b in spans]
        # A stem past WAV's 4 GiB size fields (6.8 h at 44.1 kHz stereo) is written as RF64, as ingest writes its input.
        kind = "RF64" if total * 2 * 2 >= 1 << 32 else "WAV"
        writers = {stem: sf.SoundFile(request[stem], "w", rate, 2, subtype="PCM_16", format=kind) for stem in STEMS}
        done, chunks, written = 0, sum(len(plan) for plan in plans), 0
        try:
            for (span_start, span_end), starts in zip(spans, plans):
                for writer in writers.values():  # silence up to the span
                    writer.write(np.zeros((span_start - written, 2), dtype=np.float32))
                pending: dict[str, np.ndarray] = {}
                for start in starts:
                    end = span_end if start == starts[-1] else start + chunk
                    # Context only between chunks: at a span's outer edges nothing near is kept (see above).
                    first = max(0, start - margin) if start > span_start else start
                    src.seek(first)
                    last = min(total, end + margin) if end < span_end else end
                    wave = src.read(last - first, dtype="float32", always_2d=True)
                    if wave.shape[1] == 1:
                        wave = np.repeat(wave, 2, axis=1)
                    stems = separator(wave[:, :2])
                    done += 1
                    report({"progress": done, "of": chunks})
                    # Keep [start - fade, end + fade) of this chunk; the first 2*fade samples overlap the last chunk.
                    lo = start - fade if start > span_start else start
                    hi = end + fade if end < span_end else end
                    for stem, out in stems.items():
                        part = out[lo - first : hi - first]
                        if start > span_start and fade:
                            ramp = np.linspace(0.0, 1.0, 2 * fade, dtype=np.float32)[:, None]
                            part[: 2 * fade] = pending[stem] * (1 - ramp) + part[: 2 * fade] * ramp
                        keep = part if end == span_end else part[: len(part) - 2 * fade]
                        writers[stem].write(np.clip(keep, -1.0, 1.0))
                        pending[stem] = part[len(part) - 2 * fade :] if end < span_end else part[:0]
                written = span_end
            for writer in writers.values():
                writer.write(np.zeros((total - written, 2), dtype=np.float32))
        finally:
            for writer in writers.values():
                writer.close()
    return {"chunks": chunks, "frames": total, "rate": rate, "separated_frames": sum(b - a for a, b in spans)}


def main() -> int:
    model_dir = sys.argv[1]
    # Only our JSON answers go to the real stdout; anything the libraries print goes to stderr.
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    def report(message: dict) -> None:
        answers.write(json.dumps(message) + "\n")

    try:
        separator = ChunkSeparator(model_dir)
    except Exception as exc:  # reported to the parent, which raises it with the file name
        report({"ok": False, "error": f"loading Spleeter failed: {exc}"})
        return 1
    report({"ok": True, "ready": True})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        began = time.monotonic()
        try:
            reply = {"ok": True, **separate_file(separator, request, report)}
        except Exception as exc:
            traceback.print_exc()
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        reply["seconds"] = round(time.monotonic() - began, 3)
        report(reply)
    return 0


if __name__ == "__main__":
    # os._exit: TensorFlow's prefetch thread stays blocked on the empty queue and would hold up a normal exit.
    sys.stdout.flush()
    os._exit(main())
