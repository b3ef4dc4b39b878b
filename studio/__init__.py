"""LSTM Studio: generate sequences with LSTMs and see why they come out the way they do."""

__version__ = "0.1.0"
