"""RunSettings: one validated object for everything after detection."""

import json

import pytest

from pcnacycle.errors import PcnacycleError
from pcnacycle.settings import DEFAULT_PHASE_MINUTES, RunSettings, load_settings, parse_phase_minutes


def test_defaults_are_valid_and_round_trip_through_json(tmp_path):
    settings = RunSettings()
    assert settings.phase_minutes == DEFAULT_PHASE_MINUTES
    (tmp_path / "run.json").write_text(json.dumps({"frames": 3, "settings": settings.to_dict()}))
    assert load_settings(tmp_path / "run.json") == settings


def test_changes_merge_phase_minutes_and_are_validated():
    changed = RunSettings().replace(phase_minutes={"S": 300}, max_gap=4)
    assert changed.phase_minutes == {**DEFAULT_PHASE_MINUTES, "S": 300} and changed.max_gap == 4
    with pytest.raises(PcnacycleError, match="max_gap=-1"):
        RunSettings(max_gap=-1)
    with pytest.raises(PcnacycleError, match=r"merge_frames=1\.5"):
        RunSettings(merge_frames=1.5)
    with pytest.raises(PcnacycleError, match="class_prior_correction"):
        RunSettings(class_prior_correction=2.0)
    for share in (-0.1, 1.5, "a quarter"):
        with pytest.raises(PcnacycleError, match="min_area_share"):
            RunSettings(min_area_share=share)
    for level in (0.5, 1.0, 0.3):
        with pytest.raises(PcnacycleError, match=f"texture_min_confidence={level}"):
            RunSettings(texture_min_confidence=level)
    with pytest.raises(PcnacycleError, match="division_log_area"):
        RunSettings(division_log_area=(-0.9,))
    with pytest.raises(PcnacycleError, match="estimate_durations"):
        RunSettings(estimate_durations="yes")
    with pytest.raises(PcnacycleError, match=r"motion_persistence=1\.5"):
        RunSettings(motion_persistence=1.5)
    assert RunSettings(motion_persistence=0.5).motion_persistence == 0.5


def test_reaches_scale_with_the_nucleus_diameter_unless_pixels_are_given():
    assert RunSettings().distances(20.0) == (20.0, 30.0)
    assert RunSettings(max_distance=12.0, division_distance=0.0).distances(40.0) == (12.0, 0.0)
    with pytest.raises(PcnacycleError, match="diameter"):
        RunSettings().distances(None)


def test_yaml_files_with_numbers_yaml_reads_as_text(tmp_path):
    (tmp_path / "s.yaml").write_text("jump_probability: 1e-6\nmin_probability: 1e-4\n")
    settings = load_settings(tmp_path / "s.yaml", max_gap=5)
    assert settings.jump_probability == 1e-6 and settings.min_probability == 1e-4 and settings.max_gap == 5


@pytest.mark.parametrize("text", ["G1", "G1=fast", "G1=600;S=400"])
def test_phase_minutes_on_the_command_line_are_checked(text):
    with pytest.raises(PcnacycleError, match="PHASE=MINUTES"):
        parse_phase_minutes(text)
    assert parse_phase_minutes("G1=600, S=480") == {"G1": 600.0, "S": 480.0}
