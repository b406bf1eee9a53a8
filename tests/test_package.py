"""The package's top level: light to import, names that are what they say."""

import subprocess
import sys


def test_import_and_help_do_not_load_torch():
    code = ("import sys, pcnacycle, pcnacycle.cli\n"
            "try:\n    pcnacycle.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_api_names_are_the_functions_even_after_their_modules_are_imported():
    import pcnacycle.train  # binds the submodule to the package's attribute "train"
    from pcnacycle import RunSettings, load_config, train

    assert callable(train) and train.__module__ == "pcnacycle.train"
    assert pcnacycle.train is train and load_config.__module__ == "pcnacycle.config"
    assert RunSettings().max_gap == 2


def test_options_may_follow_the_config_overrides():
    from pcnacycle.cli import build_parser

    args = build_parser().parse_args(["train", "--config", "c", "DATASETS.ROOT", "x", "SOLVER.BASE_LR", "-0.1",
                                      "--output", "y", "--resume"])
    assert args.opts == ["DATASETS.ROOT", "x", "SOLVER.BASE_LR", "-0.1"] and args.output == "y" and args.resume
