/**
 * permessage-deflate's negotiation, RFC 7692 §7, as pure functions: the client's offer, the
 * server's choice among offers, and the client's check of the answer. The compression itself
 * is in permessage-deflate.ts; this file, like handshake.ts, imports nothing from Node.
 *
 * @packageDocumentation
 */

import { HandshakeError } from '../errors.js'
import type { ExtensionElement } from '../handshake.js'

/** The extension token of RFC 7692. */
export const PERMESSAGE_DEFLATE = 'permessage-deflate'

/**
 * permessage-deflate parameters as negotiated (RFC 7692 §7.1): who resets its LZ77 window after
 * each message, and each side's window size (base-2 logarithm, 8–15).
 */
export interface DeflateParams {
  /** The server compresses each message on its own (§7.1.1.1). */
  serverNoContextTakeover: boolean
  /** The client compresses each message on its own (§7.1.1.2). */
  clientNoContextTakeover: boolean
  /** The server's LZ77 window, 8–15 (§7.1.2.1). */
  serverMaxWindowBits: number
  /** The client's LZ77 window, 8–15 (§7.1.2.2). */
  clientMaxWindowBits: number
}

/** What one side asks for; anything unset leaves the choice to the peer (windows: 15). */
export interface DeflateRequest {
  /** Ask that the server reset its context after each message. */
  serverNoContextTakeover?: boolean
  /** Ask that the client reset its context after each message. */
  clientNoContextTakeover?: boolean
  /** The largest server window wanted (8–15). */
  serverMaxWindowBits?: number
  /** The largest client window wanted (8–15). */
  clientMaxWindowBits?: number
}

/** `8`…`15` in decimal without leading zeros (§7.1.2.1), or undefined. */
function windowBits (value: string | true): number | undefined {
  return typeof value === 'string' && /^(?:8|9|1[0-5])$/.test(value) ? Number(value) : undefined
}

/** An offer's or an answer's parameters, or a reason to refuse it (§7: unknown, repeated or invalid parameters). */
function readDeflateParams (element: ExtensionElement): { value: Partial<Record<keyof DeflateParams, boolean | number>>, clientBitsOffered: boolean } | string {
  if (element.repeated !== undefined) return `repeated parameter ${element.repeated}`
  const value: Partial<Record<keyof DeflateParams, boolean | number>> = {}
  let clientBitsOffered = false
  for (const [key, v] of Object.entries(element.params)) {
    switch (key) {
      case 'server_no_context_takeover':
      case 'client_no_context_takeover':
        // §7.1.1.1, §7.1.1.2: these have no value.
        if (v !== true) return `${key} takes no value`
        value[key === 'server_no_context_takeover' ? 'serverNoContextTakeover' : 'clientNoContextTakeover'] = true
        break
      case 'server_max_window_bits': {
        // §7.1.2.1: a value is required, 8 to 15.
        const bits = windowBits(v)
        if (bits === undefined) return 'server_max_window_bits must be 8 to 15'
        value.serverMaxWindowBits = bits
        break
      }
      case 'client_max_window_bits': {
        // §7.1.2.2: in an offer the value may be absent ("I can take any window you pick").
        clientBitsOffered = true
        if (v === true) break
        const bits = windowBits(v)
        if (bits === undefined) return 'client_max_window_bits must be 8 to 15'
        value.clientMaxWindowBits = bits
        break
      }
      default:
        return `unknown parameter ${key}`
    }
  }
  return { value, clientBitsOffered }
}

/**
 * The server's side of RFC 7692 §7.1: accept the first acceptable permessage-deflate offer
 * among `offers` (the client lists them by preference), declining malformed ones (§7: unknown,
 * repeated or invalid parameters). `prefs` is what the server wants beyond what the client
 * asked: no context takeover on either side, smaller windows. Returns the negotiated parameters
 * and the `Sec-WebSocket-Extensions` value to answer with, or `undefined` when no offer is acceptable.
 */
export function acceptDeflateOffer (offers: readonly ExtensionElement[], prefs: DeflateRequest = {}): { params: DeflateParams, header: string } | undefined {
  for (const offer of offers) {
    if (offer.name !== PERMESSAGE_DEFLATE) continue
    const read = readDeflateParams(offer)
    if (typeof read === 'string') continue
    const asked = read.value
    // §7.1.1: either side's no_context_takeover may come from the client's offer or the server.
    const serverNoContextTakeover = asked.serverNoContextTakeover === true || prefs.serverNoContextTakeover === true
    const clientNoContextTakeover = asked.clientNoContextTakeover === true || prefs.clientNoContextTakeover === true
    // §7.1.2.1: the server's window is at most what the client asked; it may pick a smaller one.
    const serverMaxWindowBits = Math.min((asked.serverMaxWindowBits as number | undefined) ?? 15, prefs.serverMaxWindowBits ?? 15)
    // §7.1.2.2: the client's window may be limited only if the offer had client_max_window_bits.
    const clientMaxWindowBits = read.clientBitsOffered
      ? Math.min((asked.clientMaxWindowBits as number | undefined) ?? 15, prefs.clientMaxWindowBits ?? 15)
      : 15
    let header = PERMESSAGE_DEFLATE
    if (serverNoContextTakeover) header += '; server_no_context_takeover'
    if (clientNoContextTakeover) header += '; client_no_context_takeover'
    if (asked.serverMaxWindowBits !== undefined || serverMaxWindowBits < 15) header += `; server_max_window_bits=${serverMaxWindowBits}`
    if (read.clientBitsOffered && (asked.clientMaxWindowBits !== undefined || clientMaxWindowBits < 15)) header += `; client_max_window_bits=${clientMaxWindowBits}`
    return { params: { serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits }, header }
  }
  return undefined
}

/**
 * The client's permessage-deflate offer (RFC 7692 §7.1) for `Sec-WebSocket-Extensions`. It
 * always has `client_max_window_bits` (with a value if `request.clientMaxWindowBits` is set),
 * so the server may pick a smaller client window.
 */
export function deflateOffer (request: DeflateRequest = {}): string {
  let offer = PERMESSAGE_DEFLATE
  if (request.serverNoContextTakeover === true) offer += '; server_no_context_takeover'
  if (request.clientNoContextTakeover === true) offer += '; client_no_context_takeover'
  if (request.serverMaxWindowBits !== undefined) offer += `; server_max_window_bits=${request.serverMaxWindowBits}`
  offer += request.clientMaxWindowBits !== undefined ? `; client_max_window_bits=${request.clientMaxWindowBits}` : '; client_max_window_bits'
  return offer
}

/**
 * The client's check of the server's answer to {@link deflateOffer} (RFC 7692 §7.1): at most one
 * permessage-deflate element, no unknown, repeated or invalid parameter, windows no larger than
 * offered, and `server_no_context_takeover` present if it was requested. Returns the parameters
 * in force, `undefined` if the server declined; throws a {@link HandshakeError} (status 101)
 * for an answer the client must fail the connection over.
 */
export function checkDeflateAnswer (extensions: readonly ExtensionElement[], request: DeflateRequest = {}): DeflateParams | undefined {
  const answers = extensions.filter((e) => e.name === PERMESSAGE_DEFLATE)
  if (answers.length === 0) return undefined
  if (answers.length > 1) throw new HandshakeError(101, 'the server accepted permessage-deflate more than once')
  const answer = answers[0]
  // A response's client_max_window_bits needs a value (§7.1.2.2), unlike an offer's.
  if (answer.params.client_max_window_bits === true) throw new HandshakeError(101, 'permessage-deflate: client_max_window_bits in a response needs a value')
  const read = readDeflateParams(answer)
  if (typeof read === 'string') throw new HandshakeError(101, `permessage-deflate: ${read}`)
  const got = read.value
  const serverBits = got.serverMaxWindowBits as number | undefined
  const clientBits = got.clientMaxWindowBits as number | undefined
  // §7.1.2.1: a requested server window must be answered, with the same or a smaller value.
  if (request.serverMaxWindowBits !== undefined && (serverBits === undefined || serverBits > request.serverMaxWindowBits)) throw new HandshakeError(101, 'permessage-deflate: server_max_window_bits missing or above the one requested')
  if (clientBits !== undefined && clientBits > (request.clientMaxWindowBits ?? 15)) throw new HandshakeError(101, 'permessage-deflate: client_max_window_bits above the one offered')
  // §7.1.1.1: a server that accepts server_no_context_takeover says so.
  if (request.serverNoContextTakeover === true && got.serverNoContextTakeover !== true) throw new HandshakeError(101, 'permessage-deflate: server_no_context_takeover was requested but not accepted')
  return {
    serverNoContextTakeover: got.serverNoContextTakeover === true,
    // The client may always choose to reset its own context.
    clientNoContextTakeover: got.clientNoContextTakeover === true || request.clientNoContextTakeover === true,
    serverMaxWindowBits: serverBits ?? 15,
    clientMaxWindowBits: clientBits ?? request.clientMaxWindowBits ?? 15
  }
}
