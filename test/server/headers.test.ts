// conn.headers: the request's headers for the handler, less the ones the handshake consumed.
import test from 'ava'
import WebSocket from 'ws'
import type { Connection } from '../../src/index.js'
import { startServer } from './helpers.js'

test('conn.headers carries the application headers and omits the handshake\'s own', async (t) => {
  let seen: Connection['headers'] | undefined
  const { url } = await startServer(t, {
    '': async (conn) => { seen = conn.headers }
  })
  const ws = new WebSocket(url, { headers: { 'X-Tenant': 'acme', Cookie: 'a=1' } })
  await new Promise<void>((resolve, reject) => { ws.once('close', () => resolve()); ws.once('error', reject) })
  t.is(seen?.['x-tenant'], 'acme')
  t.is(seen?.cookie, 'a=1')
  t.is(typeof seen?.host, 'string')
  for (const name of ['sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'upgrade', 'connection']) {
    t.false(name in (seen ?? {}), name)
  }
})
