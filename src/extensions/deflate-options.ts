/**
 * permessage-deflate's options (`perMessageDeflate` of the server and the client): what each
 * means, the defaults, and their check, which fills the defaults in.
 *
 * @packageDocumentation
 */

import type { DeflateRequest } from './deflate-negotiation.js'
import type { Role } from '../protocol/frame-parser.js'
import { ZlibBudget } from './zlib-work.js'
import { systemClock, type Clock } from '../driver/clock.js'

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
  /**
   * Bytes of zlib work per second one connection may cause: each message inflated or deflated
   * counts its uncompressed size less 16 × its compressed size (so ordinary traffic counts
   * nothing and a decompression bomb nearly all of it). While a connection is over it, it is not
   * read from (backpressure, not a close). Up to one second's worth may be used at once.
   * `Infinity` for no limit. Default 8 MiB.
   */
  connectionBudget?: number
  /**
   * The same for all the connections of a server together: while the server is over it, a
   * message that would need more waits, and its connection is not read from meanwhile.
   * `Infinity` for no limit. Server only. Default 16 MiB.
   */
  serverBudget?: number
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
  memLevel: 8,
  /** {@link PerMessageDeflateOptions.connectionBudget}: 8 MiB of zlib work per second. */
  connectionBudget: 8 * 1024 * 1024,
  /** {@link PerMessageDeflateOptions.serverBudget}: 16 MiB of zlib work per second. */
  serverBudget: 16 * 1024 * 1024
} as const

/** {@link PerMessageDeflateOptions} checked, with every default filled in. */
export interface ResolvedDeflateOptions {
  readonly threshold: number
  readonly level: number
  readonly memLevel: number
  readonly sharedCompressor: boolean
  /** Bytes of zlib work per second for each connection. */
  readonly connectionBudget: number
  /** The server's budget, shared by its connections (made once per server); none for a client. */
  readonly serverBudget: ZlibBudget | undefined
  /** What to ask of the peer in the negotiation. */
  readonly request: DeflateRequest
  /** The server's or client's clock, by which the zlib budgets refill. */
  readonly clock: Clock
}

function checkRate (name: string, value: number | undefined): void {
  if (value !== undefined && !(typeof value === 'number' && value > 0)) throw new RangeError(`perMessageDeflate.${name} must be a positive number of bytes per second (Infinity for no limit)`)
}

function checkInt (name: string, value: number | undefined, min: number, max: number): void {
  if (value !== undefined && !(Number.isInteger(value) && value >= min && value <= max)) throw new RangeError(`perMessageDeflate.${name} must be an integer from ${min} to ${max}`)
}

/**
 * Check `option` (`true` for the defaults) and fill in the defaults; `undefined` when off. A
 * server (`role` `'server'`) asks for 12-bit windows unless told otherwise, and gets its
 * server-wide zlib budget here (so call this once per server); a client asks for nothing it was
 * not told to.
 */
export function resolveDeflateOptions (option: boolean | PerMessageDeflateOptions | undefined, role: Role = 'client', clock: Clock = systemClock): ResolvedDeflateOptions | undefined {
  if (option === undefined || option === false) return undefined
  const o = option === true ? {} : option
  checkInt('threshold', o.threshold, 0, Number.MAX_SAFE_INTEGER)
  checkInt('level', o.level, -1, 9)
  checkInt('memLevel', o.memLevel, 1, 9)
  checkInt('serverMaxWindowBits', o.serverMaxWindowBits, 8, 15)
  checkInt('clientMaxWindowBits', o.clientMaxWindowBits, 8, 15)
  checkRate('connectionBudget', o.connectionBudget)
  checkRate('serverBudget', o.serverBudget)
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
    connectionBudget: o.connectionBudget ?? DEFAULT_DEFLATE_OPTIONS.connectionBudget,
    serverBudget: server ? new ZlibBudget(o.serverBudget ?? DEFAULT_DEFLATE_OPTIONS.serverBudget, clock) : undefined,
    request,
    clock
  }
}
