"""Serving: the daemon that keeps the model loaded (daemon), the thin client that talks to it (client),
the process helpers both use (process), the wire protocol (protocol) and the suggestion service
behind the daemon (suggest, suggestion).

client, process and protocol are on the path of every plain request: standard library only (tests
check the import budget). May import: tinyllm.infer, tinyllm.knowledge, tinyllm.formats. Never cli,
train or torch.
"""
