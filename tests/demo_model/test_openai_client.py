"""The demo model spoken to by the official ``openai`` client, as real load-test tools and apps do."""

import openai
import pytest

from .process import DemoModelProcess

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def client():
    with DemoModelProcess("--model", "tiny-llm") as process:
        with openai.OpenAI(base_url=f"{process.url}/v1", api_key="unused", max_retries=0) as client:
            yield client


def test_the_client_lists_the_model(client):
    assert [model.id for model in client.models.list()] == ["tiny-llm"]


def test_content_parts_are_read_like_a_string(client):
    parts = client.chat.completions.create(
        model="tiny-llm", max_completion_tokens=5,
        messages=[{"role": "user", "content": [{"type": "text", "text": "tell"}, {"type": "text", "text": "me"}]}],
    )
    plain = client.chat.completions.create(
        model="tiny-llm", max_completion_tokens=5, messages=[{"role": "user", "content": "tell me"}],
    )
    assert parts.choices[0].message.content == plain.choices[0].message.content
    assert parts.usage.completion_tokens == 5


def test_max_completion_tokens_and_the_final_usage_chunk(client):
    stream = client.chat.completions.create(
        model="tiny-llm", messages=[{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
        max_completion_tokens=3, stream=True, stream_options={"include_usage": True},
    )
    chunks = list(stream)
    tokens = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices]
    assert len(tokens) == 3
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 3


def test_a_bad_content_part_is_an_openai_error(client):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="tiny-llm", messages=[{"role": "user", "content": [{"text": 1}]}])
    assert refused.value.body["param"] == "messages"
