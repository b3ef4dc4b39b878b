"""The trainer shared by every domain (after minGPT's trainer: it knows nothing of the domain).

A domain supplies a TrainTask: how to get a training batch for a step, the loss on it, and a
validation loss. The trainer does the rest: AdamW, gradient clipping, warmup + cosine LR,
periodic validation, best-checkpoint saving, resume, progress callbacks, CPU/CUDA selection,
seeding, and DDP when started by `torchrun --nproc_per_node=N` (gloo on CPU, nccl on CUDA).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol

import torch
import torch.distributed as dist

from studio import checkpoint, gpu, limits


@dataclass
class TrainConfig:
    steps: int = 10_000  # optimizer steps in total
    lr: float = 2e-3  # peak learning rate
    min_lr_ratio: float = 0.05  # cosine decays to lr * min_lr_ratio at the last step
    warmup_steps: int = 200  # linear warmup from 0
    weight_decay: float = 0.01
    grad_clip: float = 1.0  # max global gradient norm
    eval_every: int = 500  # steps between validations (and checkpoints)
    seed: int = 1337
    device: str = "auto"  # "auto" picks cuda when available, else cpu
    minutes: float | None = None  # a time budget: the steps are fitted to it (measured speed) and it is kept
    checkpoint_seconds: float = 60.0  # validate (and save the best) at least this often, whatever eval_every says
    threads: int | None = None  # torch intra-op threads on CPU (None: training_threads())


class TrainTask(Protocol):
    def train_batch(self, step: int, rank: int, world_size: int, device) -> object: ...

    def loss(self, model: torch.nn.Module, batch) -> torch.Tensor: ...

    def evaluate(self, model: torch.nn.Module) -> float: ...


@dataclass
class Progress:
    step: int
    steps: int
    loss: float
    lr: float
    tokens_per_s: float | None = None
    val_loss: float | None = None  # set on validation steps
    best_val_loss: float | None = None


def training_threads(cores: int | None = None) -> int:
    """Intra-op threads for a CPU training process. Measured on 2 cores (docs/benchmarks.md): two
    threads fight over them (docs/benchmarks.md, Training), so a small
    machine trains with one; on a larger one, half the cores (up to 8), leaving the rest to the app."""
    cores = cores or limits.usable_cores()
    return 1 if cores <= 2 else min(8, cores // 2)


def time_learning_rate(elapsed: float, budget: float, config: TrainConfig) -> float:
    """With a time budget the schedule runs on the clock, whatever the speed turns out to be (a step
    count fitted to the first steps' speed ended a 30-minute run after 19 when the machine got
    quieter): warmup over the first 5% of the time, then the cosine down to its floor at the end."""
    fraction = min(1.0, elapsed / budget) if budget > 0 else 1.0
    return learning_rate(int(fraction * 1000), replace(config, steps=1000, warmup_steps=50))


def pick_device(name: str = "auto") -> torch.device:
    """"auto": cuda where this process may use it (on a ZeroGPU Space only inside a lent call, studio.gpu), else cpu."""
    if name == "auto":
        return torch.device("cuda" if gpu.cuda_usable() else "cpu")
    return torch.device(name)


def learning_rate(step: int, config: TrainConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine)


def _optimizer_tensors(optimizer) -> tuple[dict[str, torch.Tensor], list]:
    """Flatten AdamW's state into safetensors-friendly names (never pickled)."""
    state = optimizer.state_dict()
    tensors = {
        f"optim.{index}.{name}": value if torch.is_tensor(value) else torch.tensor(value)
        for index, slots in state["state"].items()
        for name, value in slots.items()
    }
    return tensors, state["param_groups"]


def _restore_optimizer(optimizer, tensors: dict[str, torch.Tensor], param_groups: list) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})


def resume_paths(out) -> Path:
    return Path(str(out) + ".resume")


def train(
    model: torch.nn.Module,
    task: TrainTask,
    config: TrainConfig,
    out=None,
    card: dict | None = None,
    resume: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    slice_seconds: float | None = None,
    stop_file=None,
) -> dict:
    """Train `model` on `task`. Saves the best-validation weights to OUT.safetensors/.json
    (card + metrics) and the latest full state to OUT.resume.* for `resume=True`.
    Returns the final metrics.

    With a time budget the resume state also keeps the seconds of the budget spent, so that a resumed
    run that had not finished goes on with the same schedule and the time left (a run that finished
    starts a fresh schedule). `slice_seconds` ends this call after that much wall time with the resume
    state saved (metrics["sliced"]): a run cut into GPU calls of bounded length (studio.gpu) resumes
    it slice after slice. A `stop_file` that appears stops the run as Ctrl-C does (another process
    asks a run it cannot signal to stop)."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = pick_device(config.device)
    rank, world_size = 0, 1
    if distributed:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        started_group = not dist.is_initialized()
        if started_group:
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        rank, world_size = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(config.seed + rank)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    start_step, best_val, spent = 0, math.inf, 0.0
    budget = config.minutes * 60 if config.minutes else None
    if resume and out is not None and checkpoint.paths(resume_paths(out))[1].exists():
        tensors, state_card = checkpoint.load(resume_paths(out))
        model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
        resume_state = state_card[checkpoint.RESUME_KEY]
        _restore_optimizer(optimizer, tensors, resume_state["optimizer_param_groups"])
        start_step, best_val = resume_state["step"], resume_state["best_val_loss"]
        if budget is not None and resume_state.get("budget_seconds") == budget:
            spent = float(resume_state.get("spent_seconds", 0.0))
            if spent >= budget:  # that run used its budget: this one starts a fresh schedule
                spent = 0.0

    wrapped = model
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    metrics: dict = {"best_val_loss": best_val}
    threads_before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(config.threads or training_threads())
    total = config.steps  # with a time budget: the steps it is expected to reach, at the speed so far
    tokens_seen, clock = 0, time.perf_counter()
    schedule_start = clock - spent  # where the budgeted schedule's clock started (before this call when resumed)
    deadline = schedule_start + budget if budget else None
    slice_end = clock + slice_seconds if slice_seconds else None
    last_check, done = clock, start_step  # done: steps whose update was applied
    sliced = False

    def schedule_state():  # what the resume state keeps of the budgeted schedule's clock
        return {"budget_seconds": budget, "spent_seconds": time.perf_counter() - schedule_start} if budget else {}

    try:
        step = start_step
        while step < config.steps:
            if stop_file is not None and os.path.exists(stop_file):
                raise KeyboardInterrupt
            if deadline is None:
                lr = learning_rate(step, config)
            else:
                lr = time_learning_rate(time.perf_counter() - schedule_start, budget, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            wrapped.train()
            batch = task.train_batch(step, rank, world_size, device)
            loss = task.loss(wrapped, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            tokens_seen += getattr(batch, "num_tokens", 0) * world_size
            done = step + 1
            now = time.perf_counter()
            if deadline is not None:
                per_step = (now - clock) / (done - start_step)
                total = min(config.steps, done + max(0, int((deadline - now) / per_step)))
            last = step == config.steps - 1 or (deadline is not None and now >= deadline)
            sliced = not last and slice_end is not None and now >= slice_end
            val_loss = None
            if (step + 1) % config.eval_every == 0 or last or now - last_check >= config.checkpoint_seconds:
                val_loss, best_val, metrics = _checkpoint(model, optimizer, task, out, card, config, step + 1, best_val,
                                                          metrics, rank, distributed, device, schedule_state())
                last_check = time.perf_counter()
            elif sliced and rank == 0 and out is not None:  # the next slice goes on from here
                _save_resume(model, optimizer, out, card, step + 1, best_val, schedule_state())
            if on_progress is not None and rank == 0:
                elapsed = time.perf_counter() - clock
                speed = tokens_seen / elapsed if tokens_seen and elapsed > 0 else None
                on_progress(Progress(step + 1, total, float(loss.detach()), lr, speed, val_loss, best_val))
            if last or sliced:
                break
            step += 1
    except KeyboardInterrupt:  # stopped by hand: what was learnt so far is validated and kept
        sliced = False
        if done > start_step or start_step > 0:  # (a resumed state, even with no step since, is worth keeping)
            _, best_val, metrics = _checkpoint(model, optimizer, task, out, card, config, done, best_val, metrics,
                                               rank, distributed, device, schedule_state())
        metrics["interrupted"] = True
    finally:
        torch.set_num_threads(threads_before)
    if distributed:
        dist.barrier()
        if started_group:
            dist.destroy_process_group()
    elapsed = time.perf_counter() - clock
    metrics.update(best_val_loss=best_val, steps_done=done, tokens_per_s=tokens_seen / elapsed if elapsed > 0 else 0.0,
                   seconds=elapsed)
    if sliced:
        metrics["sliced"] = True
    return metrics


def _checkpoint(model, optimizer, task, out, card, config, step, best_val, metrics, rank, distributed, device,
                schedule=None):
    """Validate; save the best weights and the resume state. (val_loss, best_val, metrics)."""
    val_loss = _validate(model, task, rank, distributed, device)
    if val_loss < best_val:
        best_val = val_loss
        if rank == 0 and out is not None:
            metrics = {"best_val_loss": best_val, "best_step": step}
            _save_best(model, out, card, config, metrics)
    if rank == 0 and out is not None:
        _save_resume(model, optimizer, out, card, step, best_val, schedule)
    return val_loss, best_val, metrics


def _validate(model, task, rank, distributed, device) -> float:
    """Validation runs on rank 0 only and is shared, so every rank agrees on 'best'."""
    value = torch.zeros(1, device=device)
    if rank == 0:
        model.eval()
        with torch.no_grad():
            value[0] = task.evaluate(model)
    if distributed:
        dist.broadcast(value, src=0)
    return float(value[0])


def _save_best(model, out, card, config, metrics):
    card = dict(card or {})
    card["training"] = {**card.get("training", {}), **asdict(config)}
    card["metrics"] = {**card.get("metrics", {}), **metrics}
    checkpoint.save(out, model.state_dict(), card)


def _save_resume(model, optimizer, out, card, step, best_val, schedule=None):
    optim_tensors, param_groups = _optimizer_tensors(optimizer)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()} | optim_tensors
    state_card = {
        **(card or {}),
        checkpoint.RESUME_KEY: {"step": step, "best_val_loss": best_val, "optimizer_param_groups": param_groups,
                                **(schedule or {})},
    }
    checkpoint.save(resume_paths(out), tensors, state_card)
