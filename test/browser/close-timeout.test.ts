/**
 * The browser transports' `closeTimeout`, in Node with a stand-in for `WebSocketStream`: a
 * timeout `setTimeout` cannot take (Infinity, 2^31 ms or more) must not fire at once.
 */

import test from 'ava'
import { sleep } from '../server/helpers.js'
import { StreamTransport } from '../../src/browser/websocketstream.js'

/** A WebSocketStream whose writes never finish and whose server never answers a close. */
function stalledStream (closeTimeout: number): { transport: StreamTransport, aborted: () => boolean, closedWith: () => unknown, end: () => void } {
  let aborted = false
  let end!: () => void
  let closedWith: unknown
  const readable = new ReadableStream<string | ArrayBuffer>()
  const writable = new WritableStream<string | Uint8Array>({
    write: () => new Promise(() => {}),
    abort: () => { aborted = true }
  })
  const wss = {
    opened: Promise.resolve({ readable, writable, protocol: '', extensions: '' }),
    closed: new Promise<{ closeCode: number, reason: string }>((resolve) => { end = () => { resolve({ closeCode: 1006, reason: '' }) } }),
    close: (info?: unknown) => { closedWith = info }
  }
  const transport = new StreamTransport(wss, { readable, writable, protocol: '', extensions: '' }, { receiveHigh: 1024, sendHigh: 1024, closeTimeout })
  transport.owner = { onClosing: () => {}, onReceiveQueueFull: () => {} }
  return { transport, aborted: () => aborted, closedWith: () => closedWith, end }
}

for (const closeTimeout of [Infinity, 2 ** 31, 2 ** 40]) {
  test(`WebSocketStream: closeTimeout ${closeTimeout} does not drop the pending writes at once`, async (t) => {
    const s = stalledStream(closeTimeout)
    t.teardown(s.end)
    s.transport.write('pending')
    s.transport.close(4000, 'bye')
    await sleep(100)
    t.false(s.aborted(), 'the writes were not aborted')
    t.is(s.closedWith(), undefined, 'the close waits for the writes')
  })
}
