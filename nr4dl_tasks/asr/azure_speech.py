"""Azure AI Speech backend of the transcribe stage: the clips of a file sent to the service one by one.

Why it looks the way it does:

- The subscription key is a secret. It lives only in `AzureCredentials.key`, which
  is left out of the repr, and no log line or exception names it (service error
  details are scrubbed of it too); messages name the region or endpoint instead.
  Under Airflow the key comes from the connection `nr4dl_azure_speech` (its
  password), for the CLI from `NR4DL_AZURE_SPEECH_KEY`.
- Each clip is one continuous-recognition session, so every phrase's Offset is
  relative to the clip start. The service answers one JSON result per phrase; the
  detailed output format carries the N-best list with confidence and, as word
  level timestamps are requested, per-word Offset and Duration in ticks of 100 ns.
  `parse_results` turns those into a `Transcript` and is a pure function.
- The clip audio goes to the SDK as 16 kHz 16-bit mono PCM from `AudioClip.samples()`
  through a push stream, not as the clip file: clips are written at
  `slice.sample_rate` (22.05 kHz by default) and may be stereo, while the SDK's
  default input format is 16 kHz mono.
- Throttling (429) and connection trouble pass on their own: one clip is retried
  with exponential backoff and jitter (`with_retries`, which takes the one-attempt
  function and a `sleep`, so it can be tested without the service or a clock).
  When the retries are used up, `AzureUnavailable` is raised. It derives from
  `errors.Transient`, which the Airflow operator lets Airflow retry later instead
  of failing the task. A rejected key or region (`AzureRejected`) and a rejected
  request are `StageError`s raised at once: retrying cannot fix them.
- The SDK (a native library) is imported only inside the functions that talk to
  the service, so importing this module stays cheap.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from nr4dl_tasks.asr.recognition import RATE, AudioClip, Transcript, Word
from nr4dl_tasks.core.errors import SettingsError, StageError, Transient
from nr4dl_tasks.core.settings import TranscribeSettings

log = logging.getLogger("nr4dl")

CONNECTION_ID = "nr4dl_azure_speech"  # the Airflow connection the operator reads by default
ENV_KEY = "NR4DL_AZURE_SPEECH_KEY"
ENV_REGION = "NR4DL_AZURE_SPEECH_REGION"
ENV_ENDPOINT = "NR4DL_AZURE_SPEECH_ENDPOINT"

TICKS_PER_SECOND = 10_000_000  # Azure offsets and durations count ticks of 100 ns
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 30.0

# CancellationErrorCode names (the SDK enum's member names), by what the caller should do about them.
# ServiceError is the service's own internal error (HTTP 5xx): usually gone on the next try.
TRANSIENT_CODES = frozenset(
    {"TooManyRequests", "ServiceTimeout", "ConnectionFailure", "ServiceUnavailable", "ServiceError"}
)
REJECTED_CODES = frozenset({"AuthenticationFailure", "Forbidden"})

T = TypeVar("T")


# --- errors -----------------------------------------------------------------------------------------------------


class AzureUnavailable(Transient):
    """Azure AI Speech stayed throttled or unreachable for one clip through every retry.

    A `Transient` (hence a `StageError`): the Airflow operator lets Airflow retry the task later.
    """


class AzureRejected(StageError):
    """The service rejected the credentials (wrong key, or a key of another region): retrying cannot help."""


class TransientAttempt(Exception):
    """One attempt at a clip failed in a way that may pass (throttled, timed out, connection lost).

    Raised by a one-attempt function and caught only by `with_retries`; never leaves this module.
    """

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


# --- credentials --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AzureCredentials:
    """What the SDK needs to reach a Speech resource; `key` is a secret and stays out of the repr."""

    key: str = field(repr=False)
    region: str
    endpoint: str | None = None  # a custom endpoint (private link, container) instead of the region's own

    def where(self) -> str:
        """The region (and endpoint) for messages: never the key."""
        return f"region {self.region!r}" + (f", endpoint {self.endpoint}" if self.endpoint else "")


def _region_problem(region: str) -> str | None:
    """Why `region` is not an Azure region name such as 'westeurope' (a typo there fails as a connection error)."""
    if re.fullmatch(r"[a-z][a-z0-9]*", region):
        return None
    return f"region {region!r} is not an Azure region name such as 'westeurope' (lower case, no spaces)"


def credentials_from_env(environ: Mapping[str, str] = os.environ) -> AzureCredentials:
    """The key and region from NR4DL_AZURE_SPEECH_KEY / _REGION (and optional _ENDPOINT), for the CLI."""
    key = environ.get(ENV_KEY, "").strip()
    region = environ.get(ENV_REGION, "").strip()
    endpoint = environ.get(ENV_ENDPOINT, "").strip() or None
    missing = [name for name, value in ((ENV_KEY, key), (ENV_REGION, region)) if not value]
    if missing:
        raise SettingsError(
            f"transcribe.backend is azure but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not "
            f"set: export the Speech resource's key and region (e.g. westeurope) for the CLI; under Airflow they "
            f"come from the connection {CONNECTION_ID!r} instead"
        )
    problem = _region_problem(region)
    if problem:
        raise SettingsError(f"{ENV_REGION}: {problem}")
    return AzureCredentials(key=key, region=region, endpoint=endpoint)


def credentials_from_connection(
    conn_id: str, password: str | None, extra: Mapping[str, Any] | None
) -> AzureCredentials:
    """Credentials from an Airflow connection's password (the key) and extra ({"region": ..., "endpoint"?: ...})."""
    extra = extra or {}
    key = (password or "").strip()
    region = str(extra.get("region") or "").strip()
    endpoint = str(extra.get("endpoint") or "").strip() or None
    missing = []
    if not key:
        missing.append("no Speech key (set the connection's password to the key of the Speech resource)")
    if not region:
        missing.append('no region (set its extra to {"region": "westeurope"}, with the region of the resource)')
    if missing:
        raise SettingsError(f"Airflow connection {conn_id!r} has {' and '.join(missing)}")
    problem = _region_problem(region)
    if problem:
        raise SettingsError(f"Airflow connection {conn_id!r}: extra {problem}")
    return AzureCredentials(key=key, region=region, endpoint=endpoint)


def _redact(text: str, key: str) -> str:
    """`text` with any copy of the key masked (service error details are passed on to the user)."""
    return text.replace(key, "***") if key else text


# --- results ------------------------------------------------------------------------------------------------------


def _seconds(ticks: Any) -> float:
    """Ticks of 100 ns (a number, or a numeric string as in the REST samples) as seconds, to the millisecond."""
    return round(float(ticks) / TICKS_PER_SECOND, 3)


def _best(result: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first N-best alternative (the service's best) of a result, if any."""
    nbest = result.get("NBest") or []
    return nbest[0] if nbest else None


def _words(best: Mapping[str, Any]) -> list[Word]:
    """The alternative's words (lexical forms), start and end in seconds from the clip start."""
    words = []
    for item in best.get("Words") or []:
        offset = float(item.get("Offset", 0))
        duration = float(item.get("Duration", 0))
        confidence = item.get("Confidence")
        words.append(
            Word(
                word=str(item.get("Word", "")),
                start=_seconds(offset),
                end=_seconds(offset + duration),
                confidence=None if confidence is None else float(confidence),
            )
        )
    return words


def parse_results(results: Sequence[Mapping[str, Any]], language: str | None = None) -> Transcript:
    """One clip's transcript from the service's detailed JSON results, one per phrase.

    Only phrases with RecognitionStatus "Success" count; NoMatch, InitialSilenceTimeout, EndOfDictation and the
    like add nothing, and a clip with no phrase gets empty text (the gate stage drops it). The confidence is the
    phrases' best-alternative confidence, weighted by their durations. `language` is the forced locale: Azure
    reports no language probability for it.
    """
    texts: list[str] = []
    words: list[Word] = []
    weighted: list[tuple[float, float]] = []  # (confidence, duration in ticks) per phrase
    other: list[str] = []
    for result in results:
        status = str(result.get("RecognitionStatus", ""))
        best = _best(result) if status == "Success" else None
        text = str(best.get("Display") or result.get("DisplayText") or "").strip() if best else ""
        if best is None or not text:
            other.append(status or "Unknown")
            continue
        texts.append(text)
        words.extend(_words(best))
        if best.get("Confidence") is not None:
            weighted.append((float(best["Confidence"]), float(result.get("Duration") or 0)))
    total = sum(duration for _, duration in weighted)
    if not weighted:
        confidence = None
    elif total > 0:
        confidence = sum(conf * duration for conf, duration in weighted) / total
    else:
        confidence = sum(conf for conf, _ in weighted) / len(weighted)
    status = "Success" if texts else (other[0] if other else "NoResult")
    return Transcript(
        text=" ".join(texts),
        language=language,
        language_probability=None,
        confidence=confidence,
        words=words if texts else None,
        details={"backend": "azure", "status": status, "phrases": len(texts)},
    )


# --- retries ------------------------------------------------------------------------------------------------------


def backoff_delay(retry: int, jitter: float) -> float:
    """Seconds to wait before retry number `retry` (1, 2, ...): 1, 2, 4, ... s capped at 30 s, times 0.75-1.

    `jitter` (0-1) spreads the retries of parallel workers so they do not hit the service in step.
    """
    return min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (retry - 1)) * (0.75 + 0.25 * jitter)


def with_retries(
    attempt: Callable[[AudioClip], T],
    clip: AudioClip,
    *,
    retries: int,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> T:
    """`attempt(clip)`, again after a backoff while it raises `TransientAttempt`, at most `retries` times more.

    Any other exception (a rejected key, a bad request) passes through at once. When the retries are used up,
    `AzureUnavailable` names the clip and the last cause.
    """
    for retry in range(retries + 1):
        try:
            return attempt(clip)
        except TransientAttempt as exc:
            if retry == retries:
                raise AzureUnavailable(
                    f"{clip.path}: clip {clip.id} could not be transcribed by Azure AI Speech after "
                    f"{retries + 1} attempt(s): {exc.cause}; the task may be retried later"
                ) from None
            delay = backoff_delay(retry + 1, jitter())
            log.warning(
                "clip %s: Azure throttled or unavailable (%s), retry %d/%d in %.1f s",
                clip.path.name,
                exc.cause,
                retry + 1,
                retries,
                delay,
            )
            sleep(delay)
    raise AssertionError("unreachable")  # the loop returns or raises


def cancellation_error(clip: AudioClip, code: str, details: str, credentials: AzureCredentials) -> Exception:
    """The exception for a recognition canceled with error `code` (a CancellationErrorCode name).

    `TransientAttempt` for throttling, connection trouble and internal service errors, `AzureRejected` for a
    rejected key or region, a `StageError` naming the clip for anything else (BadRequest, ...).
    """
    details = _redact(details or "no details", credentials.key).strip()
    if code in TRANSIENT_CODES:
        return TransientAttempt(f"{code}: {details}")
    if code in REJECTED_CODES:
        return AzureRejected(
            f"Azure AI Speech rejected the key or region of the credentials ({credentials.where()}; {code}): check "
            f"the Speech resource's key and region in the Airflow connection {CONNECTION_ID!r} or in {ENV_KEY} / "
            f"{ENV_REGION} ({details})"
        )
    return StageError(f"{clip.path}: Azure AI Speech refused clip {clip.id} ({code}: {details})")


# --- the recogniser -----------------------------------------------------------------------------------------------


def _sdk() -> Any:
    """The Speech SDK module, or a StageError saying why it cannot be loaded."""
    try:
        import azure.cognitiveservices.speech as speechsdk
    except (ImportError, OSError) as exc:
        raise StageError(
            f"transcribe.backend is azure but the Azure Speech SDK cannot be loaded ({exc}); install "
            "azure-cognitiveservices-speech (scripts/setup.sh does)"
        ) from None
    return speechsdk


def speech_config(credentials: AzureCredentials, settings: TranscribeSettings) -> Any:
    """The SDK's SpeechConfig: the locale, detailed output (N-best, confidence) and word timings."""
    speechsdk = _sdk()
    if credentials.endpoint:
        config = speechsdk.SpeechConfig(subscription=credentials.key, endpoint=credentials.endpoint)
    else:
        config = speechsdk.SpeechConfig(subscription=credentials.key, region=credentials.region)
    config.speech_recognition_language = settings.language
    config.output_format = speechsdk.OutputFormat.Detailed
    config.request_word_level_timestamps()
    return config


def _pcm16(samples: np.ndarray) -> bytes:
    """Float samples as little-endian 16-bit PCM."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


class _Session:
    """Collects one continuous-recognition session's results from the SDK's callback threads."""

    def __init__(self) -> None:
        self.results: list[str] = []
        self.error: tuple[str, str] | None = None  # (CancellationErrorCode name, error details)
        self.done = threading.Event()

    def recognized(self, evt: Any) -> None:
        if evt.result.json:
            self.results.append(evt.result.json)

    def canceled(self, evt: Any) -> None:
        details = evt.cancellation_details
        if details.reason.name == "Error":  # EndOfStream (all audio read) and CancelledByUser end normally
            self.error = (details.code.name, details.error_details or "")
        self.done.set()

    def stopped(self, evt: Any) -> None:
        self.done.set()


class AzureRecognizer:
    """`Recognizer` on Azure AI Speech: one continuous-recognition session per clip, with retries."""

    name = "azure"

    def __init__(
        self,
        credentials: AzureCredentials,
        settings: TranscribeSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not settings.language or "-" not in settings.language:
            raise SettingsError(
                "the azure backend needs transcribe.language set to a locale such as 'en-US' "
                f"(got {settings.language!r})"
            )
        self.credentials = credentials
        self.settings = settings
        self.speech_config = speech_config(credentials, settings)
        self._sleep = sleep

    def transcribe(self, clips: Sequence[AudioClip], languages: Sequence[str] | None = None) -> list[Transcript]:
        """One transcript per clip, in order, in the configured locale (`languages` is not used: the locale is
        the forced language); raises AzureUnavailable, AzureRejected or StageError."""
        transcripts = []
        for clip in clips:
            results = with_retries(self.recognise_one, clip, retries=self.settings.azure_retries, sleep=self._sleep)
            transcript = parse_results(results, language=self.settings.language)
            log.debug(
                "clip %s: Azure %s, %d phrase(s)",
                clip.path.name,
                transcript.details["status"],
                transcript.details["phrases"],
            )
            transcripts.append(transcript)
        return transcripts

    def recognise_one(self, clip: AudioClip) -> list[dict[str, Any]]:
        """One attempt at a clip: its JSON results, or TransientAttempt / AzureRejected / StageError."""
        pcm = _pcm16(clip.samples())
        timeout = self.settings.azure_timeout_seconds
        try:
            session, finished = self._session(pcm, timeout)
        except RuntimeError as exc:  # the SDK refused to start, e.g. a malformed endpoint
            raise StageError(
                f"{clip.path}: the Azure Speech SDK could not start recognising clip {clip.id} "
                f"({_redact(str(exc), self.credentials.key)})"
            ) from None
        if session.error:
            raise cancellation_error(clip, *session.error, self.credentials)
        if not finished:
            raise TransientAttempt(f"no answer within transcribe.azure_timeout_seconds ({timeout:g} s)")
        return [json.loads(text) for text in session.results]

    def _session(self, pcm: bytes, timeout: float) -> tuple[_Session, bool]:
        """One continuous-recognition session over `pcm`; whether it ended within `timeout` seconds.

        A session that ended by itself (all audio answered, or canceled) is not stopped: stopping one the service
        has canceled makes the SDK's teardown block for about 10 s (SDK 1.53, measured). For the same reason the
        SDK objects are released before this returns or raises, not left to a traceback until Python exits.
        """
        speechsdk = _sdk()
        stream_format = speechsdk.audio.AudioStreamFormat(samples_per_second=RATE, bits_per_sample=16, channels=1)
        stream = speechsdk.audio.PushAudioInputStream(stream_format=stream_format)
        stream.write(pcm)
        stream.close()  # end of stream: the session ends once the service has answered for all of it
        recognizer = speechsdk.SpeechRecognizer(
            speech_config=self.speech_config, audio_config=speechsdk.audio.AudioConfig(stream=stream)
        )
        session = _Session()
        try:
            recognizer.recognized.connect(session.recognized)
            recognizer.canceled.connect(session.canceled)
            recognizer.session_stopped.connect(session.stopped)
            recognizer.start_continuous_recognition()
            finished = session.done.wait(timeout)
            if not finished:
                recognizer.stop_continuous_recognition_async()  # do not wait on a hung connection
            for signal in (recognizer.recognized, recognizer.canceled, recognizer.session_stopped):
                signal.disconnect_all()
        finally:
            recognizer = stream = None  # noqa: F841 (drops the SDK objects now, also from a traceback's frame)
        return session, finished
