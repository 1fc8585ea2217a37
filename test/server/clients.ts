/**
 * Two real clients behind one small interface, `ws` and undici's WebSocket, and the echo checks
 * every client and transport runs: multi-byte UTF-8, all 256 byte values, empty messages, a
 * 16 MiB message, 1,000 messages in order, and text staying text and binary staying binary.
 */

import type { ExecutionContext } from 'ava'
import { Agent, WebSocket as UndiciWebSocket } from 'undici'
import type WebSocket from 'ws'
import { within, WsPeer } from './helpers.js'

/** A received message: a string for text, bytes for binary. */
export type Received = string | Uint8Array

export interface EchoClient {
  readonly protocol: string
  send: (data: string | Uint8Array) => void
  next: (ms?: number) => Promise<Received>
  /** Close with a code and reason; resolves with what the server answered. */
  close: (code?: number, reason?: string) => Promise<{ code: number, reason: string }>
}

export interface ClientKind {
  name: string
  open: (url: string, protocols?: string[]) => Promise<EchoClient>
}

export function wsKind (options: WebSocket.ClientOptions = {}): ClientKind {
  return {
    name: 'ws',
    async open (url, protocols) {
      const peer = await WsPeer.open(url, protocols, { maxPayload: 64 * 1024 * 1024, ...options })
      return {
        protocol: peer.ws.protocol,
        send: (data) => { peer.ws.send(data) },
        async next (ms) {
          const m = await peer.next(ms)
          return m.isBinary ? new Uint8Array(m.data.buffer, m.data.byteOffset, m.data.length) : m.data.toString('utf8')
        },
        close: (code, reason) => peer.close(code, reason)
      }
    }
  }
}

export function undiciKind (dispatcher?: Agent): ClientKind {
  return {
    name: 'undici',
    async open (url, protocols) {
      const ws = new UndiciWebSocket(url, { protocols: protocols ?? [], dispatcher } as any)
      ws.binaryType = 'arraybuffer'
      const messages: Received[] = []
      let waiter: (() => void) | undefined
      let closedInfo: { code: number, reason: string } | undefined
      const closed = new Promise<{ code: number, reason: string }>((resolve) => {
        ws.addEventListener('close', (e) => {
          closedInfo = { code: e.code, reason: e.reason }
          waiter?.()
          resolve(closedInfo)
        })
      })
      ws.addEventListener('message', (e) => {
        messages.push(typeof e.data === 'string' ? e.data : new Uint8Array(e.data as ArrayBuffer))
        waiter?.()
      })
      await within(new Promise<void>((resolve, reject) => {
        ws.addEventListener('open', () => resolve())
        ws.addEventListener('error', (e) => reject(new Error(`undici WebSocket error: ${String((e as any).error ?? (e as any).message)}`)))
      }), 5000, `undici open ${url}`)
      return {
        protocol: ws.protocol,
        send: (data) => { ws.send(data) },
        async next (ms = 10_000) {
          const deadline = Date.now() + ms
          while (messages.length === 0) {
            if (closedInfo !== undefined) throw new Error('closed before the next message')
            const left = deadline - Date.now()
            if (left <= 0) throw new Error('timed out waiting for a message')
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, left)
              waiter = () => { clearTimeout(timer); waiter = undefined; resolve() }
            })
          }
          return messages.shift()!
        },
        async close (code, reason) {
          ws.close(code, reason)
          return await within(closed, 10_000, 'undici close')
        }
      }
    }
  }
}

/** Every byte value 0..255, in order. */
export function allBytes (): Uint8Array {
  const out = new Uint8Array(256)
  for (let i = 0; i < 256; i++) out[i] = i
  return out
}

/** 1-, 2-, 3- and 4-byte UTF-8 sequences, the surrogate-adjacent code points and a long one. */
export const MULTIBYTE = 'aé€😀 ü ß 日本語 Ελληνικά 🎉👍🏽 \u007f\u0080\u07ff\u0800\uffff\u{10000}\u{10ffff} \ud7ff\ue000'

/** A deterministic pseudo-random buffer (no Math.random, so failures reproduce). */
export function pattern (length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length)
  let x = seed >>> 0 || 1
  for (let i = 0; i < length; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

function same (a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length))
}

/** Echo the battery through `client` (the server must echo with `sink(source)`). */
export async function echoBattery (t: ExecutionContext, client: EchoClient, options: { big?: boolean } = {}): Promise<void> {
  client.send(MULTIBYTE)
  t.is(await client.next(), MULTIBYTE, 'multi-byte UTF-8 text')

  client.send(allBytes())
  const bytes = await client.next()
  t.true(bytes instanceof Uint8Array, 'binary stays binary')
  t.true(same(bytes as Uint8Array, allBytes()), 'all 256 byte values')

  client.send('')
  t.is(await client.next(), '', 'empty text')
  client.send(new Uint8Array(0))
  const empty = await client.next()
  t.true(empty instanceof Uint8Array && empty.length === 0, 'empty binary')

  // 1,000 messages keep their order and their types.
  for (let i = 0; i < 1000; i++) client.send(i % 2 === 0 ? `m${i}` : Buffer.from(`b${i}`))
  let ordered = true
  let typed = true
  for (let i = 0; i < 1000; i++) {
    const m = await client.next()
    if (i % 2 === 0) {
      if (typeof m !== 'string') typed = false
      else if (m !== `m${i}`) ordered = false
    } else {
      if (typeof m === 'string') typed = false
      else if (Buffer.from(m).toString() !== `b${i}`) ordered = false
    }
  }
  t.true(ordered, '1,000 messages in order')
  t.true(typed, 'text stays text, binary stays binary')

  if (options.big === true) {
    const big = pattern(16 * 1024 * 1024, 7)
    client.send(big)
    const back = await client.next(60_000)
    t.true(back instanceof Uint8Array && same(back, big), '16 MiB binary')
    const text = 'ü€😀x'.repeat(1024 * 1024) // 10 MiB of UTF-8 in 4 Mi code points
    client.send(text)
    t.true(await client.next(60_000) === text, '10 MiB multi-byte text')
  }
}
