"""Evidence-only augmentation: nothing outside the evidence changes, offsets stay valid, same seed same
result, train split only. Uses the installed WordNet files and nlpaug for real."""

from __future__ import annotations

import dataclasses
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redsm5_hpo.config import load_config
from redsm5_hpo.config.errors import ConfigError
from redsm5_hpo.config.schema import AUGMENT_METHODS, AugmentConfig
from redsm5_hpo.data.augment import augment_posts, rewrite_evidence
from redsm5_hpo.data.corpus import Post
from redsm5_hpo.data.wordnet import DEFAULT_DIR, load
from tests.conftest import CONFIG_DIR

WORDNET = pytest.mark.skipif(
    not (__import__("pathlib").Path(DEFAULT_DIR) / "index.noun").is_file(), reason="wordnet-base not installed"
)

sentences = st.text(alphabet="abcdefgh XYZ,'", min_size=1, max_size=30).map(lambda s: s.strip() + ".")


def outside(text: str, spans) -> str:
    """The text with every span cut out, and a marker where each was."""
    out, cursor = [], 0
    for start, end in sorted(spans):
        out += [text[cursor:start], "|"]
        cursor = end
    return "".join(out) + text[cursor:]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(sentences, st.booleans(), st.integers(0, 8)), min_size=1, max_size=6),
    st.text(alphabet=" \n", min_size=1, max_size=3),
    st.integers(0, 2**32 - 1),
)
def test_rewriting_touches_only_evidence_and_keeps_offsets_valid(parts, separator, seed) -> None:
    text, evidence, by_symptom = "", [], [[] for _ in range(9)]
    for sentence, is_evidence, symptom in parts:
        if text:
            text += separator
        if is_evidence:
            span = (len(text), len(text) + len(sentence))
            evidence.append(span)
            by_symptom[symptom].append(span)
        text += sentence
    labels = tuple(int(bool(s)) for s in by_symptom)
    post = Post("p", text, labels, tuple(evidence), None, tuple(tuple(s) for s in by_symptom))

    written: list[str] = []

    def rewrite(sentence: str, rng: random.Random) -> str:
        words = sentence.split()
        rng.shuffle(words)
        out = " ".join(words) + " extra" * rng.randint(0, 3)
        written.append(out.strip() or sentence)
        return out

    new = rewrite_evidence(post, rewrite, 1.0, random.Random(seed), "#aug1")
    assert outside(new.text, new.evidence) == outside(post.text, post.evidence)
    assert [new.text[start:end] for start, end in new.evidence] == written
    for symptom, spans in enumerate(new.evidence_by_symptom):
        assert set(spans) <= set(new.evidence)
        assert len(spans) == len(post.evidence_by_symptom[symptom])
    assert new.labels == post.labels and new.post_id == "p#aug1"


def test_probability_zero_changes_nothing_but_the_id() -> None:
    post = Post("p", "Filler. I feel sad. More filler.", (1,) + (0,) * 8, ((8, 19),), None, (((8, 19),),) + ((),) * 8)
    new = rewrite_evidence(post, lambda s, rng: "CHANGED", 0.0, random.Random(0), "#aug1")
    assert (new.text, new.evidence) == (post.text, post.evidence)


@WORDNET
def test_wordnet_synonyms_come_from_the_installed_files() -> None:
    wordnet = load(DEFAULT_DIR)
    assert "slumber" in wordnet.synonyms("sleep")
    assert "sleep" not in wordnet.synonyms("sleep")
    assert wordnet.synonyms("qwertyuiop") == []


@WORDNET
def test_every_method_is_deterministic_and_rewrites_evidence_of_the_train_split_only(sample_corpus) -> None:
    train = sample_corpus.splits["train"][:40]
    for method in AUGMENT_METHODS:
        cfg = AugmentConfig(methods=[method], probability=1.0, copies=2, word_fraction=0.3)
        first, second = augment_posts(train, cfg, seed=5), augment_posts(train, cfg, seed=5)
        with_evidence = [p for p in train if p.evidence]
        assert first[: len(train)] == train
        assert len(first) == len(train) + 2 * len(with_evidence)
        assert first == second, method
        assert augment_posts(train, cfg, seed=6) != first, method
        originals = {p.post_id: p for p in train}
        changed = 0
        for post in first[len(train) :]:
            source = originals[re.sub(r"#aug\d$", "", post.post_id)]
            assert outside(post.text, post.evidence) == outside(source.text, source.evidence)
            changed += post.text != source.text
        assert changed > len(with_evidence), method


def test_augmentation_settings_are_validated(tmp_path) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(
            ["augment.methods=[synonym,shout]", "augment.probability=2", f"augment.wordnet_dir={tmp_path}"], CONFIG_DIR
        )
    message = str(error.value)
    assert "['shout'] unknown" in message
    assert "probability" in message
    assert "wordnet-base" in message and str(tmp_path) in message


def test_a_search_space_choice_names_several_methods() -> None:
    config = load_config(["augment.methods=swap+delete"], CONFIG_DIR)
    assert config.augment.methods == ["swap", "delete"]
    assert dataclasses.replace(config.augment, methods=[]).methods == []
