import { generateKeyPairSync } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import * as zmq from "zeromq";
import { z85Encode } from "../src/security/index.js";

// No ZAP handler ever runs in this file (each test file is its own process): plain CURVE only.

const open: Array<zmq.Router | zmq.Dealer> = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

function nodeCurveKeyPair(): { publicKey: string; secretKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  const jwkPriv = privateKey.export({ format: "jwk" });
  const jwkPub = publicKey.export({ format: "jwk" });
  return {
    publicKey: z85Encode(Buffer.from(jwkPub.x!, "base64url")),
    secretKey: z85Encode(Buffer.from(jwkPriv.d!, "base64url")),
  };
}

async function recvWithin(sock: zmq.Router, ms: number): Promise<Buffer[] | undefined> {
  sock.receiveTimeout = ms;
  try {
    return await sock.receive();
  } catch (err) {
    if ((err as { code?: string }).code === "EAGAIN") return undefined;
    throw err;
  }
}

async function serverAndClient(serverKey: string, serverSecret: string) {
  const server = new zmq.Router({ linger: 0, curveServer: true, curveSecretKey: serverSecret });
  open.push(server);
  await server.bind("tcp://127.0.0.1:*");
  const client = nodeCurveKeyPair();
  const dealer = new zmq.Dealer({
    linger: 0,
    curveServerKey: serverKey,
    curvePublicKey: client.publicKey,
    curveSecretKey: client.secretKey,
  });
  open.push(dealer);
  dealer.connect(server.lastEndpoint!);
  return { server, dealer };
}

describe("node:crypto X25519 keys as CurveZMQ keys", () => {
  it("a node:crypto key pair, Z85-encoded, works for a real CURVE Router server and Dealer client", async () => {
    const srv = nodeCurveKeyPair();
    const { server, dealer } = await serverAndClient(srv.publicKey, srv.secretKey);
    expect(server.securityMechanism).toBe("curve");
    await dealer.send("hello over curve");
    const frames = await recvWithin(server, 5000);
    expect(frames?.[1]?.toString()).toBe("hello over curve");
  });

  it("with the wrong server key no message goes through and the handshake fails", async () => {
    const srv = nodeCurveKeyPair();
    const wrong = nodeCurveKeyPair();
    const { server, dealer } = await serverAndClient(wrong.publicKey, srv.secretKey);
    const failures: string[] = [];
    server.events.on("handshake:error:protocol", () => failures.push("protocol"));
    server.events.on("handshake:error:other", () => failures.push("other"));
    server.events.on("handshake:error:auth", () => failures.push("auth"));
    void dealer.send("must not arrive").catch(() => {});
    expect(await recvWithin(server, 800)).toBeUndefined();
    const deadline = Date.now() + 5000;
    while (failures.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(failures.length).toBeGreaterThan(0);
  });

  it("documents the trap: with NO ZAP handler, libzmq admits any client key (why requireZap exists)", async () => {
    const srv = nodeCurveKeyPair();
    const { server, dealer } = await serverAndClient(srv.publicKey, srv.secretKey);
    await dealer.send("anyone gets in");
    expect((await recvWithin(server, 5000))?.[1]?.toString()).toBe("anyone gets in");
  });
});
