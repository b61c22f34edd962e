/*
 * spk_result.h - the one table of result codes.
 *
 * Every status the core can report is listed here once: client-side codes
 * are negative (never on the wire), server result codes are the u8 values of
 * as_msg.result_code.  The table drives spk_result_name(), spk_result_message(),
 * the retry decision in the command state machine, and (through the CPython
 * extension) the Python exception hierarchy: the fourth column names the
 * Python class raised for that code.
 *
 * XX(NAME, code, retryable, PyClass, "message")
 *   retryable: 1 when a command may be retried on this code (protocol-core 3.9).
 */
#ifndef SPK_RESULT_H
#define SPK_RESULT_H

#define SPK_RESULT_MAP(XX)                                                    \
  /* client-side codes */                                                     \
  XX(ERR_PROTOCOL, -21, 0, ProtocolError, "malformed response from server")  \
  XX(ERR_CLOSED, -20, 0, ClientClosedError, "client is closed")               \
  XX(ERR_TXN_FAILED, -17, 0, TransactionError, "transaction failed")          \
  XX(ERR_BATCH_FAILED, -16, 0, BatchError, "one or more batch rows failed")   \
  XX(NO_RESPONSE, -15, 0, AerospikeError, "no response received")             \
  XX(MAX_ERROR_RATE, -14, 1, MaxErrorRate,                                    \
     "node error rate exceeded (circuit breaker open)")                       \
  XX(ERR_CONNECTION, -10, 1, ConnectionError, "connection failed")            \
  XX(ERR_TLS, -9, 0, ConnectionError, "TLS error")                            \
  XX(ERR_INVALID_NODE, -8, 0, InvalidNodeError, "no node for partition")      \
  XX(NO_MORE_CONNECTIONS, -7, 1, ConnectionError,                             \
     "connection pool exhausted")                                             \
  XX(ERR_ASYNC_LOOP, -6, 0, ClientError, "event loop error")                  \
  XX(ERR_CLIENT_ABORT, -5, 0, ClientError, "command aborted")                 \
  XX(ERR_INVALID_HOST, -4, 0, ConnectionError, "invalid host")                \
  XX(ERR_PARAM, -2, 0, ClientError, "invalid parameter")                      \
  XX(ERR_CLIENT, -1, 0, ClientError, "client error")                          \
  /* server result codes */                                                   \
  XX(OK, 0, 0, AerospikeError, "ok")                                          \
  XX(ERR_SERVER, 1, 0, ServerError, "server error")                           \
  XX(ERR_RECORD_NOT_FOUND, 2, 0, RecordNotFoundError, "record not found")     \
  XX(ERR_RECORD_GENERATION, 3, 0, GenerationError, "generation mismatch")     \
  XX(ERR_REQUEST_INVALID, 4, 0, InvalidRequestError, "invalid request")       \
  XX(ERR_RECORD_EXISTS, 5, 0, RecordExistsError, "record already exists")     \
  XX(ERR_BIN_EXISTS, 6, 0, BinExistsError, "bin already exists")              \
  XX(ERR_CLUSTER_CHANGE, 7, 0, ClusterChangeError, "cluster changed")         \
  XX(ERR_SERVER_FULL, 8, 0, CapacityError, "server out of space")             \
  XX(ERR_TIMEOUT, 9, 1, TimeoutError, "timeout")                              \
  XX(ERR_ALWAYS_FORBIDDEN, 10, 0, ServerError, "operation always forbidden")  \
  XX(ERR_CLUSTER, 11, 1, PartitionUnavailableError,                           \
     "partition unavailable")                                                 \
  XX(ERR_BIN_INCOMPATIBLE_TYPE, 12, 0, BinTypeError,                          \
     "bin type incompatible with operation")                                  \
  XX(ERR_RECORD_TOO_BIG, 13, 0, RecordTooBigError, "record too big")          \
  XX(ERR_RECORD_BUSY, 14, 0, KeyBusyError, "record busy (hot key)")           \
  XX(ERR_SCAN_ABORTED, 15, 0, QueryTerminatedError, "scan aborted")           \
  XX(ERR_UNSUPPORTED_FEATURE, 16, 0, UnsupportedFeatureError,                 \
     "unsupported feature")                                                   \
  XX(ERR_BIN_NOT_FOUND, 17, 0, BinNotFoundError, "bin not found")             \
  XX(ERR_DEVICE_OVERLOAD, 18, 1, CapacityError, "device overload")            \
  XX(ERR_RECORD_KEY_MISMATCH, 19, 0, KeyMismatchError, "record key mismatch") \
  XX(ERR_NAMESPACE_NOT_FOUND, 20, 0, InvalidNamespaceError,                   \
     "namespace not found")                                                   \
  XX(ERR_BIN_NAME, 21, 0, BinNameError, "bin name too long or too many bins") \
  XX(ERR_FAIL_FORBIDDEN, 22, 0, ForbiddenError, "operation forbidden")        \
  XX(ERR_FAIL_ELEMENT_NOT_FOUND, 23, 0, ElementNotFoundError,                 \
     "element not found")                                                     \
  XX(ERR_FAIL_ELEMENT_EXISTS, 24, 0, ElementExistsError, "element exists")    \
  XX(ERR_ENTERPRISE_ONLY, 25, 0, EnterpriseOnlyError,                         \
     "enterprise-only feature")                                               \
  XX(ERR_OP_NOT_APPLICABLE, 26, 0, OpNotApplicableError,                      \
     "operation not applicable")                                              \
  XX(FILTERED_OUT, 27, 0, FilteredOutError, "filtered out by expression")     \
  XX(LOST_CONFLICT, 28, 0, ServerError, "lost conflict (XDR)")                \
  XX(ERR_INVALID_ENCODING, 29, 0, ServerError, "invalid encoding")            \
  XX(XDR_KEY_BUSY, 32, 0, KeyBusyError, "XDR key busy")                       \
  XX(QUERY_END, 50, 0, AerospikeError, "end of query")                        \
  XX(SECURITY_NOT_SUPPORTED, 51, 0, SecurityError,                            \
     "security not supported")                                                \
  XX(SECURITY_NOT_ENABLED, 52, 0, SecurityError, "security not enabled")      \
  XX(SECURITY_SCHEME_NOT_SUPPORTED, 53, 0, SecurityError,                     \
     "security scheme not supported")                                         \
  XX(INVALID_COMMAND, 54, 0, SecurityError, "invalid admin command")          \
  XX(INVALID_FIELD, 55, 0, SecurityError, "invalid admin field")              \
  XX(ILLEGAL_STATE, 56, 0, SecurityError, "illegal security state")           \
  XX(INVALID_USER, 60, 0, AuthenticationError, "invalid user")                \
  XX(USER_ALREADY_EXISTS, 61, 0, SecurityError, "user already exists")        \
  XX(INVALID_PASSWORD, 62, 0, AuthenticationError, "invalid password")        \
  XX(EXPIRED_PASSWORD, 63, 0, AuthenticationError, "expired password")        \
  XX(FORBIDDEN_PASSWORD, 64, 0, SecurityError, "forbidden password")          \
  XX(INVALID_CREDENTIAL, 65, 0, AuthenticationError, "invalid credential")    \
  XX(EXPIRED_SESSION, 66, 0, AuthenticationError, "expired session")          \
  XX(INVALID_ROLE, 70, 0, SecurityError, "invalid role")                      \
  XX(ROLE_ALREADY_EXISTS, 71, 0, SecurityError, "role already exists")        \
  XX(INVALID_PRIVILEGE, 72, 0, SecurityError, "invalid privilege")            \
  XX(INVALID_WHITELIST, 73, 0, SecurityError, "invalid allowlist")            \
  XX(QUOTAS_NOT_ENABLED, 74, 0, QuotaError, "quotas not enabled")             \
  XX(INVALID_QUOTA, 75, 0, QuotaError, "invalid quota")                       \
  XX(NOT_AUTHENTICATED, 80, 0, AuthenticationError, "not authenticated")      \
  XX(ROLE_VIOLATION, 81, 0, AuthorizationError, "role violation")             \
  XX(NOT_WHITELISTED, 82, 0, AuthorizationError, "address not allowlisted")   \
  XX(QUOTA_EXCEEDED, 83, 0, QuotaError, "quota exceeded")                     \
  XX(ERR_UDF, 100, 0, UdfError, "UDF execution error")                        \
  XX(MRT_BLOCKED, 120, 0, TransactionError, "record locked by a transaction") \
  XX(MRT_VERSION_MISMATCH, 121, 0, TransactionError,                          \
     "transaction version mismatch")                                          \
  XX(MRT_EXPIRED, 122, 0, TransactionError, "transaction expired")            \
  XX(MRT_TOO_MANY_WRITES, 123, 0, TransactionError,                           \
     "transaction has too many writes")                                       \
  XX(MRT_COMMITTED, 124, 0, TransactionError, "transaction committed")        \
  XX(MRT_ABORTED, 125, 0, TransactionError, "transaction aborted")            \
  XX(MRT_ALREADY_LOCKED, 126, 0, TransactionError,                            \
     "record already locked by this transaction")                             \
  XX(MRT_MONITOR_EXISTS, 127, 0, TransactionError,                            \
     "transaction monitor exists")                                            \
  XX(ERR_BATCH_DISABLED, 150, 0, BatchError, "batch disabled")                \
  XX(ERR_BATCH_MAX_REQUESTS_EXCEEDED, 151, 0, BatchError,                     \
     "batch max requests exceeded")                                           \
  XX(ERR_BATCH_QUEUES_FULL, 152, 0, BatchError, "batch queues full")          \
  XX(ERR_GEO_INVALID_GEOJSON, 160, 0, InvalidRequestError, "invalid GeoJSON") \
  XX(ERR_INDEX_FOUND, 200, 0, IndexAlreadyExistsError, "index already exists")\
  XX(ERR_INDEX_NOT_FOUND, 201, 0, IndexNotFoundError, "index not found")      \
  XX(ERR_INDEX_OOM, 202, 0, SecondaryIndexError, "index out of memory")       \
  XX(ERR_INDEX_NOT_READABLE, 203, 0, SecondaryIndexError,                     \
     "index not readable")                                                    \
  XX(ERR_INDEX, 204, 0, SecondaryIndexError, "index error")                   \
  XX(ERR_INDEX_NAME_MAXLEN, 205, 0, SecondaryIndexError,                      \
     "index name too long")                                                   \
  XX(ERR_INDEX_MAXCOUNT, 206, 0, SecondaryIndexError, "too many indexes")     \
  XX(ERR_QUERY_ABORTED, 210, 0, QueryTerminatedError, "query aborted")        \
  XX(ERR_QUERY_QUEUE_FULL, 211, 0, QueryError, "query queue full")            \
  XX(ERR_QUERY_TIMEOUT, 212, 1, TimeoutError, "query timeout")                \
  XX(ERR_QUERY, 213, 0, QueryError, "query error")

enum spk_result {
#define SPK__RESULT_ENUM(name, code, retry, pycls, msg) SPK_##name = (code),
  SPK_RESULT_MAP(SPK__RESULT_ENUM)
#undef SPK__RESULT_ENUM
};

/* One row of the table, for code that walks it (the Python binding). */
typedef struct spk_result_info {
  int code;
  int retryable;
  const char *name;     /* "ERR_RECORD_NOT_FOUND" */
  const char *pyclass;  /* "RecordNotFoundError" */
  const char *message;  /* "record not found" */
} spk_result_info;

/* The whole table, in declaration order; *count receives its length. */
const spk_result_info *spk_result_table(int *count);

/* Name / message of a code; never NULL ("UNKNOWN" / "unknown result code"). */
const char *spk_result_name(int code);
const char *spk_result_message(int code);

/* 1 if a command may be retried after this code. */
int spk_result_retryable(int code);

#endif /* SPK_RESULT_H */
