/**
 * Headless Chromium (the system's /usr/bin/chromium, driven by playwright-core) against the
 * server: a page served on 127.0.0.1 runs the echo battery with the browser's own WebSocket,
 * and the Origin allow-list sees the browser's real Origin header.
 */

import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { ExecutionContext } from 'ava'
import type { Page } from 'playwright-core'
import { sharedChromium } from '../chromium.js'
import { WebSocketServer, type Handler, type WebSocketServerOptions } from '../../src/index.js'
import { MULTIBYTE } from './clients.js'
import { peerTest } from '../peers.js'
import { captureLogger, echo, within } from './helpers.js'

const test = peerTest('chromium')

const browser = sharedChromium(test)

/**
 * A page in which functions compiled by tsx run: esbuild's keepNames wraps named functions in
 * `__name(...)`, a helper that exists only in Node, so the page gets a stand-in.
 */
async function newPage (): Promise<Page> {
  const page = await browser().newPage()
  await page.addInitScript({ content: 'globalThis.__name = (f) => f' })
  return page
}

/** An HTTP server with a blank page at `/` and a WebSocketServer attached at `/ws`. */
async function pageServer (t: ExecutionContext, options: WebSocketServerOptions = {}, handlers: Record<string, Handler> = { echo, '': echo }): Promise<{ origin: string, wsUrl: string }> {
  const httpServer = http.createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' })
    res.end('<!doctype html><title>wspipe</title>')
  })
  httpServer.listen(0, '127.0.0.1')
  await once(httpServer, 'listening')
  const port = (httpServer.address() as AddressInfo).port
  const wss = new WebSocketServer({ logger: captureLogger().logger, maxMessageSize: 32 * 1024 * 1024, ...options })
  for (const [protocol, handler] of Object.entries(handlers)) wss.register(protocol, handler)
  wss.attach(httpServer, { path: '/ws' })
  t.teardown(async () => {
    await within(wss.close(), 15_000, 'wss.close')
    httpServer.closeAllConnections()
    await new Promise<void>((resolve) => httpServer.close(() => resolve()))
  })
  return { origin: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}/ws` }
}

test('chromium: echo battery (UTF-8, 256 byte values, empty, 1,000 in order with types, 16 MiB), then a 4000 close', async (t) => {
  t.timeout(90_000)
  const { origin, wsUrl } = await pageServer(t)
  const page = await newPage()
  t.teardown(() => page.close())
  await page.goto(`${origin}/`)
  const result = await page.evaluate(async ({ url, text }) => {
    const ws = new WebSocket(url, ['x', 'echo'])
    ws.binaryType = 'arraybuffer'
    const queue: Array<string | ArrayBuffer> = []
    let wake: (() => void) | undefined
    ws.onmessage = (e) => { queue.push(e.data); wake?.() }
    const closed = new Promise<{ code: number, reason: string, wasClean: boolean }>((resolve) => {
      ws.onclose = (e) => resolve({ code: e.code, reason: e.reason, wasClean: e.wasClean })
    })
    await new Promise<void>((resolve, reject) => { ws.onopen = () => resolve(); ws.onerror = () => reject(new Error('ws error')) })
    const next = async (): Promise<string | ArrayBuffer> => {
      while (queue.length === 0) await new Promise<void>((resolve) => { wake = resolve })
      return queue.shift()!
    }
    const out: Record<string, unknown> = { protocol: ws.protocol }
    ws.send(text)
    out.text = (await next()) === text
    const all = new Uint8Array(256).map((_, i) => i)
    ws.send(all)
    const b = await next()
    out.bytes = b instanceof ArrayBuffer && b.byteLength === 256 && new Uint8Array(b).every((v, i) => v === i)
    ws.send('')
    out.emptyText = (await next()) === ''
    ws.send(new Uint8Array(0))
    const e = await next()
    out.emptyBinary = e instanceof ArrayBuffer && e.byteLength === 0
    for (let i = 0; i < 1000; i++) ws.send(i % 2 === 0 ? `m${i}` : new TextEncoder().encode(`b${i}`))
    let ordered = true
    for (let i = 0; i < 1000; i++) {
      const m = await next()
      if (i % 2 === 0 ? m !== `m${i}` : !(m instanceof ArrayBuffer) || new TextDecoder().decode(m) !== `b${i}`) ordered = false
    }
    out.ordered = ordered
    const big = new Uint8Array(16 * 1024 * 1024)
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >>> 11)) & 0xff
    ws.send(big)
    const back = await next()
    let same = back instanceof ArrayBuffer && back.byteLength === big.length
    if (same) {
      const v = new Uint8Array(back as ArrayBuffer)
      for (let i = 0; i < big.length; i++) if (v[i] !== big[i]) { same = false; break }
    }
    out.big = same
    ws.close(4000, 'bye')
    out.closed = await closed
    return out
  }, { url: wsUrl, text: MULTIBYTE })
  t.deepEqual(result, {
    protocol: 'echo',
    text: true,
    bytes: true,
    emptyText: true,
    emptyBinary: true,
    ordered: true,
    big: true,
    closed: { code: 4000, reason: '', wasClean: true }
  })
})

test('chromium: a handler that throws → the page sees 1011; server close 4001 "x" → the page sees it', async (t) => {
  t.timeout(60_000)
  const { origin, wsUrl } = await pageServer(t, {}, {
    boom: () => { throw new Error('hidden detail') },
    bye: (c) => { c.close(4001, 'x') }
  })
  const page = await newPage()
  t.teardown(() => page.close())
  await page.goto(`${origin}/`)
  const result = await page.evaluate(async (url) => {
    const one = (protocol: string): Promise<{ code: number, reason: string }> => new Promise((resolve) => {
      const ws = new WebSocket(url, protocol)
      ws.onclose = (e) => resolve({ code: e.code, reason: e.reason })
    })
    return [await one('boom'), await one('bye')]
  }, wsUrl)
  t.deepEqual(result, [{ code: 1011, reason: '' }, { code: 4001, reason: 'x' }])
})

test('chromium: the Origin allow-list sees the page\'s origin', async (t) => {
  t.timeout(60_000)
  const allowed = await pageServer(t, { origins: ['http://elsewhere.example'] })
  const page = await newPage()
  t.teardown(() => page.close())
  await page.goto(`${allowed.origin}/`)
  const refused = await page.evaluate(async (url) => await new Promise<{ opened: boolean, code: number }>((resolve) => {
    let opened = false
    const ws = new WebSocket(url)
    ws.onopen = () => { opened = true }
    ws.onclose = (e) => resolve({ opened, code: e.code })
  }), allowed.wsUrl)
  t.deepEqual(refused, { opened: false, code: 1006 })

  // A second server allow-lists the page's real origin.
  const origin = await page.evaluate(() => location.origin)
  t.is(origin, allowed.origin)
  const ok = await pageServer(t, { origins: [origin] })
  const accepted = await page.evaluate(async (url) => await new Promise<string>((resolve) => {
    const ws = new WebSocket(url)
    ws.onopen = () => ws.send('hello')
    ws.onmessage = (e) => { resolve(String(e.data)); ws.close() }
    ws.onclose = () => resolve('closed')
  }), ok.wsUrl)
  t.is(accepted, 'hello')
})
