"""Every artifact path of the pipeline, in one place. dvc.yaml names the same paths; a test checks
that the two agree. Paths are relative to the repository root: stages run from there (DVC runs them
there, and the stage wrapper changes into the root of the checkout its script belongs to)."""

from __future__ import annotations

from pathlib import Path

PARAMS = Path("params.yaml")
CONF_DIR = Path("conf")

GENERATED = Path("data/generated")                # generate_qa (dataset.qa=generate): questions from the documents
GENERATED_QA = GENERATED / "qa.jsonl"             # the kept pairs: the QA file prepare reads
GENERATED_CANDIDATES = GENERATED / "candidates.jsonl"  # every generated pair, its raw reply, the filter that dropped it
GENERATED_MANIFEST = GENERATED / "manifest.json"  # generator identity, settings, survival counts

PREPARED = Path("data/prepared")                  # prepare → documents/qa splits
DOCUMENTS = PREPARED / "documents.jsonl"
PARAPHRASES = PREPARED / "paraphrases.jsonl"      # extra renderings of documents (augmentation)
QA_TRAIN = PREPARED / "qa_train.jsonl"
QA_EVAL = PREPARED / "qa_eval.jsonl"
QA_DEV = PREPARED / "qa_dev.jsonl"                # dataset.dev_fraction: what tuning may look at (empty when 0)
QA_ABSENT = PREPARED / "qa_absent.jsonl"          # dataset.absent_people: questions no document answers (abstain)
PREPARED_MANIFEST = PREPARED / "manifest.json"    # counts, split, sha256 of each file

CHUNKS = Path("data/chunks")                      # chunk
CHUNKS_FILE = CHUNKS / "chunks.jsonl"
CHUNKS_MANIFEST = CHUNKS / "manifest.json"

EMBEDDINGS = Path("data/embeddings")              # embed
VECTORS = EMBEDDINGS / "vectors.npy"
VECTOR_IDS = EMBEDDINGS / "ids.json"
QUESTION_VECTORS = EMBEDDINGS / "questions.npy"   # the eval questions, same encoder
QUESTION_IDS = EMBEDDINGS / "question_ids.json"
EMBEDDINGS_MANIFEST = EMBEDDINGS / "manifest.json"

INDEX = Path("data/index")                        # index
INDEX_MANIFEST = INDEX / "manifest.json"          # the retriever: method, parameters, corpus hash
DENSE_INDEX = INDEX / "dense"                      # FAISS: index.faiss, ids.json, manifest.json
BM25_INDEX = INDEX / "bm25"                        # bm25s' arrays and vocabulary, ids.json, manifest.json

RETRIEVAL = Path("data/retrieval")                # retrieve: ranked chunks per eval question
RANKED = RETRIEVAL / "ranked.jsonl"

CONTEXTS = Path("data/contexts")                  # contexts: what each context arm puts in the prompt


STORAGE_PROBE = CONTEXTS / "storage_probe.jsonl"  # eval.storage_probe: document prefixes each model completes


def context_file(kind: str) -> Path:
    return CONTEXTS / f"{kind}.jsonl"


ROBUSTNESS_CONTEXTS = CONTEXTS / "robustness"    # the robustness sweep: conditions.json + <condition>.jsonl


def robustness_context(condition: str) -> Path:
    return ROBUSTNESS_CONTEXTS / f"{condition}.jsonl"


MODELS = Path("models")
BASE_MODEL = MODELS / "base"                      # base_model@base: the `model` group's base model
FINETUNED = MODELS / "finetuned"                  # finetune@finetuned (adapter on top of BASE_MODEL)


def base_dir(base: str) -> Path:
    """models/<base>: base_model@<base>'s folder (``base`` is the `model` group's)."""
    return MODELS / base


TRAIN_METRICS = "train_metrics.json"              # inside a fine-tuned model's dir: time, loss, sizes, contamination
TRAIN_CURVE = "loss.csv"                          # inside a fine-tuned model's dir: step,loss
VALIDATION_CURVE = "eval_loss.csv"                # inside a fine-tuned model's dir: step,eval_loss (finetune.validation)
MERGED_DIR = "merged"                             # inside a fine-tuned model's dir: finetune.export_merged


def model_dir(model: str) -> Path:
    """models/<model>: the base model, or a fine-tuned model's adapter (finetune@<model>)."""
    return MODELS / model

PREDICTIONS = Path("data/predictions")            # infer@<model>: <model>/<context>/ per arm


def model_predictions(model: str) -> Path:
    """infer@<model>'s output: one folder per context arm."""
    return PREDICTIONS / model


def storage_completions(model: str) -> Path:
    """The storage probe's completions by ``model`` (written by infer@<model> when eval.storage_probe is on)."""
    return model_predictions(model) / "storage_probe.jsonl"


def predictions_dir(model: str, context: str) -> Path:
    """One arm's answers (the arm <model>-<context>)."""
    return PREDICTIONS / model / context


def robustness_predictions(model: str, condition: str) -> Path:
    """One model's answers in one robustness condition (infer@<model>, when robustness.enabled)."""
    return PREDICTIONS / model / "robustness" / condition


PREDICTIONS_FILE = "predictions.jsonl"            # inside predictions_dir: deterministic answers
ARM_INFO = "arm.json"                             # inside predictions_dir: the arm, its model manifest, decoding
TIMINGS = "timings.json"                          # inside predictions_dir: wall-clock numbers (vary run to run)


METRICS = Path("metrics")                         # DVC metrics (small, committed via dvc.lock)
RETRIEVAL_METRICS = METRICS / "retrieval.json"
INDEX_METRICS = METRICS / "index.json"
GENERATE_QA_METRICS = METRICS / "generate_qa.json"  # generate_qa: pairs generated and surviving each filter
FINETUNE_METRICS = METRICS / "finetune"           # finetune@<model>: <model>.json (time, loss, sizes)


def finetune_metrics(model: str) -> Path:
    return FINETUNE_METRICS / f"{model}.json"


BASE_MODEL_METRICS = METRICS / "base_model"       # base_model@<base>: <base>.json (size, training time, probe)


def base_model_metrics(base: str) -> Path:
    return BASE_MODEL_METRICS / f"{base}.json"
EVAL_METRICS = METRICS / "metrics.json"
ROBUSTNESS_METRICS = METRICS / "robustness.json"  # evaluate: the primary metric per model x robustness condition

PLOTS = Path("plots")
RECALL_AT_K_PLOT = PLOTS / "recall_at_k.csv"
TRAIN_CURVES = PLOTS / "finetune_loss"            # finetune@<model>: <model>.csv (step,loss)


def train_curve(model: str) -> Path:
    return TRAIN_CURVES / f"{model}.csv"


VALIDATION_CURVES = PLOTS / "finetune_validation"  # finetune@<model>: <model>.csv (step,eval_loss)


def validation_curve(model: str) -> Path:
    return VALIDATION_CURVES / f"{model}.csv"


METRIC_BY_ARM_PLOT = PLOTS / "metric_by_arm.csv"
ROBUSTNESS_PLOT = PLOTS / "robustness.csv"

REPORTS = Path("reports")
COMPARISON_REPORT = REPORTS / "comparison.md"
HTML_REPORT = REPORTS / "report.html"
REPORT_PLOTS = REPORTS / "plots"                  # PNGs of the HTML report (also logged to MLflow)
PER_QUESTION = REPORTS / "per_question.csv"

RUN_RECORD = "run.json"   # written inside every output directory: the MLflow run that produced it
