"""How fast the embedded model runs on this machine, and what a completion can afford at that speed."""

from __future__ import annotations

from dataclasses import dataclass

# What a completion may cost, in seconds of this machine's measured speeds: the prompt (when nothing of it
# was evaluated before) and the answer.
PROMPT_SECONDS = 1.2
ANSWER_SECONDS = 0.7
# Speeds assumed before the first request measured them (tokens per second: SmolLM2-135M on one busy core).
INITIAL_PROMPT_SPEED = 150.0
INITIAL_ANSWER_SPEED = 60.0
INITIAL_CHARS_PER_TOKEN = 3.0  # of code, for SmolLM2's tokenizer: Go 2.8, Python and JavaScript 3.2
PROMPT_TOKENS = (192, 2048)  # the least a completion's prompt is given, and the most
ANSWER_TOKENS = (24, 128)


@dataclass(frozen=True)
class CompletionBudget:
    """How much prompt and answer a completion can afford on this machine."""

    prompt_tokens: int
    max_new_tokens: int
    chars_per_token: float = INITIAL_CHARS_PER_TOKEN  # of the last prompts: what fits the budget


class Speeds:
    """Tokens per second of prompt evaluation and of generation, smoothed over the last requests."""

    def __init__(self) -> None:
        self.prompt = INITIAL_PROMPT_SPEED
        self.answer = INITIAL_ANSWER_SPEED
        self.chars_per_token = INITIAL_CHARS_PER_TOKEN

    def observe_prompt(self, chars: int, tokens: int) -> None:
        if tokens >= 32:
            self.chars_per_token = 0.5 * self.chars_per_token + 0.5 * chars / tokens

    def observe(self, prompt_tokens: int, prompt_seconds: float, answer_tokens: int, answer_seconds: float) -> None:
        # Short runs say little (a 3-token prompt is all overhead): only long enough ones count.
        if prompt_tokens >= 32 and prompt_seconds > 0:
            self.prompt = 0.5 * self.prompt + 0.5 * prompt_tokens / prompt_seconds
        if answer_tokens >= 8 and answer_seconds > 0:
            self.answer = 0.5 * self.answer + 0.5 * answer_tokens / answer_seconds

    def budget(self, max_prompt_tokens: int) -> CompletionBudget:
        """A completion's prompt (at most ``max_prompt_tokens``) and answer at these speeds."""
        prompt = min(int(self.prompt * PROMPT_SECONDS), PROMPT_TOKENS[1], max_prompt_tokens)
        answer = min(int(self.answer * ANSWER_SECONDS), ANSWER_TOKENS[1])
        return CompletionBudget(
            max(PROMPT_TOKENS[0], prompt), max(ANSWER_TOKENS[0], answer), round(self.chars_per_token, 2)
        )
