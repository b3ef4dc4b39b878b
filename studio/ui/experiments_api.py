"""The experiments as API endpoints (/probe, /intervene, /compare), for any domain: the same answers
as `python -m studio probe|intervene|compare`, as JSON."""

from __future__ import annotations

import gradio as gr

from studio import cli_experiments, experiments, gpu
from studio.ui.common import clamp_int, endpoint_input, endpoint_model


def register(loaded_by_domain: dict) -> None:
    """Add the three endpoints to the Blocks being built (app.py calls it inside its Blocks)."""
    def pick(domain, model):
        return endpoint_model(loaded_by_domain, domain, model)

    def probe(domain: str, model: str, text: str, file: str | None, feature: str, top: float) -> dict:
        """Which (layer, unit, quantity) track a feature (a name from the domain's features, or for text a regex)."""
        module, loaded = pick(domain, model)
        try:
            track, steps, hits = gpu.long_call(cli_experiments.probe, module, loaded,
                                               endpoint_input(module, loaded, text, file), str(feature),
                                                       top=clamp_int(top, 1, 100, 10))
        except ValueError as error:
            raise gr.Error(str(error)) from None
        return {"steps": steps, "feature": feature, "on_fraction": float((track > 0).mean()),
                "measure": "auc" if experiments.is_binary(track.astype(float)) else "correlation",
                "hits": [vars(hit) for hit in hits]}

    def intervene(domain: str, model: str, seed: float, ablate: str, clamp: str, from_step: float) -> dict:
        """Generate twice with one seed, plainly and with units ablated ('L:U,...') or clamped ('L:U:Q=V,...')."""
        module, loaded = pick(domain, model)
        try:
            if not all(isinstance(x, str | None) for x in (ablate, clamp)):
                raise ValueError("ablate and clamp are strings: 'L:U,...' and 'L:U:QUANTITY=VALUE,...'")
            hooks = experiments.intervention_hooks(ablate or "", clamp or "", clamp_int(from_step, 0, 10**6, 0))
        except ValueError as error:
            raise gr.Error(str(error)) from None
        if not hooks:
            raise gr.Error("Nothing to change: give units to ablate or clamp.")
        return cli_experiments.intervene(module, loaded, clamp_int(seed, 0, 2**31, 0), hooks)

    def compare(domain: str, model: str, model_b: str, text: str, file: str | None) -> dict:
        """Linear CKA of every layer pair of two models (or one model with itself) on one input."""
        module, first = pick(domain, model)
        _, second = pick(domain, model_b) if model_b else (module, first)
        try:
            traces = [gpu.long_call(module.score, loaded, endpoint_input(module, loaded, text, file)).trace
                      for loaded in (first, second)]
        except ValueError as error:
            raise gr.Error(str(error)) from None
        return {"cka": [{"layer_a": a, "layer_b": b, "cka": value} for a, b, value in cli_experiments.compare(*traces)]}

    gr.api(probe, api_name="probe")
    gr.api(intervene, api_name="intervene")
    gr.api(compare, api_name="compare")
