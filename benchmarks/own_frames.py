"""How many of a user's own outlined frames a model needs on a real PCNA microscope (issue 12).

The README tells a user with a real movie to outline some of their own frames and fine-tune the recipe's
model on them. No real PCNA movie with phase annotations exists here, but Biolapse's two fields
(github.com/lebrat/Biolapse, MIT; see ``real_pcna.py``) have reference outlines. So this measures the
outline half of that advice, on another field than the one outlined:

1. ``k`` frames of Biolapse's ``Train`` field, evenly spread over its 30 frames, become a ``labelmask``
   folder (each connected region of the reference masks one nucleus, as ``real_pcna.py`` scores them);
2. the recipe's model is fine-tuned on them as ``DATASETS.NUCLEI_ONLY`` (outlines without phases), the
   recipe's simulated phase frames staying the phase dataset, so phases keep coming from the simulator;
3. ``real_pcna.py`` scores every fine-tuned model with no option given: segmentation F1 on the ``Test``
   field (never trained on; its dim nuclei are what the recipe's model misses) and on the ``Train``
   field (``k`` of its frames trained on, the others showing the same cells: what a user who outlines a
   few frames of a movie gets on that movie), and the tracked cells' phases against the person's marks.
   ``--outline-field Test`` swaps the fields' parts;
4. with ``--sim-test``, each fine-tuned model is also scored as ``transfer_recipe.py`` scores the recipe's
   (``pcnacycle evaluate`` on the 4 unseen randomised simulated movies' annotated frames): are the
   simulator's phases kept when real outlines are learnt?

The fine-tuning settings are fixed here before any result was seen, and are the same for every ``k``:
300 iterations (50 of warm-up) at half the recipe's learning rate, dropped tenfold at 240; the user's
frames are half the draws. ``k = 0`` is the recipe's model itself (``real_pcna.py --models recipe=...``).

Usage::

    OMP_NUM_THREADS=2 PYTHONPATH=src .venv/bin/python benchmarks/own_frames.py --out bench-out/own_frames \\
        --biolapse-git /work/.mirror/lebrat+Biolapse/repo/.git \\
        --recipe bench-out/transfer/stage3_with_nuclei_long --frames 3 10 25 \\
        --sim-test bench-out/transfer/sim_random_test/annotated
    # and the other way round: 3 frames of the Test field outlined, the Train field unseen
    ... benchmarks/own_frames.py (as above) --frames 3 --outline-field Test
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).parent))
from real_pcna import PCNACYCLE, extract, field  # noqa: E402
from real_pcna import main as score_real_pcna  # noqa: E402

from pcnacycle.config import load_config  # noqa: E402

FINE_TUNE = ["SOLVER.MAX_ITER", "300", "SOLVER.STEPS", "[240]", "SOLVER.WARMUP_ITERS", "50",
             "SOLVER.CHECKPOINT_PERIOD", "300", "DATASETS.NUCLEI_ONLY.FRACTION", "0.5", "TEST.EVAL_PERIOD", "-1"]


def outlined_frames(frames: np.ndarray, reference: np.ndarray, count: int, folder: Path) -> Path:
    """``count`` frames spread evenly over the field, as a ``labelmask`` folder of outlines without phases."""
    for sub in ("pcna", "labels"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for index in np.unique(np.linspace(0, len(frames) - 1, count).round().astype(int)):
        tifffile.imwrite(folder / "pcna" / f"frame_{index:03d}.tif", frames[index])
        tifffile.imwrite(folder / "labels" / f"frame_{index:03d}.tif", reference[index].astype(np.uint16))
    return folder


def fine_tune(recipe: Path, outlines: Path, output: Path) -> Path:
    """The recipe's model fine-tuned with ``outlines`` as its nuclei-only dataset (trained once; the seconds
    it took in ``train_seconds.txt`` beside it)."""
    if not (output / "model_final.pt").exists():
        started = time.time()
        recipe_lr = load_config(recipe / "config.yaml").SOLVER.BASE_LR
        subprocess.run([*PCNACYCLE, "train", "--config", str(recipe / "config.yaml"), "--output", str(output),
                        "MODEL.WEIGHTS", str(recipe / "model_final.pt"),
                        "SOLVER.BASE_LR", str(recipe_lr / 2),
                        "DATASETS.NUCLEI_ONLY.ROOT", str(outlines), "DATASETS.NUCLEI_ONLY.FORMAT", "labelmask",
                        "DATASETS.NUCLEI_ONLY.SPLIT_FILE", "", *FINE_TUNE], check=True)
        (output / "train_seconds.txt").write_text(f"{time.time() - started:.0f}\n")
    return output / "model_final.pt"


def sim_scores(model: Path, annotated: Path, output: Path) -> dict:
    """Segm AP50 (all, per class) and phase accuracy of matched nuclei on simulated annotated frames."""
    if not (output / "eval.json").exists():
        subprocess.run([*PCNACYCLE, "evaluate", "--quiet", "--config", str(model / "config.yaml"), "--weights",
                        str(model), "--split", "all", "--output", str(output), "DATASETS.ROOT", str(annotated)],
                       check=True)
    scores = json.loads((output / "eval.json").read_text())
    return {"segm_AP50": scores["segm"]["AP50"],
            "segm_AP50_per_class": {k: v["AP50"] for k, v in scores["segm"]["per_class"].items()},
            "phase_accuracy": scores["phase"]["report"]["phase accuracy"]["recall"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-out/own_frames"))
    parser.add_argument("--biolapse-git", type=Path, required=True, help="git directory of lebrat/Biolapse")
    parser.add_argument("--recipe", type=Path, required=True, help="the recipe's stage-3 training folder")
    parser.add_argument("--frames", type=int, nargs="+", default=[3, 10, 25])
    parser.add_argument("--outline-field", choices=["Train", "Test"], default="Train",
                        help="the field whose frames are outlined (the other one is never trained on)")
    parser.add_argument("--sim-test", type=Path, help="annotated simulated frames to score phases on")
    args = parser.parse_args(argv)
    folder = extract(args.biolapse_git, args.out / "biolapse")
    frames, reference = field(folder, args.outline_field)
    suffix = "" if args.outline_field == "Train" else "_test"
    models = []
    for count in args.frames:
        outlines = outlined_frames(frames, reference, count, args.out / f"outlines{suffix}_{count}")
        weights = fine_tune(args.recipe, outlines, args.out / f"model{suffix}_{count}")
        models.append(f"own{count}{suffix}={weights}")
    # real_pcna's own scoring, into the same folder, so the fields' movies are written once
    score_real_pcna(["--out", str(args.out), "--biolapse-git", str(args.biolapse_git), "--models", *models])
    if args.sim_test:
        scores = {}
        for name, weights in (pair.split("=", 1) for pair in models):
            scores[name] = sim_scores(Path(weights).parent, args.sim_test, args.out / "eval_sim" / name)
        (args.out / f"sim_test{suffix}.json").write_text(json.dumps(scores, indent=1))
        print(json.dumps(scores, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
