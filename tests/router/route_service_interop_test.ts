/**
 * Route-service signatures against the REAL gorouter (`../shared/peers/
 * gorouter.gz`, routing-release April 2023), so that a fleet can mix sigil
 * routers and gorouters on one `route_services_secret`:
 *
 * - gorouter forwards a request for a route with `route_service_url` to an
 *   HTTPS route service it trusts through `ca_certs`; sigil's validator
 *   accepts the `X-CF-Proxy-Signature` / `X-CF-Proxy-Metadata` it sent.
 * - A signature built by sigil, sent to gorouter on the return leg, is
 *   accepted: gorouter forwards to the app (headers stripped) instead of the
 *   route service; one built with the decrypt-only previous secret too; a
 *   foreign one gets gorouter's 502, an expired one its 504.
 *
 * - A mixed fleet on one NATS: a request that entered through gorouter comes
 *   back from the route service through sigil router (and the other way
 *   round) and reaches the app.
 *
 * Followed: gorouter `handlers/routeservice.go`, `proxy/route_service_test.go`.
 */
import assert from "node:assert/strict";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  HEADER_FORWARDED_URL,
  HEADER_METADATA,
  HEADER_SIGNATURE,
  RouteServiceSigner,
} from "../../lib/router/_route_service.ts";
import { startNatsServer } from "../_helpers/nats.ts";
import { freePort } from "../_helpers/ports.ts";
import { hostRequest } from "../_helpers/http.ts";
import type { SimpleResponse } from "../_helpers/http.ts";
import { startBackend, startTestRouter, testPki } from "./_helpers.ts";
import { startRouteService } from "./_route_service.ts";
import { startGorouter } from "./_gorouter.ts";

const SECRET = "kCvXxNMB0JO2vinxoru9Hg==";
const PREVIOUS = "the-secret-before";
const HOST = "rs-app.example.com";

interface Captured {
  url: string;
  headers: http.IncomingHttpHeaders;
}

/** A server that records what it got and answers 200 with `name`. */
function listen(
  server: http.Server,
  name: string,
  seen: Captured[],
): Promise<number> {
  server.on("request", (req, res) => {
    seen.push({ url: req.url ?? "", headers: req.headers });
    req.resume();
    req.on("end", () => res.end(name));
  });
  return new Promise((resolve) =>
    server.listen(
      0,
      "127.0.0.1",
      () => resolve((server.address() as AddressInfo).port),
    )
  );
}

/**
 * Publishes a route-emitter-shaped registration of the app at `appPort`
 * behind `routeServiceUrl`, then sends `path` to the router on `port` until
 * it knows the route (gorouter subscribes a moment after it starts serving).
 */
async function registerAndProbe(
  nc: NatsConnection,
  appPort: number,
  routeServiceUrl: string,
  port: number,
  path: string,
): Promise<SimpleResponse> {
  nc.publish(
    "router.register",
    JSON.stringify({
      host: "127.0.0.1",
      port: appPort,
      uris: [HOST],
      route_service_url: routeServiceUrl,
      private_instance_id: `app-on-${appPort}`,
    }),
  );
  await nc.flush();
  for (let i = 0;; i++) {
    const res = await hostRequest(port, HOST, path);
    if (res.status !== 404 || i >= 200) return res;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** gorouter's route-service settings for these tests. */
const GOROUTER_RS = {
  route_services_secret: SECRET,
  route_services_secret_decrypt_only: PREVIOUS,
  route_services_timeout: "60s",
  route_services_recommend_https: false,
  // The route service's certificate is trusted through ca_certs (no
  // skip_ssl_validation).
};

Deno.test("route services interoperate with the real gorouter: each validates the other's signatures", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sigil-rs-interop-" });
  await using nats = await startNatsServer();
  const pki = await testPki();
  const rsCred = await pki.issueClient({
    commonName: "route-service",
    ips: ["127.0.0.1"],
  });
  const rsSeen: Captured[] = [];
  const appSeen: Captured[] = [];
  const rs = https.createServer({ cert: rsCred.certPem, key: rsCred.keyPem });
  const app = http.createServer();
  const rsPort = await listen(rs, "route-service", rsSeen);
  const appPort = await listen(app, "app", appSeen);
  const port = freePort();
  const nc = await connect({ servers: nats.url });
  try {
    await using gorouter = await startGorouter(
      dir,
      port,
      nats.port,
      GOROUTER_RS,
    );
    // gorouter → route service: wait for the route, then check its headers.
    const first = await registerAndProbe(
      nc,
      appPort,
      `https://127.0.0.1:${rsPort}/filter?x=1`,
      port,
      "/orders?id=7&b=%2F",
    );
    assert.equal(first.status, 200, gorouter.output().slice(-3000));
    assert.equal(first.body, "route-service");
    const sent = rsSeen.at(-1)!;
    assert.equal(sent.url, "/filter?x=1");
    assert.equal(
      sent.headers["x-cf-forwarded-url"],
      `http://${HOST}/orders?id=7&b=%2F`,
    );
    const sig = String(sent.headers["x-cf-proxy-signature"]);
    const meta = String(sent.headers["x-cf-proxy-metadata"]);
    const contents = new RouteServiceSigner(SECRET).verify(
      sig,
      meta,
      Date.now(),
    );
    assert.equal(contents.forwardedUrl, `http://${HOST}/orders?id=7&b=%2F`);
    assert.ok(Math.abs(Date.now() - contents.requestedAt) < 60_000);
    // Signed with the current secret, not the decrypt-only one.
    assert.throws(() =>
      new RouteServiceSigner(PREVIOUS).verify(sig, meta, Date.now())
    );

    // The route service's return leg, signed by sigil: gorouter sends it to
    // the app and strips the three headers.
    const back = async (signer: RouteServiceSigner, at: number) => {
      const forwarded = `http://${HOST}/orders?id=8`;
      const h = signer.sign(forwarded, at);
      return await hostRequest(port, HOST, "/orders?id=8", {
        headers: {
          [HEADER_SIGNATURE]: h.signature,
          [HEADER_METADATA]: h.metadata,
          [HEADER_FORWARDED_URL]: forwarded,
        },
      });
    };
    const appBefore = appSeen.length;
    const ok = await back(new RouteServiceSigner(SECRET), Date.now());
    assert.equal(ok.status, 200, ok.body);
    assert.equal(ok.body, "app");
    assert.equal(appSeen.length, appBefore + 1);
    const atApp = appSeen.at(-1)!;
    assert.equal(atApp.url, "/orders?id=8");
    assert.equal(atApp.headers["x-cf-proxy-signature"], undefined);
    assert.equal(atApp.headers["x-cf-proxy-metadata"], undefined);
    assert.equal(atApp.headers["x-cf-forwarded-url"], undefined);

    // Rotation: sigil signing with the previous secret is still accepted.
    const prev = await back(new RouteServiceSigner(PREVIOUS), Date.now());
    assert.equal(prev.body, "app");

    // A foreign secret: gorouter's 502; an old signature: its 504.
    const foreign = await back(new RouteServiceSigner("other"), Date.now());
    assert.equal(foreign.status, 502);
    assert.match(foreign.body, /Failed to validate Route Service Signature/);
    const expired = await back(
      new RouteServiceSigner(SECRET),
      Date.now() - 120_000,
    );
    assert.equal(expired.status, 504);
    assert.match(
      expired.body,
      /Failed to validate Route Service Signature: route service request expired/,
    );
    assert.equal(appSeen.length, appBefore + 2);
  } finally {
    await nc.close();
    rs.closeAllConnections();
    app.closeAllConnections();
    await new Promise((r) => rs.close(r));
    await new Promise((r) => app.close(r));
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a mixed fleet: gorouter and sigil router on one NATS and one secret pass route-service traffic to each other", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sigil-rs-fleet-" });
  await using nats = await startNatsServer();
  const pki = await testPki();
  await Deno.writeTextFile(`${dir}/rs-ca.pem`, pki.rootPem);
  const sigil = await startTestRouter({
    nats: { servers: [nats.url] },
    route_services_secret: SECRET,
    route_services_recommend_https: false,
    route_services: { ca: `${dir}/rs-ca.pem` },
  });
  const goPort = freePort();
  let backTo = sigil.router.port;
  const rs = await startRouteService(() => backTo);
  const app = await startBackend({ name: "app" });
  const nc = await connect({ servers: nats.url });
  try {
    await using gorouter = await startGorouter(
      dir,
      goPort,
      nats.port,
      GOROUTER_RS,
    );
    // One registration, as route-emitter sends it, reaches both routers.
    // Client → gorouter (signs) → route service → sigil (validates) → app.
    let res = await registerAndProbe(
      nc,
      app.port,
      rs.url,
      goPort,
      "/in-go?n=1",
    );
    assert.equal(
      res.status,
      200,
      `${res.body}\n${gorouter.output().slice(-2000)}`,
    );
    assert.equal(res.headers["x-route-service"], "filtered");
    let echoed = JSON.parse(res.body);
    assert.equal(echoed.backend, "app");
    assert.equal(echoed.url, "/in-go?n=1");
    assert.equal(echoed.headers["x-cf-proxy-signature"], undefined);
    assert.ok(
      sigil.access.some((a) => a.path === "/in-go?n=1" && a.status === 200),
      "the return leg went through sigil",
    );

    // Client → sigil (signs) → route service → gorouter (validates) → app.
    backTo = goPort;
    res = await hostRequest(sigil.router.port, HOST, "/in-sigil?n=2");
    assert.equal(res.status, 200, res.body);
    assert.equal(res.headers["x-route-service"], "filtered");
    echoed = JSON.parse(res.body);
    assert.equal(echoed.backend, "app");
    assert.equal(echoed.url, "/in-sigil?n=2");
    assert.equal(echoed.headers["x-cf-proxy-signature"], undefined);
    assert.equal(
      rs.seen.at(-1)!.headers["x-cf-forwarded-url"],
      `http://${HOST}/in-sigil?n=2`,
    );
    assert.equal(app.seen.length, 2);
  } finally {
    await nc.close();
    await rs.close();
    await app.close();
    await sigil.close();
    await Deno.remove(dir, { recursive: true });
  }
});
