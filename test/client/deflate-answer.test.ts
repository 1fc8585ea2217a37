/**
 * connect() with permessage-deflate against raw servers: the offer it sends, and answers that
 * break RFC 7692 §7 (or answer an extension never offered) rejected with an UpgradeError 101.
 */

import test from 'ava'
import { connect, UpgradeError, type ConnectOptions } from '../../src/index.js'
import { startRawServer, switchingProtocols, type RawRequest } from './helpers.js'

async function answerWith (extensions: string | undefined, options: ConnectOptions): Promise<{ request: RawRequest | undefined, result: Promise<unknown> }> {
  let request: RawRequest | undefined
  const raw = await startRawServer((socket, req) => {
    request = req
    socket.write(switchingProtocols(req, extensions === undefined ? [] : [`Sec-WebSocket-Extensions: ${extensions}`]))
  })
  const result = connect(raw.url, { heartbeat: false, ...options }).then(async (conn) => {
    conn.close()
    await raw.close()
    return conn
  }, async (err: unknown) => {
    await raw.close()
    throw err
  })
  return { request: await result.then(() => request, () => request), result }
}

test('the offer: client_max_window_bits always, the rest as asked', async (t) => {
  const plain = await answerWith(undefined, { perMessageDeflate: true })
  t.is(plain.request?.headers['sec-websocket-extensions'], 'permessage-deflate; client_max_window_bits')
  const asked = await answerWith(undefined, { perMessageDeflate: { serverNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 11 } })
  t.is(asked.request?.headers['sec-websocket-extensions'], 'permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=11')
  const off = await answerWith(undefined, {})
  t.false('sec-websocket-extensions' in (off.request?.headers ?? {}))
})

const BAD: Array<[string, ConnectOptions, RegExp]> = [
  ['permessage-deflate', {}, /extension that was not offered/],
  ['x-webkit-deflate-frame', { perMessageDeflate: true }, /extension that was not offered/],
  ['permessage-deflate, permessage-deflate', { perMessageDeflate: true }, /more than once/],
  ['permessage-deflate; unknown=1', { perMessageDeflate: true }, /unknown parameter/],
  ['permessage-deflate; server_max_window_bits=16', { perMessageDeflate: true }, /server_max_window_bits/],
  ['permessage-deflate; client_max_window_bits', { perMessageDeflate: true }, /needs a value/],
  ['permessage-deflate; client_max_window_bits=12', { perMessageDeflate: { clientMaxWindowBits: 10 } }, /above the one offered/],
  ['permessage-deflate', { perMessageDeflate: { serverNoContextTakeover: true } }, /not accepted/],
  ['permessage-deflate; server_no_context_takeover; server_no_context_takeover', { perMessageDeflate: true }, /repeated/]
]

for (const [answer, options, reason] of BAD) {
  test(`an answer "${answer}" to ${JSON.stringify(options.perMessageDeflate ?? 'no offer')} rejects with UpgradeError 101`, async (t) => {
    const { result } = await answerWith(answer, options)
    const err = await t.throwsAsync(result, { instanceOf: UpgradeError })
    t.is(err?.status, 101)
    t.regex(err?.reason ?? '', reason)
  })
}

test('a server that declines (no extension in the 101) leaves the connection uncompressed', async (t) => {
  const { result } = await answerWith(undefined, { perMessageDeflate: true })
  await t.notThrowsAsync(result)
})
