"""Shapelens: PyTorch tensor shapes and shape bugs in the editor, from a trace of the user's own model."""

__version__ = "0.1.0"
