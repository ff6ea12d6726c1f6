"""The experiment's vocabulary: which models and contexts exist, in what order, and what they are called.

An arm is one (model, context) cell of the factorial design, named ``<model>-<context>`` (its key in
metrics/metrics.json and the reports; ``infer@<model>`` answers it into data/predictions/<model>/<context>/). Every module that names, parses, orders or labels arms does it here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class Model(StrEnum):
    """The generators an arm can use; the order is the experiment's (tables, figures)."""

    base = "base"            # the base model, untuned
    finetuned = "finetuned"  # LoRA on the documents (finetune.mode)
    raft = "raft"            # RAFT: LoRA on training questions read among distractor chunks


class Context(StrEnum):
    """What an arm puts in the prompt; the order is the experiment's."""

    none = "none"                              # closed book
    retrieved = "retrieved"                    # the top_k retrieved chunks
    oracle = "oracle"                          # the gold document's chunks: the retrieval ceiling
    oracle_distractors = "oracle_distractors"  # gold + the best-ranked non-gold chunks, shuffled


MODELS: tuple[str, ...] = tuple(m.value for m in Model)
CONTEXTS: tuple[str, ...] = tuple(c.value for c in Context)
# Contexts handed the gold document: the retrieval ceiling, which no user can deploy (they have no gold document
# for a new question). The decision (best arm, break-even) is among the other arms; these are shown as ceilings.
ORACLE_CONTEXTS: tuple[str, ...] = (Context.oracle.value, Context.oracle_distractors.value)

# The fine-tuned models → what their recipe reads besides the base model and data/prepared (dvc.yaml's
# foreach over arms.trained makes one finetune@<model> stage each, depending on that input only).
RECIPE_INPUTS = {"finetuned": "data/prepared", "raft": "data/chunks/chunks.jsonl"}
TRAINED: tuple[str, ...] = tuple(RECIPE_INPUTS)

# {method}/{tuning}: a fine-tuned model's finetune.method in words (ragft.model.loading.finetune_method reads it)
METHOD_WORDS = {"lora": {"method": "LoRA", "tuning": "LoRA fine-tuning"},
                "full": {"method": "full fine-tuning", "tuning": "full fine-tuning"}}
MODEL_LABELS = {"base": "base", "finetuned": "{method} on the documents", "raft": "RAFT ({method}, reading among distractors)"}
CONTEXT_LABELS = {
    "none": "closed-book",
    "retrieved": "retrieved chunks",
    "oracle": "gold document (oracle)",
    "oracle_distractors": "gold + distractors",
}
# The four cells of the plain RAG-vs-fine-tuning question get their own words.
ARM_LABELS = {
    "base-none": "base, closed-book",
    "base-retrieved": "RAG: base + retrieved",
    "finetuned-none": "{tuning}: finetuned, closed-book",
    "finetuned-retrieved": "both: finetuned + retrieved",
}
RAG = "base-retrieved"     # the arm a "RAG vs fine-tuning" verdict compares each fine-tuned closed-book arm with


@dataclass(frozen=True)
class Arm:
    model: str
    context: str

    @property
    def name(self) -> str:
        return f"{self.model}-{self.context}"

    @classmethod
    def parse(cls, name: str) -> Arm:
        """``"raft-oracle_distractors"`` → Arm("raft", "oracle_distractors"); model names hold no '-'."""
        model, sep, context = str(name).partition("-")
        if not sep or not model or not context:
            raise ValueError(f"arm {name!r} is not <model>-<context>, e.g. base-retrieved")
        return cls(model, context)

    def label(self, method: str = "lora") -> str:
        """What the arm is, in words; ``method``: its model's finetune.method (lora | full)."""
        template = ARM_LABELS.get(
            self.name, f"{MODEL_LABELS.get(self.model, self.model)}, {CONTEXT_LABELS.get(self.context, self.context)}"
        )
        return template.format(**method_words(method))

    @property
    def is_tuned(self) -> bool:
        return self.model != Model.base

    @property
    def deployable(self) -> bool:
        """Whether a user could run this arm on a new question (no gold document in its prompt)."""
        return self.context not in ORACLE_CONTEXTS


def method_words(method: str) -> dict[str, str]:
    """finetune.method in words: {"method": "LoRA", "tuning": "LoRA fine-tuning"} for lora, and so on."""
    return METHOD_WORDS.get(str(method), {"method": str(method), "tuning": f"{method} fine-tuning"})


def label(name: str, methods: Mapping[str, str] | None = None) -> str:
    """The arm ``name`` in words; ``methods``: fine-tuned model → its finetune.method (LoRA when not given)."""
    arm = Arm.parse(name)
    return arm.label((methods or {}).get(arm.model, "lora"))


def ordered(items: Iterable[str], known: Iterable[str]) -> list[str]:
    """``items`` deduplicated, the ``known`` ones first in their canonical order, the rest sorted."""
    seen = list(dict.fromkeys(items))
    known = list(known)
    return [k for k in known if k in seen] + sorted(i for i in seen if i not in known)


def models_of(names: Iterable[str]) -> list[str]:
    """The models of these arms, in the experiment's order."""
    return ordered((Arm.parse(n).model for n in names), MODELS)


def contexts_of(names: Iterable[str]) -> list[str]:
    """The contexts of these arms, in the experiment's order."""
    return ordered((Arm.parse(n).context for n in names), CONTEXTS)


def order(names: Iterable[str]) -> list[str]:
    """Arm names in the experiment's order: by model (base, finetuned, raft, others), then by context."""
    names = list(dict.fromkeys(names))
    models, contexts = models_of(names), contexts_of(names)
    return sorted(names, key=lambda n: (models.index(Arm.parse(n).model), contexts.index(Arm.parse(n).context)))


def product(models: Iterable[str], contexts: Iterable[str]) -> list[Arm]:
    """Every model × every context, in the given order (what dvc.yaml's infer matrix expands)."""
    return [Arm(str(m), str(c)) for m in models for c in contexts]
