"""The station's OPC UA server: journaled verdicts as results, events and a PLC handshake.

Its own process: it reads the journal read-only and never touches the inspection path, so a
slow or hostile client can only slow this server. Types follow OPC 40001-101 (result transfer)
and OPC 40100-1 (machine vision) under their namespace URIs; see docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from asyncua import Server, ua
from asyncua.common.structures104 import new_enum
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import SimpleRoleRuleset
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from cryptography.x509.oid import ExtendedKeyUsageOID

from edge_agent.comms.confirmations import Confirmation, apply_confirmation
from edge_agent.comms.mqtt_once import send_command
from edge_agent.contracts.config import StationConfig
from edge_agent.opcua import result_types, vision_state
from edge_agent.opcua.results import BoardResult, JournalFollower
from edge_agent.opcua.users import StationUsers, read_users, trusted_certificates
from edge_agent.ops.opcua_status import write_status
from edge_agent.store.crop_store import JOURNAL_FILE
from edge_agent.store.journal import LABELS, Journal

log = structlog.get_logger(__name__)
RESULT_NS = "http://opcfoundation.org/UA/Machinery/Result/"
VISION_NS = "http://opcfoundation.org/UA/MachineVision"
EVALUATIONS = ["NotAvailable", "OK", "NOK", "NOT_DECIDABLE", "ERROR"]
POLICIES = {
    "Basic256Sha256_Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "Basic256Sha256_SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    "None": ua.SecurityPolicyType.NoSecurity,
}
EVENT_FIELDS = [
    ("ResultId", ua.VariantType.String),
    ("PartId", ua.VariantType.String),
    ("Camera", ua.VariantType.String),
    ("Evaluation", ua.VariantType.String),
    ("EvaluationCode", ua.VariantType.Int32),
    ("Session", ua.VariantType.UInt32),
    ("Seq", ua.VariantType.UInt32),
    ("ResultContent", ua.VariantType.String),
]
HEARTBEAT_S = 2.0
RELOAD_TIMEOUT_S = 3.0  # broker acknowledgement and the agent's reply, within a client's call


def application_uri(config: StationConfig) -> str:
    return f"urn:edge-inspect:{socket.gethostname()}:{config.station.name}"


async def make_certificate(config: StationConfig) -> None:
    """The server's self-signed certificate and key, made when missing (at install)."""
    settings = config.opcua
    settings.certificate.parent.mkdir(parents=True, exist_ok=True)
    settings.trusted_certs.mkdir(parents=True, exist_ok=True)
    await setup_self_signed_certificate(
        settings.private_key,
        settings.certificate,
        application_uri(config),
        socket.gethostname(),
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        {"commonName": f"edge-inspect {config.station.name}"},
    )
    settings.private_key.chmod(0o600)


class StationServer:
    """The address space and the loop that feeds it from the journal."""

    def __init__(self, config: StationConfig) -> None:
        self.config = config
        self.settings = config.opcua
        self.journal_path = config.paths.state / JOURNAL_FILE
        self.server: Server | None = None
        self.recent: list[BoardResult] = []
        self.cameras: dict[str, dict[str, Any]] = {}
        self.events = 0
        self.counts: dict[str, int] = {}
        self.reloading = asyncio.Lock()

    async def start(self) -> None:
        settings = self.settings
        users = StationUsers(
            read_users(settings.users_file),
            await trusted_certificates(settings.trusted_certs),
            settings.allow_anonymous,
        )
        server = Server(user_manager=users)
        await server.init()
        server.iserver.max_connections = settings.max_sessions
        server.iserver.max_monitored_item_queue_size = settings.max_queue
        server.set_endpoint(f"opc.tcp://{settings.host}:{settings.port}/{settings.path}")
        server.set_server_name(f"edge-inspect {self.config.station.name}")
        await server.set_application_uri(application_uri(self.config))
        server.set_security_policy(
            [POLICIES[p] for p in settings.policies], permission_ruleset=SimpleRoleRuleset()
        )
        tokens: list[type] = [ua.UserNameIdentityToken, ua.X509IdentityToken]
        server.set_identity_tokens(
            [*tokens, ua.AnonymousIdentityToken] if settings.allow_anonymous else tokens
        )
        await server.load_certificate(str(settings.certificate))
        await server.load_private_key(str(settings.private_key))
        store = TrustStore([settings.trusted_certs], [])
        await store.load()
        options = (
            CertificateValidatorOptions.TIME_RANGE
            | CertificateValidatorOptions.TRUSTED
            | CertificateValidatorOptions.PEER_CLIENT
        )
        server.set_certificate_validator(CertificateValidator(options, store))
        self.server = server
        await self._build_model(server)
        await server.start()
        log.info("opcua_started", endpoint=server.endpoint.geturl(), policies=settings.policies)

    async def _build_model(self, server: Server) -> None:
        self.ns_result = await server.register_namespace(RESULT_NS)
        self.ns_vision = await server.register_namespace(VISION_NS)
        self.ns = await server.register_namespace(application_uri(self.config))
        self.enum = await new_enum(server, self.ns_result, "EvaluationEnum", EVALUATIONS)
        self.result_type = await result_types.register(server, self.ns_result)
        result_field = ("Result", ua.VariantType.ExtensionObject, self.result_type)
        self.event_type = await server.create_custom_event_type(
            self.ns_result,
            "ResultReadyEventType",
            ua.ObjectIds.BaseEventType,
            [*EVENT_FIELDS, result_field],
        )
        vision = await server.nodes.objects.add_object(self.ns_vision, "VisionSystem")
        machine = await vision.add_object(self.ns_vision, "VisionStateMachine")
        self.state_node = await machine.add_variable(self.ns_vision, "CurrentState", "Operational")
        self.reason_node = await machine.add_variable(self.ns_vision, "Reason", "")
        self.drift_node = await machine.add_variable(self.ns, "Drift", "[]")
        rm = await vision.add_object(self.ns_result, "ResultManagement")
        self.rm = rm
        self.recent_node = await rm.add_variable(
            self.ns_result, "Results", ua.Variant([], ua.VariantType.String)
        )
        self.latest_node = await rm.add_variable(self.ns_result, "LatestResultId", "")
        self.latest_result = await rm.add_variable(
            self.ns_result, "LatestResult", ua.ResultDataType(), datatype=self.result_type
        )
        string, int32 = ua.VariantType.String, ua.VariantType.Int32
        methods = [
            (rm, self.ns_result, "GetResultById", self._get_by_id, [string], [string, int32]),
            (rm, self.ns_result, "GetLatestResult", self._get_latest, [], [string, int32]),
            (rm, self.ns, "Confirm", self._confirm, [string] * 4, [string]),
            (vision, self.ns, "Reload", self._reload, [], [ua.VariantType.Boolean, string]),
        ]
        for node, ns, name, method, inputs, outputs in methods:
            await node.add_method(ns, name, _refusing(method, len(inputs)), inputs, outputs)
        self.handshake = await vision.add_object(self.ns, "Handshake")
        self.generator = await server.get_event_generator(self.event_type, rm)
        self.follower = JournalFollower(self.journal_path)
        counts = await asyncio.to_thread(self.follower.counts)
        loaded = await asyncio.to_thread(self.follower.latest, self.settings.last_results)
        # The counters go on from the journal's count, so a restart of this server never
        # shows a PLC the counter of a result it already saw.
        self.counts = {c: n - sum(r.camera == c for r in loaded) for c, n in counts.items()}
        for camera in self.config.inputs.drop_folders:  # browsable before their first board
            await self._camera(camera)
        for result in loaded:
            await self._show(result, event=False)

    async def _camera(self, name: str) -> dict[str, Any]:
        if name not in self.cameras:
            node = await self.handshake.add_object(self.ns, name or "unnamed")
            evaluation = await node.add_variable(
                self.ns,
                "LastEvaluation",
                ua.Variant(0, ua.VariantType.Int32),
                datatype=self.enum.nodeid,
            )
            self.cameras[name] = {
                "LastEvaluation": evaluation,
                "PartId": await node.add_variable(self.ns, "PartId", ""),
                "ResultId": await node.add_variable(self.ns, "ResultId", ""),
                "ResultCounter": await node.add_variable(
                    self.ns, "ResultCounter", ua.Variant(0, ua.VariantType.UInt32)
                ),
                "count": self.counts.get(name, 0),
            }
        return self.cameras[name]

    async def _show(self, result: BoardResult, event: bool = True) -> None:
        """One new result: the recent list, the camera's handshake, and its event."""
        self.recent = [*self.recent, result][-self.settings.last_results :]
        await self.recent_node.write_value(
            ua.Variant([r.content for r in self.recent], ua.VariantType.String)
        )
        await self.latest_node.write_value(result.result_id)
        camera = await self._camera(result.camera)
        camera["count"] += 1
        code = EVALUATIONS.index(result.evaluation) if result.evaluation in EVALUATIONS else 0
        await camera["LastEvaluation"].write_value(ua.Variant(code, ua.VariantType.Int32))
        await camera["PartId"].write_value(result.part_id)
        await camera["ResultId"].write_value(result.result_id)
        await camera["ResultCounter"].write_value(
            ua.Variant(camera["count"] % 2**32, ua.VariantType.UInt32)
        )
        structured = result_types.packed(result_types.as_result(result, code))
        await self.latest_result.write_value(
            ua.DataValue(ua.Variant(structured, ua.VariantType.ExtensionObject))
        )
        if not event:
            return
        fields = self.generator.event
        fields.ResultId, fields.PartId, fields.Camera = (
            result.result_id,
            result.part_id,
            result.camera,
        )
        fields.Evaluation, fields.EvaluationCode = result.evaluation, code
        fields.Session, fields.Seq = result.session, result.seq
        fields.ResultContent = result.content
        fields.Result = structured
        fields.Severity = 500 if result.evaluation != "OK" else 100
        await self.generator.trigger(
            message=f"{result.camera} {result.part_id} {result.evaluation}"
        )
        self.events += 1

    async def _get_by_id(self, parent: Any, result_id: Any) -> list[ua.Variant]:
        text = _string_arg(result_id, "ResultId")
        found = await asyncio.to_thread(self.follower.by_id, text)
        if found is None:
            return [ua.Variant("", ua.VariantType.String), ua.Variant(1, ua.VariantType.Int32)]
        return [
            ua.Variant(found.content, ua.VariantType.String),
            ua.Variant(0, ua.VariantType.Int32),
        ]

    async def _get_latest(self, parent: Any) -> list[ua.Variant]:
        if not self.recent:
            return [ua.Variant("", ua.VariantType.String), ua.Variant(1, ua.VariantType.Int32)]
        return [
            ua.Variant(self.recent[-1].content, ua.VariantType.String),
            ua.Variant(0, ua.VariantType.Int32),
        ]

    async def _confirm(self, parent: Any, *args: Any) -> list[ua.Variant]:
        """Confirm(ResultId, Connector ("" = the board's rule), Label OK|KO, By)."""
        result_id, connector, label, by = (
            _string_arg(v, n)
            for v, n in zip(args, ("ResultId", "Connector", "Label", "By"), strict=True)
        )
        if label.upper() not in LABELS or not by.strip() or not result_id:
            log.warning("opcua_confirm_refused", result_id=result_id, label=label)
            raise ua.UaStatusCodeError(ua.StatusCodes.BadInvalidArgument)
        confirmation = Confirmation(result_id, connector or None, label.upper(), f"opcua:{by}")
        try:
            labelled = await asyncio.to_thread(self._apply, confirmation)
        except ValueError as exc:
            log.warning("opcua_confirm_refused", result_id=result_id, error=str(exc))
            raise ua.UaStatusCodeError(ua.StatusCodes.BadInvalidArgument) from None
        log.info("opcua_confirmed", result_id=result_id, connectors=labelled, label=label, by=by)
        return [ua.Variant(",".join(labelled), ua.VariantType.String)]

    async def _reload(self, parent: Any) -> list[ua.Variant]:
        """Reload() -> (Sent, Outcome): the agent's own `cmd/reload` over MQTT; Outcome is the
        agent's reply (JSON) or why it was not sent. One at a time."""
        if self.reloading.locked():
            return _reload_outcome(False, "a reload request is already in progress")
        async with self.reloading:
            outcome = await asyncio.to_thread(
                send_command, self.config.mqtt, "reload", "opcua", RELOAD_TIMEOUT_S
            )
        if not outcome.sent:
            log.warning("opcua_reload_not_sent", error=outcome.error)
            return _reload_outcome(False, outcome.error)
        log.info("opcua_reload_sent", reply=outcome.reply, error=outcome.error or None)
        text = json.dumps(outcome.reply) if outcome.reply is not None else outcome.error
        return _reload_outcome(True, text)

    def _apply(self, confirmation: Confirmation) -> list[str]:
        journal = Journal(self.journal_path)
        try:
            return apply_confirmation(journal, confirmation)
        finally:
            journal.close()

    async def poll_once(self) -> int:
        """Publish what the journal got since the last poll; returns how many."""
        results = await asyncio.to_thread(self.follower.new)
        for result in results:
            await self._show(result)
        return len(results)

    async def serve(self, stop: asyncio.Event) -> None:
        """Follow the journal until `stop`; the heartbeat file says how it goes."""
        next_beat = 0.0
        state = self.config.paths.state
        try:
            while not stop.is_set():
                await self.poll_once()
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + HEARTBEAT_S
                    status = {"state": "running", "events": self.events, "endpoint": self.endpoint}
                    await asyncio.to_thread(write_status, state, status)
                    await self._follow_agent()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.poll_interval_s)
        except Exception as exc:
            log.exception("opcua_failed")
            await asyncio.to_thread(write_status, state, {"state": "error", "reason": str(exc)})
            raise
        finally:
            await self.stop()
        await asyncio.to_thread(write_status, state, {"state": "stopped"})

    async def _follow_agent(self) -> None:
        """The vision state machine from the agent's /readyz (on a thread: never blocks)."""
        seen = await asyncio.to_thread(vision_state.look, self.config)
        await self.state_node.write_value(seen.state)
        await self.reason_node.write_value(seen.reason)
        await self.drift_node.write_value(seen.drift)

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.settings.host}:{self.settings.port}/{self.settings.path}"

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None
            self.follower.close()


def _refusing(method: Callable[..., Awaitable[Any]], inputs: int) -> Callable[..., Awaitable[Any]]:
    """A method of `inputs` arguments: another count is refused (logged) before it runs; its own
    refusal (UaStatusCodeError) reaches the client as its status code."""

    @functools.wraps(method)
    async def call(parent: Any, *args: Any) -> Any:
        if len(args) != inputs:
            log.warning("opcua_arguments_refused", method=method.__name__, given=len(args))
            too_many = len(args) > inputs
            return ua.StatusCode(
                ua.StatusCodes.BadTooManyArguments
                if too_many
                else ua.StatusCodes.BadArgumentsMissing
            )
        try:
            return await method(parent, *args)
        except ua.UaStatusCodeError as exc:
            return ua.StatusCode(exc.code)

    return call


def _reload_outcome(sent: bool, text: str) -> list[ua.Variant]:
    return [ua.Variant(sent, ua.VariantType.Boolean), ua.Variant(text, ua.VariantType.String)]


def _string_arg(value: Any, name: str) -> str:
    """A method's string argument, or BadInvalidArgument (logged)."""
    if isinstance(value, ua.Variant):
        value = value.Value
    if not isinstance(value, str) or len(value) > 256:
        log.warning("opcua_argument_refused", argument=name, value=repr(value)[:80])
        raise ua.UaStatusCodeError(ua.StatusCodes.BadInvalidArgument)
    return value
