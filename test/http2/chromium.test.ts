/**
 * Chromium (the system's /usr/bin/chromium, with `--ignore-certificate-errors` for the
 * self-signed certificate) loads the demo page over HTTP/2 and opens its WebSockets as streams
 * of that connection (RFC 8441): the page says so, the server's connections say so, the echo
 * works, and a close from the page ends the stream from both sides with END_STREAM.
 */

import type { ServerHttp2Stream } from 'node:http2'
import type { Browser } from 'playwright-core'
import { launchChromium } from '../chromium.js'
import { startDemo } from '../../examples/echo-server.js'
import { peerTest } from '../peers.js'
import { until } from '../server/helpers.js'
import { makeCertificate } from './helpers.js'

const test = peerTest('chromium', 'openssl')
const WAIT = { timeout: 15_000 }

let browser: Browser | undefined
let key = ''
let cert = ''

test.before(async () => {
  ({ key, cert } = await makeCertificate())
  browser = await launchChromium(['--ignore-certificate-errors'])
})

test.after.always(async () => {
  await browser?.close()
})

test('Chromium: the demo page over HTTP/2, its WebSockets on the same connection, echo, and a clean close with END_STREAM both ways', async (t) => {
  t.timeout(90_000)
  const demo = await startDemo(0, '127.0.0.1', {}, false, { key, cert })
  t.teardown(() => demo.close())
  // Each WebSocket stream: whether the browser ended its side (END_STREAM) before the stream closed.
  const streams: Array<{ path: string, peerEnded?: boolean }> = []
  demo.http.on('stream', (stream: ServerHttp2Stream, headers) => {
    if (headers[':method'] !== 'CONNECT') return
    const entry: { path: string, peerEnded?: boolean } = { path: String(headers[':path']) }
    streams.push(entry)
    stream.once('close', () => { entry.peerEnded = stream.readableEnded })
  })
  const page = await browser!.newPage()
  t.teardown(() => page.close())
  await page.goto(demo.pageUrl)
  t.is(await page.evaluate(() => (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).nextHopProtocol), 'h2')
  await page.locator('#status', { hasText: /^open$/ }).waitFor(WAIT)
  await page.locator('#chat-status', { hasText: /^open$/ }).waitFor(WAIT)
  await page.locator('#http-version', { hasText: 'HTTP/2' }).waitFor(WAIT)
  const versions = [...demo.server.clients].map((c) => c.httpVersion)
  t.true(versions.length >= 2 && versions.every((v) => v === '2'), versions.join())
  t.true(new Set([...demo.server.clients].map((c) => c.remotePort)).size === 1, 'one TCP connection for every WebSocket')
  // /stats counts them.
  await page.locator('#connections', { hasText: '2 (1 in the chat room), 2 over HTTP/2' }).waitFor(WAIT)

  await page.fill('#message', 'over h2 😀')
  await page.click('#send')
  await page.locator('#log li.received', { hasText: 'over h2 😀' }).waitFor(WAIT)
  await page.click('#send-binary')
  await page.locator('#log li.received', { hasText: 'binary' }).waitFor(WAIT)

  // The page closes its echo: the stream ends from both sides, no RST_STREAM.
  const echoConn = [...demo.server.clients].find((c) => c.protocol === 'echo')!
  await page.click('#close')
  await page.locator('#status', { hasText: 'closed 1000 bye' }).waitFor(WAIT)
  t.deepEqual(await echoConn.closed, { code: 1000, reason: 'bye', wasClean: true })
  await until(() => streams.filter((s) => s.peerEnded !== undefined).length >= 2, 10_000, 'the transport and echo streams closed')
  t.true(streams.filter((s) => s.peerEnded !== undefined).every((s) => s.peerEnded === true), JSON.stringify(streams))

  // Reconnect: the new WebSocket again comes over HTTP/2, and echoes.
  await page.click('#reconnect')
  await page.locator('#status', { hasText: /^open$/ }).waitFor(WAIT)
  await page.fill('#message', 'again')
  await page.click('#send')
  await page.locator('#log li.received', { hasText: 'again' }).waitFor(WAIT)
  t.true([...demo.server.clients].every((c) => c.httpVersion === '2'))

  // Shutdown: the page sees 1001 on both of its WebSockets.
  await demo.close()
  await page.locator('#status', { hasText: 'closed 1001' }).waitFor(WAIT)
  await page.locator('#chat-status', { hasText: 'closed 1001' }).waitFor(WAIT)
  t.pass()
})
