"""Training: the solver, the loop, checkpoints and resuming.

:func:`train` reads top to bottom: prepare the output folder, index and split
the data, build the model and solver, resume if asked, then iterate — forward,
backward, step, log, checkpoint, evaluate — and finally draw the loss curve.

Output folder::

    config.yaml        the resolved config
    split.json         image ids per subset (evaluation reuses it)
    metrics.jsonl      one JSON object per logged iteration
    model_NNNNNNN.pt   every SOLVER.CHECKPOINT_PERIOD iterations (N = iterations done)
    model_NNNNNNN.pt   also at Ctrl-C or SIGTERM (``--resume`` continues from it)
    model_final.pt     at the end, before the final evaluation
    last_checkpoint    the name of the newest checkpoint
    loss_curve.png     at the end
    log.txt            everything logged

Under ``torchrun --nproc_per_node N`` the same loop runs in N processes with
DistributedDataParallel (see :mod:`pcnacycle.ddp`); only process 0 writes.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import os
import random
import time
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace
from typing import Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..config import CfgNode, dump_config
from ..data.arrays import array_records
from ..data.catalog import read_records
from ..data.dataset import (
    InstanceDataset,
    collate,
    median_nucleus_diameter,
    next_batch,
    read_split,
    select,
    split_records,
    write_split,
)
from ..data.mixing import nuclei_only_data, training_sampler
from ..errors import PcnacycleError
from ..evaluation.loop import make_training_evaluator
from ..io import atomic_write, log_to_file, write_text
from ..modeling.model import build_model, is_norm_parameter, load_weights, resolve_device
from ..safeguards import check_output_folder
from . import ddp
from .signals import StopSignals

log = logging.getLogger(__name__)

CHECKPOINT_POINTER = "last_checkpoint"


# ---------------------------------------------------------------- solver


def build_optimizer(cfg: CfgNode, model: torch.nn.Module) -> torch.optim.SGD:
    """SGD with momentum and detectron2's parameter groups.

    Normalisation scales and shifts get ``WEIGHT_DECAY_NORM``; biases get
    ``BASE_LR * BIAS_LR_FACTOR``; everything else ``BASE_LR`` and
    ``WEIGHT_DECAY``.
    """
    s = cfg.SOLVER
    groups: dict[tuple[float, float], list] = {}
    seen = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            lr, decay = s.BASE_LR, s.WEIGHT_DECAY
            if is_norm_parameter(module):
                decay = s.WEIGHT_DECAY_NORM
            elif name == "bias":
                lr = s.BASE_LR * s.BIAS_LR_FACTOR
            groups.setdefault((lr, decay), []).append(param)
    return torch.optim.SGD(
        [{"params": params, "lr": lr, "weight_decay": decay} for (lr, decay), params in groups.items()],
        lr=s.BASE_LR, momentum=s.MOMENTUM,
    )


def lr_factor(cfg: CfgNode, iteration: int) -> float:
    """Multiplier of BASE_LR at ``iteration`` (0-based): warm-up, then step decay.

    Linear warm-up goes from ``WARMUP_FACTOR`` to 1 over ``WARMUP_ITERS``;
    after each iteration in ``STEPS`` the rate is multiplied by ``GAMMA``.
    """
    s = cfg.SOLVER
    decay = s.GAMMA ** bisect.bisect_right(s.STEPS, iteration)
    if iteration >= s.WARMUP_ITERS:
        return decay
    if s.WARMUP_METHOD == "constant":
        return s.WARMUP_FACTOR * decay
    alpha = iteration / s.WARMUP_ITERS
    return (s.WARMUP_FACTOR * (1 - alpha) + alpha) * decay


def build_scheduler(cfg: CfgNode, optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-iteration scheduler following :func:`lr_factor`."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(cfg, it))


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, model, optimizer, scheduler, scaler, iteration: int, cfg: CfgNode,
                    process_rng: list[dict] | None = None, rng: dict | None = None) -> None:
    """Write a checkpoint atomically and point ``last_checkpoint`` at it.

    It loads with ``torch.load(weights_only=True)``.

    ``process_rng`` is every training process's random state (:func:`pcnacycle.engine.ddp.random_states`),
    saved so that each process of a resumed multi-process run continues its own stream. ``rng`` is
    this process's random state to resume with (default: the current one, :func:`rng_state`).
    """
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "iteration": iteration,
        "config": cfg.to_dict(),
        "rng": dict(rng if rng is not None else rng_state()),
    }
    if process_rng is not None and len(process_rng) > 1:
        state["rng"]["processes"] = process_rng
    with atomic_write(path) as handle:
        torch.save(state, handle)
    write_text(path.parent / CHECKPOINT_POINTER, path.name + "\n")


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The checkpoint ``last_checkpoint`` names, or None."""
    pointer = output_dir / CHECKPOINT_POINTER
    if not pointer.is_file():
        return None
    path = output_dir / pointer.read_text().strip()
    if not path.is_file():
        raise PcnacycleError(f"{pointer} names {path.name}, which does not exist")
    return path


def load_checkpoint(path: Path) -> dict:
    """A checkpoint written by :func:`save_checkpoint`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PcnacycleError(f"{path}: cannot be loaded as a checkpoint ({exc})") from exc
    if not isinstance(state, dict) or not {"model", "optimizer", "scheduler", "iteration"} <= set(state):
        raise PcnacycleError(f"{path}: not a pcnacycle training checkpoint")
    return state


# ---------------------------------------------------------------- logging helpers


def read_metrics(path: Path) -> list[dict]:
    """The rows of ``metrics.jsonl``; a torn last line (the run was killed mid-write) is skipped."""
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("%s: skipped an incomplete line (the run was interrupted while writing it)", path)
    return rows


def _truncate_metrics(path: Path, iteration: int) -> None:
    """Drop logged iterations after ``iteration``: a resumed run logs them again."""
    if path.is_file():
        kept = [row for row in read_metrics(path) if row.get("iteration", 0) <= iteration]
        write_text(path, "".join(json.dumps(row) + "\n" for row in kept))


def plot_loss_curve(metrics_path: Path, out_path: Path) -> None:
    """Draw total and per-term losses (and any AP logged) from ``metrics.jsonl``."""
    from matplotlib.figure import Figure  # drawn on its own Figure: no pyplot state, no backend switch

    rows = read_metrics(metrics_path)
    train_rows = [r for r in rows if "total_loss" in r]
    eval_rows = [r for r in rows if any(k.endswith("/AP50") for k in r)]
    # 560 px wide at 100 dpi, the width reports show it at, so its 9-point text stays readable; validation
    # AP goes in a panel below the loss, on the same iterations
    fig = Figure(figsize=(5.6, 5.6 if eval_rows else 3.6))
    axes = fig.subplots(2 if eval_rows else 1, 1, squeeze=False, sharex=True,
                        gridspec_kw={"height_ratios": [3, 2] if eval_rows else [1]})
    ax = axes[0, 0]
    its = [r["iteration"] for r in train_rows]
    for key in [k for k in (train_rows[0] if train_rows else {}) if k.startswith("loss_")] + ["total_loss"]:
        ax.plot(its, [r[key] for r in train_rows], label=key.removeprefix("loss_"), lw=2 if key == "total_loss" else 1)
    ax.set(ylabel="loss", title="training loss", yscale="log")
    ax.legend(fontsize=8, ncol=3)
    if eval_rows:
        ax = axes[1, 0]
        for key in sorted({k for r in eval_rows for k in r if k.endswith("/AP50")}):
            points = [(r["iteration"], r[key]) for r in eval_rows if r.get(key) is not None]
            # the last value in words: a lone point (evaluated only at the end) is not left to read off an axis
            ax.plot(*zip(*points), "o-", label=f"{key}: {points[-1][1]:.1f} at iteration {points[-1][0]}")
        ax.set(ylabel="validation AP50 (%)", ylim=(0, 100))
        ax.legend(fontsize=8)
    axes[-1, 0].set(xlabel="iteration", xlim=(0, max((r["iteration"] for r in rows), default=1) * 1.03))
    fig.tight_layout()
    with atomic_write(out_path) as handle:
        fig.savefig(handle, format="png", dpi=100)


# ---------------------------------------------------------------- the loop


def train(cfg: CfgNode, output_dir: str | os.PathLike, resume: bool = False, progress: bool = True, *,
          images: Sequence | None = None, label_images: Sequence | None = None,
          classes: Sequence[Mapping[int, str]] | None = None) -> Path:
    """Train the model ``cfg`` describes; return the path of ``model_final.pt``.

    Parameters
    ----------
    cfg : the resolved config (see :func:`pcnacycle.config.load_config`).
    output_dir : where every output goes (created if needed). A folder that
        already holds a run is refused unless ``resume`` is set.
    resume : continue from ``last_checkpoint`` with the model, optimizer,
        scheduler, iteration and random state saved there.
    images, label_images, classes : train on images held in memory instead
        of the dataset ``DATASETS`` names: one ``{channel: (H, W) array}``
        (or one ``(H, W)`` PCNA array), one ``(H, W)`` integer label image
        and, with several classes, one ``{label: class name}`` per image (see
        :func:`pcnacycle.data.arrays.array_records`). The saved config then
        says ``DATASETS.FORMAT arrays``.

    The validation images are scored (COCO AP by pycocotools) every
    ``TEST.EVAL_PERIOD`` iterations and at the end, after ``model_final.pt``
    is saved (``TEST.EVAL_PERIOD -1``: never); the results (``segm/AP50``
    ...) are appended to metrics.jsonl and drawn beside the loss curve.

    A failure before the first iteration (a bad dataset, weights that do not
    load) leaves no file behind that this call wrote, and removes the output
    folder again if it created it. Ctrl-C or SIGTERM during training saves a
    checkpoint of the iterations done, points ``last_checkpoint`` at it and
    raises :class:`KeyboardInterrupt`; ``resume`` continues from there.
    """
    output_dir = Path(output_dir)
    processes = ddp.from_environment()
    ddp.images_per_process(cfg.SOLVER.IMS_PER_BATCH, processes)  # refused before anything is written
    records = None
    if images is not None or label_images is not None:
        if images is None or label_images is None:
            raise PcnacycleError("give both images and label_images to train on images in memory")
        cfg.DATASETS["FORMAT"], cfg.DATASETS["ROOT"] = "arrays", ""
        records = array_records(cfg, images, label_images, classes)
    root = Path(cfg.DATASETS.ROOT).resolve() if cfg.DATASETS.ROOT else None
    if root is not None and (output_dir.resolve() == root or root in output_dir.resolve().parents):
        raise PcnacycleError(f"--output {output_dir} lies in the dataset folder DATASETS.ROOT {cfg.DATASETS.ROOT}; "
                             "checkpoints and logs do not belong in the data: choose another --output")
    check_output_folder(output_dir)
    created = [folder for folder in [output_dir, *output_dir.parents] if not folder.exists()]
    output_dir.mkdir(parents=True, exist_ok=True)
    fresh = [name for name in _SETUP_FILES if not (output_dir / name).exists()]
    try:
        checkpoint_path = latest_checkpoint(output_dir)
        if checkpoint_path is None and resume:
            raise PcnacycleError(f"{output_dir}: --resume given but there is no {CHECKPOINT_POINTER} to resume from")
        if checkpoint_path is not None and not resume:
            raise PcnacycleError(f"{output_dir} holds a previous run; pass --resume to continue it or choose another "
                                 "--output")
        with log_to_file(output_dir / "log.txt") if processes.is_main else ddp.warnings_only():
            device = ddp.start(processes, resolve_device(cfg.MODEL.DEVICE))
            setup = _prepare(cfg, output_dir, checkpoint_path, progress, processes, device, records)
    except BaseException:
        ddp.stop(processes)
        if processes.is_main:
            _remove_setup_files(output_dir, fresh, created)
        raise
    try:
        with log_to_file(output_dir / "log.txt") if processes.is_main else ddp.warnings_only():
            return _loop(setup, output_dir, progress)
    finally:
        ddp.stop(processes)


#: What :func:`train` writes before its first iteration: removed again when it fails before then.
_SETUP_FILES = ("config.yaml", "split.json", "metrics.jsonl", "log.txt")


def _remove_setup_files(output_dir: Path, names: list[str], created: list[Path]) -> None:
    """Remove the files of ``names`` this run wrote, and the folders of ``created`` it leaves empty."""
    for name in names:
        (output_dir / name).unlink(missing_ok=True)
    for folder in created:  # innermost first
        try:
            folder.rmdir()
        except OSError:
            break  # not empty: something else lives there


def _prepare(cfg, output_dir: Path, checkpoint_path: Path | None, progress: bool, processes: ddp.Processes,
             device: torch.device, records: list[dict] | None) -> SimpleNamespace:
    """Everything the loop needs, with every check that can fail made before anything is written.

    ``records``: the images in memory to train on; None reads the dataset ``DATASETS`` names.
    """
    s = cfg.SOLVER
    main = processes.is_main  # the one process that writes files
    torch.manual_seed(cfg.SEED)
    random.seed(cfg.SEED)
    np.random.seed(cfg.SEED % 2**32)

    # Data: the split is written once and reused, so evaluation and a resumed
    # run see the same images even if the folder gains files later.
    if records is None:
        records = read_records(cfg)
    split_path = output_dir / "split.json"
    if split_path.is_file():
        split = read_split(split_path)
    else:
        # the same split in every process: it depends only on the records and the seed
        split = split_records(records, cfg.DATASETS.VAL_SIZE, cfg.DATASETS.SPLIT_SEED, by=cfg.DATASETS.SPLIT_BY)
    train_records = select(records, split["train"], f"{split_path} (train)")
    log.info("dataset %s: %d train, %d val images", cfg.DATASETS.ROOT, len(split["train"]), len(split["val"]))
    if not cfg.INPUT.NUCLEUS_DIAMETER:
        # saved with the config and every checkpoint, so `run` can bring other movies' nuclei to this size
        # in the network's pixels: a model that resizes its training images saw its nuclei resized too
        cfg.INPUT["NUCLEUS_DIAMETER"] = round(median_nucleus_diameter(cfg, train_records, network=True), 2)
        log.info("training nuclei: median diameter %.1f px (INPUT.NUCLEUS_DIAMETER)", cfg.INPUT.NUCLEUS_DIAMETER)
    nuclei_only = nuclei_only_data(cfg)  # DATASETS.NUCLEI_ONLY: read, and checked, before anything is written
    if nuclei_only:
        log.info("mixed in: %d images of nuclei without phases from %s (%.0f %% of the draws)",
                 len(nuclei_only[0]), cfg.DATASETS.NUCLEI_ONLY.ROOT, 100 * cfg.DATASETS.NUCLEI_ONLY.FRACTION)
    scored = bool(split["val"]) and cfg.TEST.EVAL_PERIOD >= 0  # -1: never evaluate
    evaluate = None
    if scored and main:
        evaluate = make_training_evaluator(cfg, select(records, split["val"], f"{split_path} (val)"),
                                           progress=progress)
    per_process = ddp.images_per_process(s.IMS_PER_BATCH, processes)
    log.info("training on %d process(es)%s: global batch SOLVER.IMS_PER_BATCH %d, %d image(s) per process",
             processes.world_size, f" ({torch.distributed.get_backend()}, DistributedDataParallel)"
             if processes.active else "", s.IMS_PER_BATCH, per_process)

    model = build_model(cfg)
    if cfg.MODEL.WEIGHTS and checkpoint_path is None:
        load_weights(model, cfg.MODEL.WEIGHTS)
    model.to(device)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    use_amp = device.type == "cuda" and s.AMP.ENABLED
    scaler = torch.amp.GradScaler("cuda") if use_amp else None

    start_iter, saved_rng = 0, None
    metrics_path = output_dir / "metrics.jsonl"
    if checkpoint_path is not None:
        state = load_checkpoint(checkpoint_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_iter, saved_rng = int(state["iteration"]), _own_random_state(state["rng"], processes)
        if start_iter >= s.MAX_ITER:
            raise PcnacycleError(f"{checkpoint_path} is at iteration {start_iter}, which SOLVER.MAX_ITER "
                                 f"({s.MAX_ITER}) does not go beyond: nothing to resume")

    # the repeat factors read every training image's classes: before anything is written, too
    sampler = training_sampler(cfg, train_records, len(nuclei_only[0]) if nuclei_only else 0,
                               start=start_iter * s.IMS_PER_BATCH)

    # Every check has passed: the run's files are written from here on.
    if main:
        write_text(output_dir / "config.yaml", dump_config(cfg))
        if not split_path.is_file():
            write_split(split_path, split, cfg)
        if checkpoint_path is not None:
            _truncate_metrics(metrics_path, start_iter)
        elif metrics_path.exists():
            metrics_path.unlink()  # a stale file from a run that never reached a checkpoint
    if checkpoint_path is not None:
        log.info("resumed from %s at iteration %d", checkpoint_path.name, start_iter)
    net = ddp.wrap(model, processes, device)  # what trains; `model` is what is saved and evaluated
    if processes.active:
        torch.manual_seed(cfg.SEED + processes.rank)  # each process samples its own proposals

    dataset = InstanceDataset(train_records, cfg, augment=True, nuclei_only=nuclei_only)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=per_process,
        sampler=ddp.ShardSampler(sampler, s.IMS_PER_BATCH, processes) if processes.active else sampler,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        collate_fn=collate,
        persistent_workers=cfg.DATALOADER.NUM_WORKERS > 0,
    )
    # Starting the loader draws a worker seed from torch's generator, so the
    # saved random state is restored only after it: the iterations that follow
    # then draw exactly what an uninterrupted run would have drawn.
    batches = iter(loader)
    if saved_rng is not None:
        torch.set_rng_state(saved_rng["torch"])
        if device.type == "cuda" and saved_rng.get("cuda"):
            torch.cuda.set_rng_state_all(saved_rng["cuda"])
    return SimpleNamespace(cfg=cfg, model=model, net=net, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                           use_amp=use_amp, device=device, batches=batches, start_iter=start_iter, scored=scored,
                           evaluate=evaluate, metrics_path=metrics_path, processes=processes)


def _loop(run: SimpleNamespace, output_dir: Path, progress: bool) -> Path:
    """Iterate from ``run.start_iter`` to ``SOLVER.MAX_ITER``; save, score and plot at the end."""
    cfg, model, optimizer, scheduler, scaler = run.cfg, run.model, run.optimizer, run.scheduler, run.scaler
    s, processes, device = cfg.SOLVER, run.processes, run.device
    main = processes.is_main
    model.train()
    window: list[dict] = []
    # What an interrupt saves: the iterations fully applied, with the random state that followed them.
    completed, rng = run.start_iter, rng_state()
    final = output_dir / "model_final.pt"
    bar = tqdm(total=s.MAX_ITER, initial=run.start_iter, disable=not (progress and main), desc="train", unit="it",
               dynamic_ncols=True)
    tick = time.perf_counter()
    with StopSignals() as signals, bar, open(run.metrics_path, "a") if main else nullcontext() as metrics_file:
        try:
            for iteration in range(run.start_iter, s.MAX_ITER):
                images, targets = next_batch(run.batches)
                data_time = time.perf_counter() - tick
                images = [im.to(device, non_blocking=True) for im in images]
                targets = [{k: (v.to(device) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets]

                with torch.autocast("cuda", dtype=torch.float16) if run.use_amp else nullcontext():
                    losses = run.net(images, targets)
                total = sum(losses.values())
                # averaged over the processes, so every process logs and judges the same numbers
                logged = ddp.mean_over_processes({"total_loss": total, **losses}, processes)
                if not math.isfinite(logged["total_loss"]):
                    raise PcnacycleError(
                        f"the loss became {logged['total_loss']} at iteration {iteration}: lower SOLVER.BASE_LR, "
                        "lengthen SOLVER.WARMUP_ITERS or enable SOLVER.CLIP_GRADIENTS"
                    )
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(total).backward()
                    scaler.unscale_(optimizer)
                else:
                    total.backward()
                _clip_gradients(cfg, model)
                with signals.held():  # the step is applied whole or not at all
                    if scaler is not None:
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        optimizer.step()
                    scheduler.step()
                    completed, rng = iteration + 1, rng_state()
                lr = s.BASE_LR * lr_factor(cfg, iteration)  # the rate this iteration used

                done = iteration + 1
                window.append({**logged, "time": time.perf_counter() - tick, "data_time": data_time})
                bar.update(1)
                bar.set_postfix(loss=f"{logged['total_loss']:.3f}", lr=f"{lr:.2e}")
                if main and (done % s.LOG_PERIOD == 0 or done == s.MAX_ITER):
                    row = {"iteration": done, "lr": lr}
                    row.update({k: float(np.mean([w[k] for w in window])) for k in window[0]})
                    _append_row(metrics_file, row)
                    window.clear()
                if done % s.CHECKPOINT_PERIOD == 0 and done != s.MAX_ITER:
                    _checkpoint(output_dir / f"model_{done:07d}.pt", model, optimizer, scheduler, scaler, done, cfg,
                                processes)
                if run.scored and done != s.MAX_ITER and cfg.TEST.EVAL_PERIOD > 0 and done % cfg.TEST.EVAL_PERIOD == 0:
                    _evaluate(run, metrics_file, done)
                tick = time.perf_counter()

            # The weights are safe before the final evaluation, however long that takes.
            _checkpoint(final, model, optimizer, scheduler, scaler, s.MAX_ITER, cfg, processes)
            log.info("saved %s", final)
            if run.scored:
                _evaluate(run, metrics_file, s.MAX_ITER)
        except KeyboardInterrupt:
            if main:
                with signals.held():
                    _save_at_interrupt(run, output_dir, completed, rng)
            raise
    if main:
        plot_loss_curve(run.metrics_path, output_dir / "loss_curve.png")
    log.info("training finished: %s", final)
    return final


def _evaluate(run: SimpleNamespace, metrics_file, iteration: int) -> None:
    """Score the validation images (process 0; the others wait) and log the figures to metrics.jsonl."""
    if run.evaluate is not None:
        _append_row(metrics_file, {"iteration": iteration, **run.evaluate(run.model, iteration)})
        run.model.train()
    ddp.barrier(run.processes)


def _append_row(metrics_file, row: dict) -> None:
    metrics_file.write(json.dumps(row) + "\n")
    metrics_file.flush()


def _save_at_interrupt(run: SimpleNamespace, output_dir: Path, completed: int, rng: dict) -> None:
    """Checkpoint the ``completed`` iterations (unless there is nothing new) and say how to go on.

    Only process 0 writes, with its own random state: the others may be anywhere in their
    iteration, so no collective call is made (a resumed multi-process run warns that its random
    draws, not its images, differ from an uninterrupted one).
    """
    if completed >= run.cfg.SOLVER.MAX_ITER:
        log.warning("interrupted after training finished; %s is saved", output_dir / "model_final.pt")
        return
    if completed == run.start_iter:
        log.warning("interrupted at iteration %d before any further iteration was done; nothing new to save",
                    completed)
        return
    path = output_dir / f"model_{completed:07d}.pt"
    save_checkpoint(path, run.model, run.optimizer, run.scheduler, run.scaler, completed, run.cfg, rng=rng)
    log.warning("interrupted at iteration %d: saved %s; `pcnacycle train --resume` with the same --output "
                "continues from there", completed, path)


def rng_state() -> dict:
    """Torch's random state (CPU, and every GPU when there is one), as checkpoints store it."""
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _checkpoint(path: Path, model, optimizer, scheduler, scaler, iteration: int, cfg: CfgNode,
                processes: ddp.Processes) -> None:
    """Every process hands its random state to process 0, which writes the checkpoint."""
    states = ddp.random_states(processes)
    if processes.is_main:
        save_checkpoint(path, model, optimizer, scheduler, scaler, iteration, cfg, process_rng=states)
    ddp.barrier(processes)  # nobody runs ahead of a checkpoint being written


def _own_random_state(saved: dict, processes: ddp.Processes) -> dict:
    """This process's saved random state: its own when the checkpoint has one per process of this run."""
    per_process = saved.get("processes") or []
    if not processes.active:
        return saved
    if len(per_process) == processes.world_size:
        return per_process[processes.rank]
    log.warning("the checkpoint was written by %d process(es), this run has %d: random draws (not the images) "
                "differ from an uninterrupted run", max(len(per_process), 1), processes.world_size)
    return {"torch": torch.get_rng_state(), "cuda": []}


def _clip_gradients(cfg: CfgNode, model: torch.nn.Module) -> None:
    clip = cfg.SOLVER.CLIP_GRADIENTS
    if not clip.ENABLED:
        return
    params = [p for p in model.parameters() if p.grad is not None]
    if clip.CLIP_TYPE == "value":
        torch.nn.utils.clip_grad_value_(params, clip.CLIP_VALUE)
    else:
        torch.nn.utils.clip_grad_norm_(params, clip.CLIP_VALUE, clip.NORM_TYPE)
