/** examples/uppercase.ts over real sockets: pipe(conn, map(f), conn) on the server, pipe on the client too. */

import test from 'ava'
import { pipe } from 'it-pipe'
import { connect, isText } from '../../src/index.js'
import { take, text } from '../../src/testing.js'
import { createServer } from '../../examples/uppercase.js'
import { listen, runExample } from './helpers.js'

test('text comes back in capitals, binary unchanged, one reply per message', async (t) => {
  const server = createServer()
  const url = await listen(server)
  try {
    const conn = await connect(url, { protocols: ['uppercase'] })
    t.is(conn.protocol, 'uppercase')
    await pipe(['hello', 'wörld', new Uint8Array([104, 105])], conn)
    const replies = await pipe(conn, (source) => take(source, 3))
    t.deepEqual(text(replies.slice(0, 2)), ['HELLO', 'WÖRLD'])
    t.true(isText(replies[0]))
    t.false(isText(replies[2]))
    t.deepEqual([...replies[2]], [104, 105])
    conn.close()
    t.deepEqual(await conn.closed, { code: 1000, reason: '', wasClean: true })
  } finally {
    await server.close()
  }
})

test('many messages: every one transformed, in order', async (t) => {
  const server = createServer()
  const url = await listen(server)
  try {
    const conn = await connect(url)
    const words = Array.from({ length: 1000 }, (_, i) => `word ${i}`)
    const [, replies] = await Promise.all([conn.sink(words), take(conn.source, words.length)])
    t.deepEqual(text(replies), words.map((w) => w.toUpperCase()))
    conn.close()
    await conn.closed
  } finally {
    await server.close()
  }
})

test('runnable: `tsx examples/uppercase.ts --port 0` prints its URL and serves it', async (t) => {
  const example = await runExample('uppercase')
  try {
    t.regex(example.url, /^ws:\/\/127\.0\.0\.1:\d+\/$/)
    const conn = await connect(example.url)
    await conn.sink(['over a child process'])
    t.deepEqual(text(await take(conn.source, 1)), ['OVER A CHILD PROCESS'])
    conn.close()
    await conn.closed
  } finally {
    t.is(await example.stop(), 0, 'exits cleanly on SIGTERM')
  }
})
