/**
 * json (exported by wspipe): json.decode parses each message (text or binary) as UTF-8 JSON and
 * throws a JsonDecodeError (closeCode 1007) on one that is not; json.encode makes text messages.
 */

import test from 'ava'
import { pipe } from 'it-pipe'
import { CloseCode, isText, json, JsonDecodeError } from '../../src/index.js'
import { collect, connectInMemory, take, text } from '../../src/testing.js'

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

test('decode: text and binary messages to values; encode: values to strings', async (t) => {
  t.deepEqual(await collect(json.decode([utf8('{"a":[1,"é"]}'), utf8('null')])), [{ a: [1, 'é'] }, null])
  t.deepEqual(await collect(json.encode([{ a: 1 }, 'x', 2])), ['{"a":1}', '"x"', '2'])
})

test('decode: not JSON, or not UTF-8, is a JsonDecodeError with closeCode 1007 and the parser\'s cause', async (t) => {
  for (const bad of [utf8('{oops'), new Uint8Array([0x22, 0xff, 0x22])]) {
    const err = await t.throwsAsync(collect(json.decode([bad])), { instanceOf: JsonDecodeError })
    t.is(err!.closeCode, CloseCode.InvalidPayload)
    t.is(err!.code, 'WS_ERR_JSON_DECODE')
    t.true(err!.cause instanceof Error)
  }
})

test('a JSON handler in a pipeline: requests in, text responses out; bad JSON closes with 1007', async (t) => {
  const handler = async (conn: Parameters<Parameters<typeof connectInMemory>[0]>[0]): Promise<void> => {
    try {
      await pipe(conn, json.decode<{ n: number }>, async function * (requests) {
        for await (const r of requests) yield { double: r.n * 2 }
      }, json.encode, conn)
    } catch (err) {
      if (!(err instanceof JsonDecodeError)) throw err
      conn.close(err.closeCode, err.message)
    }
  }
  const client = await connectInMemory(handler)
  await client.send(JSON.stringify({ n: 21 }))
  const [reply] = await take(client.source, 1)
  t.true(isText(reply))
  t.deepEqual(JSON.parse(text(reply)), { double: 42 })
  await client.send('{oops')
  t.deepEqual(await client.closed, { code: 1007, reason: 'a message is not valid JSON', wasClean: true })
  t.deepEqual(client.errors, [])
})
