/**
 * A handler written with braces and no `return` — `({ source, sink }) => { sink(source) }` —
 * returns before its sink is done, so the connection closes at once with 1000 (the contract: the
 * handler settling closes it). That is almost surely a missing `return`, and it used to be
 * silent: the client saw its first send rejected and a clean close. It is now logged as an error
 * saying what to do; the connection still closes as the contract says. A handler whose sink was
 * done by the time it returned (a synchronous iterable) is not a mistake and logs nothing.
 */

import test from 'ava'
import { WebSocketServer, connect, type Connection } from '../../src/index.js'
import { collect, connectInMemory, text } from '../../src/testing.js'
import { captureLogger } from './helpers.js'

test('a handler that drops its sink\'s promise is logged as an error naming the fix; the connection still closes with 1000', async (t) => {
  const { logger, entries } = captureLogger()
  const client = await connectInMemory(({ source, sink }: Connection) => { void sink(source) }, { logger, protocol: 'echo', url: '/echo' })
  t.deepEqual(await collect(client.source), [])
  t.is((await client.closed).code, 1000)
  const errors = entries.filter((e) => e.level === 'error')
  t.is(errors.length, 1)
  t.regex(String(errors[0].msg), /handler returned before its sink was done/)
  t.regex(String(errors[0].obj.err?.message), /return \(or await\) the sink's promise/)
  t.like(errors[0].obj, { protocol: 'echo', path: '/echo' })
})

test('over a socket, with the default logger: the line goes to stderr', async (t) => {
  const lines: unknown[][] = []
  const stderr = console.error
  console.error = (...args: unknown[]) => { lines.push(args) }
  t.teardown(() => { console.error = stderr })
  const server = new WebSocketServer().register('echo', ({ source, sink }) => { void sink(source) })
  const { port } = await server.listen({ port: 0 })
  t.teardown(() => server.close())
  const conn = await connect(`ws://127.0.0.1:${port}/`, { protocols: ['echo'] })
  t.is((await conn.closed).code, 1000)
  await server.close()
  console.error = stderr
  t.is(lines.length, 1)
  t.regex(String(lines[0][0]), /handler returned before its sink was done/)
})

test('a handler whose sink was done when it returned (a synchronous iterable) logs nothing', async (t) => {
  const { logger, entries } = captureLogger()
  const client = await connectInMemory(({ sink }: Connection) => { void sink(['bye', 'bye again']) }, { logger })
  t.deepEqual(text(await collect(client.source)), ['bye', 'bye again'])
  t.is((await client.closed).code, 1000)
  t.deepEqual(entries, [])
  t.deepEqual(client.errors, [])
})

test('returning the sink\'s promise, or awaiting it, logs nothing', async (t) => {
  for (const handler of [
    ({ source, sink }: Connection) => sink(source),
    async ({ source, sink }: Connection) => { await sink(source) }
  ]) {
    const { logger, entries } = captureLogger()
    const client = await connectInMemory(handler, { logger })
    await client.send('hi')
    const { value } = await client.source.next()
    t.is(text(value as Uint8Array), 'hi')
    client.close()
    await client.closed
    t.deepEqual(entries, [])
  }
})
