"""The shipped default model (package data; no Python imports)."""
