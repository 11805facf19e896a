"""The trial loop's observer in its plainest form, for tests that drive hpo.study.run_trials."""

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Trains:
    """The trial loop's observer in its plainest form: ``objective`` trains each trial; it hears the rest."""

    objective: Callable[..., float]
    stop: Callable[[], bool] = lambda: False
    heard: list[tuple[str, int]] = field(default_factory=list)

    def claimed(self, trial) -> None:
        self.heard.append(("claimed", trial.number))

    def train(self, spec, trial) -> float:
        self.heard.append(("train", trial.number))
        return self.objective(spec, trial)

    def finished(self, study, trial) -> None:
        self.heard.append(("finished", trial.number))

    def should_stop(self) -> bool:
        return self.stop()
