"""The report model: everything the reports show, as plain data, built once by the evaluate stage.

``build_report`` takes what evaluate has in memory (metrics.json's document, each arm's per-question
scores, the eval questions, the contexts, timings, training records) and returns a ``Report``; the
Markdown report and the HTML page are two templates over it (ragft.reporting.render). Strings here are
plain text as the corpus, the questions and the models gave them: the templates escape them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ragft import arms as arms_vocabulary
from ragft.evaluation.answers import gold_answers
from ragft.evaluation.costs import money, summary_lines
from ragft.evaluation.factorial import EFFECT_LABELS, EFFECTS
from ragft.evaluation.planner import plan_lines
from ragft.evaluation.stats import BOOTSTRAP_CLUSTERS
from ragft.io import flatten

TITLE = "RAG or fine-tuning? Results"
ANSWER_METRICS = (("match", "answer match"), ("exact_match", "exact match"), ("f1", "token F1"))
METRIC_SHORT = {"match": "match", "exact_match": "EM", "f1": "F1"}
RAGAS_METRICS = (
    ("string_similarity", "string similarity"),
    ("rouge", "ROUGE-L"),
    ("context_precision", "context precision"),
    ("context_recall", "context recall"),
)
JUDGE_LABELS = {
    "faithfulness": "faithfulness",
    "answer_relevancy": "answer relevancy",
    "context_precision": "context precision",
    "factual_correctness": "factual correctness",
    "answer_accuracy": "answer accuracy",
}
TRAIN_KEYS = (
    ("train_seconds", "training time (s)", 1),
    ("train_loss", "final training loss", 3),
    ("n_examples", "training examples", 0),
    ("trainable_params", "trainable parameters", 0),
    ("steps", "optimizer steps", 0),
)
TESTBED_NOTE = (
    "The generator here ({name}) is the scratch model: a small GPT-2 pretrained in this repo as a testbed, "
    "not a real LLM. These numbers show how the arms compare on a model that has never seen these documents; "
    "they are not the conclusions a real LLM would give. To run the same experiment with a real model: "
    "`dvc exp run -S experiment=real_model` on a machine with Hugging Face hub access (ragft runs offline by "
    "default; set HF_HUB_OFFLINE=0 TRANSFORMERS_OFFLINE=0 for that run)."
)


def is_nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def natural_key(key: str) -> list:
    """'recall@10' after 'recall@5': digits compare as numbers."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)]


def generator_text(manifest: dict) -> str:
    """'name (source, architecture, N M parameters)' of a base model's manifest."""
    if not manifest:
        return "?"
    details = [str(manifest.get("source", "?"))] + ([manifest["architecture"]] if manifest.get("architecture") else [])
    if isinstance(manifest.get("parameters"), int):
        details.append(f"{manifest['parameters'] / 1e6:.1f} M parameters")
    return f"{manifest.get('name', '?')} ({', '.join(details)})"


@dataclass
class Report:
    """What both reports show. Optional parts left empty are not shown."""

    verdict: dict                           # metrics.json's verdict: text, metric, confidence, best_arms
    arms: dict[str, dict]                   # arm → its metrics (+ "<metric>_ci"), in the experiment's order
    n_questions: int
    metric: str = "exact_match"             # the primary metric: what the verdict, effects and differences are about
    confidence: float = 0.95
    generator: str = ""                     # the base model, in words
    notes: list[str] = field(default_factory=list)  # paragraphs under the verdict (the testbed note)
    effects: list[dict] = field(default_factory=list)      # {model, name, label, contrast, estimate, ci_*, significant}
    differences: list[dict] = field(default_factory=list)  # metrics.json's paired differences
    contamination: list[tuple[str, Any]] = field(default_factory=list)
    retrieval_at_k: list[tuple[str, dict[str, float]]] = field(default_factory=list)  # (k, {recall, ndcg, ...})
    retrieval_other: list[tuple[str, Any]] = field(default_factory=list)              # mrr, n_questions, ...
    index: dict = field(default_factory=dict)               # metrics/index.json
    finetune: dict[str, dict] = field(default_factory=dict)  # fine-tuned model → its training metrics
    methods: dict[str, str] = field(default_factory=dict)    # fine-tuned model → finetune.method (the arms' words)
    loss_curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    validation_curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # finetune.validation
    timings: dict[str, dict] = field(default_factory=dict)   # arm → timings.json
    attributes: list[dict] = field(default_factory=list)     # {attribute, n, score: {arm: the primary metric}}
    examples: list[dict] = field(default_factory=list)       # see pick_examples
    judge: dict | None = None                               # ragft.evaluation.judge.judge_arms(...)
    retriever: str = ""                                     # the ranking, in words ("bm25, reranked by ...")
    retrieval_first_stage: dict = field(default_factory=dict)  # the retriever's metrics before the reranker
    robustness: dict = field(default_factory=dict)          # metrics/robustness.json (ragft.evaluation.robustness)
    long_context: dict = field(default_factory=dict)        # metrics.json's long_context: arm → by gold position
    decision: dict = field(default_factory=dict)            # ragft.evaluation.costs.measured(metrics.json's decision)
    dev: dict[str, dict] = field(default_factory=dict)      # arm → its metrics on the dev split (dataset.dev_fraction)
    # what the models know (ragft.evaluation.knowledge): model → storage probe, arm → abstention, group → arm → score
    storage: dict[str, dict] = field(default_factory=dict)
    absent: dict[str, dict] = field(default_factory=dict)
    groups: dict[str, dict] = field(default_factory=dict)
    inference: dict = field(default_factory=dict)           # metrics.json's inference: what every interval resamples
    plan: dict = field(default_factory=dict)                # metrics.json's plan (ragft.evaluation.planner)
    candidates: dict = field(default_factory=dict)          # metrics.json's candidates: each model's base and role
    title: str = TITLE

    @property
    def design(self) -> arms_vocabulary.Design:
        return arms_vocabulary.Design.from_json(self.candidates, self.arms)

    @property
    def unit(self) -> str:
        return self.inference.get("unit", "question")

    def over(self, clusters: Any = None) -> str:
        """'12 documents': what an interval resampled (the experiment's clusters when not given)."""
        n = self.inference.get("clusters") if clusters is None else clusters
        return f"{n} {self.unit}{'' if n == 1 else 's'}" if n else ""

    @property
    def inference_note(self) -> str:
        """How every interval and test of the report was made, in words."""
        i = self.inference
        if not i:
            return ""
        unit, n = self.unit, i.get("clusters")
        text = (f"Every interval is a {100 * i['confidence']:g}% {i['interval']} interval over the {self.over()} of the "
                f"{i['questions']} eval questions (eval.cluster={unit}: ")
        text += ("questions about one document pass or fail together, so the document, not the question, is the "
                 "unit; " if unit == "document" else "each question on its own, as if independent; ")
        text += (f"below {BOOTSTRAP_CLUSTERS} clusters the cluster-robust t interval, which covers better than a "
                 "bootstrap with few clusters; from there on a BCa cluster bootstrap); tests are "
                 f"{i['test']}. Design effect: the clustered variance of a mean over the variance it would have if "
                 "the questions were independent (above 1: a document's questions move together; below 1: they "
                 "offset each other); effective n = questions / design effect.")
        if not i.get("reliable", True):
            text += (f" Only {n} clusters, fewer than {i['min_clusters']}: no interval is reliable with so few (these "
                     f"use t on {n - 1} degrees of freedom, and are wide); add eval documents (`ragft plan` says how "
                     "many).")
        return text

    @property
    def plan_text(self) -> list[str]:
        """The sample-size plan in sentences (ragft.evaluation.planner)."""
        if not self.plan:
            return []
        return plan_lines(self.plan, {f"{d['a']} vs {d['b']}": d for d in self.differences})

    @property
    def dev_questions(self) -> int:
        return max((m.get("n", 0) or 0 for m in self.dev.values()), default=0)

    @property
    def metric_label(self) -> str:
        return dict(ANSWER_METRICS)[self.metric]

    @property
    def metric_short(self) -> str:
        return METRIC_SHORT[self.metric]

    @property
    def labels(self) -> dict[str, str]:
        design = self.design
        return {a: design.label(a, self.methods.get(arms_vocabulary.Arm.parse(a).model, "lora")) for a in self.arms}

    @property
    def models(self) -> list[str]:
        return arms_vocabulary.ordered((arms_vocabulary.Arm.parse(a).model for a in self.arms), self.design.names)

    @property
    def contexts(self) -> list[str]:
        return arms_vocabulary.contexts_of(self.arms)

    @property
    def ragas_columns(self) -> list[tuple[str, str]]:
        return [(k, lab) for k, lab in RAGAS_METRICS if any(k in m for m in self.arms.values())]

    @property
    def trained(self) -> list[str]:
        return sorted(set(self.finetune) | set(self.loss_curves))

    @property
    def train_rows(self) -> list[tuple[str, int, list[Any]]]:
        """(label, digits, value per fine-tuned model) for the training metrics any model has."""
        models = self.trained
        return [(lab, d, [self.finetune.get(m, {}).get(k) for m in models]) for k, lab, d in TRAIN_KEYS
                if any(k in self.finetune.get(m, {}) for m in models)]

    @property
    def costs(self) -> list[dict]:
        """Per arm: quality beside what it cost (prompt tokens, latency per question, throughput)."""
        out = []
        for arm, m in self.arms.items():
            t = self.timings.get(arm, {})
            out.append({"arm": arm, "score": m.get(self.metric),
                        "prompt_tokens": m.get("mean_prompt_tokens", t.get("mean_prompt_tokens")),
                        "latency": t.get("mean_latency_seconds"), "questions_per_second": t.get("questions_per_second")})
        return out

    @property
    def decision_text(self) -> dict:
        """The decision summary in words (costs.summary_lines): best, break_even, assumptions, currency, basis."""
        return summary_lines(self.decision, self.methods) if self.decision else {}

    @property
    def decision_rows(self) -> list[dict]:
        """Per arm, in the experiment's order: quality with its CI beside tokens and cost per 1,000 queries."""
        if not self.decision:
            return []
        by_arm = self.decision.get("arms", {})
        rows = []
        for arm, m in self.arms.items():
            d = by_arm.get(arm, {})
            rows.append({"arm": arm, "label": self.labels[arm], "score": m.get(self.metric),
                         "ci": m.get(f"{self.metric}_ci"), "prompt_tokens": d.get("prompt_tokens"),
                         "output_tokens": d.get("output_tokens"), "deployable": arms_vocabulary.Arm.parse(arm).deployable,
                         "seconds": d.get("seconds_per_query"), "cost": money(d.get("cost_per_1k")),
                         "cached_cost": money(d["cached_cost_per_1k"]) if d.get("cached_cost_per_1k") is not None else ""})
        return rows

    @property
    def decision_cached(self) -> bool:
        """Whether an arm shares a prompt prefix (long_context): the table adds its cost with prompt caching and
        every arm's seconds per question (the three-way comparison: RAG, fine-tuning, long context)."""
        return any(d.get("cached_cost_per_1k") is not None for d in self.decision.get("arms", {}).values())

    @property
    def robustness_models(self) -> dict[str, dict]:
        """model → condition → CI, when the robustness sweep ran."""
        return self.robustness.get("models", {}) if self.robustness.get("enabled") else {}

    @property
    def judge_metrics(self) -> list[str]:
        if not self.judge or not self.judge.get("arms"):
            return []
        names = self.judge.get("settings", {}).get("metrics", list(JUDGE_LABELS))
        return [m for m in names if any(f"judge_{m}" in r for r in self.judge["arms"].values())]


def effect_rows(effects: dict[str, dict[str, dict]], models: list[str] | None = None) -> list[dict]:
    """metrics.json's effects as rows with an estimate: by model (experiment order), then EFFECTS' order."""
    names = list(EFFECTS)
    rows = [{"model": model, "name": name, "label": EFFECT_LABELS.get(name, name), **e}
            for model, by_name in effects.items() for name, e in by_name.items()
            if isinstance(e, dict) and not is_nan(e.get("estimate"))]
    models = arms_vocabulary.ordered([r["model"] for r in rows], models or arms_vocabulary.MODELS)
    return sorted(rows, key=lambda r: (models.index(r["model"]), names.index(r["name"]) if r["name"] in names
                                       else len(names), r["name"]))


def retriever_text(retrieval: dict) -> str:
    """metrics/retrieval.json's method (and reranker), in words."""
    method = {"dense": "dense (embedder + FAISS)", "bm25": "BM25", "hybrid": "hybrid (dense + BM25, fused)"}
    text = method.get(retrieval.get("method", ""), str(retrieval.get("method", "")))
    if retrieval.get("reranker") not in (None, "none"):
        text += ", reranked by a cross-encoder"
    return text


def generated_note(generated: dict) -> str:
    """The questions' provenance when the generate_qa stage wrote them: people did not."""
    survived = generated["survived"]
    order = generated.get("filters") or [k for k in survived if k not in ("generated", "kept")]
    chain = ", ".join(f"{name.replace('_', ' ')} {survived[name]}" for name in order)
    covered = (f" about {generated['documents_with_questions']} of {generated['documents']} documents"
               if "documents" in generated and "documents_with_questions" in generated else "")
    return (f"The questions were generated from the documents by {generated['generator']['name']} "
            f"(dataset.qa=generate), not written by people: {survived['generated']} pairs generated, "
            f"{survived['kept']} kept ({100 * generated['survival_rate']:.0f}%){covered}; surviving each filter in turn: "
            f"{chain}. Generated questions are narrower and easier than users' questions; read "
            "data/generated/candidates.jsonl for every pair and the filter that dropped it.")


def retrieval_tables(retrieval: dict) -> tuple[list[tuple[str, dict]], list[tuple[str, Any]]]:
    """metrics/retrieval.json as (k → {metric: value}) rows and the metrics without a k."""
    at_k: dict[str, dict[str, Any]] = {}
    other = []
    for key, v in sorted(retrieval.items(), key=lambda kv: natural_key(kv[0])):
        name, _, k = key.partition("@")
        if k:
            at_k.setdefault(k, {})[name] = v
        elif isinstance(v, (int, float)) or v is None:
            other.append((key, v))
    return sorted(at_k.items(), key=lambda kv: natural_key(kv[0])), other


def attribute_rows(qa: list[dict], per_question: dict[str, list[dict]], metric: str = "exact_match") -> list[dict]:
    """``metric`` per question attribute and arm (empty when the questions carry no attribute)."""
    attrs = sorted({q.get("attribute") or "" for q in qa})
    if attrs in ([], [""]):
        return []
    rows = []
    for attr in attrs:
        idx = [i for i, q in enumerate(qa) if (q.get("attribute") or "") == attr]
        em = {}
        for arm, scores in per_question.items():
            values = [scores[i][metric] for i in idx if not is_nan(scores[i][metric])]
            em[arm] = sum(values) / len(values) if values else math.nan
        rows.append({"attribute": attr or "(none)", "n": len(idx), "score": em})
    return rows


def pick_examples(qa: list[dict], per_question: dict[str, list[dict]], contexts: dict[str, dict[str, list]],
                  n: int, metric: str = "exact_match") -> list[dict]:
    """``n`` questions for the reader, those the arms disagree on (by ``metric``) first (they show what
    differs), in eval order; each with every arm's answer and what each context arm put in the prompt."""
    def disagree(i: int) -> bool:
        return len({s[i][metric] for s in per_question.values() if not is_nan(s[i][metric])}) > 1

    order = [i for i in range(len(qa)) if disagree(i)] + [i for i in range(len(qa)) if not disagree(i)]
    out = []
    for i in order[: max(0, n)]:
        q = qa[i]
        gold = {str(d) for d in q.get("doc_ids") or []}
        out.append({
            "qid": q["qid"],
            "question": q["question"],
            "attribute": q.get("attribute") or "",
            "gold": gold_answers(q["answer"]),
            "answers": {arm: s[i] for arm, s in per_question.items()},
            "contexts": {kind: [{**c, "gold": str(c.get("doc_id")) in gold} for c in by_qid[q["qid"]]]
                         for kind, by_qid in contexts.items() if q["qid"] in by_qid},
        })
    return out


def build_report(doc: dict, per_question: dict[str, list[dict]], qa: list[dict], *,
                 contexts: dict[str, dict[str, list]] | None = None, timings: dict[str, dict] | None = None,
                 base_manifest: dict | None = None, finetune: dict[str, dict] | None = None,
                 methods: dict[str, str] | None = None,
                 loss_curves: dict[str, list[tuple[float, float]]] | None = None,
                 validation_curves: dict[str, list[tuple[float, float]]] | None = None, retrieval: dict | None = None,
                 index: dict | None = None, judge: dict | None = None, examples: int = 5,
                 robustness: dict | None = None, decision: dict | None = None,
                 generated: dict | None = None) -> Report:
    """The report of one experiment from what the evaluate stage computed.

    ``doc``: metrics.json's document; ``per_question``: arm → rows {answer, match, exact_match, f1} in ``qa``
    order; ``contexts``: context arm → qid → the chunks in the prompt; ``decision``: metrics.json's decision
    block with its measured costs (ragft.evaluation.costs.measured); ``generated``: the generate_qa stage's
    manifest (a note says the questions were generated, by what, and how many survived each filter).
    """
    arm_names = arms_vocabulary.Design.from_json(doc.get("candidates"), doc["arms"]).order(doc["arms"])
    metric = doc["primary_metric"]
    base_manifest = base_manifest or {}
    notes = [TESTBED_NOTE.format(name=base_manifest.get("name", "scratch"))] if base_manifest.get("testbed") else []
    if (generated or {}).get("generated"):
        notes.append(generated_note(generated))
    at_k, other = retrieval_tables(retrieval or {})
    shown_contexts = {k: v for k, v in (contexts or {}).items() if k != arms_vocabulary.Context.none}
    return Report(
        verdict=doc["verdict"],
        metric=metric,
        arms={a: doc["arms"][a] for a in arm_names},
        n_questions=max((m.get("n", 0) or 0 for m in doc["arms"].values()), default=0),
        confidence=doc.get("inference", {}).get("confidence", 0.95),
        generator=generator_text(base_manifest),
        notes=notes,
        effects=effect_rows(doc.get("effects", {}), list(doc.get("candidates") or arms_vocabulary.MODELS)),
        differences=list(doc.get("differences", {}).values()),
        contamination=list(flatten(doc.get("contamination", {})).items()),
        retrieval_at_k=at_k,
        retrieval_other=other,
        index=index or {},
        finetune=finetune or {},
        methods=methods or {},
        loss_curves={m: c for m, c in (loss_curves or {}).items() if c},
        validation_curves={m: c for m, c in (validation_curves or {}).items() if c},
        timings={a: t for a, t in (timings or {}).items() if a in doc["arms"]},
        attributes=attribute_rows(qa, per_question, metric),
        examples=pick_examples(qa, {a: per_question[a] for a in arm_names if a in per_question}, shown_contexts,
                               examples, metric),
        judge=judge,
        retriever=retriever_text(retrieval or {}),
        retrieval_first_stage=(retrieval or {}).get("first_stage", {}),
        robustness=robustness or {},
        long_context=doc.get("long_context") or {},
        decision=decision or {},
        dev={a: doc["dev"][a] for a in arm_names if a in doc.get("dev", {})},
        storage=doc.get("storage") or {},
        absent={a: doc["absent"][a] for a in arm_names if a in (doc.get("absent") or {})},
        groups={g: {a: arms[a] for a in arm_names if a in arms} for g, arms in (doc.get("groups") or {}).items()},
        inference=doc.get("inference") or {},
        plan=doc.get("plan") or {},
        candidates=doc.get("candidates") or {},
    )
