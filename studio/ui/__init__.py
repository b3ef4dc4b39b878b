"""Gradio tab builders: wiring only. The only package of studio/ that imports gradio."""
