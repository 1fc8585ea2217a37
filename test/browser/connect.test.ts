/**
 * The browser build in Debian's Chromium (playwright-core), against wspipe's own server on
 * 127.0.0.1, on both code paths: `WebSocketStream`, and plain `WebSocket` with
 * `WebSocketStream` hidden. Echo of text and binary, 1,000 messages through sink and source,
 * 8 MiB, close codes both ways, a refused subprotocol, abort through `signal`, a page that stops
 * reading, sends that wait for room, stream mode, and what the plain path does when a page does
 * not read (4008).
 */

import type { ExecutionContext } from 'ava'
import type { Page } from 'playwright-core'
import { sharedChromium } from '../chromium.js'
import { peerTest } from '../peers.js'
import { sleep, until } from '../server/helpers.js'
import type { CloseInfo, Connection, Handler, StreamHandler } from '../../src/index.js'
import { openPage, pageServer, PATHS, socketsMade, type BrowserPath, type PageServer } from './helpers.js'

/** The browser build, as the page's script defines it. */
declare const wspipe: typeof import('../../src/browser/index.js')

const test = peerTest('chromium')
const KiB = 1024
const MiB = 1024 * KiB

const browser = sharedChromium(test)

const echo: Handler = ({ source, sink }) => sink(source)

/** What a server-side handler saw, for a test to look at. */
interface Seen {
  closed?: CloseInfo
  /** Index of the message whose send was still waiting after 1.5 s (the peer stopped reading). */
  blockedAt?: number
  sent: number
  received: number
  intact: boolean
  paused?: boolean
}

function newSeen (): Seen {
  return { sent: 0, received: 0, intact: true }
}

/** A 64 KiB block that says its index in every 32-bit word, so any loss, swap or corruption shows. */
function block (index: number, size = 64 * KiB): Uint8Array {
  const words = new Uint32Array(size / 4).fill(index * 2654435761 >>> 0)
  words[0] = index
  return new Uint8Array(words.buffer)
}

function isBlock (message: Uint8Array, index: number, size = 64 * KiB): boolean {
  if (message.length !== size) return false
  const words = new Uint32Array(message.buffer, message.byteOffset, size / 4)
  if (words[0] !== index) return false
  const fill = index * 2654435761 >>> 0
  for (let i = 1; i < words.length; i++) if (words[i] !== fill) return false
  return true
}

/** Sends `count` blocks, racing each send against 1.5 s to see whether the page stopped the server. */
function flood (seen: Seen, count: number): Handler {
  return async (conn) => {
    void conn.closed.then((info) => { seen.closed = info })
    for (let i = 0; i < count; i++) {
      const sending = conn.send(block(i))
      const waited = await Promise.race([sending.then(() => false, () => false), sleep(1500).then(() => true)])
      if (waited) seen.blockedAt ??= i
      try {
        await sending
      } catch {
        return
      }
      seen.sent++
    }
    // Keep the connection open until the page is done reading.
    for await (const _ of conn.source);
  }
}

/** Reads nothing until the test says so (`go`), then checks every block. */
function slowReader (seen: Seen, count: number, go: Promise<void>): Handler {
  return async (conn) => {
    await go
    seen.paused = conn.stats().pauses > 0
    for await (const m of conn.source) {
      if (!isBlock(m, seen.received)) seen.intact = false
      if (++seen.received === count) break
    }
  }
}

async function setup (t: ExecutionContext, path: BrowserPath, handlers: Record<string, Handler>): Promise<{ page: Page, srv: PageServer }> {
  const srv = await pageServer(t, { echo, '': echo, ...handlers }, { maxMessageSize: 32 * MiB })
  const page = await openPage(t, browser(), srv.origin, path)
  return { page, srv }
}

for (const path of PATHS) {
  test.serial(`${path}: text and binary echo, marked as the Node side marks them; 1,000 messages through sink and source in order; and the path used`, async (t) => {
    t.timeout(60_000)
    const { page, srv } = await setup(t, path, {})
    const result = await page.evaluate(async (url) => {
      const { connect, isText } = wspipe
      const decoder = new TextDecoder()
      const conn = await connect(url, { protocols: ['x', 'echo'] })
      await conn.send('héllo ✓')
      const text = (await conn.source.next()).value as Uint8Array
      await conn.send(new Uint8Array([0, 1, 255]))
      const binary = (await conn.source.next()).value as Uint8Array
      // Bytes marked as text go as text: what `sink(source)` relies on.
      await conn.send(wspipe.asText(new TextEncoder().encode('marked')))
      const marked = (await conn.source.next()).value as Uint8Array
      conn.close()
      const first = {
        protocol: conn.protocol,
        text: [isText(text), decoder.decode(text), text.constructor.name],
        binary: [isText(binary), [...binary]],
        marked: [isText(marked), decoder.decode(marked)],
        closed: await conn.closed
      }

      const many = await connect(url, { protocols: ['echo'] })
      const sending = many.sink((function * () {
        for (let i = 0; i < 1000; i++) yield i % 2 === 0 ? `m${i}` : new TextEncoder().encode(`b${i}`)
      })())
      let inOrder = 0
      for await (const m of many.source) {
        const i = inOrder
        if (isText(m) === (i % 2 === 0) && decoder.decode(m) === (i % 2 === 0 ? `m${i}` : `b${i}`)) inOrder++
        if (i === 999) break
      }
      await sending
      // Both directions done (the sink ended, the source was left): the connection closes with 1000.
      return { first, inOrder, manyClosed: await many.closed }
    }, srv.wsUrl)
    t.deepEqual(result, {
      first: {
        protocol: 'echo',
        text: [true, 'héllo ✓', 'Uint8Array'],
        binary: [false, [0, 1, 255]],
        marked: [true, 'marked'],
        closed: { code: 1000, reason: '', wasClean: true }
      },
      inOrder: 1000,
      manyClosed: { code: 1000, reason: '', wasClean: true }
    })
    t.deepEqual(await socketsMade(page), path === 'WebSocketStream' ? { WebSocketStream: 2, WebSocket: 0 } : { WebSocketStream: 0, WebSocket: 2 })
  })

  test.serial(`${path}: 8 MiB goes and comes back intact`, async (t) => {
    t.timeout(60_000)
    const { page, srv } = await setup(t, path, {})
    const result = await page.evaluate(async (url) => {
      const conn = await wspipe.connect(url, { protocols: ['echo'] })
      const big = new Uint8Array(8 * 1024 * 1024)
      for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >>> 11)) & 0xff
      await conn.send(big)
      const back = (await conn.source.next()).value as Uint8Array
      let same = back.length === big.length && !wspipe.isText(back)
      for (let i = 0; same && i < big.length; i++) if (back[i] !== big[i]) same = false
      conn.close()
      return { same, length: back.length }
    }, srv.wsUrl)
    t.deepEqual(result, { same: true, length: 8 * MiB })
  })

  test.serial(`${path}: close codes both ways: the page's 4000 "bye", the server's 4001 "x", a handler's 1011; codes a page may not send throw`, async (t) => {
    t.timeout(60_000)
    let serverSaw: CloseInfo | undefined
    const { page, srv } = await setup(t, path, {
      listen: async (conn) => {
        serverSaw = await conn.closed
      },
      bye: (conn) => { conn.close(4001, 'x') },
      boom: () => { throw new Error('hidden detail') }
    })
    const result = await page.evaluate(async (url) => {
      const { connect, ConnectionClosedError } = wspipe
      const mine = await connect(url, { protocols: ['listen'] })
      const errors: string[] = []
      for (const code of [1001, 1008, 1011, 2999, 5000]) {
        try { mine.close(code) } catch (err) { errors.push(`${(err as Error).name} ${code}`) }
      }
      mine.close(4000, 'bye')
      const afterClose = await mine.send('late').then(() => 'sent', (err: unknown) => err instanceof ConnectionClosedError ? `ConnectionClosedError ${err.closeCode}` : String(err))
      const ended = await mine.source.next()
      const byPage = { errors, afterClose, signal: mine.signal.aborted, ended: ended.done, closed: await mine.closed }

      const theirs = await connect(url, { protocols: ['bye'] })
      const messages: number[] = []
      for await (const m of theirs.source) messages.push(m.length)
      const reason = theirs.signal.reason as InstanceType<typeof ConnectionClosedError>
      const byServer = { messages, closed: await theirs.closed, signal: [reason.name, reason.closeCode] }

      const failing = await connect(url, { protocols: ['boom'] })
      for await (const _ of failing.source);
      return { byPage, byServer, handlerThrew: await failing.closed }
    }, srv.wsUrl)
    t.deepEqual(result, {
      byPage: {
        errors: ['RangeError 1001', 'RangeError 1008', 'RangeError 1011', 'RangeError 2999', 'RangeError 5000'],
        afterClose: 'ConnectionClosedError 4000',
        signal: true,
        ended: true,
        closed: { code: 4000, reason: 'bye', wasClean: true }
      },
      byServer: { messages: [], closed: { code: 4001, reason: 'x', wasClean: true }, signal: ['ConnectionClosedError', 4001] },
      handlerThrew: { code: 1011, reason: '', wasClean: true }
    })
    await until(() => serverSaw !== undefined, 10_000, 'the server saw the close')
    t.deepEqual(serverSaw, { code: 4000, reason: 'bye', wasClean: true })
  })

  test.serial(`${path}: a refused subprotocol and an unreachable server reject with UpgradeError (status 0: the browser does not say why); a bad URL or subprotocol with SyntaxError`, async (t) => {
    t.timeout(60_000)
    const { page, srv } = await setup(t, path, {})
    const result = await page.evaluate(async (url) => {
      const { connect, UpgradeError } = wspipe
      const outcome = (p: Promise<unknown>): Promise<string> => p.then(() => 'open', (err: unknown) => err instanceof UpgradeError ? `UpgradeError ${err.status} ${err.code}` : `${(err as Error).name}`)
      return {
        refused: await outcome(connect(url, { protocols: ['nobody-serves-this'] })),
        unreachable: await outcome(connect('ws://127.0.0.1:9/')),
        badUrl: await outcome(connect('ftp://127.0.0.1/')),
        fragment: await outcome(connect(`${url}#x`)),
        badProtocol: await outcome(connect(url, { protocols: ['a b'] })),
        duplicate: await outcome(connect(url, { protocols: ['echo', 'echo'] })),
        relative: await outcome(connect('/ws', { protocols: ['echo'] }).then((c) => { c.close(); return c.closed }))
      }
    }, srv.wsUrl)
    t.deepEqual(result, {
      refused: 'UpgradeError 0 WS_ERR_UPGRADE',
      unreachable: 'UpgradeError 0 WS_ERR_UPGRADE',
      badUrl: 'SyntaxError',
      fragment: 'SyntaxError',
      badProtocol: 'SyntaxError',
      duplicate: 'SyntaxError',
      relative: 'open'
    })
  })

  test.serial(`${path}: abort through signal: before opening connect rejects with the reason; once open the connection closes with 1000 and its own signal aborts`, async (t) => {
    t.timeout(60_000)
    const { page, srv } = await setup(t, path, {})
    const result = await page.evaluate(async (url) => {
      const early = await wspipe.connect(url, { protocols: ['echo'], signal: AbortSignal.abort(new Error('not now')) }).then(() => 'open', (err: Error) => err.message)
      const during = new AbortController()
      const opening = wspipe.connect(url, { protocols: ['echo'], signal: during.signal })
      during.abort(new Error('changed my mind'))
      const duringOutcome = await opening.then(() => 'open', (err: Error) => err.message)
      const controller = new AbortController()
      const conn = await wspipe.connect(url, { protocols: ['echo'], signal: controller.signal })
      controller.abort()
      return { early, during: duringOutcome, closed: await conn.closed, aborted: conn.signal.aborted }
    }, srv.wsUrl)
    t.deepEqual(result, { early: 'not now', during: 'changed my mind', closed: { code: 1000, reason: '', wasClean: true }, aborted: true })
  })

  test.serial(`${path}: sends wait for room: while the server does not read, a send waits; then every message arrives intact and in order`, async (t) => {
    t.timeout(90_000)
    const count = 512
    const seen = newSeen()
    let go!: () => void
    const { page, srv } = await setup(t, path, { slow: slowReader(seen, count, new Promise((resolve) => { go = resolve })) })
    const sending = page.evaluate(async ({ url, count }) => {
      const sendHigh = 256 * 1024
      const conn = await wspipe.connect(url, { protocols: ['slow'], sendHighWaterMark: sendHigh })
      const sockets = (globalThis as unknown as { __sockets: WebSocket[] }).__sockets
      const state = globalThis as unknown as { blockedAt?: number }
      let overMark = 0
      const sleep = (ms: number): Promise<true> => new Promise((resolve) => setTimeout(() => resolve(true), ms))
      for (let i = 0; i < count; i++) {
        const words = new Uint32Array(16384).fill(i * 2654435761 >>> 0)
        words[0] = i
        const sent = conn.send(new Uint8Array(words.buffer))
        // A send still waiting after half a second: the test then lets the server read.
        if (state.blockedAt === undefined && await Promise.race([sent.then(() => false), sleep(500)])) state.blockedAt = i
        await sent
        // Plain WebSocket: a send resolves only with bufferedAmount at or below the mark.
        if (sockets.length > 0 && sockets[0].bufferedAmount > sendHigh) overMark++
      }
      conn.close()
      return { blockedAt: state.blockedAt, overMark, closed: await conn.closed }
    }, { url: srv.wsUrl, count })
    let blockedAt: number | undefined
    const deadline = Date.now() + 30_000
    while (blockedAt === undefined && Date.now() < deadline) {
      await sleep(100)
      blockedAt = await page.evaluate(() => (globalThis as unknown as { blockedAt?: number }).blockedAt)
    }
    go()
    const result = await sending
    t.log(`the first send that waited was number ${String(result.blockedAt)} of ${count} (64 KiB each)`)
    t.true(result.blockedAt !== undefined && result.blockedAt < count, 'a send waited while the server did not read')
    t.is(result.overMark, 0)
    t.deepEqual(result.closed, { code: 1000, reason: '', wasClean: true })
    t.true(seen.paused, 'the server had paused reading')
    t.is(seen.received, count)
    t.true(seen.intact)
  })
  test.serial(`${path}: close right after sink: every message it handed over arrives before the close frame`, async (t) => {
    t.timeout(60_000)
    const seen = newSeen()
    const { page, srv } = await setup(t, path, {
      count: async (conn) => {
        for await (const m of conn.source) {
          if (!isBlock(m, seen.received)) seen.intact = false
          seen.received++
        }
        seen.closed = await conn.closed
      }
    })
    const closed = await page.evaluate(async (url) => {
      const conn = await wspipe.connect(url, { protocols: ['count'] })
      await conn.sink((function * () {
        for (let i = 0; i < 200; i++) {
          const words = new Uint32Array(16384).fill(i * 2654435761 >>> 0)
          words[0] = i
          yield new Uint8Array(words.buffer)
        }
      })())
      // Up to sendHighWaterMark may still be on its way: the close goes after it.
      conn.close(4000, 'done')
      return await conn.closed
    }, srv.wsUrl)
    t.deepEqual(closed, { code: 4000, reason: 'done', wasClean: true })
    await until(() => seen.closed !== undefined, 10_000, 'the server saw the close')
    t.is(seen.received, 200)
    t.true(seen.intact)
    t.deepEqual(seen.closed, { code: 4000, reason: 'done', wasClean: true })
  })

  test.serial(`${path}: a streamed message is gathered whole: up to maxMessageSize it goes as one message, one byte over rejects (RangeError, nothing sent), chunks that throw reject with their error, and the connection carries on`, async (t) => {
    t.timeout(60_000)
    const { page, srv } = await setup(t, path, {})
    const result = await page.evaluate(async (url) => {
      const conn = await wspipe.connect(url, { protocols: ['echo'], maxMessageSize: 1000 })
      const outcome = (p: Promise<unknown>): Promise<string> => p.then(() => 'sent', (err: Error) => `${err.name}: ${err.message}`)
      const exact = await outcome(conn.send({ type: 'binary', chunks: [new Uint8Array(600), new Uint8Array(400)] }))
      const back = (await conn.source.next()).value as Uint8Array
      const over = await outcome(conn.send({ type: 'binary', chunks: [new Uint8Array(600), new Uint8Array(401)] }))
      const throwing = await outcome(conn.send({ type: 'text', chunks: (function * () { yield 'half'; throw new Error('no more') })() }))
      const badChunk = await outcome(conn.send({ type: 'binary', chunks: [42 as unknown as Uint8Array] }))
      const badType = await outcome(conn.send({ type: 'json' as 'text', chunks: ['x'] }))
      await conn.send('still open')
      const after = new TextDecoder().decode((await conn.source.next()).value as Uint8Array)
      // Chunks that never come: the send ends with the connection, not after it.
      const stalled = outcome(conn.send({ type: 'text', chunks: (async function * () { yield 'a'; await new Promise(() => {}) })() }))
      conn.close()
      return { exact, back: back.length, over, throwing, badChunk, badType, after, stalled: await stalled, closed: await conn.closed }
    }, srv.wsUrl)
    t.deepEqual(result, {
      exact: 'sent',
      back: 1000,
      over: 'RangeError: a streamed message is gathered whole in the browser, and this one passed maxMessageSize (1000 bytes)',
      throwing: 'Error: no more',
      badChunk: 'TypeError: a chunk of a streamed message must be a Uint8Array or a string',
      badType: "TypeError: a streamed message's type must be 'text' or 'binary', not json",
      after: 'still open',
      stalled: 'ConnectionClosedError: the connection is closing',
      closed: { code: 1000, reason: '', wasClean: true }
    })
  })

  test.serial(`${path}: a sink whose iterable throws after source was returned closes with 4011 (a page may not send 1011); the sink rejects with the error`, async (t) => {
    t.timeout(60_000)
    let serverSaw: CloseInfo | undefined
    const { page, srv } = await setup(t, path, { listen: async (conn) => { serverSaw = await conn.closed } })
    const result = await page.evaluate(async (url) => {
      const conn = await wspipe.connect(url, { protocols: ['listen'] })
      void conn.source.return?.()
      const sunk = await conn.sink((async function * () {
        yield 'one'
        await new Promise((resolve) => setTimeout(resolve, 50))
        throw new Error('producer failed')
      })()).then(() => 'resolved', (err: Error) => err.message)
      return { sunk, closed: await conn.closed }
    }, srv.wsUrl)
    t.deepEqual(result, { sunk: 'producer failed', closed: { code: 4011, reason: '', wasClean: true } })
    await until(() => serverSaw !== undefined, 10_000, 'the server saw the close')
    t.is(serverSaw!.code, 4011)
  })
}

test.serial('WebSocketStream: close() with writes the server does not take: after closeTimeout the rest is dropped and the close still goes, with its code', async (t) => {
  t.timeout(60_000)
  const seen = newSeen()
  let go!: () => void
  const started = new Promise<void>((resolve) => { go = resolve })
  const { page, srv } = await setup(t, 'WebSocketStream', {
    stall: async (conn) => {
      await started
      for await (const m of conn.source) {
        if (!isBlock(m, seen.received)) seen.intact = false
        seen.received++
      }
      seen.closed = await conn.closed
    }
  })
  const sending = page.evaluate(async (url) => {
    // A send waits once more than sendHighWaterMark of writes have not finished. With the 1 MiB
    // default, a send could wait 500 ms only because Chromium's network process was not run (a
    // busy machine): the writes then all finished within closeTimeout, into room the server's
    // socket still had, and none was dropped. 16 MiB is more than that room (here 6-7 MiB): what
    // is in flight when a send waits cannot all leave before closeTimeout, however late it runs.
    const conn = await wspipe.connect(url, { protocols: ['stall'], closeTimeout: 500, sendHighWaterMark: 16 * 1024 * 1024 })
    let handed = 0
    const sleep = (ms: number): Promise<true> => new Promise((resolve) => setTimeout(() => resolve(true), ms))
    for (let i = 0; i < 512; i++) {
      const words = new Uint32Array(16384).fill(i * 2654435761 >>> 0)
      words[0] = i
      const sent = conn.send(new Uint8Array(words.buffer))
      handed++
      // Stop handing over once a send waits: the server is not reading.
      if (await Promise.race([sent.then(() => false), sleep(500)])) break
    }
    conn.close(4000, 'bye')
    // closeTimeout passes before the server reads again.
    await sleep(1500)
    return handed
  }, srv.wsUrl)
  const handed = await sending
  go()
  await until(() => seen.closed !== undefined, 20_000, 'the server saw the close')
  t.log(`${handed} messages handed over, ${seen.received} arrived before the close`)
  t.true(handed < 512, 'a send waited')
  t.true(seen.received < handed, 'what was still queued after closeTimeout was dropped')
  t.true(seen.intact)
  t.deepEqual(seen.closed, { code: 4000, reason: 'bye', wasClean: true })
  t.deepEqual(await page.evaluate(() => 'alive'), 'alive')
})

test.serial('WebSocketStream: a page that stops reading stops the server (its send waits), then reads all 32 MiB intact and in order', async (t) => {
  t.timeout(90_000)
  const count = 512
  const seen = newSeen()
  const { page, srv } = await setup(t, 'WebSocketStream', { flood: flood(seen, count) })
  await page.evaluate(async (url) => {
    (globalThis as unknown as { conn: Connection }).conn = await wspipe.connect(url, { protocols: ['flood'] }) as unknown as Connection
  }, srv.wsUrl)
  // The page reads nothing meanwhile: the browser stops reading, TCP fills, the server's send waits.
  await until(() => seen.blockedAt !== undefined || seen.sent === count, 60_000, 'the server blocked or sent everything')
  t.log(`the server's send waited at block ${String(seen.blockedAt)} of ${count} (64 KiB each)`)
  t.true(seen.blockedAt !== undefined && seen.blockedAt < count, 'the server had to wait for the page')
  await sleep(1000)
  const result = await page.evaluate(async (count) => {
    const conn = (globalThis as unknown as { conn: Connection }).conn
    let intact = 0
    for await (const m of conn.source) {
      const words = new Uint32Array(m.buffer, m.byteOffset, m.length / 4)
      const fill = intact * 2654435761 >>> 0
      let ok = m.length === 65536 && words[0] === intact
      for (let i = 1; ok && i < words.length; i++) if (words[i] !== fill) ok = false
      if (!ok) break
      if (++intact === count) break
    }
    return { intact, closed: await conn.closed }
  }, count)
  t.deepEqual(result, { intact: count, closed: { code: 1000, reason: '', wasClean: true } })
})

test.serial('WebSocket (no WebSocketStream): a page that stops reading for seconds then reads everything intact, while the queue stays under receiveHighWaterMark', async (t) => {
  t.timeout(60_000)
  const count = 12
  const seen = newSeen()
  const { page, srv } = await setup(t, 'WebSocket', { flood: flood(seen, count) })
  await page.evaluate(async (url) => {
    (globalThis as unknown as { conn: Connection }).conn = await wspipe.connect(url, { protocols: ['flood'] }) as unknown as Connection
  }, srv.wsUrl)
  await until(() => seen.sent === count, 30_000, 'the server sent everything')
  await sleep(2000)
  const result = await page.evaluate(async (count) => {
    const conn = (globalThis as unknown as { conn: Connection }).conn
    let intact = 0
    for await (const m of conn.source) {
      const words = new Uint32Array(m.buffer, m.byteOffset, m.length / 4)
      if (m.length === 65536 && words[0] === intact && words[1] === (intact * 2654435761 >>> 0)) intact++
      if (intact === count) break
    }
    return { intact, closed: await conn.closed }
  }, count)
  t.deepEqual(result, { intact: count, closed: { code: 1000, reason: '', wasClean: true } })
  t.is(seen.blockedAt, undefined)
})

test.serial('WebSocket (no WebSocketStream): a page that does not read past receiveHighWaterMark is closed with 4008; source yields what was queued (the mark plus one message at most), then throws ReceiveQueueFullError', async (t) => {
  t.timeout(60_000)
  const count = 64
  const seen = newSeen()
  const { page, srv } = await setup(t, 'WebSocket', { flood: flood(seen, count) })
  await page.evaluate(async (url) => {
    (globalThis as unknown as { conn: Connection }).conn = await wspipe.connect(url, { protocols: ['flood'], receiveHighWaterMark: 1024 * 1024 }) as unknown as Connection
  }, srv.wsUrl)
  await until(() => seen.closed !== undefined, 30_000, 'the page closed the connection')
  t.deepEqual(seen.closed, { code: 4008, reason: 'receive queue full', wasClean: true })
  const result = await page.evaluate(async () => {
    const conn = (globalThis as unknown as { conn: Connection }).conn
    let intact = 0
    let error = ''
    try {
      for await (const m of conn.source) {
        const words = new Uint32Array(m.buffer, m.byteOffset, m.length / 4)
        if (m.length === 65536 && words[0] === intact) intact++
      }
    } catch (err) {
      const e = err as InstanceType<typeof wspipe.ReceiveQueueFullError>
      error = `${e.name} ${e.code} ${e.closeCode} ${String(e instanceof wspipe.ReceiveQueueFullError)}`
    }
    return { intact, error, closed: await conn.closed }
  })
  // A message is queued while the queue costs at most 1 MiB, each 64 KiB + 256 bytes: the 16th
  // passes the mark (by 3,996 bytes, less than one message), the 17th closes the connection.
  t.deepEqual(result, { intact: 16, error: 'ReceiveQueueFullError WS_ERR_RECEIVE_QUEUE_FULL 4008 true', closed: { code: 4008, reason: 'receive queue full', wasClean: true } })
})

test.serial('WebSocketStream: stream mode — each message a ReceivedStream whose chunks yield it; sink(source) echoes them; source moving on abandons an unread message', async (t) => {
  t.timeout(60_000)
  const echoStream: StreamHandler = ({ source, sink }) => sink(source)
  const { page, srv } = await setup(t, 'WebSocketStream', {})
  srv.server.register('echo-stream', echoStream, { messages: 'stream', maxMessageSize: Infinity })
  const result = await page.evaluate(async (url) => {
    const { connect, MessageAbandonedError } = wspipe
    const decoder = new TextDecoder()
    const conn = await connect(url, { protocols: ['echo-stream'], messages: 'stream' })
    // A streamed message goes out gathered, as one message.
    await conn.send({ type: 'text', chunks: ['hé', 'llo'] })
    await conn.send({ type: 'binary', chunks: (async function * () { yield new Uint8Array([1, 2]); yield new Uint8Array([3]) })() })
    await conn.send('third')
    const first = (await conn.source.next()).value!
    const parts: string[] = []
    for await (const chunk of first.chunks) parts.push(decoder.decode(chunk))
    const second = (await conn.source.next()).value!
    // Asking for the next message abandons the unread one.
    const third = (await conn.source.next()).value!
    const abandoned = await second.chunks.next().then(() => 'read', (err: unknown) => err instanceof MessageAbandonedError ? 'MessageAbandonedError' : String(err))
    const thirdChunks: string[] = []
    for await (const chunk of third.chunks) thirdChunks.push(decoder.decode(chunk))
    conn.close()

    // Streamed messages out, streamed messages back.
    const echoing = await connect(url, { protocols: ['echo-stream'], messages: 'stream' })
    const back: string[] = []
    const reading = (async () => {
      for await (const m of echoing.source) {
        for await (const chunk of m.chunks) back.push(`${m.type} ${decoder.decode(chunk)}`)
        if (back.length === 2) break
      }
    })()
    await echoing.send({ type: 'text', chunks: ['a', 'b'] })
    await echoing.send({ type: 'binary', chunks: [new Uint8Array([99])] })
    await reading
    return {
      first: [first.type, parts, first.received],
      second: second.type,
      abandoned,
      third: [third.type, thirdChunks],
      back,
      closed: await echoing.closed
    }
  }, srv.wsUrl)
  t.deepEqual(result, {
    first: ['text', ['héllo'], 6],
    second: 'binary',
    abandoned: 'MessageAbandonedError',
    third: ['text', ['third']],
    back: ['text ab', 'binary c'],
    closed: { code: 1000, reason: '', wasClean: true }
  })
})

test.serial('WebSocket (no WebSocketStream): stream mode is refused with a TypeError (the browser hands out whole messages and cannot push back)', async (t) => {
  t.timeout(60_000)
  const { page, srv } = await setup(t, 'WebSocket', {})
  const result = await page.evaluate(async (url) => await wspipe.connect(url, { messages: 'stream' }).then(() => 'open', (err: Error) => `${err.name}: ${err.message}`), srv.wsUrl)
  t.is(result, "TypeError: messages: 'stream' needs WebSocketStream, which this browser does not have")
  t.deepEqual(await socketsMade(page), { WebSocketStream: 0, WebSocket: 0 })
})

test.serial('the page bundle loads with no Node globals: the browser build runs where `process` and `Buffer` do not exist', async (t) => {
  t.timeout(60_000)
  const { page } = await setup(t, 'WebSocketStream', {})
  t.deepEqual(await page.evaluate(() => [typeof (globalThis as Record<string, unknown>).process, typeof (globalThis as Record<string, unknown>).Buffer, Object.keys(wspipe).sort()]), [
    'undefined',
    'undefined',
    ['CloseCode', 'ConnectionClosedError', 'DEFAULT_BROWSER_OPTIONS', 'DEFAULT_OUTBOX_LIMIT', 'InvalidStateError', 'JsonDecodeError', 'MessageAbandonedError', 'Outbox', 'PageCloseCode', 'ReceiveQueueFullError', 'UpgradeError', 'asText', 'connect', 'isText', 'json']
  ])
})
