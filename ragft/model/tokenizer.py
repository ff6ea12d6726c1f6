"""The scratch model's tokenizer: word-level, trained with `tokenizers` on the text it will ever see.

Word level because the testbed's vocabulary is closed (names, values, templates): every word is one
token, so an answer is a few tokens and an unknown word can only come from outside the corpus. The
corpus documents are added to the training text so that the tokenizer covers them (vocabulary only;
the model is never trained on them here). Lowercasing is harmless: exact match compares lowercased text.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)

PAD, UNK, EOS = "[PAD]", "[UNK]", "[EOS]"


def train_word_tokenizer(texts: Iterable[str], *, model_max_length: int = 256):
    """A word-level PreTrainedTokenizerFast whose vocabulary is every word of ``texts``.

    Token ids are ordered by frequency, then alphabetically, so the same texts give the same ids.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()  # \w+ | [^\w\s]+ : words and punctuation runs
    trainer = trainers.WordLevelTrainer(special_tokens=[PAD, UNK, EOS], min_frequency=1, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, unk_token=UNK, eos_token=EOS, model_max_length=model_max_length
    )
    log.info("word-level tokenizer: %d tokens", len(wrapped))
    return wrapped


def unknown_rate(tokenizer, texts: Iterable[str]) -> float:
    """Share of tokens of ``texts`` that map to the unknown token (0.0 when the vocabulary covers them)."""
    n = unk = 0
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        n += len(ids)
        unk += sum(i == tokenizer.unk_token_id for i in ids)
    return unk / n if n else 0.0
