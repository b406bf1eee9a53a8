"""Pack DSB2018 stage1_train (one PNG per nucleus) into a compact labelmask dataset.

The 189 MB of per-nucleus PNGs become one grey image and one uint16 label
image per sample (zlib-compressed TIFFs, about a fifth of the size), so the
dataset fits in what travels to a GPU lease. Names are kept, so
``DATASETS.SPLIT_SEED`` draws the same validation images from both layouts.
Grey is the dsb2018 reader's mean of the colour channels, rounded to uint8
(at most half a grey level from what that reader gives the model).

    python benchmarks/pack_dsb2018.py ../shared/data/dsb2018/stage1_train gpu_tmp/dsb_lm
"""

import argparse
from pathlib import Path

import numpy as np
import tifffile
from skimage import io


def pack(source: Path, target: Path) -> int:
    (target / "gray").mkdir(parents=True, exist_ok=True)
    (target / "labels").mkdir(parents=True, exist_ok=True)
    count = 0
    for sample in sorted(p for p in source.iterdir() if p.is_dir()):
        image = io.imread(next((sample / "images").glob("*.png")))
        grey = image[..., :3].mean(axis=-1) if image.ndim == 3 else image.astype(float)
        labels = np.zeros(grey.shape, np.uint16)
        for index, mask_file in enumerate(sorted((sample / "masks").glob("*.png")), start=1):
            labels[io.imread(mask_file) > 0] = index
        tifffile.imwrite(target / "gray" / f"{sample.name}.tif", np.round(grey).astype(np.uint8), compression="zlib")
        tifffile.imwrite(target / "labels" / f"{sample.name}.tif", labels, compression="zlib")
        count += 1
    return count


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args()
    print(pack(args.source, args.target), "samples packed into", args.target)
