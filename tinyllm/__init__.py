"""nl2cmd / TinyLLM: plain English to shell commands with a tiny local language model."""

__version__ = "0.1.0"
