/**
 * The browser build's connection over a stand-in transport (no browser needed): misuse rejects
 * with an InvalidStateError carrying its code, and a send once `closed` has settled says
 * "closed", while closing "closing" (issue 23, item 6).
 */

import test from 'ava'
import { PageConnection } from '../../src/browser/connection.js'
import type { Transport, TransportOwner } from '../../src/browser/transport.js'
import type { CloseInfo } from '../../src/driver/types.js'
import { ConnectionClosedError, InvalidStateError } from '../../src/errors.js'

/** A transport that takes every write and closes when told to (`end`). */
function transport (): Transport & { end: (info: CloseInfo) => void, written: unknown[] } {
  let end!: (info: CloseInfo) => void
  const closed = new Promise<CloseInfo>((resolve) => { end = resolve })
  const written: unknown[] = []
  return {
    protocol: '',
    owner: undefined as unknown as TransportOwner,
    closed,
    end,
    written,
    read: async () => await closed.then(() => undefined),
    discard: () => {},
    write: (data) => { written.push(data) },
    room: () => undefined,
    close: () => true
  }
}

test('sink after send(), send() after sink, sink twice: an InvalidStateError with code WS_ERR_INVALID_STATE', async (t) => {
  const misuse = { instanceOf: InvalidStateError, code: 'WS_ERR_INVALID_STATE' }
  const a = new PageConnection(transport(), { stream: false, maxMessageSize: 1024 })
  await a.send('x')
  await t.throwsAsync(a.sink(['y']), { ...misuse, message: /send\(\) was used/ })
  const b = new PageConnection(transport(), { stream: false, maxMessageSize: 1024 })
  void b.sink((async function * () { yield 'x' })())
  await t.throwsAsync(b.send('y'), { ...misuse, message: /sink was called/ })
  await t.throwsAsync(b.sink(['z']), { ...misuse, message: /only once/ })
})

test('send() while closing says "closing", once closed settled "closed"', async (t) => {
  const tr = transport()
  const conn = new PageConnection(tr, { stream: false, maxMessageSize: 1024 })
  conn.close(4000)
  await t.throwsAsync(conn.send('x'), { instanceOf: ConnectionClosedError, message: 'the connection is closing' })
  tr.end({ code: 4000, reason: '', wasClean: true })
  t.is((await conn.closed).code, 4000)
  const err = await t.throwsAsync(conn.send('x'), { instanceOf: ConnectionClosedError, message: 'the connection is closed' })
  t.is((err as ConnectionClosedError).closeCode, 4000)
})
