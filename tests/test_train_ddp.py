"""Training in two processes (gloo on CPU) as torchrun would start it: DistributedDataParallel, shards, resume."""

import json
import os
import shutil
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from conftest import make_dsb_folder, tiny_overrides
from pcnacycle.errors import PcnacycleError

GLOBAL_BATCH = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _process(rank: int, world_size: int, port: int, opts: list[str], output: str, record: str, resume: bool):
    """One training process, started the way torchrun starts it (the environment), recording what it does."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    import importlib
    import logging

    logging.getLogger("pcnacycle").setLevel(logging.INFO)  # as the command line sets it

    from pcnacycle import io, load_config, train

    train_mod = importlib.import_module("pcnacycle.engine.trainer")
    written, batches, params = [], [], {}
    original_path, original_collate, original_checkpoint = io.atomic_path, train_mod.collate, train_mod._checkpoint

    def recording_path(path):
        written.append(str(path))
        return original_path(path)

    def recording_collate(batch):
        batches.append([target["image_id"] for _, target in batch])
        return original_collate(batch)

    def recording_checkpoint(path, model, *args, **kwargs):
        iteration = args[3]  # after optimizer, scheduler, scaler
        params[iteration] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return original_checkpoint(path, model, *args, **kwargs)

    io.atomic_path, train_mod.collate, train_mod._checkpoint = recording_path, recording_collate, recording_checkpoint
    train(load_config(None, opts), output, resume=resume, progress=False)
    torch.save({"written": written, "batches": batches, "params": params}, Path(record) / f"rank{rank}.pt")


def _spawn(tmp_path, opts, output, resume=False):
    record = tmp_path / ("resumed" if resume else "records")
    record.mkdir()
    mp.spawn(_process, args=(2, _free_port(), opts, str(output), str(record), resume), nprocs=2, join=True)
    return [torch.load(record / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_share_one_model_split_the_global_batch_and_resume_exactly(tmp_path):
    root = make_dsb_folder(tmp_path / "dsb", n_images=6, shape=(48, 48), nuclei=3)
    opts = tiny_overrides(root, **{"SOLVER.IMS_PER_BATCH": GLOBAL_BATCH, "SOLVER.MAX_ITER": 2,
                                   "SOLVER.CHECKPOINT_PERIOD": 1, "SOLVER.STEPS": "[1]", "DATASETS.VAL_SIZE": 1})
    run = tmp_path / "run"
    rank0, rank1 = _spawn(tmp_path, opts, run)

    # DistributedDataParallel: both processes hold the same parameters after every step
    assert sorted(rank0["params"]) == sorted(rank1["params"]) == [1, 2]
    for iteration, state in rank0["params"].items():
        for name, tensor in state.items():
            torch.testing.assert_close(rank1["params"][iteration][name], tensor, rtol=0, atol=0, msg=name)
    assert any(not torch.equal(rank0["params"][1][k], rank0["params"][2][k]) for k in rank0["params"][1])

    # each process takes its half of each global batch a single process would draw, in order
    from pcnacycle import load_config
    from pcnacycle.data.dataset import TrainingSampler, read_split

    train_ids = read_split(run / "split.json")["train"]
    draws = iter(TrainingSampler(len(train_ids), load_config(None, opts).SEED))
    half = GLOBAL_BATCH // 2
    assert len(rank0["batches"]) == len(rank1["batches"]) == 2
    for mine, theirs in zip(rank0["batches"], rank1["batches"]):
        expected = [train_ids[next(draws)[0]] for _ in range(GLOBAL_BATCH)]
        assert mine == expected[:half] and theirs == expected[half:]

    # only process 0 writes: checkpoints, metrics, plots, log
    assert rank1["written"] == [] and any(p.endswith("model_final.pt") for p in rank0["written"])
    assert [r["iteration"] for r in _metrics(run) if "total_loss" in r] == [1, 2]  # logged once each
    log = (run / "log.txt").read_text()
    assert log.count("training on 2 process(es) (gloo, DistributedDataParallel): global batch "
                     f"SOLVER.IMS_PER_BATCH {GLOBAL_BATCH}, {half} image(s) per process") == 1
    assert (run / "loss_curve.png").is_file()

    # killed after the first checkpoint: --resume continues exactly
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for name in ("config.yaml", "split.json", "model_0000001.pt"):
        shutil.copy(run / name, crashed / name)
    (crashed / "last_checkpoint").write_text("model_0000001.pt\n")
    _spawn(tmp_path, opts, crashed, resume=True)
    straight = torch.load(run / "model_final.pt", weights_only=True)
    resumed = torch.load(crashed / "model_final.pt", weights_only=True)
    assert len(straight["rng"]["processes"]) == 2
    for name, tensor in straight["model"].items():
        torch.testing.assert_close(resumed["model"][name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    assert "resumed from model_0000001.pt at iteration 1" in (crashed / "log.txt").read_text()


def test_a_global_batch_the_processes_do_not_divide_is_refused(tmp_path, monkeypatch):
    from pcnacycle import load_config, train

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    root = make_dsb_folder(tmp_path / "dsb", n_images=4)
    with pytest.raises(PcnacycleError, match="SOLVER.IMS_PER_BATCH 3 is the global batch and must be divisible by "
                                             "the 2 training processes"):
        train(load_config(None, tiny_overrides(root, **{"SOLVER.IMS_PER_BATCH": 3})), tmp_path / "run",
              progress=False)
    assert not (tmp_path / "run").exists()
