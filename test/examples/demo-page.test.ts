/**
 * The demo page of `npm start` (examples/demo/index.html) in headless Chromium (the system's
 * /usr/bin/chromium, driven by playwright-core), against the demo server started in this
 * process: the echo console by its ids, the chat room between two pages, the live count of
 * connections, 1001 when the server shuts down, and that the page runs on wspipe's browser build
 * (served bundled at /wspipe.js) on either of its paths.
 *
 * `WSPIPE_SCREENSHOT=1 npx ava test/examples/demo-page.test.ts` also writes docs/img/demo.png.
 */

import { fileURLToPath } from 'node:url'
import type { ExecutionContext } from 'ava'
import type { Page } from 'playwright-core'
import { sharedChromium } from '../chromium.js'
import { startDemo, type Demo } from '../../examples/echo-server.js'
import { peerTest } from '../peers.js'

const test = peerTest('chromium')
const SCREENSHOT = fileURLToPath(new URL('../../docs/img/demo.png', import.meta.url))
const WAIT = { timeout: 10_000 }

const browser = sharedChromium(test)

async function demo (t: ExecutionContext): Promise<Demo> {
  const d = await startDemo(0)
  t.teardown(() => d.close())
  return d
}

/** A page showing the demo, once its echo and chat connections are open. */
async function openPage (t: ExecutionContext, d: Demo): Promise<Page> {
  const page = await browser().newPage({ viewport: { width: 1000, height: 520 } })
  t.teardown(() => page.close())
  await page.goto(d.pageUrl)
  await page.locator('#status', { hasText: /^open$/ }).waitFor(WAIT)
  await page.locator('#chat-status', { hasText: /^open$/ }).waitFor(WAIT)
  return page
}

const lines = (page: Page, log: string): Promise<string[]> => page.locator(`${log} li`).allTextContents()

test('demo page: #send echoes text, #send-binary echoes the UTF-8 bytes as binary, each line with type and size', async (t) => {
  t.timeout(60_000)
  const d = await demo(t)
  const page = await openPage(t, d)
  await page.fill('#message', 'héllo')
  await page.click('#send')
  await page.locator('#log li.received', { hasText: 'héllo' }).waitFor(WAIT)
  await page.click('#send-binary')
  await page.locator('#log li.received', { hasText: 'binary' }).waitFor(WAIT)
  t.deepEqual(await lines(page, '#log'), [
    '→ text 6 B  héllo',
    '← text 6 B  héllo',
    '→ binary 6 B  héllo',
    '← binary 6 B  héllo'
  ])
  t.is(await page.textContent('#status'), 'open')
})

test('demo page: two pages chat through the room, and the live count sees both pages\' connections', async (t) => {
  t.timeout(60_000)
  const d = await demo(t)
  const ann = await openPage(t, d)
  const bob = await openPage(t, d)
  await ann.fill('#chat-message', 'hi bob')
  await ann.click('#chat-send')
  const said = await bob.locator('#chat-log li.received').first().textContent(WAIT)
  t.regex(said ?? '', /^← text \d+ B {2}tab-\w+: hi bob$/)
  t.regex((await lines(ann, '#chat-log'))[0], /^→ text \d+ B {2}tab-\w+: hi bob$/)
  // The sender is a member too: its own message comes back from the room.
  await ann.locator('#chat-log li.received').first().waitFor(WAIT)
  t.regex((await lines(ann, '#chat-log'))[1], /^← text \d+ B {2}tab-\w+: hi bob$/)
  // Each page holds two connections (echo and chat); the page asks /stats once a second.
  await ann.locator('#connections', { hasText: '4 (2 in the chat room)' }).waitFor(WAIT)
  t.is(d.server.clients.size, 4)

  if (process.env.WSPIPE_SCREENSHOT === '1') {
    await bob.fill('#chat-message', 'hello ann, how are you?')
    await bob.click('#chat-send')
    // Ann's log holds her own message too: wait for Bob's by its text.
    await ann.locator('#chat-log li.received', { hasText: 'hello ann' }).waitFor(WAIT)
    await ann.fill('#message', 'hello, wörld ✓')
    await ann.click('#send')
    await ann.click('#send-binary')
    await ann.locator('#log li.received', { hasText: 'binary' }).waitFor(WAIT)
    await ann.screenshot({ path: SCREENSHOT })
  }
})

test('demo page: when the server shuts down the page shows close code 1001 and its reason', async (t) => {
  t.timeout(60_000)
  const d = await demo(t)
  const page = await openPage(t, d)
  await d.close()
  await page.locator('#status', { hasText: /^closed/ }).waitFor(WAIT)
  t.is(await page.textContent('#status'), 'closed 1001 server shutting down')
  t.is(await page.textContent('#chat-status'), 'closed 1001 server shutting down')
  t.deepEqual(await lines(page, '#log'), ['✕ closed: code 1001, reason "server shutting down"'])
})

test('demo page: it runs on wspipe\'s browser build, served bundled at /wspipe.js, over WebSocketStream, and over plain WebSocket where that is missing', async (t) => {
  t.timeout(60_000)
  const d = await demo(t)
  const script = await fetch(new URL('/wspipe.js', d.pageUrl))
  t.is(script.status, 200)
  t.is(script.headers.get('content-type'), 'text/javascript; charset=utf-8')
  t.regex(await script.text(), /\bconnect\b/)

  for (const hide of [false, true]) {
    const page = await browser().newPage()
    t.teardown(() => page.close())
    const loaded: string[] = []
    page.on('request', (r) => { loaded.push(new URL(r.url()).pathname) })
    // Count the sockets of each kind the page makes; hide WebSocketStream for the second page.
    await page.addInitScript({
      content: `globalThis.__made = { WebSocketStream: 0, WebSocket: 0 }
for (const name of ['WebSocketStream', 'WebSocket']) {
  const Original = globalThis[name]
  globalThis[name] = class extends Original { constructor (...args) { super(...args); globalThis.__made[name]++ } }
}
${hide ? 'delete globalThis.WebSocketStream' : ''}`
    })
    await page.goto(d.pageUrl)
    await page.locator('#status', { hasText: /^open$/ }).waitFor(WAIT)
    await page.locator('#chat-status', { hasText: /^open$/ }).waitFor(WAIT)
    await page.fill('#message', 'via the build')
    await page.click('#send')
    await page.locator('#log li.received', { hasText: 'via the build' }).waitFor(WAIT)
    t.true(loaded.includes('/wspipe.js'))
    t.is(await page.textContent('#transport'), hide ? 'WebSocket' : 'WebSocketStream')
    // Three: the echo, the chat, and the one that asks the server which HTTP version they get.
    await page.locator('#http-version', { hasText: 'HTTP/1.1' }).waitFor(WAIT)
    t.deepEqual(await page.evaluate(() => (globalThis as unknown as { __made: unknown }).__made), hide ? { WebSocketStream: 0, WebSocket: 3 } : { WebSocketStream: 3, WebSocket: 0 })
  }
})

test('demo page: after #close the page shows the code and reason, and sending then logs that nothing was sent', async (t) => {
  t.timeout(60_000)
  const d = await demo(t)
  const page = await openPage(t, d)
  await page.click('#close')
  await page.locator('#status', { hasText: /^closed/ }).waitFor(WAIT)
  t.is(await page.textContent('#status'), 'closed 1000 bye')
  await page.fill('#message', 'too late')
  await page.click('#send')
  await page.locator('#log li.event', { hasText: 'not sent' }).waitFor(WAIT)
  t.deepEqual(await lines(page, '#log'), [
    '✕ closed: code 1000, reason "bye"',
    '✕ not sent: the connection is closed (code 1000); reconnect first'
  ])
})
