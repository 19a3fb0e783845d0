// A second OPC UA stack against edge-inspect's server: SignAndEncrypt, a user, browse
// ResultManagement, collect ResultReadyEvents, read the handshake, call Confirm.
// Usage: node client.js SPEC.json  (writes what it saw to seen.json beside SPEC.json)
"use strict";
const fs = require("fs");
const path = require("path");
const opcua = require("node-opcua");

async function main() {
  const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf-8"));
  const certificateManager = new opcua.OPCUACertificateManager({
    rootFolder: path.join(spec.work, "pki"),
    automaticallyAcceptUnknownCertificate: true,
  });
  const client = opcua.OPCUAClient.create({
    applicationUri: spec.uri,
    securityMode: opcua.MessageSecurityMode.SignAndEncrypt,
    securityPolicy: opcua.SecurityPolicy.Basic256Sha256,
    certificateFile: spec.cert,
    privateKeyFile: spec.key,
    clientCertificateManager: certificateManager,
    endpointMustExist: false,
    connectionStrategy: { maxRetry: 0 },
  });
  await client.connect(spec.endpoint);
  const session = await client.createSession({
    type: opcua.UserTokenType.UserName, userName: spec.user, password: spec.password,
  });
  const nsArray = await session.readNamespaceArray();
  const ns = (uri) => nsArray.indexOf(uri);
  const rNs = ns(spec.resultNs), vNs = ns(spec.visionNs), own = ns(spec.stationNs);
  const browsePath = async (start, names) => {
    const result = await session.translateBrowsePath(
      opcua.makeBrowsePath(start, names.map((n) => "/" + n).join("")));
    return result.targets[0].targetId;
  };
  const rm = await browsePath("ObjectsFolder", [`${vNs}:VisionSystem`, `${rNs}:ResultManagement`]);
  const children = (await session.browse(rm)).references.map((r) => r.browseName.name);
  const fields = ["ResultId", "Evaluation", "Seq"].map((n) => `${rNs}:${n}`);
  const subscription = await session.createSubscription2({
    requestedPublishingInterval: 20, publishingEnabled: true,
    requestedLifetimeCount: 1000, requestedMaxKeepAliveCount: 10,
  });
  const events = [];
  const item = await subscription.monitor(
    { nodeId: rm, attributeId: opcua.AttributeIds.EventNotifier },
    { queueSize: 1000, filter: opcua.constructEventFilter(fields) },
    opcua.TimestampsToReturn.Neither);
  item.on("changed", (values) => events.push(values.map((v) => v.value)));
  fs.writeFileSync(path.join(spec.work, "subscribed"), "1");
  const deadline = Date.now() + spec.timeoutMs;
  while (events.length < spec.expect && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const cam = [`${vNs}:VisionSystem`, `${own}:Handshake`, `${own}:${spec.camera}`];
  const read = async (name) =>
    (await session.read({ nodeId: await browsePath("ObjectsFolder", [...cam, `${own}:${name}`]) })).value.value;
  const handshake = {
    counter: await read("ResultCounter"), last: await read("LastEvaluation"),
    partId: await read("PartId"), resultId: await read("ResultId"),
  };
  const confirm = await session.call({
    objectId: rm, methodId: await browsePath(rm, [`${own}:Confirm`]),
    inputArguments: [spec.confirm, "", "OK", "node-client"].map(
      (value) => ({ dataType: opcua.DataType.String, value })),
  });
  const bad = await session.call({
    objectId: rm, methodId: await browsePath(rm, [`${own}:Confirm`]),
    inputArguments: [spec.confirm, "", "MAYBE", "node-client"].map(
      (value) => ({ dataType: opcua.DataType.String, value })),
  });
  fs.writeFileSync(path.join(spec.work, "seen.json"), JSON.stringify({
    children, events, handshake,
    confirm: { status: confirm.statusCode.name, out: confirm.outputArguments.map((a) => a.value) },
    bad: bad.statusCode.name,
  }));
  await subscription.terminate();
  await session.close();
  await client.disconnect();
}

main().catch((err) => { console.error(String(err && err.stack || err)); process.exit(1); });
