/**
 * Helpers for the browser tests: a page on 127.0.0.1 that loads wspipe's browser build (bundled
 * by esbuild, as the demo serves it) with a WebSocketServer on the same port, and pages of the
 * system's Chromium in which either code path runs: `WebSocketStream`, or plain `WebSocket` with
 * `WebSocketStream` hidden. Each page counts the sockets it made of each kind, so a test can
 * tell which path ran, and keeps its plain ones in `globalThis.__sockets`.
 */

import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { ExecutionContext } from 'ava'
import type { Browser, Page } from 'playwright-core'
import { bundleBrowserBuild } from '../../examples/demo/bundle.js'
import { WebSocketServer, type Handler, type WebSocketServerOptions } from '../../src/index.js'
import { captureLogger, within } from '../server/helpers.js'

/** The two ways the browser build runs. */
export type BrowserPath = 'WebSocketStream' | 'WebSocket'
export const PATHS: BrowserPath[] = ['WebSocketStream', 'WebSocket']

let bundle: Promise<string> | undefined

/** The browser build as a script that sets `globalThis.wspipe`, bundled once per test file. */
export function browserBundle (): Promise<string> {
  bundle ??= bundleBrowserBuild({ format: 'iife' }).then((b) => b.code)
  return bundle
}

export interface PageServer {
  readonly origin: string
  /** ws://…/ws */
  readonly wsUrl: string
  readonly server: WebSocketServer
}

/**
 * An HTTP server with a page at `/` that loads the browser build, and a WebSocketServer at `/ws`;
 * closed in teardown. `scripts` are served too, by path (e.g. `{ '/app.js': code }`).
 */
export async function pageServer (t: ExecutionContext, handlers: Record<string, Handler>, options: WebSocketServerOptions = {}, scripts: Record<string, string> = {}): Promise<PageServer> {
  const served: Record<string, string> = { ...scripts, '/wspipe.js': await browserBundle() }
  const httpServer = http.createServer((req, res) => {
    const script = served[req.url ?? '']
    if (script !== undefined) {
      res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8' }).end(script)
    } else {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end('<!doctype html><title>wspipe</title><script src="/wspipe.js"></script>')
    }
  })
  httpServer.listen(0, '127.0.0.1')
  await once(httpServer, 'listening')
  const port = (httpServer.address() as AddressInfo).port
  const server = new WebSocketServer({ logger: captureLogger().logger, ...options })
  for (const [protocol, handler] of Object.entries(handlers)) server.register(protocol, handler)
  server.attach(httpServer, { path: '/ws' })
  t.teardown(async () => {
    await within(server.close(), 15_000, 'server.close')
    httpServer.closeAllConnections()
    await new Promise<void>((resolve) => httpServer.close(() => resolve()))
  })
  return { origin: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}/ws`, server }
}

/**
 * Before the page's scripts: esbuild's keepNames (tsx compiles the functions handed to
 * `page.evaluate`) wraps named functions in `__name(...)`, which exists only in Node; the
 * constructors are wrapped to count the sockets made; and for the plain path `WebSocketStream`
 * is deleted, as in a browser without it.
 */
function initScript (path: BrowserPath): string {
  return `
globalThis.__name = (f) => f
globalThis.__made = { WebSocketStream: 0, WebSocket: 0 }
globalThis.__sockets = []
for (const name of ['WebSocketStream', 'WebSocket']) {
  const Original = globalThis[name]
  if (Original === undefined) continue
  globalThis[name] = class extends Original {
    constructor (...args) {
      super(...args)
      globalThis.__made[name]++
      if (name === 'WebSocket') globalThis.__sockets.push(this)
    }
  }
}
${path === 'WebSocket' ? 'delete globalThis.WebSocketStream; delete globalThis.WebSocketError' : ''}
`
}

/** A page at `origin` in which the browser build runs on `path`; closed in teardown. */
export async function openPage (t: ExecutionContext, browser: Browser, origin: string, path: BrowserPath): Promise<Page> {
  const page = await browser.newPage()
  t.teardown(() => page.close())
  await page.addInitScript({ content: initScript(path) })
  await page.goto(`${origin}/`)
  const has = await page.evaluate(() => typeof (globalThis as { WebSocketStream?: unknown }).WebSocketStream === 'function')
  t.is(has, path === 'WebSocketStream', `the page ${path === 'WebSocketStream' ? 'has' : 'hides'} WebSocketStream`)
  return page
}

/** How many sockets of each kind the page made. */
export function socketsMade (page: Page): Promise<Record<BrowserPath, number>> {
  return page.evaluate(() => (globalThis as unknown as { __made: Record<'WebSocketStream' | 'WebSocket', number> }).__made)
}
