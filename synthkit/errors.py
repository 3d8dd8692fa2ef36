"""One exception hierarchy for synthkit.

Messages say what is wrong, what was received, what is allowed and how to fix it, and
never contain a cell value of private data (column names are schema, hence public).
"""

from __future__ import annotations


class SynthkitError(Exception):
    """Base of every error synthkit raises on purpose; the CLI prints it as one line."""


class ConfigError(SynthkitError, ValueError):
    """A hyperparameter, budget or command-line option is out of its allowed range."""


class SchemaError(SynthkitError):
    """The schema itself is inconsistent; carries every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(_join("invalid schema", self.problems))

    def __reduce__(self):  # pickled (a Ray task, a process pool) as its problems, not its message
        return (type(self), (self.problems,))


class DataValidationError(SynthkitError):
    """The data contradicts its schema; carries every problem found, never a value."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(_join("the data does not match its schema", self.problems))

    def __reduce__(self):  # as SchemaError: unpickling called the class with the joined message
        return (type(self), (self.problems,))


class SourceError(SynthkitError):
    """A data source or sink cannot be read or written."""


class BudgetExceededError(SynthkitError):
    """A mechanism would push the privacy spend past the target; raised before it runs."""


class ArtifactError(SynthkitError):
    """A model bundle is missing, corrupt, of an unknown format, or would be unsafe to load."""


class NotFittedError(SynthkitError):
    """A model was asked to sample or save before `fit`."""


def _join(head: str, problems: list[str]) -> str:
    if len(problems) == 1:
        return f"{head}: {problems[0]}"
    return f"{head} ({len(problems)} problems): " + "; ".join(problems)
