"""Tokens counted from what an OpenAI-compatible server answers. Pure.

A JSON answer carries ``usage``; a stream carries it in its last ``data:`` event when the client asked for it
(``stream_options: {"include_usage": true}``). The gateway keeps the answer's JSON (bounded) or the stream's
tail and hands it here once the answer is over.
"""

import json

STREAM_TAIL_BYTES = 16 * 1024
JSON_BODY_BYTES = 1024 * 1024


def _tokens(document):
    usage = document.get("usage") if isinstance(document, dict) else None
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (prompt, completion)):
        return None
    return prompt, completion


def tokens_of_json(body: bytes):
    """``(prompt, completion)`` from a JSON answer, or None."""
    try:
        return _tokens(json.loads(body))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def tokens_of_stream(tail: bytes):
    """``(prompt, completion)`` from the last ``data:`` event of an SSE stream's tail that has a usage, or None."""
    for line in reversed(tail.split(b"\n")):
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if payload == b"[DONE]":
            continue
        found = tokens_of_json(payload)
        if found is not None:
            return found
    return None
