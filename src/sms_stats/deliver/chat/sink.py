"""The chat sink base: what the four bots have in common (batches, parts in order, pacing).

A bot's URL carries its key, token or secret; each sink registers them with `redact`, and an
error it raises is scrubbed of them before it leaves.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from sms_stats.core import redact
from sms_stats.core.log import logger
from sms_stats.core.notices import CHAT_TOPICS, Notice
from sms_stats.core.pacing import Limit, pace_for
from sms_stats.core.records import AnyRecord
from sms_stats.deliver.chat.messages import Summary, by_window, summarize
from sms_stats.deliver.chat.packing import encode
from sms_stats.deliver.chat.repeats import posted
from sms_stats.deliver.transport import Transport, Verdict
from sms_stats.store.base import SinkError


class ChatSink:
    """What the four bots have in common: batches per window, parts sent in order, paced.

    A subclass renders a summary into payloads (`messages`) and judges the platform's answer
    (`check`); one that signs each attempt overrides `send`. `LIMITS` is the platform's
    documented rate per robot; every
    sink object for the same robot in this process shares one pace, so a timer's lookback or a
    backfill waits for a slot instead of being refused (or, on DingTalk, muted for ten minutes).
    Chat platforms keep no message ids: a message this process already posted (`posted`) is
    not posted again when SCF retries the run. The parts of one window are sent in order and a
    failure names how many of them had already arrived. A notice (an alert, the digest) is
    worded into the same summary by `chat.notices` and posted the same way.
    """

    LIMITS: ClassVar[tuple[Limit, ...]]
    chat: ClassVar[bool] = True  # people read it: the pipeline keeps corrections from it
    topics: frozenset[str] = CHAT_TOPICS  # what it is told by default; `?notify=` sets its own

    def __init__(self, url: str, name: str, transport: Transport, secrets: Sequence[str]) -> None:
        self.url = url
        self.name = name
        self.transport = transport
        self._secrets = tuple(s for s in secrets if s)
        redact.register(*self._secrets)
        self.pace = pace_for(name, self.LIMITS)

    def batches(self, records: Sequence[AnyRecord]) -> list[Sequence[AnyRecord]]:
        return by_window(records)

    def messages(self, summary: Summary) -> list[dict[str, Any]]:
        raise NotImplementedError

    def check(self, status: int, body: bytes) -> Verdict:
        raise NotImplementedError

    def send(self, payload: dict[str, Any], deadline: float | None) -> None:
        self.post(encode(payload), deadline)

    def post(
        self,
        body: bytes,
        deadline: float | None,
        prepare: Callable[[], tuple[str, bytes, Mapping[str, str]]] | None = None,
    ) -> None:
        """One message, paced and retried; `prepare` rebuilds it per attempt (signing)."""
        self.transport.post(
            self.url,
            body,
            {},
            name=self.name,
            check=self.check,
            deadline=deadline,
            prepare=prepare,
            pace=self.pace,
        )

    def deliver(self, batch: Sequence[AnyRecord], deadline: float | None = None) -> None:
        if not batch:
            return
        self._post_all(lambda: self.messages(summarize(batch)), deadline, str(batch[0].window))

    def notify(self, notice: Notice, deadline: float | None = None) -> None:
        """An alert or the digest, worded like a window's figures and posted the same way."""
        from sms_stats.deliver.chat.notices import summary  # noqa: PLC0415 - only runs that have a notice need it

        def render() -> list[dict[str, Any]]:
            try:
                worded = summary(notice)
            except ValueError as exc:
                raise SinkError(f"notice {notice.id} cannot be worded: {exc}") from None
            return self.messages(worded)

        self._post_all(render, deadline, notice.id)

    def _post_all(
        self, render: Callable[[], list[dict[str, Any]]], deadline: float | None, what: str
    ) -> None:
        """Post each rendered part in order, skipping what this process already posted; a
        failure names how many parts arrived, and carries none of this robot's secrets."""
        try:
            payloads = render()
            repeats = 0
            for index, payload in enumerate(payloads, 1):
                key = posted.key(self.name, payload)
                if posted.seen(key):  # a retried run: this very message is in the chat already
                    repeats += 1
                    continue
                try:
                    self.send(payload, deadline)
                except SinkError as exc:
                    if len(payloads) == 1:
                        raise
                    raise SinkError(
                        f"{exc} [part {index} of {len(payloads)}; {index - 1} delivered]"
                    ) from None
                posted.add(key)
            if repeats:
                logger.info(
                    "delivery.repeat_skipped", sink=self.name, window=what, messages=repeats
                )
        except SinkError as exc:
            text = redact.scrub(str(exc), self._secrets)
            if not text.startswith(self.name):
                text = f"{self.name}: {text}"
            raise SinkError(text) from None


class SignedChatSink(ChatSink):
    """A bot whose URL may carry a signing secret (DingTalk, Feishu).

    `secret` is this project's URL convention, not the platform's: `url` comes without it, so
    it is never sent. A subclass signs each attempt afresh with the `clock`'s time, because
    both platforms refuse a timestamp more than an hour off and a retry may come later.
    """

    def __init__(
        self,
        url: str,
        name: str,
        transport: Transport,
        token: str,
        secret: str | None,
        clock: Callable[[], float] = _time.time,
    ) -> None:
        super().__init__(url, name, transport, (token, secret or ""))  # url without the secret
        self.secret = secret
        self.clock = clock
