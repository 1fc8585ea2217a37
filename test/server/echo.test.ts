/**
 * Echo through real Node clients (`ws` and undici's WebSocket) over ws://.
 */

import test from 'ava'
import map from 'it-map'
import { asText, isText, type Connection } from '../../src/index.js'
import { echoBattery, undiciKind, wsKind } from './clients.js'
import { echo, startServer, WsPeer } from './helpers.js'

for (const kind of [wsKind(), undiciKind()]) {
  test(`${kind.name}: echo battery (UTF-8, 256 byte values, empty, 1,000 in order, types kept, 16 MiB)`, async (t) => {
    t.timeout(90_000)
    const { url } = await startServer(t, { echo, '': echo })
    const client = await kind.open(url, ['echo'])
    t.is(client.protocol, 'echo')
    await echoBattery(t, client, { big: true })
    const closed = await client.close(1000, 'done')
    t.is(closed.code, 1000)
  })

  test(`${kind.name}: echo without a subprotocol uses the '' handler`, async (t) => {
    const { url } = await startServer(t, { '': echo })
    const client = await kind.open(url)
    t.is(client.protocol, '')
    client.send('plain')
    t.is(await client.next(), 'plain')
    await client.close(1000)
  })
}

test('a raised maxMessageSize lets a 20 MiB message through', async (t) => {
  t.timeout(90_000)
  const { url } = await startServer(t, { '': echo }, { maxMessageSize: 20 * 1024 * 1024 })
  const peer = await WsPeer.open(url, undefined, { maxPayload: 64 * 1024 * 1024 })
  const big = Buffer.alloc(20 * 1024 * 1024, 0xab)
  await peer.send(big)
  const back = await peer.next(60_000)
  t.true(back.isBinary)
  t.true(back.data.equals(big))
  await peer.close(1000)
})

test('40 pipelined large messages, split across reads, each come back intact and in order', async (t) => {
  // Gathered into their final buffers from the first part (up to 64 KiB) or from half arrived:
  // a buffer shared or reused too early would show here as wrong bytes.
  t.timeout(60_000)
  const { url } = await startServer(t, { '': echo })
  const peer = await WsPeer.open(url)
  const sizes = [16 * 1024, 100_000, 300_000, 1024 * 1024]
  const sent: Buffer[] = []
  for (let i = 0; i < 40; i++) {
    const m = Buffer.alloc(sizes[i % sizes.length], i + 1)
    m[0] = i
    sent.push(m)
    void peer.send(m)
  }
  for (let i = 0; i < sent.length; i++) {
    const back = await peer.next(30_000)
    t.true(back.data.equals(sent[i]), `message ${i}`)
  }
  await peer.close(1000)
})

test('strings a handler sends go as text, bytes as binary, received text re-sent as text', async (t) => {
  const { url } = await startServer(t, {
    '': async ({ source, sink }) => {
      await sink(map(source, (m) => {
        const s = Buffer.from(m).toString()
        if (s === 'as-string') return 'reply'
        if (s === 'as-bytes') return new TextEncoder().encode('reply')
        if (s === 'as-text-bytes') return asText(new TextEncoder().encode('reply'))
        return m
      }))
    }
  })
  const peer = await WsPeer.open(url)
  await peer.send('as-string')
  t.false((await peer.next()).isBinary)
  await peer.send('as-bytes')
  t.true((await peer.next()).isBinary)
  await peer.send('as-text-bytes')
  t.false((await peer.next()).isBinary)
  await peer.send('other')
  t.false((await peer.next()).isBinary, 'received text passed back is text')
  await peer.send(Buffer.from('other'))
  t.true((await peer.next()).isBinary, 'received binary passed back is binary')
  await peer.close(1000)
})

test('isText tells received text from binary in the handler', async (t) => {
  const kinds: boolean[] = []
  let conn: Connection | undefined
  const { url } = await startServer(t, {
    '': async (c) => {
      conn = c
      for await (const m of c.source) {
        kinds.push(isText(m))
        if (kinds.length === 2) break
      }
    }
  })
  const peer = await WsPeer.open(url)
  await peer.send('t')
  await peer.send(Buffer.from('b'))
  t.deepEqual(await peer.closed, { code: 1000, reason: '' })
  t.deepEqual(kinds, [true, false])
  t.is((await conn!.closed).code, 1000)
})

test('the connection knows its path, url, headers and remote address', async (t) => {
  let seen: { path: string, url: string, header: unknown, remote: string | undefined, port: number | undefined } | undefined
  const { url } = await startServer(t, {
    chat: (c) => { seen = { path: c.path, url: c.url, header: c.headers['x-test'], remote: c.remoteAddress, port: c.remotePort } }
  })
  const peer = new WsPeer(`${url}/room/1?user=a`, 'chat', { headers: { 'X-Test': 'yes' } })
  t.deepEqual(await peer.closed, { code: 1000, reason: '' })
  t.deepEqual({ ...seen, port: typeof seen?.port }, { path: '/room/1', url: '/room/1?user=a', header: 'yes', remote: '127.0.0.1', port: 'number' })
})
