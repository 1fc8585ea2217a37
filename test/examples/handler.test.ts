import test from 'ava'
import { pipe } from 'it-pipe'
import { asText, CloseCode, isText, type OutgoingMessage } from '../../src/index.js'
import { collect, connectInMemory, duplexPair, take, text } from '../../src/testing.js'
import { calculator } from '../../examples/json.js'
import { shout, uppercase } from '../../examples/uppercase.js'

test('uppercase: text comes back in capitals, binary unchanged', async (t) => {
  const client = await connectInMemory(uppercase)
  await client.sink(['hello', new Uint8Array([1, 2])])
  const [reply, bytes] = await take(client.source, 2)
  t.true(isText(reply))
  t.is(text(reply), 'HELLO')
  t.false(isText(bytes))
  t.deepEqual([...bytes], [1, 2])
  client.close()
  t.deepEqual(await client.closed, { code: 1000, reason: '', wasClean: true })
  t.deepEqual(client.errors, [])
})

test('uppercase: a message over maxMessageSize is refused with 1009', async (t) => {
  const client = await connectInMemory(uppercase, { maxMessageSize: 1024 })
  await client.sink(['a'.repeat(2048)])
  t.is((await client.closed).code, CloseCode.MessageTooBig)
  t.deepEqual(client.errors, [], 'the peer\'s fault, not a handler error')
})

test('calculator: one JSON response per request, in order', async (t) => {
  const client = await connectInMemory(calculator, { protocol: 'calculator' })
  await client.sink([
    JSON.stringify({ id: 1, op: 'add', args: [1, 2] }),
    JSON.stringify({ id: 2, op: 'mul', args: [3, 4] })
  ])
  const replies = text(await take(client.source, 2)).map((s) => JSON.parse(s))
  t.deepEqual(replies, [{ id: 1, result: 3 }, { id: 2, result: 12 }])
  client.close()
  await client.closed
})

test('calculator: a message that is not JSON closes with 1007', async (t) => {
  const client = await connectInMemory(calculator)
  await client.sink(['{oops'])
  t.deepEqual(await collect(client.source), [])
  const { code, reason } = await client.closed
  t.is(code, CloseCode.InvalidPayload)
  t.is(reason, 'a message is not valid JSON')
})

test('a handler that throws closes with 1011; the error stays on the server side', async (t) => {
  const client = await connectInMemory(async ({ source }) => {
    for await (const message of source) throw new Error(`cannot handle ${text(message)}`)
  })
  await client.sink(['this'])
  t.deepEqual(await collect(client.source), [], 'no reply, and the source ends with the close')
  const { code, reason } = await client.closed
  t.is(code, CloseCode.InternalError)
  t.is(reason, '', 'nothing about the error reaches the peer')
  t.is((client.errors[0] as Error).message, 'cannot handle this')
})

test('shout, the transform alone: duplexPair, no framing', async (t) => {
  const [client, server] = duplexPair<Uint8Array, OutgoingMessage>()
  const handler = pipe(server, shout, server)
  const [replies] = await Promise.all([
    collect(client.source),
    client.sink([asText(new TextEncoder().encode('quiet')), new Uint8Array([7])])
  ])
  await handler
  t.deepEqual(replies, ['QUIET', new Uint8Array([7])])
})
