/**
 * The client's frames on the wire, read by raw node:net servers: masking (§5.3), the heartbeat
 * (the client pings an idle server and drops one that stops answering), and a server that
 * vanishes without a close frame (1006).
 */

import type { Socket } from 'node:net'
import test from 'ava'
import { connect, ConnectionClosedError, ProtocolError } from '../../src/index.js'
import { VirtualClock } from '../../src/testing.js'
import { nextRead, watch } from '../server/helpers.js'
import { decoder, eventually, startRawServer, startWsServer, switchingProtocols, within } from './helpers.js'

interface RawFrame {
  fin: boolean
  opcode: number
  masked: boolean
  key: Uint8Array
  payload: Uint8Array
}

/** Parse complete client frames (payloads < 64 KiB) from `bytes`. */
function parseFrames (received: Uint8Array): RawFrame[] {
  // A copy as a plain Uint8Array: Buffer#slice would be a view, and unmasking would change the record.
  const bytes = new Uint8Array(received)
  const frames: RawFrame[] = []
  let at = 0
  while (at + 2 <= bytes.length) {
    const masked = (bytes[at + 1] & 0x80) !== 0
    let length = bytes[at + 1] & 0x7f
    let header = 2
    if (length === 126) {
      length = (bytes[at + 2] << 8) | bytes[at + 3]
      header = 4
    }
    const keyLength = masked ? 4 : 0
    if (at + header + keyLength + length > bytes.length) break
    const key = bytes.slice(at + header, at + header + keyLength)
    const payload = bytes.slice(at + header + keyLength, at + header + keyLength + length)
    if (masked) for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3]
    frames.push({ fin: (bytes[at] & 0x80) !== 0, opcode: bytes[at] & 0x0f, masked, key, payload })
    at += header + keyLength + length
  }
  return frames
}

/** A raw server that answers 101 and records what the client sends after it. */
async function recordingServer (): Promise<{ url: string, received: () => RawFrame[], sockets: Socket[], close: () => Promise<void> }> {
  let bytes = Buffer.alloc(0)
  const sockets: Socket[] = []
  const raw = await startRawServer((socket, req) => {
    sockets.push(socket)
    socket.write(switchingProtocols(req))
    socket.on('data', (chunk: Buffer) => { bytes = Buffer.concat([bytes, chunk]) })
  })
  return { url: raw.url, received: () => parseFrames(bytes), sockets, close: raw.close }
}

test('every client frame is masked, each with its own key, and unmasks to what was sent', async (t) => {
  const server = await recordingServer()
  try {
    const conn = await connect(server.url, { heartbeat: false })
    await conn.sink(['hello', 'hello', new Uint8Array(300).fill(9)])
    t.true(await eventually(() => server.received().length >= 3), 'three frames arrived')
    const frames = server.received()
    t.true(frames.every((f) => f.masked), 'MASK bit set on every frame')
    t.deepEqual(frames.map((f) => f.opcode), [1, 1, 2])
    t.true(frames.every((f) => f.fin))
    t.is(decoder.decode(frames[0].payload), 'hello')
    t.is(decoder.decode(frames[1].payload), 'hello')
    t.deepEqual([...frames[2].payload], new Array(300).fill(9))
    t.notDeepEqual([...frames[0].key], [...frames[1].key], 'a fresh masking key per frame')
    conn.close(1000)
    t.true(await eventually(() => server.received().length >= 4))
    const close = server.received()[3]
    t.is(close.opcode, 8)
    t.true(close.masked)
    t.deepEqual([...close.payload], [0x03, 0xe8])
  } finally {
    await server.close()
  }
})

test('the client does not change the bytes it was given to send (masking works on a copy)', async (t) => {
  const peer = await startWsServer()
  try {
    const conn = await connect(peer.url, { heartbeat: false })
    const data = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])
    await conn.sink([data])
    for await (const m of conn.source) {
      t.deepEqual([...m], [1, 2, 3, 4, 5, 6, 7, 8])
      break
    }
    t.deepEqual([...data], [1, 2, 3, 4, 5, 6, 7, 8])
    conn.close()
    await conn.closed
  } finally {
    await peer.close()
  }
})

// The client's heartbeat on a VirtualClock (its `clock` option), against real servers.

test('heartbeat: the client pings an idle ws server once per interval, and the connection stays open while pongs come', async (t) => {
  let pings = 0
  const peer = await startWsServer((ws) => { ws.on('ping', () => { pings++ }) })
  try {
    const clock = new VirtualClock()
    const conn = await connect(peer.url, { heartbeat: { interval: 1000, timeout: 2000 }, clock })
    for (let i = 1; i <= 3; i++) {
      await clock.advance(999)
      t.is(conn.stats().heartbeatPings, i - 1, `no ping ${i} before its interval`)
      // ws answers at once: the pong has reached the client before time moves on.
      const pong = nextRead(conn)
      await clock.advance(1)
      t.is(conn.stats().heartbeatPings, i, `ping ${i} at its interval`)
      await pong
    }
    t.is(pings, 3, 'three pings arrived')
    t.false(conn.signal.aborted, 'still open')
    conn.close()
    t.deepEqual(await conn.closed, { code: 1000, reason: '', wasClean: true })
  } finally {
    await peer.close()
  }
})

test('heartbeat: a server that stops answering is dropped at the pong timeout (1006), and the source throws', async (t) => {
  const server = await recordingServer()
  try {
    const clock = new VirtualClock()
    const conn = await connect(server.url, { heartbeat: { interval: 1000, timeout: 1000 }, clock })
    const reading = (async () => { for await (const _ of conn.source) { /* nothing arrives */ } })()
    const settled = watch(conn.closed)
    await clock.advance(1000)
    t.true(await eventually(() => server.received().some((f) => f.opcode === 9)), 'the ping arrived')
    await clock.advance(999)
    t.false(settled(), 'open until the pong timeout')
    await clock.advance(1)
    const closed = await within(conn.closed, 10_000, undefined)
    t.deepEqual(closed, { code: 1006, reason: '', wasClean: false })
    const err = await t.throwsAsync(reading, { instanceOf: ConnectionClosedError })
    t.is(err?.closeCode, 1006)
    const pings = server.received().filter((f) => f.opcode === 9)
    t.true(pings.length >= 1, 'the client pinged before giving up')
    t.true(pings.every((f) => f.masked))
  } finally {
    await server.close()
  }
})

test('a server that vanishes without a close frame: closed is 1006, not clean, and the source throws', async (t) => {
  const server = await recordingServer()
  try {
    const conn = await connect(server.url, { heartbeat: false })
    const reading = (async () => { for await (const _ of conn.source) { /* nothing arrives */ } })()
    t.true(await eventually(() => server.sockets.length === 1))
    server.sockets[0].destroy()
    t.deepEqual(await conn.closed, { code: 1006, reason: '', wasClean: false })
    await t.throwsAsync(reading, { instanceOf: ConnectionClosedError })
  } finally {
    await server.close()
  }
})

test('a close frame from the server is answered with the same code once the source has ended, then the client waits for the server to end TCP', async (t) => {
  const server = await recordingServer()
  try {
    const conn = await connect(server.url, { heartbeat: false })
    t.true(await eventually(() => server.sockets.length === 1))
    const socket = server.sockets[0]
    // Close 4002 "bye", unmasked from the server.
    socket.write(Buffer.from([0x88, 5, 0x0f, 0xa2, ...Buffer.from('bye')]))
    // The answer follows once the source has been read to its end (what came before the close first).
    for await (const _ of conn.source) t.fail('no message was sent')
    t.true(await eventually(() => server.received().length >= 1), 'the client answered')
    const answer = server.received()[0]
    t.is(answer.opcode, 8)
    t.deepEqual([...answer.payload.subarray(0, 2)], [0x0f, 0xa2])
    t.false(socket.destroyed, 'the client leaves ending TCP to the server (§7.1.1)')
    socket.end()
    t.deepEqual(await conn.closed, { code: 4002, reason: 'bye', wasClean: true })
  } finally {
    await server.close()
  }
})

test('a masked frame from the server (§5.1) fails the client with 1002, and the close frame tells the server "server frames must not be masked"', async (t) => {
  const server = await recordingServer()
  try {
    const conn = await connect(server.url, { heartbeat: false })
    t.true(await eventually(() => server.sockets.length === 1))
    // Text "hi" masked with key 01 02 03 04: a server MUST NOT mask (§5.1).
    server.sockets[0].write(Buffer.from([0x81, 0x82, 1, 2, 3, 4, 0x68 ^ 1, 0x69 ^ 2]))
    const err = await t.throwsAsync((async () => { for await (const _ of conn.source) t.fail('no message is handed out') })(), { instanceOf: ProtocolError })
    t.is(err?.code, 'WS_ERR_UNEXPECTED_MASK')
    t.is(err?.closeCode, 1002)
    t.is(err?.message, 'server frames must not be masked')
    t.true(await eventually(() => server.received().length >= 1), 'the client sent its close')
    const close = server.received()[0]
    t.is(close.opcode, 8)
    t.is((close.payload[0] << 8) | close.payload[1], 1002)
    t.is(decoder.decode(close.payload.subarray(2)), 'server frames must not be masked')
    server.sockets[0].end()
    t.deepEqual(await conn.closed, { code: 1002, reason: 'server frames must not be masked', wasClean: false })
  } finally {
    await server.close()
  }
})
