/**
 * examples/upload.ts: a file far larger than the receive queue is streamed into a file on the
 * server and checked by hash, with the server's queue bounded by its high-water mark; a text
 * message is refused and its bytes dropped unread; an upload cut off part-way leaves no file.
 */

import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import test from 'ava'
import { connect, DEFAULT_LIMITS, WebSocketServer, type StreamConnection } from '../../src/index.js'
import { ITEM_OVERHEAD } from '../../src/protocol/gather.js'
import { saveUploads, upload } from '../../examples/upload.js'
import { listen, randomFile, runExample } from './helpers.js'

const SIZE = 40 * 1024 * 1024 + 4321
let dir: string
let file: string
let fileHash: string

test.before(() => {
  ;({ dir, file, hash: fileHash } = randomFile('wspipe-upload-', SIZE))
})

test.after.always(() => {
  rmSync(dir, { recursive: true, force: true })
})

const hashOf = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex')

test('a 40 MiB upload lands intact in a file while the server queues at most its receive mark plus one read', async (t) => {
  const saved = mkdtempSync(join(dir, 'saved-'))
  const handler = saveUploads(saved)
  let serverConn: StreamConnection | undefined
  const server = new WebSocketServer({ heartbeat: false }).register('upload', (conn) => {
    serverConn = conn
    return handler(conn)
  }, { messages: 'stream', maxMessageSize: Infinity })
  const url = await listen(server)
  try {
    const reply = await upload(url, file)
    t.is(reply.bytes, SIZE)
    t.is(hashOf(reply.file), fileHash)
    // 40 MiB went through a queue bounded by 1 MiB (+ one 64 KiB read and per-chunk overhead).
    const peak = serverConn!.stats().peakQueuedInBytes
    const bound = DEFAULT_LIMITS.receiveHighWaterMark + 64 * 1024 + 64 * ITEM_OVERHEAD
    t.true(peak <= bound, `server peakQueuedInBytes ${peak} <= ${bound}`)
  } finally {
    await server.close()
  }
})

test('a text message is answered with an error and its bytes dropped; the next upload on the connection works', async (t) => {
  const saved = mkdtempSync(join(dir, 'saved-'))
  const server = new WebSocketServer().register('upload', saveUploads(saved), { messages: 'stream', maxMessageSize: Infinity })
  const url = await listen(server)
  try {
    const conn = await connect(url, { protocols: 'upload' })
    await conn.send({ type: 'text', chunks: ['not ', 'a ', 'file'] })
    await conn.send(new Uint8Array([1, 2, 3]))
    const first = await conn.source.next()
    t.deepEqual(JSON.parse(new TextDecoder().decode(first.value)), { error: 'send a file as a binary message' })
    const second = JSON.parse(new TextDecoder().decode((await conn.source.next()).value)) as { file: string, bytes: number }
    t.is(second.bytes, 3)
    t.deepEqual([...readFileSync(second.file)], [1, 2, 3])
    t.is(readdirSync(saved).length, 1)
    conn.close()
    t.is((await conn.closed).code, 1000)
  } finally {
    await server.close()
  }
})

test('an upload cut off part-way leaves no file behind', async (t) => {
  const saved = mkdtempSync(join(dir, 'saved-'))
  const server = new WebSocketServer().register('upload', saveUploads(saved), { messages: 'stream', maxMessageSize: Infinity })
  const url = await listen(server)
  try {
    const conn = await connect(url, { protocols: 'upload' })
    let sent = 0
    async function * dies (): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 8; i++) {
        sent++
        yield randomBytes(64 * 1024)
      }
      throw new Error('the disk on the client side failed')
    }
    await t.throwsAsync(conn.send({ type: 'binary', chunks: dies() }), { message: 'the disk on the client side failed' })
    t.is(sent, 8)
    // Half a message cannot be taken back: the client closed with 1011.
    t.is((await conn.closed).code, 1011)
    // The handler's pipeline fails with the connection, and it removes the partial file.
    for (let i = 0; i < 300 && (server.clients.size > 0 || readdirSync(saved).length > 0); i++) await new Promise((resolve) => setTimeout(resolve, 10))
    t.is(server.clients.size, 0)
    t.deepEqual(readdirSync(saved), [])
  } finally {
    await server.close()
  }
})

test('runnable: `tsx examples/upload.ts --port 0 --dir D` saves an upload under D', async (t) => {
  const saved = join(dir, 'runnable')
  const small = join(dir, 'small.txt')
  writeFileSync(small, 'a small file\n')
  const example = await runExample('upload', ['--dir', saved])
  try {
    const reply = await upload(example.url, small)
    t.is(reply.bytes, 13)
    t.is(readFileSync(reply.file, 'utf8'), 'a small file\n')
    t.true(reply.file.startsWith(saved))
  } finally {
    t.is(await example.stop(), 0)
  }
})
