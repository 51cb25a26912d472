"""Training pipeline (installed as tinyllm.train): data, tokenizer, shards, pretrain, SFT, eval."""
