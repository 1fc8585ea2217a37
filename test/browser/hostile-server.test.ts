/**
 * The browser build in Debian's Chromium against raw node:net servers that misbehave, on both
 * code paths: a server that never answers the handshake (the page's `handshakeTimeout`, as on
 * Node), and servers that break the protocol after the 101, which the page sees as the browser
 * reports them (1006: the browser fails the connection itself and does not say why).
 */

import type { ExecutionContext } from 'ava'
import type { Page } from 'playwright-core'
import { sharedChromium } from '../chromium.js'
import { peerTest } from '../peers.js'
import { eventually, startRawServer, switchingProtocols, type RawRequest } from '../client/helpers.js'
import { openPage, pageServer, PATHS, type BrowserPath } from './helpers.js'
import type { Socket } from 'node:net'

/** The browser build, as the page's script defines it. */
declare const wspipe: typeof import('../../src/browser/index.js')

const test = peerTest('chromium')

const browser = sharedChromium(test)

/** A page on `path` (its own server serves the build; the WebSocket goes to a raw server). */
async function page (t: ExecutionContext, path: BrowserPath): Promise<Page> {
  const srv = await pageServer(t, {})
  return openPage(t, browser(), srv.origin, path)
}

/** A raw server answering each upgrade with `respond`; closed in teardown. */
async function rawServer (t: ExecutionContext, respond: (socket: Socket, request: RawRequest) => void): Promise<Awaited<ReturnType<typeof startRawServer>>> {
  const raw = await startRawServer(respond)
  t.teardown(() => raw.close())
  return raw
}

/** `bytes` after a valid 101, in one write. */
function after101 (bytes: number[]): (socket: Socket, request: RawRequest) => void {
  return (socket, request) => { socket.write(Buffer.concat([Buffer.from(switchingProtocols(request)), Buffer.from(bytes)])) }
}

for (const path of PATHS) {
  test.serial(`${path}: a server that never answers the handshake: connect() rejects at handshakeTimeout with UpgradeError (status 0, reason "timeout"), as on Node, and the socket is closed`, async (t) => {
    t.timeout(60_000)
    const p = await page(t, path)
    const raw = await rawServer(t, () => {})
    const outcome = await p.evaluate(async (url) => {
      // The signal only bounds the test, should handshakeTimeout not work.
      return await wspipe.connect(url, { handshakeTimeout: 300, signal: AbortSignal.timeout(5000) }).then(() => 'open', (err: unknown) =>
        err instanceof wspipe.UpgradeError ? { name: err.name, status: err.status, reason: err.reason, message: err.message } : String(err))
    }, raw.url)
    t.deepEqual(outcome, { name: 'UpgradeError', status: 0, reason: 'timeout', message: 'the opening handshake timed out' })
    t.true(await eventually(() => raw.sockets.size === 0), 'the browser closed its socket')
    t.is(await p.evaluate(() => wspipe.DEFAULT_BROWSER_OPTIONS.handshakeTimeout), 10_000)
  })

  test.serial(`${path}: a server that breaks the protocol after the 101 (a masked frame, invalid UTF-8, close code 1005 on the wire): source throws ConnectionClosedError 1006, closed is 1006 — the browser fails the connection itself (Node would report 1002 / 1007)`, async (t) => {
    t.timeout(60_000)
    const p = await page(t, path)
    const servers = [
      // Text "hi", masked (§5.1: a server must not mask).
      after101([0x81, 0x82, 1, 2, 3, 4, 0x68 ^ 1, 0x69 ^ 2]),
      // Text that is not UTF-8 (§8.1).
      after101([0x81, 2, 0xc0, 0x80]),
      // A close frame with 1005, which must not be sent (§7.4.1).
      after101([0x88, 2, 0x03, 0xed])
    ]
    for (const respond of servers) {
      const raw = await rawServer(t, respond)
      const seen = await p.evaluate(async (url) => {
        const conn = await wspipe.connect(url)
        let thrown: unknown
        try {
          for await (const _ of conn.source) { /* nothing valid comes */ }
        } catch (err) {
          thrown = err
        }
        const e = thrown as { name?: string, closeCode?: number } | undefined
        return { thrown: [e?.name, e?.closeCode], closed: await conn.closed }
      }, raw.url)
      t.deepEqual(seen, { thrown: ['ConnectionClosedError', 1006], closed: { code: 1006, reason: '', wasClean: false } })
    }
  })
}
