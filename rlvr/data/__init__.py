"""Data: loading and checking rows, benchmark readers, prompt templates, built-in tasks."""
from rlvr.data.loading import Rows, load_rows, read_file
from rlvr.data.templates import render_prompt, render_response

__all__ = ["Rows", "load_rows", "read_file", "render_prompt", "render_response"]
