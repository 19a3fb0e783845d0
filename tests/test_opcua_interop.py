"""A second, independent OPC UA stack (node-opcua, tests/interop/) against the server over
SignAndEncrypt with a user: browse ResultManagement, every event in order, the handshake,
Confirm journaled, a malformed Confirm refused. `./run.sh setup` installs it (`npm ci`)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from test_opcua import EVALS, PASSWORD, USER, record, running, wait_for

from edge_agent.opcua.server import RESULT_NS, VISION_NS, application_uri

INTEROP = Path(__file__).resolve().parent / "interop"
pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (INTEROP / "node_modules" / "node-opcua").is_dir(),
    reason="node-opcua not installed (./run.sh setup runs npm ci in tests/interop)",
)


def test_node_opcua_client(tmp_path: Path) -> None:
    asyncio.run(node_opcua_client(tmp_path))


async def node_opcua_client(tmp_path: Path) -> None:
    async with running(tmp_path) as (station, cert, _):
        work = tmp_path / "node"
        work.mkdir()
        first = record(station.journal, "NOK", 100)
        await asyncio.sleep(0.3)  # shown before the client comes: not one of its events
        spec = {
            "work": str(work), "endpoint": station.url, "cert": str(cert[0]),
            "key": str(cert[1]), "uri": cert[2], "user": USER, "password": PASSWORD,
            "resultNs": RESULT_NS, "visionNs": VISION_NS,
            "stationNs": application_uri(station.config), "camera": "cam1",
            "expect": len(EVALS) * 2, "timeoutMs": 30000, "confirm": first["result_id"],
        }  # fmt: skip
        (work / "spec.json").write_text(json.dumps(spec))
        node = await asyncio.create_subprocess_exec(
            "node", str(INTEROP / "client.js"), str(work / "spec.json"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await wait_for(lambda: (work / "subscribed").exists() or node.returncode is not None, 60)
        sent = [record(station.journal, e, n) for n, e in enumerate(EVALS * 2, start=1)]
        _, err = await asyncio.wait_for(node.communicate(), 90)
        assert node.returncode == 0, err.decode()[-2000:]
        seen = json.loads((work / "seen.json").read_text())
    assert {"Results", "LatestResultId", "GetResultById", "Confirm"} <= set(seen["children"])
    assert seen["events"] == [[v["result_id"], v["evaluation"], v["seq"]] for v in sent]
    assert seen["handshake"]["counter"] == len(sent) + 2  # one before the server, `first`
    assert seen["handshake"]["resultId"] == sent[-1]["result_id"]
    assert seen["handshake"]["last"] == ["NotAvailable", "OK", "NOK"].index(sent[-1]["evaluation"])
    assert seen["confirm"] == {"status": "Good", "out": ["J1"]}
    assert seen["bad"] == "BadInvalidArgument"
    labels = station.journal_labels(first["result_id"])
    assert labels == [("J1", "OK", "opcua:node-client")]
