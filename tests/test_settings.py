from pathlib import Path

import pytest

from nr4dl_tasks import settings as settings_mod
from nr4dl_tasks.errors import SettingsError


def test_defaults_file_matches_schema():
    loaded = settings_mod.load(settings_mod.DEFAULT_SETTINGS_FILE)
    assert loaded == settings_mod.Settings()


def test_dotted_and_nested_overrides():
    loaded = settings_mod.load(overrides={"slice.min_duration": 0.3, "separate": {"enabled": False}})
    assert loaded.slice.min_duration == 0.3
    assert loaded.separate.enabled is False
    assert loaded.separate.chunk_blocks == settings_mod.SeparateSettings().chunk_blocks


def test_cli_assignments_are_parsed_as_yaml_scalars():
    assert settings_mod.parse_assignments(["slice.min_duration=0.3", "separate.enabled=false",
                                           "slice.labels=[speech]"]) == {
        "slice.min_duration": 0.3, "separate.enabled": False, "slice.labels": ["speech"]}
    with pytest.raises(SettingsError, match="key.sub=value"):
        settings_mod.parse_assignments(["slice.min_duration"])


@pytest.mark.parametrize("overrides, message", [
    ({"slice.min_duration": -1}, r"slice.min_duration: Input should be greater than or equal to 0.05"),
    ({"slice.typo": 1}, r"slice.typo: unknown setting"),
    ({"segment.input": "drums"}, r"segment.input: Input should be 'vocals' or 'original'"),
    ({"slice.labels": ["male", "laughter"]}, r"unknown label\(s\) \['laughter'\]"),
    ({"slice.min_duration": 5, "slice.max_duration": 2}, r"max_duration \(2.0\) is below min_duration"),
    ({"separate.enabled": "maybe"}, r"separate.enabled"),
    ({"segment.vad_engine": "sm", "slice.labels": ["noise"]}, r"'noise' never occurs with segment.vad_engine 'sm'"),
    ({"segment.detect_gender": False}, r"slice.labels \['female', 'male'\] never occur when segment.detect_gender"),
    ({"denoise.method": "wiener"}, r"denoise.method: Input should be 'auto', 'deepfilter', 'gate' or 'none'"),
    ({"denoise.score": False}, r"method 'auto' chooses by DNSMOS score; it needs score: true"),
    ({"denoise.noise_labels": ["male"]}, r"noise_labels \['male'\] are not non-speech labels"),
    ({"denoise.highpass_hz": 300, "denoise.lowpass_hz": 200}, r"highpass_hz \(300.0\) must be below lowpass_hz"),
    ({"denoise.lowpass_hz": 12000}, r"denoise.lowpass_hz \(12000.0\) must be below half of slice.sample_rate"),
])
def test_bad_settings_name_the_setting(overrides, message):
    with pytest.raises(SettingsError, match=message):
        settings_mod.load(overrides=overrides)


def test_bad_settings_file_is_named(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("slice: [1, 2")
    with pytest.raises(SettingsError, match=f"{bad} is not valid YAML"):
        settings_mod.load(bad)
    with pytest.raises(SettingsError, match="does not exist"):
        settings_mod.load(tmp_path / "missing.yaml")


def test_speech_label_expands_to_both_genders():
    cfg = settings_mod.load(overrides={"slice.labels": ["speech"]}).slice
    assert {"male", "female", "speech"} <= cfg.wanted_labels()


def test_a_missing_settings_file_named_in_the_environment_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("NR4DL_SETTINGS", str(tmp_path / "typo.yaml"))
    with pytest.raises(SettingsError, match="typo.yaml does not exist"):
        settings_mod.load()
