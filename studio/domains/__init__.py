"""One module per domain, each with the same surface: a codec, a model, generate, render."""
