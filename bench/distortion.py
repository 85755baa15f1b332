"""Which reference-free check tells that a denoiser took speech away? Compared on mixes with clean references.

Every mix of bench/mixes.py (tuning and held-out sets) is run through each
denoising method the stage has (notch only, spectral gate stationary and
nonstationary, DeepFilterNet3), after the stage's own tone notches. For each
output the true harm is the change of SI-SDR against the clean speech, output
minus noisy input; a harmful output loses more than 1 dB. Candidate checks,
each oriented so that a larger value means more speech removed:

    loss      the residual's energy in the input's speech-dominated bins over
              their energy (dB)
    kept      energy kept in those bins: -10 log10(out / in) there (dB)
    comod     the residual's speech content: correlation over 100-4000 Hz bins
              of the residual's and the output's log power
    sig       DNSMOS SIG drop (today's rule, with OVRL)
    ovrl      DNSMOS OVRL drop
    estimate  distortion.sdr_change_estimate_db, negated: the SI-SDR loss
              estimated from the noise floor (minimum statistics over the mix,
              as the stage does for a file of speech only), the method's gain
              on noise-dominated bins and the speech-dominated residual

Per check: Spearman correlation with the SI-SDR loss and the ROC AUC for
'harmful', on held-out outputs; then the tolerance that maximises the mean
SI-SDR change over tuning outputs when those above it fall back to the notched
input, applied to held-out outputs: harmful ones caught, harmless ones
reverted, and the mean and worst SI-SDR change after the reverts. The estimate is also shown at the
stage's own tolerance (denoise.max_sdr_loss_db).

Last, auto's per-clip rules as the stage applies them to one clip (`rules`):
the SIG tolerance, the clean-clip bound (blind SNR before or after the
notches) and the distortion tolerance over a grid, ranked by harmful tuning
outputs, then mean tuning ΔSI-SDR, with the held-out figures beside them.
denoise.sig_tolerance and denoise.clean_snr_db were chosen from that table.

Usage: nice .venv/bin/python bench/distortion.py [--cache results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from mixes import mixes  # noqa: E402

from nr4dl_tasks.core.settings import DenoiseSettings  # noqa: E402
from nr4dl_tasks.dsp import (
    distortion,  # noqa: E402
    quality,
)
from nr4dl_tasks.dsp.deepfilter import DeepFilterStream  # noqa: E402
from nr4dl_tasks.dsp.spectral_gate import (  # noqa: E402
    EXP_MEAN_OFFSET_DB,
    _power_db,
    _stft,
    gate,
    profile_from_min_statistics,
    stft_size,
)
from nr4dl_tasks.dsp.tones import Notches, find_tones  # noqa: E402

RATE = 22050
HARM_DB = 1.0
CHECKS = ("loss", "kept", "comod", "estimate", "sig", "ovrl")


def loss_db(before: np.ndarray, after: np.ndarray) -> float:
    """Energy removed from the input's speech-dominated bins over their energy, in dB (-inf: nothing removed).

    The residual is taken bin by bin as complex spectra, so a method that keeps
    a bin's energy but smears it in time or phase is charged too. Around -20 dB
    is a denoiser removing the noise under the speech; near 0 dB it removed the
    speech itself.
    """
    x, y = _stft(before, RATE), _stft(after[: len(before)], RATE)
    mask = distortion.speech_dominated(x, RATE)
    if mask.sum() < 20:
        return float("-inf")
    held = float(np.sum(np.abs(x[mask]) ** 2))
    removed = float(np.sum(np.abs(x[mask] - y[mask]) ** 2))
    return float(10 * np.log10(max(removed, 1e-20) / max(held, 1e-20)))


def kept_db(x: np.ndarray, y: np.ndarray) -> float:
    sx, sy = _stft(x, RATE), _stft(y[: len(x)], RATE)
    mask = distortion.speech_dominated(sx, RATE)
    return float(-10 * np.log10(np.sum(np.abs(sy[mask]) ** 2) / max(np.sum(np.abs(sx[mask]) ** 2), 1e-20)))


def comod(x: np.ndarray, y: np.ndarray) -> float:
    n_fft, _ = stft_size(RATE)
    band = slice(int(100 * n_fft / RATE), int(4000 * n_fft / RATE))
    residual, out = _power_db(_stft(x - y, RATE))[band].ravel(), _power_db(_stft(y, RATE))[band].ravel()
    return float(np.corrcoef(residual, out)[0, 1])


def evaluate(held_out: bool, per_utterance: int, dnsmos: bool) -> list[dict]:
    rows, cfg = [], DenoiseSettings()
    with DeepFilterStream(cfg.max_attenuation_db) as stream:
        for mix in mixes(RATE, held_out, per_utterance):
            tones = find_tones(
                mix.noisy,
                RATE,
                cfg.notch_min_prominence_db,
                cfg.notch_min_level_dbfs,
                cfg.notch_harmonic_min_prominence_db,
            )
            filtered = Notches(RATE, tuple(tones)).for_clip(mix.noisy).apply(mix.noisy)
            outputs = {
                "none": filtered,
                "gate-nonstationary": gate(filtered, RATE, None, cfg.n_std, cfg.max_attenuation_db),
                "gate-stationary": gate(
                    filtered, RATE, profile_from_min_statistics([filtered], RATE), cfg.n_std, cfg.max_attenuation_db
                ),
                "deepfilter": stream.process(filtered, RATE),
            }
            mos_in, sdr_in = quality.dnsmos(mix.noisy, RATE) if dnsmos else None, quality.si_sdr(mix.noisy, mix.clean)
            snr = {"snr": quality.snr_estimate(mix.noisy, RATE), "snr_notched": quality.snr_estimate(filtered, RATE)}
            # the stage's noise for a file of speech only: minimum statistics over it, before the notches
            noise_db = profile_from_min_statistics([mix.noisy], RATE).mean_db + EXP_MEAN_OFFSET_DB
            for method, y in outputs.items():
                y = np.clip(y, -1, 1)
                mos = quality.dnsmos(y, RATE) if mos_in else None
                rows.append(
                    {
                        "mix": mix.name,
                        "method": method,
                        "delta": quality.si_sdr(y, mix.clean) - sdr_in,
                        "loss": loss_db(mix.noisy, y),
                        "kept": kept_db(mix.noisy, y),
                        "comod": comod(mix.noisy, y),
                        "estimate": -distortion.sdr_change_estimate_db(mix.noisy, y, RATE, noise_db),
                        **snr,
                        **({"sig": mos_in.sig - mos.sig, "ovrl": mos_in.ovrl - mos.ovrl} if mos_in and mos else {}),
                    }
                )
            print(
                mix.name,
                " ".join(f"{r['method']}:{r['delta']:+.1f}/{r['loss']:.1f}" for r in rows[-4:]),
                file=sys.stderr,
            )
    return rows


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a harmful output scores above a harmless one (ties count half)."""
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        return float("nan")
    return float(np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])))


def _after_reverts(rows: list[dict], scores: np.ndarray, tolerance: float, fallback: dict[str, float]) -> np.ndarray:
    """ΔSI-SDR per output once those scoring above `tolerance` fall back to the notched input of their mix."""
    return np.array(
        [fallback[r["mix"]] if score > tolerance else r["delta"] for r, score in zip(rows, scores, strict=True)]
    )


def report(tuning: list[dict], held: list[dict]) -> str:
    """Per check: how it ranks the harm on held-out outputs, and what its tolerance, tuned on tuning, does there.

    The tolerance is the one that maximises the mean ΔSI-SDR over tuning
    outputs once reverted outputs fall back to the notched input.
    """
    from scipy.stats import spearmanr

    def column(rows: list[dict], key: str) -> np.ndarray:
        return np.nan_to_num(np.array([r[key] for r in rows], float), neginf=-100.0)

    fallbacks = {id(rows): {r["mix"]: r["delta"] for r in rows if r["method"] == "none"} for rows in (tuning, held)}
    fall_t, fall_h = fallbacks[id(tuning)], fallbacks[id(held)]
    tuning, held = ([r for r in rows if r["method"] != "none"] for rows in (tuning, held))
    delta_t, delta_h = column(tuning, "delta"), column(held, "delta")
    harm_t, harm_h = delta_t < -HARM_DB, delta_h < -HARM_DB
    lines = [
        f"tuning: {len(tuning)} outputs, {harm_t.sum()} harmful; held-out: {len(held)} outputs, "
        f"{harm_h.sum()} harmful (SI-SDR loss > {HARM_DB} dB); mean ΔSI-SDR held-out with no check: "
        f"{delta_h.mean():+.2f} dB",
        "",
        "| check | Spearman vs SI-SDR loss | AUC harmful | tolerance (tuned) | harmful caught | harmless reverted "
        "| mean ΔSI-SDR after reverts | worst ΔSI-SDR after reverts |",
        "|---|---|---|---|---|---|---|---|",
    ]
    setting = DenoiseSettings().max_sdr_loss_db
    for check, fixed in [(c, None) for c in CHECKS if c in held[0]] + [("estimate", setting)]:
        score_t, score_h = column(tuning, check), column(held, check)
        if fixed is None:
            options = np.append(np.unique(score_t) - 1e-6, np.inf)  # revert from each value up, or nothing
            gains = [_after_reverts(tuning, score_t, t, fall_t).mean() for t in options]
            tolerance = float(options[int(np.argmax(gains))])
        else:
            tolerance = fixed
        reverted = score_h > tolerance
        after = _after_reverts(held, score_h, tolerance, fall_h)
        lines.append(
            f"| {check}{' (the setting)' if fixed is not None else ''} | "
            f"{spearmanr(score_h, -delta_h).statistic:.2f} | {auc(score_h, harm_h):.2f} | {tolerance:.2f} | "
            f"{int((reverted & harm_h).sum())}/{int(harm_h.sum())} | "
            f"{int((reverted & ~harm_h).sum())}/{int((~harm_h).sum())} | {after.mean():+.2f} | "
            f"{after.min():+.1f} |"
        )
    per_method = ["", "| method | outputs | harmful | mean ΔSI-SDR (held-out) |", "|---|---|---|---|"]
    for method in dict.fromkeys(r["method"] for r in held):
        d = np.array([r["delta"] for r in held if r["method"] == method])
        per_method.append(f"| {method} | {len(d)} | {(d < -HARM_DB).sum()} | {d.mean():+.2f} |")
    return "\n".join(lines + per_method)


def auto_outcome(outputs: dict[str, dict], tolerance: float, clean: tuple[str, float] | None, max_loss: float) -> dict:
    """The output auto's rules keep for one mix (one clip): the notched input when it is clean enough, else the
    best DNSMOS OVRL among the candidates passing the DNSMOS rule at SIG `tolerance` and the distortion check
    at `max_loss` dB."""
    none = outputs["none"]
    snr = none[clean[0]] if clean else None
    if clean and snr is not None and snr >= clean[1]:
        return none
    passing = [
        outputs[m]
        for m in ("deepfilter", "gate-nonstationary")
        if outputs[m]["ovrl"] < 0 and outputs[m]["sig"] <= tolerance and outputs[m]["estimate"] <= max_loss
    ]
    return min(passing, key=lambda r: r["ovrl"]) if passing else none


def rules(tuning: list[dict], held: list[dict], shown: int = 12) -> str:
    """auto's three per-clip rules over a grid: the SIG tolerance, the clean-clip bound (on the blind SNR before or
    after the notches) and the distortion tolerance. Per rule set: harmful outputs, mean and worst ΔSI-SDR and mean
    ΔOVRL on the tuning and the held-out mixes.

    The rule set to choose is the one with the fewest harmful tuning outputs, then the best mean tuning ΔSI-SDR;
    the table shows the `shown` best by that order and the stage's defaults, and the held-out columns show what
    each does on mixes it was not chosen on.
    """

    def by_mix(rows: list[dict]) -> dict[str, dict[str, dict]]:
        grouped: dict[str, dict[str, dict]] = {}
        for r in rows:
            grouped.setdefault(r["mix"], {})[r["method"]] = r
        return grouped

    def outcome(outputs_by_mix: dict[str, dict[str, dict]], rule: tuple) -> tuple[int, float, float, float]:
        kept = [auto_outcome(outputs, *rule) for outputs in outputs_by_mix.values()]
        delta = np.array([r["delta"] for r in kept])
        return (
            int((delta < -HARM_DB).sum()),
            float(delta.mean()),
            float(delta.min()),
            float(np.mean([-r["ovrl"] for r in kept])),
        )

    sets = {"tuning": by_mix(tuning), "held-out": by_mix(held)}
    bounds = [None] + [(key, db) for key in ("snr", "snr_notched") for db in (20, 22, 24, 26, 28, 30)]
    grid = [(t, c, m) for t in (0.1, 0.2, 0.3, 0.5, np.inf) for c in bounds for m in (1.0, 2.0, 3.0, 4.0, 6.0)]
    scored = {rule: [outcome(rows, rule) for rows in sets.values()] for rule in grid}
    ranked = sorted(grid, key=lambda rule: (scored[rule][0][0], -scored[rule][0][1]))
    cfg = DenoiseSettings()
    default = (cfg.sig_tolerance, ("snr_notched", cfg.clean_snr_db) if cfg.clean_snr_db else None, cfg.max_sdr_loss_db)
    lines = [
        "| SIG tolerance | clean-clip bound | distortion tolerance | "
        + " | ".join(f"{name}: harmful / mean ΔSI-SDR / worst / mean ΔOVRL" for name in sets)
        + " |",
        "|---|---|---|---|---|",
    ]
    for rank, rule in enumerate(ranked):
        if rank >= shown and rule != default:
            continue
        tolerance, clean, max_loss = rule
        bound = "off" if clean is None else f"{clean[0]} ≥ {clean[1]:g} dB"
        notes = [
            note for note, hit in (("best on tuning", rank == 0), ("the stage's defaults", rule == default)) if hit
        ]
        lines.append(
            f"| {tolerance:g} | {bound}{' **(' + ', '.join(notes) + ')**' if notes else ''} | {max_loss:g} dB | "
            + " | ".join(f"{h} / {m:+.2f} / {w:+.1f} / {o:+.2f}" for h, m, w, o in scored[rule])
            + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, help="JSON file of measured rows: read if present, else written")
    parser.add_argument("--no-dnsmos", action="store_true", help="skip the DNSMOS checks (most of the time)")
    args = parser.parse_args(argv)
    if args.cache and args.cache.exists():
        data = json.loads(args.cache.read_text())
    else:
        data = {"tuning": evaluate(False, 1, not args.no_dnsmos), "held_out": evaluate(True, 1, not args.no_dnsmos)}
        if args.cache:
            args.cache.write_text(json.dumps(data))
    print(report(data["tuning"], data["held_out"]))
    if "ovrl" in data["held_out"][0]:
        print("\n" + rules(data["tuning"], data["held_out"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
