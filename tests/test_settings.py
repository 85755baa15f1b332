import os
from pathlib import Path

import pytest

from nr4dl_tasks.core import settings as settings_mod
from nr4dl_tasks.core.errors import SettingsError


def test_settings_yaml_is_the_schema_template():
    """settings.yaml is generated from the schema: every default and description is written once, there."""
    text = settings_mod.DEFAULT_SETTINGS_FILE.read_text(encoding="utf-8")
    assert text == settings_mod.template(), "settings.yaml drifted from the schema: run `nr4dl settings --template`"
    assert settings_mod.load(settings_mod.DEFAULT_SETTINGS_FILE) == settings_mod.Settings()


def test_the_template_describes_every_setting():
    text = settings_mod.template()
    for name, section in settings_mod.Settings.model_fields.items():
        for key, item in section.annotation.model_fields.items():
            assert item.description, f"{name}.{key} has no description"
            assert f"\n  {key}: " in text, f"{name}.{key} missing from the template"


def test_dotted_and_nested_overrides():
    loaded = settings_mod.load(overrides={"slice.min_duration": 0.3, "separate": {"mode": "off"}})
    assert loaded.slice.min_duration == 0.3
    assert loaded.separate.mode == "off"
    # `enabled`, the setting `mode` replaced, still switches separation off
    assert settings_mod.load(overrides={"separate.enabled": False}).separate.mode == "off"
    assert settings_mod.load(overrides={"separate.enabled": True}).separate.mode == "routed"
    assert loaded.separate.chunk_blocks == settings_mod.SeparateSettings().chunk_blocks


def test_cli_assignments_are_parsed_as_yaml_scalars():
    assert settings_mod.parse_assignments(["slice.min_duration=0.3", "separate.mode=off", "slice.labels=[speech]"]) == {
        "slice.min_duration": 0.3,
        "separate.mode": False,
        "slice.labels": ["speech"],
    }
    # YAML reads a bare `off` as false; the schema takes it as the mode it names
    assert settings_mod.load(overrides={"separate.mode": False}).separate.mode == "off"
    with pytest.raises(SettingsError, match="key.sub=value"):
        settings_mod.parse_assignments(["slice.min_duration"])


@pytest.mark.parametrize(
    "overrides, message",
    [
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
    ],
)
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


def test_environment_variables_override_the_file_and_runs_override_them(monkeypatch):
    monkeypatch.setenv("NR4DL__SLICE__MIN_DURATION", "0.3")
    monkeypatch.setenv("NR4DL__CRAWL__CATALOG_URL", "postgresql+psycopg2://u:secret@db/nr4dl")
    loaded = settings_mod.load()
    assert loaded.slice.min_duration == 0.3 and loaded.crawl.catalog_url.endswith("@db/nr4dl")
    assert settings_mod.load(overrides={"slice.min_duration": 1.5}).slice.min_duration == 1.5
    monkeypatch.setenv("NR4DL__CRAWL__CATALOG_URL", "postgresql://u:p #secret@db/nr4dl")  # '#' is no comment here
    assert settings_mod.load().crawl.catalog_url == "postgresql://u:p #secret@db/nr4dl"
    monkeypatch.setenv("NR4DL__RESOURCES__THREADS", "secret-value")
    with pytest.raises(SettingsError, match=r"environment .*NR4DL__RESOURCES__THREADS.*\n.*resources.threads") as err:
        settings_mod.load()
    assert "secret" not in str(err.value) and "not shown" in str(err.value)
    monkeypatch.setenv("NR4DL__RESOURCES__THREADS", "")  # empty: unset
    assert settings_mod.load().resources.threads == 0


def test_a_moved_setting_says_where_it_went():
    with pytest.raises(SettingsError, match="denoise.threads: moved to resources.threads"):
        settings_mod.load(overrides={"denoise.threads": 2})


def test_machine_figures_count_container_limits(tmp_path, monkeypatch):
    from nr4dl_tasks.core import resources

    (tmp_path / "cpu.max").write_text("150000 100000\n")  # a container limited to 1.5 CPUs
    (tmp_path / "memory.max").write_text(str(5 * 2**30))
    monkeypatch.setattr(resources, "CGROUP_CPU_LIMIT", tmp_path / "cpu.max")
    monkeypatch.setattr(resources, "CGROUP_MEMORY_LIMIT", tmp_path / "memory.max")
    assert resources.cores() == min(2, len(os.sched_getaffinity(0))) and resources.memory_gb() == 5
    cfg = settings_mod.load().resources
    assert resources.tasks_per_worker(cfg) == 1  # 5 GB hold one 3 GB task
    (tmp_path / "cpu.max").write_text("max 100000\n")
    (tmp_path / "memory.max").write_text("max\n")
    assert resources.cores() == len(os.sched_getaffinity(0)) and resources.memory_gb() > 5


def test_machine_figures_count_cgroup_v1_container_limits(tmp_path, monkeypatch):
    """Hosts that still mount cgroup v1 (Docker and podman use it there) write the limits in other files."""
    from nr4dl_tasks.core import resources

    for name, value in [("quota", "100000"), ("period", "100000"), ("memory", str(6 * 2**30))]:
        (tmp_path / name).write_text(value + "\n")  # a container limited to 1 CPU and 6 GB
    monkeypatch.setattr(resources, "CGROUP_CPU_LIMIT", tmp_path / "no-cpu.max")
    monkeypatch.setattr(resources, "CGROUP_MEMORY_LIMIT", tmp_path / "no-memory.max")
    monkeypatch.setattr(resources, "CGROUP_V1_CPU_QUOTA", tmp_path / "quota")
    monkeypatch.setattr(resources, "CGROUP_V1_CPU_PERIOD", tmp_path / "period")
    monkeypatch.setattr(resources, "CGROUP_V1_MEMORY_LIMIT", tmp_path / "memory")
    assert resources.cores() == 1 and resources.memory_gb() == 6
    (tmp_path / "quota").write_text("-1\n")  # no quota; no memory limit reads as a huge number
    (tmp_path / "memory").write_text("9223372036854771712\n")
    assert resources.cores() == len(os.sched_getaffinity(0)) and resources.memory_gb() > 6


@pytest.mark.parametrize(
    "cores, memory_gb, per_worker, shared_threads",
    [
        (2, 24.0, 2, 1),  # this machine: both cores, 3 GB tasks fit eight times
        (8, 20.0, 6, 1),  # memory bounds it: six 3 GB tasks in 20 GB
        (16, 7.0, 2, 8),  # two tasks fit; each gets half of the cores
        (4, 2.0, 1, 4),  # less memory than one task: still one
    ],
)
def test_resources_size_the_pool_and_each_task_from_the_machine(
    monkeypatch, cores, memory_gb, per_worker, shared_threads
):
    from nr4dl_tasks.core import resources

    monkeypatch.setattr(resources, "cores", lambda: cores)
    monkeypatch.setattr(resources, "memory_gb", lambda: memory_gb)
    auto = settings_mod.load()
    assert resources.tasks_per_worker(auto.resources) == per_worker
    assert resources.heavy_slots(auto.resources) == per_worker
    assert resources.threads(auto) == cores  # outside Airflow a task has the machine
    assert resources.threads(resources.shared_worker(auto)) == shared_threads
    big = settings_mod.load(overrides={"resources.task_memory_gb": 10_000})
    assert resources.tasks_per_worker(big.resources) == 1  # memory bounds it before the cores do
    fixed = settings_mod.load(overrides={"resources": {"threads": 3, "tasks_per_worker": 4, "heavy_slots": 12}})
    assert resources.threads(resources.shared_worker(fixed)) == 3 and resources.heavy_slots(fixed.resources) == 12
