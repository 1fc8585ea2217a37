/**
 * permessage-deflate (RFC 7692) for the Node driver: the {@link MessageCompression} the session
 * calls for each compressed message, on zlib's synchronous API.
 *
 * Why synchronous: no zlib stream lives between messages. Each message is one zlib call whose
 * state is made and freed inside it, so at most one zlib context exists in the process at any
 * moment (whatever the number of connections), nothing is ever queued on the thread pool, a
 * mass disconnect can leave no handle or job behind, and message order is kept for free.
 * Context takeover (§7.1.1) is kept as plain bytes: the last 2^windowBits bytes of what went
 * through each direction, given to zlib as its preset dictionary — a window the peer's
 * compressor also has, so back-references into it decode the same. An idle connection holds
 * those windows and nothing else; with no context takeover, nothing at all.
 * The price: a message's zlib work runs on the event loop, bounded by `maxMessageSize`
 * (docs/protocol.md gives the measured figures).
 *
 * @packageDocumentation
 */

import { Buffer } from 'node:buffer'
import { constants, deflateRawSync, inflateRawSync } from 'node:zlib'
import type { DeflateParams, DeflateRequest } from '../handshake.js'
import { ProtocolError } from '../protocol/errors.js'
import type { MessageCompression } from '../protocol/extension.js'
import type { Role } from '../protocol/frame-parser.js'

/** Options of permessage-deflate, for the server and the client (`perMessageDeflate`). */
export interface PerMessageDeflateOptions extends DeflateRequest {
  /**
   * The server's LZ77 window (8–15): the server compresses with at most 2^bits bytes of history
   * and says so in its answer (RFC 7692 §7.1.2.1). The history kept per connection is this big.
   * Server default 12 (4 KiB); a client requests it from the server only when set.
   */
  serverMaxWindowBits?: number
  /**
   * The client's LZ77 window (8–15). A server limits a client to it when the client's offer has
   * `client_max_window_bits` (browsers', `ws`'s and Python's do; §7.1.2.2); the history kept per
   * connection to read the client is this big. Server default 12 (4 KiB); a client asks for it only when set.
   */
  clientMaxWindowBits?: number
  /** The server resets its compression context after each message (`server_no_context_takeover`, §7.1.1.1). Default false. */
  serverNoContextTakeover?: boolean
  /** The client resets its compression context after each message (`client_no_context_takeover`, §7.1.1.2). Default false. */
  clientNoContextTakeover?: boolean
  /** Messages shorter than this many bytes are sent uncompressed. Default 1,024. */
  threshold?: number
  /** zlib compression level, 0 (none) to 9 (smallest). Default 6. */
  level?: number
  /** zlib memLevel, 1 to 9: memory of the compressor's hash, used only during a call. Default 8. */
  memLevel?: number
  /**
   * Shared compressor: our side sends without context takeover (a server answers with
   * `server_no_context_takeover`), and a message sent with the same bytes and settings as the
   * one before it — a broadcast — is compressed once for every connection. Default false.
   */
  sharedCompressor?: boolean
}

/** Defaults of {@link PerMessageDeflateOptions}. */
export const DEFAULT_DEFLATE_OPTIONS = {
  /** {@link PerMessageDeflateOptions.serverMaxWindowBits} of a server: 12 (4 KiB of history). */
  serverMaxWindowBits: 12,
  /** {@link PerMessageDeflateOptions.clientMaxWindowBits} of a server: 12, where the client lets it be limited. */
  clientMaxWindowBits: 12,
  /** {@link PerMessageDeflateOptions.threshold}: 1 KiB. */
  threshold: 1024,
  /** {@link PerMessageDeflateOptions.level}: zlib's default, 6. */
  level: 6,
  /** {@link PerMessageDeflateOptions.memLevel}: zlib's default, 8. */
  memLevel: 8
} as const

/** {@link PerMessageDeflateOptions} checked, with every default filled in. */
export interface ResolvedDeflateOptions {
  readonly threshold: number
  readonly level: number
  readonly memLevel: number
  readonly sharedCompressor: boolean
  /** What to ask of the peer in the negotiation. */
  readonly request: DeflateRequest
}

function checkInt (name: string, value: number | undefined, min: number, max: number): void {
  if (value !== undefined && !(Number.isInteger(value) && value >= min && value <= max)) throw new RangeError(`perMessageDeflate.${name} must be an integer from ${min} to ${max}`)
}

/**
 * Check `option` (`true` for the defaults) and fill in the defaults; `undefined` when off. A
 * server (`role` `'server'`) asks for 12-bit windows unless told otherwise; a client asks for
 * nothing it was not told to.
 */
export function resolveDeflateOptions (option: boolean | PerMessageDeflateOptions | undefined, role: Role = 'client'): ResolvedDeflateOptions | undefined {
  if (option === undefined || option === false) return undefined
  const o = option === true ? {} : option
  checkInt('threshold', o.threshold, 0, Number.MAX_SAFE_INTEGER)
  checkInt('level', o.level, -1, 9)
  checkInt('memLevel', o.memLevel, 1, 9)
  checkInt('serverMaxWindowBits', o.serverMaxWindowBits, 8, 15)
  checkInt('clientMaxWindowBits', o.clientMaxWindowBits, 8, 15)
  const request: DeflateRequest = {}
  if (o.serverNoContextTakeover === true) request.serverNoContextTakeover = true
  if (o.clientNoContextTakeover === true) request.clientNoContextTakeover = true
  const server = role === 'server'
  const serverBits = o.serverMaxWindowBits ?? (server ? DEFAULT_DEFLATE_OPTIONS.serverMaxWindowBits : undefined)
  const clientBits = o.clientMaxWindowBits ?? (server ? DEFAULT_DEFLATE_OPTIONS.clientMaxWindowBits : undefined)
  if (serverBits !== undefined) request.serverMaxWindowBits = serverBits
  if (clientBits !== undefined) request.clientMaxWindowBits = clientBits
  return {
    threshold: o.threshold ?? DEFAULT_DEFLATE_OPTIONS.threshold,
    level: o.level ?? DEFAULT_DEFLATE_OPTIONS.level,
    memLevel: o.memLevel ?? DEFAULT_DEFLATE_OPTIONS.memLevel,
    sharedCompressor: o.sharedCompressor === true,
    request
  }
}

/** RFC 7692 §7.2.1: the sender drops the empty stored block's 4 octets; the receiver puts them back. */
const TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff])

/** The zlib work done so far in this process (for tests and monitoring). */
export const deflateCounters = {
  /** zlib calls under way: 0 whenever JavaScript runs, since each call completes synchronously. */
  inFlight: 0,
  /** Messages compressed. */
  deflated: 0,
  /** Messages inflated. */
  inflated: 0,
  /** Compressions served from the shared compressor's last result. */
  sharedHits: 0
}

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

/** The shared compressor's last result: input copy, settings, output. */
let shared: { input: Uint8Array, bits: number, level: number, memLevel: number, output: Uint8Array } | undefined

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

  constructor (role: Role, params: DeflateParams, options: ResolvedDeflateOptions) {
    this.options = options
    const server = role === 'server'
    this.sendBits = server ? params.serverMaxWindowBits : params.clientMaxWindowBits
    this.receiveBits = server ? params.clientMaxWindowBits : params.serverMaxWindowBits
    const sendReset = (server ? params.serverNoContextTakeover : params.clientNoContextTakeover) || options.sharedCompressor
    const receiveReset = server ? params.clientNoContextTakeover : params.serverNoContextTakeover
    this.sendWindow = sendReset ? undefined : new SlidingWindow(this.sendBits)
    this.receiveWindow = receiveReset ? undefined : new SlidingWindow(this.receiveBits)
  }

  get heldBytes (): number {
    return (this.sendWindow?.held ?? 0) + (this.receiveWindow?.held ?? 0)
  }

  compress (data: Uint8Array): Uint8Array | undefined {
    const o = this.options
    if (data.length < o.threshold) return undefined
    const window = this.sendWindow
    if (window === undefined && o.sharedCompressor) return this.compressShared(data)
    const dictionary = window?.bytes
    const bits = windowFor((dictionary?.length ?? 0) + data.length, this.sendBits)
    const out = deflate(data, bits, o.level, o.memLevel, dictionary)
    // Sent as it is when deflate does not make it smaller; then it is not in the peer's window either.
    if (out === undefined) return undefined
    window?.append(data)
    return out
  }

  private compressShared (data: Uint8Array): Uint8Array | undefined {
    const o = this.options
    const bits = windowFor(data.length, this.sendBits)
    const last = shared
    if (last !== undefined && last.bits === bits && last.level === o.level && last.memLevel === o.memLevel && last.input.length === data.length && Buffer.compare(last.input, data) === 0) {
      deflateCounters.sharedHits++
      return last.output.length === 0 ? undefined : last.output
    }
    const out = deflate(data, bits, o.level, o.memLevel, undefined)
    // A copy: the caller may reuse its buffer. An empty output stands for "sent uncompressed".
    shared = { input: Buffer.from(data), bits, level: o.level, memLevel: o.memLevel, output: out ?? new Uint8Array(0) }
    return out
  }

  decompress (parts: readonly Uint8Array[], maxSize: number): Uint8Array {
    let size = TRAILER.length
    for (const p of parts) size += p.length
    const input = Buffer.allocUnsafe(size)
    let at = 0
    for (const p of parts) {
      input.set(p, at)
      at += p.length
    }
    input.set(TRAILER, at)
    const window = this.receiveWindow
    let out: Buffer
    deflateCounters.inFlight++
    try {
      out = inflateRawSync(input, {
        // Output buffers sized to the message, not zlib's 16 KiB: small messages leave no
        // large short-lived holes between the connections' long-lived allocations.
        chunkSize: Math.max(1024, Math.min(16384, size * 4)),
        windowBits: this.receiveBits,
        dictionary: window?.bytes,
        finishFlush: constants.Z_SYNC_FLUSH,
        // Stops within one chunk past the limit: a decompression bomb is not inflated beyond it.
        maxOutputLength: Math.max(1, maxSize)
      })
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw new ProtocolError('WS_ERR_MESSAGE_TOO_BIG')
      throw new ProtocolError('WS_ERR_INVALID_COMPRESSED')
    } finally {
      deflateCounters.inFlight--
    }
    if (out.length > maxSize) throw new ProtocolError('WS_ERR_MESSAGE_TOO_BIG')
    deflateCounters.inflated++
    window?.append(out)
    return out
  }
}

/** Raw deflate with a sync flush, its 4-octet tail dropped (§7.2.1); `undefined` when no smaller than the input. */
function deflate (data: Uint8Array, bits: number, level: number, memLevel: number, dictionary: Uint8Array | undefined): Uint8Array | undefined {
  deflateCounters.inFlight++
  let out: Buffer
  try {
    out = deflateRawSync(data, { windowBits: bits, level, memLevel, dictionary, finishFlush: constants.Z_SYNC_FLUSH, chunkSize: Math.max(256, Math.min(16384, data.length + 64)) })
  } finally {
    deflateCounters.inFlight--
  }
  deflateCounters.deflated++
  const n = out.length - TRAILER.length
  if (n >= data.length && data.length > 0) return undefined
  return out.subarray(0, n)
}

