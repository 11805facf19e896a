"""Generate the bundled ReDSM5-format sample (posts, annotations) and the tiny test vocab.

Deterministic: the same seed always writes byte-identical files. Run it with
``python scripts/make_sample_data.py`` and commit the output; ``make sample-data`` does both
the generation and a check that nothing changed.

The sample follows the official release schema exactly:
- ``redsm5_posts.csv``: post_id, text
- ``redsm5_annotations.csv``: post_id, sentence_id, sentence_text, DSM5_symptom, status,
  explanation

and the release's shape, at its own size:
- label frequencies: the published per-symptom post counts (``RELEASE_POSTS``, of
  ``RELEASE_TOTAL`` posts, ``RELEASE_NO_SYMPTOM`` of them without any status-1 row) scaled to the
  sample's number of posts, exactly; several symptoms per post, explicit negations (status 0);
- lengths with a long tail: most posts are a few sentences, about 2% run to 400-800 words (over
  512 tokens) and a few to over 2,000 words, with their evidence in the last part of the post,
  past the first windows;
- annotation rows that do not match the post verbatim (about 16%): spacing and curly quotes,
  case, or the annotator's own wording (a contraction written out, a word changed); each row's
  ``sentence_id`` is ``<post_id>_<k>``, k the sentence's 0-based index in its post.
"""

from __future__ import annotations

import argparse
import csv
import random
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO / "src" / "redsm5_hpo" / "data" / "sample"
VOCAB_PATH = REPO / "src" / "redsm5_hpo" / "models" / "assets" / "tiny_vocab.txt"

POSITIVE: dict[str, list[str]] = {
    "DEPRESSED_MOOD": [
        "I feel empty and sad almost every single day.",
        "Everything just feels hopeless and gray lately.",
        "I cry myself to sleep most nights without knowing why.",
        "There is this heavy sadness that never really lifts.",
        "I have felt down and miserable for weeks now.",
        "Most mornings I wake up already feeling like crying.",
    ],
    "ANHEDONIA": [
        "Nothing I used to love brings me any joy anymore.",
        "I stopped playing guitar because it feels pointless now.",
        "Even hanging out with friends feels like a chore.",
        "I can't enjoy my favourite shows or games at all.",
        "My hobbies used to excite me but now I feel nothing.",
        "I lost all interest in the things that made me happy.",
    ],
    "APPETITE_CHANGE": [
        "I barely eat anything and I have lost a lot of weight.",
        "I keep stress eating and gained almost twenty pounds.",
        "Food has no taste and I skip most meals.",
        "My appetite is gone, I forget to eat for whole days.",
        "I binge on junk food every night even when I'm not hungry.",
        "My clothes are loose because I stopped eating properly.",
    ],
    "SLEEP_ISSUES": [
        "I lie awake until four in the morning every night.",
        "I sleep twelve hours a day and still feel like I need more.",
        "Insomnia has me staring at the ceiling all night.",
        "I keep waking up at three am and can't fall back asleep.",
        "My sleep schedule is completely wrecked.",
        "Some days I don't get out of bed until the afternoon.",
    ],
    "PSYCHOMOTOR": [
        "I feel so restless that I can't sit still for a minute.",
        "I pace around my room for hours, fidgeting constantly.",
        "Everything I do feels slowed down, even talking.",
        "People say I move and speak like I'm in slow motion.",
        "My hands won't stop shaking and I keep pacing.",
        "I feel physically sluggish, like moving through mud.",
    ],
    "FATIGUE": [
        "I am exhausted all the time no matter how much I rest.",
        "Even taking a shower drains all my energy.",
        "I have zero energy and feel tired constantly.",
        "Just getting through the workday wipes me out completely.",
        "My body feels heavy and worn out every day.",
        "I'm too drained to do even simple chores.",
    ],
    "WORTHLESSNESS": [
        "I feel like a worthless burden on everyone around me.",
        "Everything that goes wrong is my fault and I hate myself.",
        "I'm a failure and I don't deserve anyone's kindness.",
        "I feel so guilty about everything I've ever done.",
        "I am useless and everyone would be better off without my mistakes.",
        "I constantly feel ashamed of who I am.",
    ],
    "COGNITIVE_ISSUES": [
        "I can't concentrate on anything for more than a few minutes.",
        "My mind goes blank and I can't make even small decisions.",
        "I keep forgetting things and can't focus at work.",
        "Reading a single page takes forever because I can't focus.",
        "My brain feels foggy and I lose track of conversations.",
        "I struggle to think clearly or decide what to eat.",
    ],
    "SUICIDAL_THOUGHTS": [
        "I keep thinking about ending my life.",
        "Sometimes I wish I could just go to sleep and never wake up.",
        "I have thought about how I would kill myself.",
        "I don't want to be alive anymore.",
        "Thoughts of suicide keep coming back every night.",
        "I wonder if everyone would be better off if I were dead.",
    ],
}

NEGATIONS: dict[str, list[str]] = {
    "DEPRESSED_MOOD": ["I wouldn't say I feel sad, honestly my mood is fine."],
    "ANHEDONIA": ["I still enjoy my hobbies and time with friends."],
    "APPETITE_CHANGE": ["My appetite is normal and my weight hasn't changed."],
    "SLEEP_ISSUES": ["Sleep is not a problem for me, I sleep fine."],
    "PSYCHOMOTOR": ["I'm not restless or slowed down at all."],
    "FATIGUE": ["I actually have plenty of energy during the day."],
    "WORTHLESSNESS": ["I don't feel worthless or guilty about myself."],
    "COGNITIVE_ISSUES": ["I can focus and concentrate just fine at work."],
    "SUICIDAL_THOUGHTS": ["I have never had any thoughts of hurting myself."],
}

SPECIAL_CASES = [
    "I get panic attacks whenever I have to take the bus.",
    "My ex keeps texting me and it makes me so anxious.",
    "I have been drinking a lot more than I should.",
    "I had a flashback to the accident again yesterday.",
]

FILLERS = [
    "I'm 24 and work at a grocery store.",
    "My cat knocked over a plant this morning.",
    "Not sure if this is the right subreddit for this.",
    "Sorry for the long post, I'm on mobile.",
    "I started a new job about three months ago.",
    "We moved to a new city last spring.",
    "My sister is visiting next weekend.",
    "I've been watching a lot of cooking videos.",
    "The weather here has been rainy all week.",
    "I have a dog named Biscuit.",
    "My exams start in two weeks.",
    "I'm thinking about going back to school.",
    "Anyway, thanks for reading this far.",
    "My roommate plays loud music at night.",
    "I finally fixed my bike yesterday.",
    "Has anyone else dealt with something like this?",
    "I talked to my mom on the phone today.",
    "Work has been busy because of the holidays.",
    "I bought a new phone last week.",
    "I don't really know what I'm asking for here.",
]

STORY_TIMES = [
    "Last week",
    "On Monday",
    "Yesterday",
    "A few days ago",
    "This morning",
    "Over the weekend",
    "Back in college",
    "Two years ago",
    "Earlier today",
    "Around midnight",
]
STORY_PEOPLE = [
    "my brother",
    "my manager",
    "our neighbour",
    "my best friend",
    "my landlord",
    "a coworker",
    "my dad",
    "my cousin",
    "my therapist",
    "a guy from class",
]
STORY_EVENTS = [
    "called me about the rent",
    "asked if I wanted to help with the move",
    "told me a long story about his car",
    "sent me photos from the trip",
    "talked about the new project at work",
    "invited me to a barbecue",
    "complained about the traffic downtown",
    "showed me a video about old trains",
    "mentioned a concert in the park",
    "asked me to water the plants",
]
"""Long posts tell a story around their symptoms: time + person + event, 1,000 combinations."""

OPENERS = ["", "Honestly, ", "Lately ", "To be honest, ", "These days ", "Recently "]
RELEASE_TOTAL = 1484
RELEASE_NO_SYMPTOM = 392
RELEASE_POSTS = {
    "DEPRESSED_MOOD": 328,
    "WORTHLESSNESS": 311,
    "SUICIDAL_THOUGHTS": 165,
    "ANHEDONIA": 124,
    "FATIGUE": 124,
    "SLEEP_ISSUES": 102,
    "COGNITIVE_ISSUES": 59,
    "APPETITE_CHANGE": 44,
    "PSYCHOMOTOR": 35,
    "SPECIAL_CASE": 92,
}
"""Posts with a status-1 row per label in the release (its dataset card)."""
LONG_SHARE = 0.02
"""Posts of 35-60 story sentences (400-800 words)."""
VERY_LONG_POSTS = 2
"""Posts of over 2,000 words."""
EXPLANATION = {1: "Sentence describes the symptom.", 0: "Sentence explicitly denies the symptom."}
ANNOTATOR_WORDING = [
    ("I'm", "I am"),
    ("can't", "cannot"),
    ("don't", "do not"),
    ("I've", "I have"),
    ("feel", "am feeling"),
    ("every", "each"),
    ("really", "truly"),
    ("anymore", "any longer"),
]
"""How an annotator's copy of a sentence differs from the post: the first of these rewrites that applies,
else the final punctuation."""


def scaled_counts(n_posts: int) -> tuple[dict[str, int], int]:
    """The release's posts per label and posts without a status-1 row, scaled to ``n_posts``."""
    scale = n_posts / RELEASE_TOTAL
    return {label: round(count * scale) for label, count in RELEASE_POSTS.items()}, round(RELEASE_NO_SYMPTOM * scale)


def assign_labels(n_posts: int, rng: random.Random) -> list[set[str]]:
    """Per post, its status-1 labels: each label on exactly its scaled count of posts, and exactly the
    scaled number of posts without any; every other post has at least one label."""
    counts, none = scaled_counts(n_posts)
    occurrences = [label for label, count in counts.items() for _ in range(count)]
    rng.shuffle(occurrences)
    order = list(range(n_posts))
    rng.shuffle(order)
    positive = order[: min(n_posts - none, len(occurrences))]
    labels: list[set[str]] = [set() for _ in range(n_posts)]
    for index, label in zip(positive, occurrences, strict=False):
        labels[index].add(label)
    rest = occurrences[len(positive) :]
    for label in rest:
        free = [i for i in positive if label not in labels[i]]
        labels[rng.choice(free)].add(label)
    return labels


def _with_opener(sentence: str, rng: random.Random) -> str:
    opener = rng.choice(OPENERS)
    keep_case = re.match(r"I\b", sentence) is not None
    return opener + (sentence if keep_case or not opener else sentence[0].lower() + sentence[1:])


def _story(rng: random.Random) -> str:
    return f"{rng.choice(STORY_TIMES)} {rng.choice(STORY_PEOPLE)} {rng.choice(STORY_EVENTS)}."


def _annotated(sentence: str, rng: random.Random) -> tuple[str, str]:
    """(the sentence as the post has it, as the annotation row has it)."""
    draw = rng.random()
    if draw < 0.06:  # spacing and typographic quotes in the post
        return sentence.replace(" ", "  ", 1).replace("'", "\u2019"), sentence
    if draw < 0.10:  # the annotator's copy in lower case
        return sentence, sentence.lower()
    if draw < 0.16:  # the annotator's own wording
        for written, rewritten in ANNOTATOR_WORDING:
            if written in sentence:
                return sentence, sentence.replace(written, rewritten, 1)
        return sentence, sentence.rstrip(".!?") + "!"
    return sentence, sentence


def _post(index: int, labels: set[str], length: str, rng: random.Random) -> tuple[str, str, list[list[str]]]:
    """One post with status-1 rows for ``labels``: (post_id, text, annotation rows). ``length``: ``short``,
    ``long`` or ``very_long``; the symptoms of a long post are in its last 40%."""
    post_id = f"s_{index:04d}"
    symptoms = list(POSITIVE)
    fillers: list[tuple[str, str | None, int | None]] = [
        (f, None, None) for f in rng.sample(FILLERS, rng.randint(1, 3))
    ]
    if length != "short":
        sentences = rng.randint(35, 60) if length == "long" else rng.randint(185, 200)
        fillers += [(_story(rng), None, None) for _ in range(sentences)]
    annotated: list[tuple[str, str | None, int | None]] = []
    for symptom in sorted(labels):
        sentence = rng.choice(SPECIAL_CASES) if symptom == "SPECIAL_CASE" else rng.choice(POSITIVE[symptom])
        annotated.append((_with_opener(sentence, rng), symptom, 1))
    if rng.random() < 0.35:
        denied = rng.choice([s for s in symptoms if s not in labels])
        annotated.append((rng.choice(NEGATIONS[denied]), denied, 0))
    if length == "short":
        items = fillers + annotated
        rng.shuffle(items)
    else:
        items = list(fillers)
        tail = int(len(items) * 0.6)
        for item in annotated:
            items.insert(rng.randint(tail, len(items)), item)

    rows: list[list[str]] = []
    rendered: list[str] = []
    for k, (sentence, symptom, status) in enumerate(items):
        in_post, in_row = (sentence, sentence) if symptom is None else _annotated(sentence, rng)
        rendered.append(in_post)
        if symptom is not None and status is not None:
            explanation = (
                "Clinically relevant, not a DSM-5 criterion." if symptom == "SPECIAL_CASE" else EXPLANATION[status]
            )
            rows.append([post_id, f"{post_id}_{k}", in_row, symptom, str(status), explanation])
    return post_id, " ".join(rendered), rows


def write_sample(out_dir: Path, n_posts: int, seed: int) -> None:
    """Write the two release CSVs for ``n_posts`` synthetic posts."""
    rng = random.Random(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = assign_labels(n_posts, rng)
    positive = [i for i in range(n_posts) if labels[i] - {"SPECIAL_CASE"}]
    long_posts = rng.sample(positive, max(1, round(n_posts * LONG_SHARE)) + VERY_LONG_POSTS)
    lengths = dict.fromkeys(long_posts, "long") | dict.fromkeys(long_posts[:VERY_LONG_POSTS], "very_long")
    posts, annotations = [], []
    for i in range(n_posts):
        post_id, text, rows = _post(i, labels[i], lengths.get(i, "short"), rng)
        posts.append([post_id, text])
        annotations.extend(rows)
    with open(out_dir / "redsm5_posts.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["post_id", "text"])
        writer.writerows(posts)
    with open(out_dir / "redsm5_annotations.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["post_id", "sentence_id", "sentence_text", "DSM5_symptom", "status", "explanation"])
        writer.writerows(annotations)


def write_tiny_vocab(path: Path) -> None:
    """A WordPiece vocab covering the sample's words plus every printable ASCII character."""
    words: set[str] = set()
    corpus = [s for group in (POSITIVE, NEGATIONS) for lst in group.values() for s in lst]
    corpus += SPECIAL_CASES + FILLERS + OPENERS + STORY_TIMES + STORY_PEOPLE + STORY_EVENTS
    corpus += [rewritten for _, rewritten in ANNOTATOR_WORDING]
    for sentence in corpus:
        words.update(re.findall(r"\w+|[^\w\s]", sentence.lower()))
    chars = [chr(c) for c in range(33, 127)]
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = [c.lower() for c in chars] + ["##" + c.lower() for c in chars if c.isalnum()]
    vocab = list(dict.fromkeys(specials + pieces + sorted(words)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(vocab) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=SAMPLE_DIR, help="output directory for the two CSVs")
    parser.add_argument("--posts", type=int, default=360, help="number of posts (default 360)")
    parser.add_argument("--seed", type=int, default=5, help="generator seed (default 5)")
    parser.add_argument("--vocab", type=Path, default=VOCAB_PATH, help="where to write the tiny test vocab")
    args = parser.parse_args()
    write_sample(args.out, args.posts, args.seed)
    write_tiny_vocab(args.vocab)
    print(f"wrote {args.posts} posts to {args.out} and the tiny vocab to {args.vocab}")


if __name__ == "__main__":
    main()
