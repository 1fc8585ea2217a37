/**
 * The pure side of RFC 8441: validateConnectRequest's answers row by row, the 200 and the
 * refusal headers; and `conn.httpVersion` of an in-memory connection ('1.1', as it stands for an
 * upgraded HTTP/1.1 connection).
 */

import test from 'ava'
import { HandshakeError } from '../../src/errors.js'
import { buildConnectResponse, buildRefusalHeaders, isExtendedConnect, validateConnectRequest } from '../../src/http2/handshake.js'
import { connectInMemory } from '../../src/testing.js'

const base = { ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'https', ':path': '/chat?x=1', ':authority': 'example.com', 'sec-websocket-version': '13' }

test('a valid extended CONNECT: url, offers, origin, key', (t) => {
  const v = validateConnectRequest({ ...base, 'sec-websocket-protocol': 'chat, superchat', 'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits', origin: 'http://www.example.com' })
  t.is(v.url, '/chat?x=1')
  t.deepEqual(v.protocols, ['chat', 'superchat'])
  t.is(v.extensions[0].name, 'permessage-deflate')
  t.is(v.origin, 'http://www.example.com')
  t.is(v.key, undefined)
})

test('isExtendedConnect: CONNECT with :protocol only', (t) => {
  t.true(isExtendedConnect(base))
  t.false(isExtendedConnect({ ...base, ':protocol': undefined }))
  t.false(isExtendedConnect({ ...base, ':method': 'GET' }))
})

const refused: Array<[string, Record<string, string | undefined>, number]> = [
  ['another :protocol', { ':protocol': 'connect-udp' }, 501],
  ['no :scheme', { ':scheme': undefined }, 400],
  ['no :path', { ':path': undefined }, 400],
  ['no :authority', { ':authority': undefined }, 400],
  ['a :path that is not a path', { ':path': 'chat' }, 400],
  ['no sec-websocket-version', { 'sec-websocket-version': undefined }, 400],
  ['sec-websocket-version 8', { 'sec-websocket-version': '8' }, 400],
  ['an empty subprotocol list', { 'sec-websocket-protocol': ',' }, 400],
  ['a malformed extension offer', { 'sec-websocket-extensions': 'permessage-deflate; =x' }, 400]
]

for (const [title, change, status] of refused) {
  test(`refused: ${title} → ${status}`, (t) => {
    const err = t.throws(() => validateConnectRequest({ ...base, ...change }), { instanceOf: HandshakeError })
    t.is(err?.status, status)
  })
}

test('the version refusal names version 13', (t) => {
  const err = t.throws(() => validateConnectRequest({ ...base, 'sec-websocket-version': '8' }), { instanceOf: HandshakeError })
  t.deepEqual(err?.headers, { 'sec-websocket-version': '13' })
})

test('the 200 carries the choices, and an accept only for a key', (t) => {
  t.deepEqual(buildConnectResponse('', undefined, undefined), { ':status': 200 })
  t.deepEqual(buildConnectResponse('chat', 'permessage-deflate', 'abc='), { ':status': 200, 'sec-websocket-protocol': 'chat', 'sec-websocket-extensions': 'permessage-deflate', 'sec-websocket-accept': 'abc=' })
})

test('a refusal leaves out the headers HTTP/2 forbids (RFC 9113 §8.2.2)', (t) => {
  const h = buildRefusalHeaders(new HandshakeError(426, 'x', { Upgrade: 'websocket', Connection: 'close', 'WWW-Authenticate': 'Bearer' }), 2)
  t.deepEqual(h, { ':status': 426, 'content-type': 'text/plain; charset=utf-8', 'content-length': 2, 'www-authenticate': 'Bearer' })
})

test('connectInMemory: httpVersion is 1.1 on both ends', async (t) => {
  let seen: string | undefined
  const client = await connectInMemory((conn) => { seen = conn.httpVersion; return conn.sink(conn.source) })
  t.is(client.httpVersion, '1.1')
  await client.send('x')
  await client.source.next()
  t.is(seen, '1.1')
  client.close()
  await client.closed
})
