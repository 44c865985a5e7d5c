"""The one error this package raises."""

from __future__ import annotations


class InvalidEngineArgs(ValueError):  # noqa: N818 -- the name the rest of Thrifty imports
    """An argument list that `vllm serve` of the pinned release would refuse, or that Thrifty
    refuses on purpose (an abbreviated flag, a `--config` file it cannot see into).

    The message reads `FLAG: PROBLEM (args[INDEX] = 'ARGUMENT')`, so a person sees which flag,
    what is wrong with it and which element of their list to fix.
    """

    def __init__(self, *, index: int, argument: str, flag: str | None, problem: str) -> None:
        self.index = index
        """Position of the offending element in the argument list, from 0."""
        self.argument = argument
        """The offending element as given."""
        self.flag = flag
        """The flag concerned, spelled the documented way, or None for a stray positional."""
        self.problem = problem
        """What is wrong and, where known, what would be right."""
        subject = flag if flag is not None else "positional argument"
        super().__init__(f"{subject}: {problem} (args[{index}] = {argument!r})")
