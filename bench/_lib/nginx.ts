/**
 * nginx as the router benchmark's peer: `worker_processes 1`, proxying to the
 * bench backend over TLS with the same integrity check the router makes
 * (`proxy_ssl_verify on`, `proxy_ssl_name <instance id>`, a client
 * certificate) and upstream keepalive.
 * @module
 */
import type { BenchPki } from "./pki.ts";
import { accepts, until } from "./proc.ts";
import type { Proc, ProcGroup } from "./proc.ts";
import { httpStatus, INSTANCE_ID, ROUTE_HOST } from "./router.ts";

/** Options of {@linkcode startNginx}. */
export interface NginxOptions {
  /** Its prefix: config, logs, temp paths. */
  dir: string;
  port: number;
  backendPort: number;
  creds: BenchPki;
}

/** Starts nginx and checks that it routes (200 for the route's host). */
export async function startNginx(
  procs: ProcGroup,
  o: NginxOptions,
): Promise<Proc> {
  const { dir } = o;
  await Deno.mkdir(dir, { recursive: true });
  const conf = `
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream backend {
    server 127.0.0.1:${o.backendPort};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${o.port};
    location / {
      proxy_pass https://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_ssl_verify on;
      proxy_ssl_verify_depth 3;
      proxy_ssl_trusted_certificate ${o.creds.caFile};
      proxy_ssl_name ${INSTANCE_ID};
      proxy_ssl_server_name on;
      proxy_ssl_certificate ${o.creds.clientCertFile};
      proxy_ssl_certificate_key ${o.creds.clientKeyFile};
      proxy_ssl_session_reuse on;
    }
  }
}
`;
  await Deno.writeTextFile(`${dir}/nginx.conf`, conf);
  const p = procs.spawn("nginx", "nginx", [
    "-p",
    dir,
    "-e",
    `${dir}/error.log`,
    "-c",
    `${dir}/nginx.conf`,
  ]);
  await until("nginx", () => accepts(o.port), 10_000, p);
  const status = await httpStatus(o.port, ROUTE_HOST);
  if (status !== 200) {
    const log = await Deno.readTextFile(`${dir}/error.log`).catch(() => "");
    throw new Error(`nginx answered ${status}: ${log.slice(-500)}`);
  }
  return p;
}
