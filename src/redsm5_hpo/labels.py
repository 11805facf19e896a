"""The DSM-5 criteria of ReDSM5 and how release labels map onto them."""

SYMPTOMS: tuple[str, ...] = (
    "DEPRESSED_MOOD",
    "ANHEDONIA",
    "APPETITE_CHANGE",
    "SLEEP_ISSUES",
    "PSYCHOMOTOR",
    "FATIGUE",
    "WORTHLESSNESS",
    "COGNITIVE_ISSUES",
    "SUICIDAL_THOUGHTS",
)
"""The nine criteria, in the order of every label vector and logit."""

SPECIAL_CASE = "SPECIAL_CASE"
"""Clinically relevant rows that are none of the nine: never a label, never evidence."""

KNOWN_ANNOTATION_LABELS = frozenset(SYMPTOMS) | {SPECIAL_CASE}
