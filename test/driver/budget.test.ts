// The memory budget on its own.
import test from 'ava'
import { DEFAULT_MEMORY_BUDGET, MemoryBudget, SharedBytes } from '../../src/driver/budget.js'

test('growth within the limit is allowed; growth past it is refused; shrinking always passes', (t) => {
  const b = new MemoryBudget(100)
  t.true(b.charge(60))
  t.true(b.charge(40))
  t.false(b.charge(1), 'one byte past the limit')
  t.true(b.charge(-41))
  t.is(b.used, 60)
})

test('default 256 MiB; a non-positive limit is refused', (t) => {
  t.is(new MemoryBudget().limit, DEFAULT_MEMORY_BUDGET)
  t.is(DEFAULT_MEMORY_BUDGET, 256 * 1024 * 1024)
  t.throws(() => new MemoryBudget(0), { instanceOf: RangeError })
})

test('shared bytes cost a budget once, however many queues hold them, until the last lets them go', (t) => {
  const b = new MemoryBudget(1000)
  const frame = new SharedBytes(new Uint8Array(300))
  t.true(b.hold(frame))
  t.true(b.hold(frame))
  t.true(b.hold(frame))
  t.is(b.used, 300, 'three holders, counted once')
  b.release(frame)
  b.release(frame)
  t.is(b.used, 300, 'still held by one')
  b.release(frame)
  t.is(b.used, 0, 'the last release gives it back')
  // Once let go, the next hold counts it again.
  t.true(b.hold(frame))
  t.is(b.used, 300)
  b.release(frame)
  t.is(b.used, 0)
})

test('shared and own bytes together: own bytes count per holder, shared ones once', (t) => {
  const b = new MemoryBudget(1000)
  const frame = new SharedBytes(new Uint8Array(500))
  // Two holders, each with 100 bytes of its own.
  t.true(b.charge(100))
  t.true(b.hold(frame))
  t.true(b.charge(100))
  t.true(b.hold(frame))
  t.is(b.used, 700)
  // A first hold that finds the budget spent is refused, like any growth; later holds of bytes
  // already counted cost nothing and pass.
  const big = new SharedBytes(new Uint8Array(400))
  t.false(b.hold(big))
  t.is(b.used, 1100)
  t.true(b.hold(frame))
  b.release(big)
  b.release(frame)
  b.release(frame)
  b.release(frame)
  t.true(b.charge(-200))
  t.is(b.used, 0)
})

test('shared bytes held by two budgets (two servers) are counted by each, and given back to each', (t) => {
  const a = new MemoryBudget(1000)
  const b = new MemoryBudget(1000)
  const frame = new SharedBytes(new Uint8Array(300), 320)
  a.hold(frame)
  b.hold(frame)
  a.hold(frame)
  b.hold(frame)
  t.is(a.used, 320, 'size is what it keeps alive, counted once by the first budget')
  t.is(b.used, 640, 'the second counts each of its holds')
  a.release(frame)
  b.release(frame)
  a.release(frame)
  t.is(a.used, 0)
  b.release(frame)
  t.is(b.used, 0)
})
