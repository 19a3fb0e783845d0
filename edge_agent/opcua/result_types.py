"""OPC 40001-101's result structures, made under its namespace at start (no NodeSet2 here):
`ResultDataType` = `ResultMetaDataType` + `ResultContent`, with `ProcessingTimesDataType` and
`ResultEvaluationEnum`; and a journaled verdict as one (its JSON the one `ResultContent` item).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from asyncua import Server, ua
from asyncua.common.structures104 import new_enum, new_struct, new_struct_field
from asyncua.ua.ua_binary import struct_to_binary

from edge_agent.opcua.results import BoardResult

SPEC_EVALUATIONS = ["Undefined", "OK", "NotOK", "NotDecidable"]
# The verdict's evaluation in the spec's enumeration; ERROR has no value of its own there: it is
# NotDecidable, told apart by ResultEvaluationCode (the station's EvaluationEnum value).
SPEC_EVALUATION = {"OK": 1, "NOK": 2, "NOT_DECIDABLE": 3, "ERROR": 3}
COMPLETED = 1  # ResultState of every journaled verdict: the result is complete


async def register(server: Server, ns: int) -> ua.NodeId:
    """Make the enumeration and the three structures; the node id of `ResultDataType`."""
    evaluation = await new_enum(server, ns, "ResultEvaluationEnum", SPEC_EVALUATIONS)
    times, _ = await new_struct(server, ns, "ProcessingTimesDataType", [
        new_struct_field("StartTime", ua.VariantType.DateTime),
        new_struct_field("EndTime", ua.VariantType.DateTime),
        new_struct_field("AcquisitionDuration", ua.VariantType.Double, optional=True),
        new_struct_field("ProcessingDuration", ua.VariantType.Double),
    ])  # fmt: skip
    meta, _ = await new_struct(server, ns, "ResultMetaDataType", [
        new_struct_field("ResultId", ua.VariantType.String),
        new_struct_field("IsPartial", ua.VariantType.Boolean),
        new_struct_field("ResultState", ua.VariantType.Int32),
        new_struct_field("PartId", ua.VariantType.String, optional=True),
        new_struct_field("CreationTime", ua.VariantType.DateTime),
        new_struct_field("ProcessingTimes", times, optional=True),
        new_struct_field("ResultEvaluation", evaluation),
        new_struct_field("ResultEvaluationCode", ua.VariantType.Int64),
        new_struct_field("ResultEvaluationDetails", ua.VariantType.LocalizedText),
    ])  # fmt: skip
    result, _ = await new_struct(server, ns, "ResultDataType", [
        new_struct_field("ResultMetaData", meta),
        new_struct_field("ResultContent", ua.NodeId(ua.ObjectIds.BaseDataType), array=True),
    ])  # fmt: skip
    await server.load_data_type_definitions()
    return result.nodeid


def _time(text: str | None) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def as_result(result: BoardResult, code: int) -> Any:
    """`ResultDataType` of one verdict; `code` is its station EvaluationEnum value."""
    verdict = result.verdict
    created = _time(verdict.get("created_at")) or dt.datetime.now(dt.UTC)
    total_ms = float((verdict.get("processing_ms") or {}).get("total") or 0.0)
    times = ua.ProcessingTimesDataType(
        StartTime=created - dt.timedelta(milliseconds=total_ms),
        EndTime=created,
        AcquisitionDuration=None,
        ProcessingDuration=total_ms,
    )
    off = [c for c in verdict.get("connectors") or [] if c.get("evaluation") != "OK"]
    details = "; ".join(f"{c.get('id')} {c.get('evaluation')}" for c in off)
    meta = ua.ResultMetaDataType(
        ResultId=result.result_id,
        IsPartial=False,
        ResultState=COMPLETED,
        PartId=result.part_id or None,
        CreationTime=created,
        ProcessingTimes=times,
        ResultEvaluation=ua.ResultEvaluationEnum(SPEC_EVALUATION.get(result.evaluation, 0)),
        ResultEvaluationCode=code,
        ResultEvaluationDetails=ua.LocalizedText(
            f"{result.evaluation}: {details}" if details else result.evaluation
        ),
    )
    content = [ua.Variant(result.content, ua.VariantType.String)]
    return ua.ResultDataType(ResultMetaData=meta, ResultContent=content)


def packed(structure: Any) -> ua.ExtensionObject:
    """A registered structure encoded once, as the ExtensionObject the wire carries (the same
    bytes): each subscribed session then copies and sends bytes instead of deep-copying and
    encoding the structure again for every event."""
    type_id = ua.typeid_by_extension_objects[type(structure)]
    return ua.ExtensionObject(TypeId=type_id, Body=struct_to_binary(structure))
