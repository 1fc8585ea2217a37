// Fakes for the driver's parts: a Transport that records what it is asked.
import type { Transport } from '../../src/driver/transport.js'

/** A Transport that keeps what is written (until `written()`), and counts the rest. */
export class FakeTransport implements Transport {
  /** Writes not yet "written", with their callbacks. */
  pendingWrites: Array<{ bytes: Uint8Array, callback: ((err?: Error | null) => void) | undefined }> = []
  /** Writes in batches: one entry per corked batch or lone write. */
  batches: Uint8Array[][] = []
  corked = 0
  paused = false
  pauses = 0
  resumes = 0
  ended = false
  destroyed = false
  readonly allowHalfOpen = false
  private batch: Uint8Array[] | undefined

  on (): this {
    return this
  }

  write (chunk: Uint8Array, callback?: (err?: Error | null) => void): boolean {
    this.pendingWrites.push({ bytes: chunk, callback })
    if (this.batch !== undefined) this.batch.push(chunk)
    else this.batches.push([chunk])
    return true
  }

  cork (): void {
    this.corked++
    this.batch = []
  }

  uncork (): void {
    if (this.batch !== undefined) this.batches.push(this.batch)
    this.batch = undefined
  }

  get writableLength (): number {
    let n = 0
    for (const w of this.pendingWrites) n += w.bytes.length
    return n
  }

  /** The "kernel" took everything: callbacks run. */
  written (): void {
    const writes = this.pendingWrites
    this.pendingWrites = []
    for (const w of writes) w.callback?.()
  }

  pause (): this {
    this.paused = true
    this.pauses++
    return this
  }

  resume (): this {
    this.paused = false
    this.resumes++
    return this
  }

  end (): this {
    this.ended = true
    return this
  }

  destroy (): this {
    this.destroyed = true
    return this
  }
}
