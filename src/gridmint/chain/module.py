"""What a chain module declares, so that the app can compose modules the way it composes ``bank``.

A module is one file that ends with a ``MODULE = ModuleSpec(...)``: its message handlers, block hooks,
queries, genesis functions and invariants. The app knows nothing module-specific beyond this list.

A module that keeps state per UID or per subnet (weights, commitments) also declares what to delete when
``subnets`` frees a UID (prunes it for a new registration) or dissolves a subnet: ``uid_freed`` and
``subnet_dissolved``. Each module builds and deletes its own keys; ``subnets`` calls every module's hook, in the
app's module order (``Context.notify_uid_freed``, ``Context.notify_subnet_dissolved``), so that what a freed UID
leaves behind is deleted in the same block, in the same order on every node.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, dataclass_transform

from gridmint.chain.state import Reader, State
from gridmint.chain.tx import MessageTypes, Msg


@dataclass(frozen=True)
class Event:
    """A CometBFT-shaped event: a type and ordered string attributes."""

    type: str
    attributes: tuple[tuple[str, str], ...]


class EventData:
    """Base of the events a module declares (``ModuleSpec.events``): frozen dataclasses declared with
    ``@event("type")`` and typed fields, built where they happen, so that a type checker holds every emit to its
    declaration. An event's attributes are its fields in declared order, as text (what CometBFT indexes and clients
    read)."""

    TYPE: ClassVar[str]

    def attributes(self) -> tuple[tuple[str, str], ...]:
        return tuple([(name, str(getattr(self, name))) for name in self.__dataclass_fields__])  # type: ignore[attr-defined]


E = TypeVar("E", bound=EventData)


@dataclass_transform(frozen_default=True)
def event(event_type: str) -> Callable[[type[E]], type[E]]:
    """Class decorator for an event: makes it a frozen dataclass whose events are of type ``event_type``."""

    def declare(cls: type[E]) -> type[E]:
        declared = dataclass(frozen=True)(cls)
        declared.TYPE = event_type
        return declared

    return declare


@dataclass(frozen=True)
class BlockInfo:
    height: int
    time_ns: int  # from the block header, never the wall clock
    proposer: bytes  # 20-byte address of the authority that proposed the block
    chain_id: str


@dataclass(frozen=True)
class ValidatorUpdate:
    """What CometBFT receives: an ed25519 public key and its power (0 removes the validator)."""

    pub_key: bytes
    power: int


@dataclass
class Context:
    """What a message handler or block hook sees: staged state, the block, the signer, and an event sink."""

    state: State
    block: BlockInfo
    signer: bytes = b""  # 20-byte address of the transaction's signer; empty in block hooks
    events: list[Event] = field(default_factory=list)
    validator_updates: list[ValidatorUpdate] = field(default_factory=list)
    record_events: bool = True  # False in check_tx's scratch runs, whose events no one reads
    # The chain's modules in the app's order: whom subnets tells of a freed UID or a dissolved subnet. The app
    # always passes them; a Context built without them (a unit test of one handler) tells no one.
    modules: tuple[ModuleSpec, ...] = ()

    def emit(self, event: EventData) -> None:
        if self.record_events:
            self.events.append(Event(event.TYPE, event.attributes()))

    def notify_uid_freed(self, netuid: int, uid: int, hotkey: bytes) -> None:
        """Every module deletes what it kept for ``hotkey`` as UID ``uid`` of ``netuid``, which was just freed."""
        for module in self.modules:
            if module.uid_freed is not None:
                module.uid_freed(self.state, netuid, uid, hotkey)

    def notify_subnet_dissolved(self, netuid: int) -> None:
        """Every module deletes what it kept for subnet ``netuid``, which is being dissolved."""
        for module in self.modules:
            if module.subnet_dissolved is not None:
                module.subnet_dissolved(self.state, netuid)


# A handler returns what its message created for the sender to know (a new subnet's netuid, a UID, an order, a
# lease, a line, a proposal) as a small map of integers, or None; a transaction's result data carries them (App).
Handler = Callable[[Context, Any], dict[str, int] | None]
BlockHook = Callable[[Context], None]
QueryHandler = Callable[[Reader, list[str], bytes], Any]  # (committed view, path parts, data) -> answer
Invariant = Callable[[Reader], str | None]  # returns a description of the breach, or None
UidFreedHook = Callable[[State, int, int, bytes], None]  # (state, netuid, uid, the hotkey that held the UID)
SubnetDissolvedHook = Callable[[State, int], None]  # (state, netuid)


@dataclass(frozen=True)
class ModuleSpec:
    name: str
    handlers: Mapping[type[Msg], Handler] = field(default_factory=dict)
    events: tuple[type[EventData], ...] = ()  # every event the module emits
    begin_block: BlockHook | None = None
    end_block: BlockHook | None = None
    queries: Mapping[str, QueryHandler] = field(default_factory=dict)
    validate_genesis: Callable[[Any], Any] | None = None  # raw JSON section -> checked genesis state
    init_genesis: Callable[[State, Any], None] | None = None
    export_genesis: Callable[[Reader], Any] | None = None
    invariants: Mapping[str, Invariant] = field(default_factory=dict)
    uid_freed: UidFreedHook | None = None  # delete what the module keeps for a UID that subnets pruned
    subnet_dissolved: SubnetDissolvedHook | None = None  # delete what it keeps for a dissolved subnet


def message_registry(modules: tuple[ModuleSpec, ...]) -> MessageTypes:
    """Every message type the ``modules`` handle, by wire name: what the app decodes. Two modules handling one
    name is a programming error."""
    registry: dict[str, type[Msg]] = {}
    for module in modules:
        for msg in module.handlers:
            if msg.TYPE in registry:
                raise TypeError(f"message type {msg.TYPE} is handled by two modules")
            registry[msg.TYPE] = msg
    return registry
