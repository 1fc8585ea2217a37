/**
 * connectInMemory(handler, { messages: 'stream' }): a stream handler runs against an in-memory
 * client through the real framing, so it sees each message as { type, chunks } with one chunk per
 * fragment, and its streaming echo comes back whole to the (whole-mode) client.
 */

import test from 'ava'
import { isText, type StreamHandler } from '../../src/index.js'
import { connectInMemory, take, text } from '../../src/testing.js'

test('a stream handler in memory: chunks per fragment, types kept, the echo comes back whole', async (t) => {
  const seen: string[] = []
  const handler: StreamHandler = ({ source, sink }) => sink((async function * () {
    for await (const message of source) {
      const parts: string[] = []
      // Tap the chunks on their way back out.
      yield {
        type: message.type,
        chunks: (async function * () {
          for await (const chunk of message.chunks) {
            parts.push(Buffer.from(chunk).toString('hex'))
            yield chunk
          }
          seen.push(`${message.type}:${parts.join('|')}`)
        })()
      }
    }
  })())
  const client = await connectInMemory(handler, { messages: 'stream' })
  await client.send('hi')
  await client.send({ type: 'text', chunks: ['a', 'b', 'c'] })
  await client.send({ type: 'binary', chunks: [new Uint8Array([1]), new Uint8Array([2, 3])] })
  await client.send(new Uint8Array(0))
  const [a, b, c, d] = await take(client.source, 4)
  t.deepEqual([isText(a), text(a)], [true, 'hi'])
  t.deepEqual([isText(b), text(b)], [true, 'abc'])
  t.deepEqual([isText(c), [...c]], [false, [1, 2, 3]])
  t.deepEqual([isText(d), d.length], [false, 0])
  t.deepEqual(seen, ['text:6869', 'text:61|62|63', 'binary:01|0203', 'binary:'])
  client.close()
  t.is((await client.closed).code, 1000)
  t.deepEqual(client.errors, [])
})

test('in memory, the streamed maxMessageSize applies: one byte past fails with 1009', async (t) => {
  let error: unknown
  const handler: StreamHandler = async ({ source }) => {
    try {
      for await (const message of source) for await (const _ of message.chunks) {} // eslint-disable-line no-empty
    } catch (err) {
      error = err
    }
  }
  const client = await connectInMemory(handler, { messages: 'stream', maxMessageSize: 10 })
  await client.send({ type: 'binary', chunks: [new Uint8Array(6), new Uint8Array(5)] })
  // The client (same limit) still takes the server's close frame, reason and all: a clean close.
  t.deepEqual(await client.closed, { code: 1009, reason: 'message exceeds maxMessageSize', wasClean: true })
  t.is((error as { closeCode?: number }).closeCode, 1009)
})
