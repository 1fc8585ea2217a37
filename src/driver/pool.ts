/**
 * Message buffers the echo path gives back: the parser gathers a frame split across reads into
 * a buffer from {@link allocMessage}, and when `sink(source)` has sent such a message and the
 * transport has written it, nobody else can hold it (the handler never saw it), so its memory is
 * taken again for the next message instead of fresh memory, whose pages the kernel must fault in
 * on first touch (256 faults for each 1 MiB). A message handed to the handler is never given
 * back: it is the handler's.
 *
 * @packageDocumentation
 */

import { Buffer } from 'node:buffer'

/** Smaller buffers come from Node's allocator as before. */
export const POOL_MIN = 16 * 1024
/** Larger buffers are not kept: a few of them would be most of the pool. */
export const POOL_MAX = 4 * 1024 * 1024
/** Buffers kept per size class. */
const PER_CLASS = 8

/** Its constructor returns the object it is given, so a subclass's fields land on that object. */
class Stamp {
  constructor (target: object) {
    return target as Stamp
  }
}

/** Marks a pool buffer's memory (a private field: no property, no WeakSet entry); `out` while a message uses it. */
class PoolMark extends Stamp {
  #out = true

  static isOut (memory: object): boolean {
    return #out in memory && (memory as PoolMark).#out
  }

  static setOut (memory: ArrayBuffer, out: boolean): void {
    (memory as unknown as PoolMark).#out = out
  }
}

/**
 * Free buffers by size, held weakly: what the pool keeps is memory the collector may take back
 * at its next full collection, so an idle server holds none of it for long.
 */
const free = new Map<number, Array<WeakRef<ArrayBuffer>>>()

/** The size class of `n`: rounded up to an eighth of its power of two, so a message pins at most 1/8 more than its bytes. */
export function sizeClass (n: number): number {
  const step = 2 ** (Math.floor(Math.log2(n)) - 3)
  return Math.ceil(n / step) * step
}

/**
 * `n` bytes, not zeroed (every byte is written by the caller): a Buffer of exactly `n`, over
 * memory of its size class (at most 1/8 larger) that an earlier message may have used.
 */
export function allocMessage (n: number): Uint8Array {
  if (n < POOL_MIN || n > POOL_MAX) return Buffer.allocUnsafe(n)
  const size = sizeClass(n)
  const list = free.get(size)
  if (list !== undefined) {
    for (let ref = list.pop(); ref !== undefined; ref = list.pop()) {
      const memory = ref.deref()
      if (memory !== undefined) {
        PoolMark.setOut(memory, true)
        return Buffer.from(memory, 0, n)
      }
    }
  }
  const memory = Buffer.allocUnsafeSlow(size).buffer
  new PoolMark(memory)
  return Buffer.from(memory, 0, n)
}

/**
 * Give back the memory of `message`, a message nobody holds any more: only whole buffers from
 * {@link allocMessage} are taken, once (giving one back twice does nothing), anything else is
 * left to the collector.
 */
export function recycleMessage (message: Uint8Array): void {
  const memory = message.buffer as ArrayBuffer
  if (message.byteOffset !== 0 || !PoolMark.isOut(memory)) return
  PoolMark.setOut(memory, false)
  const size = memory.byteLength
  let list = free.get(size)
  if (list === undefined) free.set(size, list = [])
  if (list.length < PER_CLASS) list.push(new WeakRef(memory))
}
