"""PAL mode (program-aided language models, Gao et al. 2022) with self-consistency.

The model writes a program, the sandbox computes the answer, and with ``samples > 1`` a
majority vote over sampled programs picks it. Entry point::

    async for event in run_pal(question, llm=llm, sandbox=sandbox, options=PalOptions(...)):
        ...  # ThoughtEvent / ActionEvent / ObservationEvent per step, one FinalEvent last

``LLMError`` propagates; see ``agents.pal.mode`` for the whole contract.
"""

from agents.pal.extract import Extraction, extract_program
from agents.pal.format import format_answer
from agents.pal.mode import PalOptions, PalSandbox, run_pal
from agents.pal.prompt import DEFAULT_TASK, TASKS, build_messages
from agents.pal.vote import VoteResult, majority_vote

__all__ = [
    "DEFAULT_TASK",
    "TASKS",
    "Extraction",
    "PalOptions",
    "PalSandbox",
    "VoteResult",
    "build_messages",
    "extract_program",
    "format_answer",
    "majority_vote",
    "run_pal",
]
