"""nr4dl's engine: plain typed Python, no Airflow import.

- `core/`: the contract every stage shares (settings, stage, records, work-folder layout, errors, resources, models).
- `stages/`: the eight stages, one module each, side by side; a stage imports `core/` and libraries, never
  another stage.
- `pipeline.py`: the stage order, written once, and the wiring of what each stage reads.
- libraries the stages use: `dsp/` (audio, denoising, DNSMOS), `voice/` (speaker embeddings, registry),
  `asr/` (Whisper, Azure), `text/` (text measures and normalisation), `export/` (dataset formats),
  `crawl/` (sources, downloads, catalog), `state/` (nr4dl's database: failed-file list).
"""
