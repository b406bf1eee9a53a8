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
    import pcnacycle.engine.trainer  # noqa: F401  (a submodule import must not shadow the function)
    import pcnacycle.evaluation.evaluator  # noqa: F401
    from pcnacycle import Predictor, RunSettings, evaluate, load_config, run, simulate, train

    assert callable(train) and train.__module__ == "pcnacycle.engine.trainer"
    assert pcnacycle.train is train and load_config.__module__ == "pcnacycle.config"
    assert evaluate.__module__ == "pcnacycle.evaluation.evaluator" and pcnacycle.evaluate is evaluate
    assert run.__module__ == "pcnacycle.pipeline" and simulate.__module__ == "pcnacycle.simulation.simulator"
    assert RunSettings().max_gap == 2 and Predictor.__module__ == "pcnacycle.engine.predictor"


def test_no_function_shares_its_module_name():
    """``pcnacycle.train`` was once both a module and a function; no public function may be named after its module."""
    import importlib
    import pkgutil

    import pcnacycle

    clashes = []
    for info in pkgutil.walk_packages(pcnacycle.__path__, "pcnacycle."):
        if info.name.endswith("__main__"):  # importing it would run the command line
            continue
        module = importlib.import_module(info.name)
        short = info.name.rsplit(".", 1)[-1]
        if callable(getattr(module, short, None)):
            clashes.append(info.name)
    assert clashes == []


def test_options_may_follow_the_config_overrides():
    from pcnacycle.cli import build_parser

    args = build_parser().parse_args(["train", "--config", "c", "DATASETS.ROOT", "x", "SOLVER.BASE_LR", "-0.1",
                                      "--output", "y", "--resume"])
    assert args.opts == ["DATASETS.ROOT", "x", "SOLVER.BASE_LR", "-0.1"] and args.output == "y" and args.resume


def test_the_version_has_one_source(capsys):
    import re
    from pathlib import Path

    import pcnacycle
    from pcnacycle.cli import main

    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    project = pyproject.split("\n[project]\n")[1].split("\n[")[0]
    assert not re.search(r"^version\s*=", project, re.M) and '"version"' in project  # dynamic, no second copy
    assert re.search(r'^version = \{ attr = "pcnacycle.__version__" \}', pyproject, re.M)
    try:
        main(["--version"])
    except SystemExit:
        pass
    assert capsys.readouterr().out.strip() == f"pcnacycle {pcnacycle.__version__}"
