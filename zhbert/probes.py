"""Cloze probes: does a trained model fill in news collocations the way a reader would?

The probe set (``zhbert/cloze_probes.json``) holds single-[MASK] sentences written for this
project, each with the one character a reader expects.  :func:`score_probes` runs them through
:func:`zhbert.predict.fill_mask` and reports the top-1 hits; :func:`seen_in_corpus` tells for each
probe whether its completed sentence occurs verbatim in a corpus split (a probe copied from the
training text would measure memory, not learning).

>>> [p.answer for p in load_probes()][:3]
['京', '理', '国']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zhbert.errors import UserError
from zhbert.io_utils import read_json

PROBES_PATH = Path(__file__).with_name("cloze_probes.json")
MASK = "[MASK]"


@dataclass(frozen=True)
class Probe:
    """One cloze sentence with exactly one ``[MASK]`` and its expected character."""

    text: str
    answer: str

    @property
    def filled(self) -> str:
        """The sentence with the answer in place of ``[MASK]``.

        >>> Probe("北[MASK]大学", "京").filled
        '北京大学'
        """
        return self.text.replace(MASK, self.answer)


def load_probes(path: str | Path = PROBES_PATH) -> list[Probe]:
    """Read a probe file (``{"probes": [{"text", "answer"}, ...]}``); UserError when malformed."""
    data = read_json(path, "a probe file", obj=True)
    items = data.get("probes")
    if not isinstance(items, list):
        raise UserError(f"{path}: not a probe file (expected a list under 'probes')")
    probes = []
    for i, item in enumerate(items, 1):
        if not (isinstance(item, dict) and isinstance(item.get("text"), str)
                and isinstance(item.get("answer"), str)):
            raise UserError(f"{path}: probe {i} needs a text and an answer")
        if item["text"].count(MASK) != 1 or len(item["answer"]) != 1:
            raise UserError(f"{path}: probe {i} must have one {MASK} and a one-character answer")
        probes.append(Probe(item["text"], item["answer"]))
    return probes


def score_probes(model, tokenizer, probes: list[Probe], top_k: int = 5) -> dict:
    """Top-1 hits (and the rank of the answer in the top ``top_k``) of every probe."""
    from zhbert.predict import fill_mask

    predictions = fill_mask(model, tokenizer, [p.text for p in probes], top_k=top_k)
    rows = []
    for probe, per_text in zip(probes, predictions, strict=True):
        tokens = [c["token"] for c in per_text[0]]
        rows.append({"text": probe.text, "answer": probe.answer, "top": tokens,
                     "hit": tokens[0] == probe.answer,
                     "rank": tokens.index(probe.answer) + 1 if probe.answer in tokens else None})
    hits = sum(r["hit"] for r in rows)
    return {"n": len(rows), "top1_hits": hits, "top1_rate": hits / len(rows) if rows else 0.0,
            "top_k": top_k, "probes": rows}


def seen_in_corpus(probes: list[Probe], sentences) -> list[bool]:
    """For each probe, whether its filled sentence (without final punctuation) occurs verbatim
    inside any of ``sentences``.

    >>> seen_in_corpus([Probe("北[MASK]。", "京")], ["我在北京。"])
    [True]
    """
    needles = [p.filled.rstrip("。，！？") for p in probes]
    seen = [False] * len(needles)
    for sentence in sentences:
        for i, needle in enumerate(needles):
            if not seen[i] and needle in sentence:
                seen[i] = True
    return seen


__all__ = ["Probe", "load_probes", "score_probes", "seen_in_corpus", "PROBES_PATH"]
