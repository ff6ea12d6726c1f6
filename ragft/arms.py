"""The experiment's vocabulary: which models and contexts exist, in what order, and what they are called.

An arm is one (model, context) cell of the factorial design, named ``<model>-<context>`` (its key in
metrics/metrics.json and the reports; ``infer@<model>`` answers it into data/predictions/<model>/<context>/). Every module that names, parses, orders or labels arms does it here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class Context(StrEnum):
    """What an arm puts in the prompt; the order is the experiment's."""

    none = "none"                              # closed book
    retrieved = "retrieved"                    # the top_k retrieved chunks
    oracle = "oracle"                          # the gold document's chunks: the retrieval ceiling
    oracle_distractors = "oracle_distractors"  # gold + the best-ranked non-gold chunks, shuffled
    long_context = "long_context"              # every document, one seeded order for all questions (a shared prefix)


# Today's three candidates, the default declaration (conf/config.yaml), in its order: base (untuned), finetuned (LoRA
# on the documents), raft (LoRA on training questions read among distractor chunks). Other candidates are declared.
MODELS: tuple[str, ...] = ("base", "finetuned", "raft")
CONTEXTS: tuple[str, ...] = tuple(c.value for c in Context)
# The default declaration's contexts (conf/config.yaml): long_context is selected explicitly (arms.contexts).
DEFAULT_CONTEXTS: tuple[str, ...] = tuple(c for c in CONTEXTS if c != Context.long_context)
DOCUMENT_CHUNK = "doc:"  # a long_context prompt's "chunks" are whole documents: chunk_id = "doc:<doc_id>"
# Contexts handed the gold document: the retrieval ceiling, which no user can deploy (they have no gold document
# for a new question). The decision (best arm, break-even) is among the other arms; these are shown as ceilings.
ORACLE_CONTEXTS: tuple[str, ...] = (Context.oracle.value, Context.oracle_distractors.value)

# ragft's fine-tuning recipes → what each reads besides its base model and data/prepared (dvc.yaml's foreach over
# the design's trained candidates makes one finetune@<name> stage each, depending on that input only).
RECIPE_INPUTS = {"finetuned": "data/prepared", "raft": "data/chunks/chunks.jsonl"}
RECIPES: tuple[str, ...] = tuple(RECIPE_INPUTS)
DEFAULT_BASE = "base"  # the base model the `model` group declares (models/base); others are named in `bases`
# Recipes that put the documents' knowledge into the weights: "RAG vs fine-tuning" is asked of them (and of
# adapters trained elsewhere); raft teaches reading among distractors, so it is only asked "on top of RAG".
KNOWLEDGE_RECIPES = ("finetuned",)

# {method}/{tuning}: a fine-tuned model's finetune.method in words (ragft.model.loading.finetune_method reads it)
METHOD_WORDS = {"lora": {"method": "LoRA", "tuning": "LoRA fine-tuning"},
                "full": {"method": "full fine-tuning", "tuning": "full fine-tuning"}}
MODEL_LABELS = {"base": "base", "finetuned": "{method} on the documents", "raft": "RAFT ({method}, reading among distractors)"}
CONTEXT_LABELS = {
    "none": "closed-book",
    "retrieved": "retrieved chunks",
    "oracle": "gold document (oracle)",
    "oracle_distractors": "gold + distractors",
    "long_context": "whole corpus in the prompt (long context)",
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


# --------------------------------------------------------------------------- candidates: the models that run


@dataclass(frozen=True)
class Candidate:
    """One model of the factorial: a base model (``base``: a key of `bases`, ``base`` for the `model` group) and at
    most one of: a ragft recipe (trained here by finetune@<name>), a PEFT adapter folder trained elsewhere, or a
    name an OpenAI-compatible endpoint serves. With none of them the candidate is its base, untuned."""

    name: str
    base: str = DEFAULT_BASE
    recipe: str | None = None
    adapter: str | None = None
    served: str | None = None
    label: str | None = None

    @property
    def kind(self) -> str:
        """base | recipe | adapter | served."""
        return "recipe" if self.recipe else "adapter" if self.adapter else "served" if self.served else "base"

    @property
    def is_tuned(self) -> bool:
        """Trained from its base (here or elsewhere): its effects are measured against its base, untuned."""
        return self.kind in ("recipe", "adapter")

    @property
    def injects_knowledge(self) -> bool:
        """Whether "RAG vs fine-tuning" is asked of it: a document recipe, or an adapter a team trained."""
        return self.kind == "adapter" or self.recipe in KNOWLEDGE_RECIPES

    @property
    def weights(self) -> str:
        """What its answers depend on besides the base model: its fine-tuned folder, its adapter, or the base."""
        if self.recipe:
            return f"models/{self.name}"
        return self.adapter or f"models/{self.base}"

    def plain(self) -> dict:
        return {"base": self.base, "kind": self.kind, "recipe": self.recipe, "adapter": self.adapter,
                "served": self.served, "label": self.label}


DEFAULT_CANDIDATES = {"base": Candidate("base"), "finetuned": Candidate("finetuned", recipe="finetuned"),
                      "raft": Candidate("raft", recipe="raft")}


@dataclass(frozen=True)
class Design:
    """The candidates that run, in the experiment's order: what the effects, the verdict, the costs and the
    reports need to know about a model beyond its name (its base, whether it is tuned, its label). Built from
    params.yaml by evaluate and stored in metrics.json (``candidates``), from where the reports read it back."""

    candidates: tuple[Candidate, ...]

    @classmethod
    def from_config(cls, cfg) -> Design:
        """The candidates of arms.models, as params.yaml declares them (``candidates``)."""
        return cls.declared(cfg.arms.models, getattr(cfg, "candidates", None))

    @classmethod
    def declared(cls, models: Iterable[str], declared: Mapping | None) -> Design:
        """The candidates named in ``models``, from their declarations (name → base, recipe, adapter, served)."""
        declared = declared or {}
        out = []
        for name in models:
            c = declared.get(str(name)) or {}
            fields = {k: (c.get(k) if isinstance(c, Mapping) else getattr(c, k, None))
                      for k in ("base", "recipe", "adapter", "served", "label")}
            out.append(Candidate(str(name), str(fields.pop("base") or DEFAULT_BASE),
                                 **{k: None if v is None else str(v) for k, v in fields.items()}))
        return cls(tuple(out))

    @classmethod
    def from_json(cls, block: Mapping | None, names: Iterable[str] = ()) -> Design:
        """metrics.json's ``candidates`` block (absent in older files: today's three, named after their roles)."""
        if not block:
            models = models_of(names) if names else list(DEFAULT_CANDIDATES)
            return cls(tuple(DEFAULT_CANDIDATES.get(m, Candidate(m)) for m in models))
        return cls(tuple(Candidate(n, str(c.get("base") or DEFAULT_BASE), c.get("recipe"), c.get("adapter"),
                                   c.get("served"), c.get("label")) for n, c in block.items()))

    def to_json(self) -> dict:
        return {c.name: c.plain() for c in self.candidates}

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.candidates]

    def get(self, name: str) -> Candidate:
        for c in self.candidates:
            if c.name == name:
                return c
        return DEFAULT_CANDIDATES.get(name, Candidate(name))

    def is_tuned(self, model: str) -> bool:
        return self.get(model).is_tuned

    def reference(self, model: str) -> str | None:
        """The untuned candidate on ``model``'s base (the first declared): what its tuning is measured against."""
        base = self.get(model).base
        return next((c.name for c in self.candidates if c.kind == "base" and c.base == base), None)

    def rag(self, model: str) -> str | None:
        """The RAG arm ``model`` is compared with: its base, untuned, with the retrieved context."""
        ref = self.reference(model)
        return None if ref is None else Arm(ref, Context.retrieved.value).name

    def tuned(self) -> list[Candidate]:
        return [c for c in self.candidates if c.is_tuned]

    def order(self, names: Iterable[str]) -> list[str]:
        """Arm names by candidate (the declared order, unknown ones after), then by context."""
        names = list(dict.fromkeys(names))
        models = ordered((Arm.parse(n).model for n in names), self.names or MODELS)
        contexts = contexts_of(names)
        return sorted(names, key=lambda n: (models.index(Arm.parse(n).model), contexts.index(Arm.parse(n).context)))

    def model_label(self, model: str, method: str = "lora") -> str:
        """A candidate in words: its user-given label, else its role (the default three keep their words)."""
        c = self.get(model)
        if c.label:
            return c.label
        if c.kind == "recipe":
            words = MODEL_LABELS[c.recipe].format(**method_words(method))
            return words if c.name == c.recipe else f"{c.name}: {words}"
        if c.kind == "adapter":
            return f"{c.name}: adapter trained elsewhere"
        if c.kind == "served":
            return f"{c.name}: served model"
        return c.name if c.base == DEFAULT_BASE else f"{c.name} ({c.base}, untuned)"

    def label(self, arm: str, method: str = "lora") -> str:
        """An arm in words, with its candidate's label (the default cells keep their own words)."""
        a = Arm.parse(arm)
        c = self.get(a.model)
        if not c.label and DEFAULT_CANDIDATES.get(a.model) == c:
            return a.label(method)
        return f"{self.model_label(a.model, method)}, {CONTEXT_LABELS.get(a.context, a.context)}"


def base_params(base: str) -> str:
    """The params.yaml key that declares a base model: the `model` group for ``base``, else bases.<name>."""
    return "model" if base == DEFAULT_BASE else f"bases.{base}"


def dag(models: Iterable[str], candidates: Mapping, bases: Mapping) -> dict:
    """What dvc.yaml's foreach stages iterate, from the candidates of arms.models (params.yaml's ``dag``, computed
    by the ``ragft.dag`` resolver when conf/ is composed): ``bases`` (base_model@<base>: each distinct base once,
    its folder and its params key), ``trained`` (finetune@<name>: recipe candidates, with their base, recipe and
    recipe input) and ``infer`` (infer@<name>: every candidate, with its base and the weights its answers depend
    on). Undeclared names are left out, for the schema to refuse with the field and the fix."""
    design = Design.declared([m for m in models if m in (candidates or {})], candidates)
    out: dict[str, dict] = {"bases": {}, "trained": {}, "infer": {}}
    for c in design.candidates:
        where = {"base": c.base, "model": base_params(c.base)}
        out["bases"].setdefault(c.base, {"dir": f"models/{c.base}", "model": base_params(c.base)})
        if c.recipe in RECIPE_INPUTS:
            out["trained"][c.name] = {**where, "recipe": c.recipe, "input": RECIPE_INPUTS[c.recipe]}
        out["infer"][c.name] = {**where, "weights": c.weights}
    return out


def register_resolver() -> None:
    """``${ragft.dag:${arms.models},${candidates},${bases}}`` in conf/config.yaml (idempotent)."""
    from omegaconf import OmegaConf

    def resolve(models, candidates, bases):
        from omegaconf import OmegaConf as oc

        plain = lambda v: oc.to_container(v, resolve=True) if oc.is_config(v) else (v or {})
        return dag([str(m) for m in plain(models) or []], plain(candidates), plain(bases))

    if not OmegaConf.has_resolver("ragft.dag"):
        OmegaConf.register_new_resolver("ragft.dag", resolve)
