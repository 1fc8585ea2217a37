/**
 * `trustProxy`: `conn.remoteAddress` from `X-Forwarded-For`, trusting only the given number of
 * proxies (entries from the end); off by default, where the header, which any client can send,
 * is ignored.
 */

import test from 'ava'
import { connect, WebSocketServer, type WebSocketServerOptions } from '../../src/index.js'
import { forwardedFor } from '../../src/server.js'

async function addressSeen (options: WebSocketServerOptions, header: string | undefined): Promise<string | undefined> {
  let seen: string | undefined
  const server = new WebSocketServer(options).register('', (conn) => { seen = conn.remoteAddress })
  const { port } = await server.listen({ port: 0 })
  try {
    const conn = await connect(`ws://127.0.0.1:${port}/`, { headers: header === undefined ? {} : { 'X-Forwarded-For': header } })
    await conn.closed
    return seen
  } finally {
    await server.close()
  }
}

test('off by default: the socket address, whatever X-Forwarded-For says', async (t) => {
  t.is(await addressSeen({}, '6.6.6.6'), '127.0.0.1')
  t.is(await addressSeen({ trustProxy: false }, '6.6.6.6'), '127.0.0.1')
})

test('trustProxy: 1 (or true) takes the last entry, the one the trusted proxy wrote; a longer count reaches further left', async (t) => {
  t.is(await addressSeen({ trustProxy: true }, '6.6.6.6, 10.0.0.7'), '10.0.0.7')
  t.is(await addressSeen({ trustProxy: 1 }, '6.6.6.6, 10.0.0.7'), '10.0.0.7')
  t.is(await addressSeen({ trustProxy: 2 }, '6.6.6.6, 10.0.0.7'), '6.6.6.6')
  t.is(await addressSeen({ trustProxy: 1 }, undefined), '127.0.0.1', 'no header: the socket address')
})

test('forwardedFor: lists, several header lines, blanks, and fewer entries than proxies', (t) => {
  t.is(forwardedFor('a, b ,c', 1), 'c')
  t.is(forwardedFor('a, b ,c', 3), 'a')
  t.is(forwardedFor('a, b', 5), 'a')
  t.is(forwardedFor(['a, b', 'c'], 2), 'b')
  t.is(forwardedFor(' , ', 1), undefined)
  t.is(forwardedFor(undefined, 1), undefined)
})

test('trustProxy must be a boolean or a count', (t) => {
  t.throws(() => new WebSocketServer({ trustProxy: -1 }), { instanceOf: RangeError })
  t.throws(() => new WebSocketServer({ trustProxy: 1.5 }), { instanceOf: RangeError })
})
