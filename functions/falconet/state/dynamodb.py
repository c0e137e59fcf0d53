"""The DynamoDB state store: one table shared by every instance of every function.

The table (template.yaml's `StateTable`): partition key `pk` (S) only; each item holds `v` (N) its
version, `d` (B) the opaque data, `x` (N) the epoch second after which it may go (the table's TTL
attribute). Nothing else is read or written.

Contract:
- `get_many(keys)`: BatchGetItem with ConsistentRead (a key written by another instance a moment
  ago is seen), 100 distinct keys a request (DynamoDB's limit; a key asked twice is asked once, as
  DynamoDB refuses duplicates in one request). Keys DynamoDB leaves unprocessed (throttling, the
  16 MB response limit) are asked again after a short jittered backoff; `max_attempts` rounds in a
  row that read nothing raise StateError. An absent key is `state.ABSENT`; an item past its `x`
  reads as data None with its version, exactly as in MemoryStore: DynamoDB's TTL deletes lazily
  (up to days later), and a writer that read the item must still not overwrite a newer one.
- `put(key, data, version=, expires=)`: `state.check_item` first (no request for an item over the
  limits), then a PutItem of version `version + 1`, conditional on `attribute_not_exists(pk)`
  (version 0) or `v = :v`. A failed condition is a conflict: False.
- A write whose response is lost (a read timeout, a dropped connection, a 5xx) may have happened:
  the retry of such a write asks for the stored item when its condition fails, and reports True
  when the table holds exactly what it was writing (same version, data and expiry). Otherwise the
  caller would re-read, see its own write as another writer's, and apply its change twice.
- Throttling, 5xx, connection errors and timeouts are retried `max_attempts` times in all, with
  jittered exponential backoff, then StateError naming the table and the AWS error code. A missing
  table, a denied request or a refused one raises StateError at once (retrying cannot help). No
  StateError message carries a botocore traceback or request dump.
- Constructing a store does no I/O: boto3 is imported and the client made on first use (~200 ms
  that an invocation without a correlation never pays). boto3 reads the endpoint
  (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_DYNAMODB`), region and credentials itself.

The client is configured like the AWS sinks' (`falconet.sinks._aws.make_client`): short connect
and read timeouts, botocore's own retries off so the attempts here are the only ones. It is built
here rather than imported from there: `falconet.sinks` pulls in `config` and `alerts`, rooms the
state store has no business depending on (the S3 reader in `falconet.storage` makes its own too).
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from falconet import state
from falconet.deadline import Deadline
from falconet.errors import StateError
from falconet.extras import require_aws

T = TypeVar("T")

BATCH_GET_MAX_KEYS = 100  # BatchGetItem's limit per request
DUE_INDEX = "due"  # the sparse global secondary index of keys due for a sweep
DUE_SHARDS = 16  # its partition key `ds` takes 16 values, spread by key

# As the AWS sinks (falconet.sinks._aws): connect quickly, give up on a silent endpoint soon.
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 5.0

# DynamoDB's answers that mean "later", beyond any 5xx or 429 (botocore.retries.standard's list,
# the codes DynamoDB uses). TransactionConflict: the item is in another client's transaction.
_THROTTLING = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "TransactionConflictException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
_DENIED = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "MissingAuthenticationTokenException",
    }
)
_CONFLICT = "ConditionalCheckFailedException"


class _Transient(Exception):
    """A failed attempt worth retrying; `ambiguous` when the request may have been applied."""

    def __init__(self, code: str, *, ambiguous: bool) -> None:
        super().__init__(code)
        self.code = code
        self.ambiguous = ambiguous


class DynamoDBStore:
    """Items in one DynamoDB table (see the module docstring for the schema and the contract).

    `client`: a boto3 DynamoDB client to use (tests); default: one made on first use.
    `clock`: the epoch second that `x` is compared with (default: wall time).
    `max_attempts`, `backoff_base`: the bound on retries and the first backoff's ceiling (s)."""

    shared = True

    def __init__(
        self,
        table: str,
        *,
        client: Any = None,
        clock: Callable[[], float] = time.time,
        max_attempts: int = 4,
        backoff_base: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not table:
            raise StateError("the state table's name is empty")
        if client is None:
            require_aws(f"the state table {table!r}")  # ConfigError naming the extra
        self.table = table
        self.name = f"dynamodb:{table}"
        self.requests: Counter[str] = Counter()
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self._client = client
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def get_many(
        self, keys: Sequence[str], *, deadline: Deadline | None = None
    ) -> dict[str, state.Item]:
        """The current item of every key (consistent reads). Raises StateError."""
        client = self._client_or_make()
        now = self._clock()
        self.requests["read"] += len(keys)  # as MemoryStore counts: what was asked
        pending = list(dict.fromkeys(keys))
        found: dict[str, state.Item] = {}
        idle = 0  # rounds in a row that read nothing and left keys unprocessed
        while pending:
            batch, pending = pending[:BATCH_GET_MAX_KEYS], pending[BATCH_GET_MAX_KEYS:]
            response = self._call("BatchGetItem", self._batch_get(client, batch), deadline)
            got = response.get("Responses", {}).get(self.table, [])
            for raw in got:
                key = raw["pk"]["S"]
                found[key] = self._item(key, raw, now)
            unprocessed = response.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
            if unprocessed:
                idle = 0 if got else idle + 1
                if idle >= self.max_attempts or not _allows(deadline, self._backoff(idle)):
                    raise StateError(
                        f"state table {self.table!r}: BatchGetItem left {len(unprocessed)} key(s) "
                        f"unprocessed in {idle} attempts in a row (throttled)"
                    )
                self._sleep(self._backoff(idle))
                pending = [k["pk"]["S"] for k in unprocessed] + pending
        return {key: found.get(key, state.ABSENT) for key in keys}

    def put(
        self,
        key: str,
        data: bytes,
        *,
        version: int,
        expires: int,
        deadline: Deadline | None = None,
        due: int | None = None,
    ) -> bool:
        """Store `data` as version `version + 1` if the key is still at `version` (0: absent).
        True when written, False when another writer got there first. `due`: the item carries
        the attributes of the sparse `due` index (`ds`, its shard; `da`, the epoch second).
        Raises StateError."""
        state.check_item(key, data)
        from botocore.exceptions import ClientError

        client = self._client_or_make()
        item = {
            "pk": {"S": key},
            "v": {"N": str(version + 1)},
            "d": {"B": bytes(data)},
            "x": {"N": str(int(expires))},
        }
        if due is not None:
            item["ds"] = {"S": _shard(key)}
            item["da"] = {"N": str(int(due))}
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(pk)"}
            if version == 0
            else {
                "ConditionExpression": "v = :v",
                "ExpressionAttributeValues": {":v": {"N": str(version)}},
            }
        )

        def put_item(ambiguous: bool) -> Any:
            # After an attempt that may have been applied, a failed condition must say what is
            # stored, so that our own earlier write is not taken for another writer's.
            extra = {"ReturnValuesOnConditionCheckFailure": "ALL_OLD"} if ambiguous else {}
            return client.put_item(TableName=self.table, Item=item, **condition, **extra)

        try:
            self._call("PutItem", put_item, deadline)
        except ClientError as error:  # only the conflict comes through `_call` as a ClientError
            if _same_item(error.response.get("Item"), item):
                self.requests["write"] += 1
                return True
            self.requests["conflict"] += 1
            return False
        self.requests["write"] += 1
        return True

    def due_keys(
        self, before: int, *, limit: int = 1000, deadline: Deadline | None = None
    ) -> list[str]:
        """Keys whose `due` is at most `before`: a Query of the sparse `due` index on each of
        its DUE_SHARDS partitions (spread so that no partition is hot), keys only."""
        client = self._client_or_make()
        found: list[tuple[int, str]] = []
        for shard in range(DUE_SHARDS):
            start: dict[str, Any] | None = None
            while len(found) < limit:
                request: dict[str, Any] = {
                    "TableName": self.table,
                    "IndexName": DUE_INDEX,
                    "KeyConditionExpression": "ds = :s AND da <= :t",
                    "ExpressionAttributeValues": {
                        ":s": {"S": str(shard)},
                        ":t": {"N": str(before)},
                    },
                    "Limit": limit,
                }
                if start:
                    request["ExclusiveStartKey"] = start
                page = self._call("Query", _query(client, request), deadline)
                self.requests["query"] += 1
                found.extend((int(i["da"]["N"]), i["pk"]["S"]) for i in page.get("Items", []))
                start = page.get("LastEvaluatedKey")
                if not start:
                    break
        return [key for _, key in sorted(found)[:limit]]

    def _batch_get(self, client: Any, keys: list[str]) -> Callable[[bool], Any]:
        request = {self.table: {"Keys": [{"pk": {"S": k}} for k in keys], "ConsistentRead": True}}
        return lambda _ambiguous: client.batch_get_item(RequestItems=request)  # reads: no harm

    def _client_or_make(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> Any:
        import boto3  # ~200 ms of import: only when the state store is used
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        config = Config(
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=READ_TIMEOUT_S,
            retries={"mode": "standard", "total_max_attempts": 1},
        )
        try:
            return boto3.client("dynamodb", config=config)
        except BotoCoreError as error:  # no region, a malformed endpoint, ...
            raise StateError(f"state table {self.table!r}: no DynamoDB client: {error}") from None

    def _call(
        self, operation: str, call: Callable[[bool], T], deadline: Deadline | None = None
    ) -> T:
        """`call(ambiguous)`, retried on transient errors; `ambiguous` is True once an earlier
        attempt may have been applied. A conflict comes out as botocore's ClientError; anything
        else that cannot succeed, or still fails after `max_attempts`, as StateError."""
        ambiguous = False
        attempt = 0
        while True:
            attempt += 1
            try:
                return call(ambiguous)
            except Exception as error:  # sorted out by _classify: retried or raised
                failure = self._classify(operation, error)
            ambiguous = ambiguous or failure.ambiguous
            wait = self._backoff(attempt - 1)
            if attempt >= self.max_attempts or not _allows(deadline, wait):
                raise StateError(
                    f"state table {self.table!r}: {operation} failed after {attempt} attempts "
                    f"({failure.code})"
                    + ("" if attempt >= self.max_attempts else ", with no time left for another")
                ) from None
            self._sleep(wait)

    def _classify(self, operation: str, error: Exception) -> _Transient:
        """`error` as a retryable failure, or raised: the conflict as is, the rest as StateError."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            HTTPClientError,
        )
        from botocore.exceptions import ConnectionError as BotoConnectionError

        table = self.table
        if isinstance(error, ClientError):
            code = str(error.response.get("Error", {}).get("Code", "")) or "unknown error"
            message = str(error.response.get("Error", {}).get("Message", ""))[:300]
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code == _CONFLICT:
                raise error
            if code in _THROTTLING or status == 429:
                return _Transient(code, ambiguous=False)  # refused: not applied
            if status >= 500:
                return _Transient(code, ambiguous=True)
            if code == "ResourceNotFoundException":
                raise StateError(
                    f"state table {table!r} does not exist (or is not active yet) in region "
                    f"{self._region()} ({code} on {operation})"
                ) from None
            if code in _DENIED:
                raise StateError(
                    f"state table {table!r}: {operation} denied ({code}): {message}"
                ) from None
            raise StateError(
                f"state table {table!r}: {operation} refused ({code}): {message}"
            ) from None
        if isinstance(error, ConnectTimeoutError | EndpointConnectionError):
            return _Transient(type(error).__name__, ambiguous=False)  # never sent
        if isinstance(error, BotoConnectionError | HTTPClientError):
            return _Transient(type(error).__name__, ambiguous=True)  # a read timeout, a reset
        if isinstance(error, BotoCoreError):  # no credentials, a bad parameter: will not change
            raise StateError(f"state table {table!r}: {operation} failed: {error}") from None
        raise error

    def _region(self) -> str:
        client = self._client
        return str(getattr(getattr(client, "meta", None), "region_name", None) or "?")

    def _backoff(self, retry: int) -> float:
        """Exponential backoff with full jitter (as `falconet.sinks._retry.backoff_delay`)."""
        return random.uniform(0, min(1.0, self.backoff_base * (2**retry)))  # noqa: S311 - jitter

    def _item(self, key: str, raw: dict[str, Any], now: float) -> state.Item:
        try:
            version = int(raw["v"]["N"])
            expires = int(raw["x"]["N"])
            data = bytes(raw["d"]["B"])
        except (KeyError, TypeError, ValueError):
            raise StateError(
                f"state table {self.table!r}: item {key!r} was not written by falconet "
                "(it needs v (N), d (B) and x (N))"
            ) from None
        if expires < now:
            return state.Item(None, version)
        return state.Item(data, version)


def _allows(deadline: Deadline | None, wait: float) -> bool:
    """Whether `deadline` leaves time to wait `wait` seconds and make one more request."""
    return deadline is None or deadline.allows(wait, CONNECT_TIMEOUT_S + READ_TIMEOUT_S)


def _query(client: Any, request: dict[str, Any]) -> Callable[[bool], Any]:
    return lambda _ambiguous: client.query(**request)  # reads: no harm in a retry


def _shard(key: str) -> str:
    return str(
        int.from_bytes(hashlib.blake2b(key.encode(), digest_size=2).digest(), "big") % DUE_SHARDS
    )


def _same_item(stored: object, item: dict[str, Any]) -> bool:
    """Whether the item a failed condition returned is exactly the one we were writing."""
    if not isinstance(stored, dict):
        return False
    try:
        return bool(
            stored["v"]["N"] == item["v"]["N"]
            and stored["x"]["N"] == item["x"]["N"]
            and bytes(stored["d"]["B"]) == item["d"]["B"]
        )
    except (KeyError, TypeError):
        return False


__all__ = ["BATCH_GET_MAX_KEYS", "DynamoDBStore"]
