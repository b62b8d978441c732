"""Speed of the corpus pipeline: the wiki dump reader on a synthetic dump, and the demo preparation.

python benchmarks/prepare_speed.py [--size-mb 50] [--workers 1 2] [--repeat 3] [--skip-demo]
Writes nothing into the repository (a temporary directory is used and removed). With --repeat N
each wiki timing is run N times and the fastest is reported (the machine may be shared); its CPU
time (this process + pool workers) is printed too, as MB per CPU second.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zhbert.corpus.prepare import PrepareOptions, prepare_corpus  # noqa: E402
from zhbert.corpus.wiki import iter_wiki, iter_wiki_pages  # noqa: E402
from zhbert.errors import UserError, run_cli  # noqa: E402

_CHARS = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严"
_TRAD = "這個國際電腦軟體與資訊歷史發展"
_TEMPLATES = ["{{Infobox settlement\n|name = 某地\n|population = 12345\n|area = {{convert|12|km2}}\n}}",
              "{{Otheruses|subject=某物}}", "{{Citation needed|date=2020年1月}}"]


def _sentence(rng: random.Random) -> str:
    words = "".join(rng.choice(_CHARS) for _ in range(rng.randint(15, 60)))
    link = f"[[{words[:3]}|{words[3:6]}]]" if rng.random() < 0.5 else f"[[{words[:4]}]]"
    ref = f'<ref name="r{rng.randint(1, 99)}">{{{{cite web|url=http://example.org|title=来源}}}}</ref>'
    return f"'''{words[:2]}'''{words[2:20]}{link}{words[20:]}{_TRAD[: rng.randint(0, 8)]}。{ref}"


def _page(rng: random.Random, i: int) -> str:
    parts = [rng.choice(_TEMPLATES)]
    for section in range(rng.randint(2, 5)):
        parts.append(f"== 第{section}节 ==")
        parts.append("".join(_sentence(rng) for _ in range(rng.randint(3, 8))))
        if rng.random() < 0.3:
            parts.append('{| class="wikitable"\n|-\n! 项目 !! 数值\n|-\n| 甲 || 1\n|}')
        if rng.random() < 0.3:
            parts.append("* 列表项目一\n* 列表项目二")
    parts.append("[[File:Example.jpg|thumb|图片说明]]\n[[Category:测试]]")
    text = "\n".join(parts).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    ns = 0 if i % 10 else 1
    return (f"<page><title>页面{i}</title><ns>{ns}</ns><id>{i}</id><revision><id>{i}</id>"
            f'<text xml:space="preserve">{text}</text></revision></page>\n')


def write_dump(path: Path, size_mb: float, seed: int = 0) -> int:
    """Write a synthetic zhwiki-like dump of about ``size_mb`` MB; return its size in bytes."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11">\n')
        i = 0
        while fh.tell() < size_mb * 1e6:
            fh.write(_page(rng, i))
            i += 1
        fh.write("</mediawiki>\n")
    return path.stat().st_size


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-mb", type=float, default=50.0, help="size of the synthetic dump in MB")
    p.add_argument("--skip-demo", action="store_true", help="do not time the demo preparation")
    p.add_argument("--skip-clean", action="store_true", help="time only the XML page reader")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                   help="time markup removal with each of these worker counts")
    p.add_argument("--repeat", type=int, default=1,
                   help="run each wiki timing this many times and report the best")
    args = p.parse_args(argv)
    if args.size_mb <= 0 or args.repeat < 1 or min(args.workers) < 1:
        raise UserError("--size-mb, --repeat and --workers must be positive")
    return args


def _clean_all(dump: Path, workers: int) -> tuple[int, str]:
    """Run the wiki reader with markup removal; ``(plain characters, sha256 of the output)``."""
    digest, chars = hashlib.sha256(), 0
    for _, text in iter_wiki(dump, workers=workers):
        digest.update(text.encode("utf-8") + b"\0")
        chars += len(text)
    return chars, digest.hexdigest()


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (pool workers are joined at the end)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _best_seconds(func, repeat: int):
    """``(best wall time, CPU time of that run, result)`` of ``repeat`` calls of ``func``."""
    best, best_cpu, result = float("inf"), 0.0, None
    for _ in range(repeat):
        t, cpu = time.perf_counter(), _cpu_seconds()
        result = func()
        if time.perf_counter() - t < best:
            best, best_cpu = time.perf_counter() - t, _cpu_seconds() - cpu
    return best, best_cpu, result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the timings and print one line per measurement."""
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "synthetic.xml"
        size = write_dump(dump, args.size_mb)
        mb = size / 1e6
        dt, _, pages = _best_seconds(lambda: sum(1 for _ in iter_wiki_pages(dump)), args.repeat)
        print(f"wiki XML reader: {mb:.1f} MB, {pages} pages in {dt:.2f} s = {mb / dt:.1f} MB/s")
        outputs = set()
        for workers in [] if args.skip_clean else args.workers:
            dt, cpu, (chars, digest) = _best_seconds(lambda w=workers: _clean_all(dump, w),
                                                     args.repeat)
            outputs.add(digest)
            # MB per CPU second does not depend on what else runs on a shared machine.
            print(f"wiki reader + markup removal + t2s, {workers} worker(s): {dt:.1f} s = "
                  f"{mb / dt:.1f} MB/s, {cpu:.1f} CPU s = {mb / cpu:.1f} MB per CPU s "
                  f"({chars:,} plain characters)")
        if len(outputs) > 1:
            raise UserError("different worker counts gave different plain text")
        if not args.skip_demo:
            t = time.perf_counter()
            stats = prepare_corpus("demo", out_dir=Path(tmp) / "demo", progress=False,
                                   options=PrepareOptions())
            print(f"demo preparation: {time.perf_counter() - t:.1f} s, "
                  f"{stats['num_sentences']:,} sentences, vocab {stats['vocab_size']:,}")
    return 0


if __name__ == "__main__":
    run_cli(main)
