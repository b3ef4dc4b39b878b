"""What the four domains' command lines share: who reports, loading a checkpoint, and the training
progress bar."""

from __future__ import annotations

import os
import sys

from studio import checkpoint


def is_main_process() -> bool:
    """Under torchrun only rank 0 reports and writes files; a plain run is rank 0."""
    return int(os.environ.get("RANK", "0")) == 0


def training_progress(domain: str, steps: int, val_name: str, train_name: str = "train_loss"):
    """(on_progress, close) for studio.train.train.

    A progress bar on stderr with the loss, learning rate and speed, redrawn at most every 5 s
    (a short log when the run is sent to a file), and one line on stdout per validation:
    `step N: TRAIN_NAME X VAL_NAME Y (best Z)`, the metric named as the domain's eval prints it.
    """
    from tqdm import tqdm

    main = is_main_process()
    bar = tqdm(total=steps, desc=f"train {domain}", unit="step", dynamic_ncols=True, file=sys.stderr,
               disable=not main, mininterval=5)

    def on_progress(p) -> None:
        fields = {"loss": f"{p.loss:.3f}", "lr": f"{p.lr:.1e}"}
        if p.tokens_per_s:
            fields["tok/s"] = f"{p.tokens_per_s:,.0f}"
        bar.set_postfix(fields, refresh=False)
        bar.update(p.step - bar.n)
        if main and p.val_loss is not None:
            best = f" (best {p.best_val_loss:.4f})" if p.best_val_loss is not None else ""
            bar.write(f"step {p.step}: {train_name} {p.loss:.4f} {val_name} {p.val_loss:.4f}{best}")

    return on_progress, bar.close


def load_or_exit(load, stem, **kwargs):
    """`load(stem, **kwargs)` from a domain, or exit with the checkpoint error in one line (a
    command line should name the bad file, not print a traceback)."""
    try:
        return load(stem, **kwargs)
    except checkpoint.CheckpointError as error:
        sys.exit(f"error: {error}")
