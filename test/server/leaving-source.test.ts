/**
 * Leaving `source` early (a `break` out of `for await`, `first(conn.source)`, any `return()` on
 * its iterator) means "done reading". WebSocket has no half-close, so the connection closes
 * with 1000 once the sending side is done too: at once when no sink is running, otherwise when
 * the sink's iterable ends (1011 if it throws). One rule, on the server and on the client, over
 * sockets and in memory.
 */

import { inspect } from 'node:util'
import test from 'ava'
import { connect, type Connection } from '../../src/index.js'
import { connectInMemory, take, text } from '../../src/testing.js'
import { deferred, startServer, within, WsPeer } from './helpers.js'

/** What `it-first` does: the first item, then `return()` on the iterator. */
async function first<T> (source: AsyncIterable<T>): Promise<T | undefined> {
  for await (const item of source) return item
  return undefined
}

/** A bounded iterable whose end the test decides. */
function gate (): { iterable: AsyncIterable<string>, push: (m: string) => void, end: (err?: Error) => void } {
  const queue: string[] = []
  let ended: { err?: Error } | undefined
  let wake: (() => void) | undefined
  return {
    push: (m) => { queue.push(m); wake?.() },
    end: (err) => { ended = { err }; wake?.() },
    iterable: (async function * () {
      for (let i = 0; i < 1000; i++) {
        const m = queue.shift()
        if (m !== undefined) { yield m; continue }
        if (ended !== undefined) {
          if (ended.err !== undefined) throw ended.err
          return
        }
        await new Promise<void>((resolve) => { wake = resolve })
        wake = undefined
      }
    })()
  }
}

/** Resolves when the connection starts closing (the handler keeps running meanwhile). */
const closing = (conn: Connection): Promise<void> => new Promise((resolve) => {
  if (conn.signal.aborted) resolve()
  else conn.signal.addEventListener('abort', () => resolve())
})

test('server: a break with no sink running closes with 1000 at once, though the handler goes on', async (t) => {
  const handlerDone = deferred<undefined>()
  const seen: string[] = []
  const { url } = await startServer(t, {
    '': async (conn) => {
      for await (const m of conn.source) {
        seen.push(text(m))
        break
      }
      await closing(conn)
      handlerDone.resolve(undefined)
    }
  })
  const peer = await WsPeer.open(url)
  peer.ws.send('one')
  peer.ws.send('two')
  t.deepEqual(await within(peer.closed, 5000, 'the server closes'), { code: 1000, reason: '' })
  t.deepEqual(seen, ['one'], 'later messages are dropped, not queued')
  await within(handlerDone.promise, 5000, 'the handler went on after the break')
})

test('server: first(source) while the sink runs closes with 1000 when the sink ends', async (t) => {
  const out = gate()
  let server: Connection | undefined
  const { url } = await startServer(t, {
    '': async (conn) => {
      server = conn
      const sending = conn.sink(out.iterable)
      const m = await first(conn.source)
      out.push(`got ${text(m!)}`)
      await sending
      await closing(conn)
    }
  })
  const peer = await WsPeer.open(url)
  peer.ws.send('hello')
  t.is((await peer.next()).data.toString(), 'got hello')
  out.push('still sending')
  t.is((await peer.next()).data.toString(), 'still sending', 'the sink goes on after the source was returned')
  // A ping's pong: the server has handled all before it, and is still open.
  await within(new Promise<void>((resolve) => { peer.ws.once('pong', () => resolve()); peer.ws.ping() }), 5000, 'the pong')
  t.false(server!.signal.aborted, 'open while the sink runs')
  out.end()
  t.deepEqual(await within(peer.closed, 5000, 'closed once the sink ended'), { code: 1000, reason: '' })
})

test('server: a sink that throws after the source was returned closes with 1011', async (t) => {
  const out = gate()
  const { url } = await startServer(t, {
    '': async (conn) => {
      const sending = conn.sink(out.iterable).catch(() => {})
      await first(conn.source)
      out.end(new Error('the producer failed'))
      await sending
      await closing(conn)
    }
  })
  const peer = await WsPeer.open(url)
  peer.ws.send('x')
  t.is((await within(peer.closed, 5000, 'closed')).code, 1011)
})

test('server: an it-take style transform that returns the source inside pipe closes when its sink ends', async (t) => {
  const { url } = await startServer(t, {
    '': async (conn) => {
      void conn.sink((async function * () {
        let n = 0
        for await (const m of conn.source) {
          yield m
          if (++n === 2) return
        }
      })())
      await closing(conn)
    }
  })
  const peer = await WsPeer.open(url)
  for (const m of ['a', 'b', 'c']) peer.ws.send(m)
  t.is((await peer.next()).data.toString(), 'a')
  t.is((await peer.next()).data.toString(), 'b')
  t.deepEqual(await within(peer.closed, 5000, 'closed after two'), { code: 1000, reason: '' })
})

test('client: the README snippet (send, next(), send, break) ends cleanly with 1000', async (t) => {
  const serverSaw = deferred<{ code: number, wasClean: boolean }>()
  const { url } = await startServer(t, {
    echo: async (conn) => {
      await conn.sink(conn.source)
      const { code, wasClean } = await conn.closed
      serverSaw.resolve({ code, wasClean })
    }
  })
  const logged: unknown[] = []
  const log = (x: unknown): void => { logged.push(x) }
  // README.md's client snippet, with console.log captured.
  const conn = await connect(`${url}/`, { protocols: ['echo'] })
  await conn.send('hello')
  const { value: reply } = await conn.source.next()
  log(new TextDecoder().decode(reply))
  await conn.send('again')
  for await (const message of conn.source) {
    log(message)
    break
  }
  log(await within(conn.closed, 5000, 'closed'))
  t.deepEqual(logged, ['hello', new Uint8Array([97, 103, 97, 105, 110]), { code: 1000, reason: '', wasClean: true }])
  t.is(inspect(logged[1]), 'Uint8Array(5) [ 97, 103, 97, 105, 110 ]', 'prints as the README says')
  t.deepEqual(await within(serverSaw.promise, 5000, 'the server saw the close'), { code: 1000, wasClean: true })
})

test('client: first(source) with no sink closes right away; next() reads without closing', async (t) => {
  const { url } = await startServer(t, {
    '': async ({ sink, closed }) => { await sink(['one', 'two', 'three']); await closed }
  })
  const conn = await connect(url)
  const r = await conn.source.next()
  t.is(text(r.value as Uint8Array), 'one', 'next() reads one message')
  t.false(conn.signal.aborted, 'and leaves the connection open')
  t.is(text((await first(conn.source))!), 'two')
  t.deepEqual(await within(conn.closed, 5000, 'returning the source closes, though the server would keep the connection open'), { code: 1000, reason: '', wasClean: true })
  t.deepEqual(await conn.source.next(), { done: true, value: undefined }, 'the source stays ended')
})

test('client: messages sent with send() before the break still arrive, then the close', async (t) => {
  const got: string[] = []
  const read = deferred<undefined>()
  const { url } = await startServer(t, {
    '': async ({ source, sink }) => {
      void sink(['ready'])
      for await (const m of source) got.push(text(m))
      read.resolve(undefined)
    }
  })
  const conn = await connect(url)
  t.is(text((await conn.source.next()).value as Uint8Array), 'ready')
  // Not through sink: send() does not hold the connection open once the source is returned.
  await conn.send('a')
  await conn.send('b')
  await conn.source.return!()
  t.is((await within(conn.closed, 5000, 'closed')).code, 1000)
  await within(read.promise, 5000, 'the server read to the end')
  t.deepEqual(got, ['a', 'b'])
})

test('in memory: the same rule', async (t) => {
  const client = await connectInMemory(async ({ source, sink }) => {
    await sink(['x', 'y'])
    for await (const m of source) void m
  })
  const [x] = await take(client.source, 1)
  t.is(text(x), 'x')
  for await (const m of client.source) { t.is(text(m), 'y'); break }
  t.deepEqual(await within(client.closed, 5000, 'closed'), { code: 1000, reason: '', wasClean: true })
  t.deepEqual(client.errors, [])
})

test('a throw out of for await (which returns the source too) still closes with 1011, the handler\'s error', async (t) => {
  const client = await connectInMemory(async ({ source }) => {
    for await (const m of source) throw new Error(`cannot handle ${text(m)}`)
  })
  await client.sink(['this'])
  t.is((await within(client.closed, 5000, 'closed')).code, 1011)
  t.is((client.errors[0] as Error).message, 'cannot handle this')
})

test('a handler that catches the error of a returned source picks the close code itself', async (t) => {
  const client = await connectInMemory(async (conn) => {
    try {
      await conn.sink((async function * () {
        for await (const m of conn.source) {
          if (text(m) === 'bad') throw new Error('bad input')
          yield m
        }
      })())
    } catch {
      conn.close(4002, 'bad input')
    }
  })
  await client.sink(['ok', 'bad'])
  t.is(text((await client.source.next()).value), 'ok')
  t.deepEqual(await within(client.closed, 5000, 'closed'), { code: 4002, reason: 'bad input', wasClean: true })
})
