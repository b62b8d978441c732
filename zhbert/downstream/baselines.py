"""Non-neural baselines of the downstream tasks, trained on a task's train split (torch-free).

* ``ner``: a character CRF (``sklearn-crfsuite``, L-BFGS with L1 + L2 penalties) with the usual
  window features (the characters at offsets -2..+2, the bigrams around the character, a
  character class), and a longest match against the train split's entity dictionary (entities of
  at least :data:`MIN_DICT_ENTITY` characters, each with the type it has most often in train).
* ``cws``: jieba with its own default dictionary and HMM (its segmentation standard is not the
  People's Daily one, e.g. for names and dates, so it loses points on convention alone), and
  forward maximum matching against the train split's word dictionary.
* ``sentiment``: character 1-3-gram TF-IDF and logistic regression, its C chosen on dev.

Every baseline is ``fit(train, dev) -> predict(examples) -> predictions``; :data:`BASELINES`
lists them per task. ``examples/downstream_baselines.py`` runs them all and writes the record.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

from zhbert.downstream.scoring import tag_spans, word_spans
from zhbert.taskdata.readers import TextExample, TokenExample

MIN_DICT_ENTITY = 2
MAX_WORD = 16  # longest dictionary word or entity a matcher tries
CRF_PARAMS = {"algorithm": "lbfgs", "c1": 0.05, "c2": 0.05, "max_iterations": 100,
              "all_possible_transitions": True}
TFIDF_C = (0.3, 1.0, 3.0, 10.0)

Predictor = Callable[[Sequence], list]


def char_class(ch: str) -> str:
    """A coarse class of a character: han, digit, latin, punct or other.

    >>> [char_class(c) for c in "中1a，Ｂ"]
    ['han', 'digit', 'latin', 'punct', 'latin']
    """
    if "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf":
        return "han"
    if ch.isdigit():
        return "digit"
    if ch.isalpha():
        return "latin"
    return "punct" if not ch.isalnum() and not ch.isspace() else "other"


def char_features(chars: Sequence[str], i: int) -> dict[str, str]:
    """The CRF features of position ``i``: characters in a ±2 window, bigrams, character class.

    >>> sorted(char_features("中国人", 0).items())[:4]
    [('b-1', '<s>中'), ('b0', '中国'), ('c-1', '<s>'), ('c-2', '<s>')]
    """
    pad = ["<s>", "<s>", *chars, "</s>", "</s>"]
    j = i + 2
    return {"c-2": pad[j - 2], "c-1": pad[j - 1], "c0": pad[j], "c1": pad[j + 1], "c2": pad[j + 2],
            "b-1": pad[j - 1] + pad[j], "b0": pad[j] + pad[j + 1], "t0": char_class(pad[j]),
            "skip": pad[j - 1] + pad[j + 1]}


def fit_crf(train: Sequence[TokenExample], dev: Sequence[TokenExample] = ()) -> Predictor:
    """A character CRF trained on ``train`` (``dev`` unused: fixed :data:`CRF_PARAMS`)."""
    import sklearn_crfsuite

    crf = sklearn_crfsuite.CRF(**CRF_PARAMS)
    # generators: crfsuite copies each sequence in, so the feature dicts never all exist at once
    crf.fit((_sequence_features(e.chars) for e in train), (list(e.tags) for e in train))
    return lambda examples: [list(crf.predict_single(_sequence_features(e.chars)))
                             for e in examples]


def _sequence_features(chars: Sequence[str]) -> list[dict[str, str]]:
    return [char_features(chars, i) for i in range(len(chars))]


def entity_dictionary(train: Sequence[TokenExample], min_len: int = MIN_DICT_ENTITY) -> dict[str, str]:
    """Entity string -> its most frequent type in ``train`` (strings of at least ``min_len``).

    >>> ex = TokenExample(tuple("在北京"), ("O", "B-LOC", "E-LOC"))
    >>> entity_dictionary([ex, ex])
    {'北京': 'LOC'}
    """
    counts: dict[str, Counter] = defaultdict(Counter)
    for e in train:
        for start, end, typ in tag_spans(e.tags):
            if end - start >= min_len:
                counts["".join(e.chars[start:end])][typ] += 1
    return {text: c.most_common(1)[0][0] for text, c in counts.items()}


def longest_match(chars: Sequence[str], lexicon: dict[str, str] | set[str],
                  max_len: int = MAX_WORD) -> list[tuple[int, int]]:
    """Left-to-right longest matches of ``lexicon`` entries; positions matching none are skipped.

    >>> longest_match("我爱北京天安门", {"北京", "天安门", "北京天安门"})
    [(2, 7)]
    """
    out, i, n = [], 0, len(chars)
    while i < n:
        for end in range(min(n, i + max_len), i, -1):
            if "".join(chars[i:end]) in lexicon:
                out.append((i, end))
                i = end
                break
        else:
            i += 1
    return out


def span_tags(n: int, spans: Sequence[tuple[int, int, str]], outside: str = "O") -> list[str]:
    """BMES tags of length ``n`` with typed spans (``type`` "" gives untyped word tags).

    >>> span_tags(4, [(0, 2, "LOC"), (3, 4, "PER")])
    ['B-LOC', 'E-LOC', 'O', 'S-PER']
    >>> span_tags(3, [(0, 1, ""), (1, 3, "")])
    ['S', 'B', 'E']
    """
    tags = [outside] * n
    for start, end, typ in spans:
        suffix = f"-{typ}" if typ else ""
        if end - start == 1:
            tags[start] = "S" + suffix
        else:
            tags[start:end] = ["B" + suffix, *["M" + suffix] * (end - start - 2), "E" + suffix]
    return tags


def fit_entity_dictionary(train: Sequence[TokenExample], dev: Sequence = ()) -> Predictor:
    """Longest match against the train split's entity dictionary, each match tagged its type."""
    lexicon = entity_dictionary(train)
    longest = max(map(len, lexicon), default=1)

    def predict(examples):
        return [span_tags(len(e.chars), [(s, t, lexicon["".join(e.chars[s:t])])
                                         for s, t in longest_match(e.chars, lexicon, longest)])
                for e in examples]
    return predict


def words_to_tags(words: Sequence[str]) -> list[str]:
    """BMES word tags of a segmentation.

    >>> words_to_tags(["我们", "爱", "天安门"])
    ['B', 'E', 'S', 'B', 'M', 'E']
    """
    spans, i = [], 0
    for w in words:
        spans.append((i, i + len(w), ""))
        i += len(w)
    return span_tags(i, spans)


def fit_jieba(train: Sequence = (), dev: Sequence = ()) -> Predictor:
    """jieba's default dictionary and HMM (no training on the task's data)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()

    def predict(examples):
        return [words_to_tags([w for w in jieba.cut("".join(e.chars)) if w]) for e in examples]
    return predict


def fit_forward_max_match(train: Sequence[TokenExample], dev: Sequence = ()) -> Predictor:
    """Forward maximum matching against the train split's words; unknown characters alone."""
    lexicon = {"".join(e.chars[s:t]) for e in train for s, t in word_spans(e.tags)}
    longest = min(MAX_WORD, max(map(len, lexicon), default=1))

    def segment(chars):
        spans, i = [], 0
        for s, t in longest_match(chars, lexicon, longest):
            spans += [(k, k + 1, "") for k in range(i, s)] + [(s, t, "")]
            i = t
        return span_tags(len(chars), spans + [(k, k + 1, "") for k in range(i, len(chars))])
    return lambda examples: [segment(e.chars) for e in examples]


def fit_tfidf_logreg(train: Sequence[TextExample], dev: Sequence[TextExample]) -> Predictor:
    """Character 1-3-gram TF-IDF with logistic regression, C picked on ``dev`` from TFIDF_C."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2)
    x = vectorizer.fit_transform([e.text for e in train])
    y = [e.label for e in train]
    best = None
    for c in TFIDF_C if dev else TFIDF_C[1:2]:
        model = LogisticRegression(C=c, max_iter=2000).fit(x, y)
        acc = model.score(vectorizer.transform([e.text for e in dev]), [e.label for e in dev]) \
            if dev else 0.0
        if best is None or acc > best[0]:
            best = (acc, model)
    model = best[1]
    return lambda examples: [int(p) for p in model.predict(vectorizer.transform(
        [e.text for e in examples]))]


#: each task's baselines by name: ``fit(train, dev)`` returns ``predict(examples)``
BASELINES: dict[str, dict[str, Callable[[Sequence, Sequence], Predictor]]] = {
    "ner": {"crf": fit_crf, "dict_longest_match": fit_entity_dictionary},
    "cws": {"jieba": fit_jieba, "forward_max_match": fit_forward_max_match},
    "sentiment": {"tfidf_logreg": fit_tfidf_logreg},
}


def format_table(record: dict) -> str:
    """A Markdown table of a baselines record (``examples/downstream_baselines.py``; the table in
    docs/DOWNSTREAM.md, which a test compares with the committed record)."""
    lines = ["| task | baseline | metric | test score | precision | recall | train examples | "
             "fit CPU s | predict CPU s |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for task, by_name in record["tasks"].items():
        for name, r in by_name.items():
            p, rc = (f"{r[k]:.4f}" if k in r else "" for k in ("precision", "recall"))
            lines.append(f"| {task} | {name} | {r['metric']} | {r['score']:.4f} | {p} | {rc} | "
                         f"{r['train_examples']:,} | {r['fit_cpu_s']:.1f} | {r['predict_cpu_s']:.1f} |")
    return "\n".join(lines)
