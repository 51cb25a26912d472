"""The lowest layer: the formats everything else reads and writes.

Model configuration (config), the prompt layout and platform tokens (prompt), the SentencePiece
tokenizer (tokenizer), inference checkpoint files (checkpoint), the user's state directories (paths)
and settings file (settings).

May import: the standard library, numpy, sentencepiece and platformdirs; nothing else from tinyllm.
"""
