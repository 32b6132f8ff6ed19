/**
 * The router's route table and the registration messages the scale and NATS
 * probes of `bench/router.ts` feed it.
 * @module
 */
export { Registry } from "../lib/router/mod.ts";

/** One route-emitter style message for endpoint `i`. */
export function registration(i: number): string {
  const id = crypto.randomUUID();
  return JSON.stringify({
    host: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    tls_port: 61001,
    uris: [`app${i}.bench.test`],
    app: crypto.randomUUID(),
    private_instance_id: id,
    private_instance_index: "0",
    server_cert_domain_san: id,
    tags: { component: "route-emitter" },
  });
}
