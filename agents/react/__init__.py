"""The ReAct loop, its prompt and its completion parser."""

from agents.react.loop import ReActAgent
from agents.react.parser import ParsedStep, parse_completion

__all__ = ["ParsedStep", "ReActAgent", "parse_completion"]
