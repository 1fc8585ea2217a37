// What permessage-deflate costs per message (issue 12): zlib time through the codec's
// synchronous API. The driver spends it on the event loop for the messages it does at once (up
// to 64 KiB compressed, 128 KiB inflated) and on the thread pool for larger ones (issue 19).
// One connection's PerMessageDeflate with the server defaults (12-bit windows, context
// takeover, level 6), fed JSON messages of several sizes; and a decompression bomb against a
// 1 MiB and a 16 MiB limit.
//
//   npx tsx bench/deflate-cost.ts
import { constants, deflateRawSync } from 'node:zlib'
import { PerMessageDeflate } from '../src/extensions/permessage-deflate.js'
import { resolveDeflateOptions, type PerMessageDeflateOptions } from '../src/extensions/deflate-options.js'
import type { DeflateParams } from '../src/extensions/deflate-negotiation.js'

function json (n: number, seed: number): Buffer {
  let s = ''
  for (let i = 0; s.length < n; i++) s += JSON.stringify({ id: i + seed, user: `user${(i * 7 + seed) % 13}`, text: `message ${(i * 31 + seed) % 997} about the release`, ok: i % 3 === 0 }) + '\n'
  return Buffer.from(s.slice(0, n))
}

function codec (params: Partial<DeflateParams>, options: PerMessageDeflateOptions = {}): PerMessageDeflate {
  return new PerMessageDeflate('server', { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 12, clientMaxWindowBits: 12, ...params }, resolveDeflateOptions({ threshold: 0, ...options }, 'server')!)
}

function time (label: string, n: number, f: (i: number) => void): number {
  for (let i = 0; i < Math.min(200, n); i++) f(i)
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i++) f(i)
  const us = Number(process.hrtime.bigint() - t0) / 1000 / n
  console.log(`| ${label} | ${us < 100 ? us.toFixed(1) : Math.round(us).toLocaleString('en-US')} µs |`)
  return us
}

console.log('| per message (server defaults unless said) | time on the event loop |')
console.log('|---|---:|')
for (const size of [1024, 16 * 1024, 1024 * 1024]) {
  const n = size >= 1024 * 1024 ? 20 : size >= 16384 ? 500 : 5000
  const msgs = Array.from({ length: 64 }, (_, i) => json(size, i))
  const label = size >= 1024 * 1024 ? '1 MiB' : `${size / 1024} KiB`
  const sender = codec({})
  const wire: Uint8Array[] = []
  time(`compress ${label} JSON, context takeover`, n, (i) => { wire.push(sender.compress(msgs[i % 64])!) })
  const noContext = codec({ serverNoContextTakeover: true })
  time(`compress ${label} JSON, no context takeover`, n, (i) => { noContext.compress(msgs[i % 64]) })
  // The receiving side of the same stream (as the client would inflate what the server sent).
  const receiver = new PerMessageDeflate('client', { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 12, clientMaxWindowBits: 12 }, resolveDeflateOptions({ threshold: 0 })!)
  let k = 0
  // The warm-up and the timed run together inflate the stream from its start, in order.
  time(`inflate ${label} JSON, context takeover`, Math.floor(wire.length / 2), () => { receiver.decompress([wire[k++]], 64 * 1024 * 1024) })
}
{
  // The largest message the default maxMessageSize lets through, inflated in one call.
  const big = json(16 * 1024 * 1024, 1)
  const body = deflateRawSync(big, { finishFlush: constants.Z_SYNC_FLUSH, windowBits: 12 })
  const c = codec({ clientNoContextTakeover: true })
  time(`inflate one 16 MiB JSON message (${(body.length / 1024).toFixed(0)} KiB compressed)`, 5, () => { c.decompress([body.subarray(0, body.length - 4)], 16 * 1024 * 1024) })
}
const zeros = deflateRawSync(new Uint8Array(64 * 1024 * 1024), { finishFlush: constants.Z_SYNC_FLUSH })
const bomb = zeros.subarray(0, zeros.length - 4)
for (const limit of [1024 * 1024, 16 * 1024 * 1024]) {
  const c = codec({ clientNoContextTakeover: true })
  time(`decompression bomb (${(bomb.length / 1024).toFixed(0)} KiB → 64 MiB) stopped at ${limit / 1024 / 1024} MiB`, 10, () => {
    try { c.decompress([bomb], limit) } catch {}
  })
}
