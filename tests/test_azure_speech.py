"""Azure AI Speech backend: result parsing, credentials, retries and SDK wiring, all without the service.

The one test that calls the service runs only when NR4DL_AZURE_SPEECH_KEY and NR4DL_AZURE_SPEECH_REGION are set.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from nr4dl_tasks.asr import azure_speech
from nr4dl_tasks.asr.azure_speech import (
    AzureCredentials,
    AzureRecognizer,
    AzureRejected,
    AzureUnavailable,
    TransientAttempt,
    backoff_delay,
    cancellation_error,
    credentials_from_connection,
    credentials_from_env,
    parse_results,
    with_retries,
)
from nr4dl_tasks.asr.recognition import AudioClip
from nr4dl_tasks.core.errors import SettingsError, StageError, Transient
from nr4dl_tasks.core.settings import TranscribeSettings

SECRET = "0123456789abcdef0123456789abcdef"  # a dummy key; must never show up in a message

# Results of continuous recognition with OutputFormat.Detailed and word-level timestamps, one JSON document per
# `recognized` event (what `evt.result.json` holds). Written by hand from the documented shape, not recorded
# from a live call (no key exists here): field names and nesting follow Microsoft's "Speech to text REST API for
# short audio" page (detailed format: RecognitionStatus, Offset, Duration, NBest[Confidence, Lexical, ITN,
# MaskedITN, Display]), the Speech SDK's IDetailedSpeechPhrase/IWord types (NBest[].Words[Word, Offset,
# Duration]) and "Get speech recognition results" (Offset and Duration in ticks of 100 ns from the first audio
# byte). The text is the reference of LJ001-0001.wav; word Confidence comes with wordLevelConfidence=true, which
# the SDK adds to the request when word timestamps are requested.
PHRASE_1 = """{
  "Id": "3f1c0b4e8a7d4a52b1f0c9e2d6a8b731", "RecognitionStatus": "Success", "Offset": 1500000, "Duration": 29300000,
  "Channel": 0, "DisplayText": "Printing, in the only sense with which we are at present concerned,",
  "NBest": [{
    "Confidence": 0.9134,
    "Lexical": "printing in the only sense with which we are at present concerned",
    "ITN": "printing in the only sense with which we are at present concerned",
    "MaskedITN": "printing in the only sense with which we are at present concerned",
    "Display": "Printing, in the only sense with which we are at present concerned,",
    "Words": [
      {"Word": "printing", "Offset": 1500000, "Duration": 3400000, "Confidence": 0.97},
      {"Word": "in", "Offset": 5000000, "Duration": 1600000, "Confidence": 0.92},
      {"Word": "the", "Offset": 6700000, "Duration": 1900000, "Confidence": 0.99},
      {"Word": "only", "Offset": 8700000, "Duration": 2200000, "Confidence": 0.95},
      {"Word": "sense", "Offset": 11000000, "Duration": 2500000, "Confidence": 0.97},
      {"Word": "with", "Offset": 13600000, "Duration": 2200000, "Confidence": 0.92},
      {"Word": "which", "Offset": 15900000, "Duration": 2500000, "Confidence": 0.99},
      {"Word": "we", "Offset": 18500000, "Duration": 1600000, "Confidence": 0.95},
      {"Word": "are", "Offset": 20200000, "Duration": 1900000, "Confidence": 0.97},
      {"Word": "at", "Offset": 22200000, "Duration": 1600000, "Confidence": 0.92},
      {"Word": "present", "Offset": 23900000, "Duration": 3100000, "Confidence": 0.99},
      {"Word": "concerned", "Offset": 27100000, "Duration": 3700000, "Confidence": 0.95}
    ]
  }]
}"""

PHRASE_2 = """{
  "Id": "9d0e6a1f27c34b8e8f5a3c7b2e1d4f60", "RecognitionStatus": "Success", "Offset": 36000000, "Duration": 37100000,
  "Channel": 0, "DisplayText": "Differs from most if not from all the arts and crafts represented in the exhibition.",
  "NBest": [{
    "Confidence": 0.8712,
    "Lexical": "differs from most if not from all the arts and crafts represented in the exhibition",
    "ITN": "differs from most if not from all the arts and crafts represented in the exhibition",
    "MaskedITN": "differs from most if not from all the arts and crafts represented in the exhibition",
    "Display": "Differs from most if not from all the arts and crafts represented in the exhibition.",
    "Words": [
      {"Word": "differs", "Offset": 36000000, "Duration": 3100000, "Confidence": 0.9},
      {"Word": "from", "Offset": 39200000, "Duration": 2200000, "Confidence": 0.85},
      {"Word": "most", "Offset": 41500000, "Duration": 2200000, "Confidence": 0.96},
      {"Word": "if", "Offset": 43800000, "Duration": 1600000, "Confidence": 0.9},
      {"Word": "not", "Offset": 45500000, "Duration": 1900000, "Confidence": 0.85},
      {"Word": "from", "Offset": 47500000, "Duration": 2200000, "Confidence": 0.96},
      {"Word": "all", "Offset": 49800000, "Duration": 1900000, "Confidence": 0.9},
      {"Word": "the", "Offset": 51800000, "Duration": 1900000, "Confidence": 0.85},
      {"Word": "arts", "Offset": 53800000, "Duration": 2200000, "Confidence": 0.96},
      {"Word": "and", "Offset": 56100000, "Duration": 1900000, "Confidence": 0.9},
      {"Word": "crafts", "Offset": 58100000, "Duration": 2800000, "Confidence": 0.85},
      {"Word": "represented", "Offset": 61000000, "Duration": 4300000, "Confidence": 0.96},
      {"Word": "in", "Offset": 65400000, "Duration": 1600000, "Confidence": 0.9},
      {"Word": "the", "Offset": 67100000, "Duration": 1900000, "Confidence": 0.85},
      {"Word": "exhibition", "Offset": 69100000, "Duration": 4000000, "Confidence": 0.96}
    ]
  }]
}"""

# A result without speech carries only the status, Offset and Duration (no NBest, no DisplayText).
NO_MATCH = (
    '{"Id": "5b2d8c0e4f6a4e1b9c3d7a8f0e2b1c46", "RecognitionStatus": "NoMatch", "Offset": 73500000, '
    '"Duration": 22000000, "Channel": 0}'
)
SILENCE = (
    '{"Id": "c7e1a9b3d5f24c6e8a0b2d4f6e8a0c21", "RecognitionStatus": "InitialSilenceTimeout", '
    '"Offset": 0, "Duration": 50000000}'
)
# The REST API's own sample writes Offset and Duration as strings; they must parse the same.
REST_SAMPLE = """{
  "RecognitionStatus": "Success", "Offset": "1236645672", "Duration": "13500000",
  "NBest": [
    {"Confidence": 0.9052885, "Display": "What's the weather like?", "ITN": "what's the weather like",
     "Lexical": "what's the weather like", "MaskedITN": "what's the weather like"},
    {"Confidence": 0.92459863, "Display": "what is the weather like", "ITN": "what is the weather like",
     "Lexical": "what is the weather like", "MaskedITN": "what is the weather like"}
  ]
}"""


def results(*documents: str) -> list[dict]:
    return [json.loads(doc) for doc in documents]


def clip_at(tmp_path: Path, seconds: float = 0.5) -> AudioClip:
    """A short clip file (quiet noise at 22.05 kHz, the default clip rate)."""
    path = tmp_path / "f1_0007.wav"
    rng = np.random.default_rng(0)
    sf.write(path, (0.01 * rng.standard_normal(int(22050 * seconds))).astype(np.float32), 22050)
    return AudioClip("f1_0007", path)


# --- parsing ------------------------------------------------------------------------------------------------------


def test_parse_joins_phrases_with_confidence_and_word_times() -> None:
    transcript = parse_results(results(PHRASE_1, PHRASE_2), language="en-US")
    assert transcript.text == (
        "Printing, in the only sense with which we are at present concerned, "
        "Differs from most if not from all the arts and crafts represented in the exhibition."
    )
    assert transcript.language == "en-US"
    assert transcript.language_probability is None
    # duration-weighted: (0.9134 * 2.93 s + 0.8712 * 3.71 s) / 6.64 s
    assert transcript.confidence == pytest.approx((0.9134 * 29.3 + 0.8712 * 37.1) / 66.4)
    assert transcript.details == {"backend": "azure", "status": "Success", "phrases": 2}
    words = transcript.words
    assert [w.word for w in words[:3]] == ["printing", "in", "the"]
    assert len(words) == 27
    assert (words[0].start, words[0].end, words[0].confidence) == (0.15, 0.49, 0.97)
    assert (words[-1].word, words[-1].start, words[-1].end) == ("exhibition", 6.91, 7.31)
    assert all(a.start < b.start for a, b in zip(words, words[1:], strict=False))
    record = transcript.as_record()
    assert record["asr"]["backend"] == "azure" and record["words"][0]["word"] == "printing"


def test_parse_skips_phrases_without_speech() -> None:
    transcript = parse_results(results(SILENCE, PHRASE_1, NO_MATCH), language="en-US")
    assert transcript.text == "Printing, in the only sense with which we are at present concerned,"
    assert transcript.confidence == pytest.approx(0.9134)
    assert transcript.details == {"backend": "azure", "status": "Success", "phrases": 1}
    assert len(transcript.words) == 12


def test_parse_only_no_match_gives_empty_text() -> None:
    transcript = parse_results(results(SILENCE, NO_MATCH), language="ko-KR")
    assert transcript.text == ""
    assert transcript.confidence is None and transcript.words is None
    assert transcript.language == "ko-KR"
    assert transcript.details == {"backend": "azure", "status": "InitialSilenceTimeout", "phrases": 0}


def test_parse_no_results() -> None:
    transcript = parse_results([])
    assert transcript.text == "" and transcript.confidence is None
    assert transcript.details == {"backend": "azure", "status": "NoResult", "phrases": 0}


def test_parse_takes_the_first_alternative_and_string_ticks() -> None:
    transcript = parse_results(results(REST_SAMPLE), language="en-US")
    assert transcript.text == "What's the weather like?"  # NBest[0] is the service's best, not the most confident
    assert transcript.confidence == pytest.approx(0.9052885)
    assert transcript.words == []  # no word timings requested in that sample


# --- credentials --------------------------------------------------------------------------------------------------


def test_credentials_from_env() -> None:
    creds = credentials_from_env({"NR4DL_AZURE_SPEECH_KEY": f" {SECRET} ", "NR4DL_AZURE_SPEECH_REGION": "westeurope"})
    assert creds == AzureCredentials(key=SECRET, region="westeurope", endpoint=None)
    with_endpoint = credentials_from_env(
        {
            "NR4DL_AZURE_SPEECH_KEY": SECRET,
            "NR4DL_AZURE_SPEECH_REGION": "eastus",
            "NR4DL_AZURE_SPEECH_ENDPOINT": "wss://speech.example.org/stt",
        }
    )
    assert with_endpoint.endpoint == "wss://speech.example.org/stt"


@pytest.mark.parametrize(
    "environ, named",
    [
        ({}, ["NR4DL_AZURE_SPEECH_KEY", "NR4DL_AZURE_SPEECH_REGION"]),
        ({"NR4DL_AZURE_SPEECH_REGION": "westeurope"}, ["NR4DL_AZURE_SPEECH_KEY"]),
        ({"NR4DL_AZURE_SPEECH_KEY": SECRET, "NR4DL_AZURE_SPEECH_REGION": "  "}, ["NR4DL_AZURE_SPEECH_REGION"]),
    ],
)
def test_credentials_from_env_missing(environ: dict, named: list[str]) -> None:
    with pytest.raises(SettingsError) as caught:
        credentials_from_env(environ)
    message = str(caught.value)
    assert all(name in message for name in named)
    assert "nr4dl_azure_speech" in message  # points Airflow users at the connection
    assert SECRET not in message
    if len(named) == 1:
        assert "NR4DL_AZURE_SPEECH_KEY and" not in message


def test_credentials_bad_region() -> None:
    with pytest.raises(SettingsError, match="West Europe"):
        credentials_from_env({"NR4DL_AZURE_SPEECH_KEY": SECRET, "NR4DL_AZURE_SPEECH_REGION": "West Europe"})
    with pytest.raises(SettingsError, match="nr4dl_azure_speech.*West Europe") as caught:
        credentials_from_connection("nr4dl_azure_speech", SECRET, {"region": "West Europe"})
    assert SECRET not in str(caught.value)


def test_credentials_from_connection() -> None:
    creds = credentials_from_connection("nr4dl_azure_speech", SECRET, {"region": "westeurope"})
    assert creds == AzureCredentials(key=SECRET, region="westeurope")
    custom = credentials_from_connection("speech", SECRET, {"region": "eastus", "endpoint": "wss://h/stt"})
    assert custom.endpoint == "wss://h/stt"


@pytest.mark.parametrize(
    "password, extra, missing",
    [
        (None, {"region": "westeurope"}, ["no Speech key"]),
        ("", {"region": "westeurope"}, ["no Speech key"]),
        (SECRET, {}, ["no region"]),
        (SECRET, None, ["no region"]),
        (None, {}, ["no Speech key", "no region"]),
    ],
)
def test_credentials_from_connection_missing(password: str | None, extra: dict | None, missing: list[str]) -> None:
    with pytest.raises(SettingsError) as caught:
        credentials_from_connection("my_speech", password, extra)
    message = str(caught.value)
    assert "'my_speech'" in message
    assert all(part in message for part in missing)
    assert SECRET not in message


def test_key_stays_out_of_repr_and_messages(tmp_path: Path) -> None:
    creds = AzureCredentials(key=SECRET, region="westeurope")
    assert SECRET not in repr(creds) and SECRET not in str(creds)
    assert "westeurope" in repr(creds)
    clip = AudioClip("f1_0007", tmp_path / "f1_0007.wav")
    leaky = f"WebSocket upgrade failed: Authentication error (401). key={SECRET}"  # even if the service echoed it
    for code in ("AuthenticationFailure", "Forbidden", "BadRequest", "ServiceError", "TooManyRequests"):
        assert SECRET not in str(cancellation_error(clip, code, leaky, creds))


# --- retries ------------------------------------------------------------------------------------------------------


def test_retries_transient_failures_then_succeeds(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clip = AudioClip("f1_0007", tmp_path / "f1_0007.wav")
    calls: list[str] = []
    slept: list[float] = []

    def attempt(c: AudioClip) -> list[dict]:
        calls.append(c.id)
        if len(calls) <= 3:
            raise TransientAttempt("TooManyRequests: Too many requests")
        return results(PHRASE_1)

    with caplog.at_level(logging.WARNING, logger="nr4dl"):
        got = with_retries(attempt, clip, retries=5, sleep=slept.append, jitter=lambda: 0.5)
    assert got == results(PHRASE_1)
    assert calls == ["f1_0007"] * 4
    assert len(slept) == 3 and slept[0] < slept[1] < slept[2]
    assert slept == pytest.approx([0.875, 1.75, 3.5])
    assert "clip f1_0007.wav: Azure throttled" in caplog.text and "retry 3/5" in caplog.text


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    for jitter in (0.0, 0.999):
        delays = [backoff_delay(n, jitter) for n in range(1, 12)]
        assert all(a < b for a, b in zip(delays[:5], delays[1:6], strict=True))
        assert max(delays) <= 30.0
    assert backoff_delay(1, 0.0) == 0.75 and backoff_delay(1, 1.0) == 1.0
    assert backoff_delay(20, 1.0) == 30.0


def test_retries_exhausted_names_the_clip(tmp_path: Path) -> None:
    clip = AudioClip("f1_0007", tmp_path / "f1_0007.wav")
    slept: list[float] = []

    def attempt(c: AudioClip) -> list[dict]:
        raise TransientAttempt("ServiceUnavailable: 503")

    with pytest.raises(AzureUnavailable) as caught:
        with_retries(attempt, clip, retries=2, sleep=slept.append)
    assert isinstance(caught.value, Transient) and isinstance(caught.value, StageError)
    message = str(caught.value)
    assert str(clip.path) in message and "3 attempt(s)" in message and "ServiceUnavailable" in message
    assert len(slept) == 2


def test_rejected_key_is_not_retried(tmp_path: Path) -> None:
    clip = AudioClip("f1_0007", tmp_path / "f1_0007.wav")
    creds = AzureCredentials(key=SECRET, region="westeurope")
    calls: list[int] = []
    slept: list[float] = []

    def attempt(c: AudioClip) -> list[dict]:
        calls.append(1)
        raise cancellation_error(c, "AuthenticationFailure", "Authentication error (401)", creds)

    with pytest.raises(AzureRejected) as caught:
        with_retries(attempt, clip, retries=5, sleep=slept.append)
    assert calls == [1] and slept == []
    assert not isinstance(caught.value, Transient)
    message = str(caught.value)
    assert "'westeurope'" in message and "key or region" in message and SECRET not in message


def test_cancellation_codes(tmp_path: Path) -> None:
    clip = AudioClip("f1_0007", tmp_path / "f1_0007.wav")
    creds = AzureCredentials(key=SECRET, region="westeurope")
    for code in ("TooManyRequests", "ServiceTimeout", "ConnectionFailure", "ServiceUnavailable"):
        assert isinstance(cancellation_error(clip, code, "", creds), TransientAttempt)
    for code in ("AuthenticationFailure", "Forbidden"):
        assert isinstance(cancellation_error(clip, code, "", creds), AzureRejected)
    bad = cancellation_error(clip, "BadRequest", "Invalid audio format", creds)
    assert type(bad) is StageError and str(clip.path) in str(bad) and "BadRequest" in str(bad)


# --- the real SDK, offline ----------------------------------------------------------------------------------------


def azure_settings(**changes) -> TranscribeSettings:
    return TranscribeSettings(backend="azure", language="en-US", **changes)


def test_sdk_config_carries_locale_and_detailed_format() -> None:
    speechsdk = pytest.importorskip("azure.cognitiveservices.speech", reason="the Azure Speech SDK does not load")
    recognizer = AzureRecognizer(AzureCredentials(key=SECRET, region="westeurope"), azure_settings())
    config = recognizer.speech_config
    assert recognizer.name == "azure"
    assert config.speech_recognition_language == "en-US"
    assert config.output_format == speechsdk.OutputFormat.Detailed
    assert config.region == "westeurope"
    assert config.get_property(speechsdk.PropertyId.SpeechServiceResponse_RequestWordLevelTimestamps) == "true"


def test_recognizer_needs_a_locale() -> None:
    with pytest.raises(SettingsError, match="locale"):
        AzureRecognizer(
            AzureCredentials(key=SECRET, region="westeurope"), TranscribeSettings(backend="local", language="en")
        )


def test_unreachable_service_is_transient_through_the_sdk(tmp_path: Path) -> None:
    """A real SDK session against a closed local port: ConnectionFailure, retried, then AzureUnavailable."""
    pytest.importorskip("azure.cognitiveservices.speech", reason="the Azure Speech SDK does not load")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    creds = AzureCredentials(
        key=SECRET,
        region="westeurope",
        endpoint=f"wss://127.0.0.1:{port}/speech/recognition/conversation/cognitiveservices/v1",
    )
    slept: list[float] = []
    recognizer = AzureRecognizer(creds, azure_settings(azure_retries=0, azure_timeout_seconds=20), sleep=slept.append)
    clip = clip_at(tmp_path)
    with pytest.raises(AzureUnavailable) as caught:
        recognizer.transcribe([clip])
    message = str(caught.value)
    assert str(clip.path) in message and "ConnectionFailure" in message
    assert SECRET not in message


# --- the service --------------------------------------------------------------------------------------------------

LIVE = bool(os.environ.get("NR4DL_AZURE_SPEECH_KEY") and os.environ.get("NR4DL_AZURE_SPEECH_REGION"))


@pytest.mark.skipif(not LIVE, reason="needs NR4DL_AZURE_SPEECH_KEY and NR4DL_AZURE_SPEECH_REGION (calls the service)")
def test_live_transcribes_lj_speech(media: Path) -> None:
    folder = media / "speech_en"
    reference = dict(line.split("\t", 1) for line in (folder / "transcripts.tsv").read_text().splitlines()[1:])
    recognizer = AzureRecognizer(azure_speech.credentials_from_env(), azure_settings())
    (transcript,) = recognizer.transcribe([AudioClip("LJ001-0001", folder / "LJ001-0001.wav")])
    assert "differs from most" in reference["LJ001-0001.wav"].lower()
    text = transcript.text.lower()
    for word in ("printing", "sense", "concerned", "differs", "crafts", "exhibition"):
        assert word in text
    assert transcript.details["status"] == "Success" and 0.5 < transcript.confidence <= 1.0
    assert transcript.words and 0.0 <= transcript.words[0].start < transcript.words[-1].end <= 9.7
