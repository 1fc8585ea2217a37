/**
 * examples/file-stream.ts: a ~20 MiB file streamed as 64 KiB messages, checked by hash; while
 * the client reads slowly, the server's send queue stays bounded (the file is read only as fast
 * as the client reads).
 */

import { createHash } from 'node:crypto'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import test from 'ava'
import { connect, DEFAULT_LIMITS, isText, WebSocketServer, type Connection } from '../../src/index.js'
import { download, streamFile } from '../../examples/file-stream.js'
import { listen, randomFile, runExample } from './helpers.js'

const SIZE = 20 * 1024 * 1024 + 12345
const CHUNK = 64 * 1024
let dir: string
let file: string
let fileHash: string

test.before(() => {
  ;({ dir, file, hash: fileHash } = randomFile('wspipe-file-stream-', SIZE))
})

test.after.always(() => {
  rmSync(dir, { recursive: true, force: true })
})

/** Poll a condition, bounded: at most `tries` times, 10 ms apart. */
async function eventually (condition: () => boolean, tries = 500): Promise<boolean> {
  for (let i = 0; i < tries && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  return condition()
}

test('a slow reader gets the whole file, intact, while the server queues a bounded amount', async (t) => {
  let serverConn: Connection | undefined
  const handler = streamFile(file)
  const server = new WebSocketServer({ heartbeat: false }).register('', (conn) => {
    serverConn = conn
    return handler(conn)
  })
  const url = await listen(server)
  try {
    const client = await connect(url, { receiveHighWaterMark: 256 * 1024, heartbeat: false })
    // Do not read until the link is full: the client paused and the server's sink is waiting.
    t.true(await eventually(() => client.stats().pauses > 0), 'the client paused reading')
    t.true(await eventually(() => serverConn !== undefined && serverConn.stats().queuedOutBytes >= DEFAULT_LIMITS.sendHighWaterMark), 'the server waits for the client')

    const hash = createHash('sha256')
    let bytes = 0
    let messages = 0
    for await (const message of client.source) {
      t.false(isText(message))
      if (message.length > CHUNK) t.fail(`message ${messages} has ${message.length} bytes`)
      hash.update(message)
      bytes += message.length
      messages++
      // Read slowly: one message per macrotask turn, a pause every 16.
      await new Promise((resolve) => (messages % 16 === 0 ? setTimeout(resolve, 1) : setImmediate(resolve)))
    }
    t.is(bytes, SIZE)
    t.is(hash.digest('hex'), fileHash)
    t.is(messages, Math.ceil(SIZE / CHUNK))
    t.deepEqual(await client.closed, { code: 1000, reason: '', wasClean: true })

    const peak = serverConn!.stats().peakQueuedOutBytes
    const bound = DEFAULT_LIMITS.sendHighWaterMark + CHUNK + 14
    t.true(peak <= bound, `server peakQueuedOutBytes ${peak} <= ${bound} (the file is ${SIZE})`)
    t.true(client.stats().peakQueuedInBytes <= 256 * 1024 + 3 * CHUNK, `client peak ${client.stats().peakQueuedInBytes}`)
  } finally {
    await server.close()
  }
})

test('download() saves the stream with node:stream pipeline, and resolves with the close', async (t) => {
  const server = new WebSocketServer().register('', streamFile(file))
  const url = await listen(server)
  try {
    const dest = join(dir, 'copy.bin')
    const closed = await download(url, dest)
    t.deepEqual(closed, { code: 1000, reason: '', wasClean: true })
    t.is(createHash('sha256').update(readFileSync(dest)).digest('hex'), fileHash)
  } finally {
    await server.close()
  }
})

test('a client that leaves early stops the stream: the handler finishes and the server has no connection left', async (t) => {
  let handlerDone = false
  const handler = streamFile(file)
  const server = new WebSocketServer().register('', async (conn) => {
    await handler(conn)
    handlerDone = true
  })
  const url = await listen(server)
  try {
    const client = await connect(url)
    let got = 0
    for await (const _ of client.source) {
      if (++got === 3) break
    }
    client.close(1000, 'enough')
    t.is((await client.closed).code, 1000)
    t.true(await eventually(() => handlerDone && server.clients.size === 0), 'the handler finished')
  } finally {
    await server.close()
  }
})

test('runnable: `tsx examples/file-stream.ts --port 0 --file F` streams F', async (t) => {
  const small = join(dir, 'small.txt')
  writeFileSync(small, 'a small file\n')
  const example = await runExample('file-stream', ['--file', small])
  try {
    const dest = join(dir, 'small-copy.txt')
    t.is((await download(example.url, dest)).code, 1000)
    t.is(readFileSync(dest, 'utf8'), 'a small file\n')
  } finally {
    t.is(await example.stop(), 0)
  }
})
