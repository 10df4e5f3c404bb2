"""An OpenAI-compatible chat client with bounded, Retry-After-aware retries, and strict parsing.

The client's own retries are off (``max_retries=0``): tenacity retries here so that every wait is
visible, bounded and honours the server's ``Retry-After``. Only 429, 5xx and connection errors are
retried; other 4xx answers are the caller's problem and surface at once. The API key is held
only by the ``openai`` client object; it is never logged, returned or recorded.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import openai
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from ragops.config import redact
from ragops.errors import InvalidInput

if TYPE_CHECKING:
    from ragops.services import LLMEndpoint

log = logging.getLogger(__name__)

# Errors that make every further call fail too: the run stops instead of burning its retries.
FATAL_ERRORS: tuple[type[Exception], ...] = (openai.AuthenticationError, openai.PermissionDeniedError,
                                             openai.NotFoundError)


@dataclass
class LLMSettings:
    """Where and how to call the model. ``api_key`` stays out of ``repr`` and ``public()``."""

    base_url: str
    model: str
    api_key: str = field(default="not-needed", repr=False)
    temperature: float = 0.7
    max_tokens: int = 512
    timeout_s: float = 60.0
    max_attempts: int = 5            # HTTP attempts per call on 429 / 5xx / connection errors
    max_wait_s: float = 60.0         # the longest single wait; a larger Retry-After is clamped to it
    json_attempts: int = 3           # calls per chunk while the answer is not valid JSON
    price_prompt_per_1m: float = 0.0       # USD per 1M prompt tokens
    price_completion_per_1m: float = 0.0   # USD per 1M completion tokens

    def public(self) -> dict[str, Any]:
        """The settings as recorded in lineage: no key, URL credentials masked."""
        values = asdict(self)
        values.pop("api_key")
        # Only the URL can hold a secret (userinfo); redact() on the whole dict would also mask
        # "max_tokens", whose name looks secret to it.
        values["base_url"] = redact(values["base_url"])
        return values

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.price_prompt_per_1m + completion_tokens * self.price_completion_per_1m) / 1e6

    @classmethod
    def from_endpoint(cls, endpoint: LLMEndpoint, **overrides: Any) -> LLMSettings:
        """From the services' LLM endpoint (the ``ragops_llm`` connection): its extra may carry
        ``model`` and the prices; explicit overrides (DAG params) win when set."""
        extra = dict(endpoint.extra or {})
        values: dict[str, Any] = {"base_url": endpoint.base_url, "api_key": endpoint.api_key or "not-needed"}
        for key in ("model", "price_prompt_per_1m", "price_completion_per_1m", "timeout_s", "max_attempts"):
            if extra.get(key) not in (None, ""):
                values[key] = extra[key]
        values.update({k: v for k, v in overrides.items() if v not in (None, "")})
        if not values.get("model"):
            raise InvalidInput("no LLM model given: set the param 'llm_model' or the connection extra 'model'")
        return cls(**values)


@dataclass
class Completion:
    content: str
    prompt_tokens: int
    completion_tokens: int
    model: str


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return isinstance(exc, openai.APIConnectionError)  # includes timeouts


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """The server's requested wait (``Retry-After`` seconds, or ``retry-after-ms``), if any."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue  # an HTTP date: fall back to exponential backoff
    return None


class ChatClient:
    """``complete(messages)`` with bounded retries. ``sleep`` is injectable so tests can see the waits."""

    def __init__(self, settings: LLMSettings, *, sleep: Callable[[float], None] = time.sleep,
                 initial_wait_s: float = 0.5):
        self.settings = settings
        self._sleep = sleep
        self._backoff = wait_exponential_jitter(initial=initial_wait_s, max=settings.max_wait_s)
        self._client = openai.OpenAI(base_url=settings.base_url, api_key=settings.api_key,
                                     max_retries=0, timeout=settings.timeout_s)
        self.http_attempts = 0
        self.retries = 0

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        requested = retry_after_seconds(exc)
        return min(requested, self.settings.max_wait_s) if requested is not None else self._backoff(state)

    def _before_sleep(self, state: RetryCallState) -> None:
        self.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        log.warning("LLM call attempt %d failed (%s); retrying in %.2fs", state.attempt_number,
                    type(exc).__name__, state.next_action.sleep if state.next_action else 0.0)

    def complete(self, messages: Sequence[dict[str, str]], *, seed: int | None = None) -> Completion:
        retrying = Retrying(
            stop=stop_after_attempt(self.settings.max_attempts), wait=self._wait,
            retry=retry_if_exception(_is_retryable), sleep=self._sleep,
            before_sleep=self._before_sleep, reraise=True)
        for attempt in retrying:
            with attempt:
                self.http_attempts += 1
                extra: dict[str, Any] = {"seed": seed} if seed is not None else {}
                response = self._client.chat.completions.create(
                    model=self.settings.model, messages=list(messages),  # type: ignore[arg-type]
                    temperature=self.settings.temperature, max_tokens=self.settings.max_tokens,
                    response_format={"type": "json_object"}, **extra)
        usage = response.usage
        content = response.choices[0].message.content if response.choices else None
        return Completion(content=content or "", prompt_tokens=usage.prompt_tokens if usage else 0,
                          completion_tokens=usage.completion_tokens if usage else 0,
                          model=response.model or self.settings.model)

    def close(self) -> None:
        self._client.close()


class QueryBatch(BaseModel):
    """The only answer shape accepted: ``{"queries": ["...", ...]}``."""

    model_config = ConfigDict(extra="forbid", strict=True)
    queries: list[str] = Field(min_length=1)


class MalformedAnswer(ValueError):
    """The model's answer was not the JSON asked for."""


def parse_queries(content: str, n_questions: int) -> list[str]:
    """Strictly parses an answer: a JSON object with a non-empty list of strings, nothing else.

    At most ``n_questions`` are kept (a model that writes more is not wrong, only generous).
    """
    try:
        batch = QueryBatch.model_validate(json.loads(content))
    except (json.JSONDecodeError, ValidationError, TypeError) as exc:
        raise MalformedAnswer(f"answer is not {{\"queries\": [str, ...]}}: {str(exc).splitlines()[0][:200]}") from exc
    return [q.strip() for q in batch.queries[:n_questions]]
