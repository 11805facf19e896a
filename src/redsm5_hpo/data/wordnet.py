"""Synonyms from the WordNet database files an OS package installs (Debian's ``wordnet-base``).

NLTK's reader wants its own downloaded corpus; this reads the installed ``index.*`` / ``data.*`` files
directly, so nothing is ever downloaded at run time.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

DEFAULT_DIR = "/usr/share/wordnet"
PARTS = ("noun", "verb", "adj", "adv")
SENSES = 2
"""Synonyms come from a word's most frequent senses only: rarer ones are mostly wrong in context."""


class WordNetMissing(RuntimeError):
    pass


def require(directory: str) -> Path:
    root = Path(directory)
    missing = [f"index.{p}" for p in PARTS if not (root / f"index.{p}").is_file()]
    if missing:
        raise WordNetMissing(
            f"WordNet files {', '.join(missing)} not found in {root}: install Debian's wordnet-base package "
            "(`apt-get install wordnet-base`, which `make setup` does when run as root) or point "
            "augment.wordnet_dir at a WordNet 3.0 dict directory"
        )
    return root


class WordNet:
    def __init__(self, directory: str = DEFAULT_DIR):
        self.root = require(directory)
        self.index: dict[str, list[tuple[str, int]]] = {}
        self._known: dict[str, list[str]] = {}
        for part in PARTS:
            with open(self.root / f"index.{part}", encoding="utf-8") as lines:
                for line in lines:
                    if line.startswith(" "):
                        continue  # licence header
                    fields = line.split()
                    lemma, synsets, pointers = fields[0], int(fields[2]), int(fields[3])
                    offsets = fields[6 + pointers : 6 + pointers + synsets][:SENSES]
                    self.index.setdefault(lemma, []).extend((part, int(o)) for o in offsets)

    def synonyms(self, word: str) -> list[str]:
        """Other lemmas of ``word``'s most frequent senses, in WordNet order, spaces for underscores
        (looked up once per word)."""
        lemma = word.lower()
        if lemma in self._known:
            return self._known[lemma]
        found: list[str] = []
        for part, offset in self.index.get(lemma, ()):
            for other in self._synset_words(part, offset):
                text = other.replace("_", " ")
                if other.lower() != lemma and text not in found:
                    found.append(text)
        self._known[lemma] = found
        return found

    def _synset_words(self, part: str, offset: int) -> list[str]:
        with open(self.root / f"data.{part}", "rb") as data:
            data.seek(offset)
            fields = data.readline().decode("utf-8").split()
        count = int(fields[3], 16)
        words = fields[4 : 4 + 2 * count : 2]
        return [w.split("(")[0] for w in words]  # adjectives may carry a marker like "(a)"


@cache
def load(directory: str = DEFAULT_DIR) -> WordNet:
    return WordNet(directory)
