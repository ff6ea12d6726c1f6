"""What pretraining and fine-tuning share: the batch collators and the Trainer with per-example loss.

Per-example loss: each example weighs the same in a batch, whatever its number of label tokens. With
transformers' default (mean over all label tokens), a 60-token biography outweighs a 4-token answer
15 to 1, so mixing biographies with question → answer examples would hardly teach the answers.
"""

from __future__ import annotations

from typing import Any

from transformers import Trainer

from ragft.model.prompts import IGNORE_INDEX


def rows_dataset(rows: list[dict], tokenizer: Any, max_length: int):
    """Training rows (see prompts.encode_rows) → a `datasets.Dataset` of input_ids/labels."""
    from datasets import Dataset

    from ragft.model.prompts import encode_rows

    examples = encode_rows(rows, tokenizer, max_length)
    return Dataset.from_dict({"input_ids": [e[0] for e in examples], "labels": [e[1] for e in examples]})


def padding_collator(tokenizer: Any):
    """Right-pads input_ids (pad token) and labels (-100) to the longest example of the batch."""
    from transformers import DataCollatorForSeq2Seq

    tokenizer.padding_side = "right"
    return DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX)


class PackingCollator:
    """Packs a batch's examples into as few rows of at most ``max_length`` tokens as fit (first fit,
    longest first), with position ids restarting at each example and no attention mask.

    Why: the pretraining curriculum mixes 10-token questions with 180-token reading examples, so
    padding every row to the longest wastes two thirds of the compute. From restarting position ids
    the model builds a block-diagonal causal mask (transformers' packed-sequence support; GPT-2 needs
    ``use_cache=False``, which ExampleMeanTrainer passes), so packed examples never see each other.
    DataCollatorWithFlattening packs a whole batch into ONE row, whose attention then costs the
    square of the batch's total length; rows of ``max_length`` keep it at the model's own length.
    """

    def __init__(self, fill_token_id: int, max_length: int):
        # A row's unused tail is filled with ``fill_token_id`` (EOS: GPT-2 warns about pad ids without an
        # attention mask): it is a block of its own, its labels ignored.
        self.fill_token_id, self.max_length = fill_token_id, max_length

    def __call__(self, features: list[dict]) -> dict:
        import torch

        rows: list[list[dict]] = []
        room: list[int] = []
        for f in sorted(features, key=lambda f: -len(f["input_ids"])):
            n = len(f["input_ids"])
            slot = next((i for i, r in enumerate(room) if r >= n), None)
            if slot is None:
                rows.append([]), room.append(self.max_length)
                slot = len(rows) - 1
            rows[slot].append(f)
            room[slot] -= n
        width = max(self.max_length - r for r in room)
        ids, labels, positions = [], [], []
        for row, left in zip(rows, room):
            pad = width - (self.max_length - left)
            ids.append([t for f in row for t in f["input_ids"]] + [self.fill_token_id] * pad)
            # an example's first label would be predicted from the previous example's last token
            labels.append([t for f in row for t in [IGNORE_INDEX, *f["labels"][1:]]] + [IGNORE_INDEX] * pad)
            positions.append([p for f in row for p in range(len(f["input_ids"]))] + list(range(pad)))
        return {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "position_ids": torch.tensor(positions),
        }


def example_mean_loss(logits: Any, labels: Any, position_ids: Any = None, keep: Any = None) -> Any:
    """Mean over examples of each example's mean next-token loss on its labelled tokens.

    Examples are the rows of a padded batch, or, in a packed batch (DataCollatorWithFlattening), the
    runs of ``position_ids`` that restart at 0. ``keep``: the positions ``logits`` were computed at (the
    model's ``logits_to_keep``), when not every position's were.
    """
    import torch
    import torch.nn.functional as F

    targets = labels[:, 1:]
    rows = torch.arange(targets.shape[0], device=targets.device).unsqueeze(1).expand_as(targets)
    if position_ids is not None:
        starts = (position_ids == 0).long().cumsum(-1)[:, 1:]
        example = rows * (targets.shape[1] + 2) + starts
    else:
        example = rows
    if keep is None:
        logits = logits[:, :-1, :]
    else:
        targets, example = targets[:, keep], example[:, keep]
    token_loss = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="none"
    ).view(targets.shape)
    _, example = torch.unique(example.reshape(-1), return_inverse=True)
    valid = (targets.reshape(-1) != IGNORE_INDEX).float()
    n = int(example.max()) + 1
    sums = torch.zeros(n, device=logits.device).scatter_add(0, example, token_loss.reshape(-1) * valid)
    counts = torch.zeros(n, device=logits.device).scatter_add(0, example, valid)
    has_labels = counts > 0
    return (sums[has_labels] / counts[has_labels]).mean()


class ExampleMeanTrainer(Trainer):
    """transformers.Trainer whose loss weighs every example equally (see the module docstring).

    ``labelled_logits_only``: compute the vocabulary logits only at the positions whose next token has a
    label (the model's ``logits_to_keep``). A question → answer row of 300 prompt tokens then costs its
    answer's few positions of lm_head (SmolLM2's: 57 MFLOP a position, a fifth of its forward) instead of
    all 300, and its logits' memory shrinks alike; the loss is the same sum, up to floating-point order.
    """

    def __init__(self, *args: Any, labelled_logits_only: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.labelled_logits_only = labelled_logits_only

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        import torch

        labels = inputs.pop("labels")
        keep = None
        if self.labelled_logits_only:
            keep = torch.nonzero((labels[:, 1:] != IGNORE_INDEX).any(0)).squeeze(1)
            outputs = model(**inputs, use_cache=False, logits_to_keep=keep)
        else:
            outputs = model(**inputs, use_cache=False)
        loss = example_mean_loss(outputs.logits, labels, inputs.get("position_ids"), keep)
        return (loss, outputs) if return_outputs else loss


def training_args(output_dir: str, **run: Any):
    """TrainingArguments with the settings every ragft training shares; ``run`` gives the rest
    (batch size, steps or epochs, lr, warmup, weight decay, seed, logging_steps)."""
    import torch
    from transformers import TrainingArguments

    seed = run.pop("seed")
    settings = {
        "output_dir": output_dir,
        "lr_scheduler_type": "linear",
        "optim": "adamw_torch",
        "seed": seed,
        "data_seed": seed,
        "save_strategy": "no",          # validation (finetune.validation) saves checkpoints to keep the best
        "report_to": "none",  # the stages log the loss history to their own MLflow run
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": torch.cuda.is_available(),
    }
    return TrainingArguments(**{**settings, **run})


def final_loss(log_history: list[dict]) -> float:
    """The last logged training loss (the Trainer's own summary is a mean over the whole run)."""
    losses = [e["loss"] for e in log_history if "loss" in e]
    return float(losses[-1]) if losses else float("nan")
