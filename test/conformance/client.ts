// A deliberately "loose" WebSocket client over a raw node:net socket that
// behaves like Autobahn|Testsuite's fuzzing client (autobahn 0.10.9 protocol
// with failByDrop=false): it can send any frame, valid or not, with chopped or
// delayed writes, and it keeps exactly the close-handshake bookkeeping that
// Autobahn's verdicts are computed from (closedByMe, failedByMe, droppedByMe,
// wasClean, remoteCloseCode).

import { createHash, randomBytes } from 'node:crypto'
import { constants as h2constants, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2'
import net from 'node:net'
import {
  OP,
  Utf8Validator,
  applyMask,
  closePayload,
  concat,
  encodeFrame,
  frameHeader,
  randomMask,
  repeatTo,
  utf8,
} from './wire.js'
import { ClientDeflate, type DeflateAgreement, type Offer, offerHeader, readAnswer } from './deflate.js'

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11' // RFC 6455 §1.3

/** Close codes a peer may put on the wire, as Autobahn 0.10.9 accepts them (RFC 6455 §7.4.1). */
const ALLOWED_CLOSE_CODES = new Set([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011])
export function isValidCloseCode(code: number): boolean {
  if (code < 1000 || code >= 5000) return false
  if (code <= 2999) return ALLOWED_CLOSE_CODES.has(code)
  return true // 3000-4999: registered / private use
}

/**
 * Autobahn's fragment loop (autobahn 0.10.9, `sendMessageHybi`), as [start, end, fin] ranges of
 * an `n`-octet payload: one frame when there is no fragment size or the payload fits in one;
 * otherwise fragments of `pfs` octets, and when `n` is a multiple of `pfs` the last full fragment
 * goes without FIN and an empty FIN continuation follows (9.3.1: 65,536 + 1 frames).
 */
export function autobahnFragments(n: number, pfs: number | undefined): Array<[number, number, boolean]> {
  if (pfs === undefined || n <= pfs) return [[0, n, true]]
  const out: Array<[number, number, boolean]> = []
  for (let i = 0; ; i += pfs) {
    const done = i + pfs > n
    out.push([i, done ? n : i + pfs, done])
    if (done) return out
  }
}

export type State = 'CONNECTING' | 'OPEN' | 'CLOSING' | 'CLOSED'

export interface ClientTimeouts {
  /** Autobahn default 5 s. */
  openHandshake: number
  /** We started the close: the peer must answer within this (Autobahn default 1 s). */
  closeHandshake: number
  /** After the close handshake the server must drop TCP within this (Autobahn default 1 s, RFC 6455 §7.1.1). */
  serverConnectionDrop: number
}

export const DEFAULT_TIMEOUTS: ClientTimeouts = { openHandshake: 5000, closeHandshake: 1000, serverConnectionDrop: 1000 }

export interface ClientHooks {
  onOpen(): void
  onMessage(payload: Uint8Array, binary: boolean): void
  onPong(payload: Uint8Array): void
  onLost(): void
}

interface RxFrame {
  opcode: number
  fin: boolean
  rsv: number
  length: number
  mask: Uint8Array | null
  got: number
}

const TRACE_MAX = 60

export class FuzzClient {
  state: State = 'CONNECTING'
  connectionWasOpen = false
  closedByMe = false
  failedByMe = false
  droppedByMe = false
  wasClean = false
  wasNotCleanReason: string | null = null
  wasServerConnectionDropTimeout = false
  wasCloseHandshakeTimeout = false
  wasOpenHandshakeTimeout = false
  localCloseCode: number | null = null
  remoteCloseCode: number | null = null
  remoteCloseReason: string | null = null
  handshakeError: string | null = null
  agent = ''
  /** Frames we sent, by opcode (Autobahn's txFrameStats; case 10.1.1 judges on it). */
  readonly txFrameStats: Record<number, number> = {}
  readonly rxFrameStats: Record<number, number> = {}
  /** Short bounded wire log for the report. */
  readonly trace: string[] = []
  /** Fragment size for sendMessage() when none is given (Autobahn autoFragmentSize; 0 = off). */
  autoFragmentSize = 0
  /** permessage-deflate offers to make in the handshake (sections 12 and 13); none by default. */
  deflateOffers: Offer[] = []
  /** What the server agreed to, if it accepted an offer. */
  deflate: DeflateAgreement | null = null
  private codec: ClientDeflate | null = null
  /** Compressed messages go through zlib in order: received ones, and sent ones. */
  private rxChain: Promise<void> = Promise.resolve()
  private txChain: Promise<void> = Promise.resolve()
  private msgCompressed = false

  /** A TCP socket, or (with `connectH2`) the HTTP/2 stream the WebSocket runs on. */
  private sock!: net.Socket | ClientHttp2Stream
  private h2 = false
  private readonly t0 = Date.now()
  private readonly timers = new Set<NodeJS.Timeout>()
  private closeHandshakeTimer: NodeJS.Timeout | null = null
  private serverDropTimer: NodeJS.Timeout | null = null
  private handshakeKey = ''
  private hsBuf: Buffer = Buffer.alloc(0)
  private rxBuf: Uint8Array = new Uint8Array(0)
  private cur: RxFrame | null = null
  private insideMessage = false
  private msgBinary = false
  private msgChunks: Uint8Array[] = []
  private ctrlChunks: Uint8Array[] = []
  private validateUtf8 = false
  private readonly utf8v = new Utf8Validator()
  private readonly sendQueue: Uint8Array[] = []
  private pumping = false
  // streaming send state (beginMessage / beginMessageFrame / sendMessageFrameData)
  private sendOpcode = OP.TEXT as number
  private sendState: 'GROUND' | 'BEGIN' | 'INSIDE' | 'INSIDE_FRAME' = 'GROUND'
  private streamMask: Uint8Array | null = null
  private streamLeft = 0
  private streamPos = 0

  constructor(
    private readonly hooks: ClientHooks,
    private readonly timeouts: ClientTimeouts = DEFAULT_TIMEOUTS,
  ) {}

  connect(port: number, path: string): void {
    const sock = net.connect({ host: '127.0.0.1', port })
    this.sock = sock
    sock.setNoDelay(true) // like Autobahn's tcpNoDelay: chopped writes stay separate segments
    this.later(this.timeouts.openHandshake, () => {
      if (this.state === 'CONNECTING') {
        this.wasClean = false
        this.wasNotCleanReason = 'peer did not finish (in time) the opening handshake'
        this.wasOpenHandshakeTimeout = true
        this.handshakeError = this.wasNotCleanReason
        this.dropConnection(true)
      }
    })
    sock.on('connect', () => this.startHandshake(port, path))
    sock.on('data', (d: Buffer) => this.onData(d))
    // Twisted treats EOF as connection lost; do the same so "server dropped TCP" is seen at once.
    sock.on('end', () => sock.destroy())
    sock.on('error', (e: Error) => {
      this.note(`socket error: ${e.message}`)
      if (!this.connectionWasOpen && this.handshakeError === null) this.handshakeError = e.message
    })
    sock.on('close', () => this.connectionLost())
  }

  /**
   * The same client over HTTP/2 (RFC 8441): an extended CONNECT on `session`, the stream as the
   * socket. The server's END_STREAM is its "drop TCP": we end our side too, and the stream's
   * close is the connection lost; an abort is RST_STREAM CANCEL.
   */
  connectH2(session: ClientHttp2Session, authority: string, path: string): void {
    this.h2 = true
    const headers: Record<string, string> = {
      ':method': 'CONNECT',
      ':protocol': 'websocket',
      ':scheme': 'https',
      ':path': path,
      ':authority': authority,
      'user-agent': 'wspipe-conformance',
      'sec-websocket-version': '13',
    }
    if (this.deflateOffers.length > 0) headers['sec-websocket-extensions'] = offerHeader(this.deflateOffers)
    const stream = session.request(headers)
    this.sock = stream
    this.later(this.timeouts.openHandshake, () => {
      if (this.state === 'CONNECTING') {
        this.wasClean = false
        this.wasNotCleanReason = 'peer did not finish (in time) the opening handshake'
        this.wasOpenHandshakeTimeout = true
        this.handshakeError = this.wasNotCleanReason
        this.dropConnection(true)
      }
    })
    stream.on('response', (h) => {
      if (this.state !== 'CONNECTING') return
      const err = this.checkH2Handshake(h)
      if (err) {
        this.failHandshake(err)
        return
      }
      this.opened('handshake OK (HTTP/2)')
    })
    stream.on('data', (d: Buffer) => this.onData(d))
    stream.on('end', () => {
      if (!stream.writableEnded) stream.end()
    })
    stream.on('error', (e: Error) => {
      this.note(`stream error: ${e.message}`)
      if (!this.connectionWasOpen && this.handshakeError === null) this.handshakeError = e.message
    })
    stream.on('close', () => this.connectionLost())
  }

  /** The opening handshake succeeded (either transport): the case starts. */
  private opened (what: string): void {
    this.state = 'OPEN'
    this.connectionWasOpen = true
    this.note(what)
    this.hooks.onOpen()
  }

  private checkH2Handshake(h: Record<string, string | string[] | number | undefined>): string | null {
    if (Number(h[':status']) !== 200) return `expected :status 200, got ${String(h[':status'])}`
    const extensions = h['sec-websocket-extensions']
    if (typeof extensions === 'string' && extensions !== '') {
      if (this.deflateOffers.length === 0) return 'server accepted an extension that was not offered'
      const answer = readAnswer(extensions, this.deflateOffers)
      if (typeof answer === 'string') return `invalid permessage-deflate answer: ${answer}`
      this.deflate = answer
      this.codec = new ClientDeflate(answer)
      this.note(`permessage-deflate: ${extensions}`)
    }
    if (h['sec-websocket-protocol']) return 'server chose a subprotocol that was not offered'
    return null
  }

  // ---- timers: every one is cleared when the connection is lost ----

  later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t)
      fn()
    }, ms)
    this.timers.add(t)
  }

  /** Autobahn killAfter: fail the connection (1001) if still not closed. */
  killAfter(seconds: number): void {
    this.later(seconds * 1000, () => {
      if (this.state !== 'CLOSED') {
        this.note(`killAfter(${seconds}) fired`)
        this.failConnection()
      }
    })
  }

  /** Autobahn closeAfter: start a closing handshake without a code if still not closed. */
  closeAfter(seconds: number): void {
    this.later(seconds * 1000, () => {
      if (this.state !== 'CLOSED') {
        this.note(`closeAfter(${seconds}) fired`)
        this.sendCloseFrame(undefined, undefined, false)
      }
    })
  }

  /** Autobahn continueLater: run fn after a delay unless the connection is gone. */
  continueLater(seconds: number, fn: () => void): void {
    this.later(seconds * 1000, () => {
      if (this.state !== 'CLOSED') fn()
    })
  }

  // ---- sending ----

  /**
   * Autobahn sendData: with a chopsize, each chop is written on its own turn of the
   * event loop; sync writes are queued likewise; otherwise written at once (unless
   * something is queued, to keep order).
   */
  sendData(data: Uint8Array, sync = false, chopsize?: number): void {
    if (chopsize !== undefined && chopsize > 0) {
      for (let i = 0; i < data.length; i += chopsize) this.sendQueue.push(data.subarray(i, i + chopsize))
      this.trigger()
    } else if (sync || this.sendQueue.length > 0) {
      this.sendQueue.push(data)
      this.trigger()
    } else {
      this.write(data)
    }
  }

  private trigger(): void {
    if (this.pumping) return
    this.pumping = true
    this.pump()
  }

  private pump(): void {
    const next = this.sendQueue.shift()
    if (next === undefined) {
      this.pumping = false
      return
    }
    if (this.state !== 'CLOSED') this.write(next)
    // Yield to the event loop so this write reaches the kernel before the next one.
    setImmediate(() => this.pump())
  }

  private write(data: Uint8Array): void {
    if (this.sock.destroyed || !this.sock.writable) return
    this.sock.write(data)
  }

  /** Autobahn sendFrame: any frame, valid or not. `payloadLen` repeats `payload` to that length. */
  sendFrame(opts: {
    opcode: number
    payload?: Uint8Array
    fin?: boolean
    rsv?: number
    payloadLen?: number
    chopsize?: number
    sync?: boolean
  }): void {
    let payload = opts.payload ?? new Uint8Array(0)
    if (opts.payloadLen !== undefined) payload = repeatTo(payload, opts.payloadLen)
    this.countTx(opts.opcode)
    this.note(
      `TX frame op=${opts.opcode} fin=${opts.fin ?? true ? 1 : 0} rsv=${opts.rsv ?? 0} len=${payload.length}` +
        (opts.chopsize ? ` chop=${opts.chopsize}` : '') +
        (opts.sync ? ' sync' : ''),
    )
    this.sendData(encodeFrame({ opcode: opts.opcode, payload, fin: opts.fin, rsv: opts.rsv }), opts.sync ?? false, opts.chopsize)
  }

  private countTx(opcode: number): void {
    this.txFrameStats[opcode] = (this.txFrameStats[opcode] ?? 0) + 1
  }

  /**
   * Autobahn sendMessage: the payload framed by {@link autobahnFragments}, so the wire carries
   * Autobahn's exact frames, the trailing empty FIN continuation included (6.2.3/6.2.4/9.3/9.4).
   */
  sendMessage(payload: Uint8Array, binary = false, fragmentSize?: number, sync = false): void {
    if (this.state !== 'OPEN') return
    if (this.codec !== null) {
      this.sendCompressed(this.codec, payload, binary, fragmentSize)
      return
    }
    const frames = this.messageFrames(payload, binary, fragmentSize, 0)
    if (frames.length === 1) {
      this.note(`TX frame op=${binary ? OP.BINARY : OP.TEXT} len=${payload.length}` + (sync ? ' sync' : ''))
      this.sendData(frames[0], sync)
      return
    }
    this.note(`TX message ${binary ? 'binary' : 'text'} len=${payload.length} in ${frames.length} frames`)
    if (sync) for (const f of frames) this.sendData(f, true)
    else this.sendData(concat(frames)) // same octets as one write per frame; fewer syscalls
  }

  /** One message's frames as Autobahn cuts them (`rsv` on the first frame only), counted as sent. */
  private messageFrames(body: Uint8Array, binary: boolean, fragmentSize: number | undefined, rsv: number): Uint8Array[] {
    const pfs = fragmentSize ?? (this.autoFragmentSize > 0 ? this.autoFragmentSize : undefined)
    const frames: Uint8Array[] = []
    for (const [i, j, fin] of autobahnFragments(body.length, pfs)) {
      const op = i === 0 ? (binary ? OP.BINARY : OP.TEXT) : OP.CONT
      this.countTx(op)
      frames.push(encodeFrame({ opcode: op, payload: body.subarray(i, j), fin, rsv: i === 0 ? rsv : 0 }))
    }
    return frames
  }

  /**
   * RFC 7692 §6.1: compress the whole message, then frame the compressed octets as Autobahn does
   * (fragmented by `fragmentSize` or autoFragmentSize), RSV1 on the first frame only. In order, after zlib.
   */
  private sendCompressed(codec: ClientDeflate, payload: Uint8Array, binary: boolean, fragmentSize?: number): void {
    this.txChain = this.txChain.then(async () => {
      const body = await codec.compress(payload)
      if (this.state !== 'OPEN') return
      const frames = this.messageFrames(body, binary, fragmentSize, 4)
      this.note(`TX compressed message ${binary ? 'binary' : 'text'} len=${payload.length} -> ${body.length} in ${frames.length} frames`)
      this.sendData(concat(frames))
    }, (e: unknown) => this.note(`compress failed: ${String(e)}`))
  }

  /** Autobahn beginMessage: start a streamed message (frames follow via beginMessageFrame). */
  beginMessage(binary = false): void {
    if (this.state !== 'OPEN') return
    this.sendOpcode = binary ? OP.BINARY : OP.TEXT
    this.sendState = 'BEGIN'
  }

  /** Autobahn beginMessageFrame: header of a FIN=0 frame of `length` octets; payload follows in chops. */
  beginMessageFrame(length: number): void {
    if (this.state !== 'OPEN') return
    const opcode = this.sendState === 'BEGIN' ? this.sendOpcode : OP.CONT
    this.streamMask = randomMask()
    this.streamLeft = length
    this.streamPos = 0
    this.sendState = 'INSIDE_FRAME'
    this.countTx(opcode)
    this.note(`TX frame header op=${opcode} fin=0 len=${length} (payload streamed)`)
    this.sendData(frameHeader(opcode, length, false, 0, this.streamMask))
  }

  /** Autobahn sendMessageFrameData: next chop of the current frame's payload, masked in phase. */
  sendMessageFrameData(data: Uint8Array, sync = false): void {
    if (this.state !== 'OPEN' || this.sendState !== 'INSIDE_FRAME' || !this.streamMask) return
    const take = data.subarray(0, Math.min(data.length, this.streamLeft))
    this.sendData(applyMask(take, this.streamMask, this.streamPos), sync)
    this.streamPos += take.length
    this.streamLeft -= take.length
    this.note(`TX frame data chop len=${take.length}`)
    if (this.streamLeft <= 0) this.sendState = 'INSIDE'
  }

  /** Autobahn endMessage: an empty FIN continuation frame. */
  endMessage(): void {
    if (this.state !== 'OPEN') return
    this.sendFrame({ opcode: OP.CONT, fin: true })
    this.sendState = 'GROUND'
  }

  /**
   * Autobahn sendCloseFrame: sends whatever code/reason octets it is given (valid or not)
   * and moves to CLOSING. Only in OPEN; ignored when closing/closed.
   */
  sendCloseFrame(code?: number, reason?: Uint8Array, isReply = false): void {
    if (this.state !== 'OPEN') return
    const payload = closePayload(code, reason)
    this.countTx(OP.CLOSE)
    this.note(`TX close code=${code ?? '-'} reasonLen=${reason?.length ?? 0}${isReply ? ' (reply)' : ''}`)
    this.sendData(encodeFrame({ opcode: OP.CLOSE, payload }))
    this.state = 'CLOSING'
    this.closedByMe = !isReply
    this.localCloseCode = code ?? null
    if (this.closedByMe && this.timeouts.closeHandshake > 0) {
      this.closeHandshakeTimer = setTimeout(() => {
        this.closeHandshakeTimer = null
        if (this.state !== 'CLOSED') {
          this.wasClean = false
          this.wasNotCleanReason = 'peer did not respond (in time) in closing handshake'
          this.wasCloseHandshakeTimeout = true
          this.dropConnection(true)
        }
      }, this.timeouts.closeHandshake)
    }
  }

  /** Autobahn failConnection (failByDrop=false): close with a code, or drop if already closing. */
  failConnection(code = 1001, reason = 'Going Away'): void {
    if (this.state === 'CLOSED') return
    this.failedByMe = true
    this.note(`fail connection ${code} (${reason})`)
    if (this.state !== 'CLOSING') {
      this.sendCloseFrame(code, utf8(reason).subarray(0, 123), false)
    } else {
      this.dropConnection(false)
    }
  }

  private protocolViolation(reason: string): void {
    this.failConnection(1002, reason)
  }

  private invalidPayload(reason: string): void {
    this.failConnection(1007, reason)
  }

  dropConnection(abort: boolean): void {
    if (this.state === 'CLOSED') return
    this.note(`drop TCP${abort ? ' (abort)' : ''}`)
    this.droppedByMe = true
    this.state = 'CLOSED'
    if (this.h2) {
      const stream = this.sock as ClientHttp2Stream
      if (abort) stream.close(h2constants.NGHTTP2_CANCEL)
      else stream.end()
    } else if (abort) this.sock.destroy()
    else this.sock.end(() => this.sock.destroy())
  }

  /** Engine safety net: drop now, whatever the state. */
  abort(): void {
    if (this.state !== 'CLOSED') this.dropConnection(true)
    else this.sock.destroy()
  }

  private connectionLost(): void {
    if (this.serverDropTimer) clearTimeout(this.serverDropTimer)
    if (this.closeHandshakeTimer) clearTimeout(this.closeHandshakeTimer)
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    this.codec?.close()
    this.state = 'CLOSED'
    if (!this.connectionWasOpen && this.handshakeError === null) this.handshakeError = 'connection closed before the handshake completed'
    if (!this.wasClean && !this.droppedByMe && this.wasNotCleanReason === null) {
      this.wasNotCleanReason = 'peer dropped the TCP connection without previous WebSocket closing handshake'
    }
    this.note('TCP connection lost')
    this.hooks.onLost()
  }

  /** State read through a call: handlers may have closed us (defeats TS narrowing on purpose). */
  isClosed(): boolean {
    return this.state === 'CLOSED'
  }

  /** Bounded trace of what happened on the wire, for failure reports. */
  note(s: string): void {
    if (this.trace.length < TRACE_MAX) this.trace.push(`+${Date.now() - this.t0}ms ${s}`)
    else if (this.trace.length === TRACE_MAX) this.trace.push('… (trace truncated)')
  }

  // ---- opening handshake (RFC 6455 §4.1) ----

  private startHandshake(port: number, path: string): void {
    this.handshakeKey = randomBytes(16).toString('base64')
    const req =
      `GET ${path} HTTP/1.1\r\n` +
      `User-Agent: wspipe-conformance\r\n` +
      `Host: 127.0.0.1:${port}\r\n` +
      `Upgrade: websocket\r\n` +
      `Connection: Upgrade\r\n` +
      `Pragma: no-cache\r\n` +
      `Cache-Control: no-cache\r\n` +
      `Sec-WebSocket-Key: ${this.handshakeKey}\r\n` +
      (this.deflateOffers.length > 0 ? `Sec-WebSocket-Extensions: ${offerHeader(this.deflateOffers)}\r\n` : '') +
      `Sec-WebSocket-Version: 13\r\n\r\n`
    this.sock.write(req)
  }

  private onData(d: Buffer): void {
    if (this.state === 'CLOSED') return
    if (this.state === 'CONNECTING') {
      this.hsBuf = Buffer.concat([this.hsBuf, d])
      const end = this.hsBuf.indexOf('\r\n\r\n')
      if (end < 0) {
        if (this.hsBuf.length > 16 * 1024) this.failHandshake('response header larger than 16 KiB')
        return
      }
      const head = this.hsBuf.subarray(0, end).toString('latin1')
      const rest = this.hsBuf.subarray(end + 4)
      this.hsBuf = Buffer.alloc(0)
      const err = this.checkHandshake(head)
      if (err) {
        this.failHandshake(err)
        return
      }
      this.opened('handshake OK')
      if (rest.length > 0 && !this.isClosed()) this.consume(new Uint8Array(rest))
      return
    }
    this.consume(new Uint8Array(d.buffer, d.byteOffset, d.length))
  }

  private checkHandshake(head: string): string | null {
    const lines = head.split('\r\n')
    const status = lines[0] ?? ''
    if (!/^HTTP\/1\.1 101\b/.test(status)) return `expected HTTP/1.1 101, got "${status.slice(0, 80)}"`
    const headers = new Map<string, string>()
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':')
      if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim())
    }
    this.agent = headers.get('server') ?? ''
    if ((headers.get('upgrade') ?? '').toLowerCase() !== 'websocket') return 'missing "Upgrade: websocket"'
    if (!(headers.get('connection') ?? '').toLowerCase().split(/\s*,\s*/).includes('upgrade')) return 'missing "Connection: Upgrade"'
    const accept = createHash('sha1').update(this.handshakeKey + WS_GUID).digest('base64')
    if (headers.get('sec-websocket-accept') !== accept) return 'wrong Sec-WebSocket-Accept'
    // No subprotocol offered, and an extension only if offered (RFC 6455 §4.1, client steps 5 and 6).
    const extensions = headers.get('sec-websocket-extensions')
    if (extensions) {
      if (this.deflateOffers.length === 0) return 'server accepted an extension that was not offered'
      const answer = readAnswer(extensions, this.deflateOffers)
      if (typeof answer === 'string') return `invalid permessage-deflate answer: ${answer}`
      this.deflate = answer
      this.codec = new ClientDeflate(answer)
      this.note(`permessage-deflate: ${extensions}`)
    }
    if (headers.get('sec-websocket-protocol')) return 'server chose a subprotocol that was not offered'
    return null
  }

  private failHandshake(reason: string): void {
    this.handshakeError = reason
    this.note(`handshake failed: ${reason}`)
    this.dropConnection(true)
  }

  // ---- incoming frames: the checks Autobahn's client applies to server frames (RFC 6455 §5) ----

  private consume(chunk: Uint8Array): void {
    this.rxBuf = this.rxBuf.length === 0 ? chunk : concat([this.rxBuf, chunk])
    // Bounded: each iteration consumes a header or payload octets, or breaks.
    while (this.state !== 'CLOSED') {
      if (this.cur === null) {
        if (!this.parseHeader()) break
        if (this.cur === null) continue
        if ((this.cur as RxFrame).length === 0) this.frameEnd()
      } else {
        const f = this.cur
        const take = Math.min(this.rxBuf.length, f.length - f.got)
        if (take === 0) break
        let data = this.rxBuf.subarray(0, take)
        this.rxBuf = this.rxBuf.subarray(take)
        if (f.mask) data = applyMask(data, f.mask, f.got)
        else data = data.slice() // own the octets: rxBuf views a socket chunk
        f.got += take
        this.frameData(data)
        if (this.isClosed()) break
        if (f.got === f.length) this.frameEnd()
      }
    }
  }

  /** Returns false when more octets are needed. */
  private parseHeader(): boolean {
    const b = this.rxBuf
    if (b.length < 2) return false
    const fin = (b[0] & 0x80) !== 0
    const rsv = (b[0] & 0x70) >> 4
    const opcode = b[0] & 0x0f
    const masked = (b[1] & 0x80) !== 0
    const len1 = b[1] & 0x7f
    const hlen = 2 + (len1 === 126 ? 2 : len1 === 127 ? 8 : 0) + (masked ? 4 : 0)
    if (b.length < hlen) return false
    // Autobahn (failByDrop=false) reports each violation and still processes the frame.
    // RFC 7692 §6: with permessage-deflate, RSV1 (4 here) on the first frame of a data message.
    const compressedStart = rsv === 4 && this.codec !== null && (opcode === OP.TEXT || opcode === OP.BINARY)
    if (rsv !== 0 && !compressedStart) this.protocolViolation(`RSV = ${rsv} and no extension negotiated for it`)
    if (masked) this.protocolViolation('masked server-to-client frame') // RFC 6455 §5.1
    if (opcode > 7) {
      if (!fin) this.protocolViolation('fragmented control frame') // §5.5
      if (len1 > 125) this.protocolViolation('control frame with payload length > 125 octets')
      if (opcode !== OP.CLOSE && opcode !== OP.PING && opcode !== OP.PONG) this.protocolViolation(`reserved control opcode ${opcode}`)
      if (opcode === OP.CLOSE && len1 === 1) this.protocolViolation('close frame with payload length 1') // §5.5.1
    } else {
      if (opcode > 2) this.protocolViolation(`reserved data opcode ${opcode}`)
      if (!this.insideMessage && opcode === OP.CONT) this.protocolViolation('continuation frame outside a fragmented message')
      if (this.insideMessage && opcode !== OP.CONT) this.protocolViolation('new data frame inside a fragmented message')
    }
    let length = len1
    if (len1 === 126) {
      length = (b[2] << 8) | b[3]
      if (length < 126) this.protocolViolation('non-minimal payload length encoding') // §5.2
    } else if (len1 === 127) {
      const dv = new DataView(b.buffer, b.byteOffset + 2, 8)
      const hi = dv.getUint32(0)
      if (hi & 0x80000000) this.protocolViolation('payload length >= 2^63')
      length = hi * 2 ** 32 + dv.getUint32(4)
      if (length < 65536) this.protocolViolation('non-minimal payload length encoding')
      if (length > 2 ** 31) {
        // Far beyond any case here; refuse to allocate for it.
        this.note(`RX frame length ${length} too large for the judge`)
        this.dropConnection(true)
        return false
      }
    }
    const mask = masked ? b.slice(hlen - 4, hlen) : null
    this.rxBuf = b.subarray(hlen)
    if (this.state === 'CLOSED') return false
    this.cur = { opcode, fin, rsv, length, mask, got: 0 }
    this.rxFrameStats[opcode] = (this.rxFrameStats[opcode] ?? 0) + 1
    this.frameBegin()
    return true
  }

  private frameBegin(): void {
    const f = this.cur!
    if (f.opcode > 7) {
      this.ctrlChunks = []
      return
    }
    if (!this.insideMessage) {
      this.insideMessage = true
      this.msgBinary = f.opcode === OP.BINARY
      this.msgChunks = []
      this.msgCompressed = f.rsv === 4
      // Compressed text is checked once inflated.
      this.validateUtf8 = f.opcode === OP.TEXT && !this.msgCompressed
      if (this.validateUtf8) this.utf8v.reset()
    }
  }

  private frameData(data: Uint8Array): void {
    const f = this.cur!
    if (f.opcode > 7) {
      this.ctrlChunks.push(data)
      return
    }
    // Fail fast on invalid UTF-8 in text (RFC 6455 §8.1), as Autobahn does.
    if (this.validateUtf8 && !this.utf8v.feed(data)) {
      this.invalidPayload('invalid UTF-8 in text message')
    }
    if (!this.failedByMe) this.msgChunks.push(data)
  }

  private frameEnd(): void {
    const f = this.cur!
    this.cur = null
    if (f.opcode > 7) {
      this.controlFrame(f.opcode, concat(this.ctrlChunks))
      this.ctrlChunks = []
      return
    }
    this.note(`RX frame op=${f.opcode} fin=${f.fin ? 1 : 0} len=${f.length}`)
    if (!f.fin) return
    if (this.validateUtf8 && !this.utf8v.complete()) {
      this.invalidPayload('text message ended inside a UTF-8 code point')
    }
    this.insideMessage = false
    const payload = concat(this.msgChunks)
    this.msgChunks = []
    if (this.failedByMe) return
    const binary = this.msgBinary
    if (this.codec === null) {
      this.hooks.onMessage(payload, binary)
      return
    }
    // With the extension every message waits its turn behind the ones being inflated.
    const codec = this.codec
    const compressed = this.msgCompressed
    this.rxChain = this.rxChain.then(async () => {
      let data = payload
      if (compressed) {
        try {
          data = await codec.decompress(payload)
        } catch (e) {
          this.invalidPayload(`message does not inflate: ${String(e)}`)
          return
        }
        const v = new Utf8Validator()
        if (!binary && !(v.feed(data) && v.complete())) {
          this.invalidPayload('invalid UTF-8 in inflated text message')
          return
        }
      }
      if (!this.failedByMe && !this.isClosed()) this.hooks.onMessage(data, binary)
    })
  }

  private controlFrame(opcode: number, payload: Uint8Array): void {
    if (opcode === OP.CLOSE) {
      let code: number | undefined
      let reason: Uint8Array | undefined
      if (payload.length > 1) code = (payload[0] << 8) | payload[1]
      if (payload.length > 2) reason = payload.subarray(2)
      this.note(`RX close code=${code ?? '-'} reasonLen=${reason?.length ?? 0}`)
      this.onCloseFrame(code, reason)
    } else if (opcode === OP.PING) {
      this.note(`RX ping len=${payload.length}`)
      // Autobahn answers pings only while OPEN and does not record them.
      if (this.state === 'OPEN') this.sendFrame({ opcode: OP.PONG, payload })
    } else if (opcode === OP.PONG) {
      this.note(`RX pong len=${payload.length}`)
      this.hooks.onPong(payload)
    }
  }

  private onCloseFrame(code: number | undefined, reason: Uint8Array | undefined): void {
    this.remoteCloseCode = code ?? null
    if (code !== undefined && !isValidCloseCode(code)) this.protocolViolation(`invalid close code ${code}`) // §7.4
    if (reason !== undefined) {
      const v = new Utf8Validator()
      if (!(v.feed(reason) && v.complete())) this.invalidPayload('invalid close reason (non-UTF-8 payload)')
      this.remoteCloseReason = Buffer.from(reason).toString('utf8')
    } else {
      this.remoteCloseReason = null
    }
    if (this.state === 'CLOSING') {
      // The peer's answer to our close.
      if (this.closeHandshakeTimer) {
        clearTimeout(this.closeHandshakeTimer)
        this.closeHandshakeTimer = null
      }
      this.wasClean = true
      // The server should now drop TCP (RFC 6455 §7.1.1); if it does not, we do, uncleanly.
      if (this.timeouts.serverConnectionDrop > 0 && !this.serverDropTimer) {
        this.serverDropTimer = setTimeout(() => {
          this.serverDropTimer = null
          if (this.state !== 'CLOSED') {
            this.wasClean = false
            this.wasNotCleanReason = 'server did not drop TCP connection (in time)'
            this.wasServerConnectionDropTimeout = true
            this.dropConnection(true)
          }
        }, this.timeouts.serverConnectionDrop)
      }
    } else if (this.state === 'OPEN') {
      // The peer starts the closing handshake: answer 1000 (Autobahn echoCloseCodeReason=false).
      this.wasClean = true
      this.sendCloseFrame(1000, undefined, true)
    } else {
      this.wasClean = false
    }
  }
}
