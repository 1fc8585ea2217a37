// Sections 12 and 13: permessage-deflate (RFC 7692). As in Autobahn's Case12/Case13 tables,
// each case negotiates the extension with the given offers, then sends N compressed messages of
// one size one after another (optionally auto-fragmented), each echo checked octet for octet
// before the next is sent, and closes normally. Section 12 varies the payload (Autobahn uses
// five files; here five generated corpora of the same kinds), section 13 the offers.
//
// Each message goes out in Autobahn's frames (its fragment loop on the compressed octets,
// trailing empty FIN continuation included). Reduced mode (default): fewer messages per case
// (100 up to 1 KiB, 50 up to 16 KiB, 10 above); --full sends Autobahn's 1000 each.

import type { CaseCtx, CaseDef } from '../engine.js'
import { CLOSE_NORMAL_BY_ME } from '../engine.js'
import type { Offer } from '../deflate.js'
import { bytesEqual, utf8 } from '../wire.js'

interface Opts {
  full: boolean
}

/** (message size, auto-fragment size; 0 = none): 18 per subsection, as in Autobahn. */
const SIZES: Array<[number, number]> = [
  [16, 0], [64, 0], [256, 0], [1024, 0], [4096, 0], [8192, 0], [16384, 0], [32768, 0], [65536, 0], [131072, 0],
  [256, 256], [1024, 256], [4096, 256], [8192, 256], [16384, 1024], [32768, 1024], [65536, 4096], [262144, 4096],
]

/** A deterministic pseudo-random sequence (xorshift32), so every run sends the same octets. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x
  }
}

interface Corpus {
  name: string
  binary: boolean
  bytes: Uint8Array
}

function jsonCorpus(): Corpus {
  const r = rng(12)
  const items = []
  for (let i = 0; i < 1500; i++) {
    items.push({ id: i, guid: (r() >>> 0).toString(16), active: r() % 2 === 0, balance: `$${(r() % 400000) / 100}`, age: 20 + (r() % 50), name: ['Ayala Ferrell', 'Hess Holman', 'Mcclure Hull'][r() % 3], tags: ['irure', 'velit', 'nulla', 'culpa'].slice(r() % 3), greeting: 'Hello, you have 7 unread messages.' })
  }
  return { name: 'Large JSON data (utf8)', binary: false, bytes: utf8(JSON.stringify(items, null, 1)) }
}

function bitmapCorpus(): Corpus {
  // An 8-bit grey 512x512 picture: smooth shapes plus a little noise, after a 1078-octet header.
  const r = rng(122)
  const out = new Uint8Array(1078 + 512 * 512)
  out.set(utf8('BM'), 0)
  for (let i = 2; i < 1078; i++) out[i] = i < 54 ? (i * 7) & 0xff : (i - 54) >> 2
  for (let y = 0; y < 512; y++) {
    for (let x = 0; x < 512; x++) {
      const v = 128 + 60 * Math.sin(x / 37) * Math.cos(y / 23) + 40 * Math.sin((x + y) / 91)
      out[1078 + y * 512 + x] = Math.max(0, Math.min(255, Math.round(v) + (r() % 7) - 3))
    }
  }
  return { name: 'Bitmap picture 512x512 grey (binary)', binary: true, bytes: out }
}

function germanCorpus(): Corpus {
  const words = ['Habe', 'nun', 'ach', 'Philosophie', 'Juristerei', 'und', 'Medizin', 'leider', 'auch', 'Theologie', 'durchaus', 'studiert', 'mit', 'heißem', 'Bemühn', 'Da', 'steh', 'ich', 'armer', 'Tor', 'bin', 'so', 'klug', 'als', 'wie', 'zuvor', 'Heiße', 'Magister', 'Doktor', 'gar', 'zieh', 'schon', 'an', 'die', 'zehen', 'Jahr', 'herauf', 'herab', 'quer', 'krumm', 'Schüler', 'Nase', 'herum', 'Zwar', 'über', 'Äther', 'Öde', 'Glück', 'Übermut']
  const r = rng(123)
  let s = ''
  while (s.length < 230_000) {
    const n = 5 + (r() % 9)
    const line = []
    for (let i = 0; i < n; i++) line.push(words[r() % words.length])
    s += line.join(' ') + (r() % 4 === 0 ? '!\n' : ',\n')
  }
  return { name: 'Human-readable German text (utf8)', binary: false, bytes: utf8(s) }
}

function htmlCorpus(): Corpus {
  const r = rng(124)
  let s = '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>Report</title></head>\n<body>\n'
  while (s.length < 84_000) {
    const id = r() % 10000
    s += `<div class="row" id="r${id}"><span class="label">Item ${id}</span><a href="/items/${id}?ref=list&amp;page=${r() % 40}">details</a><p>Status: ${['open', 'closed', 'pending'][r() % 3]} — ${r() % 100}%</p></div>\n`
  }
  return { name: 'Large HTML file (utf8)', binary: false, bytes: utf8(s + '</body>\n</html>\n') }
}

function pdfCorpus(): Corpus {
  // A PDF-like mix: text objects and already-compressed (incompressible) streams.
  const r = rng(125)
  const parts: Uint8Array[] = []
  let size = 0
  for (let obj = 1; size < 1_040_000; obj++) {
    const text = utf8(`${obj} 0 obj\n<< /Type /Page /Parent 2 0 R /Contents ${obj + 1} 0 R /MediaBox [0 0 612 792] >>\nendobj\nstream\n`)
    const noise = new Uint8Array(2000 + (r() % 6000))
    for (let i = 0; i < noise.length; i++) noise[i] = r() & 0xff
    parts.push(text, noise, utf8('\nendstream\n'))
    size += text.length + noise.length + 11
  }
  const out = new Uint8Array(size)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return { name: 'Larger PDF-like file (binary)', binary: true, bytes: out }
}

/** The i-th message: `size` octets from the corpus at a moving offset (wrapping), cut to whole UTF-8 characters for text. */
function slice(corpus: Corpus, size: number, i: number): Uint8Array {
  const data = corpus.bytes
  const out = new Uint8Array(size)
  let at = (i * 7919 + size) % data.length
  for (let k = 0; k < size; k++) {
    out[k] = data[at]
    at = at + 1 === data.length ? 0 : at + 1
  }
  if (corpus.binary) return out
  let start = 0
  while (start < out.length && (out[start] & 0xc0) === 0x80) start++
  let end = out.length
  // Back off from a character cut at the end: find its lead octet and see if it is complete.
  for (let k = end - 1; k >= start && k >= end - 4; k--) {
    const b = out[k]
    if ((b & 0xc0) === 0x80) continue
    const need = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2
    if (k + need > end) end = k
    break
  }
  return out.subarray(start, end)
}

function count(size: number, o: Opts): number {
  if (o.full) return 1000
  return size <= 1024 ? 100 : size <= 16384 ? 50 : 10
}

function describeOffers(offers: readonly Offer[]): string {
  return offers.map((f) => `(${f.requestNoContextTakeover ? 'True' : 'False'}, ${f.requestMaxWindowBits})`).join(', ')
}

function deflateCase(id: string, corpus: () => Corpus, size: number, frag: number, offers: Offer[], o: Opts): CaseDef {
  const n = count(size, o)
  const kind = corpus().binary ? 'binary' : 'text'
  const send = (c: CaseCtx): void => {
    const i = c.data.sent as number
    const payload = slice(corpus(), size, i)
    c.data.expected = payload
    c.data.sent = i + 1
    c.conn.sendMessage(payload, corpus().binary)
  }
  return {
    id,
    description:
      `Send ${n} compressed ${kind} messages each of payload size ${size}${frag > 0 ? `, auto-fragment to ${frag} octets` : ''}, ` +
      `one at a time, each echo checked. Offers (requestNoContextTakeover, requestMaxWindowBits): [${describeOffers(offers)}]. Payload: ${corpus().name}.`,
    expectedClose: CLOSE_NORMAL_BY_ME,
    deflate: offers,
    autoFragmentSize: frag,
    reportTime: true,
    timeoutMs: 120_000,
    onOpen: (c) => {
      if (c.conn.deflate === null) {
        c.behavior = 'UNIMPLEMENTED'
        c.result = 'The server did not accept any permessage-deflate offer.'
        c.conn.sendCloseFrame(1000)
        return
      }
      c.result = 'Did not receive all echoes.'
      c.data.sent = 0
      c.data.received = 0
      send(c)
    },
    onMessage: (c, payload, binary) => {
      if (c.behavior === 'OK' || c.conn.state !== 'OPEN') return
      const got = (c.data.received as number) + 1
      c.data.received = got
      const want = c.data.expected as Uint8Array
      if (binary !== corpus().binary || !bytesEqual(payload, want)) {
        c.behavior = 'FAILED'
        c.result = `Echo ${got} differs: ${binary ? 'binary' : 'text'} of ${payload.length} octets for ${kind} of ${want.length}.`
        c.conn.sendCloseFrame(1000)
        return
      }
      if (got < n) {
        send(c)
        return
      }
      c.behavior = 'OK'
      c.result = `Received all ${n} echoes intact; negotiated ${JSON.stringify(c.conn.deflate)}.`
      c.conn.sendCloseFrame(1000)
    },
  }
}

function memo<T>(f: () => T): () => T {
  let v: T | undefined
  return () => (v ??= f())
}

const CORPORA = [memo(jsonCorpus), memo(bitmapCorpus), memo(germanCorpus), memo(htmlCorpus), memo(pdfCorpus)]

/** Section 12: the browser-like default offer, five kinds of payload. */
export function section12(o: Opts): CaseDef[] {
  const offer: Offer[] = [{ requestNoContextTakeover: false, requestMaxWindowBits: 0 }]
  return CORPORA.flatMap((corpus, k) => SIZES.map(([size, frag], j) => deflateCase(`12.${k + 1}.${j + 1}`, corpus, size, frag, offer, o)))
}

/** Section 13: JSON payload, the offers of Autobahn's 13.1-13.7. */
const OFFERS_13: Offer[][] = [
  [{ requestNoContextTakeover: false, requestMaxWindowBits: 0 }],
  [{ requestNoContextTakeover: true, requestMaxWindowBits: 0 }],
  [{ requestNoContextTakeover: false, requestMaxWindowBits: 8 }],
  [{ requestNoContextTakeover: false, requestMaxWindowBits: 15 }],
  [{ requestNoContextTakeover: true, requestMaxWindowBits: 8 }],
  [{ requestNoContextTakeover: true, requestMaxWindowBits: 15 }],
  [
    { requestNoContextTakeover: true, requestMaxWindowBits: 8 },
    { requestNoContextTakeover: true, requestMaxWindowBits: 0 },
    { requestNoContextTakeover: false, requestMaxWindowBits: 0 },
  ],
]

export function section13(o: Opts): CaseDef[] {
  return OFFERS_13.flatMap((offers, k) => SIZES.map(([size, frag], j) => deflateCase(`13.${k + 1}.${j + 1}`, CORPORA[0], size, frag, offers, o)))
}
