"""`nl2cmd-train`: data, corpus, tokenizer, shards, pretrain, sft, eval, curve, scoreboard, average,
rank-tune, pair, ship, report, and `all`.

Importable without torch: a base install prints which extra to install instead of a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path

import click

from tinyllm.infer import ENGINES

DEFAULT_MAN_CACHE = "~/.cache/nl2cmd/man"
TRAIN_EXTRA_HINT = "training needs the [train] extra: pip install 'nl2cmd[train]'"


class StageError(click.ClickException):
    """A user-facing failure: printed as one line, exit status 1."""

    def show(self, file=None) -> None:
        click.echo(f"nl2cmd-train: error: {self.message}", err=True)


def needs_torch(fn):
    """Fail with one line (not an ImportError traceback) when the training extra is missing. Only torch is
    checked: `datasets` serves `corpus --hf` alone, which says so itself when it is missing."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            import torch  # noqa: F401
        except ImportError:
            raise StageError(TRAIN_EXTRA_HINT) from None
        return fn(*args, **kwargs)

    return wrapper


def user_errors(fn):
    """Turn the pipeline's documented exceptions into one-line errors."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from tinyllm.formats.checkpoint import CheckpointError

        from .sources import DataError

        try:
            return fn(*args, **kwargs)
        except (DataError, CheckpointError, FileExistsError, FileNotFoundError, ValueError) as exc:
            raise StageError(str(exc)) from None

    return wrapper


def stage(fn):
    return click.pass_context(needs_torch(user_errors(fn)))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="nl2cmd")
def cli() -> None:
    """Train the nl2cmd model end to end: corpus, tokenizer, pretraining, SFT, evaluation.

    `nl2cmd-train all --preset micro --data-dir ../shared/data --out runs/micro` runs every stage.
    """


def _plan(preset: str):
    from .presets import PLANS

    if preset not in PLANS:
        raise StageError(f"unknown preset {preset!r}; choose from {', '.join(PLANS)}")
    return PLANS[preset]


preset_opt = click.option("--preset", default="default", show_default=True, help="micro | small | default | medium | large | seed")
out_opt = click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
                       help="Run folder (all stage outputs go here).")
data_opt = click.option("--data-dir", type=click.Path(path_type=Path), default=Path("../shared/data"),
                        show_default=True, help="Folder with tldr/pages and nl2bash/.")
device_opt = click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | mps")


# ---------------------------------------------------------------------------------------------
@cli.command()
@data_opt
@out_opt
@click.option("--extra", "extra", multiple=True, type=click.Path(path_type=Path), help="More pair files (JSONL/raw).")
@click.option("--no-augment", is_flag=True, help="Skip the placeholder-filling augmentation.")
@click.option("--download-tldr", is_flag=True, help="Download the tldr-pages archive first (needs network).")
@click.option("--strict", is_flag=True, help="Stop at the first malformed page or line (default: report and skip).")
@click.option("--core-repeat", type=click.IntRange(min=0), default=None,
              help="Copies of each of the project's own everyday pairs in train (default 3; 0 leaves them out).")
@stage
def data(ctx, data_dir: Path, out: Path, extra, no_augment: bool, download_tldr: bool, strict: bool,
         core_repeat: int | None) -> None:
    """Build instruction/command pairs with leak-free train/dev/test splits."""
    run_data(data_dir, out, extra, not no_augment, download_tldr, strict, core_repeat)


def run_data(data_dir: Path, out: Path, extra=(), augment: bool = True, download: bool = False,
             strict: bool = False, core_repeat: int | None = None) -> dict:
    from .pairs import build_pairs

    if download:
        import zipfile

        from .sources import download_tldr

        archive = download_tldr(out / "downloads")
        click.echo(f"downloaded {archive}", err=True)
        merged = out / "downloads" / "data"
        with zipfile.ZipFile(archive) as zf:  # the zip holds pages/<platform>/*.md
            zf.extractall(merged / "tldr")
        if (Path(data_dir) / "nl2bash").is_dir() and not (merged / "nl2bash").exists():
            (merged / "nl2bash").symlink_to((Path(data_dir) / "nl2bash").resolve())
        data_dir = merged
    return build_pairs(data_dir, out / "pairs", extra_jsonl=list(extra), augment=augment, strict=strict,
                       core_repeat=core_repeat)


@cli.command()
@data_opt
@out_opt
@click.option("--man-cache", default=DEFAULT_MAN_CACHE, show_default=True, help="Rendered man page cache.")
@click.option("--limit-man", type=int, default=None, help="Render at most N man pages.")
@click.option("--text", "texts", multiple=True, type=click.Path(exists=True, path_type=Path), help="Extra text files/folders.")
@click.option("--hf", default=None, help="A Hugging Face dataset to stream, e.g. wikimedia/wikipedia:20231101.en")
@click.option("--hf-limit", type=int, default=10000, show_default=True, help="Documents to take from --hf.")
@click.option("--own-pairs/--no-own-pairs", default=True, show_default=True,
              help="Include the project's own pairs as plain text (held-out commands removed).")
@click.option("--workers", type=int, default=2, show_default=True)
@stage
def corpus(ctx, data_dir, out, man_cache, limit_man, texts, hf, hf_limit, own_pairs, workers) -> None:
    """Build the pretraining text corpus (man pages, tldr text, own pairs, text files, optional HF dataset)."""
    run_corpus(data_dir, out, man_cache, limit_man, texts, hf, hf_limit, workers, own_pairs=own_pairs)


def run_corpus(data_dir, out: Path, man_cache=DEFAULT_MAN_CACHE, limit_man=None, texts=(), hf=None, hf_limit=10000,
               workers: int = 2, own_pairs: bool = True) -> Path:
    from .corpus import build_corpus
    from .pairs import CORE_PAIRS, own_pair_files

    hf_spec = None
    if hf:
        name, _, config = hf.partition(":")
        hf_spec = {"name": name, "config": config or None, "limit": hf_limit}
    held_out = [out / "pairs" / "dev.jsonl", out / "pairs" / "test.jsonl"]
    missing = [p for p in held_out if not p.is_file()]
    if missing:  # the tldr text must not teach the held-out commands
        raise StageError(f"{missing[0]} not found: run `nl2cmd-train data --out {out}` before the corpus stage")
    pair_files = own_pair_files(CORE_PAIRS) if own_pairs else []
    return build_corpus(out / "corpus", Path(man_cache).expanduser(), data_dir, text_paths=list(texts), hf=hf_spec,
                        limit_man=limit_man, exclude_pairs=held_out, pair_files=pair_files, workers=workers)


@cli.command()
@out_opt
@preset_opt
@click.option("--vocab-size", type=int, default=None, help="Default: the preset's.")
@click.option("--model-type", type=click.Choice(["bpe", "unigram"]), default="bpe", show_default=True)
@click.option("--from-model", type=click.Path(path_type=Path), default=None,
              help="Copy the tokenizer of this inference model (.npz) instead of training one (to continue it).")
@stage
def tokenizer(ctx, out, preset, vocab_size, model_type, from_model) -> None:
    """Train the SentencePiece tokenizer on the corpus and the pairs."""
    if from_model is not None:
        copy_model_tokenizer(from_model, out)
        return
    run_tokenizer(out, vocab_size or _plan(preset).vocab_size, model_type)


def _read_model(path: Path):
    """An inference model file (InferenceCheckpoint); a bad file is a one-line StageError."""
    from tinyllm.formats.checkpoint import CheckpointError, load_inference

    try:
        return load_inference(path)
    except CheckpointError as exc:
        raise StageError(str(exc)) from None


def copy_model_tokenizer(model_path: Path, out: Path) -> Path:
    """Write the tokenizer stored in an inference model to OUT/tokenizer/tokenizer.model."""
    ckpt = _read_model(model_path)
    dest = out / "tokenizer" / "tokenizer.model"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(ckpt.tokenizer_bytes)
    return dest


def run_tokenizer(out: Path, vocab_size: int, model_type: str = "bpe") -> Path:
    from .tokenizer_train import train_tokenizer

    corpus_txt = out / "corpus" / "corpus.txt"
    if not corpus_txt.is_file():
        raise StageError(f"{corpus_txt} not found: run `nl2cmd-train corpus --out {out}` first")
    return train_tokenizer(corpus_txt, [out / "pairs" / "train.jsonl"], out / "tokenizer" / "tokenizer",
                           vocab_size=vocab_size, model_type=model_type)


@cli.command()
@out_opt
@click.option("--workers", type=int, default=2, show_default=True)
@stage
def shards(ctx, out, workers) -> None:
    """Tokenize the corpus into uint16 .npy shards with a manifest."""
    run_shards(out, workers)


def run_shards(out: Path, workers: int = 2) -> dict:
    from .shards import write_shards

    tok = out / "tokenizer" / "tokenizer.model"
    if not tok.is_file():
        raise StageError(f"{tok} not found: run `nl2cmd-train tokenizer --out {out}` first")
    return write_shards(out / "corpus" / "corpus.txt", tok, out / "shards", workers=workers)


# ---------------------------------------------------------------------------------------------
def _train_overrides(tc, steps, batch_size, lr, device, compile_, no_bf16, grad_accum, ckpt_every=None,
                     eval_every=None):
    from dataclasses import replace

    given = {"steps": steps, "batch_size": batch_size, "lr": lr, "grad_accum": grad_accum, "ckpt_every": ckpt_every,
             "eval_every": eval_every}
    changes = {k: v for k, v in given.items() if v is not None}
    changes["device"] = device
    if compile_:
        changes["compile"] = True
    if no_bf16:
        changes["bf16"] = False
    return replace(tc, **changes)


def train_opts(fn):
    for opt in reversed([
        click.option("--steps", type=int, default=None, help="Optimizer steps (default: the preset's)."),
        click.option("--batch-size", type=int, default=None),
        click.option("--grad-accum", type=int, default=None),
        click.option("--ckpt-every", type=int, default=None, help="Checkpoint every N steps."),
        click.option("--eval-every", type=click.IntRange(min=0), default=None,
                     help="Evaluate on held-out data every N steps (default: the preset's; 0: never, and sft keeps no best.npz)."),
        click.option("--lr", type=float, default=None),
        click.option("--compile", "compile_", is_flag=True, help="torch.compile the model."),
        click.option("--no-bf16", is_flag=True, help="Train in full fp32."),
        click.option("--resume", is_flag=True, help="Continue the run in --out exactly where it stopped."),
        click.option("--until", type=int, default=None,
                     help="Stop (checkpointed) at this step, keeping the --steps schedule: time-boxed runs, ablations."),
        device_opt,
    ]):
        fn = opt(fn)
    return fn


@cli.command()
@out_opt
@preset_opt
@train_opts
@stage
def pretrain(ctx, out, preset, steps, batch_size, grad_accum, ckpt_every, eval_every, lr, compile_, no_bf16, resume,
             until, device) -> None:
    """Pretrain on the token shards (resumable; DDP under torchrun)."""
    plan = _plan(preset)
    tc = _train_overrides(plan.pretrain, steps, batch_size, lr, device, compile_, no_bf16, grad_accum, ckpt_every,
                          eval_every)
    run_pretrain(out, plan, tc, resume, until)


def run_pretrain(out: Path, plan, tc, resume: bool, until: int | None = None) -> None:
    from tinyllm.formats.config import ModelConfig
    from tinyllm.formats.tokenizer import Tokenizer

    from .pretrain import pretrain as do_pretrain
    from .shards import load_shards

    tok = Tokenizer.from_file(out / "tokenizer" / "tokenizer.model")
    cfg = ModelConfig.from_name(plan.model, vocab_size=tok.vocab_size)
    manifest = json.loads((out / "shards" / "manifest.json").read_text())
    meta = {"tokenizer_sha256": tok.sha256, "shards": manifest.get("fingerprint", "")}
    t0 = time.time()
    do_pretrain(cfg, tc, load_shards(out / "shards", "train"), load_shards(out / "shards", "val"), out / "pretrain",
                meta, seq_len=plan.seq_len, resume=resume, until=until)
    _record_time(out, "pretrain", time.time() - t0)


@cli.command()
@out_opt
@preset_opt
@train_opts
@click.option("--from-scratch", is_flag=True, help="Skip pretrained weights (ablation).")
@click.option("--init", "init_ckpt", type=click.Path(path_type=Path), default=None,
              help="Start from a training checkpoint (.pt) or an inference model (.npz) with the same config and tokenizer (default: OUT/pretrain/last.pt).")
@click.option("--retrieval-k", default=None, help="Comma list of k drawn per row, e.g. 0,2 (default: preset's).")
@click.option("--sft-dir", default="sft", show_default=True, help="Sub-folder of --out for this SFT run.")
@click.option("--max-train-pairs", type=int, default=None, help="Use a deterministic subset of the train pairs.")
@click.option("--no-augment", is_flag=True, help="Drop the augmented rows (ablation).")
@click.option("--snapshot-every", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also write the weights as SFT-DIR/snap_STEP.npz every N steps (for `curve` and `average`; 0: never).")
@click.option("--pairs", "pairs_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Pairs folder to train on (train.jsonl, dev.jsonl, pairs_manifest.json; default: OUT/pairs), "
                   "e.g. another `data` stage's for a stage on another mixture.")
@stage
def sft(ctx, out, preset, steps, batch_size, grad_accum, ckpt_every, eval_every, lr, compile_, no_bf16, resume, until,
        device, from_scratch, init_ckpt, retrieval_k, sft_dir, max_train_pairs, no_augment, snapshot_every,
        pairs_dir) -> None:
    """Instruction fine-tuning with the prompt masked; keeps the best dev checkpoint as best.npz."""
    plan = _plan(preset)
    tc = _train_overrides(plan.sft, steps, batch_size, lr, device, compile_, no_bf16, grad_accum, ckpt_every, eval_every)
    ks = tuple(int(k) for k in retrieval_k.split(",")) if retrieval_k else plan.retrieval_k
    run_sft(out, plan, tc, resume, from_scratch, init_ckpt, ks, sft_dir, max_train_pairs, not no_augment, until,
            snapshot_every, pairs_dir)


def load_jsonl(path: Path) -> list[dict]:
    """Rows of a pairs file (the data stage's, or one given on the command line): objects with a string
    "instruction" and "command"; ValueError naming the file and line otherwise."""
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} line {n}: not JSON ({exc.msg})") from None
            if not (isinstance(row, dict) and isinstance(row.get("instruction"), str)
                    and isinstance(row.get("command"), str)):
                raise ValueError(f"{path} line {n}: a row needs a string instruction and command")
            rows.append(row)
    return rows


def run_sft(out: Path, plan, tc, resume: bool, from_scratch: bool = False, init_ckpt: Path | None = None,
            ks: tuple[int, ...] = (0,), sft_dir: str = "sft", max_train_pairs: int | None = None,
            augment: bool = True, until: int | None = None, snapshot_every: int = 0,
            pairs_dir: Path | None = None) -> Path:
    import numpy as np
    import torch

    from tinyllm.formats.config import ModelConfig
    from tinyllm.formats.prompt import training_platform
    from tinyllm.formats.tokenizer import Tokenizer
    from tinyllm.knowledge.retrieval import BM25Index

    from .evaluate import evaluate, model_predictor, neighbours
    from .export import export_inference
    from .model import Transformer
    from .sft import build_example
    from .sft import sft as do_sft
    from .state import load_train_state

    tok = Tokenizer.from_file(out / "tokenizer" / "tokenizer.model")
    cfg = ModelConfig.from_name(plan.model, vocab_size=tok.vocab_size)
    pairs_dir = Path(pairs_dir) if pairs_dir else out / "pairs"
    for name in ("train.jsonl", "dev.jsonl", "pairs_manifest.json"):
        if not (pairs_dir / name).is_file():
            raise StageError(f"{pairs_dir / name} not found (run the data stage into {pairs_dir.parent})")
    # The start is checked before the examples are built: a wrong --init fails in seconds, not minutes.
    torch.manual_seed(tc.seed)
    model = Transformer(cfg)
    source = "scratch"
    if resume and (out / sft_dir / "last.pt").is_file():
        # The weights come from the run's own checkpoint: the start it was made from is not needed again.
        source = load_train_state(out / sft_dir / "last.pt")["run"].get("init", source)
    elif not from_scratch:
        init_ckpt = init_ckpt or out / "pretrain" / "last.pt"
        if init_ckpt.suffix == ".npz":  # continue from an inference checkpoint (e.g. the shipped model)
            _load_inference_init(model, init_ckpt, cfg, tok)
        else:
            st = load_train_state(init_ckpt)
            if st["model_config"] != cfg.to_dict() or st["run"].get("tokenizer_sha256") != tok.sha256:
                raise StageError(f"{init_ckpt}: pretrained with another model config or tokenizer")
            model.load_state_dict(st["model"])
        source = str(init_ckpt)
    rows = load_jsonl(pairs_dir / "train.jsonl")
    if not augment:
        rows = [r for r in rows if not r["source"].endswith("_aug")]
    if max_train_pairs:
        keep = np.random.default_rng(0).permutation(len(rows))[:max_train_pairs]
        rows = [rows[i] for i in sorted(keep)]
    dev = load_jsonl(pairs_dir / "dev.jsonl")
    index = BM25Index.build(rows)
    index.with_tools()  # saved with it: serving's named-program step reads it
    run_dir = out / sft_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    index.save(run_dir / "retrieval.idx")
    rng = np.random.default_rng(tc.seed)
    examples = []
    for row in rows:
        k = int(rng.choice(ks))
        shown = training_platform(row.get("platform", "linux"), row["instruction"])  # the tag build_example uses
        ex = build_example(tok, row, neighbours(index, row, k, shown) if k else (), plan.sft_max_len)
        if ex is not None:
            examples.append(ex)
    click.echo(f"sft: {len(examples)} examples, retrieval k in {ks}", err=True)

    eval_k = max(ks)
    dev_rows = dev[:: max(1, len(dev) // plan.dev_eval_rows)][: plan.dev_eval_rows]  # spread over all sources
    pairs_manifest = json.loads((pairs_dir / "pairs_manifest.json").read_text())
    meta = {"tokenizer_sha256": tok.sha256, "init": source, "retrieval_k": eval_k, "retrieval_k_train": list(ks),
            "data_fingerprint": pairs_manifest.get("fingerprint", ""), "augment": augment}

    def eval_fn(m: Transformer, step: int) -> dict:
        runtime = _runtime_from_torch(m, tok, eval_k)
        summary, _ = evaluate(dev_rows, model_predictor(runtime, index, eval_k))
        score = (summary["exact_match"] + summary["template_acc"]) / 2
        return {"step": step, "n": summary["n"], "exact_match": summary["exact_match"],
                "template_acc": summary["template_acc"], "command_name_acc": summary["command_name_acc"], "metric": score}

    def on_best(m: Transformer, metrics: dict) -> None:
        export_inference(m, tok, run_dir / "best.npz", {**meta, "step": metrics["step"], "dev": metrics,
                                                        "preset": plan.model})

    def on_snapshot(m: Transformer, step: int) -> None:
        export_inference(m, tok, run_dir / f"snap_{step}.npz", {**meta, "step": step, "preset": plan.model})

    t0 = time.time()
    trainer = do_sft(model, tok, tc, examples, run_dir, meta, eval_fn, on_best, resume=resume, until=until,
                     snapshot_every=snapshot_every, on_snapshot=on_snapshot)
    if trainer.rank == 0:  # the final weights as an inference file too: the 300-row dev pick is noisy
        export_inference(trainer.model, tok, run_dir / "last.npz", {**meta, "step": trainer.step, "preset": plan.model})
    _record_time(out, sft_dir, time.time() - t0)
    return run_dir / "best.npz"


def _load_inference_init(model, path: Path, cfg, tok) -> None:
    """Initialise `model` from an inference checkpoint (.npz: float16 weights, no optimizer state)."""
    from tinyllm.formats.tokenizer import Tokenizer

    from .model import load_numpy_state

    ckpt = _read_model(path)
    if ckpt.config.to_dict() != cfg.to_dict() or Tokenizer(ckpt.tokenizer_bytes).sha256 != tok.sha256:
        raise StageError(f"{path}: trained with another model config or tokenizer")
    load_numpy_state(model, ckpt.weights)


def _runtime_from_torch(model, tok, retrieval_k: int):
    """A numpy Runtime over the current torch weights (eval uses exactly the serving engine)."""
    from tinyllm.formats.checkpoint import InferenceCheckpoint
    from tinyllm.infer.runtime import Runtime

    from .model import state_to_numpy

    ckpt = InferenceCheckpoint(model.cfg, state_to_numpy(model), tok.model_bytes, {"retrieval_k": retrieval_k})
    return Runtime(ckpt, "<training>")


def _record_time(out: Path, stage_name: str, seconds: float) -> None:
    path = out / "times.json"
    times = json.loads(path.read_text()) if path.is_file() else {}
    times[stage_name] = round(times.get(stage_name, 0) + seconds, 1)
    path.write_text(json.dumps(times, indent=1))


# ---------------------------------------------------------------------------------------------
@cli.command(name="eval")
@click.option("--ckpt", type=click.Path(path_type=Path), default=None, help="Model file (default: the shipped model).")
@click.option("--instructions", type=click.Path(exists=True, path_type=Path), default=None, help="One per line.")
@click.option("--gold", type=click.Path(exists=True, path_type=Path), default=None, help="One per line.")
@click.option("--jsonl", "jsonl_path", type=click.Path(exists=True, path_type=Path), default=None,
              help="Rows with instruction, command (and platform).")
@click.option("--index", "index_path", type=click.Path(path_type=Path), default=None,
              help="Retrieval index (default: the one shipped beside the model).")
@click.option("--retrieval-k", type=int, default=None, help="Retrieved examples per prompt (default: the model's).")
@click.option("--max-new-tokens", type=int, default=96, show_default=True)
@click.option("--limit", type=int, default=None)
@click.option("--beam", type=int, default=1, show_default=True)
@click.option("--rerank", type=int, default=None,
              help="Add the commands of the N nearest training requests to the beam n-best and let the model pick "
                   "(default: the model's own setting).")
@click.option("--output-jsonl", type=click.Path(path_type=Path), default=None)
@click.option("--baseline/--no-baseline", default=True, show_default=True, help="Also score the BM25 nearest neighbour.")
@click.option("--summary-json", type=click.Path(path_type=Path), default=None)
@click.option("--engine", type=click.Choice(ENGINES), default=None,
              help="Inference engine (default: NL2CMD_ENGINE, else auto: int8 C where built, as served).")
@click.option("--named-tools/--no-named-tools", default=None,
              help="Try a command that starts with the program the request names (default: the model's setting).")
@click.option("--ranking/--no-ranking", default=None,
              help="Rank the candidates with the checks and penalties stored in the model (default: when it has them).")
@user_errors
def eval_cmd(ckpt, instructions, gold, jsonl_path, index_path, retrieval_k, max_new_tokens, limit, beam, rerank,
             output_jsonl, baseline, summary_json, engine, named_tools, ranking) -> None:
    """Exact-match evaluation (the serving engine by default; no torch needed) with failure analysis and a
    BM25 baseline row."""
    from tinyllm.formats.checkpoint import default_model_path

    rows = _eval_rows(instructions, gold, jsonl_path)[:limit]
    result, scored, table = run_eval(ckpt or default_model_path(), rows, index_path, retrieval_k, beam,
                                     max_new_tokens, baseline, rerank, engine, named_tools,
                                     None if ranking in (None, True) else False)
    click.echo(f"engine: {result['model']['engine']}")
    click.echo(table)
    click.echo("failures by category: " + json.dumps(result["model"].get("categories", {})))
    click.echo(f"nonsense (no parse, unknown program, stutter): {100 * result['model']['nonsense']:.1f}%")
    if conf := result["model"].get("confidence"):
        click.echo(f"confidence >= 0.8: {conf['high']} answers, right {_share(conf['high_right'])}; "
                   f"below {conf['threshold']} (the note): {conf['low']} answers, right {_share(conf['low_right'])}; "
                   f"the others right {_share(conf['others_right'])}")
    if output_jsonl:
        from .evaluate import write_jsonl

        write_jsonl(output_jsonl, scored)
    if summary_json:
        Path(summary_json).write_text(json.dumps(result, indent=1))


def default_index_path(ckpt: Path) -> Path:
    """The retrieval index that goes with a model file: MODEL.idx beside a shipped model, else the
    run folder's retrieval.idx beside best.npz (eval and ship both look here)."""
    beside = ckpt.with_suffix(".idx")
    return beside if beside.is_file() else ckpt.parent / "retrieval.idx"


def _share(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f}%"


def _second_opinion(runtime, engine: str | None):
    """The second model the file names (tinyllm.infer.second), as a one-line error when it cannot load."""
    from tinyllm.formats.checkpoint import CheckpointError
    from tinyllm.infer.second import SecondOpinion

    try:
        return SecondOpinion.load(runtime, engine)
    except CheckpointError as exc:
        raise StageError(str(exc)) from None


def run_eval(ckpt: Path, rows: list[dict], index_path: Path | None = None, retrieval_k: int | None = None,
             beam: int = 1, max_new_tokens: int = 96, baseline: bool = True,
             rerank: int | None = None, engine: str | None = None,
             named_tools: bool | None = None, ranking=None) -> tuple[dict, list[dict], str]:
    """Score a model file (and the BM25 baseline) on rows; returns (summaries, per-row results, table).
    Decoding settings left None are the model's own (as it serves); `ranking` False turns the model's
    candidate ranking off, RankSettings replace it. The model's summary also holds its "nonsense" share
    (`evaluate.nonsense_share`, with the index's tool lexicon when there is an index)."""
    from tinyllm.infer.runtime import EngineError, Runtime
    from tinyllm.knowledge.retrieval import BM25Index

    from .evaluate import (
        TABLE_HEADER,
        confidence_summary,
        evaluate,
        format_summary,
        model_predictor,
        nearest_neighbour_predictor,
        nonsense_share,
    )

    try:
        runtime = Runtime.load(ckpt, engine)
    except EngineError as exc:
        raise StageError(str(exc)) from None
    index_path = Path(index_path) if index_path else default_index_path(Path(ckpt))
    index = BM25Index.load(index_path) if index_path.is_file() else None
    k = runtime.retrieval_k if retrieval_k is None else retrieval_k
    if k and index is None:
        raise StageError(f"retrieval k={k} needs an index; {index_path} not found (pass --index or --retrieval-k 0)")
    rerank = runtime.rerank_n if rerank is None else rerank
    if rerank and index is None:
        raise StageError(f"--rerank needs a retrieval index; {index_path} not found")
    named_tools = runtime.named_tools if named_tools is None else named_tools
    ranking = runtime.ranking if ranking is None else (ranking or None)
    if ranking is not None and (rerank or beam > 1 or k):
        ranking = None  # the ranker works on greedy + named-program + beam candidates without retrieval
    # the ranker's checks read the lexicon even without the named-program step
    tools = index.with_tools() if ((named_tools or ranking is not None) and index is not None) else None
    # the second model of a pair, when the file names one and the model ranks as it serves
    second = _second_opinion(runtime, engine) if ranking is not None else None
    summary, scored = evaluate(rows, model_predictor(runtime, index, k, beam, max_new_tokens=max_new_tokens,
                                                     rerank=rerank, tools=tools, ranking=ranking, named=named_tools,
                                                     second=second))
    summary["nonsense"] = nonsense_share(scored, index.with_tools() if index is not None else None)
    if "confidence" in summary:
        summary["confidence"] = confidence_summary(scored, ranking.threshold)
    mode = f"rerank {rerank} + beam {max(beam, 2)}" if rerank else f"beam={beam}"
    mode += ", named tools" if named_tools and tools is not None else ""
    if ranking is not None:
        when = "every request" if ranking.always_beam else "failed checks" + (
            f" and mean log-prob < {ranking.beam_below:g}" if ranking.beam_below is not None else "")
        mode += f", ranked (beam {ranking.beam} on {when})"
    if second is not None:
        mode += f", second model {Path(second.path).name} below confidence {second.settings.below:g}"
        summary["second"] = second.settings.to_meta()
    lines = [TABLE_HEADER, format_summary(f"model (k={k}, {mode})", summary)]
    summary["engine"] = runtime.engine
    result = {"model": summary}
    if baseline and index is not None:
        base, _ = evaluate(rows, nearest_neighbour_predictor(index))
        lines.append(format_summary("nearest neighbour (BM25)", base))
        result["nearest_neighbour"] = base
    return result, scored, "\n".join(lines)


@cli.command(name="curve")
@click.option("--run", "run_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Run folder (RUN) whose SFT folder holds the snapshots.")
@click.option("--sft-dir", default="sft", show_default=True, help="Sub-folder of RUN with snap_STEP.npz files.")
@click.option("--jsonl", "sets", multiple=True, required=True, metavar="NAME=FILE",
              help="An evaluation set (rows with instruction, command); repeatable. FILE alone is named by its stem.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Score the first N rows of each set.")
@click.option("--offset-hours", type=float, default=0.0, show_default=True,
              help="Training hours before this run (a run continued from another model).")
@click.option("--engine", type=click.Choice(ENGINES), default=None,
              help="Inference engine (default: NL2CMD_ENGINE, else auto, as served).")
@user_errors
def curve_cmd(run_dir, sft_dir, sets, limit, offset_hours, engine) -> None:
    """Score each snapshot RUN/SFT-DIR/snap_STEP.npz on each set as served (greedy, the model's own settings,
    no BM25 row) and add one record per (step, set) to RUN/SFT-DIR/curve.jsonl: step, set, hours, n, exact
    match, command name, template, NLC2CMD, nonsense share. Pairs already recorded are skipped, so it can
    run again while training continues; `report` plots the file.

    Hours: the training loop's wall-clock seconds at the step (`train_s` in RUN/SFT-DIR/log.jsonl, kept
    across resumes) when every log line has them; otherwise from the snapshots' modification times (time
    since the first snapshot, plus the first snapshot's steps at the pace of the first interval; a
    single snapshot has no hours yet; copies that did not keep file times lose this clock). Both count
    evaluation during training, only file times the start-up between resumed chunks; --offset-hours is
    added."""
    from .curve import CURVE_FILE, update_curve

    named = _curve_sets(sets, limit)

    def score(snap: Path, rows: list[dict]) -> dict:
        result, _, _ = run_eval(snap, rows, None, None, beam=1, baseline=False, engine=engine)
        return result["model"]

    def show(r: dict) -> None:
        hours = "?" if r["hours"] is None else f"{r['hours']:.2f}"
        click.echo(f"step {r['step']} ({hours} h) {r['set']}: exact {100 * r['exact_match']:.1f}%, command name "
                   f"{100 * r['command_name_acc']:.1f}%, nonsense {100 * r['nonsense']:.1f}%", err=True)

    new = update_curve(run_dir / sft_dir, named, score, offset_hours, show)
    click.echo(f"{len(new)} new records in {run_dir / sft_dir / CURVE_FILE}")


def _curve_sets(specs: tuple[str, ...], limit: int | None, option: str = "--jsonl") -> dict[str, list[dict]]:
    """Evaluation sets by name from NAME=FILE (or FILE) options, each cut to `limit` rows."""
    sets: dict[str, list[dict]] = {}
    for name, path in _named_paths(specs, option).items():
        sets[name] = _eval_rows(None, None, path)[:limit]
        if not sets[name]:
            raise StageError(f"{option} {name}={path}: {path} has no rows")
    return sets


def _named_paths(specs: tuple[str, ...], option: str) -> dict[str, Path]:
    """Files by name from NAME=FILE (or FILE, named by its stem) options; each must exist."""
    paths: dict[str, Path] = {}
    for spec in specs:
        name, eq, file = spec.partition("=")
        path = Path(file if eq else spec)
        name = name if eq else path.stem
        if not name or name in paths:
            raise StageError(f"{option} {spec}: {'a repeated' if name else 'an empty'} name")
        if "/" in name:
            raise StageError(f"{option} {spec}: a name cannot hold '/'")
        if not path.is_file():
            raise StageError(f"{option} {spec}: {path} not found")
        paths[name] = path
    return paths


@cli.command(name="scoreboard")
@click.option("--model", "models", multiple=True, required=True, metavar="NAME=FILE",
              help="A model file (.npz); repeatable. The first is the baseline of the paired columns.")
@click.option("--index", "indexes", multiple=True, metavar="NAME=FILE",
              help="The retrieval index of model NAME (default: the one beside it, as `eval` finds it).")
@click.option("--set", "sets", multiple=True, required=True, metavar="NAME=FILE",
              help="An evaluation set (rows with instruction, command, accept); repeatable. Names that start "
                   "with 'everyday' are summed in the last row.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the per-row results (reused while model, index and set are unchanged), "
                   "scoreboard.md and scoreboard.json.")
@click.option("--bm25", "bm25", default=None, metavar="NAME",
              help="Whose index gives the nearest-neighbour (BM25) row (default: the first model's).")
@click.option("--engine", type=click.Choice(ENGINES), default=None,
              help="Inference engine (default: NL2CMD_ENGINE, else auto, as served).")
@user_errors
def scoreboard_cmd(models, indexes, sets, out, bm25, engine) -> None:
    """Score models on every set as served, side by side: exact match, command name and nonsense share,
    the BM25 row of one model's index, and each later model against the first, paired (requests only
    one of them gets right, two-sided sign test), then the ship gate of each against the first when a set
    is named dev and one starts with everyday. Scores already in OUT are reused."""
    from .scoreboard import build_table, score_model_sets, ship_gate

    model_paths = _named_paths(models, "--model")
    index_paths = _named_paths(indexes, "--index")
    if unknown := sorted(set(index_paths) - set(model_paths)):
        raise StageError(f"--index {unknown[0]}=...: no --model of that name")
    if bm25 is not None and bm25 not in model_paths:
        raise StageError(f"--bm25 {bm25}: no --model of that name")
    named = _curve_sets(sets, None, "--set")

    def score(model: Path, index: Path | None, rows: list[dict]) -> tuple[dict, list[dict]]:
        result, scored, _ = run_eval(model, rows, index, None, beam=1, engine=engine)
        return result, scored

    def show(model: str, set_name: str, result: dict) -> None:
        m = result["model"]
        click.echo(f"{model} on {set_name}: exact {100 * m['exact_match']:.1f}%, command name "
                   f"{100 * m['command_name_acc']:.1f}% ({m['seconds']:.0f} s)", err=True)

    scores = {}
    for name, path in model_paths.items():
        index = index_paths.get(name) or default_index_path(path)
        scores[name] = score_model_sets(out, name, path, index if index.is_file() else None, named, score, show)
    table, data = build_table(scores, bm25)
    gate_text, data["gate"] = ship_gate(scores)
    if gate_text:
        table += "\n\n" + gate_text
    (out / "scoreboard.md").write_text(table + "\n")
    (out / "scoreboard.json").write_text(json.dumps(data, indent=1))
    click.echo(table)


@cli.command(name="average")
@click.argument("models", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Model file to write (float16).")
@click.option("--weights", default=None, metavar="W1,W2,...",
              help="One positive weight per model (normalised to sum 1), e.g. 0.5,0.5 to interpolate a model "
                   "continued on new data with the one it started from; default: uniform.")
@user_errors
def average_cmd(models, out_path, weights) -> None:
    """Average the weights of MODELS (e.g. a run's last snap_STEP.npz files) into one model file."""
    from .average import average_checkpoints

    parsed = None
    if weights is not None:
        try:
            parsed = [float(w) for w in weights.split(",")]
        except ValueError:
            raise StageError(f"--weights {weights}: not a comma list of numbers") from None
    meta = average_checkpoints(models, out_path, weights=parsed)
    steps = meta.get("averaged_steps")
    how = "weighted mean" if "averaged_weights" in meta else "mean"
    click.echo(f"wrote {out_path}: {how} of {len(models)} models" + (f" (steps {', '.join(map(str, steps))})" if steps else ""))


def calibration_opts(fn):
    """`--calibration FILE` / `--no-calibration`, shared by rank-tune and ship."""
    fn = click.option("--no-calibration", is_flag=True,
                      help="Fit the confidence on the dev split alone (and break no ties with it).")(fn)
    return click.option("--calibration", "calibration_jsonl", default=None,
                        type=click.Path(exists=True, dir_okay=False, path_type=Path),
                        help="Everyday requests with accept lists that the confidence is fitted on beside dev, "
                             "and that break dev's ties in the penalty tuning "
                             "(default: the project's calibration set).")(fn)


def load_calibration(path: Path | None, disabled: bool = False) -> list[dict]:
    """The calibration rows: `path`, else the packaged set; [] when disabled or not packaged."""
    from .rank_tune import CALIBRATION_SET

    if disabled:
        return []
    path = path or CALIBRATION_SET
    return load_jsonl(path) if Path(path).is_file() else []


@cli.command(name="rank-tune")
@click.option("--ckpt", type=click.Path(path_type=Path), default=None, help="Model file (default: the shipped model).")
@click.option("--dev", "dev_jsonl", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="The dev split (rows with instruction, command, optional accept list).")
@click.option("--index", "index_path", type=click.Path(path_type=Path), default=None,
              help="Retrieval index with the tool lexicon (default: the one beside the model).")
@click.option("--candidates", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Decoded candidates: read when the file exists, else written there (saves decoding again).")
@click.option("--report", "report_json", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the tuning report (baseline, ranked, reliability table, settings) as JSON.")
@click.option("--write/--dry-run", default=True, show_default=True,
              help="Store the settings in the model file's metadata.")
@calibration_opts
@user_errors
def rank_tune_cmd(ckpt, dev_jsonl, index_path, candidates, report_json, write, calibration_jsonl,
                  no_calibration) -> None:
    """Fit the candidate ranking (check penalties, beam width, confidence, low-confidence threshold) on the
    dev split and store it in the model file; the index beside it gets the option lexicon if it lacks one.
    The confidence and its threshold are fitted on the dev split and the calibration set together; the
    calibration set also breaks the penalty tuning's ties on dev."""
    from tinyllm.formats.checkpoint import default_model_path

    ckpt = ckpt or default_model_path()
    calibration = load_calibration(calibration_jsonl, no_calibration)
    _, report = fit_and_store_ranking(ckpt, load_jsonl(dev_jsonl), index_path, candidates, calibration, report_json,
                                      write=write)
    click.echo(json.dumps(report, indent=1))
    if write:
        click.echo(f"ranking settings written to {ckpt}")


def fit_and_store_ranking(ckpt: Path, rows: list[dict], index_path: Path | None, candidates: Path | None,
                          calibration: list[dict], report_json: Path | None, write: bool = True):
    """Fit the ranking of `ckpt` (`run_rank_tune`), write the report to `report_json` when given and, with
    `write`, store the settings in the model file's metadata; returns (RankSettings, report)."""
    from tinyllm.formats.checkpoint import update_meta
    from tinyllm.infer.rank import META_KEY

    settings, report = run_rank_tune(ckpt, rows, index_path, candidates, calibration)
    if report_json:
        Path(report_json).write_text(json.dumps(report, indent=1))
    if write:
        update_meta(ckpt, {META_KEY: settings.to_meta()})
    return settings, report


def run_rank_tune(ckpt: Path, rows: list[dict], index_path: Path | None = None, candidates: Path | None = None,
                  calibration: list[dict] | None = None):
    """Decode the dev rows' candidates and the calibration rows' (or read them from `candidates`, where the
    calibration rows carry "split": "calibration"), fit the ranking settings; returns (RankSettings,
    report). Saves the option lexicon into the index when it had none."""
    from tinyllm.infer.runtime import Runtime
    from tinyllm.knowledge.retrieval import BM25Index

    from .rank_tune import (
        add_beams,
        add_filled,
        add_retrieved,
        decode_candidates,
        fit,
        read_candidates,
        write_candidates,
    )

    index_path = Path(index_path) if index_path else default_index_path(Path(ckpt))
    if not index_path.is_file():
        raise StageError(f"ranking needs the tool lexicon of a retrieval index; {index_path} not found")
    index = BM25Index.load(index_path)
    before = index.tools
    tools = index.with_tools()
    if tools is not before:  # an older index: saved with the lexicon (options, program counts) serving reads
        index.save(index_path)
    calibration = calibration or []
    saved = read_candidates(candidates) if candidates and Path(candidates).is_file() else []
    recs = [r for r in saved if r.get("split", "dev") == "dev"]
    calib = [r for r in saved if r.get("split") == "calibration"]
    runtime = None
    if not recs:
        runtime = Runtime.load(ckpt)
        recs = decode_candidates(runtime, rows, tools, only_failing=False, progress=True)
    if [r["instruction"] for r in calib] != [r["instruction"] for r in calibration]:  # absent, or another set
        runtime = runtime or Runtime.load(ckpt)
        calib = decode_candidates(runtime, calibration, tools, only_failing=False, progress=True)
        for r in calib:
            r["split"] = "calibration"
    runtime = runtime or Runtime.load(ckpt)
    # every row gets every beam width, so that the tuning can try the beam on every request (files saved
    # before that hold beams for the rows whose first answer failed a check only)
    add_beams(runtime, recs + calib, tools, only_failing=False)
    if any("retrieved" not in r for r in recs + calib):  # the fallback's candidates (older files lack them)
        added = add_retrieved(runtime, recs + calib, index, tools)
        click.echo(f"rank-tune: retrieved fallback candidates on {added} rows", err=True)
    if any("filled" not in r for r in recs + calib if "greedy" in r):  # filled-in values (older files lack them)
        added = add_filled(runtime, recs + calib, tools)
        click.echo(f"rank-tune: filled-in values on {added} rows", err=True)
    if candidates:
        write_candidates(candidates, recs + calib)
    return fit(recs, tools, calibration=calib)


def _eval_rows(instructions, gold, jsonl_path) -> list[dict]:
    if jsonl_path:
        return load_jsonl(jsonl_path)
    if not (instructions and gold):
        raise StageError("give --jsonl FILE, or both --instructions FILE and --gold FILE")
    ins = Path(instructions).read_text().splitlines()
    gol = Path(gold).read_text().splitlines()
    if len(ins) != len(gol):
        raise StageError(f"{instructions} has {len(ins)} lines but {gold} has {len(gol)}")
    return [{"instruction": i, "command": g, "platform": "linux"} for i, g in zip(ins, gol)]


@cli.command(name="all")
@preset_opt
@data_opt
@out_opt
@device_opt
@click.option("--man-cache", default=DEFAULT_MAN_CACHE, show_default=True)
@click.option("--limit-man", type=int, default=None, help="Default: the preset's.")
@click.option("--max-train-pairs", type=int, default=None, help="Train SFT on a subset (smoke tests).")
@click.option("--force", is_flag=True, help="Reuse --out even if it holds a run of another preset.")
@stage
def all_cmd(ctx, preset, data_dir, out, device, man_cache, limit_man, max_train_pairs, force) -> None:
    """Every stage in order; finished stages are skipped, interrupted ones resume."""
    from dataclasses import replace

    from .report import write_report

    plan = _plan(preset)
    out.mkdir(parents=True, exist_ok=True)
    run_file = out / "run.json"
    run = {"preset": preset, "data_dir": str(data_dir.resolve()), "max_train_pairs": max_train_pairs}
    if run_file.is_file() and not force:
        old = json.loads(run_file.read_text())
        if old != run:
            raise StageError(f"{out} holds a different run ({old}); use another --out or --force")
    run_file.write_text(json.dumps(run, indent=1))
    steps = [
        ("data", lambda: run_data(data_dir, out)),
        ("corpus", lambda: run_corpus(data_dir, out, man_cache, limit_man or plan.limit_man)),
        ("tokenizer", lambda: run_tokenizer(out, plan.vocab_size)),
        ("shards", lambda: run_shards(out)),
        ("pretrain", lambda: _maybe_train(out / "pretrain", plan.pretrain.steps,
                                          lambda r: run_pretrain(out, plan, replace(plan.pretrain, device=device), r))),
        ("sft", lambda: _maybe_train(out / "sft", plan.sft.steps,
                                     lambda r: run_sft(out, plan, replace(plan.sft, device=device), r,
                                                       ks=plan.retrieval_k, max_train_pairs=max_train_pairs,
                                                       snapshot_every=plan.snapshot_every))),
        ("average", lambda: _average_last(out, plan)),
        ("rank", lambda: _rank_final(out, plan)),
        ("eval", lambda: _eval_dev(out, _final_model(out))),
        ("report", lambda: write_report(out)),
    ]
    # Once training has begun, its inputs stay as they were: rebuilding the pairs, corpus, tokenizer or
    # shards from changed sources (new own pairs) would make the resumed run another run, and a new
    # tokenizer would orphan the finished pretraining. A missing one is still built.
    began = any((out / stage / "last.pt").is_file() for stage in ("pretrain", "sft"))
    prepared = {"data": out / "pairs" / "train.jsonl", "corpus": out / "corpus" / "corpus.txt",
                "tokenizer": out / "tokenizer" / "tokenizer.model", "shards": out / "shards" / "manifest.json"}
    for name, fn in steps:
        t0 = time.time()
        click.echo(f"== {name}", err=True)
        if began and name in prepared and prepared[name].is_file():
            click.echo(f"{name}: kept, training began with it (a new --out builds it from the current sources)",
                       err=True)
            continue
        fn()
        if name in prepared:
            _record_time(out, name, time.time() - t0)
    click.echo(f"done: {out / 'report.md'}", err=True)


def _average_last(out: Path, plan) -> None:
    """With `plan.average_last` >= 2: write OUT/sft/average.npz, the mean of the last snapshots of the plan's schedule."""
    if plan.average_last < 2:
        click.echo("average: not in this preset's plan", err=True)
        return
    from .average import average_checkpoints

    every, steps = plan.snapshot_every, plan.sft.steps
    if every < 1:
        raise StageError("average: the plan averages snapshots but keeps none (snapshot_every < 1)")
    wanted = [out / "sft" / f"snap_{s}.npz" for s in range(steps - every * (plan.average_last - 1), steps + 1, every)]
    missing = [p.name for p in wanted if not p.is_file()]
    if missing:
        raise StageError(f"average: the plan's snapshots are not in {out / 'sft'} ({', '.join(missing)})")
    target = out / "sft" / "average.npz"
    if target.is_file() and target.stat().st_mtime >= max(p.stat().st_mtime for p in wanted):
        click.echo("average: finished, skipping", err=True)  # keeps the ranking the next stage stored in it
        return
    meta = average_checkpoints(wanted, target)
    click.echo(f"average: {out / 'sft' / 'average.npz'} (steps {', '.join(map(str, meta.get('averaged_steps', [])))})",
               err=True)


def _final_model(out: Path) -> Path:
    """The run's model: the snapshot average when the plan makes one, else the dev-picked best.npz."""
    avg = out / "sft" / "average.npz"
    return avg if avg.is_file() else out / "sft" / "best.npz"


def _rank_final(out: Path, plan) -> None:
    """Fit the candidate ranking of the run's model on dev and the calibration set (as `rank-tune` does) and
    store it in the model file, so that the eval stage and `ship` score the model as it will be served.
    The decoded candidates are kept in OUT/eval/rank_candidates.jsonl, the report in OUT/eval/rank.json."""
    from tinyllm.formats.checkpoint import read_meta
    from tinyllm.infer.rank import META_KEY

    model = _final_model(out)
    if META_KEY in read_meta(model).get("meta", {}):
        click.echo(f"rank: {model.name} holds its ranking, skipping", err=True)
        return
    rows = load_jsonl(out / "pairs" / "dev.jsonl")[:plan.rank_rows]
    calibration = load_calibration(None)[:plan.rank_rows]
    (out / "eval").mkdir(exist_ok=True)
    fit_and_store_ranking(model, rows, out / "sft" / "retrieval.idx", out / "eval" / "rank_candidates.jsonl",
                          calibration, out / "eval" / "rank.json")
    click.echo(f"rank: settings fitted on {len(rows)} dev and {len(calibration)} calibration rows, stored in {model}",
               err=True)


def _eval_dev(out: Path, model: Path) -> None:
    """Score `model` on the full dev split; write OUT/eval/dev_summary.json and dev_rows.jsonl."""
    from .evaluate import write_jsonl

    result, scored, table = run_eval(model, load_jsonl(out / "pairs" / "dev.jsonl"), out / "sft" / "retrieval.idx")
    result["model_file"] = str(model.relative_to(out))
    (out / "eval").mkdir(exist_ok=True)
    (out / "eval" / "dev_summary.json").write_text(json.dumps(result, indent=1))
    write_jsonl(out / "eval" / "dev_rows.jsonl", scored)
    click.echo(table, err=True)


def _maybe_train(run_dir: Path, steps: int, train) -> None:
    """Skip a finished training stage, resume an interrupted one, else start it."""
    last = run_dir / "last.pt"
    if last.is_file():
        from .state import load_train_state

        if int(load_train_state(last)["step"]) >= steps:
            click.echo(f"{run_dir.name}: finished, skipping", err=True)
            return
        train(True)
    else:
        train(False)


@cli.command()
@out_opt
@click.option("--sft-dir", default="sft", show_default=True, help="Sub-folder of OUT whose curve.jsonl to plot.")
@click.option("--curve-png", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the learning curve here, e.g. docs/learning_curve.png (needs a curve).")
@stage
def report(ctx, out, sft_dir, curve_png) -> None:
    """Write OUT/report.md (config, data sizes, stage times, metrics) and loss-curve PNGs; with
    OUT/SFT-DIR/curve.jsonl (see `curve`) also the learning curve: OUT/learning_curve.png and a table."""
    from .report import write_report

    click.echo(write_report(out, sft_dir, curve_png))


@cli.command(name="validate-pairs")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@data_opt
@click.option("--eval-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("bench/data"),
              show_default=True, help="Evaluation sets: a pair within word-overlap F1 0.7 of one of their requests is rejected.")
@click.option("--write", "write_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write each file's accepted rows to this folder under the same name.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the rejections (file, reason, request, command) as TSV.")
@click.option("--man-cache", default="~/.cache/nl2cmd/man-text", show_default=True, help="Rendered man page cache.")
@click.option("--calibration", "calibration", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Calibration set whose requests no pair may repeat [default: the shipped calibration.jsonl].")
@user_errors
def validate_pairs_cmd(files, data_dir, eval_dir, write_dir, report_path, man_cache, calibration) -> None:
    """Check own instruction/command pairs (syntax, shellcheck, programs, options, values, duplicates,
    closeness to the evaluation sets, calibration requests); exit 1 if any is rejected and --write is not given."""
    from .rank_tune import CALIBRATION_SET
    from .sources import pair_file_name
    from .validate import held_out_requests, known_program_test, validate_files, write_report

    held = held_out_requests(sorted(Path(eval_dir).glob("*.jsonl"))) if Path(eval_dir).is_dir() else []
    calibration = calibration or CALIBRATION_SET
    if not calibration.is_file():
        raise click.UsageError(f"no calibration set at {calibration}")
    reserved = held_out_requests([calibration])
    by_file, report = validate_files(list(files), held, known_program_test(data_dir), Path(man_cache).expanduser(),
                                     reserved)
    for row, why in report.rejected[:20]:
        click.echo(f"{Path(row.get('_file', '')).name}: {why}: {row.get('instruction')!r} -> {row.get('command')!r}")
    total = sum(len(v) for v in by_file.values()) + len(report.rejected)
    click.echo(f"{total} pairs, {total - len(report.rejected)} accepted, {len(report.rejected)} rejected "
               f"{json.dumps(report.reasons())}")
    if report_path:
        write_report(report, report_path)
    if write_dir:
        write_dir.mkdir(parents=True, exist_ok=True)
        for path, rows in by_file.items():
            with open(write_dir / pair_file_name(path), "w") as f:  # a .gz input is written as plain JSONL
                f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    elif report.rejected:
        sys.exit(1)


@cli.command(name="pair")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="The first model (.npz, with its ranking fitted): its metadata will name the second.")
@click.option("--second", "second_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The second model, in the first model's folder (its .idx beside it gives its tool lexicon).")
@click.option("--below", type=click.FloatRange(0.0, 1.0, min_open=True), default=None,
              help="Ask the second model when the first answer's confidence is below this "
                   "(choose it with bench/two_model_select.py on dev and the calibration set).")
@click.option("--remove", is_flag=True, help="Drop the second model from the first model's metadata.")
@user_errors
def pair_cmd(model_path, second_path, below, remove) -> None:
    """Name a second model in a model file: unsure answers are then also asked of the second model and the
    pair serves the answer both models find likelier (tinyllm/infer/second.py)."""
    from tinyllm.formats.checkpoint import CheckpointError, update_meta
    from tinyllm.infer.runtime import Runtime
    from tinyllm.infer.second import SECOND_KEY, SecondOpinion, SecondSettings

    if remove:
        if second_path is not None or below is not None:
            raise StageError("--remove takes no --second or --below")
        update_meta(model_path, {SECOND_KEY: None})
        click.echo(f"{model_path}: no second model")
        return
    if second_path is None or below is None:
        raise StageError("pair needs --second FILE and --below CONFIDENCE (or --remove)")
    if second_path.resolve().parent != model_path.resolve().parent:
        raise StageError(f"{second_path}: the second model must be in {model_path.parent}/ (copy it there)")
    if second_path.resolve() == model_path.resolve():
        raise StageError("the second model must be another file")
    settings = SecondSettings(second_path.name, below)
    try:
        first = Runtime.load(model_path)
        first.ckpt.meta[SECOND_KEY] = settings.to_meta()
        SecondOpinion.load(first)  # both models must be able to take part before anything is written
    except CheckpointError as exc:
        raise StageError(str(exc)) from None
    update_meta(model_path, {SECOND_KEY: settings.to_meta()})
    click.echo(f"{model_path}: second model {second_path.name}, asked below confidence {below:g}")


@cli.command(name="ship")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Candidate model, e.g. RUN/sft/best.npz.")
@click.option("--index", "index_path", type=click.Path(path_type=Path), default=None,
              help="Its retrieval index (default: retrieval.idx beside the model).")
@click.option("--dev-jsonl", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--run-note", default="", help="Free text stored in the model metadata (which run shipped).")
@click.option("--beam", type=int, default=1, show_default=True, help="Serving beam width stored with the model.")
@click.option("--rerank", type=int, default=0, show_default=True,
              help="Serving rerank setting stored with the model (see eval --rerank).")
@click.option("--retrieval-k", type=int, default=None, help="Serving prompt examples (default: the model's).")
@click.option("--named-tools/--no-named-tools", default=True, show_default=True,
              help="Serving setting stored with the model (see eval --named-tools).")
@click.option("--rank/--no-rank", "rank_", default=True, show_default=True,
              help="Fit the candidate ranking on the dev set (as rank-tune does) and ship it with the model.")
@click.option("--candidates", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The ranking's decoded dev candidates (as rank-tune --candidates): read when the file exists.")
@click.option("--force", is_flag=True, help="Ship even if it does not beat the current model.")
@calibration_opts
@user_errors
def ship_cmd(model_path, index_path, dev_jsonl, run_note, beam, rerank, retrieval_k, named_tools, rank_, candidates,
             force, calibration_jsonl, no_calibration) -> None:
    """Evaluate a candidate on the dev set and install it as the package's default model if it is better."""
    from tinyllm.formats.checkpoint import default_model_path, read_meta

    from .ship import ship

    index_path = index_path or default_index_path(model_path)
    rows = load_jsonl(dev_jsonl)
    ranking = None  # without --rank: scored with the ranking the file already holds, as it will serve
    if rank_ and named_tools and not (beam > 1 or rerank or retrieval_k):
        ranking, report = run_rank_tune(model_path, rows, index_path, candidates,
                                        load_calibration(calibration_jsonl, no_calibration))
        click.echo("ranking: " + json.dumps(report["ranked"]))
    result, _, table = run_eval(model_path, rows, index_path, retrieval_k, beam, rerank=rerank, named_tools=named_tools,
                                ranking=ranking)
    click.echo(table)
    current = None
    if default_model_path().is_file() and not force:  # score the shipped model now, on the same rows and protocol
        served_beam = int(read_meta(default_model_path())["meta"].get("beam", 1))  # as it serves: own beam, own index
        current, _, current_table = run_eval(default_model_path(), rows, None, None, served_beam, baseline=False)
        click.echo("shipped now:\n" + current_table)
    settings = {"run_note": run_note, "beam": beam, "rerank": rerank, "named_tools": named_tools}
    if ranking:
        from tinyllm.infer.rank import META_KEY

        settings[META_KEY] = ranking.to_meta()
    if retrieval_k is not None:
        settings["retrieval_k"] = retrieval_k
    click.echo(ship(model_path, index_path, result, default_model_path(), force, settings, current))


def main() -> None:
    """Entry point of `nl2cmd-train`."""
    from .allocator import use_jemalloc

    use_jemalloc()
    try:
        cli(prog_name="nl2cmd-train")
    except KeyboardInterrupt:
        click.echo("nl2cmd-train: interrupted (resume with --resume)", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
