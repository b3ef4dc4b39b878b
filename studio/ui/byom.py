"""'Open your model' (a Keras or PyTorch file and its vocabulary, opened as a studio model with
studio.importer and listed at once in its tab) and the ONNX download (studio.onnx_export). Shared:
a tab passes its domain, its loaded models and its model dropdown."""

from __future__ import annotations

import re
from pathlib import Path

import gradio as gr

from studio import checkpoint, import_cli, importer, jobs, onnx_export, user_models
from studio.ui.blocks import describe, loaded_or_error
from studio.ui.common import output_dir

FORMAT_OF_SUFFIX = {".keras": "keras", ".h5": "keras", ".hdf5": "keras", ".pt": "torch", ".pth": "torch",
                    ".safetensors": "torch", ".bin": "torch"}


def _path(upload) -> str | None:
    if upload is None:
        return None
    return upload if isinstance(upload, str) else getattr(upload, "name", None)


def open_model_box(domain, models: dict, dropdown: gr.Dropdown, info: gr.Markdown | None, prefix: str, title: str = ""):
    """The 'Open your model' accordion: under a tab's model header (info: its description), or in the
    Train tab (info None). Returns the Open button's event, for what else should follow an opening."""
    with gr.Accordion(f"Open your model{title} (Keras .keras/.h5, PyTorch state_dict)", open=False,
                      elem_id=f"{prefix}-byom"):
        model_file = gr.File(label="Model file", elem_id=f"{prefix}-byom-file")
        vocab_file = gr.File(label="Its training text (or a JSON list of its tokens)", elem_id=f"{prefix}-byom-vocab")
        with gr.Row():
            vocab_kind = gr.Radio(["training text", "token list"], value="training text", label="The second file is")
            tokens = gr.Radio(["chars", "words"], value="chars", label="Tokens")
            lower = gr.Checkbox(False, label="Lower-case the text first")
        open_button = gr.Button("Open", elem_id=f"{prefix}-byom-open")
        message = gr.Markdown(elem_id=f"{prefix}-byom-message")

    def on_open(model_upload, vocab_upload, kind, token_kind, lowered):
        values = opened(model_upload, vocab_upload, kind, token_kind, lowered)
        return values if info is not None else (values[0], values[2])  # (dropdown, description, message)

    def opened(model_upload, vocab_upload, kind, token_kind, lowered):
        path, vocab = _path(model_upload), _path(vocab_upload)
        if not path:
            return gr.skip(), gr.skip(), "Choose the model file first."
        if not vocab:
            return gr.skip(), gr.skip(), ("Choose its training text or token list too: the file does not hold its "
                                          "vocabulary.")
        fmt = FORMAT_OF_SUFFIX.get(Path(path).suffix.lower())
        if fmt is None:
            return gr.skip(), gr.skip(), (f"{Path(path).name} is not a .keras, .h5, .pt, .pth or .safetensors file.")
        name = re.sub(r"[^\w.-]+", "-", Path(path).stem).strip("-.") or "opened"
        name = f"{name}-opened" if name in models else name
        # an opened model is its opener's, as a trained one is (studio.user_models): in their folder on a
        # shared server, listed in their tables only
        users = getattr(models, "users", None)
        folder = jobs.USER_MODELS_DIR if users is None else users.folder_of(user_models.current_owner.get())
        if folder is None:
            return gr.skip(), gr.skip(), "This server is shared: reload the page so that it knows whose model this is."
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / name
        text_flags = {"vocab_text": vocab} if kind == "training text" else {"vocab": vocab}
        try:
            import_cli.import_file(domain, path, fmt, stem, lower=bool(lowered), tokens=token_kind or "chars",
                                   **text_flags)
            loaded = domain.load(stem)
        except (importer.ImportRefused, checkpoint.CheckpointError) as error:
            return gr.skip(), gr.skip(), f"**Not opened:** {error}"
        if users is None:  # a plain table (no user models folder): it holds the model itself
            models[loaded.name] = loaded
        return (gr.update(choices=list(models), value=loaded.name), describe(loaded),
                f"Opened **{loaded.name}** (saved in `{stem}`).")

    outputs = [dropdown, info, message] if info is not None else [dropdown, message]
    return open_button.click(on_open, [model_file, vocab_file, vocab_kind, tokens, lower], outputs,
                             api_visibility="private")


def onnx_button(models: dict, dropdown: gr.Dropdown, prefix: str) -> None:
    """'Export ONNX': the picked model's sampling step as an .onnx file, or why it cannot be."""
    with gr.Row():
        button = gr.Button("Export ONNX (one step, state in and out)", size="sm", elem_id=f"{prefix}-onnx")
        file = gr.File(label="ONNX", elem_id=f"{prefix}-onnx-file")
    message = gr.Markdown()

    def on_export(name):
        loaded = loaded_or_error(models, name)
        try:
            path = onnx_export.export(loaded.model, output_dir() / f"{loaded.name}.onnx",
                                      loaded.card.get("description", ""))
        except onnx_export.ExportError as error:
            return None, str(error)
        shape = onnx_export.step_shape(loaded.model)
        inputs = ["token"] * shape.has_token + [f"features ({shape.feature_size} per step)"] * bool(shape.feature_size)
        return str(path), (f"Inputs: {', '.join(inputs)}, h, c (zeros to start); outputs: logits, h_out, c_out "
                           "(docs/byom.md, ONNX).")

    button.click(on_export, [dropdown], [file, message], api_visibility="private")
