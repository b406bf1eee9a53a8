import pytest

from pcnacycle.config import dump_config, load_config, parse_value
from pcnacycle.errors import PcnacycleError


def test_shipped_report_config_has_the_reports_settings():
    cfg = load_config("stage1_dsb2018")
    s = cfg.SOLVER
    assert (s.IMS_PER_BATCH, s.BASE_LR, s.WEIGHT_DECAY, s.WEIGHT_DECAY_NORM, s.GAMMA) == (2, 0.01, 0.0001, 0.0, 0.1)
    assert (s.STEPS, s.MAX_ITER) == ([1000], 3000)
    assert cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE == 256 and cfg.MODEL.ROI_HEADS.NUM_CLASSES == 1
    assert cfg.MODEL.RESNETS.DEPTH == 101 and cfg.DATASETS.VAL_SIZE == 100
    assert cfg.INPUT.RANDOM_FLIP == "none" and not cfg.INPUT.CROP.ENABLED


def test_cpu_profile_inherits_the_report_and_lightens_the_model():
    cfg = load_config("stage1_dsb2018_cpu")
    assert cfg.MODEL.RESNETS.DEPTH == 18
    assert cfg.SOLVER.WEIGHT_DECAY_NORM == 0.0 and cfg.DATASETS.VAL_SIZE == 100  # from _BASE_


def test_overrides_are_parsed_as_yaml_and_python_tuples():
    cfg = load_config(None, ["SOLVER.STEPS", "(1000,)", "SOLVER.MAX_ITER", "2000", "SOLVER.BASE_LR", "1",
                             "MODEL.CLASS_NAMES", "[G1/G2, S, M]", "MODEL.ROI_HEADS.NUM_CLASSES", "3"])
    assert cfg.SOLVER.STEPS == [1000] and cfg.SOLVER.MAX_ITER == 2000
    assert cfg.SOLVER.BASE_LR == 1.0 and isinstance(cfg.SOLVER.BASE_LR, float)
    assert cfg.MODEL.CLASS_NAMES == ["G1/G2", "S", "M"]
    assert parse_value("[1000]") == [1000]


@pytest.mark.parametrize("overrides, named", [
    (["SOLVER.BASE_RATE", "0.1"], "SOLVER.BASE_RATE"),
    (["SOLVER.BASE_LR", "fast"], "SOLVER.BASE_LR"),
    (["SOLVER.BASE_LR", "-1"], "SOLVER.BASE_LR"),
    (["SOLVER.MAX_ITER", "10.5"], "SOLVER.MAX_ITER"),
    (["MODEL.RESNETS.DEPTH", "42"], "MODEL.RESNETS.DEPTH"),
    (["MODEL.ROI_HEADS.NUM_CLASSES", "3"], "MODEL.CLASS_NAMES"),
    (["SOLVER.STEPS", "[2000, 1000]"], "SOLVER.STEPS"),
    (["SOLVER", "1"], "SOLVER"),
    (["INPUT.CROP.SIZE", "[1.5, 0.9]"], "INPUT.CROP.SIZE"),
    (["SOLVER.MAX_ITER"], "KEY VALUE"),
    (["MODEL.ROI_HEADS.CLASS_LOSS_WEIGHTS", "[1.0, 4.0]"], "MODEL.ROI_HEADS.CLASS_LOSS_WEIGHTS"),  # 1 class
    (["MODEL.ROI_HEADS.CLASS_LOSS_WEIGHTS", "[0]"], "MODEL.ROI_HEADS.CLASS_LOSS_WEIGHTS"),
])
def test_bad_keys_and_values_are_rejected_by_name(overrides, named):
    with pytest.raises(PcnacycleError, match=named.replace(".", r"\.")):
        load_config(None, overrides)


def test_yaml_file_errors_name_the_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("SOLVER:\n  BASE_LRR: 0.1\n")
    with pytest.raises(PcnacycleError, match=r"SOLVER\.BASE_LRR.*bad\.yaml"):
        load_config(bad)
    with pytest.raises(PcnacycleError, match="no such config"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(PcnacycleError, match="mapping"):
        load_config(tmp_path / "list.yaml")


def test_base_chain_and_relative_paths(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "base.yaml").write_text("SOLVER: {MAX_ITER: 77, STEPS: [50], BASE_LR: 0.5}\nDATASETS: {ROOT: data}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "child.yaml").write_text("_BASE_: ../base.yaml\nSOLVER: {BASE_LR: 0.25}\n")
    cfg = load_config(tmp_path / "sub" / "child.yaml", ["SOLVER.MAX_ITER", "78"])
    assert cfg.SOLVER.BASE_LR == 0.25 and cfg.SOLVER.MAX_ITER == 78
    assert cfg.DATASETS.ROOT == str((tmp_path / "data").resolve())


def test_dumped_config_loads_back_identically(tmp_path):
    cfg = load_config("stage1_dsb2018_cpu", ["SOLVER.STEPS", "[10, 20]"])
    (tmp_path / "c.yaml").write_text(dump_config(cfg))
    assert load_config(tmp_path / "c.yaml") == cfg


@pytest.mark.parametrize("name", ["stage1_dsb2018", "stage1_dsb2018_cpu", "stage2_deepcell", "stage2_deepcell_cpu",
                                  "stage3_pcna", "stage3_pcna_cpu", "stage3_real_cpu"])
def test_every_shipped_config_loads_and_builds(name):
    from pcnacycle.modeling.model import build_model

    cfg = load_config(name)
    model = build_model(cfg)
    assert model.backbone.body.conv1.in_channels == len(cfg.INPUT.CHANNELS)
    assert model.roi_heads.box_predictor.cls_score.out_features == cfg.MODEL.ROI_HEADS.NUM_CLASSES + 1


def test_the_real_movie_stage3_takes_the_whole_stage1_cpu_model_but_its_class_predictors():
    from pcnacycle.modeling.model import build_model

    stage1 = build_model(load_config("stage1_dsb2018_cpu")).state_dict()
    stage3 = build_model(load_config("stage3_real_cpu")).state_dict()
    differ = {k for k in stage1 if stage1[k].shape != stage3[k].shape}
    assert stage1.keys() == stage3.keys()
    assert differ and all(k.startswith("roi_heads.") and "predictor" in k for k in differ)


def test_stage_configs_carry_the_reports_solver_lines():
    stage2, stage3 = load_config("stage2_deepcell"), load_config("stage3_pcna")
    assert (stage2.SOLVER.IMS_PER_BATCH, stage2.SOLVER.BASE_LR, stage2.SOLVER.STEPS, stage2.SOLVER.MAX_ITER) == \
        (16, 0.001, [1000], 1800)
    assert stage2.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE == 256 and stage2.DATASETS.FORMAT == "deepcell"
    assert (stage3.SOLVER.IMS_PER_BATCH, stage3.SOLVER.BASE_LR, stage3.SOLVER.STEPS, stage3.SOLVER.MAX_ITER) == \
        (1, 0.001, [6000], 10000)
    assert stage3.MODEL.ROI_HEADS.NUM_CLASSES == 3 and stage3.INPUT.CHANNELS == ["pcna", "dic", "otsu"]
    assert (stage3.INPUT.MIN_SIZE_TRAIN, stage3.INPUT.MAX_SIZE_TRAIN, stage3.INPUT.MIN_SIZE_TRAIN_SAMPLING) == \
        ([1000], 1200, "choice")
    assert stage3.INPUT.CROP.ENABLED and stage3.INPUT.CROP.TYPE == "relative" and stage3.INPUT.CROP.SIZE == [0.9, 0.9]


def test_paths_given_on_the_command_line_are_saved_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["DATASETS.ROOT", "data/stage1_train", "MODEL.WEIGHTS", "runs/a/model_final.pt"])
    assert cfg.DATASETS.ROOT == str(tmp_path / "data" / "stage1_train")
    assert cfg.MODEL.WEIGHTS == str(tmp_path / "runs" / "a" / "model_final.pt")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(dump_config(cfg))
    assert load_config(tmp_path / "run" / "config.yaml").DATASETS.ROOT == cfg.DATASETS.ROOT


def test_numbers_written_without_a_dot_are_numbers(tmp_path):
    # PyYAML reads 1e-3 as the string "1e-3"; it is still the number anyone typing it means
    assert load_config(None, ["SOLVER.BASE_LR", "1e-3"]).SOLVER.BASE_LR == 0.001
    (tmp_path / "c.yaml").write_text("SOLVER:\n  BASE_LR: 1e-3\n  MAX_ITER: 2e3\n  STEPS: [1e3]\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.MAX_ITER, cfg.SOLVER.STEPS) == (0.001, 2000, [1000])
    assert isinstance(cfg.SOLVER.MAX_ITER, int)
    with pytest.raises(PcnacycleError, match=r"SOLVER\.MAX_ITER.*an integer.*'1\.5e3x'"):
        load_config(None, ["SOLVER.MAX_ITER", "1.5e3x"])
    with pytest.raises(PcnacycleError, match=r"SOLVER\.BASE_LR.*finite"):
        load_config(None, ["SOLVER.BASE_LR", ".nan"])


def test_a_key_given_twice_is_refused_naming_it_and_its_lines(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("SOLVER:\n  MAX_ITER: 2\n  STEPS: [1]\nMODEL:\n  DEVICE: cpu\nSOLVER:\n  BASE_LR: 0.1\n")
    with pytest.raises(PcnacycleError, match=r"twice\.yaml: key 'SOLVER' is given twice \(lines 1 and 6\)"):
        load_config(path)
    path.write_text("SOLVER:\n  MAX_ITER: 2\n  MAX_ITER: 40000\n")
    with pytest.raises(PcnacycleError, match="'MAX_ITER' is given twice"):
        load_config(path)


def test_steps_after_the_last_iteration_are_refused_naming_the_step():
    with pytest.raises(PcnacycleError, match=r"SOLVER\.STEPS.*step 500 .*SOLVER\.MAX_ITER 100"):
        load_config(None, ["SOLVER.MAX_ITER", "100", "SOLVER.STEPS", "[50, 500]"])
    assert load_config(None, ["SOLVER.MAX_ITER", "100", "SOLVER.STEPS", "[99]"]).SOLVER.STEPS == [99]


def test_evaluation_period_minus_one_means_never_and_below_is_refused():
    assert load_config(None, ["TEST.EVAL_PERIOD", "-1"]).TEST.EVAL_PERIOD == -1
    with pytest.raises(PcnacycleError, match="TEST.EVAL_PERIOD"):
        load_config(None, ["TEST.EVAL_PERIOD", "-2"])


def test_binary_and_malformed_config_files_are_one_line_errors(tmp_path):
    (tmp_path / "model.pt").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "nul.yaml").write_bytes(b"SOLVER:\x00\n")
    (tmp_path / "broken.yaml").write_text("SOLVER: [1,\n  MAX_ITER: 2\n")
    for name, fragment in [("model.pt", "not a text file"), ("nul.yaml", "not a text file"),
                           ("broken.yaml", "not valid YAML")]:
        with pytest.raises(PcnacycleError, match=fragment) as caught:
            load_config(tmp_path / name)
        assert str(caught.value).startswith(str(tmp_path / name)) and "\n" not in str(caught.value)
