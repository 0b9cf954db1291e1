from rest_framework import renderers


class PlainTextRenderer(renderers.BaseRenderer):
    """Lets a client that asks for text/plain (a log reader) also read the errors as plain text."""

    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, dict) and "detail" in data:
            data = data["detail"]
        elif isinstance(data, dict):
            data = "\n".join(f"{field}: {messages}" for field, messages in data.items())
        return str(data if data is not None else "").encode(self.charset)
