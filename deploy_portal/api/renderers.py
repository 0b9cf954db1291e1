from rest_framework import renderers


class PlainTextRenderer(renderers.BaseRenderer):
    """Lets a client that asks for text/plain (a log reader) also read the errors as plain text."""

    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, dict) and set(data) <= {"detail", "status"}:
            data = data.get("detail", "")
        elif isinstance(data, dict):
            data = "\n".join(f"{field}: {self._words(messages)}" for field, messages in data.items())
        return str(data if data is not None else "").encode(self.charset)

    @staticmethod
    def _words(messages):
        return " ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
