/**
 * The zlib budget's accounting for inflates off the event loop, at the unit level: several
 * {@link PerMessageDeflate} objects sharing one server budget, as a server's connections do. The
 * budgets refill by the clock they are given, here a VirtualClock: nothing refills them behind
 * the test's back, and a wait ends exactly when the budget said.
 */

import test from 'ava'
import { randomBytes } from 'node:crypto'
import { constants, deflateRawSync } from 'node:zlib'
import type { DeflateParams } from '../../src/extensions/deflate-negotiation.js'
import { PerMessageDeflate } from '../../src/extensions/permessage-deflate.js'
import { resolveDeflateOptions, type ResolvedDeflateOptions } from '../../src/extensions/deflate-options.js'
import { offLoopJobs, ZlibBudget } from '../../src/extensions/zlib-work.js'
import { VirtualClock } from '../../src/virtual-clock.js'

const MiB = 1024 * 1024
const PARAMS: DeflateParams = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 }

/** A client's compressed payload (RFC 7692 §7.2.1: the 4-octet tail dropped). */
function compress (data: Uint8Array): Buffer {
  const out = deflateRawSync(data, { finishFlush: constants.Z_SYNC_FLUSH })
  return out.subarray(0, out.length - 4)
}

/** About `size` bytes of ordinary JSON (compresses 3–5×). */
function json (size: number): Buffer {
  const items: unknown[] = []
  let n = 2
  for (let i = 0; n < size; i++) {
    const item = { id: i, name: randomBytes(6).toString('hex'), score: Math.floor(Math.random() * 1e6), tags: ['alpha', 'beta', randomBytes(3).toString('base64')] }
    n += JSON.stringify(item).length + 1
    items.push(item)
  }
  return Buffer.from(JSON.stringify(items))
}

/** A connection of the server with these options, the message given to it left for an inflate off the loop. */
function receiving (options: ResolvedDeflateOptions, payload: Buffer): PerMessageDeflate {
  const z = new PerMessageDeflate('server', PARAMS, options)
  z.offLoop = true
  if (z.decompress([payload], 16 * MiB) !== undefined) throw new Error('inflated at once')
  return z
}

/** Wait (bounded) until no zlib job is queued or running. */
async function idle (): Promise<void> {
  for (let i = 0; i < 500 && offLoopJobs() > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  if (offLoopJobs() > 0) throw new Error('zlib jobs still running after 5 s')
}

test.serial('an inflate cancelled with its connection gives its admission back to the server budget, started or not', async (t) => {
  await idle()
  const options = resolveDeflateOptions({ connectionBudget: Infinity, serverBudget: 64 * MiB }, 'server', new VirtualClock())!
  // Room for all three admissions at once.
  const server = options.serverBudget!
  const ordinary = compress(json(200 * 1024))
  const bomb = compress(Buffer.alloc(16 * MiB - 64, 'a'))
  // One that runs (ordinary JSON: it costs nothing), two queued behind it (bombs) that never start.
  const conns = [receiving(options, ordinary), receiving(options, bomb), receiving(options, bomb)]
  const results: unknown[] = []
  for (const z of conns) t.is(z.inflateLater(16 * MiB, (err, data) => { results.push(err ?? data) }), undefined)
  t.true(offLoopJobs() >= 3)
  // The peers reset: their connections go.
  conns[2].cancel()
  conns[1].cancel()
  conns[0].cancel()
  await idle()
  t.deepEqual(results, [], 'nothing is delivered for a cancelled inflate')
  // Time has not moved: this is what the cancels gave back, not a refill.
  t.is(server.available, server.rate, 'the server budget holds all it held before')
  t.is(server.wait(), 0)
})

test.serial('three large messages of ordinary JSON on three connections are let in at once, with no budget wait, and cost the budget nothing', async (t) => {
  await idle()
  const options = resolveDeflateOptions(true, 'server')!
  const server = options.serverBudget!
  const messages = [json(200 * 1024), json(200 * 1024), json(200 * 1024)]
  const conns = messages.map((m) => receiving(options, compress(m)))
  const results: Array<Promise<Uint8Array>> = []
  for (const z of conns) {
    let answer!: (data: Uint8Array) => void
    results.push(new Promise((resolve) => { answer = resolve }))
    // A number here is a budget wait.
    t.is(z.inflateLater(16 * MiB, (err, data) => { if (err === undefined && data !== undefined) answer(data) }), undefined)
  }
  const out = await Promise.all(results)
  for (let i = 0; i < 3; i++) t.true(Buffer.from(out[i]).equals(messages[i]), `message ${i} intact`)
  await idle()
  t.is(server.available, server.rate)
  for (const z of conns) t.is(z.budget.wait(), 0)
})

test.serial('a decompression bomb let in on what is left of the budget stops there, then waits its turn and is charged in full', async (t) => {
  await idle()
  const clock = new VirtualClock()
  const options = resolveDeflateOptions({ connectionBudget: Infinity }, 'server', clock)!
  const server = options.serverBudget!
  const message = Buffer.alloc(16 * MiB - 64, 'a')
  const z = receiving(options, compress(message))
  const calls: Array<[unknown, Uint8Array | undefined]> = []
  let called!: () => void
  let next = new Promise<void>((resolve) => { called = resolve })
  const done = (err: unknown, data: Uint8Array | undefined): void => { calls.push([err, data]); called() }
  // Most of the budget is spent: the bomb is let in on what is left.
  server.charge(server.rate - MiB)
  t.is(z.inflateLater(16 * MiB, done), undefined)
  await next
  t.deepEqual(calls, [[undefined, undefined]], 'stopped at what the budget allowed: to be looked at again')
  next = new Promise<void>((resolve) => { called = resolve })
  // Let in again, with its full cost charged ahead, once the budget is out of debt: not 1 ms before.
  const wait = z.inflateLater(16 * MiB, done)
  t.true(typeof wait === 'number' && wait > 1, `a wait (${String(wait)})`)
  await clock.advance((wait as number) - 1)
  t.is(z.inflateLater(16 * MiB, done), 1, 'still 1 ms to wait')
  await clock.advance(1)
  t.is(z.inflateLater(16 * MiB, done), undefined, 'let in')
  await next
  t.is(calls.length, 2)
  t.is(calls[1][0], undefined)
  t.true(Buffer.from(calls[1][1]!).equals(message))
})

test('a ZlibBudget refills by its clock: 1,500 bytes taken from 1,000 a second is 500 ms of debt, out of it at 500 ms, not 499, and full again at 1.5 s', async (t) => {
  const clock = new VirtualClock()
  const budget = new ZlibBudget(1000, clock)
  t.is(budget.available, 1000, 'starts full')
  budget.charge(1500)
  t.is(budget.available, -500)
  t.is(budget.wait(), 500)
  await clock.advance(499)
  t.is(budget.available, -1)
  t.is(budget.wait(), 1, 'in debt 1 ms before')
  await clock.advance(1)
  t.is(budget.available, 0)
  t.is(budget.wait(), 0, 'out of debt at 500 ms')
  await clock.advance(999)
  t.is(budget.available, 999)
  await clock.advance(10_000)
  t.is(budget.available, 1000, 'never more than a second\'s worth')
})

test('resolveDeflateOptions gives its clock to the server budget and, through the options, to each connection\'s budget', async (t) => {
  const clock = new VirtualClock()
  const options = resolveDeflateOptions({ connectionBudget: 1000, serverBudget: 2000 }, 'server', clock)!
  const z = new PerMessageDeflate('server', PARAMS, options)
  z.budget.charge(1100)
  options.serverBudget!.charge(2200)
  t.deepEqual([z.budget.wait(), options.serverBudget!.wait()], [100, 100])
  await clock.advance(99)
  t.deepEqual([z.budget.wait(), options.serverBudget!.wait()], [1, 1])
  await clock.advance(1)
  t.deepEqual([z.budget.wait(), options.serverBudget!.wait()], [0, 0])
})
