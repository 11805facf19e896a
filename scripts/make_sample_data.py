"""Generate the bundled ReDSM5-format sample (posts, annotations) and the tiny test vocab.

Deterministic: the same seed always writes byte-identical files. Run it with
``python scripts/make_sample_data.py`` and commit the output; ``make sample-data`` does both
the generation and a check that nothing changed.

The sample follows the official release schema exactly:
- ``redsm5_posts.csv``: post_id, text
- ``redsm5_annotations.csv``: post_id, sentence_id, sentence_text, DSM5_symptom, status,
  explanation

It contains varied wording, filler sentences, several symptoms per post, explicit negations
(status 0), SPECIAL_CASE rows, symptom-free posts (about a quarter) and a few posts whose text
differs from the annotated sentence in whitespace or quote style (to exercise offset matching).
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

OPENERS = ["", "Honestly, ", "Lately ", "To be honest, ", "These days ", "Recently "]
NO_SYMPTOM_SHARE = 0.25
EXPLANATION = {1: "Sentence describes the symptom.", 0: "Sentence explicitly denies the symptom."}


def _with_opener(sentence: str, rng: random.Random) -> str:
    opener = rng.choice(OPENERS)
    keep_case = re.match(r"I\b", sentence) is not None
    return opener + (sentence if keep_case or not opener else sentence[0].lower() + sentence[1:])


def _post(index: int, rng: random.Random) -> tuple[str, str, list[list[str]]]:
    """One post: (post_id, text, annotation rows)."""
    post_id = f"s_{index:04d}"
    symptoms = list(POSITIVE)
    chosen = [] if rng.random() < NO_SYMPTOM_SHARE else rng.sample(symptoms, rng.choice([1, 1, 2, 2, 3]))
    items: list[tuple[str, str | None, int | None]] = [(f, None, None) for f in rng.sample(FILLERS, rng.randint(1, 3))]
    for symptom in chosen:
        items.append((_with_opener(rng.choice(POSITIVE[symptom]), rng), symptom, 1))
    if rng.random() < 0.35:
        denied = rng.choice([s for s in symptoms if s not in chosen])
        items.append((rng.choice(NEGATIONS[denied]), denied, 0))
    if rng.random() < 0.12:
        items.append((rng.choice(SPECIAL_CASES), "SPECIAL_CASE", 1))
    rng.shuffle(items)

    rows: list[list[str]] = []
    rendered: list[str] = []
    for k, (sentence, symptom, status) in enumerate(items):
        in_post = sentence
        if symptom is not None and rng.random() < 0.08:
            # the release text sometimes differs from the annotated sentence in spacing/quotes
            in_post = sentence.replace(" ", "  ", 1).replace("'", "\u2019")
        rendered.append(in_post)
        if symptom is not None and status is not None:
            explanation = (
                "Clinically relevant, not a DSM-5 criterion." if symptom == "SPECIAL_CASE" else EXPLANATION[status]
            )
            rows.append([post_id, f"{post_id}_{k}", sentence, symptom, str(status), explanation])
    return post_id, " ".join(rendered), rows


def write_sample(out_dir: Path, n_posts: int, seed: int) -> None:
    """Write the two release CSVs for ``n_posts`` synthetic posts."""
    rng = random.Random(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    posts, annotations = [], []
    for i in range(n_posts):
        post_id, text, rows = _post(i, rng)
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
    corpus += SPECIAL_CASES + FILLERS + OPENERS
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
