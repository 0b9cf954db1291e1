import pytest
from django.utils import translation


@pytest.fixture(autouse=True)
def english():
    """Messages are asserted in English, the source language (zh-hans is the site's default)."""
    with translation.override("en"):
        yield
