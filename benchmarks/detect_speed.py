"""Detection seconds per 1200×1200 frame on the CPU, for each backbone.

Times `pcnacycle.engine.predictor.predict_image` (tiling, mask pasting, overlap resolution included) on a simulated
1200×1200 PCNA frame. Models are freshly initialised unless --weights DEPTH=PATH is given: speed depends
on the architecture and the image size, and (through the mask head) on the number of detections, which
`TEST.DETECTIONS_PER_IMAGE` caps.

Usage: .venv/bin/python benchmarks/detect_speed.py [--repeats 3] [--threads N]
"""

import argparse
import platform
import time

import numpy as np
import torch

from pcnacycle.config import load_config
from pcnacycle.data.dataset import compose_channels
from pcnacycle.engine.predictor import predict_image
from pcnacycle.modeling.model import build_model
from pcnacycle.simulation.params import SimulationParams
from pcnacycle.simulation.simulator import simulate_movie

PROFILES = {  # name: (shipped config, overrides)
    "R18-FPN (stage1_dsb2018_cpu)": ("stage1_dsb2018_cpu", []),
    "R50-FPN (stage1_dsb2018, DEPTH 50)": ("stage1_dsb2018", ["MODEL.RESNETS.DEPTH", "50"]),
    "R101-FPN (stage1_dsb2018)": ("stage1_dsb2018", []),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    movie = simulate_movie(SimulationParams(frames=1, size=(1200, 1200), cells=250, seed=7))
    print(f"# {time.strftime('%Y-%m-%d')} {platform.platform()} {platform.processor() or ''} "
          f"threads={args.threads} torch={torch.__version__}")
    for name, (config, overrides) in PROFILES.items():
        cfg = load_config(config, overrides + ["MODEL.DEVICE", "cpu"])
        model = build_model(cfg).eval()
        image = compose_channels({"gray": movie.pcna[0]}, cfg.INPUT.CHANNELS, cfg)
        predict_image(model, image, cfg)  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = predict_image(model, image, cfg)
            times.append(time.perf_counter() - start)
        print(f"{name:38s} input scale {'native' if cfg.INPUT.MIN_SIZE_TEST == 0 else cfg.INPUT.MIN_SIZE_TEST}: "
              f"{np.median(times):6.2f} s/frame (median of {args.repeats}; {len(result['scores'])} objects)")


if __name__ == "__main__":
    main()
