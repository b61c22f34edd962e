"""cspike: a fast Aerospike client with a C core (sync, asyncio, free-threaded)."""

from . import _core
from ._types import DataSet, GeoJSON, Key, Record
from .aio import Client, Session
from .pool import AsyncPool
from .client import ClientPolicy, SyncClient
from .exceptions import *  # noqa: F401,F403
from .exceptions import __all__ as _exc_all
from .ops import Operation
from .policy import (Behavior, CommitLevel, Mode, OpKind, OpShape, ReadModeAP,
                     ReadModeSC, Replica, Scope, Settings, SystemSettings)
from .session import SyncSession
from .streams import ErrorStrategy, RecordResult, RecordStream, SyncRecordStream

__version__ = "0.1.0"

__all__ = [
    "SyncClient", "SyncSession", "Client", "Session", "AsyncPool", "ClientPolicy", "SystemSettings", "Behavior",
    "Settings", "Scope", "OpKind", "OpShape", "Mode", "Replica", "ReadModeAP",
    "ReadModeSC", "CommitLevel", "DataSet", "Key", "Record", "GeoJSON",
    "Operation", "calc_digest", "ErrorStrategy", "RecordResult", "RecordStream",
    "SyncRecordStream",
] + list(_exc_all)

calc_digest = _core.calc_digest
