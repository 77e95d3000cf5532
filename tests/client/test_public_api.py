"""The public surface: ``tidings.__all__`` is complete and importable, and the sync twin
exposes exactly the async client's API."""

from __future__ import annotations

import inspect
import types

import tidings
from tidings.client import AsyncClient, Client, Subscription, SyncMessage, SyncSubscription
from tidings.model import Message


def _public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_all_names_are_importable():
    for name in tidings.__all__:
        assert hasattr(tidings, name), name


def test_all_is_complete():
    """Every public, non-module attribute of the package is listed in __all__."""
    exported = set(tidings.__all__)
    for name, value in vars(tidings).items():
        if name.startswith("_") or name == "annotations":
            continue
        if isinstance(value, types.ModuleType) and name not in ("errors", "ids"):
            continue  # subpackages (client, service, model, ...) are reached by their path
        assert name in exported, f"tidings.{name} is public but missing from __all__"


def test_issue_names_exist():
    for name in (
        "connect", "connect_sync", "AsyncClient", "Client", "Subscription", "Outgoing",
        "Message", "Receipt", "TopicSpec", "GroupSpec", "TopicInfo", "GroupInfo", "errors",
        "Service", "Context", "Reject", "Retry", "ids", "__version__",
    ):  # fmt: skip
        assert name in tidings.__all__, name
    assert isinstance(tidings.__version__, str)


def test_sync_client_has_the_async_clients_methods():
    assert _public(Client) == _public(AsyncClient)


def test_sync_client_signatures_match():
    for name in _public(AsyncClient):
        async_attr = getattr(AsyncClient, name)
        if not callable(async_attr) or isinstance(async_attr, property):
            continue
        a = inspect.signature(async_attr).parameters
        s = inspect.signature(getattr(Client, name)).parameters
        assert [(p.name, p.kind, p.default) for p in a.values()] == [
            (p.name, p.kind, p.default) for p in s.values()
        ], name


def test_sync_subscription_and_message_twins():
    assert _public(SyncSubscription) == _public(Subscription)
    for verb in ("ack", "nack", "extend", "reject"):
        assert inspect.signature(getattr(SyncMessage, verb)).parameters.keys() == (
            inspect.signature(getattr(Message, verb)).parameters.keys()
        )
