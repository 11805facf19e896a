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

CRITERION_DESCRIPTIONS: dict[str, str] = {
    "DEPRESSED_MOOD": "Depressed mood most of the day: feeling sad, empty or hopeless.",
    "ANHEDONIA": "Markedly diminished interest or pleasure in activities.",
    "APPETITE_CHANGE": "Significant weight loss or gain, or a change in appetite.",
    "SLEEP_ISSUES": "Insomnia or sleeping too much.",
    "PSYCHOMOTOR": "Psychomotor agitation or slowing observable by others.",
    "FATIGUE": "Fatigue or loss of energy.",
    "WORTHLESSNESS": "Feelings of worthlessness or excessive or inappropriate guilt.",
    "COGNITIVE_ISSUES": "Diminished ability to think or concentrate, or indecisiveness.",
    "SUICIDAL_THOUGHTS": "Recurrent thoughts of death, suicidal ideation or a suicide plan.",
}
"""The short description of each criterion that the pair input format puts before the post."""

SPECIAL_CASE = "SPECIAL_CASE"
"""Clinically relevant rows that are none of the nine: never a label, never evidence."""

KNOWN_ANNOTATION_LABELS = frozenset(SYMPTOMS) | {SPECIAL_CASE}
