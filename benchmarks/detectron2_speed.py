"""CPU seconds per 1200×1200 frame: detectron2 itself against pcnacycle, at the same weights (issue 10, item 3).

detectron2's own Mask R-CNN (R50-FPN, its ``mask_rcnn_R_50_FPN_3x.yaml``,
4 classes, 3 input channels as pcnaDeep's models) is built with the seeded
random weights of ``benchmarks/detectron2_parity.py``, converted with
``pcnacycle.modeling.convert_weights``, and both run on the same input: a
simulated 1200×1200 PCNA frame (250 cells), each given the frame at its own
size (detectron2's test resize and pcnacycle's switched off), eval mode,
no gradients. The parity benchmark shows the two compute the same
detections from the same weights, so equal speed means equal accuracy.

Timed: detectron2 ``model([{"image": ...}])`` (its masks pasted into the
frame) and :meth:`pcnacycle.Predictor.predict` on the converted weights
(label image, boxes, scores, class probabilities), whose model runs in
channels-last memory format on a CPU; then the same Predictor with the
model in the default (contiguous) layout. detectron2 is never a dependency: put its
source and its pure-Python dependencies on PYTHONPATH (see
``benchmarks/detectron2_parity.py``).

Usage::

    OMP_NUM_THREADS=2 PYTHONPATH=src:/work/ext/detectron2:/work/ext/d2deps .venv/bin/python \\
        benchmarks/detectron2_speed.py --detectron2 /work/ext/detectron2 [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from detectron2_parity import CLASSES, _commit, build_detectron2  # noqa: E402

from pcnacycle.engine.predictor import Predictor  # noqa: E402
from pcnacycle.modeling.convert_weights import SourceLayout, convert_detectron2  # noqa: E402
from pcnacycle.simulation.params import SimulationParams  # noqa: E402
from pcnacycle.simulation.simulator import simulate_movie  # noqa: E402


def median_seconds(call, repeats: int) -> tuple[float, object]:
    call()  # warm-up
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return float(np.median(times)), result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectron2", type=Path, required=True)
    parser.add_argument("--config", default="COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    frame = simulate_movie(SimulationParams(frames=1, size=(1200, 1200), cells=250, seed=7)).pcna[0]
    gray = (frame - frame.min()) / max(float(np.ptp(frame)), 1e-6)
    d2_model, d2_cfg = build_detectron2(args.detectron2, args.config, args.seed)
    image = np.stack([gray, gray, gray]).astype(np.float32)
    d2_input = [{"image": torch.from_numpy(image * 255.0), "height": 1200, "width": 1200}]
    results = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.platform()} {platform.processor()}",
               "threads": args.threads, "torch": torch.__version__, "detectron2_commit": _commit(args.detectron2),
               "config": args.config, "input": "simulated PCNA frame 1200x1200, 250 cells"}
    with torch.no_grad():
        seconds, out = median_seconds(lambda: d2_model(d2_input), args.repeats)
    results["detectron2"] = {"seconds": round(seconds, 2), "detections": len(out[0]["instances"])}
    state = {k: v for k, v in d2_model.state_dict().items() if not k.startswith("pixel_")}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.save({"model": state, "iteration": 0}, tmp / "model_final.pth")
        layout = SourceLayout(classes=CLASSES, channels=["pcna", "pcna", "dic"],
                              pixel_mean=list(d2_cfg.MODEL.PIXEL_MEAN), pixel_std=list(d2_cfg.MODEL.PIXEL_STD))
        convert_detectron2(tmp / "model_final.pth", tmp / "model.pt", layout=layout)
        predictor = Predictor(tmp / "model.pt")
        predictor.model.transform.test_size = 0  # the frame at its own size, as detectron2 got it
        channels = {"pcna": gray, "dic": gray}
        seconds, out = median_seconds(lambda: predictor.predict(channels), args.repeats)
        results["pcnacycle"] = {"seconds": round(seconds, 2), "detections": int(len(out["scores"]))}
        predictor.model.to(memory_format=torch.contiguous_format)  # the layout before channels-last was adopted
        seconds, out = median_seconds(lambda: predictor.predict(channels), args.repeats)
        results["pcnacycle contiguous"] = {"seconds": round(seconds, 2), "detections": int(len(out["scores"]))}
    results["speed-up"] = round(results["detectron2"]["seconds"] / results["pcnacycle"]["seconds"], 2)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
