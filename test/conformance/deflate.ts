// permessage-deflate for the conformance client (RFC 7692), written apart from wspipe's own
// (src/extensions) so that the judge does not share the implementation it judges: here each
// direction is one long-lived zlib stream, flushed per message, as Autobahn's Python client does
// with zlib.compressobj / decompressobj; wspipe keeps plain-byte windows instead.

import zlib from 'node:zlib'

export interface DeflateAgreement {
  serverNoContextTakeover: boolean
  clientNoContextTakeover: boolean
  serverMaxWindowBits: number
  clientMaxWindowBits: number
}

/** One offer, as Autobahn's PerMessageDeflateOffer builds it (what the client asks of the server). */
export interface Offer {
  /** server_no_context_takeover */
  requestNoContextTakeover: boolean
  /** server_max_window_bits=N (0: not requested) */
  requestMaxWindowBits: number
}

/** The header value for `offers`: each offer also says the client accepts client_max_window_bits. */
export function offerHeader(offers: readonly Offer[]): string {
  return offers
    .map((o) => {
      let s = 'permessage-deflate; client_max_window_bits'
      if (o.requestNoContextTakeover) s += '; server_no_context_takeover'
      if (o.requestMaxWindowBits !== 0) s += `; server_max_window_bits=${o.requestMaxWindowBits}`
      return s
    })
    .join(', ')
}

/**
 * Check the server's answer against what was offered (RFC 7692 §5, §7): one element, known
 * parameters, each once, valid values, and an answer to one of the offers. Returns the agreement
 * or a reason to fail the handshake.
 */
export function readAnswer(header: string, offers: readonly Offer[]): DeflateAgreement | string {
  const elements = header.split(',').map((s) => s.trim()).filter(Boolean)
  if (elements.length !== 1) return `expected one extension in the answer, got "${header}"`
  const [name, ...params] = elements[0].split(';').map((s) => s.trim())
  if (name !== 'permessage-deflate') return `server answered with an extension not offered: ${name}`
  const a: DeflateAgreement = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 }
  const seen = new Set<string>()
  let serverBitsGiven = false
  for (const p of params) {
    const [k, v] = p.split('=').map((s) => s.trim().replace(/^"(.*)"$/, '$1'))
    if (seen.has(k)) return `parameter ${k} repeated`
    seen.add(k)
    const bits = v !== undefined && /^(8|9|1[0-5])$/.test(v) ? Number(v) : undefined
    if (k === 'server_no_context_takeover' || k === 'client_no_context_takeover') {
      if (v !== undefined) return `${k} has a value`
      if (k === 'server_no_context_takeover') a.serverNoContextTakeover = true
      else a.clientNoContextTakeover = true
    } else if (k === 'server_max_window_bits') {
      if (bits === undefined) return `invalid server_max_window_bits ${v}`
      a.serverMaxWindowBits = bits
      serverBitsGiven = true
    } else if (k === 'client_max_window_bits') {
      if (bits === undefined) return `invalid client_max_window_bits ${v}`
      a.clientMaxWindowBits = bits
    } else {
      return `unknown parameter ${k}`
    }
  }
  // It must answer some offer: what that offer requested, the server granted.
  const answers = offers.some(
    (o) =>
      (!o.requestNoContextTakeover || a.serverNoContextTakeover) &&
      (o.requestMaxWindowBits === 0 || (serverBitsGiven && a.serverMaxWindowBits <= o.requestMaxWindowBits)),
  )
  return answers ? a : `the answer "${header}" grants none of the offers`
}

const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff])

/** Run one zlib stream over `data` and flush it (Z_SYNC_FLUSH); resolves with what came out. */
function run(stream: zlib.DeflateRaw | zlib.InflateRaw, data: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = []
    const onData = (c: Buffer): void => {
      out.push(c)
    }
    const onError = (e: Error): void => {
      stream.off('data', onData)
      reject(e)
    }
    stream.on('data', onData)
    stream.once('error', onError)
    stream.write(data)
    stream.flush(zlib.constants.Z_SYNC_FLUSH, () => {
      stream.off('data', onData)
      stream.off('error', onError)
      resolve(Buffer.concat(out))
    })
  })
}

/**
 * The client's codec for an agreement. Calls must not overlap (the client chains them), so
 * each direction's stream sees messages in order.
 */
export class ClientDeflate {
  private deflater: zlib.DeflateRaw
  private inflater: zlib.InflateRaw

  constructor(private readonly a: DeflateAgreement) {
    this.deflater = zlib.createDeflateRaw({ windowBits: a.clientMaxWindowBits })
    this.inflater = zlib.createInflateRaw({ windowBits: a.serverMaxWindowBits })
  }

  async compress(data: Uint8Array): Promise<Uint8Array> {
    const out = await run(this.deflater, data)
    // §7.1.1.2: without context takeover, each message starts from an empty window.
    if (this.a.clientNoContextTakeover) this.deflater.reset()
    // §7.2.1: drop the 4 octets of the empty stored block.
    return out.subarray(0, out.length - 4)
  }

  async decompress(data: Uint8Array): Promise<Uint8Array> {
    const out = await run(this.inflater, Buffer.concat([data, TAIL]))
    if (this.a.serverNoContextTakeover) this.inflater.reset()
    return out
  }

  close(): void {
    this.deflater.close()
    this.inflater.close()
  }
}
