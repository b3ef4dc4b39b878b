"""Input components that never turn a bad value into a bare "Error".

Gradio checks a Number's, Slider's, Dropdown's or Radio's value before the handler runs; a string,
a list, NaN or an infinity sent to the API fails there with a Python error the user sees as "Error"
and the server logs as a traceback. These give Gradio's components a tolerant check: a bad number
goes through as None (the handler's own default, through studio.ui.common.number_or / clamp_int,
which every handler uses), a value that is not one of the choices gets a sentence. Everything else
is Gradio's.

    from studio.ui import inputs
    seed = inputs.Number(0, label="Seed", precision=0)

(Factories, not subclasses: Gradio writes a .pyi stub next to the source of every component
subclass it sees.)
"""

from __future__ import annotations

import math
from types import MethodType

import gradio as gr


def _plain_number(payload) -> bool:
    return isinstance(payload, int | float) and not isinstance(payload, bool) and math.isfinite(payload)


def _number(self, payload):
    if payload is not None and not _plain_number(payload):
        return None  # "abc", [1], NaN, inf: the handler's default
    return type(self).preprocess(self, payload)


def _slider(self, payload):
    if not _plain_number(payload):
        return None
    return type(self).preprocess(self, payload)


def _choice(self, payload):
    """The payload if it is one of the choices (or allowed as a custom value), else a sentence."""
    if getattr(self, "multiselect", False):
        return type(self).preprocess(self, payload)
    values = [value for _, value in self.choices]
    hashable = isinstance(payload, str | int | float) and not isinstance(payload, bool)
    if payload is None or (hashable and (payload in values or getattr(self, "allow_custom_value", False))):
        return type(self).preprocess(self, payload)
    shown = ", ".join(map(str, values[:12])) + (" …" if len(values) > 12 else "")
    raise gr.Error(f"{self.label or 'This field'}: {str(payload)[:60]!r} is not one of the choices ({shown}).")


def _tolerant(component, check):
    component.preprocess = MethodType(check, component)
    return component


def Number(*args, **kwargs) -> gr.Number:  # noqa: N802 (named as the component it makes)
    return _tolerant(gr.Number(*args, **kwargs), _number)


def Slider(*args, **kwargs) -> gr.Slider:  # noqa: N802
    return _tolerant(gr.Slider(*args, **kwargs), _slider)


def Dropdown(*args, **kwargs) -> gr.Dropdown:  # noqa: N802
    return _tolerant(gr.Dropdown(*args, **kwargs), _choice)


def Radio(*args, **kwargs) -> gr.Radio:  # noqa: N802
    return _tolerant(gr.Radio(*args, **kwargs), _choice)
