// The attackers' primitives: raw node:net sockets, a bounded flood writer, and small waits.
// Frames come from bench/lib/frames.ts (fast, final frames) and test/conformance/wire.ts
// (any frame: unfinished fragments, control frames); the handshake from test/server/helpers.ts.
import net from 'node:net'
import { RawClient, upgradeRequest } from '../server/helpers.js'

export { RawClient, upgradeRequest }

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** A TCP connection to the server, once connected (bounded by `ms`). */
export function tcp (port: number, ms = 5000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('connect timed out')) }, ms)
    socket.once('connect', () => { clearTimeout(timer); socket.off('error', reject); socket.on('error', () => {}); resolve(socket) })
    socket.once('error', (err) => { clearTimeout(timer); reject(err) })
  })
}

/** Resolves with the ms until `socket` closes, or undefined if it is still open after `ms`. */
export function closedWithin (socket: net.Socket, ms: number, since = performance.now()): Promise<number | undefined> {
  return new Promise((resolve) => {
    if (socket.destroyed) { resolve(performance.now() - since); return }
    const timer = setTimeout(() => { socket.off('close', onClose); resolve(undefined) }, ms)
    const onClose = (): void => { clearTimeout(timer); resolve(performance.now() - since) }
    socket.once('close', onClose)
  })
}

/** Resolves once `socket` has flushed what was written so far (or closed), bounded by `ms`. */
export function flushed (socket: net.Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (socket.destroyed) { resolve(false); return }
    const timer = setTimeout(() => resolve(false), ms)
    socket.write(new Uint8Array(0), () => { clearTimeout(timer); resolve(true) })
  })
}

export interface FloodResult {
  /** Bytes handed to the socket (its own buffer stays below its high-water mark). */
  sent: number
  /** Writing blocked for `stallMs`: the server stopped reading. */
  stalled: boolean
  /** The socket closed (the server dropped us). */
  closed: boolean
  ms: number
}

/**
 * Write `chunk` again and again, waiting for drain like a well-behaved writer (so the attacker's
 * own memory stays bounded), until `maxBytes`, `maxMs`, a write blocked for `stallMs`, the
 * socket closes, or `stop()` says so.
 */
export async function flood (socket: net.Socket, chunk: Uint8Array, bounds: { maxBytes: number, maxMs: number, stallMs: number, stop?: () => boolean }): Promise<FloodResult> {
  const start = performance.now()
  let sent = 0
  let stalled = false
  while (sent < bounds.maxBytes && performance.now() - start < bounds.maxMs && !socket.destroyed && bounds.stop?.() !== true) {
    const ok = socket.write(chunk)
    sent += chunk.length
    if (ok) {
      // let other sockets and timers run now and then
      if ((sent / chunk.length) % 64 === 0) await new Promise<void>((resolve) => setImmediate(resolve))
      continue
    }
    const drained = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => { cleanup(); resolve(false) }, bounds.stallMs)
      const onDrain = (): void => { cleanup(); resolve(true) }
      const onClose = (): void => { cleanup(); resolve(true) }
      function cleanup (): void { clearTimeout(timer); socket.off('drain', onDrain); socket.off('close', onClose) }
      socket.once('drain', onDrain)
      socket.once('close', onClose)
    })
    if (!drained) { stalled = true; break }
  }
  return { sent, stalled, closed: socket.destroyed, ms: performance.now() - start }
}

/** Run `task(i)` for i < count with at most `concurrency` at once; stops starting new ones at `deadline`. */
export async function pool (count: number, concurrency: number, deadline: number, task: (i: number) => Promise<void>): Promise<{ started: number, failures: number, errors: string[] }> {
  let next = 0
  let failures = 0
  const errors: string[] = []
  const worker = async (): Promise<void> => {
    while (next < count && Date.now() < deadline) {
      const i = next++
      try {
        await task(i)
      } catch (err) {
        failures++
        if (errors.length < 5) errors.push(String((err as Error)?.message ?? err))
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
  return { started: next, failures, errors }
}

export const MiB = 1024 * 1024
export const mb = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`
