"""What the project knows about shell text, independent of any model.

Normalisation of requests and commands (text), the shell lexer (shellparse), the danger classifier
(safety), the lexicon of known programs (tools), the BM25 nearest-neighbour index (retrieval), the
user's own instruction/command pairs (userpairs), the local manual pages (manpages) and the
part-by-part explanation of a command (explain).

May import: tinyllm.formats, the standard library and numpy. Never infer, serve, cli, train or torch.
"""
