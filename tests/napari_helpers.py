"""A hand-built run folder for the napari plugin's tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from pcnacycle.settings import RunSettings

#: Tiny run: track 1 (frames 0-2) divides into tracks 2 and 3 (frames 3-5); track 4 is alone throughout.
PHASES = {1: ["G1", "S", "G2"], 2: ["M", "G1", "G1"], 3: ["M", "G1", "S"], 4: ["S", "S", "G2", "G2", "M", "M"]}
CENTRES = {1: (8, 8), 2: (6, 20), 3: (20, 6), 4: (24, 24)}
CLASSES = ["G1/G2", "S", "M"]


def make_run(folder: Path, movie_name: str = "movie.tif", with_dic: bool = False) -> Path:
    """A hand-built run folder (masks.tif, objects.csv, run.json) and its movie beside it.

    Each track is a 5×5 square at :data:`CENTRES`; the movie is the masks' track ids × 100.
    """
    frames, size = 6, (32, 32)
    masks = np.zeros((frames,) + size, np.uint16)
    rows = []
    for track, phases in PHASES.items():
        first = 3 if track in (2, 3) else 0
        parent = 1 if track in (2, 3) else 0
        y, x = CENTRES[track]
        for offset, phase in enumerate(phases):
            t = first + offset
            masks[t, y - 2:y + 3, x - 2:x + 3] = track
            predicted = "G1/G2" if phase in ("G1", "G2") else phase
            rows.append({"frame": t, "track": track, "parent": parent, "label": track, "centroid_y": float(y),
                         "centroid_x": float(x), "area": 25, "mean_pcna": 100.0, "score": 0.99,
                         **{f"p_{c}": 0.9 if c == predicted else 0.05 for c in CLASSES},
                         "predicted_phase": predicted, "phase": phase})
    run = folder / "run"
    run.mkdir(parents=True)
    tifffile.imwrite(run / "masks.tif", masks)
    pd.DataFrame(rows).sort_values(["frame", "track"]).to_csv(run / "objects.csv", index=False)
    tifffile.imwrite(folder / movie_name, masks.astype(np.float32) * 100)
    info = {"pcna": str(folder / movie_name), "dic": None, "frame_interval": 10.0, "frames": frames,
            "class_names": CLASSES, "phases_resolved": True, "settings": RunSettings().to_dict(),
            "outputs": ["masks.tif", "objects.csv", "run.json"]}
    if with_dic:
        tifffile.imwrite(folder / "dic.tif", np.ones_like(masks, np.float32))
        info["dic"] = str(folder / "dic.tif")
    (run / "run.json").write_text(json.dumps(info))
    return run
