// Load generator for the echo benchmark, run as its own process (pinned to its own core).
// It must cost less than the servers it drives: frames are encoded and masked once, up front,
// sockets are raw node:net ones, and replies are counted by reading frame headers only.
// The orchestrator (bench/echo.ts) drives it over IPC; see the Command type.
import { connect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { connect as h2Connect, type ClientHttp2Session } from 'node:http2'
import { createHash, randomBytes } from 'node:crypto'
import { encodeMaskedFrame, repeatFrame, utf8Text, OP_BINARY, OP_TEXT, OP_CLOSE } from './lib/frames.js'

export interface RunCommand {
  cmd: 'run'
  port: number
  /** raw TCP echo: no handshake, and replies are our own masked frames */
  raw: boolean
  conns: number
  inflight: number
  payloadSize: number
  text: boolean
  warmupMs: number
  durationMs: number
  latency: boolean
  /** `tcp` (ws://, the default), `tls` (wss:// over HTTP/1.1) or `h2` (wss:// over HTTP/2, every connection a stream of one session). */
  transport?: Transport
}
export type Transport = 'tcp' | 'tls' | 'h2'
export interface RunResult {
  type: 'result'
  messages: number
  payloadBytes: number
  seconds: number
  /** CPU the load generator used during the measured window, in % of one core */
  clientCpu: number
  p50us?: number
  p99us?: number
}
export interface OpenCommand { cmd: 'open', port: number, raw: boolean, conns: number }
export interface SlowCommand { cmd: 'slow', port: number, raw: boolean, totalBytes: number, maxMs: number, frameSize: number }
export type Command = RunCommand | OpenCommand | SlowCommand | { cmd: 'closeAll' }

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
const CLOSE_FRAME = encodeMaskedFrame(OP_CLOSE, Uint8Array.of(0x03, 0xe8), 0x12345678)
const send = (m: object): void => { process.send!(m) }

/** Counts whole frames in a byte stream by reading headers and skipping payloads. */
class FrameCounter {
  private skip = 0
  private readonly hdr = Buffer.alloc(14)
  private hdrLen = 0
  private opcode = 0

  /** Returns the number of data frames completed in `chunk`; close frames go to `onClose`. */
  feed (chunk: Buffer, onClose: () => void): number {
    let done = 0
    let i = 0
    const n = chunk.length
    while (i < n) {
      if (this.skip > 0) {
        const take = Math.min(this.skip, n - i)
        this.skip -= take
        i += take
        if (this.skip === 0) { if (this.opcode === OP_CLOSE) onClose(); else done++ }
        continue
      }
      let src: Buffer = chunk
      let off = i
      let avail = n - i
      if (this.hdrLen > 0) {
        // header split across chunks: gather it (at most 14 bytes)
        while (this.hdrLen < 14 && i < n) this.hdr[this.hdrLen++] = chunk[i++]
        src = this.hdr; off = 0; avail = this.hdrLen
      }
      const h = parseHeader(src, off, avail)
      if (h === undefined) {
        if (this.hdrLen === 0) { chunk.copy(this.hdr, 0, i, n); this.hdrLen = n - i; i = n }
        continue
      }
      if (this.hdrLen > 0) {
        // give back the bytes gathered beyond the header
        i -= this.hdrLen - h.headerLength
        this.hdrLen = 0
      } else {
        i += h.headerLength
      }
      this.opcode = h.opcode
      if (h.payloadLength === 0) { if (h.opcode === OP_CLOSE) onClose(); else done++ } else this.skip = h.payloadLength
    }
    return done
  }
}

function parseHeader (b: Buffer, off: number, avail: number): { headerLength: number, payloadLength: number, opcode: number } | undefined {
  if (avail < 2) return undefined
  const opcode = b[off] & 0x0f
  const masked = (b[off + 1] & 0x80) !== 0
  let len = b[off + 1] & 0x7f
  let hl = 2
  if (len === 126) { hl = 4; if (avail < 4) return undefined; len = b.readUInt16BE(off + 2) } else if (len === 127) { hl = 10; if (avail < 10) return undefined; len = b.readUInt32BE(off + 2) * 2 ** 32 + b.readUInt32BE(off + 6) }
  if (masked) hl += 4
  if (avail < hl) return undefined
  return { headerLength: hl, payloadLength: len, opcode }
}

/** One HTTP/2 session per server port, shared by every WebSocket of a run (as a browser shares its connection). */
const sessions = new Map<number, Promise<ClientHttp2Session>>()

function sessionTo (port: number): Promise<ClientHttp2Session> {
  let s = sessions.get(port)
  if (s === undefined) {
    s = new Promise((resolve, reject) => {
      // Chromium's own stream window (6 MiB): what the server may send ahead on each stream.
      const session = h2Connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false, settings: { initialWindowSize: 6 * 1024 * 1024 } })
      session.once('remoteSettings', (settings) => {
        if (settings.enableConnectProtocol === true) resolve(session)
        else reject(new Error('the server does not allow extended CONNECT'))
      })
      session.once('error', reject)
      session.once('close', () => sessions.delete(port))
    })
    sessions.set(port, s)
  }
  return s
}

/** A WebSocket as an extended CONNECT stream (RFC 8441) of the port's session; the stream stands in for the socket. */
async function openStream (port: number): Promise<{ socket: Socket, rest: Buffer }> {
  const session = await sessionTo(port)
  const stream = session.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'https', ':path': '/', ':authority': `127.0.0.1:${port}`, 'sec-websocket-version': '13' })
  return await new Promise((resolve, reject) => {
    stream.once('response', (h) => {
      if (Number(h[':status']) === 200) resolve({ socket: stream as unknown as Socket, rest: Buffer.alloc(0) })
      else reject(new Error(`extended CONNECT refused: ${String(h[':status'])}`))
    })
    stream.once('error', reject)
  })
}

/** Close every HTTP/2 session (after a run). */
function closeSessions (): void {
  for (const s of sessions.values()) void s.then((session) => session.close(), () => {})
  sessions.clear()
}

/** Opens a TCP (or TLS) connection and, unless raw, performs the opening handshake; resolves with leftover bytes. */
function open (port: number, raw: boolean, transport: Transport = 'tcp'): Promise<{ socket: Socket, rest: Buffer }> {
  if (transport === 'h2') return openStream(port)
  return new Promise((resolve, reject) => {
    const socket = transport === 'tls'
      ? tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }).setNoDelay(true)
      : connect({ port, host: '127.0.0.1', noDelay: true })
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('connect/handshake timeout')) }, 15_000)
    socket.once('error', (err) => { clearTimeout(timer); reject(err) })
    socket.once(transport === 'tls' ? 'secureConnect' : 'connect', () => {
      if (raw) { clearTimeout(timer); resolve({ socket, rest: Buffer.alloc(0) }); return }
      const key = randomBytes(16).toString('base64')
      const accept = createHash('sha1').update(key + GUID).digest('base64')
      socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
      let buf = Buffer.alloc(0)
      const onData = (d: Buffer): void => {
        buf = Buffer.concat([buf, d])
        const end = buf.indexOf('\r\n\r\n')
        if (end === -1) return
        socket.off('data', onData)
        clearTimeout(timer)
        const head = buf.subarray(0, end).toString('latin1')
        if (!head.startsWith('HTTP/1.1 101') || !head.toLowerCase().includes(`sec-websocket-accept: ${accept.toLowerCase()}`)) {
          socket.destroy()
          reject(new Error(`handshake refused: ${head.split('\r\n')[0]}`))
          return
        }
        resolve({ socket, rest: buf.subarray(end + 4) })
      }
      socket.on('data', onData)
    })
  })
}

/** Sends a close frame and waits (briefly) for the server to close; raw sockets just end. */
function closeGracefully (socket: Socket, raw: boolean): Promise<void> {
  return new Promise(resolve => {
    if (socket.destroyed) { resolve(); return }
    const timer = setTimeout(() => { socket.destroy(); resolve() }, 2000)
    socket.once('close', () => { clearTimeout(timer); resolve() })
    socket.on('error', () => {})
    socket.resume() // let the server's close frame and FIN in
    if (raw) socket.end(); else socket.end(CLOSE_FRAME)
  })
}

async function openMany (port: number, raw: boolean, count: number, parallel = 64): Promise<Socket[]> {
  const sockets: Socket[] = []
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++
      const { socket } = await open(port, raw)
      socket.on('error', () => {})
      sockets.push(socket)
    }
  }
  try {
    await Promise.all(Array.from({ length: Math.min(parallel, count) }, worker))
  } catch (err) {
    for (const s of sockets) s.destroy() // do not leave half a test's connections open
    throw err
  }
  return sockets
}

async function run (c: RunCommand): Promise<RunResult> {
  const payload = c.text ? Buffer.from(utf8Text(c.payloadSize)) : randomBytes(c.payloadSize)
  if (payload.length !== c.payloadSize) throw new Error('payload size mismatch')
  const frame = encodeMaskedFrame(c.text ? OP_TEXT : OP_BINARY, payload, randomBytes(4).readUInt32BE(0))
  const batch = repeatFrame(frame, c.inflight)
  const frameLen = frame.length
  let received = 0
  let outstanding = 0
  let sending = true
  const samples: number[] = []
  const sentAt: bigint[] = []
  let measuring = false
  let failure: Error | undefined

  const conns = await Promise.all(Array.from({ length: c.conns }, async () => await open(c.port, c.raw, c.transport)))
  for (const { socket, rest } of conns) {
    const counter = new FrameCounter()
    const onData = (d: Buffer): void => {
      const k = counter.feed(d, () => { if (sending) failure ??= new Error('server sent a close frame mid-run') })
      if (k === 0) return
      received += k
      outstanding -= k
      if (c.latency) {
        const now = process.hrtime.bigint()
        for (let j = 0; j < k; j++) {
          const t = sentAt.shift()!
          if (measuring) samples.push(Number(now - t) / 1000)
        }
      }
      if (sending) {
        if (c.latency) for (let j = 0; j < k; j++) sentAt.push(process.hrtime.bigint())
        outstanding += k
        socket.write(k === c.inflight ? batch : batch.subarray(0, k * frameLen))
      }
    }
    socket.on('data', onData)
    socket.on('error', (err) => { failure ??= err })
    socket.on('close', () => { if (sending) failure ??= new Error('server closed the connection mid-run') })
    if (rest.length > 0) onData(rest)
  }
  for (const { socket } of conns) {
    if (c.latency) for (let j = 0; j < c.inflight; j++) sentAt.push(process.hrtime.bigint())
    outstanding += c.inflight
    socket.write(batch)
  }

  await new Promise(resolve => setTimeout(resolve, c.warmupMs))
  send({ type: 'window-start' })
  measuring = true
  const r0 = received
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  await new Promise(resolve => setTimeout(resolve, c.durationMs))
  const r1 = received
  const cpu1 = process.cpuUsage(cpu0)
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  measuring = false
  send({ type: 'window-end' })
  sending = false

  // drain what is still in flight, so the servers end every connection cleanly
  const deadline = Date.now() + 5000
  while (outstanding > 0 && Date.now() < deadline && failure === undefined) await new Promise(resolve => setTimeout(resolve, 5))
  await Promise.all(conns.map(async ({ socket }) => await closeGracefully(socket, c.raw)))
  closeSessions()
  if (failure !== undefined) throw failure
  if (outstanding !== 0) throw new Error(`${outstanding} frames sent were never echoed`)

  const messages = r1 - r0
  const result: RunResult = {
    type: 'result',
    messages,
    payloadBytes: messages * c.payloadSize,
    seconds,
    clientCpu: 100 * (cpu1.user + cpu1.system) / 1e6 / seconds
  }
  if (c.latency && samples.length > 0) {
    samples.sort((a, b) => a - b)
    result.p50us = samples[Math.floor(samples.length * 0.5)]
    result.p99us = samples[Math.min(samples.length - 1, Math.floor(samples.length * 0.99))]
  }
  return result
}

let idle: Socket[] = []
let idleRaw = false

async function slow (c: SlowCommand): Promise<{ type: 'slow', sentBytes: number, seconds: number }> {
  const { socket } = await open(c.port, c.raw)
  socket.pause() // never read: the server's replies pile up in its queues or stall it
  socket.on('error', () => {})
  const frame = encodeMaskedFrame(OP_BINARY, randomBytes(c.frameSize), 0x0badf00d)
  const t0 = Date.now()
  let sent = 0
  while (sent < c.totalBytes && Date.now() - t0 < c.maxMs && !socket.destroyed) {
    sent += frame.length
    if (!socket.write(frame)) {
      // our own kernel send buffer is full: wait for room, but no longer than the time limit
      await new Promise<void>(resolve => {
        const timer = setTimeout(done, Math.max(0, c.maxMs - (Date.now() - t0)))
        function done (): void { clearTimeout(timer); socket.off('drain', done); socket.off('close', done); resolve() }
        socket.once('drain', done)
        socket.once('close', done)
      })
    }
  }
  // bytes Node still holds for us were not sent
  const sentBytes = Math.max(0, sent - socket.writableLength)
  const seconds = (Date.now() - t0) / 1000
  socket.destroy()
  return { type: 'slow', sentBytes, seconds }
}

process.on('message', (msg: Command) => {
  const reply = async (): Promise<object> => {
    switch (msg.cmd) {
      case 'run': return await run(msg)
      case 'open':
        idle = await openMany(msg.port, msg.raw, msg.conns)
        idleRaw = msg.raw
        return { type: 'opened', count: idle.length }
      case 'closeAll': {
        const all = idle
        idle = []
        await Promise.all(all.map(async s => await closeGracefully(s, idleRaw)))
        return { type: 'closed' }
      }
      case 'slow': return await slow(msg)
    }
  }
  reply().then(send, (err: Error) => send({ type: 'error', message: err.message }))
})
process.on('disconnect', () => process.exit(0))
send({ type: 'ready' })
