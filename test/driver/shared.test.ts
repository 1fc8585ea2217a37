// Shared output and the memory budget, with server connections over sockets whose writes finish
// only when the test says so: a buffer in many connections' output counts once until the last
// socket has written it; bytes of a connection's own count for it alone.
import test from 'ava'
import { Duplex } from 'node:stream'
import { MemoryBudget, SHARED_MIN } from '../../src/driver/budget.js'
import { WebSocketConnection } from '../../src/driver/connection.js'
import { prepareMessage, preparedFrame } from '../../src/driver/prepared.js'
import { SHARED_REF_COST } from '../../src/driver/shared.js'

/** A socket that takes writes and finishes them when told to (`finish`), like a peer that reads late. */
class HeldSocket extends Duplex {
  private readonly pending: Array<() => void> = []
  /** Bytes written so far. */
  written = 0

  override _write (chunk: Uint8Array, _encoding: BufferEncoding, callback: () => void): void {
    this.pending.push(() => {
      this.written += chunk.length
      callback()
    })
  }

  override _read (): void {}

  /** Finish every write so far and those they let through. */
  finish (): void {
    for (let i = 0; i < 1000 && this.pending.length > 0; i++) this.pending.shift()!()
  }
}

function serverConnection (budget: MemoryBudget): { conn: WebSocketConnection, socket: HeldSocket } {
  const socket = new HeldSocket()
  const conn = new WebSocketConnection(socket, { role: 'server', protocol: '', url: '/', headers: {}, limits: { heartbeat: false }, budget })
  return { conn, socket }
}

const tick = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }

test('a prepared frame in three connections\' output counts once; each connection counts its slot, and its own bytes', async (t) => {
  const budget = new MemoryBudget(1024 * 1024)
  const peers = [serverConnection(budget), serverConnection(budget), serverConnection(budget)]
  const message = prepareMessage(new Uint8Array(100_000).fill(1))
  const frameSize = preparedFrame(message)!.length
  for (const { conn } of peers) await conn.send(message)
  await tick()
  t.is(budget.used, frameSize + 3 * SHARED_REF_COST)
  for (const { conn } of peers) {
    t.is(conn.stats().heldBytes, SHARED_REF_COST)
    // Flow control still sees the whole output.
    t.is(conn.stats().queuedOutBytes, frameSize)
  }
  // A message of the first connection's own (2,000 B, copied into its output) counts for it alone.
  await peers[0].conn.send('x'.repeat(2000))
  await tick()
  t.is(peers[0].conn.stats().heldBytes, SHARED_REF_COST + 2004)
  t.is(budget.used, frameSize + 3 * SHARED_REF_COST + 2004)
  // Written by two sockets: still held by the third.
  peers[0].socket.finish()
  peers[1].socket.finish()
  await tick()
  t.is(budget.used, frameSize + SHARED_REF_COST)
  // Written by the last: given back.
  peers[2].socket.finish()
  await tick()
  t.is(budget.used, 0)
  t.deepEqual(peers.map((p) => p.socket.written), [frameSize + 2004, frameSize, frameSize])
  for (const { conn } of peers) conn.terminate()
})

test('the same plain message sent on many connections (not prepared) counts once too; one that is copied counts per connection', async (t) => {
  const budget = new MemoryBudget(1024 * 1024)
  const peers = [serverConnection(budget), serverConnection(budget), serverConnection(budget)]
  const big = new Uint8Array(200_000)
  const small = new Uint8Array(1000)
  for (const { conn } of peers) {
    await conn.send(big)
    await conn.send(small)
  }
  await tick()
  // The big one is queued by reference, its 10-byte header in each connection's own output; the
  // small one is copied into each connection's output, header (4 bytes) and all.
  t.is(budget.used, big.length + 3 * (SHARED_REF_COST + 10 + 1004))
  for (const { socket } of peers) socket.finish()
  await tick()
  t.is(budget.used, 0)
  for (const { conn } of peers) conn.terminate()
})

test('a connection that goes away with a shared frame unwritten gives its hold back; the others keep it counted', async (t) => {
  const budget = new MemoryBudget(1024 * 1024)
  const peers = [serverConnection(budget), serverConnection(budget)]
  const message = prepareMessage('y'.repeat(300_000))
  const frameSize = preparedFrame(message)!.length
  for (const { conn } of peers) await conn.send(message)
  await tick()
  t.is(budget.used, frameSize + 2 * SHARED_REF_COST)
  peers[0].conn.terminate()
  await tick()
  t.is(budget.used, frameSize + SHARED_REF_COST)
  peers[1].conn.terminate()
  await tick()
  t.is(budget.used, 0)
})

test('a shared frame the budget cannot take fails the connection that queued it with 1013; the budget gets everything back', async (t) => {
  const budget = new MemoryBudget(64 * 1024)
  const { conn, socket } = serverConnection(budget)
  await conn.send(prepareMessage(new Uint8Array(100_000))).catch(() => {})
  await tick()
  const closed = conn.closed
  // The frame, then the close, leave as the socket writes.
  socket.finish()
  await tick()
  socket.finish()
  socket.push(null)
  socket.destroy()
  t.is((await closed).code, 1013)
  t.is(budget.used, 0)
})

test(`a prepared frame under SHARED_MIN (${SHARED_MIN} B) counts per connection, about what each reference costs anyway`, async (t) => {
  const budget = new MemoryBudget(1024 * 1024)
  const peers = [serverConnection(budget), serverConnection(budget)]
  const message = prepareMessage(new Uint8Array(SHARED_MIN - 5))
  const frameSize = preparedFrame(message)!.length
  t.is(frameSize, SHARED_MIN - 1, 'a 4-byte header')
  for (const { conn } of peers) await conn.send(message)
  await tick()
  t.is(budget.used, 2 * frameSize)
  for (const { socket } of peers) socket.finish()
  await tick()
  // Own output is given back once the socket has drained it (at the next report).
  for (const { conn } of peers) await conn.send('z')
  await tick()
  t.is(budget.used, 2 * 3)
  for (const { conn } of peers) conn.terminate()
  await tick()
  t.is(budget.used, 0)
})
