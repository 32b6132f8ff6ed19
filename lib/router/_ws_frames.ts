/**
 * WebSocket frames (RFC 6455) for the relay: an encoder for client-to-server
 * (masked) frames and an incremental decoder that reassembles fragments.
 * @module
 */

/** Concatenates byte chunks. */
export function concat(chunks: Uint8Array[]): Uint8Array<ArrayBuffer> {
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** Encodes one client-to-server frame (masked, FIN set). */
export function encodeFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const n = payload.length;
  const extra = n < 126 ? 0 : n < 65536 ? 2 : 8;
  const out = new Uint8Array(2 + extra + 4 + n);
  out[0] = 0x80 | opcode;
  let off = 2;
  if (extra === 0) out[1] = 0x80 | n;
  else if (extra === 2) {
    out[1] = 0x80 | 126;
    out[2] = n >> 8;
    out[3] = n & 255;
    off = 4;
  } else {
    out[1] = 0x80 | 127;
    new DataView(out.buffer).setBigUint64(2, BigInt(n));
    off = 10;
  }
  const mask = crypto.getRandomValues(new Uint8Array(4));
  out.set(mask, off);
  off += 4;
  for (let i = 0; i < n; i++) out[off + i] = payload[i]! ^ mask[i & 3]!;
  return out;
}

/** Incremental decoder of WebSocket frames, reassembling fragments. */
export class FrameParser {
  #buf: Uint8Array = new Uint8Array(0);
  #fragOpcode = 0;
  #frags: Uint8Array[] = [];
  #onMessage: (opcode: number, payload: Uint8Array) => void;

  constructor(onMessage: (opcode: number, payload: Uint8Array) => void) {
    this.#onMessage = onMessage;
  }

  push(chunk: Uint8Array): void {
    if (this.#buf.length === 0) this.#buf = chunk;
    else {
      const b = new Uint8Array(this.#buf.length + chunk.length);
      b.set(this.#buf);
      b.set(chunk, this.#buf.length);
      this.#buf = b;
    }
    for (;;) {
      const b = this.#buf;
      if (b.length < 2) return;
      const fin = (b[0]! & 0x80) !== 0;
      const opcode = b[0]! & 0x0f;
      const masked = (b[1]! & 0x80) !== 0;
      let len = b[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = (b[2]! << 8) | b[3]!;
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(
          new DataView(b.buffer, b.byteOffset + 2, 8).getBigUint64(0),
        );
        off = 10;
      }
      const maskOff = off;
      if (masked) off += 4;
      if (b.length < off + len) return;
      let payload = b.slice(off, off + len);
      if (masked) {
        for (let i = 0; i < len; i++) payload[i]! ^= b[maskOff + (i & 3)]!;
      }
      this.#buf = b.subarray(off + len);
      if (opcode >= 8) {
        this.#onMessage(opcode, payload);
        continue;
      }
      if (opcode !== 0) this.#fragOpcode = opcode;
      if (!fin) {
        this.#frags.push(payload);
        continue;
      }
      if (this.#frags.length > 0) {
        this.#frags.push(payload);
        payload = concat(this.#frags);
        this.#frags = [];
      }
      this.#onMessage(this.#fragOpcode, payload);
    }
  }
}
