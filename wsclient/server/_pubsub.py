"""The channel layer's I/O side: channel commands, backpressure, counters.

:class:`~._channels.ChannelRegistry` makes every decision synchronously; this
module adds the only awaits, and puts them *before* each synchronous step,
never inside one:

- a publish waits until every subscriber of the channel has room in its
  mailbox, then publishes and posts to all of them in one step;
- a channel command from a connection waits until the sender's own mailbox
  has room, then answers (and, for a subscribe, queues the replay) in one
  step.

Backpressure policy: a slow subscriber slows its channel's publishers down,
and nobody is dropped. The alternative, dropping the slow subscriber's
connection, would let a test's fast publisher break subscribers that are
only briefly behind; that is a different fault (use ``abort_all()``), not
something the client should have to tell apart from message loss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from . import _wire
from ._channels import AlreadySubscribedError, ChannelRegistry, Position

if TYPE_CHECKING:
    from ._channels import Published
    from ._mailbox import Mailbox
    from ._state import CounterBoard


class PubSub:
    """Channels shared by every connection of one server."""

    def __init__(self, counters: CounterBoard) -> None:
        self.registry: ChannelRegistry[Mailbox] = ChannelRegistry()
        self._counters = counters

    async def publish(
        self, channel: str, data_json: str, msg_id: str | None
    ) -> Published:
        """Publish on ``channel`` once every subscriber has room for it.

        It waits while a subscriber's mailbox is full, e.g. while that client
        reads slowly or the server is stalled. Canceling it is safe: a
        canceled publish was not published.
        """
        await anyio.lowlevel.checkpoint()
        await self._wait_for_subscribers(channel)
        # No await from here on: offset, history and fan-out are one step.
        published = self.registry.publish(
            channel, data_json, msg_id, anyio.current_time()
        )
        self._counters.published(published.duplicate)
        return published

    async def execute(self, command: _wire.ChannelCommand, mailbox: Mailbox) -> None:
        """Carry out a channel command sent on the connection that owns ``mailbox``."""
        await mailbox.wait_room()
        if isinstance(command, _wire.Subscribe):
            self._subscribe(command, mailbox)
        elif isinstance(command, _wire.Unsubscribe):
            self._unsubscribe(command, mailbox)
        else:
            published = await self.publish(
                command.channel, command.data_json, command.msg_id
            )
            if command.tag:
                # "duplicate" appears only when true, so that a plain ack is
                # exactly {"type", "channel", "id", "offset"}.
                duplicate = {"duplicate": True} if published.duplicate else {}
                mailbox.post(
                    _wire.channel_reply(
                        "ack",
                        command.channel,
                        command.tag,
                        offset=published.offset,
                        **duplicate,
                    )
                )

    def drop(self, mailbox: Mailbox) -> None:
        """Forget the subscriptions of a connection that closed."""
        if self.registry.drop(mailbox):
            self._counters.set_subscriptions_open(self.registry.subscriptions_open)

    # Private methods.

    def _subscribe(self, command: _wire.Subscribe, mailbox: Mailbox) -> None:
        since = None if command.since is None else Position(*command.since)
        try:
            resume = self.registry.subscribe(
                mailbox, command.channel, since, anyio.current_time()
            )
        except AlreadySubscribedError:
            self._counters.subscribe_refused()
            mailbox.post(
                _wire.channel_reply(
                    "subscribe_error",
                    command.channel,
                    command.tag,
                    error="already subscribed",
                )
            )
            return
        # The answer, then the replay, before any await: publications made
        # from now on are posted to this mailbox behind them.
        mailbox.post(_wire.subscribed(command, resume))
        mailbox.post_many(resume.replay)
        self._counters.subscribed(
            self.registry.subscriptions_open,
            self.registry.subscriptions(mailbox, command.channel),
        )

    def _unsubscribe(self, command: _wire.Unsubscribe, mailbox: Mailbox) -> None:
        if self.registry.unsubscribe(mailbox, command.channel):
            mailbox.post(
                _wire.channel_reply("unsubscribed", command.channel, command.tag)
            )
            self._counters.unsubscribed(self.registry.subscriptions_open)
        else:
            mailbox.post(
                _wire.channel_reply(
                    "unsubscribe_error",
                    command.channel,
                    command.tag,
                    error="not subscribed",
                )
            )

    async def _wait_for_subscribers(self, channel: str) -> None:
        # Wait for one full mailbox at a time, then look again: subscribers
        # may come and go, and others may fill up, while we wait.
        while True:
            full = next(
                (m for m in self.registry.subscribers(channel) if not m.has_room),
                None,
            )
            if full is None:
                return
            await full.wait_room()
