/** examples/json.ts: the calculator, built from wspipe's json.decode / json.encode, on both ends of a real socket. */

import test from 'ava'
import { pipe } from 'it-pipe'
import { connect, isText, json, JsonDecodeError } from '../../src/index.js'
import { collect, take } from '../../src/testing.js'
import { createServer, type Request, type Response } from '../../examples/json.js'
import { listen, runExample } from './helpers.js'

test('json.encode sends text messages; json.decode parses text and binary', async (t) => {
  const encoded = await collect(json.encode([{ a: 1 }, [1, 2], 'x', null]))
  t.deepEqual(encoded, ['{"a":1}', '[1,2]', '"x"', 'null'])
  const messages = (async function * () {
    yield new TextEncoder().encode('{"b":[true]}')
    yield new TextEncoder().encode('3')
  })()
  t.deepEqual(await collect(json.decode(messages)), [{ b: [true] }, 3])
})

test('json.decode throws JsonDecodeError on a message that is not JSON, after the good ones', async (t) => {
  const seen: unknown[] = []
  const messages = (async function * () {
    yield new TextEncoder().encode('1')
    yield new TextEncoder().encode('{nope')
  })()
  await t.throwsAsync(async () => { for await (const v of json.decode(messages)) seen.push(v) }, { instanceOf: JsonDecodeError })
  t.deepEqual(seen, [1])
})

test('the calculator answers each JSON request with a JSON response, in order', async (t) => {
  const server = createServer()
  const url = await listen(server)
  try {
    const conn = await connect(url, { protocols: ['calculator'] })
    const requests: Request[] = [
      { id: 1, op: 'add', args: [1, 2, 3] },
      { id: 2, op: 'mul', args: [2, 3, 4] },
      { id: 3, op: 'pow' as 'add', args: [2] }
    ]
    await pipe(requests, json.encode, conn)
    const responses = await pipe(conn, (source) => take(source, requests.length))
    t.true(responses.every(isText), 'responses are text messages')
    t.deepEqual(await collect(json.decode<Response>(responses)), [
      { id: 1, result: 6 },
      { id: 2, result: 24 },
      { id: 3, error: 'unknown op: pow' }
    ])
    conn.close()
    t.is((await conn.closed).code, 1000)
  } finally {
    await server.close()
  }
})

test('a message that is not JSON closes the connection with 1007', async (t) => {
  const server = createServer()
  const url = await listen(server)
  try {
    const conn = await connect(url)
    await conn.sink(['{"id":1,"op":"add","args":[1]}', 'not json'])
    t.deepEqual(await collect(json.decode(conn.source)), [{ id: 1, result: 1 }])
    t.deepEqual(await conn.closed, { code: 1007, reason: 'a message is not valid JSON', wasClean: true })
  } finally {
    await server.close()
  }
})

test('runnable: `tsx examples/json.ts --port 0` prints its URL and serves it', async (t) => {
  const example = await runExample('json')
  try {
    const conn = await connect(example.url)
    await conn.sink(['{"id":7,"op":"mul","args":[6,7]}'])
    t.deepEqual(await collect(json.decode(await take(conn.source, 1))), [{ id: 7, result: 42 }])
    conn.close()
    await conn.closed
  } finally {
    t.is(await example.stop(), 0)
  }
})
