"""Generation without torch: the numpy engine (engine), the int8 C engine (cengine, _kernels.c),
decoding (generate: greedy, beam search) and the runtime that loads a checkpoint and ties them
together (runtime).

May import: tinyllm.knowledge, tinyllm.formats, the standard library, numpy and ctypes. Never serve,
cli, train or torch.
"""

ENGINES = ("auto", "numpy", "c-int8")
"""The engine names NL2CMD_ENGINE and ``--engine`` accept ("auto": the int8 C engine where it runs, else numpy)."""
