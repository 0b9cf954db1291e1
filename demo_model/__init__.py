"""A tiny, deterministic OpenAI-compatible model server for trying and testing the portal.

``python -m demo_model --port 8000`` serves ``/health``, ``/v1/models``, ``/v1/completions`` and
``/v1/chat/completions`` (streaming and not). The text is derived from a hash of the prompt, every
answer has exactly ``max_tokens`` tokens, and its timing is set by ``--first-token-delay`` and
``--token-delay``, so a load test against it has known, predictable figures. Standard library only.
"""
