"""The reasoning: LLM backends, the ReAct loop, PAL mode, completion parsing, prompts and step
events. Knows nothing about HTTP; imports ``tools``, never ``service``."""
