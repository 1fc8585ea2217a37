/**
 * Heartbeats: a peer that stops answering pings is dropped after the pong timeout; a live peer
 * (the `ws` client answers pings by itself) stays open. Generous margins, no timing asserts
 * beyond "not before the interval".
 */

import test from 'ava'
import type { Connection } from '../../src/index.js'
import { clientFrame, closePayload, echo, RawClient, sleep, startServer, until, within, WsPeer } from './helpers.js'

test('a peer that never answers pings is closed after the pong timeout (1006, not clean)', async (t) => {
  t.timeout(30_000)
  let conn: Connection | undefined
  const { port, entries } = await startServer(t, { '': async (c) => { conn = c; await echo(c) } }, { heartbeat: { interval: 200, timeout: 200 } })
  const started = Date.now()
  const client = await RawClient.connect(port)
  // The raw client reads (so it sees the ping) but never answers.
  const ping = await client.nextFrame(10_000)
  t.is(ping?.opcode, 9)
  await client.waitClosed(10_000)
  t.true(Date.now() - started >= 350, 'not before interval + timeout')
  await until(() => conn !== undefined, 1000, 'handler')
  t.deepEqual(await within(conn!.closed, 5000, 'closed'), { code: 1006, reason: '', wasClean: false })
  t.true(entries.some((e) => /pong/.test(e.msg ?? '')), 'the drop is logged')
})

test('a peer that answers pings stays open through many intervals', async (t) => {
  t.timeout(30_000)
  let conn: Connection | undefined
  const { url } = await startServer(t, { '': async (c) => { conn = c; await echo(c) } }, { heartbeat: { interval: 100, timeout: 200 } })
  const peer = await WsPeer.open(url)
  let pings = 0
  peer.ws.on('ping', () => { pings++ })
  await until(() => pings >= 3, 10_000, 'three pings')
  t.is(peer.ws.readyState, peer.ws.OPEN)
  await peer.send('alive')
  t.is((await peer.next()).data.toString(), 'alive')
  await peer.close(1000)
  t.deepEqual(await conn!.closed, { code: 1000, reason: '', wasClean: true })
})

test('a raw client that answers pings by hand stays open; once it stops, it is dropped', async (t) => {
  t.timeout(30_000)
  const { port } = await startServer(t, { '': echo }, { heartbeat: { interval: 150, timeout: 300 } })
  const client = await RawClient.connect(port)
  for (let i = 0; i < 3; i++) {
    const f = await client.nextFrame(10_000)
    t.is(f?.opcode, 9)
    client.send(clientFrame(10, f!.payload))
  }
  t.false(client.ended)
  await client.waitClosed(10_000)
  t.pass()
})

test('traffic counts as life: a chatty peer is not pinged to death even if it never pongs', async (t) => {
  t.timeout(30_000)
  const { port } = await startServer(t, { '': echo }, { heartbeat: { interval: 200, timeout: 200 } })
  const client = await RawClient.connect(port)
  // Send a message every 50 ms for 1.2 s, never answering pings.
  for (let i = 0; i < 24; i++) {
    client.send(clientFrame(1, `m${i}`))
    await sleep(50)
  }
  t.false(client.ended)
  client.send(clientFrame(8, closePayload(1000)))
  t.is((await client.nextClose())?.code, 1000)
})

test('heartbeat: false never pings', async (t) => {
  t.timeout(30_000)
  const { url } = await startServer(t, { '': echo }, { heartbeat: false })
  const peer = await WsPeer.open(url)
  let pings = 0
  peer.ws.on('ping', () => { pings++ })
  await sleep(500)
  t.is(pings, 0)
  await peer.close(1000)
})
