// Fifo: order, emptiness, and compaction once most of a long queue is taken.
import test from 'ava'
import { Fifo } from '../../src/fifo.js'

test('first in, first out; undefined when empty; clear drops everything', (t) => {
  const f = new Fifo<number>()
  t.is(f.shift(), undefined)
  for (let i = 0; i < 3; i++) f.push(i)
  t.is(f.size, 3)
  t.deepEqual([f.shift(), f.shift()], [0, 1])
  f.push(3)
  t.deepEqual([f.shift(), f.shift(), f.shift()], [2, 3, undefined])
  f.push(9)
  f.clear()
  t.is(f.size, 0)
})

test('a long queue taken from the front keeps its order across compactions', (t) => {
  const f = new Fifo<number>()
  const n = 5000
  for (let i = 0; i < n; i++) f.push(i)
  const out: number[] = []
  for (let i = 0; i < n / 2; i++) out.push(f.shift()!)
  for (let i = n; i < n + 100; i++) f.push(i)
  for (let v = f.shift(); v !== undefined; v = f.shift()) out.push(v)
  t.deepEqual(out, Array.from({ length: n + 100 }, (_, i) => i))
})
