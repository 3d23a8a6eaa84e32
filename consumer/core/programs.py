"""The compiled program of a learner's mode: `program_for(config)`."""

from __future__ import annotations

from consumer.core.compiled import Program
from consumer.core.config import LearnerConfig
from consumer.core.relaxed import RelaxedProgram
from consumer.core.strict import StrictProgram

__all__ = ["program_for"]

PROGRAMS: dict[str, type[Program]] = {"strict": StrictProgram, "relaxed": RelaxedProgram}


def program_for(config: LearnerConfig) -> Program:
    """A new program of `config.mode` (one of `consumer.core.config.MODES`)."""
    return PROGRAMS[config.mode](config)
