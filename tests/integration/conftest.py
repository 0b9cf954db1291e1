"""The live-stack fixtures (``tests.live``) for the end-to-end tests."""

from tests.live import live_stack, live_worker  # noqa: F401 - fixtures
