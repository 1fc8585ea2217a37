/**
 * The browser build under the review of issue 22: empty sends held back by the send mark with
 * the page's event loop still running, messages that arrived before the server's close read
 * later, and `closeTimeout` past what `setTimeout` takes or against a server that never answers
 * a close.
 */

import { createHash } from 'node:crypto'
import { once } from 'node:events'
import net from 'node:net'
import type { ExecutionContext } from 'ava'
import type { Page } from 'playwright-core'
import { sharedChromium } from '../chromium.js'
import { peerTest } from '../peers.js'
import type { Handler } from '../../src/index.js'
import { openPage, pageServer, PATHS, type BrowserPath, type PageServer } from './helpers.js'

/** The browser build, as the page's script defines it. */
declare const wspipe: typeof import('../../src/browser/index.js')

const test = peerTest('chromium')

const browser = sharedChromium(test)

async function setup (t: ExecutionContext, path: BrowserPath, handlers: Record<string, Handler>): Promise<{ page: Page, srv: PageServer }> {
  const srv = await pageServer(t, handlers)
  const page = await openPage(t, browser(), srv.origin, path)
  return { page, srv }
}

/** Never reads; ends when the page closes. */
const stall: Handler = async (conn) => { await conn.closed }

for (const path of PATHS) {
  test.serial(`${path}: a sink of empty messages to a server that does not read waits at the send mark, and the page's timers run meanwhile`, async (t) => {
    t.timeout(60_000)
    const { page, srv } = await setup(t, path, { stall })
    const result = await page.evaluate(async (url) => {
      const total = 1_000_000
      const conn = await wspipe.connect(url, { protocols: ['stall'], sendHighWaterMark: 64 * 1024 })
      let pulled = 0
      // Set before the sink starts: if the sink never lets the event loop run, it fires only once all are pulled.
      const atTimer = new Promise<number>((resolve) => { setTimeout(() => { resolve(pulled) }, 100) })
      const sinking = conn.sink((function * () {
        for (; pulled < total; pulled++) yield ''
      })())
      const first = await atTimer
      await new Promise((resolve) => setTimeout(resolve, 500))
      const later = pulled
      conn.close()
      await sinking
      return { timerFiredBeforeTheEnd: first < total, later, total }
    }, srv.wsUrl)
    t.true(result.timerFiredBeforeTheEnd)
    // 64 KiB of mark at 256 bytes of overhead per message: 256 messages, plus what the browser took meanwhile.
    t.true(result.later < result.total / 10, `pulled ${result.later} of ${result.total} in 600 ms`)
  })
}

for (const path of PATHS) {
  test.serial(`${path}: messages that came before the server's close are all read when the page reads only later; source ends, closed has the server's 4001`, async (t) => {
    t.timeout(60_000)
    const { page, srv } = await setup(t, path, {
      three: async (conn) => {
        await conn.send('one')
        await conn.send('two')
        await conn.send(new Uint8Array([3]))
        conn.close(4001, 'done')
        await conn.closed
      }
    })
    const result = await page.evaluate(async (url) => {
      const conn = await wspipe.connect(url, { protocols: ['three'] })
      // Long enough for the server's close to arrive before the first read.
      await new Promise((resolve) => setTimeout(resolve, 300))
      const got: string[] = []
      for await (const m of conn.source) got.push(wspipe.isText(m) ? new TextDecoder().decode(m) : `binary ${[...m].join(',')}`)
      return { got, closed: await conn.closed }
    }, srv.wsUrl)
    t.deepEqual(result, { got: ['one', 'two', 'binary 3'], closed: { code: 4001, reason: 'done', wasClean: true } })
  })
}

/**
 * A server that completes the handshake, then reads and ignores everything: it never answers a
 * close. With `closeFirst` it sends that close frame right after the handshake and ends TCP 1 s
 * later. Closed in teardown.
 */
async function deafServer (t: ExecutionContext, closeFirst?: { code: number, reason: string }): Promise<string> {
  const sockets = new Set<net.Socket>()
  const raw = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.once('data', (head) => {
      const key = /sec-websocket-key: *(\S+)/i.exec(head.toString('latin1'))?.[1] ?? ''
      // RFC 6455 §4.2.2: the accept value.
      const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`)
      socket.on('data', () => {})
      if (closeFirst !== undefined) {
        const reason = Buffer.from(closeFirst.reason)
        const payload = Buffer.concat([Buffer.from([closeFirst.code >> 8, closeFirst.code & 0xff]), reason])
        socket.write(Buffer.concat([Buffer.from([0x88, payload.length]), payload]))
        setTimeout(() => { socket.end() }, 1000)
      }
    })
  })
  raw.listen(0, '127.0.0.1')
  await once(raw, 'listening')
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    raw.close()
  })
  return `ws://127.0.0.1:${(raw.address() as net.AddressInfo).port}/`
}

for (const path of PATHS) {
  test.serial(`${path}: after close(), a server that never answers: at closeTimeout (1 s) source ends and closed settles with the page's code, not clean`, async (t) => {
    t.timeout(60_000)
    const { page } = await setup(t, path, {})
    const url = await deafServer(t)
    const result = await page.evaluate(async (url) => {
      const conn = await wspipe.connect(url, { closeTimeout: 1000 })
      const reading = (async () => {
        try {
          for await (const _ of conn.source);
          return 'ended'
        } catch (err) {
          return `threw ${(err as Error).name}`
        }
      })()
      conn.close(4000, 'bye')
      // Chromium itself waits 60 s; 10 s is well past closeTimeout.
      const late = new Promise<string>((resolve) => { setTimeout(() => { resolve('not settled in 10 s') }, 10_000) })
      const closed = await Promise.race([conn.closed, late])
      return { closed, source: await Promise.race([reading, late]) }
    }, url)
    t.deepEqual(result, { closed: { code: 4000, reason: 'bye', wasClean: false }, source: 'ended' })
  })
}

for (const path of PATHS) {
  test.serial(`${path}: close() after the server's close came (its TCP still open) sends nothing, and closed reports the server's 4001, not the page's code`, async (t) => {
    t.timeout(60_000)
    const { page } = await setup(t, path, {})
    const url = await deafServer(t, { code: 4001, reason: 'first' })
    const result = await page.evaluate(async (url) => {
      const conn = await wspipe.connect(url)
      // Wait for the server's close to arrive (closing starts: the signal aborts), not a fixed
      // time: under load 200 ms was sometimes too short. Bounded: 10 s.
      await new Promise<void>((resolve) => {
        if (conn.signal.aborted) resolve()
        conn.signal.addEventListener('abort', () => { resolve() }, { once: true })
        setTimeout(resolve, 10_000)
      })
      conn.close(4000, 'mine')
      return await conn.closed
    }, url)
    t.deepEqual(result, { code: 4001, reason: 'first', wasClean: true })
  })
}
