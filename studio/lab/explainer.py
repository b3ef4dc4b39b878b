"""The lab's trained LSTM where the rest of the studio can read it: its exact Trace on one task
sequence (the trace viewer) and its Explainable (ask why, studio.explain).

On the adding task the trace shows what the lab is about: the input gate opening at the two marked
numbers and the forget gate holding the cell between them. Ask why reads the task's answer out of
h_t at every step (the head on each step's h, as if the sequence ended there): its log-likelihood
(adding: -(answer - target)^2 / 2, a unit Gaussian; copy and quote: log p of the target) is what
saliency explains, so step T's saliency says which inputs the final answer came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from studio.explain import Explainable, core_weights
from studio.lab.cells import TITLES, LabCell
from studio.lab.tasks import Task
from studio.trace import Trace


@dataclass
class LabGeneration:
    """What the trace viewer and the ask-why panel keep for one sequence (as a domain's Generation)."""

    trace: Trace
    explained: tuple | None = None  # (scored with .trace, Explainable), as explain_panel caches it
    trajectories: dict = field(default_factory=dict)


@dataclass
class Scored:
    trace: Trace


def example(task: Task, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """One task sequence (1, T, X) and its target, the same for a seed."""
    return task.sample(1, torch.Generator().manual_seed(seed))


@torch.no_grad()
def lab_trace(cell: LabCell, task: Task, x: torch.Tensor, model: str = "") -> Trace:
    """The exact gates of the LSTM on x (1, T, X), labelled per step by the task."""
    if not cell.is_lstm:
        raise ValueError("Only an LSTM has gates to show in the trace viewer.")
    _, _, gates = cell.core.trace(x)
    return Trace.from_sequence(gates, task.labels(x[0]), domain="lab", model=model or cell.kind,
                               layer_names=[f"{TITLES[cell.kind]} on {task.name}, T = {task.length}"])


def explainable(cell: LabCell, task: Task, x: torch.Tensor, y: torch.Tensor) -> Explainable:
    """Ask why for the LSTM on one sequence x (1, T, X) with target y."""
    frozen = cell.float().eval()

    def readout(inputs: torch.Tensor) -> torch.Tensor:  # (N, T, X) -> (N, T, output)
        return frozen.head(frozen.sequence(inputs))

    def log_likelihood(inputs: torch.Tensor) -> torch.Tensor:
        return task.log_likelihood(readout(inputs), y)

    with torch.no_grad():
        answers = readout(x)[0].double().numpy()  # (T, output)

    return Explainable(inputs=x.detach().clone(), log_likelihood=log_likelihood, layer_inputs=[x[0].numpy()],
                       weights=core_weights(frozen.core), guesses=lambda step: task.guesses(answers[step]),
                       labels=task.labels(x[0]))


def generation(cell: LabCell, task: Task, seed: int = 1, model: str = "") -> LabGeneration:
    """The trace and ask why of the LSTM on one task sequence, ready for the viewer's panels."""
    x, y = example(task, seed)
    trace = lab_trace(cell, task, x, model)
    return LabGeneration(trace, (Scored(trace), explainable(cell, task, x, y)))
