// The memory budget on its own.
import test from 'ava'
import { DEFAULT_MEMORY_BUDGET, MemoryBudget } from '../../src/driver/budget.js'

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
