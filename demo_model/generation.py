"""What the demo model says: pure functions from a request to its tokens and its OpenAI-style bodies."""

import hashlib
import time

VOCABULARY = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliett kilo lima mike november oscar papa "
    "quebec romeo sierra tango uniform victor whiskey xray yankee zulu amber basalt cedar dune ember "
    "fjord glacier harbor island jungle kelp lagoon meadow nebula orchard prairie quartz river savanna "
    "tundra umber valley willow xenon yarrow zephyr atlas beacon comet drift ether flare grove horizon"
).split()

DEFAULT_MAX_TOKENS = 16


class RequestError(Exception):
    """A request the server refuses; ``status`` is the HTTP status, ``message`` the OpenAI error text."""

    def __init__(self, status, message, *, param=None, error_type="invalid_request_error"):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.error_type = error_type


def error_body(message, *, error_type, code, param=None):
    """The OpenAI error envelope."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def tokens_for(prompt: str, count: int) -> list[str]:
    """``count`` tokens (" word"), the same every time for the same prompt."""
    tokens = []
    for index in range(count):
        digest = hashlib.sha256(f"{prompt}\x00{index}".encode()).digest()
        tokens.append(" " + VOCABULARY[int.from_bytes(digest[:4], "big") % len(VOCABULARY)])
    return tokens


def count_prompt_tokens(prompt: str) -> int:
    """A whitespace word count: the demo model's idea of a prompt token."""
    return max(1, len(prompt.split()))


def message_text(message) -> str:
    """A chat message's text: ``content`` as a string, or the text of its parts (``[{"type": "text", ...}]``).

    Parts of other types (an image, audio) carry no text the demo model reads; they are skipped.
    """
    content = message.get("content", "") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if content is None and isinstance(message, dict):
        return ""
    parts_ok = isinstance(content, list) and all(
        isinstance(part, dict) and isinstance(part.get("type"), str) for part in content
    )
    if parts_ok:
        texts = [part.get("text") for part in content if part["type"] == "text"]
        if all(isinstance(text, str) for text in texts):
            return " ".join(texts)
    raise RequestError(
        400, "Each message must be an object whose `content` is a string or a list of content parts.",
        param="messages",
    )


def parse_request(body: dict, *, chat: bool, model: str):
    """Validate a completion request; answer (prompt text, max_tokens, stream, include_usage).

    Raises RequestError (400 for bad fields, 404 for a model this server does not serve).
    """
    if not isinstance(body, dict):
        raise RequestError(400, "The request body must be a JSON object.")
    requested = body.get("model", model)
    if requested != model:
        raise RequestError(404, f"The model `{requested}` does not exist.", param="model", error_type="NotFoundError")
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError(400, "`messages` must be a non-empty list.", param="messages")
        prompt = "\n".join(f"{message.get('role', 'user')}: {message_text(message)}" for message in messages)
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise RequestError(400, "`prompt` must be a string.", param="prompt")
    max_tokens = body.get("max_completion_tokens") if chat and "max_completion_tokens" in body else None
    if max_tokens is None:
        max_tokens = body.get("max_tokens", DEFAULT_MAX_TOKENS)
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise RequestError(400, "`max_tokens` must be a positive integer.", param="max_tokens")
    stream = bool(body.get("stream", False))
    stream_options = body.get("stream_options") or {}
    if stream_options and not stream:
        raise RequestError(400, "`stream_options` is only allowed with `stream: true`.", param="stream_options")
    include_usage = bool(isinstance(stream_options, dict) and stream_options.get("include_usage"))
    return prompt, max_tokens, stream, include_usage


def usage(prompt: str, completion_tokens: int) -> dict:
    prompt_tokens = count_prompt_tokens(prompt)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def stream_chunk(*, chat: bool, request_id: str, model: str, token: str, first: bool, last: bool) -> dict:
    """One SSE chunk carrying one token; the chat role rides on the first one."""
    finish_reason = "length" if last else None
    if chat:
        delta = {"role": "assistant", "content": token} if first else {"content": token}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        kind = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": token, "logprobs": None, "finish_reason": finish_reason}
        kind = "text_completion"
    return {"id": request_id, "object": kind, "created": int(time.time()), "model": model, "choices": [choice]}


def usage_chunk(*, chat: bool, request_id: str, model: str, prompt: str, completion_tokens: int) -> dict:
    """The final chunk sent when ``stream_options.include_usage`` is set: no choices, the usage."""
    kind = "chat.completion.chunk" if chat else "text_completion"
    return {
        "id": request_id,
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": usage(prompt, completion_tokens),
    }


def full_response(*, chat: bool, request_id: str, model: str, prompt: str, tokens: list[str]) -> dict:
    """The non-streaming answer."""
    text = "".join(tokens)
    if chat:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "logprobs": None,
            "finish_reason": "length",
        }
        kind = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}
        kind = "text_completion"
    return {
        "id": request_id,
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage(prompt, len(tokens)),
    }
