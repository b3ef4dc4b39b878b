"""A training run's progress as a JSON-lines file, for whoever watches it (the Train tab, a script):
one line per step ({"step", "steps", "loss", "lr", "tokens_per_s", "seconds"}), and at each validation
a line with "val" and "best" and, where the domain's model and codec were given, "watch it learn":
a sample from the current weights (the same settings and seed every time) and a picture of its gates
(the gate-saturation plot and the last layer's cells) saved beside the file.

    python -m studio train text --data essays.txt --out runs/mine/ --minutes 5 --progress runs/mine/progress.jsonl
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

STEP_EVERY_SECONDS = 1.0  # step lines at most this often (a validation line is always written)
SAMPLE_CHARACTERS = 240


class ProgressFile:
    def __init__(self, path, domain: str, model=None, codec=None, card: dict | None = None, append: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not append:  # a resumed run (the next slice of one) goes on in the same file
            self.path.write_text("", encoding="utf-8")
        self.domain, self.model, self.codec, self.card = domain, model, codec, card or {}
        # seconds go on from where the file stopped when a resumed run (the next slice) appends to it
        before = [line["seconds"] for line in read(self.path) if "seconds" in line] if append else []
        self.started = time.perf_counter() - (before[-1] if before else 0.0)
        self.last_written = 0.0
        self.snapshots = len(list(self.path.parent.glob("learn-*.png"))) if append else 0  # pictures keep counting

    def write(self, line: dict) -> None:
        with self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(line) + "\n")

    def __call__(self, p) -> None:
        """studio.train's on_progress."""
        now = time.perf_counter() - self.started
        if p.val_loss is None and now - self.last_written < STEP_EVERY_SECONDS and p.step != p.steps:
            return
        self.last_written = now
        line = {"step": p.step, "steps": p.steps, "loss": round(p.loss, 5), "lr": p.lr,
                "tokens_per_s": round(p.tokens_per_s or 0.0, 1), "seconds": round(now, 2)}
        if p.val_loss is not None:
            line.update(val=round(p.val_loss, 5), best=round(p.best_val_loss, 5))
            if self.model is not None and self.codec is not None:
                line.update(self.snapshot(p.step))
        self.write(line)

    def finish(self, metrics: dict, out) -> None:
        self.write({"done": True, "interrupted": bool(metrics.get("interrupted")), "best": metrics.get("best_val_loss"),
                    "steps_done": metrics.get("steps_done"), "tokens_per_s": round(metrics.get("tokens_per_s", 0.0), 1),
                    "out": str(out)})

    def snapshot(self, step: int) -> dict:
        """Generate from the current weights with the domain's default settings and seed 0; draw its gates."""
        from studio.domains.base import LoadedModel

        domain = importlib.import_module(f"studio.domains.{self.domain}")
        was_training = self.model.training
        self.model.eval()
        try:
            layers = getattr(getattr(self.model, "core", None), "layers", [])
            loaded = LoadedModel(f"step {step}", self.model, self.codec, self.card, [f"layer {k}" for k in range(len(layers))], "")
            with torch.no_grad():
                generation = domain.generate(loaded, domain.Settings())  # seed 0
            labels = generation.trace.labels[generation.trace.shown_from :]
            sample = ("".join(labels) if all(len(x) <= 1 for x in labels) else " ".join(labels))[:SAMPLE_CHARACTERS]
            self.snapshots += 1
            picture = self.path.parent / f"learn-{self.snapshots:03d}-step{step}.png"
            draw_snapshot(generation.trace, f"step {step}", picture)
            return {"sample": sample, "picture": str(picture)}
        except Exception as error:  # a sample that fails must not stop the training
            return {"sample": f"(no sample: {error})"}
        finally:
            self.model.train(was_training)


def draw_snapshot(trace, title: str, path) -> None:
    """The gate-saturation scatter of every layer and the last layer's tanh(c) over the sample, in one PNG."""
    from studio import analysis

    layers = trace.num_layers
    figure, axes = plt.subplots(1, layers + 1, figsize=(2.2 * layers + 4.2, 2.4), gridspec_kw={"width_ratios": [1] * layers + [2.2]})
    colors = {"i": "#1f77b4", "f": "#2ca02c", "o": "#d62728"}
    for layer, ax in enumerate(axes[:layers]):
        for gate, color in colors.items():
            low, high = analysis.saturation_fractions(trace, layer, gate, trace.shown_from)
            ax.scatter(low, high, s=3, c=color, alpha=0.5, label=gate)
        ax.plot([0, 1], [1, 0], color="#999", lw=0.6)
        ax.set(xlim=(0, 1), ylim=(0, 1), title=f"layer {layer}", xlabel="< 0.1", ylabel="> 0.9" if layer == 0 else None)
        ax.tick_params(labelsize=6)
    cells = np.tanh(trace.layers[-1]["c"][trace.shown_from :])
    order = np.argsort(-cells.var(0))[:32]
    axes[-1].imshow(cells[:, order].T, aspect="auto", cmap="cividis", vmin=-1, vmax=1, interpolation="nearest")
    axes[-1].set(title=f"{title}: tanh(c), last layer, 32 busiest units", xlabel="step", yticks=[])
    axes[-1].tick_params(labelsize=6)
    axes[0].legend(fontsize=6, loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def read(path) -> list[dict]:
    """Every complete line of a progress file (a line being written is skipped)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return []
    lines = []
    for raw in text.splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            break
    return lines
