/**
 * permessage-deflate (RFC 7692) for the Node driver: the {@link MessageCompression} the session
 * calls for each compressed message, and the work the driver hands off the event loop.
 *
 * No zlib stream lives between messages. Each message is one zlib call whose state is made and
 * freed inside it, so an idle connection holds no zlib state, a mass disconnect leaves no handle
 * behind, and context takeover (§7.1.1) is kept as plain bytes: the last 2^windowBits bytes of
 * what went through each direction, given to zlib as its preset dictionary — a window the peer's
 * compressor also has, so back-references into it decode the same.
 *
 * Small messages (the common case) are done at once, with zlib's synchronous API: a message of
 * up to {@link SYNC_DEFLATE} bytes, an inflated output of up to {@link SYNC_INFLATE} bytes. Under
 * the driver ({@link PerMessageDeflate.offLoop}), larger ones run on libuv's thread pool, one job
 * at a time in the process ({@link runOffLoop}), so no message holds the event loop for more than
 * a few milliseconds; and the work is budgeted ({@link ZlibBudget}): per connection and per
 * server, in bytes per second beyond what the compressed bytes pay for ({@link chargeFor}).
 *
 * @packageDocumentation
 */

import { Buffer } from 'node:buffer'
import { constants, createDeflateRaw, createInflateRaw, deflateRawSync, inflateRawSync, type ZlibOptions } from 'node:zlib'
import type { DeflateParams } from './deflate-negotiation.js'
import type { ResolvedDeflateOptions } from './deflate-options.js'
import { ProtocolError } from '../protocol/errors.js'
import type { MessageCompression } from '../protocol/extension.js'
import type { Role } from '../protocol/frame-parser.js'
import { cancelOffLoop, chargeFor, FREE_RATIO, runOffLoop, ZlibBudget, type OffLoopJob } from './zlib-work.js'

/** RFC 7692 §7.2.1: the sender drops the empty stored block's 4 octets; the receiver puts them back. */
const TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff])

/** The zlib work done so far in this process (for tests and monitoring). */
export const deflateCounters = {
  /** zlib jobs running on the thread pool (at most one); synchronous calls are over before JavaScript runs again. */
  inFlight: 0,
  /** Messages compressed. */
  deflated: 0,
  /** Messages inflated. */
  inflated: 0,
  /** Bytes zlib produced inflating, failed attempts included: the work inflating cost. */
  inflatedBytes: 0,
  /** Compressions served from a shared result: a broadcast's, or the shared compressor's last. */
  sharedHits: 0
}

/** Messages up to this many bytes are compressed at once, on the event loop (~2 ms for the slowest data). */
export const SYNC_DEFLATE = 64 * 1024
/** Inflating on the event loop stops at this many bytes of output (~1 ms); a larger message goes off the loop. */
export const SYNC_INFLATE = 128 * 1024
/**
 * The chunks a compression off the loop writes its output into: the payload is sent as these
 * chunks, never joined, so no large buffer is made and filled on the event loop (touching fresh
 * memory costs ~40 µs a page on a virtual machine that backs it lazily: 160 ms for 16 MiB).
 */
const DEFLATE_CHUNK = 256 * 1024
/** Deflate's largest ratio: a bit or two per 258-byte match. An inflate's output buffer of 1,032 × its input (and a little) always holds it. */
const MAX_RATIO = 1032
/** {@link PerMessageDeflate.deflate}'s answer when the result comes later. */
export const PENDING = Symbol('pending')

/**
 * The last 2^windowBits bytes that went through one direction: the LZ77 window the peer's
 * compressor or decompressor also holds. Grows as needed, up to its capacity.
 */
export class SlidingWindow {
  /** Most bytes kept. */
  readonly capacity: number
  private buf: Uint8Array | undefined
  private used = 0

  constructor (windowBits: number) {
    this.capacity = 1 << windowBits
  }

  /** The kept bytes, oldest first (a view, valid until the next {@link SlidingWindow.append}). */
  get bytes (): Uint8Array | undefined {
    return this.used === 0 ? undefined : this.buf!.subarray(0, this.used)
  }

  /** Memory held. */
  get held (): number {
    return this.buf?.length ?? 0
  }

  /** Add `data` at the end, dropping the oldest bytes beyond the capacity. */
  append (data: Uint8Array): void {
    const cap = this.capacity
    const n = data.length
    if (n === 0) return
    if (n >= cap) {
      if (this.buf === undefined || this.buf.length < cap) this.buf = Buffer.allocUnsafeSlow(cap)
      this.buf.set(data.subarray(n - cap))
      this.used = cap
      return
    }
    const keep = Math.min(this.used, cap - n)
    const size = keep + n
    let buf = this.buf
    if (buf === undefined || buf.length < size) {
      // Grow by doubling (bounded by the capacity): a quiet connection keeps a small window.
      const grown = Buffer.allocUnsafeSlow(Math.min(cap, Math.max(size, 2 * (buf?.length ?? 0), 1024)))
      if (buf !== undefined && keep > 0) grown.set(buf.subarray(this.used - keep, this.used))
      buf = this.buf = grown
    } else if (keep < this.used) {
      buf.copyWithin(0, this.used - keep, this.used)
    }
    buf.set(data, keep)
    this.used = size
  }
}

/** The smallest zlib window (≥ 9, ≤ `max`) that spans `bytes`: a smaller window is a smaller, faster zlib state. */
function windowFor (bytes: number, max: number): number {
  let bits = 9
  // zlib reaches back at most 2^bits - 262 bytes (MAX_DIST); 8 is taken as 9 for raw deflate.
  while (bits < max && (1 << bits) - 262 < bytes) bits++
  return bits
}

/** A compressed payload: one buffer, or (made off the loop) its parts in order, sent as they are. */
export type CompressedPayload = Uint8Array | readonly Uint8Array[]

/**
 * A message compressed once for several connections: with these settings, its output (`null`:
 * sent uncompressed; `undefined`: still being compressed, `waiters` are told when it is done).
 */
interface SharedDeflate {
  readonly bits: number
  readonly level: number
  readonly memLevel: number
  output: CompressedPayload | null | undefined
  waiters: Array<(output: CompressedPayload | null) => void> | undefined
}

/** Where a broadcast (a prepared message, which never changes) keeps its compressed forms. */
const kDeflated = Symbol('wspipe.deflated')
type Broadcast = Uint8Array & { [kDeflated]?: SharedDeflate[] }

/** The shared compressor's last message: a copy of its bytes, and its compressed form. */
let shared: { input: Uint8Array, entry: SharedDeflate } | undefined

/** A compressed message left for later: its input (with the trailer), its compressed size, whether it was too big to inflate at once, and whether it is to be let in charged in full. */
interface PendingInflate {
  input: Buffer
  compressed: number
  tooBig: boolean
  full?: boolean
}

/** Where an inflate off the loop ends: the message, a `ProtocolError`, or neither (let it in again). */
type InflateDone = (error: ProtocolError | undefined, data: Uint8Array | undefined) => void

/** zlib stopped at its output limit. */
function isTooLarge (err: Error): boolean {
  return (err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE'
}

/**
 * One connection's permessage-deflate: compresses what it sends, inflates what it receives,
 * with the negotiated {@link DeflateParams} (RFC 7692 §7.1) for its role.
 */
export class PerMessageDeflate implements MessageCompression {
  private readonly options: ResolvedDeflateOptions
  /** Our window bits and whether we keep our context, for sending. */
  private readonly sendBits: number
  private readonly sendWindow: SlidingWindow | undefined
  /** The peer's window bits and context, for receiving. */
  private readonly receiveBits: number
  private readonly receiveWindow: SlidingWindow | undefined
  /** This connection's zlib budget. */
  readonly budget: ZlibBudget
  /**
   * @internal Set by the driver: large messages are left for it ({@link PerMessageDeflate.inflateLater},
   * {@link PerMessageDeflate.deflate}) to do off the event loop. Off (the default), everything is done at once.
   */
  offLoop = false
  /**
   * @internal Set by the driver before it feeds the session: bytes the receive queue has room for. Once
   * inflating has used them, the next compressed message is left for later (its queue is full).
   */
  room = Infinity
  /** @internal Which budget the last wait {@link PerMessageDeflate.inflateLater} returned is for (the longer one). */
  waitingOn: 'connection' | 'server' = 'connection'
  /** The compressed message left for later: its input (compressed bytes and the §7.2.1 tail), and whether it was too big to inflate at once. */
  private pending: PendingInflate | undefined
  /** The jobs off the loop, one each way at most; cancelled when the connection goes. */
  private inflateJob: ZlibJob | undefined
  private deflateJob: ZlibJob | undefined
  /** Bumped when work is cancelled: results of earlier work (a shared compression's too) are ignored. */
  private inflateEpoch = 0
  /** Settles the inflate under way with the budgets: what it was charged ahead less what it cost. */
  private inflateSettle: (() => void) | undefined
  private deflateEpoch = 0

  constructor (role: Role, params: DeflateParams, options: ResolvedDeflateOptions) {
    this.options = options
    const server = role === 'server'
    this.sendBits = server ? params.serverMaxWindowBits : params.clientMaxWindowBits
    this.receiveBits = server ? params.clientMaxWindowBits : params.serverMaxWindowBits
    const sendReset = (server ? params.serverNoContextTakeover : params.clientNoContextTakeover) || options.sharedCompressor
    const receiveReset = server ? params.clientNoContextTakeover : params.serverNoContextTakeover
    this.sendWindow = sendReset ? undefined : new SlidingWindow(this.sendBits)
    this.receiveWindow = receiveReset ? undefined : new SlidingWindow(this.receiveBits)
    this.budget = new ZlibBudget(options.connectionBudget, options.clock)
  }

  get heldBytes (): number {
    return (this.sendWindow?.held ?? 0) + (this.receiveWindow?.held ?? 0) + (this.pending?.input.length ?? 0)
  }

  /** Charge `uncompressed` bytes of work that came to or left as `compressed` bytes: to this connection unless `serverOnly`, and to the server. */
  private charge (uncompressed: number, compressed: number, serverOnly = false): void {
    const n = chargeFor(uncompressed, compressed)
    if (n === 0) return
    if (!serverOnly) this.budget.charge(n)
    this.options.serverBudget?.charge(n)
  }

  compress (data: Uint8Array): Uint8Array | undefined {
    const out = this.deflateNow(data, false)
    // At once, unless the shared compressor's last message was made off the loop: then its parts are joined.
    return out === PENDING || out === undefined ? undefined : out instanceof Uint8Array ? out : Buffer.concat(out)
  }

  /**
   * Compress `data` to send: the payload (sent with RSV1), `undefined` to send it as it is (below
   * the threshold, or not made smaller), or {@link PENDING} when it is being compressed off the
   * event loop: `done` then gets one of the first two, on a later turn, unless {@link PerMessageDeflate.cancel}
   * comes first. A `broadcast` (a prepared message, the same bytes for many connections, which
   * never change) is compressed once for every connection that negotiated the same parameters,
   * with no reference to any connection's context. One call at a time: the next waits for `done`.
   */
  deflate (data: Uint8Array, broadcast: boolean, done: (payload: CompressedPayload | undefined) => void): CompressedPayload | undefined | typeof PENDING {
    return this.deflateNow(data, broadcast, done)
  }

  private deflateNow (data: Uint8Array, broadcast: boolean, done?: (payload: CompressedPayload | undefined) => void): CompressedPayload | undefined | typeof PENDING {
    const o = this.options
    if (data.length < o.threshold) return undefined
    const window = this.sendWindow
    if (broadcast || (window === undefined && o.sharedCompressor)) return this.deflateShared(data, broadcast, done)
    const dictionary = window?.bytes
    const bits = windowFor((dictionary?.length ?? 0) + data.length, this.sendBits)
    if (done === undefined || !this.offLoop || data.length <= SYNC_DEFLATE) {
      const out = deflate(data, bits, o.level, o.memLevel, dictionary)
      this.charge(data.length, out?.length ?? data.length)
      // Sent as it is when deflate does not make it smaller; then it is not in the peer's window either.
      if (out === undefined) return undefined
      window?.append(data)
      return out
    }
    const epoch = this.deflateEpoch
    // A copy: the window changes once this message is in it, and the job starts on a later turn.
    const job = this.deflateJob = new ZlibJob('deflate', data, { windowBits: bits, level: o.level, memLevel: o.memLevel, dictionary: dictionary === undefined ? undefined : Buffer.from(dictionary), finishFlush: constants.Z_SYNC_FLUSH, chunkSize: DEFLATE_CHUNK }, Infinity, (err, chunks, total) => {
      if (epoch !== this.deflateEpoch) return
      this.deflateJob = undefined
      // deflate does not fail on bytes; were it to, the message goes uncompressed.
      const payload = err === undefined ? deflatedParts(data, chunks, total) : undefined
      this.charge(data.length, payload === undefined ? data.length : total - TRAILER.length)
      if (payload !== undefined) window?.append(data)
      done(payload)
    })
    runOffLoop(job)
    return PENDING
  }

  /** One compression for many connections: a broadcast's (kept on the message) or the shared compressor's last message. */
  private deflateShared (data: Uint8Array, broadcast: boolean, done?: (payload: CompressedPayload | undefined) => void): CompressedPayload | undefined | typeof PENDING {
    const o = this.options
    const bits = windowFor(data.length, this.sendBits)
    let entry: SharedDeflate | undefined
    if (broadcast) {
      entry = (data as Broadcast)[kDeflated]?.find((e) => e.bits === bits && e.level === o.level && e.memLevel === o.memLevel)
    } else {
      const last = shared
      if (last !== undefined && last.entry.bits === bits && last.entry.level === o.level && last.entry.memLevel === o.memLevel && last.input.length === data.length && Buffer.compare(last.input, data) === 0) entry = last.entry
    }
    if (entry !== undefined) {
      deflateCounters.sharedHits++
    } else {
      entry = { bits, level: o.level, memLevel: o.memLevel, output: undefined, waiters: undefined }
      // A copy for the comparison: the caller may reuse its buffer. A broadcast never changes.
      if (broadcast) ((data as Broadcast)[kDeflated] ??= []).push(entry)
      else shared = { input: Buffer.from(data), entry }
      this.startShared(data, entry, done !== undefined && this.offLoop)
    }
    if (entry.output === undefined && done === undefined) {
      // Compressed off the loop for others, and wanted now: done again here, not kept.
      const out = deflate(data, bits, o.level, o.memLevel, undefined)
      this.charge(data.length, out?.length ?? data.length)
      if (out !== undefined) this.sendWindow?.append(data)
      return out
    }
    if (entry.output === undefined) {
      const epoch = this.deflateEpoch
      const waiter = (output: CompressedPayload | null): void => {
        if (epoch !== this.deflateEpoch) return
        if (output !== null) this.sendWindow?.append(data)
        done!(output ?? undefined)
      }
      ;(entry.waiters ??= []).push(waiter)
      return PENDING
    }
    if (entry.output === null) return undefined
    // The peer's inflater puts every message it inflates in its window: ours must too.
    this.sendWindow?.append(data)
    return entry.output
  }

  /** Compress a shared message: at once when small (or not driven), else off the loop; charged to the server only. */
  private startShared (data: Uint8Array, entry: SharedDeflate, offLoop: boolean): void {
    const finish = (out: CompressedPayload | undefined): void => {
      this.charge(data.length, out === undefined ? data.length : payloadLength(out), true)
      entry.output = out ?? null
      const waiters = entry.waiters
      entry.waiters = undefined
      if (waiters !== undefined) for (const w of waiters) w(entry.output)
    }
    if (!offLoop || data.length <= SYNC_DEFLATE) {
      finish(deflate(data, entry.bits, entry.level, entry.memLevel, undefined))
      return
    }
    // Not cancelled with this connection: other connections wait for it too.
    runOffLoop(new ZlibJob('deflate', data, { windowBits: entry.bits, level: entry.level, memLevel: entry.memLevel, finishFlush: constants.Z_SYNC_FLUSH, chunkSize: DEFLATE_CHUNK }, Infinity, (err, chunks, total) => {
      finish(err === undefined ? deflatedParts(data, chunks, total) : undefined)
    }))
  }

  decompress (parts: readonly Uint8Array[], maxSize: number): Uint8Array | undefined {
    let size = TRAILER.length
    for (const p of parts) size += p.length
    const input = Buffer.allocUnsafe(size)
    let at = 0
    for (const p of parts) {
      input.set(p, at)
      at += p.length
    }
    input.set(TRAILER, at)
    const compressed = size - TRAILER.length
    if (!this.offLoop) return this.inflateNow(input, compressed, maxSize, maxSize)!
    // The receive queue is full: this one waits (RFC 7692 leaves the pace to us), and so does reading.
    if (this.room <= 0) {
      this.pending = { input, compressed, tooBig: false }
      return undefined
    }
    return this.inflateSmall(input, compressed, maxSize)
  }

  /** Inflate at once what is free and small (at most {@link SYNC_INFLATE} and {@link FREE_RATIO} × its compressed size); else leave it for later. */
  private inflateSmall (input: Buffer, compressed: number, maxSize: number): Uint8Array | undefined {
    const limit = Math.min(maxSize, SYNC_INFLATE, Math.max(1, FREE_RATIO * compressed))
    const out = this.inflateNow(input, compressed, maxSize, limit)
    if (out === undefined) this.pending = { input, compressed, tooBig: true }
    else this.room -= out.length
    return out
  }

  /**
   * The message {@link PerMessageDeflate.decompress} left for later, once the driver has room
   * for it: inflated at once (returned) if it is small after all; a number of milliseconds to
   * wait when the connection's or the server's budget is spent; or `undefined` when it is being
   * inflated off the event loop, `done` being called on a later turn (unless cancelled); `done`
   * with neither error nor data when it cost more than the budgets had left: call this again,
   * it is let in once they are out of debt. Throws,
   * or gives `done`, a `ProtocolError`: 1009 past `maxSize`, 1007 for data that does not inflate.
   */
  inflateLater (maxSize: number, done: InflateDone): Uint8Array | number | undefined {
    const p = this.pending
    if (p === undefined) throw new Error('no compressed message was left for later')
    if (!p.tooBig) {
      this.room = Infinity
      const out = this.inflateSmall(p.input, p.compressed, maxSize)
      if (out !== undefined) {
        this.pending = undefined
        return out
      }
    }
    const own = this.budget.wait()
    const shared = this.options.serverBudget?.wait() ?? 0
    if (own > 0 || shared > 0) {
      this.waitingOn = own >= shared ? 'connection' : 'server'
      return Math.max(own, shared)
    }
    this.pending = undefined
    // One output buffer that surely holds it (or the most allowed): zlib fills it off the loop,
    // and the message is that buffer, never joined from parts on the event loop.
    const bound = Math.min(maxSize, MAX_RATIO * p.compressed + 4096)
    const { admission, limit } = this.admit(p, bound, maxSize)
    this.inflateOffLoop(p, maxSize, bound, admission, limit, done)
    return undefined
  }

  /**
   * Charge the budgets ahead for what `p` may cost, the rest settled once its size is known, so
   * that what is let in at once stays within the budgets. First only what the budgets have left:
   * ordinary data (far below FREE_RATIO) costs nothing and goes through whole; output past what
   * was charged (`limit`) stops the job, and the message waits its turn to be let in again,
   * charged the most it can cost (a decompression bomb: it then puts the budgets in debt, and
   * others wait).
   */
  private admit (p: PendingInflate, bound: number, maxSize: number): { admission: number, limit: number } {
    const left = Math.max(0, Math.min(this.budget.available, this.options.serverBudget?.available ?? Infinity))
    const most = chargeFor(bound, p.compressed)
    const admission = p.full === true ? most : Math.min(most, left)
    const limit = admission < most ? FREE_RATIO * p.compressed + admission : maxSize
    this.budget.charge(admission)
    this.options.serverBudget?.charge(admission)
    return { admission, limit }
  }

  /**
   * The cost of one inflate job: `add` the output it made; `settle` once, with what it really
   * cost against its `admission`, whether or not the message is still wanted (a job cancelled
   * before it started gives its whole admission back).
   */
  private inflateCost (compressed: number, admission: number): { add: (bytes: number) => void, settle: () => void } {
    let worked = 0
    let settled = false
    const settle = (): void => {
      if (settled) return
      settled = true
      if (this.inflateSettle === settle) this.inflateSettle = undefined
      const charge = chargeFor(worked, compressed) - admission
      this.budget.charge(charge)
      this.options.serverBudget?.charge(charge)
    }
    this.inflateSettle = settle
    return { add: (bytes) => { worked += bytes }, settle }
  }

  /**
   * Inflate `p` off the event loop into one buffer of `bound` bytes (output past `limit` stops
   * it: see {@link PerMessageDeflate.admit}), then give `done` the message, a `ProtocolError`, or
   * neither when it must be let in again in full.
   */
  private inflateOffLoop (p: PendingInflate, maxSize: number, bound: number, admission: number, limit: number, done: InflateDone): void {
    const epoch = this.inflateEpoch
    const window = this.receiveWindow
    // Copied when the job starts; nothing else inflates on this connection meanwhile.
    const dictionary = window?.bytes
    const cost = this.inflateCost(p.compressed, admission)
    const inflate = (chunkSize: number, most: number, then: (err: Error | undefined, chunks: Buffer[], total: number) => void): void => {
      const job = this.inflateJob = new ZlibJob('inflate', p.input, { windowBits: this.receiveBits, dictionary, finishFlush: constants.Z_SYNC_FLUSH, chunkSize: Math.max(64, chunkSize) }, most, (err, chunks, total) => {
        if (epoch !== this.inflateEpoch) return
        this.inflateJob = undefined
        then(err, chunks, total)
      }, (total) => {
        cost.add(total)
        deflateCounters.inflatedBytes += total
        // Cancelled while it ran: what it did is settled now, as nobody will.
        if (epoch !== this.inflateEpoch) cost.settle()
      })
      runOffLoop(job)
    }
    const finish = (err: Error | undefined, out: Uint8Array | undefined): void => {
      cost.settle()
      if (err !== undefined) {
        done(new ProtocolError(isTooLarge(err) ? 'WS_ERR_MESSAGE_TOO_BIG' : 'WS_ERR_INVALID_COMPRESSED'), undefined)
        return
      }
      deflateCounters.inflated++
      window?.append(out!)
      done(undefined, out)
    }
    inflate(Math.min(bound, limit), limit, (err, chunks, total) => {
      if (err !== undefined && limit < maxSize && isTooLarge(err)) {
        // Past what the budgets had left: settled for what it did, and left to be let in again in full.
        cost.settle()
        this.pending = { ...p, full: true }
        done(undefined, undefined)
        return
      }
      const first = chunks[0] ?? new Uint8Array(0)
      // Most of its buffer: it is the message. Else (ordinary data, a few times smaller than the
      // bound) once more, into a buffer of its exact size: a small view must not pin a large buffer.
      if (err !== undefined || total === 0 || (chunks.length === 1 && first.length * 2 >= first.buffer.byteLength)) {
        finish(err, err !== undefined ? undefined : total === 0 ? new Uint8Array(0) : first)
        return
      }
      inflate(total + 64, maxSize, (err2, chunks2, total2) => {
        finish(err2, chunks2.length === 1 ? chunks2[0] : Buffer.concat(chunks2, total2))
      })
    })
  }

  /** The connection is gone, or the peer closed: work under way both ways is dropped, and its results ignored. */
  cancel (): void {
    this.cancelInflate()
    this.deflateEpoch++
    if (this.deflateJob !== undefined) cancelOffLoop(this.deflateJob)
    this.deflateJob = undefined
  }

  /** Nothing more is read (the peer broke the protocol): the message left for later is dropped. */
  cancelInflate (): void {
    this.inflateEpoch++
    this.pending = undefined
    const job = this.inflateJob
    this.inflateJob = undefined
    if (job === undefined) return
    cancelOffLoop(job)
    // Never started: its admission goes back to the budgets now (a started one settles when it stops).
    if (!job.started) this.inflateSettle?.()
  }

  /** Inflate on the event loop, stopping past `limit` bytes: `undefined` past it when it is below `maxSize`. */
  private inflateNow (input: Buffer, compressed: number, maxSize: number, limit: number): Uint8Array | undefined {
    const window = this.receiveWindow
    let out: Buffer
    try {
      out = inflateRawSync(input, {
        // Output buffers sized to the message, not zlib's 16 KiB: small messages leave no
        // large short-lived holes between the connections' long-lived allocations.
        chunkSize: Math.max(1024, Math.min(16384, input.length * 4)),
        windowBits: this.receiveBits,
        dictionary: window?.bytes,
        finishFlush: constants.Z_SYNC_FLUSH,
        // Stops within one chunk past the limit: a decompression bomb is not inflated beyond it.
        maxOutputLength: Math.max(1, limit)
      })
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
        deflateCounters.inflatedBytes += limit
        if (limit < maxSize) return undefined
        throw new ProtocolError('WS_ERR_MESSAGE_TOO_BIG')
      }
      throw new ProtocolError('WS_ERR_INVALID_COMPRESSED')
    }
    deflateCounters.inflatedBytes += out.length
    if (out.length > maxSize) throw new ProtocolError('WS_ERR_MESSAGE_TOO_BIG')
    this.charge(out.length, compressed)
    deflateCounters.inflated++
    window?.append(out)
    return out
  }
}

/**
 * An inflate or a deflate on the thread pool, when its turn comes ({@link runOffLoop}): a zlib
 * stream fed the whole input, its output chunks collected as they come (each written by zlib
 * off the loop). Stops past `limit` bytes of output (`ERR_BUFFER_TOO_LARGE`); a cancelled job
 * is stopped at its next chunk.
 */
class ZlibJob implements OffLoopJob {
  cancelled = false
  /** Its turn came: it runs, or has run. */
  started = false
  private input: Uint8Array | undefined
  private readonly kind: 'inflate' | 'deflate'
  private readonly zlibOptions: ZlibOptions
  private readonly limit: number
  private readonly then: (err: Error | undefined, chunks: Buffer[], total: number) => void
  private readonly stopped: ((total: number) => void) | undefined

  /** `then` gets the result unless cancelled; `stopped`, if given, gets the bytes of output made when the job stops, cancelled or not. */
  constructor (kind: 'inflate' | 'deflate', input: Uint8Array, zlibOptions: ZlibOptions, limit: number, then: (err: Error | undefined, chunks: Buffer[], total: number) => void, stopped?: (total: number) => void) {
    this.kind = kind
    this.input = input
    this.zlibOptions = zlibOptions
    this.limit = limit
    this.then = then
    this.stopped = stopped
  }

  start (done: () => void): void {
    this.started = true
    const input = this.input!
    this.input = undefined
    const chunks: Buffer[] = []
    let total = 0
    let error: Error | undefined
    let stream
    try {
      stream = this.kind === 'inflate' ? createInflateRaw(this.zlibOptions) : createDeflateRaw(this.zlibOptions)
    } catch (err) {
      // Bad options cannot come from a peer; still, the queue must go on.
      done()
      this.stopped?.(0)
      if (!this.cancelled) this.then(err as Error, chunks, 0)
      return
    }
    deflateCounters.inFlight++
    stream.on('data', (chunk: Buffer) => {
      total += chunk.length
      if (total > this.limit) error ??= Object.assign(new Error('zlib output past its limit'), { code: 'ERR_BUFFER_TOO_LARGE' })
      if (error !== undefined || this.cancelled) {
        stream.destroy()
        return
      }
      chunks.push(chunk)
    })
    stream.on('error', (err: Error) => { error ??= err })
    // 'close' comes once, after the end, an error or destroy(): the job is over.
    stream.on('close', () => {
      deflateCounters.inFlight--
      // The next job starts first: the thread pool is not left idle while this result is handled.
      done()
      this.stopped?.(total)
      if (!this.cancelled) this.then(error, chunks, total)
    })
    stream.end(input)
  }
}

/** Bytes in `payload`. */
function payloadLength (payload: CompressedPayload): number {
  if (payload instanceof Uint8Array) return payload.length
  let n = 0
  for (const p of payload) n += p.length
  return n
}

/**
 * The payload of a deflate off the loop: its chunks less the §7.2.1 tail (its last 4 octets),
 * or `undefined` when that is no smaller than the message. A last chunk that is a small part of
 * its buffer is copied (a few KiB), so it does not pin the rest.
 */
function deflatedParts (data: Uint8Array, chunks: Buffer[], total: number): Uint8Array[] | undefined {
  deflateCounters.deflated++
  let n = total - TRAILER.length
  if (n >= data.length && data.length > 0) return undefined
  const parts: Uint8Array[] = []
  for (const c of chunks) {
    if (n <= 0) break
    const part = c.length <= n ? c : c.subarray(0, n)
    n -= part.length
    parts.push(part)
  }
  const last = parts.length - 1
  if (last >= 0 && parts[last].length * 2 < parts[last].buffer.byteLength) parts[last] = Buffer.from(parts[last])
  return parts
}

/** The payload of a deflate made at once, or `undefined` when no smaller than the message (§7.2.1 tail dropped). */
function deflated (data: Uint8Array, out: Buffer): Uint8Array | undefined {
  deflateCounters.deflated++
  const n = out.length - TRAILER.length
  if (n >= data.length && data.length > 0) return undefined
  return out.subarray(0, n)
}

/** Raw deflate with a sync flush, on the event loop, its 4-octet tail dropped (§7.2.1); `undefined` when no smaller than the input. */
function deflate (data: Uint8Array, bits: number, level: number, memLevel: number, dictionary: Uint8Array | undefined): Uint8Array | undefined {
  return deflated(data, deflateRawSync(data, { windowBits: bits, level, memLevel, dictionary, finishFlush: constants.Z_SYNC_FLUSH, chunkSize: Math.max(256, Math.min(16384, data.length + 64)) }))
}
