"""nl2cmd / TinyLLM: plain English to shell commands with a tiny local language model.

The subpackages are layers; a module imports only from its own layer and the layers below it
(tests/test_layers.py checks this):

    cli        the nl2cmd command line (console entry, click app, REPL, shell integration)
    serve      the daemon, the thin client that talks to it, the wire protocol, the suggestion service
    infer      generation: the numpy and C engines, decoding, the runtime that ties them together
    knowledge  what the project knows about shell text: normalisation, the shell lexer, safety,
               the program lexicon, retrieval, the user's own pairs
    formats    the lowest layer: model config, prompt layout, tokenizer, checkpoint files, state paths,
               settings

`train` (data, tokenizer and model training, evaluation, the torch model) sits beside them and may use
formats, knowledge and infer, never serve or cli; it is the only package that imports torch. `shell`
(the widget scripts) and `models` (the shipped model) hold package data.
"""

__version__ = "0.1.0"
