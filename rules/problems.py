"""What is wrong with a rule file, located by file, line and rule id."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Report = Callable[[int, str], None]  # (line, message): a problem in the file being read


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One mistake in a rule or contacts file; problems sort by file and line."""

    file: Path
    line: int
    rule: str | None
    message: str

    def __lt__(self, other: RuleProblem) -> bool:
        # a problem outside any rule has no rule id: it sorts before those of a rule
        return self._key() < other._key()

    def _key(self) -> tuple[str, int, str, str]:
        return (str(self.file), self.line, self.rule or "", self.message)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return f"{where}: rule {self.rule}: {self.message}" if self.rule else \
            f"{where}: {self.message}"


class RuleError(Exception):
    """Rules that cannot be loaded; `problems` lists every mistake found."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the rules\n{lines}")
