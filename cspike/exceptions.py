"""cspike exceptions.

One hierarchy, mapped from the core's single result-code table
(``src/core/spk_result.h``): every code names the class raised for it, and
this module registers code -> class with the C extension at import.

Three families are kept apart:

* server and cluster errors: :class:`AerospikeError` and its subclasses,
  carrying ``result_code`` (negative = client-side, positive = the server's
  result code) and ``in_doubt`` (a write may have been applied);
* misuse of the API: plain :class:`TypeError` / :class:`ValueError` whose
  message names the offending argument;
* protocol / internal errors: :class:`ProtocolError` (the server sent bytes
  that cannot be decoded) and :class:`ClientError`.
"""

from __future__ import annotations

from . import _core

__all__ = [
    "AerospikeError", "ClientError", "ProtocolError", "ClientClosedError",
    "ConnectionError", "TimeoutError", "InvalidNodeError", "BackoffError",
    "MaxErrorRate", "ServerError", "RecordNotFoundError", "RecordNotFound",
    "RecordExistsError", "GenerationError", "RecordTooBigError", "KeyMismatchError",
    "BinError", "BinNameError", "BinTypeError", "BinExistsError", "BinNotFoundError",
    "FilteredOutError", "InvalidRequestError", "InvalidNamespaceError",
    "PartitionUnavailableError", "ClusterChangeError", "CapacityError", "KeyBusyError",
    "UnsupportedFeatureError", "EnterpriseOnlyError", "ForbiddenError",
    "OpNotApplicableError", "ElementError", "ElementNotFoundError",
    "ElementExistsError", "SecurityError", "AuthenticationError",
    "AuthorizationError", "QuotaError", "UdfError", "TransactionError", "CommitError",
    "BatchError", "QueryError", "QueryTerminatedError", "SecondaryIndexError",
    "IndexAlreadyExistsError", "IndexNotFoundError", "SerializationError",
    "exception_for_code",
]


class AerospikeError(Exception):
    """Base of every error reported by the cluster or the client core.

    ``result_code``: the Aerospike result code (negative for client-side
    conditions such as a refused connection). ``in_doubt``: True when a write
    may have been applied although the call failed (e.g. a timeout after the
    request was sent); read the record back before retrying blindly.
    """

    def __init__(self, message: str = "", *, result_code: int | None = None,
                 in_doubt: bool = False) -> None:
        super().__init__(message)
        self.result_code = result_code
        self.in_doubt = bool(in_doubt)

    @property
    def code(self) -> int | None:
        """Alias of ``result_code``."""
        return self.result_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self):
        return (_rebuild, (type(self), self.message, self.result_code, self.in_doubt))

    def __str__(self) -> str:
        msg = self.message
        if self.result_code is not None:
            msg = f"{msg} [{_NAMES.get(self.result_code, self.result_code)}]"
        if self.in_doubt:
            msg += " (in doubt: the write may have been applied)"
        return msg


def _rebuild(cls, message, result_code, in_doubt):
    return cls(message, result_code=result_code, in_doubt=in_doubt)


class ClientError(AerospikeError):
    """A client-side failure that is not a misuse of the API."""


class ProtocolError(ClientError):
    """The server sent bytes that do not form a valid Aerospike message."""


class ClientClosedError(ClientError):
    """The client was closed (possibly while this command was running)."""


class ConnectionError(AerospikeError):  # noqa: A001 - PSDK name
    """No connection to the cluster or node could be made or kept."""


class TimeoutError(AerospikeError):  # noqa: A001 - PSDK name
    """A client-side (socket/total) or server-side timeout."""


class InvalidNodeError(AerospikeError):
    """No node is available for the key's partition."""


class BackoffError(AerospikeError):
    """The client backed off from a node."""


class MaxErrorRate(BackoffError):
    """The node's circuit breaker is open (too many errors in the window)."""


class ServerError(AerospikeError):
    """An error result code returned by the server."""


class RecordNotFoundError(ServerError):
    """The record does not exist."""


RecordNotFound = RecordNotFoundError


class RecordExistsError(ServerError):
    """The record already exists (create-only write)."""


class GenerationError(ServerError):
    """The record's generation did not match the expected one."""


class RecordTooBigError(ServerError):
    """The record exceeds the namespace's max-record-size."""


class KeyMismatchError(ServerError):
    """The stored user key differs from the one sent with the same digest."""


class BinError(ServerError):
    """A bin-level error."""


class BinNameError(BinError):
    """Bin name too long, or too many bins."""


class BinTypeError(BinError):
    """The bin's type does not support the operation."""


class BinExistsError(BinError):
    """The bin already exists."""


class BinNotFoundError(BinError):
    """The bin does not exist."""


class FilteredOutError(ServerError):
    """The filter expression evaluated to false for the record."""


class InvalidRequestError(ServerError):
    """The server rejected the request as invalid (result code 4)."""


class InvalidNamespaceError(ServerError):
    """The namespace does not exist."""


class PartitionUnavailableError(ServerError):
    """The partition is not available on the node asked (retried by policy)."""


class ClusterChangeError(ServerError):
    """The cluster changed during a scan or query."""


class CapacityError(ServerError):
    """The server is out of space or its device is overloaded."""


class KeyBusyError(ServerError):
    """Too many concurrent operations on the same record (hot key)."""


class UnsupportedFeatureError(ServerError):
    """The server does not support the feature."""


class EnterpriseOnlyError(UnsupportedFeatureError):
    """The feature needs Aerospike Enterprise Edition."""


class ForbiddenError(ServerError):
    """The operation is forbidden in the current state."""


class OpNotApplicableError(ServerError):
    """The operation cannot be applied to the record or bin."""


class ElementError(ServerError):
    """A list/map element error."""


class ElementNotFoundError(ElementError):
    """The list/map element does not exist."""


class ElementExistsError(ElementError):
    """The list/map element already exists."""


class SecurityError(AerospikeError):
    """A security/administration error."""


class AuthenticationError(SecurityError):
    """Authentication failed."""


class AuthorizationError(SecurityError):
    """The user lacks the privilege."""


class QuotaError(AerospikeError):
    """A quota error."""


class UdfError(ServerError):
    """A UDF failed on the server."""


class TransactionError(AerospikeError):
    """A multi-record transaction error."""


class CommitError(TransactionError):
    """A transaction commit failed."""


class BatchError(AerospikeError):
    """A batch as a whole failed."""


class QueryError(AerospikeError):
    """A scan/query failed."""


class QueryTerminatedError(QueryError):
    """A scan/query was aborted."""


class SecondaryIndexError(ServerError):
    """A secondary-index error."""


class IndexAlreadyExistsError(SecondaryIndexError):
    """An index with the same name and a different definition exists."""


class IndexNotFoundError(SecondaryIndexError):
    """The secondary index does not exist."""


class SerializationError(AerospikeError):
    """A value could not be serialized or deserialized."""


def _build_map() -> tuple[dict[int, type[AerospikeError]], dict[int, str]]:
    by_code: dict[int, type[AerospikeError]] = {}
    names: dict[int, str] = {}
    for code, name, pyclass, _retryable, _message in _core.result_table():
        cls = globals().get(pyclass)
        if not (isinstance(cls, type) and issubclass(cls, AerospikeError)):
            raise ImportError(f"result code {code} ({name}) names unknown class {pyclass}")
        by_code[code] = cls
        names[code] = name
    return by_code, names


_BY_CODE, _NAMES = _build_map()
_core._register_exceptions(_BY_CODE, AerospikeError)


def exception_for_code(result_code: int) -> type[AerospikeError]:
    """The exception class raised for a result code."""
    return _BY_CODE.get(result_code, AerospikeError)
