"""Thin I/O: SCRAM credentials and ACLs on the brokers through their admin API.

aiokafka's admin client has no methods for these, but its protocol layer can
send any request: ACLs use aiokafka's CreateAcls/DeleteAcls/DescribeAcls v1
structs (several bindings per request), SCRAM credentials a small flexible
AlterUserScramCredentials / DescribeUserScramCredentials v0 defined here from
Kafka's message specs. No JVM tools are started; what to grant lives in
:mod:`plumbing.identity` (pure).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError, for_code
from aiokafka.protocol.admin import (
    CreateAclsRequest_v1,
    DeleteAclsRequest_v1,
    DescribeAclsRequest_v1,
)
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

from plumbing.errors import KafkaAdminError, KafkaUnavailableError
from plumbing.identity import (
    AclBinding,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    ScramCredential,
)
from plumbing.kafka import KafkaConnection

# ---------------------------------------------------------------- SCRAM requests


class _AlterScramResponse_v0(Response):  # type: ignore[misc]
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(
                ("user", CompactString("utf-8")),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _AlterScramRequest_v0(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = _AlterScramResponse_v0
    SCHEMA = Schema(
        (
            "deletions",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("mechanism", Int8),
                ("tags", TaggedFields),
            ),
        ),
        (
            "upsertions",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("mechanism", Int8),
                ("iterations", Int32),
                ("salt", CompactBytes),
                ("salted_password", CompactBytes),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


_AlterScramStruct: TypeAlias = _AlterScramRequest_v0


class AlterScramRequest(Request[_AlterScramStruct]):  # type: ignore[misc]
    API_KEY = 51

    def __init__(self, deletions: list[tuple[Any, ...]], upsertions: list[tuple[Any, ...]]):
        self._deletions = deletions
        self._upsertions = upsertions

    def build(self, request_struct_class: type[_AlterScramStruct]) -> _AlterScramStruct:
        return request_struct_class(self._deletions, self._upsertions, {})


class _DescribeScramResponse_v0(Response):  # type: ignore[misc]
    API_KEY = 50
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("error_message", CompactString("utf-8")),
        (
            "results",
            CompactArray(
                ("user", CompactString("utf-8")),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                (
                    "credential_infos",
                    CompactArray(
                        ("mechanism", Int8),
                        ("iterations", Int32),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _DescribeScramRequest_v0(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 50
    API_VERSION = 0
    RESPONSE_TYPE = _DescribeScramResponse_v0
    SCHEMA = Schema(
        ("users", CompactArray(("name", CompactString("utf-8")), ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


_DescribeScramStruct: TypeAlias = _DescribeScramRequest_v0


class DescribeScramRequest(Request[_DescribeScramStruct]):  # type: ignore[misc]
    API_KEY = 50

    def __init__(self, users: list[str] | None):
        self._users = users

    def build(self, request_struct_class: type[_DescribeScramStruct]) -> _DescribeScramStruct:
        users: list[tuple[str, dict[int, bytes]]] | None = (
            None if self._users is None else [(u, {}) for u in self._users]
        )
        return request_struct_class(users, {})


# ---------------------------------------------------------------- ACL requests


class _CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]
    """CreateAcls v1 with many bindings per request (aiokafka's builder sends one)."""

    API_KEY = 30

    def __init__(self, creations: list[tuple[Any, ...]]):
        self._creations = creations

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class(self._creations)


class _DeleteAcls(Request[DeleteAclsRequest_v1]):  # type: ignore[misc]
    API_KEY = 31

    def __init__(self, filters: list[tuple[Any, ...]]):
        self._filters = filters

    def build(self, request_struct_class: type[DeleteAclsRequest_v1]) -> DeleteAclsRequest_v1:
        return request_struct_class(self._filters)


class _DescribeAcls(Request[DescribeAclsRequest_v1]):  # type: ignore[misc]
    API_KEY = 29

    def __init__(self, fields: tuple[Any, ...]):
        self._fields = fields

    def build(self, request_struct_class: type[DescribeAclsRequest_v1]) -> DescribeAclsRequest_v1:
        return request_struct_class(*self._fields)


def _binding_fields(b: AclBinding) -> tuple[Any, ...]:
    return (
        int(b.resource_type),
        b.resource_name,
        int(b.pattern),
        b.principal,
        b.host,
        int(b.operation),
        int(b.permission),
    )


# ---------------------------------------------------------------- the client


def _raise_for(code: int, message: str | None, what: str) -> None:
    if code == 0:
        return
    error = for_code(code)
    raise KafkaAdminError(f"{what}: {error.__name__} ({code}) {message or ''}".strip())


class SecurityAdmin:
    """SCRAM users and ACLs of one Kafka cluster, as its admin (a super user)."""

    def __init__(self, connection: KafkaConnection) -> None:
        self._connection = connection
        self._admin: AIOKafkaAdminClient | None = None

    async def __aenter__(self) -> SecurityAdmin:
        admin = AIOKafkaAdminClient(**self._connection.client_kwargs())
        try:
            await admin.start()
        except KafkaConnectionError as exc:
            await admin.close()
            raise KafkaUnavailableError(
                f"cannot reach Kafka at {self._connection.bootstrap_servers}"
            ) from exc
        except KafkaError as exc:  # e.g. authentication failed
            await admin.close()
            raise KafkaAdminError(f"admin connection refused: {exc!r}") from exc
        self._admin = admin
        return self

    async def __aexit__(self, *exc: object) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            await admin.close()

    async def _send(self, request: Request[Any]) -> Any:
        assert self._admin is not None, "use SecurityAdmin as an async context manager"
        try:
            return await self._admin._send_request(request)
        except KafkaConnectionError as exc:
            raise KafkaUnavailableError(f"admin request {type(request).__name__} failed") from exc
        except KafkaError as exc:
            raise KafkaAdminError(
                f"admin request {type(request).__name__} failed: {exc!r}"
            ) from exc

    # -- SCRAM -----------------------------------------------------------------------

    async def upsert_scram(self, credential: ScramCredential) -> None:
        """Create or replace a SCRAM credential (salted client side: no password on the wire)."""
        upsert: tuple[Any, ...] = (
            credential.user,
            credential.mechanism_code,
            credential.iterations,
            credential.salt,
            credential.salted_password,
            {},
        )
        response = await self._send(AlterScramRequest([], [upsert]))
        for user_name, code, message, _tags in response.results:
            _raise_for(code, message, f"storing the SCRAM credential of {user_name}")

    async def delete_scram(self, user_name: str, mechanism_code: int = 2) -> bool:
        """Delete a SCRAM credential; False when the user had none."""
        response = await self._send(AlterScramRequest([(user_name, mechanism_code, {})], []))
        for name, code, message, _tags in response.results:
            if code == 91:  # RESOURCE_NOT_FOUND: nothing to delete
                return False
            _raise_for(code, message, f"deleting the SCRAM credential of {name}")
        return True

    async def scram_users(self, users: Sequence[str] | None = None) -> dict[str, list[int]]:
        """user -> SCRAM mechanism codes it has credentials for (all users when None)."""
        response = await self._send(DescribeScramRequest(None if users is None else list(users)))
        _raise_for(response.error_code, response.error_message, "describing SCRAM users")
        out: dict[str, list[int]] = {}
        for name, code, _message, infos, _tags in response.results:
            if code == 91:  # RESOURCE_NOT_FOUND
                continue
            _raise_for(code, _message, f"describing SCRAM user {name}")
            out[name] = [mechanism for mechanism, _iterations, _t in infos]
        return out

    # -- ACLs ------------------------------------------------------------------------

    async def create_acls(self, bindings: Iterable[AclBinding]) -> None:
        """Create every binding (existing ones are kept: Kafka's create is idempotent)."""
        creations = [_binding_fields(b) for b in bindings]
        if not creations:
            return
        response = await self._send(_CreateAcls(creations))
        for fields, (code, message) in zip(creations, response.creation_responses, strict=True):
            _raise_for(code, message, f"creating ACL {fields}")

    async def delete_acls_of(self, principal: str) -> int:
        """Delete every ACL of ``principal``; returns how many were deleted."""
        any_filter = (
            int(ResourceType.ANY),
            None,
            int(PatternType.ANY),
            principal,
            None,
            int(Operation.ANY),
            int(Permission.ANY),
        )
        response = await self._send(_DeleteAcls([any_filter]))
        deleted = 0
        for code, message, matching in response.filter_responses:
            _raise_for(code, message, f"deleting the ACLs of {principal}")
            for entry in matching:
                _raise_for(entry[0], entry[1], f"deleting an ACL of {principal}")
                deleted += 1
        return deleted

    async def acls_of(self, principal: str | None = None) -> list[AclBinding]:
        """Every ACL (of ``principal`` when given), as bindings."""
        response = await self._send(
            _DescribeAcls(
                (
                    int(ResourceType.ANY),
                    None,
                    int(PatternType.ANY),
                    principal,
                    None,
                    int(Operation.ANY),
                    int(Permission.ANY),
                )
            )
        )
        _raise_for(response.error_code, response.error_message, "describing ACLs")
        out = []
        for rtype, rname, pattern, acls in response.resources:
            for p, host, op, perm in acls:
                out.append(
                    AclBinding(
                        ResourceType(rtype),
                        rname,
                        PatternType(pattern),
                        p,
                        Operation(op),
                        Permission(perm),
                        host,
                    )
                )
        return sorted(out)
