"""What a webhook is sent: the body and the signature of each kind (pure: no database, no network).

- Feishu (飞书) custom bot: an interactive card; signed as Feishu documents it — ``timestamp`` and
  ``sign = base64(HMAC-SHA256(key="<timestamp>\\n<secret>", message=""))`` in the body.
- DingTalk custom bot: a markdown message; signed as DingTalk documents it — ``timestamp`` (ms) and
  ``sign = base64(HMAC-SHA256(key=secret, message="<timestamp>\\n<secret>"))`` as URL parameters.
- Plain JSON to any URL: the event as JSON; with a secret, ``X-Deploy-Portal-Timestamp`` and
  ``X-Deploy-Portal-Signature: sha256=<hex HMAC-SHA256(key=secret, message="<timestamp>.<body>")>``.
"""

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from urllib.parse import quote_plus

SIGNATURE_HEADER = "X-Deploy-Portal-Signature"
TIMESTAMP_HEADER = "X-Deploy-Portal-Timestamp"


@dataclass(frozen=True)
class Notice:
    """A notification said in words: its event, title, text, link, and the task it is about."""

    event: str
    title: str
    text: str
    link: str
    task: dict  # {"id", "name", "project", "virtual_cluster", "status"} or {}
    open_label: str


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes
    headers: dict


def _hmac(key, message):
    return hmac.new(key.encode(), message, hashlib.sha256)


def feishu_sign(secret, timestamp):
    return base64.b64encode(_hmac(f"{timestamp}\n{secret}", b"").digest()).decode()


def dingtalk_sign(secret, timestamp_ms):
    return base64.b64encode(_hmac(secret, f"{timestamp_ms}\n{secret}".encode()).digest()).decode()


def json_signature(secret, timestamp, body):
    return "sha256=" + _hmac(secret, f"{timestamp}.".encode() + body).hexdigest()


_CARD_COLOURS = {"running": "green", "failed": "red", "killed": "red", "stopped_by_other": "orange"}


def feishu_body(notice):
    return {
        "msg_type": "interactive",
        "card": {
            "config": {"wide_screen_mode": True},
            "header": {
                "title": {"tag": "plain_text", "content": notice.title},
                "template": _CARD_COLOURS.get(notice.event, "blue"),
            },
            "elements": [
                {"tag": "div", "text": {"tag": "lark_md", "content": notice.text}},
                {"tag": "action", "actions": [{
                    "tag": "button", "type": "primary", "url": notice.link,
                    "text": {"tag": "plain_text", "content": notice.open_label},
                }]},
            ],
        },
    }


def dingtalk_body(notice):
    return {
        "msgtype": "markdown",
        "markdown": {"title": notice.title, "text": f"### {notice.title}\n\n{notice.text}\n\n[{notice.open_label}]({notice.link})"},
    }


def json_body(notice, sent_at):
    return {
        "event": notice.event, "title": notice.title, "text": notice.text, "link": notice.link,
        "task": notice.task, "sent_at": sent_at,
    }


def build_request(*, kind, url, secret, notice, now):
    """The HTTP POST for a webhook of ``kind`` at time ``now`` (a datetime)."""
    seconds = int(now.timestamp())
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if kind == "feishu":
        body = feishu_body(notice)
        if secret:
            body.update(timestamp=str(seconds), sign=feishu_sign(secret, seconds))
    elif kind == "dingtalk":
        body = dingtalk_body(notice)
        if secret:
            millis = int(now.timestamp() * 1000)
            url += ("&" if "?" in url else "?") + f"timestamp={millis}&sign={quote_plus(dingtalk_sign(secret, millis))}"
    else:
        body = json_body(notice, now.isoformat())
    data = json.dumps(body, ensure_ascii=False).encode()
    if kind == "json" and secret:
        headers[TIMESTAMP_HEADER] = str(seconds)
        headers[SIGNATURE_HEADER] = json_signature(secret, seconds, data)
    return Request(url=url, body=data, headers=headers)


def answer_error(kind, status_code, payload):
    """Why the webhook's answer is a failure, or None when it took the message.

    Feishu and DingTalk answer 200 with an error code in the body (a bad signature, a keyword missing).
    """
    if status_code >= 300:
        return f"HTTP {status_code}"
    if kind == "feishu" and isinstance(payload, dict) and payload.get("code", payload.get("StatusCode", 0)) not in (0, None):
        return f"Feishu: {payload.get('code')} {payload.get('msg', '')}".strip()
    if kind == "dingtalk" and isinstance(payload, dict) and payload.get("errcode", 0) != 0:
        return f"DingTalk: {payload.get('errcode')} {payload.get('errmsg', '')}".strip()
    return None
