"""Tabs whose domain is not built yet say so plainly."""

from __future__ import annotations

import gradio as gr


def create_placeholder_tab(title: str, what: str) -> None:
    gr.Markdown(f"### {title}\n\n**Not ready yet.** {what}\n\nThe Text tab works today.")
