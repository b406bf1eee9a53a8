"""Per-nucleus intensity and texture statistics: simulated nuclei per phase beside real nuclei.

Every statistic is free of the image's scale and intensity units, so that a
22-px simulated nucleus and a 60-px confocal one can be compared:

- ``diameter``: equivalent diameter of the mask, px (the one statistic that keeps its unit);
- ``cv``: sd / mean of the background-subtracted pixels inside the eroded mask (texture strength);
- ``spots``: foci per nucleus, local maxima of a white top-hat at nucleus-relative scale
  (disk radius diameter/10 on an image smoothed by diameter/40) rising over 15 % of the nucleus mean;
- ``snr``: (nucleus mean − background) / background noise sd (background: median of the pixels
  outside the dilated masks and below the image's Otsu threshold; noise: the larger of their sd,
  robust sd (1.4826 MAD) and 0.5 grey levels);
- ``edge``: mean gradient magnitude on the mask boundary × diameter / nucleus mean (edge sharpness);
- ``spread`` (a second table, one value per image): sd of the log background-subtracted nucleus mean
  over the nuclei of one image or frame (how far nuclei differ in brightness side by side: PCNA
  expression between cells, and phase), with the ratio of its 95th to 5th percentile nucleus.

Sources: the simulator with its default look (per phase) and with ``--randomise`` draws (per
phase); DSB2018 stage1_train grey fluorescence images (nuclei brighter than the background) with
their masks; CTC Fluo-N2DH-GOWT1 02 with the 02_GT/SEG masks; and, when ``--pcnadeep-figure`` is
given, panel 1 of pcnaDeep's tutorial figure (see ``pcnadeep_panel``); with ``--biolapse``, the two
real PCNA fields of Biolapse as ``benchmarks/real_pcna.py`` extracts them (every frame, each connected
region of the reference masks one nucleus).

Usage: python benchmarks/texture_stats.py [--shared ../shared/data] [--dsb-images 40] [--movies 12]
       [--pcnadeep-figure cls_demo.png] [--biolapse bench-out/real_pcna/biolapse]
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import tifffile
from scipy import ndimage as ndi
from skimage import feature, filters, measure, morphology

from pcnacycle.simulation.params import SimulationParams
from pcnacycle.simulation.randomise import draw_params
from pcnacycle.simulation.simulator import simulate_movie

STATS = ("diameter", "cv", "spots", "snr", "edge")


def background_level(image: np.ndarray, masks: np.ndarray) -> tuple[float, float]:
    """Median and robust sd of background pixels: outside the dilated masks and below Otsu."""
    outside = ~ndi.binary_dilation(masks > 0, iterations=3)
    pixels = image[outside]
    pixels = pixels[pixels < filters.threshold_otsu(image)] if pixels.size else pixels
    if pixels.size < 100:
        pixels = image[outside] if outside.any() else image.ravel()
    median = float(np.median(pixels))
    # an 8-bit background that is mostly one grey level has a MAD of 0; its quantisation noise is not
    return median, max(1.4826 * float(np.median(np.abs(pixels - median))), float(pixels.std()), 0.5)


def nucleus_stats(image: np.ndarray, mask: np.ndarray, background: float, noise: float) -> dict | None:
    """The statistics of one nucleus (``mask`` bool, same shape as ``image``), or None if too small."""
    area = int(mask.sum())
    diameter = float(np.sqrt(4 * area / np.pi))
    if diameter < 6:
        return None
    box = ndi.find_objects(mask.astype(np.uint8))[0]
    pad = int(diameter // 4) + 2
    rows = slice(max(box[0].start - pad, 0), box[0].stop + pad)
    cols = slice(max(box[1].start - pad, 0), box[1].stop + pad)
    crop, inside = image[rows, cols] - background, mask[rows, cols]
    interior = ndi.binary_erosion(inside, iterations=max(1, int(diameter / 20)))
    if interior.sum() < 10:
        return None
    values = crop[interior]
    mean = float(values.mean())
    if mean <= 0:
        return None
    smooth = ndi.gaussian_filter(crop, max(0.5, diameter / 40))
    radius = max(1, round(diameter / 10))
    tophat = morphology.white_tophat(smooth, morphology.disk(radius))
    peaks = feature.peak_local_max(np.where(interior, tophat, 0), min_distance=max(1, radius // 2),
                                   threshold_abs=0.15 * mean, exclude_border=False)
    boundary = inside & ~ndi.binary_erosion(inside)
    gradient = filters.sobel(ndi.gaussian_filter(crop, 0.5))
    return {"diameter": diameter, "cv": float(values.std() / mean), "spots": len(peaks),
            "snr": mean / noise, "edge": float(gradient[boundary].mean() * diameter / mean), "level": mean}


#: Numbers the images label_stats reads, so that a spread is taken over one image's nuclei.
_IMAGE_IDS = itertools.count()


def label_stats(image: np.ndarray, labels: np.ndarray, keys: dict | None = None) -> list[dict]:
    """Statistics of every labelled nucleus of one image; ``keys`` maps a label to extra columns.

    Each row also holds ``image``, a number shared by the nuclei of this image (for ``spread``)."""
    image = image.astype(np.float64)
    background, noise = background_level(image, labels)
    rows, image_id = [], next(_IMAGE_IDS)
    for region in measure.regionprops(labels):
        stats = nucleus_stats(image, labels == region.label, background, noise)
        if stats is not None:
            rows.append({**(keys or {}).get(region.label, {}), **stats, "image": image_id})
    return rows



def simulated_rows(movies: int, randomise: bool) -> list[dict]:
    """Nuclei of simulated movies (12 frames 50 minutes apart), every 3rd frame, with their phase."""
    rows = []
    source = "simulated, randomised" if randomise else "simulated, default"
    for seed in range(movies):
        params = SimulationParams(frames=12, size=(384, 384), cells=40, seed=200 + seed, frame_interval=50.0)
        if randomise:
            params, _ = draw_params(params)
        movie = simulate_movie(params, progress=False)
        phases = movie.objects.set_index(["frame", "track"])["phase"]
        for t in range(0, movie.params.frames, 3):
            keys = {int(track): {"source": source, "phase": phases[(t, int(track))]}
                    for track in np.unique(movie.labels[t])[1:]}
            rows += label_stats(movie.pcna[t], movie.labels[t], keys)
    return rows


def dsb_rows(root: Path, images: int, rng: np.random.Generator) -> list[dict]:
    """Nuclei of grey fluorescence DSB2018 images (nuclei brighter than their background)."""
    rows, folders = [], sorted(p for p in root.iterdir() if p.is_dir())
    for folder in rng.permutation(folders):
        if images == 0:
            break
        image = iio.imread(folder / "images" / f"{folder.name}.png")
        if image.ndim == 3:
            if not (np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2])):
                continue  # colour (histology)
            image = image[..., 0]
        labels = np.zeros(image.shape, np.int32)
        for k, path in enumerate(sorted((folder / "masks").glob("*.png"))):
            labels[iio.imread(path) > 0] = k + 1
        if labels.max() == 0 or np.median(image[labels > 0]) <= np.median(image[labels == 0]):
            continue  # brightfield: dark nuclei
        images -= 1
        keys = {k: {"source": "DSB2018 fluorescence", "phase": "all"} for k in range(1, labels.max() + 1)}
        rows += label_stats(image, labels, keys)
    return rows


def gowt1_rows(folder: Path) -> list[dict]:
    """Nuclei of CTC Fluo-N2DH-GOWT1 02 that 02_GT/SEG outlines."""
    rows = []
    for path in sorted((folder.parent / f"{folder.name}_GT" / "SEG").glob("man_seg*.tif")):
        labels = tifffile.imread(path).astype(np.int32)
        image = tifffile.imread(folder / f"t{path.stem[len('man_seg'):]}.tif")
        keys = {int(k): {"source": "GOWT1 02 (confocal)", "phase": "all"} for k in np.unique(labels)[1:]}
        rows += label_stats(image, labels, keys)
    return rows


def biolapse_rows(folder: Path) -> list[dict]:
    """Nuclei of Biolapse's two real PCNA fields (``real_pcna.py``'s extraction), every frame."""
    rows = []
    for field in ("Train", "Test"):
        where = folder / "segmentation" / "Data" / field / "Original"
        for path in sorted((where / "images").glob("*.png")):
            image, mask = iio.imread(path), iio.imread(where / "masks" / path.name)
            labels = measure.label((mask[..., 0] if mask.ndim == 3 else mask) > 0)
            keys = {k: {"source": f"Biolapse PCNA, {field.lower()} field", "phase": "all"}
                    for k in range(1, labels.max() + 1)}
            rows += label_stats(image[..., 0] if image.ndim == 3 else image, labels, keys)
    return rows


#: Panel 1 of pcnaDeep's tutorial/assets/cls_demo.png (github.com/Jeff-Gui/PCNAdeep, commit ed4effc): rows,
#: columns of the panel in the 1958 × 827 figure, and the phase each outlined nucleus is labelled with
#: there, read off the figure by its centroid (row, col) inside the panel.
_PANEL = (slice(0, 520), slice(0, 588))


def pcnadeep_panel_labels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Panel 1 of pcnaDeep's tutorial figure as a grey image and nucleus labels, both (H, W).

    Each closed yellow outline drawn on the figure becomes the convex hull of the outline, less
    the outline itself and the dark text boxes of its labels (its largest piece); nuclei cut by
    the panel's edge are left out.
    """
    figure = iio.imread(path)[_PANEL[0], _PANEL[1], :3].astype(np.int32)
    red, green, blue = figure[..., 0], figure[..., 1], figure[..., 2]
    yellow = measure.label((red > 120) & (green > 120) & (blue < 100))
    sizes = np.bincount(yellow.ravel())
    sizes[0] = 0
    outlines = np.flatnonzero(sizes >= 150)
    # the labels' letters are small yellow parts; their dark boxes reach about 10 px around them
    text = ndi.binary_dilation((yellow > 0) & ~np.isin(yellow, outlines), iterations=10)
    drawn = ndi.binary_dilation(yellow > 0, iterations=2) | text
    labels = np.zeros(yellow.shape, np.int32)
    for index, outline in enumerate(outlines):
        region = measure.regionprops((yellow == outline).astype(np.uint8))[0]
        r0, c0, r1, c1 = region.bbox
        hull = np.zeros(yellow.shape, bool)
        hull[r0:r1, c0:c1] = morphology.convex_hull_image(region.image)
        pieces = measure.label(hull & ~drawn)
        if pieces.max():
            largest = np.argmax(np.bincount(pieces.ravel())[1:]) + 1
            labels[pieces == largest] = index + 1
    grey = np.where((yellow > 0)[..., None], 0, figure).mean(axis=2)
    # nuclei cut by the panel's frame (about 12 px wide on the left) or too small to be whole
    for region in measure.regionprops(labels):
        r0, c0, r1, c1 = region.bbox
        if region.area < 400 or min(r0, c0) < 15 or r1 > labels.shape[0] - 15 or c1 > labels.shape[1] - 15:
            labels[labels == region.label] = 0
    return grey, measure.label(labels > 0)


def pcnadeep_panel(path: Path) -> list[dict]:
    """Nuclei of panel 1 of pcnaDeep's tutorial figure, with the phase the figure labels them with.

    The figure is a display-scaled 8-bit RGB rendering (S foci saturated, outlines and text boxes
    drawn on it), so its statistics are only indicative. The figure labels each nucleus S or
    G1/G2; here a nucleus is S when over 10 % of its pixels are saturated, which agrees with the
    figure's label for every nucleus kept (checked by eye on an overlay).
    """
    grey, labels = pcnadeep_panel_labels(path)
    keys = {label: {"source": "pcnaDeep figure (PCNA, display-scaled)", "phase": phase}
            for label, phase in pcnadeep_panel_phases(grey, labels).items()}
    return label_stats(grey, labels, keys)


def pcnadeep_panel_phases(grey: np.ndarray, labels: np.ndarray) -> dict[int, str]:
    """The figure's phase of each nucleus: S when over 10 % of its pixels are saturated, else G1/G2."""
    return {region.label: "S" if (grey[labels == region.label] >= 250).mean() > 0.10 else "G1/G2"
            for region in measure.regionprops(labels)}


def summary(rows: list[dict]) -> pd.DataFrame:
    """Median [25th–75th percentile] of each statistic per source and phase, with counts."""
    table = pd.DataFrame(rows)
    out = []
    for (source, phase), group in table.groupby(["source", "phase"], sort=False):
        row = {"source": source, "phase": phase, "nuclei": len(group)}
        for stat in STATS:
            q25, q50, q75 = np.percentile(group[stat], [25, 50, 75])
            digits = 0 if stat in ("diameter", "spots", "snr") else 2
            row[stat] = f"{q50:.{digits}f} [{q25:.{digits}f}–{q75:.{digits}f}]"
        out.append(row)
    return pd.DataFrame(out)


def spread_summary(rows: list[dict], least: int = 5) -> pd.DataFrame:
    """Per source, over its images with at least ``least`` nuclei: median [quartiles] and largest sd of the
    log nucleus level within an image, and the median ratio of an image's 95th to 5th percentile nucleus."""
    table = pd.DataFrame(rows)
    out = []
    for source, group in table.groupby("source", sort=False):
        per_image = [(np.log(g["level"]).std(), np.percentile(g["level"], 95) / np.percentile(g["level"], 5))
                     for _, g in group.groupby("image") if len(g) >= least]
        if not per_image:
            continue
        sd, ratio = np.array(per_image).T
        q25, q50, q75 = np.percentile(sd, [25, 50, 75])
        out.append({"source": source, "images": len(sd), "spread (log sd)": f"{q50:.2f} [{q25:.2f}–{q75:.2f}]",
                    "largest": f"{sd.max():.2f}", "95th / 5th percentile nucleus": f"{np.median(ratio):.1f}"})
    return pd.DataFrame(out)


def markdown(table: pd.DataFrame) -> str:
    """A pipe table of ``table``'s rows."""
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--dsb-images", type=int, default=40, help="grey fluorescence DSB2018 images to sample")
    parser.add_argument("--movies", type=int, default=12, help="simulated movies of each kind")
    parser.add_argument("--pcnadeep-figure", type=Path, help="pcnaDeep's tutorial/assets/cls_demo.png")
    parser.add_argument("--biolapse", type=Path, help="Biolapse's fields as real_pcna.py extracts them")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = simulated_rows(args.movies, randomise=False) + simulated_rows(args.movies, randomise=True)
    rows += dsb_rows(args.shared / "dsb2018" / "stage1_train", args.dsb_images, np.random.default_rng(0))
    rows += gowt1_rows(args.shared / "ctc" / "Fluo-N2DH-GOWT1" / "02")
    if args.pcnadeep_figure:
        rows += pcnadeep_panel(args.pcnadeep_figure)
    if args.biolapse:
        rows += biolapse_rows(args.biolapse)
    print(markdown(summary(rows)))
    print()
    print(markdown(spread_summary(rows)))
    print(f"\n{len(rows)} nuclei in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
