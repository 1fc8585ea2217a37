// The Transport interface is met by Node's byte streams as they are (checked by `tsc`), and the
// system clock's timers take their argument (no closure per timer).
import test from 'ava'
import { Socket } from 'node:net'
import { TLSSocket } from 'node:tls'
import type { ClientHttp2Stream, ServerHttp2Stream } from 'node:http2'
import { Duplex, PassThrough } from 'node:stream'
import type { Transport } from '../../src/driver/transport.js'
import { systemClock } from '../../src/driver/clock.js'

// Compile-time: each of these must be a Transport with no wrapper.
export type Check = [
  Socket extends Transport ? true : never,
  TLSSocket extends Transport ? true : never,
  ServerHttp2Stream extends Transport ? true : never,
  ClientHttp2Stream extends Transport ? true : never,
  Duplex extends Transport ? true : never
]

test('a Node stream is a Transport: the driver\'s listeners get the stream as `this`', (t) => {
  const stream: Transport = new PassThrough()
  const seen: unknown[] = []
  let got: Uint8Array | undefined
  stream.on('data', function (this: Transport, chunk: Uint8Array) { seen.push(this); got = chunk })
  stream.write(new Uint8Array([1, 2, 3]))
  t.is(seen[0], stream)
  t.deepEqual(got !== undefined ? [...got] : undefined, [1, 2, 3])
})

test('the system clock passes the timer its argument and can cancel it', async (t) => {
  const seen: string[] = []
  const cancelled = systemClock.setTimeout((x: string) => { seen.push(x) }, 1, 'cancelled')
  systemClock.clearTimeout(cancelled)
  await new Promise<void>((resolve) => { systemClock.setTimeout((x: string) => { seen.push(x); resolve() }, 1, 'fired') })
  t.deepEqual(seen, ['fired'])
  const before = systemClock.now()
  t.true(systemClock.now() >= before)
})
