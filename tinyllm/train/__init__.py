"""Training pipeline: data sources, pairs, corpus, tokenizer, shards, the torch model (model, device),
pretraining, SFT, evaluation, metrics, learning curves (curve), reports, export and shipping, and the
nl2cmd-train CLI (cli).

Sits beside the serving stack: may import tinyllm.infer, tinyllm.knowledge and tinyllm.formats, never
serve or cli. The only package that imports torch. `data/` holds the project's own pairs.
"""
