/**
 * `trustProxy`: `conn.remoteAddress` from `X-Forwarded-For`, trusting only the given number of
 * proxies (entries from the end); off by default, where the header, which any client can send,
 * is ignored. Only an IP address is taken from it; anything else leaves the socket's address.
 */

import test from 'ava'
import { connect, WebSocketServer, type WebSocketServerOptions } from '../../src/index.js'
import { forwardedFor } from '../../src/upgrade-request.js'
import { RawClient, until } from './helpers.js'

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
  t.is(forwardedFor('1.0.0.1, 1.0.0.2 ,1.0.0.3', 1), '1.0.0.3')
  t.is(forwardedFor('1.0.0.1, 1.0.0.2 ,1.0.0.3', 3), '1.0.0.1')
  t.is(forwardedFor('1.0.0.1, 1.0.0.2', 5), '1.0.0.1')
  t.is(forwardedFor(['1.0.0.1, 1.0.0.2', '1.0.0.3'], 2), '1.0.0.2')
  t.is(forwardedFor(' , ', 1), undefined)
  t.is(forwardedFor(undefined, 1), undefined)
})

test('trustProxy: an entry that is not an IP address is not an address: the socket\'s is kept', async (t) => {
  const seen: Array<string | undefined> = []
  const server = new WebSocketServer({ trustProxy: 1 }).register('', (conn) => { seen.push(conn.remoteAddress) })
  const { port } = await server.listen({ port: 0 })
  t.teardown(() => server.close())
  const values = [
    '<script>alert(1)</script>',
    '1.2.3.4:5555',
    '"1.2.3.4"',
    '1.2.3.4 5.6.7.8',
    '1.2.3.4\u00e9', // UTF-8 on the wire: bytes ≥ 0x80
    'unknown',
    '6.6.6.6, not-an-address', // the trusted entry is bad: not the one before it either
    '256.1.1.1',
    '[::1]:443',
    '[2001:db8::7]', // a bracketed IPv6 address is one
    '2001:db8::8',
    '  10.0.0.9  '
  ]
  for (const value of values) {
    const client = await RawClient.connect(port, { headers: { 'X-Forwarded-For': value } })
    await until(() => seen.length === values.indexOf(value) + 1, 5000, `the handler ran for ${value}`)
    client.destroy()
  }
  t.deepEqual(seen, [...Array(9).fill('127.0.0.1'), '2001:db8::7', '2001:db8::8', '10.0.0.9'])
})

test('forwardedFor: only an IP address (IPv4, IPv6, bracketed IPv6) is returned', (t) => {
  t.is(forwardedFor('1.2.3.4', 1), '1.2.3.4')
  t.is(forwardedFor('::ffff:1.2.3.4', 1), '::ffff:1.2.3.4')
  t.is(forwardedFor('[2001:db8::1]', 1), '2001:db8::1')
  for (const bad of ['<script>', '1.2.3.4:80', '[1.2.3.4]', '[2001:db8::1]:80', '"::1"', 'localhost', '\u00ff', '1.2.3', '[]']) {
    t.is(forwardedFor(bad, 1), undefined, bad)
  }
  // The entry the count points at decides; a bad one is not replaced by its neighbour.
  t.is(forwardedFor('1.1.1.1, x', 1), undefined)
  t.is(forwardedFor('x, 2.2.2.2', 2), undefined)
  t.is(forwardedFor('x', 3), undefined)
})

test('trustProxy must be a boolean or a count', (t) => {
  t.throws(() => new WebSocketServer({ trustProxy: -1 }), { instanceOf: RangeError })
  t.throws(() => new WebSocketServer({ trustProxy: 1.5 }), { instanceOf: RangeError })
})
