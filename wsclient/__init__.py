"""wsclient: a resilient WebSocket client for asyncio and trio.

One :class:`Client` owns one logical connection; under it, real connections
come and go, with exponential backoff and jitter, heartbeats that find
half-open links, and callbacks for every reconnection.
"""

from __future__ import annotations

from ._adapters.base import (
    Acked as Acked,
    Authenticated as Authenticated,
    AuthFailed as AuthFailed,
    ProtocolAdapter as ProtocolAdapter,
    Publication as Publication,
    Subscribed as Subscribed,
    SubscribeFailed as SubscribeFailed,
    Unsubscribed as Unsubscribed,
)
from ._adapters.exchange import ExchangeProtocol as ExchangeProtocol
from ._adapters.reference import ReferenceProtocol as ReferenceProtocol
from ._client import Client as Client
from ._core.backoff import ExponentialJitter as ExponentialJitter
from ._core.buffer import Outcome as Outcome
from ._core.classify import (
    CLOSE_CODES as CLOSE_CODES,
    HANDSHAKE_STATUSES as HANDSHAKE_STATUSES,
    KIND_VERDICTS as KIND_VERDICTS,
    Verdict as Verdict,
)
from ._core.events import (
    ConnectEvent as ConnectEvent,
    DisconnectEvent as DisconnectEvent,
    GiveUpEvent as GiveUpEvent,
    ReconnectEvent as ReconnectEvent,
)
from ._core.failure import Failure as Failure, FailureKind as FailureKind
from ._core.state import ClientState as ClientState
from ._core.stats import Stats as Stats
from ._core.subscriptions import (
    Gap as Gap,
    GapReason as GapReason,
    Position as Position,
)
from ._exceptions import (
    AuthenticationError as AuthenticationError,
    BufferFull as BufferFull,
    ClientClosed as ClientClosed,
    ClientStopped as ClientStopped,
    ConnectionRejected as ConnectionRejected,
    GaveUp as GaveUp,
    MessagesLost as MessagesLost,
    PublishWindowFull as PublishWindowFull,
    SubscriptionError as SubscriptionError,
    WSClientError as WSClientError,
)
from ._outbox import PublishReceipt as PublishReceipt
from ._sending import SendReceipt as SendReceipt, UndeliveredEvent as UndeliveredEvent
from ._subscription import (
    Marker as Marker,
    Message as Message,
    Overflow as Overflow,
    Subscription as Subscription,
    SubscriptionState as SubscriptionState,
)

__all__ = [
    "CLOSE_CODES",
    "HANDSHAKE_STATUSES",
    "KIND_VERDICTS",
    "Acked",
    "AuthFailed",
    "Authenticated",
    "AuthenticationError",
    "BufferFull",
    "Client",
    "ClientClosed",
    "ClientState",
    "ClientStopped",
    "ConnectEvent",
    "ConnectionRejected",
    "DisconnectEvent",
    "ExchangeProtocol",
    "ExponentialJitter",
    "Failure",
    "FailureKind",
    "Gap",
    "GapReason",
    "GaveUp",
    "GiveUpEvent",
    "Marker",
    "Message",
    "MessagesLost",
    "Outcome",
    "Overflow",
    "Position",
    "ProtocolAdapter",
    "Publication",
    "PublishReceipt",
    "PublishWindowFull",
    "ReconnectEvent",
    "ReferenceProtocol",
    "SendReceipt",
    "Stats",
    "SubscribeFailed",
    "Subscribed",
    "Subscription",
    "SubscriptionError",
    "SubscriptionState",
    "UndeliveredEvent",
    "Unsubscribed",
    "Verdict",
    "WSClientError",
]

__version__ = "0.1.0.dev0"
