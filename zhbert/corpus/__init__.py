"""Chinese corpus pipeline: sources, cleaning, vocabulary, binary format.

``prepare_corpus(source, inputs, out_dir, options, progress) -> stats`` builds a prepared corpus
directory; ``binary.load_corpus_info`` / ``binary.load_split`` read it back. Submodules import their
heavy dependencies (tokenizers, jieba, mwparserfromhell, opencc) lazily.
"""

from zhbert.corpus.binary import (
    CorpusInfo,
    CorpusSplit,
    load_corpus_info,
    load_split,
    write_split,
)
from zhbert.corpus.prepare import PrepareOptions, format_summary, prepare_corpus

__all__ = [
    "CorpusInfo", "CorpusSplit", "PrepareOptions", "format_summary", "load_corpus_info",
    "load_split", "prepare_corpus", "write_split",
]
