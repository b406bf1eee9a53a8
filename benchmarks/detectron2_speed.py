"""CPU seconds per 1200×1200 frame: detectron2 itself against pcnacycle, at the same weights (issue 10, item 3).

detectron2's own Mask R-CNN (R50-FPN, its ``mask_rcnn_R_50_FPN_3x.yaml``,
4 classes, 3 input channels as pcnaDeep's models) is built with the seeded
random weights of ``benchmarks/detectron2_parity.py``, converted with
``pcnacycle.modeling.convert_weights``, and both run on the same input: a
simulated 1200×1200 PCNA frame (250 cells), each given the frame at its own
size (detectron2's test resize and pcnacycle's switched off), eval mode,
no gradients. The parity benchmark shows the two compute the same
detections from the same weights, so equal speed means equal accuracy.

Timed in turns (median wall and CPU seconds of ``--repeats``): detectron2 ``model([{"image": ...}])``
(its masks pasted into the frame) and :meth:`pcnacycle.Predictor.predict` on
the converted weights (label image, boxes, scores, class probabilities) as it
loads on a CPU (frozen batch norms folded into the convolutions, channels-last
memory format), the same compiled (``torch.compile``, not adopted; its
compilation on the first frame is reported apart), the same with its backbone, FPN and RPN head
exported by ``export_onnx`` and run by ONNX Runtime (``run --onnx``), then the same weights without folding,
channels-last and in the default (contiguous) layout. The folded, compiled
and ONNX models' objects are matched to the unfolded contiguous one's and compared
(mask IoU, scores, probabilities). detectron2 is never a dependency: put its
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
from inference_speed import compile_convolutions, same_detections, seconds_in_turns  # noqa: E402

from pcnacycle.engine.predictor import Predictor, export_onnx  # noqa: E402
from pcnacycle.modeling.convert_weights import SourceLayout, convert_detectron2  # noqa: E402
from pcnacycle.modeling.model import build_model, read_checkpoint  # noqa: E402
from pcnacycle.simulation.params import SimulationParams  # noqa: E402
from pcnacycle.simulation.simulator import simulate_movie  # noqa: E402


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
        d2_out = d2_model(d2_input)
    state = {k: v for k, v in d2_model.state_dict().items() if not k.startswith("pixel_")}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.save({"model": state, "iteration": 0}, tmp / "model_final.pth")
        layout = SourceLayout(classes=CLASSES, channels=["pcna", "pcna", "dic"],
                              pixel_mean=list(d2_cfg.MODEL.PIXEL_MEAN), pixel_std=list(d2_cfg.MODEL.PIXEL_STD))
        convert_detectron2(tmp / "model_final.pth", tmp / "model.pt", layout=layout)
        loaded = Predictor(tmp / "model.pt")
        compiled = compile_convolutions(Predictor(tmp / "model.pt"))
        export_onnx(tmp / "model.pt")
        onnx = Predictor(tmp / "model.pt", onnx=tmp / "model.onnx")
        converted, _ = read_checkpoint(tmp / "model.pt")
    # as each loads: norms folded, channels-last (but in ONNX Runtime)
    variants = {"pcnacycle": loaded, "pcnacycle compiled": compiled, "pcnacycle onnx": onnx}
    for name, memory_format in (("pcnacycle unfolded", torch.channels_last),
                                ("pcnacycle unfolded contiguous", torch.contiguous_format)):
        model = build_model(loaded.cfg)
        model.load_state_dict(converted)
        variants[name] = Predictor.from_model(model.eval().to(memory_format=memory_format), loaded.cfg)
    channels = {"pcna": gray, "dic": gray}
    found = {}
    for name, predictor in variants.items():
        predictor.model.transform.test_size = 0  # the frame at its own size, as detectron2 got it
        started = time.perf_counter()
        found[name] = predictor.predict(channels)  # also the warm-up, and the compilation of the compiled one
        results[f"first frame, {name}"] = round(time.perf_counter() - started, 1)
    calls = {"detectron2": lambda: d2_model(d2_input)}
    calls.update({name: (lambda p=predictor: p.predict(channels)) for name, predictor in variants.items()})
    with torch.no_grad():
        seconds = seconds_in_turns(calls, args.repeats)
    results.update(seconds)
    results["detectron2"]["detections"] = len(d2_out[0]["instances"])
    for name in variants:
        results[name]["detections"] = int(len(found[name]["scores"]))
        for key in ("seconds", "cpu_seconds"):
            results[name][f"speed-up ({key})"] = round(seconds["detectron2"][key] / seconds[name][key], 2)
    # folding and compiling change only the rounding: the same objects, masks and probabilities as the unfolded
    # model (which computes detectron2's detections: benchmarks/detectron2_parity.py)
    reference = found["pcnacycle unfolded contiguous"]
    for name in ("pcnacycle", "pcnacycle compiled", "pcnacycle onnx"):
        results[f"{name} against unfolded contiguous"] = same_detections(reference, found[name])
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
