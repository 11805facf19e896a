"""The one error type for configuration problems."""


class ConfigError(ValueError):
    """Every problem found in a configuration, listed at once."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid configuration ({len(self.problems)} problem(s)):\n{lines}")
