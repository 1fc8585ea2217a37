/**
 * The closing part on its own (src/driver/closing.ts), with fakes: a real session, a transport
 * that records `end()` and `destroy()`, a clock whose timers fire by hand, and an owner that
 * records what it is told. Checks that the part runs the timer the session names, ends or
 * destroys the transport when told (and only after a flush), and settles `closed` with the
 * session's outcome.
 */

import test from 'ava'
import { Session } from '../../src/protocol/session.js'
import { Opcode } from '../../src/protocol/opcode.js'
import type { ProtocolError } from '../../src/protocol/errors.js'
import { Closing, REPLY_GRACE, type ClosingOwner } from '../../src/driver/closing.js'
import type { Clock } from '../../src/driver/clock.js'
import type { Transport } from '../../src/driver/transport.js'
import type { CloseInfo } from '../../src/driver/types.js'
import { ConnectionClosedError } from '../../src/errors.js'
import { closePayload, concat, peerFrame, rfcMask } from '../protocol/helpers.js'
import { FrameParser, type Role } from '../../src/protocol/frame-parser.js'

/** Timers that fire only when the test says. */
class HandClock implements Clock {
  timers = new Map<number, { ms: number, fire: () => void }>()
  private next = 1
  now = (): number => 0
  setTimeout = <A>(callback: (arg: A) => void, ms: number, arg: A): number => {
    const id = this.next++
    this.timers.set(id, { ms, fire: () => { callback(arg) } })
    return id
  }

  clearTimeout = (timer: unknown): void => { this.timers.delete(timer as number) }
  setInterval = (): number => 0
  clearInterval = (): void => {}
  /** The one pending timer's duration. */
  get pending (): number[] {
    return [...this.timers.values()].map((t) => t.ms)
  }

  fire (): void {
    const [id, timer] = [...this.timers.entries()][0]
    this.timers.delete(id)
    timer.fire()
  }
}

function setup (role: Role, closeTimeout = 5000) {
  const session = new Session({ role, mask: rfcMask, deferClose: true })
  const clock = new HandClock()
  const did: string[] = []
  const wire: Uint8Array[] = []
  const transport = {
    allowHalfOpen: false,
    end: () => { did.push('end') },
    destroy: () => { did.push('destroy') }
  } as unknown as Transport & { allowHalfOpen: boolean }
  const owner: ClosingOwner & { detached: boolean, doneCode: number | undefined, compressingNow: boolean, source: string[] } = {
    detached: false,
    doneCode: undefined,
    compressingNow: false,
    source: [],
    // As the output part does: write, then tell the closing part once TCP's end is due.
    flush: () => {
      wire.push(...session.takeOutput())
      if (session.shouldCloseTransport) closing.afterFlush()
    },
    stopSending: () => { did.push('stop sending') },
    dropZlibWork: () => {},
    updateReading: () => {},
    stopHeartbeat: () => {},
    get isCompressing () { return this.compressingNow },
    get sourceDetached () { return this.detached },
    endSource: (error?: Error) => { owner.source.push(error === undefined ? 'end' : `throw ${error.name}`) },
    releaseSource: () => {},
    doneSending: () => owner.doneCode,
    onGone: (info: CloseInfo) => { did.push(`gone ${info.code}`) },
    clock,
    closeTimeout
  }
  const closing = new Closing(owner, session, transport)
  /** Frames the peer would read, closes as their code. */
  const parser = new FrameParser({ role: role === 'server' ? 'client' : 'server' })
  const written = (): Array<number | string | undefined> =>
    parser.push(concat(wire.splice(0))).map((f) => f.opcode === Opcode.Close ? closePayload(f).code : `opcode ${f.opcode}`)
  const receive = (bytes: Uint8Array): void => {
    for (const e of session.receive(bytes)) {
      if (e.type === 'close') closing.onPeerClose()
      if (e.type === 'error') closing.onFailure(e.error as ProtocolError)
    }
    owner.flush()
  }
  return { session, clock, did, owner, closing, transport, written, receive }
}

const close = (role: Role, code: number): Uint8Array => peerFrame(role, { opcode: Opcode.Close, payload: Uint8Array.of(code >>> 8, code & 0xff) })

for (const role of ['server', 'client'] as const) {
  test(`close(): our close goes, sending stops, the peer-close timer runs closeTimeout; its firing destroys the transport (${role})`, async (t) => {
    const { clock, did, closing, written } = setup(role, 3000)
    closing.close(4000, 'bye')
    t.deepEqual(written(), [4000])
    t.true(closing.sendingStopped)
    t.deepEqual(did, ['stop sending'])
    t.deepEqual(clock.pending, [3000])
    const signal = closing.signal
    t.true(signal.aborted)
    t.is((signal.reason as ConnectionClosedError).closeCode, 4000)
    clock.fire()
    t.deepEqual(did.slice(1), ['destroy'])
    closing.onClose()
    t.deepEqual(await closing.closed, { code: 4000, reason: 'bye', wasClean: false })
  })

  test(`the peer's answer: the server ends TCP, a client waits for the server's end within a fresh closeTimeout (${role})`, async (t) => {
    const { clock, did, closing, receive, owner } = setup(role)
    closing.close()
    receive(close(role, 1000))
    t.deepEqual(clock.pending, [5000], 'one timer: tcp-end')
    if (role === 'server') t.true(did.includes('end'))
    else {
      t.false(did.includes('end'))
      closing.onEnd()
      t.true(did.includes('end'))
    }
    closing.onClose()
    t.deepEqual(owner.source, ['end', 'end'])
    t.deepEqual(await closing.closed, { code: 1000, reason: '', wasClean: true })
    t.deepEqual(clock.pending, [], 'the timer goes with the transport')
  })

  test(`the peer closes first: the same code back at once; source ends; its code, clean (${role})`, async (t) => {
    const { closing, receive, written, owner } = setup(role)
    receive(close(role, 4321))
    t.deepEqual(written(), [4321])
    t.deepEqual(owner.source, ['end'])
    closing.onClose()
    t.deepEqual(await closing.closed, { code: 4321, reason: '', wasClean: true })
  })

  test(`a protocol error: source throws it; the close waits for the replies within REPLY_GRACE, then both sides end TCP (${role})`, async (t) => {
    const { clock, did, closing, receive, written, owner } = setup(role)
    receive(peerFrame(role, { opcode: 3 }))
    t.deepEqual(owner.source, ['throw ProtocolError'])
    t.is(closing.failure?.closeCode, 1002)
    t.deepEqual(written(), [])
    t.deepEqual(clock.pending, [REPLY_GRACE])
    clock.fire()
    t.deepEqual(written(), [1002])
    t.true(did.includes('end'))
    t.deepEqual(clock.pending, [5000])
    closing.onClose()
    const info = await closing.closed
    t.is(info.code, 1002)
    t.false(info.wasClean)
  })

  test(`the transport lost with no close: source throws a ConnectionClosedError (1006); closed 1006, not clean (${role})`, async (t) => {
    const { closing, owner, did } = setup(role)
    closing.onError(new Error('ECONNRESET'))
    closing.onClose()
    t.deepEqual(owner.source, ['throw ConnectionClosedError'])
    t.deepEqual(await closing.closed, { code: 1006, reason: '', wasClean: false })
    t.true(did.includes('gone 1006'))
    t.is(closing.closingError().message, 'the connection is closed')
  })
}

test('close() while messages are being compressed waits for them; compressed() sends it', (t) => {
  const { closing, owner, written } = setup('server')
  owner.compressingNow = true
  closing.close(4001)
  t.true(closing.sendingStopped)
  t.deepEqual(written(), [])
  t.is(closing.closingError().closeCode, 4001)
  owner.compressingNow = false
  t.true(closing.compressed())
  t.deepEqual(written(), [4001])
})

test('close() checks its arguments whatever the state', (t) => {
  const { closing } = setup('server')
  closing.onClose()
  t.throws(() => { closing.close(1005) }, { instanceOf: RangeError })
  t.throws(() => { closing.close(1000, 'x'.repeat(124)) }, { instanceOf: RangeError })
})

test('both directions done: closes with the code the sending side gives, on the next turn', async (t) => {
  const { closing, owner, written } = setup('server')
  owner.detached = true
  owner.doneCode = 1011
  closing.scheduleDoneCheck()
  t.deepEqual(written(), [])
  await new Promise((resolve) => setImmediate(resolve))
  t.deepEqual(written(), [1011])
})
