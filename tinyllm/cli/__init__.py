"""The nl2cmd command line: the console script (entry: plain requests skip click), the click-free half
of the CLI (frontend), the click app (app), the REPL (repl) and shell integration (shell_init).

The top layer: may import serve, infer, knowledge and formats. Never train or torch.
"""
