/**
 * A stand-in for systemd's notification socket: a real unix datagram socket
 * (what `$NOTIFY_SOCKET` names) that collects what a `Type=notify` service
 * sends (sd_notify(3)).
 * @module
 */

/** One received datagram. */
export interface Notification {
  text: string;
  /** `performance.now()` when it arrived. */
  at: number;
}

/** Listens on `<temp dir>/notify.sock`; pass `path` as `NOTIFY_SOCKET`. */
export class NotifySocket {
  readonly path: string;
  readonly received: Notification[] = [];
  #conn: Deno.DatagramConn;
  #dir: string;
  #waiters: Array<{ pred: (t: string) => boolean; resolve: () => void }> = [];
  #loop: Promise<void>;

  private constructor(dir: string) {
    this.#dir = dir;
    this.path = `${dir}/notify.sock`;
    this.#conn = Deno.listenDatagram({
      transport: "unixpacket",
      path: this.path,
    });
    this.#loop = this.#receive();
  }

  /** Binds a new socket in a fresh temporary directory. */
  static async open(): Promise<NotifySocket> {
    return new NotifySocket(await Deno.makeTempDir({ prefix: "notify-" }));
  }

  async #receive(): Promise<void> {
    try {
      for await (const [data] of this.#conn) {
        const text = new TextDecoder().decode(data);
        this.received.push({ text, at: performance.now() });
        this.#waiters = this.#waiters.filter((w) => {
          if (!w.pred(text)) return true;
          w.resolve();
          return false;
        });
      }
    } catch {
      // closed
    }
  }

  /** Resolves with the first (past or future) datagram with this line. */
  async waitFor(line: string, timeoutMs = 30_000): Promise<Notification> {
    const has = (t: string) => t.split("\n").includes(line);
    const found = () => this.received.find((n) => has(n.text));
    if (!found()) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        new Promise<void>((resolve) =>
          this.#waiters.push({ pred: has, resolve })
        ),
        new Promise<void>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new Error(
                  `No "${line}" on NOTIFY_SOCKET; got ${
                    JSON.stringify(this.received.map((n) => n.text))
                  }`,
                ),
              ),
            timeoutMs,
          );
        }),
      ]).finally(() => clearTimeout(timer));
    }
    return found()!;
  }

  /** Closes the socket and removes its directory. */
  async close(): Promise<void> {
    this.#conn.close();
    await this.#loop;
    await Deno.remove(this.#dir, { recursive: true });
  }
}
