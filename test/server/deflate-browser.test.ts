/**
 * permessage-deflate with headless Chromium (/usr/bin/chromium via playwright-core): the
 * browser's own WebSocket negotiates it with our server for each server parameter set; the
 * `extensions` attribute (the answer header) is checked and text, binary, empty and large JSON
 * messages come back intact.
 */

import { chromium, type Browser } from 'playwright-core'
import type { PerMessageDeflateOptions } from '../../src/index.js'
import { peerTest } from '../peers.js'
import { echo, startServer } from './helpers.js'

const test = peerTest('chromium')

let browser: Browser | undefined

test.before(async () => {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking'],
    timeout: 30_000
  })
})

test.after.always(async () => {
  await browser?.close()
})

// Chromium offers "permessage-deflate; client_max_window_bits": the server's default 12-bit windows apply.
const CASES: Array<[PerMessageDeflateOptions, string]> = [
  [{}, 'permessage-deflate; server_max_window_bits=12; client_max_window_bits=12'],
  [{ serverMaxWindowBits: 15, clientMaxWindowBits: 15 }, 'permessage-deflate'],
  [{ serverNoContextTakeover: true, clientNoContextTakeover: true }, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12'],
  [{ serverMaxWindowBits: 9, clientMaxWindowBits: 10 }, 'permessage-deflate; server_max_window_bits=9; client_max_window_bits=10'],
  [{ sharedCompressor: true }, 'permessage-deflate; server_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12']
]

for (const [options, expected] of CASES) {
  test(`chromium ↔ our server ${JSON.stringify(options)}: extensions "${expected}", echoes intact`, async (t) => {
    t.timeout(60_000)
    const { url } = await startServer(t, { '': echo }, { perMessageDeflate: { threshold: 0, ...options } })
    const page = await browser!.newPage()
    t.teardown(() => page.close())
    // tsx (esbuild keepNames) wraps named functions in __name(), which only Node has.
    await page.evaluate('globalThis.__name = (f) => f')
    const result = await page.evaluate(async (wsUrl) => {
      const ws = new WebSocket(wsUrl)
      ws.binaryType = 'arraybuffer'
      const queue: Array<string | ArrayBuffer> = []
      let wake: (() => void) | undefined
      ws.onmessage = (e) => { queue.push(e.data); wake?.() }
      await new Promise<void>((resolve, reject) => { ws.onopen = () => resolve(); ws.onerror = () => reject(new Error('ws error')) })
      const next = async (): Promise<string | ArrayBuffer> => {
        while (queue.length === 0) await new Promise<void>((resolve) => { wake = resolve })
        return queue.shift()!
      }
      const json = JSON.stringify(Array.from({ length: 20_000 }, (_, i) => ({ id: i, name: `n${i % 7}`, ok: i % 2 === 0 })))
      const sent: Array<string | Uint8Array<ArrayBuffer>> = ['héllo ☃', '', new Uint8Array(0), new Uint8Array(256).map((_, i) => i), json.slice(0, 2000), json.slice(0, 2000), json]
      for (const m of sent) ws.send(m)
      const same: boolean[] = []
      for (const m of sent) {
        const got = await next()
        if (typeof m === 'string') same.push(got === m)
        else same.push(got instanceof ArrayBuffer && got.byteLength === m.length && new Uint8Array(got).every((v, i) => v === m[i]))
      }
      const closed = new Promise<number>((resolve) => { ws.onclose = (e) => resolve(e.code) })
      ws.close(1000)
      return { extensions: ws.extensions, same, closed: await closed, bigLength: json.length }
    }, url)
    t.is(result.extensions, expected)
    t.deepEqual(result.same, [true, true, true, true, true, true, true])
    t.true(result.bigLength > 500_000)
    t.is(result.closed, 1000)
  })
}
