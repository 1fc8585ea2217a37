/**
 * HTTP/2 test helpers: a self-signed certificate made by openssl for the run, and a raw
 * WebSocket-over-HTTP/2 client on `node:http2` (extended CONNECT by hand, frames by hand), so a
 * test sees exactly what went over the stream: status, END_STREAM, RST_STREAM, GOAWAY.
 */

import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2'
import { selfSignedCertificate } from '../../examples/demo/certificate.js'
import { clientFrame } from '../server/helpers.js'

/** A key and self-signed certificate for 127.0.0.1 and localhost: the demo's own (`npm start -- --tls`), as PEM strings. */
export async function makeCertificate (): Promise<{ key: string, cert: string }> {
  const { key, cert } = await selfSignedCertificate()
  return { key: key.toString(), cert: cert.toString() }
}

/** An HTTP/2 session to `origin` that trusts nothing but works with a self-signed certificate; resolves once the server's SETTINGS came. */
export async function openSession (origin: string): Promise<ClientHttp2Session> {
  const session = http2.connect(origin, { rejectUnauthorized: false })
  session.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    session.once('remoteSettings', () => resolve())
    session.once('error', reject)
  })
  return session
}

/** A server frame as read off the stream. */
export interface H2Frame { fin: boolean, opcode: number, payload: Buffer }

/** A WebSocket on one HTTP/2 stream, with frames written and read by hand. */
export class H2Socket {
  readonly stream: ClientHttp2Stream
  readonly response: IncomingHttpHeaders
  private buffer = Buffer.alloc(0)
  private readonly frames: H2Frame[] = []
  private waiter: (() => void) | undefined
  /** The server ended its side (END_STREAM). */
  ended = false
  /** The stream closed; `rstCode` then says how (0: no RST_STREAM with an error). */
  closed = false

  private constructor (stream: ClientHttp2Stream, response: IncomingHttpHeaders) {
    this.stream = stream
    this.response = response
    stream.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk])
      this.parse()
      this.wake()
    })
    stream.on('end', () => { this.ended = true; this.wake() })
    stream.on('close', () => { this.closed = true; this.wake() })
    stream.on('error', () => {})
  }

  /** Send an extended CONNECT on `session` for `path` with `headers`; resolves with the socket once the response HEADERS came (any status). */
  static open (session: ClientHttp2Session, path = '/', headers: Record<string, string> = {}): Promise<H2Socket> {
    const authority = new URL(String((session as unknown as { originSet?: string[] }).originSet?.[0] ?? 'https://127.0.0.1')).host
    const stream = session.request({
      ':method': 'CONNECT',
      ':protocol': 'websocket',
      ':scheme': 'https',
      ':path': path,
      ':authority': authority,
      'sec-websocket-version': '13',
      ...headers
    })
    return new Promise((resolve, reject) => {
      stream.once('response', (response) => resolve(new H2Socket(stream, response)))
      stream.once('error', reject)
      stream.once('close', () => reject(new Error(`stream closed before a response (RST code ${stream.rstCode})`)))
    })
  }

  get status (): number {
    return Number(this.response[':status'])
  }

  /** Write a masked client frame. */
  send (opcode: number, payload: Uint8Array | string, options: { fin?: boolean } = {}): void {
    this.stream.write(clientFrame(opcode, payload, options))
  }

  sendText (text: string): void { this.send(0x1, text) }

  /** The next frame from the server, within `ms`. */
  async next (ms = 5000): Promise<H2Frame> {
    const deadline = Date.now() + ms
    while (this.frames.length === 0) {
      if (this.ended || this.closed) throw new Error('the stream ended before a frame came')
      const left = deadline - Date.now()
      if (left <= 0) throw new Error('no frame within ' + String(ms) + ' ms')
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.waiter = () => { clearTimeout(t); resolve() }
      })
    }
    return this.frames.shift()!
  }

  /** Wait until the stream has closed, within `ms`. */
  async whenClosed (ms = 5000): Promise<void> {
    const deadline = Date.now() + ms
    while (!this.closed) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error('the stream did not close within ' + String(ms) + ' ms')
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.waiter = () => { clearTimeout(t); resolve() }
      })
    }
  }

  /** The body of a refusal (a response other than 200), read to its end. */
  async body (ms = 5000): Promise<string> {
    await this.whenClosed(ms)
    return this.buffer.toString('utf8')
  }

  private wake (): void {
    const w = this.waiter
    this.waiter = undefined
    w?.()
  }

  private parse (): void {
    if (this.status !== 200) return
    for (;;) {
      const b = this.buffer
      if (b.length < 2) return
      let len = b[1] & 0x7f
      let at = 2
      if (len === 126) {
        if (b.length < 4) return
        len = b.readUInt16BE(2)
        at = 4
      } else if (len === 127) {
        if (b.length < 10) return
        len = Number(b.readBigUInt64BE(2))
        at = 10
      }
      if (b.length < at + len) return
      this.frames.push({ fin: (b[0] & 0x80) !== 0, opcode: b[0] & 0x0f, payload: b.subarray(at, at + len) })
      this.buffer = b.subarray(at + len)
    }
  }
}

/** A close frame's code. */
export function closeCodeOf (frame: H2Frame): number {
  return frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005
}
