"""Copy a ``phase_durations.py --out`` folder's runs with each nucleus' texture measured again.

A change to :func:`pcnacycle.tracking.detections.nuclear_texture` measured on the same detections, without
running the model again: each run's ``masks.tif`` (labelled by track) and its movie's ``pcna.tif`` give
``texture_pcna`` anew (``--rim``: the edge layers left out; default today's), written to ``DST/runs``;
``DST/movies`` links to ``SRC/movies``. Then ``phase_durations.py --resolve-again DST`` tracks and resolves
them again.

Usage (from the repository root)::

    PYTHONPATH=src .venv/bin/python benchmarks/remeasure_texture.py SRC DST [--rim 1]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from pcnacycle.tracking.detections import TEXTURE_RIM, nuclear_texture


def remeasure(run: Path, movie: Path, out: Path, rim: int) -> None:
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(run, out)
    masks, pcna = tifffile.imread(out / "masks.tif"), tifffile.imread(movie / "pcna.tif")
    objects = pd.read_csv(out / "objects.csv")
    texture = np.full(len(objects), np.nan)
    for frame, rows in objects.groupby("frame").groups.items():
        texture[objects.index.get_indexer(rows)] = nuclear_texture(
            masks[frame], pcna[frame], objects.loc[rows, "track"].to_numpy(), rim=rim)
    objects["texture_pcna"] = texture
    objects.to_csv(out / "objects.csv", index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src", type=Path, help="a phase_durations.py --out folder with runs/ and movies/")
    parser.add_argument("dst", type=Path)
    parser.add_argument("--rim", type=int, default=TEXTURE_RIM, help="edge layers left out (default %(default)s)")
    args = parser.parse_args()
    (args.dst / "runs").mkdir(parents=True, exist_ok=True)
    if not (args.dst / "movies").exists():
        (args.dst / "movies").symlink_to((args.src / "movies").resolve())
    for run in sorted((args.src / "runs").iterdir()):
        remeasure(run, args.src / "movies" / run.name, args.dst / "runs" / run.name, args.rim)
        print(run.name, "measured again with rim", args.rim)


if __name__ == "__main__":
    main()
