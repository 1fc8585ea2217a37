/**
 * DESIGN.md "Closing, precisely", row by row, against the session alone (no driver, no socket,
 * no clock): for each row, the close frame that goes out, where input ends, what `closed` would
 * settle with (code, reason, wasClean) and who ends TCP (§7.1.1), for both roles. Then the odd
 * orders (both close at once, a close after a failure, a peer's close behind a held message),
 * the timers of every stage, the peer's end of TCP in every stage, and properties of the one
 * transition function (closing.ts) over random inputs.
 */

import assert from 'node:assert/strict'
import test, { type ExecutionContext } from 'ava'
import fc from 'fast-check'
import { checkClose, closeDecision, closeOutcome, closeStep, OPEN_CLOSE_STATE, Opcode, Session, type CloseInput, type CloseStage, type CloseState, type MessageCompression, type Role, type SessionEvent, type SessionOptions } from '../../src/protocol/index.js'
import { closePayload, concat, newSession, outputFrames, peerFrame, utf8 } from './helpers.js'

const ROLES: Role[] = ['server', 'client']

const text = (role: Role, s: string): Uint8Array => peerFrame(role, { opcode: Opcode.Text, payload: utf8(s) })
const closeFrame = (role: Role, code?: number, reason = ''): Uint8Array => peerFrame(role, {
  opcode: Opcode.Close,
  payload: code === undefined ? new Uint8Array(0) : concat([Uint8Array.of(code >>> 8, code & 0xff), utf8(reason)])
})
const badOpcode = (role: Role): Uint8Array => peerFrame(role, { opcode: 3 })

/** The session as the driver builds it: the close we owe is held back until the driver sends it. */
const driverSession = (role: Role, extra: Partial<SessionOptions> = {}): Session => newSession(role, { deferClose: true, ...extra })

/** Event types, with a close's code and an error's close code. */
function kinds (events: readonly SessionEvent[]): string[] {
  return events.map((e) => e.type === 'close' ? `close:${e.code}` : e.type === 'error' ? `error:${e.error.closeCode}` : e.type === 'message' ? `message:${new TextDecoder().decode(e.data)}` : e.type)
}

/** The close frames (code, reason) a session has queued, parsed as its peer would; other frames by opcode. */
function sent (s: Session): Array<string | { code: number | undefined, reason: string }> {
  return outputFrames(s).map((f) => f.opcode === Opcode.Close ? closePayload(f) : `opcode ${f.opcode}`)
}

/** The driver's orders now. */
function orders (s: Session): string {
  const d = s.closeDecision
  return `${d.transport}/${d.timer ?? 'no timer'}`
}

/** The transport goes, then `closed` settles with the session's outcome. */
function outcome (s: Session, error = false): { code: number, reason: string, wasClean: boolean } {
  s.transportClosed(error)
  assert.equal(s.closeState.stage, 'closed', 'closed once the transport is gone')
  return { ...s.closeOutcome }
}

/** §7.1.1: the server ends TCP once the handshake is over; a client keeps it until the server has. */
function assertTcpEnd (t: ExecutionContext, s: Session, role: Role): void {
  if (role === 'server') {
    t.is(orders(s), 'end/tcp-end', 'the server ends TCP first')
  } else {
    t.is(orders(s), 'keep/tcp-end', 'the client waits for the server to end TCP')
    s.receiveEof()
    t.is(orders(s), 'end/tcp-end', 'then ends its own side')
  }
}

// ── Row 1: the handler's promise resolves → 1000 at once, clean once the peer answers ─────────────

for (const role of ROLES) {
  test(`row "handler's promise resolves": 1000 at once; input runs until the peer's answer; 1000 clean (${role})`, (t) => {
    const s = driverSession(role)
    t.true(s.sendClose(1000))
    t.deepEqual(sent(s), [{ code: 1000, reason: '' }])
    t.is(s.closeState.stage, 'sent')
    t.is(orders(s), 'keep/peer-close')
    // §7.1.2: what the peer sent before its answer still arrives.
    t.deepEqual(kinds(s.receive(text(role, 'late'))), ['message:late'])
    t.deepEqual(kinds(s.receive(closeFrame(role, 1000))), ['close:1000'])
    t.deepEqual(s.receive(text(role, 'after')), [], 'input ends with the peer\'s close')
    t.deepEqual(sent(s), [], 'the peer\'s answer is not answered')
    assertTcpEnd(t, s, role)
    t.deepEqual(outcome(s), { code: 1000, reason: '', wasClean: true })
  })

  // ── Row 2: the handler throws → 1011 ────────────────────────────────────────────────────────────

  test(`row "handler throws": 1011 goes out (the error is not sent); closed with 1011 (${role})`, (t) => {
    const s = driverSession(role)
    t.true(s.sendClose(1011))
    t.deepEqual(sent(s), [{ code: 1011, reason: '' }])
    t.deepEqual(kinds(s.receive(closeFrame(role, 1011))), ['close:1011'])
    assertTcpEnd(t, s, role)
    t.deepEqual(outcome(s), { code: 1011, reason: '', wasClean: true })
  })

  test(`row "handler throws", the peer never answers: the close timer destroys the transport; 1011, not clean (${role})`, (t) => {
    const s = driverSession(role)
    s.sendClose(1011)
    t.is(orders(s), 'keep/peer-close')
    s.closeTimerFired()
    t.is(orders(s), 'destroy/no timer')
    t.deepEqual(outcome(s), { code: 1011, reason: '', wasClean: false })
  })

  // ── Row 3: the sink's iterable ends → nothing yet ───────────────────────────────────────────────

  test(`row "sink's iterable ends": nothing is sent, nothing changes, no timer (${role})`, (t) => {
    const s = driverSession(role)
    t.true(s.sendText('last reply'))
    t.deepEqual(sent(s), ['opcode 1'])
    t.is(s.closeState, OPEN_CLOSE_STATE)
    t.is(s.state, 'open')
    t.is(orders(s), 'keep/no timer')
    t.deepEqual(kinds(s.receive(text(role, 'still read'))), ['message:still read'])
  })

  // ── Row 4: the peer sends close → the same code back, after the frame being written ─────────────

  test(`row "peer sends close": its code back after what was being written; input ends; the peer's code, clean (${role})`, (t) => {
    const s = driverSession(role)
    const events = s.receive(concat([text(role, 'queued'), closeFrame(role, 4001, 'bye'), text(role, 'dropped')]))
    t.deepEqual(kinds(events), ['message:queued', 'close:4001'], 'what came before is handed out, then input ends')
    t.is(s.closeState.stage, 'owing')
    t.deepEqual(s.pendingClose, { code: 4001, reason: '' })
    t.is(orders(s), 'keep/replies')
    // The frame being written goes first (§5.5.1 lets an endpoint finish before its close).
    t.true(s.sendText('reply'))
    t.true(s.sendPendingClose())
    t.deepEqual(sent(s), ['opcode 1', { code: 4001, reason: '' }])
    t.false(s.sendText('later'), 'later writes are dropped')
    assertTcpEnd(t, s, role)
    t.deepEqual(outcome(s), { code: 4001, reason: 'bye', wasClean: true })
  })

  test(`row "peer sends close" without a code: an empty close back; closed with 1005, clean (${role})`, (t) => {
    const s = newSession(role)
    t.deepEqual(kinds(s.receive(closeFrame(role))), ['close:1005'])
    t.deepEqual(sent(s), [{ code: undefined, reason: '' }])
    t.is(s.sentCloseCode, 1005)
    assertTcpEnd(t, s, role)
    t.deepEqual(outcome(s), { code: 1005, reason: '', wasClean: true })
  })

  // ── Row 5: conn.close(code, reason) → that code ─────────────────────────────────────────────────

  test(`row "conn.close(code, reason)": that code and reason; input ends at the peer's close; that code, clean (${role})`, (t) => {
    const s = driverSession(role)
    t.true(s.sendClose(4000, 'done here'))
    t.deepEqual(sent(s), [{ code: 4000, reason: 'done here' }])
    t.false(s.sendClose(1000), 'a second close does nothing')
    t.deepEqual(kinds(s.receive(concat([text(role, 'in flight'), closeFrame(role, 1000, 'ok')]))), ['message:in flight', 'close:1000'])
    assertTcpEnd(t, s, role)
    t.deepEqual(outcome(s), { code: 4000, reason: 'done here', wasClean: true })
  })

  test(`row "conn.close(code, reason)", closeTimeout: no answer in time → destroyed; that code, not clean (${role})`, (t) => {
    const s = driverSession(role)
    s.sendClose(4000, 'done here')
    s.closeTimerFired()
    t.is(orders(s), 'destroy/no timer')
    t.deepEqual(outcome(s), { code: 4000, reason: 'done here', wasClean: false })
  })

  // ── Row 6: a protocol error by the peer → 1002 / 1007 / 1009 ────────────────────────────────────

  const failures: Array<[string, (r: Role) => Uint8Array, number, Partial<SessionOptions>]> = [
    ['1002 (unknown opcode)', badOpcode, 1002, {}],
    ['1007 (text that is not UTF-8)', (r) => peerFrame(r, { opcode: Opcode.Text, payload: Uint8Array.of(0xff) }), 1007, {}],
    ['1009 (a message over maxMessageSize)', (r) => text(r, 'x'.repeat(17)), 1009, { maxMessageSize: 16 }]
  ]
  for (const [name, bad, code, options] of failures) {
    test(`row "protocol error by the peer" ${name}: messages before it, then the error; the close after the replies; both ends end TCP; not clean (${role})`, (t) => {
      const s = driverSession(role, options)
      const events = s.receive(concat([text(role, 'before'), bad(role), text(role, 'after')]))
      t.deepEqual(kinds(events), ['message:before', `error:${code}`])
      t.deepEqual(s.receive(closeFrame(role, 1000)), [], 'nothing more is read, a close neither (§7.1.7)')
      t.is(s.closeState.stage, 'owing')
      t.is(s.pendingClose?.code, code)
      t.is(orders(s), 'keep/replies', 'the close waits for the replies, within a grace')
      t.true(s.sendText('reply to before'))
      t.true(s.sendPendingClose())
      const out = sent(s)
      t.is(out[0], 'opcode 1')
      t.is((out[1] as { code: number }).code, code)
      // §7.1.7: after a failure nobody waits for the other: either side ends TCP at once.
      t.is(orders(s), 'end/tcp-end')
      const info = outcome(s)
      t.is(info.code, code)
      t.false(info.wasClean)
    })
  }

  // ── Row 7: socket reset / timeout → 1006 ────────────────────────────────────────────────────────

  test(`row "socket reset": no close frame; closed with 1006, not clean; nothing after (${role})`, (t) => {
    const s = driverSession(role)
    s.receive(text(role, 'half'))
    t.deepEqual(outcome(s, true), { code: 1006, reason: '', wasClean: false })
    t.deepEqual(sent(s), [])
    t.false(s.sendClose(1000), 'no close on a transport that is gone')
    t.deepEqual(s.receive(text(role, 'late')), [])
    t.is(orders(s), 'keep/no timer')
  })

  test(`row "socket timeout": the transport dropped without a close (no error) is 1006 too (${role})`, (t) => {
    const s = driverSession(role)
    t.deepEqual(outcome(s, false), { code: 1006, reason: '', wasClean: false })
  })
}

// ── Odd orders ──────────────────────────────────────────────────────────────────────────────────

test('both close at once: each close answers the other; each side reports its own code, clean; the server ends TCP', (t) => {
  const server = newSession('server')
  const client = newSession('client')
  server.sendClose(4001, 'server')
  client.sendClose(4002, 'client')
  const toClient = concat(server.takeOutput())
  const toServer = concat(client.takeOutput())
  t.deepEqual(kinds(server.receive(toServer)), ['close:4002'])
  t.deepEqual(kinds(client.receive(toClient)), ['close:4001'])
  t.deepEqual(server.takeOutput(), [], 'no second close')
  t.deepEqual(client.takeOutput(), [], 'no second close')
  t.is(orders(server), 'end/tcp-end')
  t.is(orders(client), 'keep/tcp-end')
  client.receiveEof()
  t.is(orders(client), 'end/tcp-end')
  t.deepEqual(outcome(server), { code: 4001, reason: 'server', wasClean: true })
  t.deepEqual(outcome(client), { code: 4002, reason: 'client', wasClean: true })
})

test('one side closes, the other answers: both report the first close\'s code, clean', (t) => {
  const server = newSession('server')
  const client = newSession('client')
  client.sendClose(4003, 'bye')
  server.receive(concat(client.takeOutput()))
  client.receive(concat(server.takeOutput()))
  t.deepEqual(outcome(server), { code: 4003, reason: 'bye', wasClean: true })
  t.deepEqual(outcome(client), { code: 4003, reason: 'bye', wasClean: true })
})

for (const role of ROLES) {
  test(`a close after a failure sends the failure's close, not its own (${role})`, (t) => {
    const s = driverSession(role)
    s.receive(badOpcode(role))
    t.true(s.sendClose(1000, 'handler done'))
    t.deepEqual(sent(s).map((c) => (c as { code: number }).code), [1002])
    t.is(outcome(s).code, 1002)
  })

  test(`a close after a failure, the close not held back: already sent, so nothing more (${role})`, (t) => {
    const s = newSession(role)
    s.receive(badOpcode(role))
    t.false(s.sendClose(1000))
    t.deepEqual(sent(s).map((c) => (c as { code: number }).code), [1002])
  })

  test(`a failure after our close: no second close; the failure's code, not clean; nobody waits for TCP (${role})`, (t) => {
    const s = driverSession(role)
    s.sendClose(1000)
    t.deepEqual(kinds(s.receive(peerFrame(role, { opcode: Opcode.Text, payload: Uint8Array.of(0xc3) }))), ['error:1007'])
    t.deepEqual(sent(s), [{ code: 1000, reason: '' }])
    t.is(orders(s), 'end/tcp-end')
    const info = outcome(s)
    t.is(info.code, 1007)
    t.false(info.wasClean)
  })

  test(`a peer's close while its protocol error's close is held: ignored; the error's code stands (${role})`, (t) => {
    const s = driverSession(role)
    s.receive(badOpcode(role))
    t.deepEqual(s.receive(closeFrame(role, 1000)), [])
    t.false(s.peerClosed)
    s.sendPendingClose()
    t.is(outcome(s).code, 1002)
  })

  test(`the peer's answer and our close timer at once: the answer makes it clean, the timer still drops TCP (${role})`, (t) => {
    const s = driverSession(role)
    s.sendClose(1000)
    s.receive(closeFrame(role, 1000))
    s.closeTimerFired()
    t.is(orders(s), 'destroy/no timer')
    t.deepEqual(outcome(s), { code: 1000, reason: '', wasClean: true })
  })
}

/** The fake extension of deferred-decompress.test.ts: bytes reversed; a message starting with 'L' is left for later. */
function fake (): MessageCompression {
  return {
    decompress: (parts) => {
      const data = concat(parts).reverse()
      return data[0] === 0x4c ? undefined : data
    },
    compress: () => undefined,
    heldBytes: 0
  }
}

test('a peer\'s close held behind a message being inflated, with a bad frame after it: the close wins once the message is out', (t) => {
  const s = new Session({ role: 'server', compression: fake(), deferClose: true })
  const compressed = peerFrame('server', { opcode: Opcode.Text, rsv: 0x40, payload: utf8('Large').reverse() })
  t.deepEqual(kinds(s.receive(concat([compressed, closeFrame('server', 1001, 'away'), badOpcode('server')]))), ['compressed'])
  t.is(s.closeState, OPEN_CLOSE_STATE, 'nothing held is judged yet')
  t.deepEqual(kinds(s.decompressed(utf8('Large'))), ['message:Large', 'close:1001'])
  t.is(s.pendingClose?.code, 1001)
  s.sendPendingClose()
  t.is(orders(s), 'end/tcp-end')
  t.deepEqual(outcome(s), { code: 1001, reason: 'away', wasClean: true })
})

test('a bad frame held behind a message being inflated (the held error), then a close: the error wins, the close is never read', (t) => {
  const s = new Session({ role: 'server', compression: fake(), deferClose: true })
  const compressed = peerFrame('server', { opcode: Opcode.Text, rsv: 0x40, payload: utf8('Large').reverse() })
  s.receive(concat([compressed, peerFrame('server', { opcode: Opcode.Text, payload: utf8('x'), rsv: 0x20 })]))
  t.deepEqual(s.receive(closeFrame('server', 1000)), [], 'nothing is parsed behind a held error')
  t.deepEqual(kinds(s.decompressed(utf8('Large'))), ['message:Large', 'error:1002'])
  t.false(s.peerClosed)
  s.sendPendingClose()
  t.is(outcome(s).code, 1002)
})

// ── Timers in each stage ────────────────────────────────────────────────────────────────────────

for (const role of ROLES) {
  test(`timer in 'owing' (replies): the grace is over, the owed close goes now; then TCP's end is awaited (${role})`, (t) => {
    const s = driverSession(role)
    s.receive(badOpcode(role))
    t.is(orders(s), 'keep/replies')
    s.closeTimerFired()
    t.deepEqual(sent(s).map((c) => (c as { code: number }).code), [1002])
    t.is(s.closeState.stage, 'done')
    t.is(orders(s), 'end/tcp-end')
  })

  test(`timer in 'owing' after the peer's close: the echo goes; then the §7.1.1 order (${role})`, (t) => {
    const s = driverSession(role)
    s.receive(closeFrame(role, 1000))
    s.closeTimerFired()
    t.deepEqual(sent(s), [{ code: 1000, reason: '' }])
    assertTcpEnd(t, s, role)
  })

  test(`timer in 'sent' (peer-close): destroyed; our code, not clean (${role})`, (t) => {
    const s = driverSession(role)
    s.sendClose(1001, 'going')
    s.closeTimerFired()
    t.is(orders(s), 'destroy/no timer')
    s.closeTimerFired()
    t.is(orders(s), 'destroy/no timer', 'a second firing changes nothing')
    t.deepEqual(outcome(s), { code: 1001, reason: 'going', wasClean: false })
  })

  test(`timer in 'done' (tcp-end): destroyed; the handshake had completed, so clean (${role})`, (t) => {
    const s = driverSession(role)
    s.sendClose(1000)
    s.receive(closeFrame(role, 1000))
    t.is(s.closeDecision.timer, 'tcp-end')
    s.closeTimerFired()
    t.is(orders(s), 'destroy/no timer')
    t.deepEqual(outcome(s), { code: 1000, reason: '', wasClean: true })
  })

  test(`timer in 'open' after the peer ended TCP without a close: destroyed; 1006 (${role})`, (t) => {
    const s = driverSession(role)
    s.receiveEof()
    t.is(orders(s), 'end/tcp-end')
    s.closeTimerFired()
    t.is(orders(s), 'destroy/no timer')
    t.deepEqual(outcome(s), { code: 1006, reason: '', wasClean: false })
  })

  test(`no timer runs in 'open' or 'closed', and a stray firing changes nothing (${role})`, (t) => {
    const s = driverSession(role)
    s.closeTimerFired()
    t.is(s.closeState, OPEN_CLOSE_STATE)
    s.transportClosed()
    const after = s.closeState
    s.closeTimerFired()
    t.is(s.closeState, after)
    t.is(orders(s), 'keep/no timer')
  })

  // ── The peer's end of TCP in each stage ─────────────────────────────────────────────────────────

  test(`the peer ends TCP while our close is owed: the session sends the owed close at once, then we end ours (${role})`, (t) => {
    const s = driverSession(role)
    s.receive(closeFrame(role, 1000))
    s.receiveEof()
    t.deepEqual(sent(s), [{ code: 1000, reason: '' }], 'the owed close is queued before the transport ends ours')
    t.is(s.pendingClose, undefined)
    t.is(orders(s), 'end/tcp-end', 'the client too: the server has already ended')
    t.deepEqual(outcome(s), { code: 1000, reason: '', wasClean: true })
  })

  test(`the peer ends TCP after a protocol error, ours stays writable (half-open): the owed close still waits for the replies (${role})`, (t) => {
    const s = driverSession(role)
    s.receive(badOpcode(role))
    s.receiveEof(true)
    t.deepEqual(sent(s), [], 'nothing sent yet: the handler may still reply')
    t.is(s.closeDecision.owed, 'after-replies')
    t.is(orders(s), 'keep/replies', 'not ended before the owed close is out')
    s.closeTimerFired()
    const frames = sent(s)
    t.is(frames.length, 1, 'the grace is over: the owed close goes')
    t.is((frames[0] as { code: number }).code, 1002)
    t.is(orders(s), 'end/tcp-end')
  })

  test(`when the owed close goes: the answer to the peer's close at once, a failure's after the replies (${role})`, (t) => {
    const answer = driverSession(role)
    answer.receive(closeFrame(role, 4000))
    t.is(answer.closeDecision.owed, 'now', '§5.5.1: answered as soon as practical')
    const failed = driverSession(role)
    failed.receive(badOpcode(role))
    t.is(failed.closeDecision.owed, 'after-replies', 'the handler may answer what came before the failure first')
    const open = driverSession(role)
    t.is(open.closeDecision.owed, undefined, 'nothing is owed while open')
    open.sendClose(1000)
    t.is(open.closeDecision.owed, undefined, 'nor once ours is out')
  })

  test(`the peer ends TCP without answering our close: we end ours; our code, not clean (${role})`, (t) => {
    const s = driverSession(role)
    s.sendClose(1000)
    s.receiveEof()
    t.is(orders(s), 'end/tcp-end')
    t.deepEqual(outcome(s), { code: 1000, reason: '', wasClean: false })
  })
}

// ── One place checks a close we send ──────────────────────────────────────────────────────────

test('checkClose: one message per mistake, for the session and the connection alike', (t) => {
  t.throws(() => checkClose(1005, ''), { instanceOf: RangeError, message: 'close code 1005 may not be sent: use 1000, 1001-1003, 1007-1014 or 3000-4999 (RFC 6455 §7.4)' })
  t.throws(() => checkClose(1000.5, ''), { instanceOf: TypeError, message: 'a close code must be an integer, not 1000.5' })
  t.throws(() => checkClose('1000' as unknown as number, ''), { instanceOf: TypeError, message: 'a close code must be an integer, not the string \'1000\'' })
  t.throws(() => checkClose(1000, 7 as unknown as string), { instanceOf: TypeError, message: 'a close reason must be a string' })
  t.throws(() => checkClose(1000, 'é'.repeat(62)), { instanceOf: RangeError, message: 'a close reason is at most 123 bytes of UTF-8 (RFC 6455 §5.5)' })
  t.throws(() => checkClose(undefined, 'why'), { instanceOf: TypeError, message: 'a close reason needs a close code' })
  t.is(checkClose(4999, 'x'.repeat(123)).length, 123)
  const s = newSession('server')
  t.throws(() => s.sendClose(1005), { instanceOf: RangeError, message: /^close code 1005 may not be sent: use/ })
})

// ── Properties of the one transition function ───────────────────────────────────────────────────

const RANK: Record<CloseStage, number> = { open: 0, owing: 1, sent: 1, done: 2, closed: 3 }

const codeArb = fc.constantFrom(1000, 1001, 1002, 1005, 1007, 1009, 1011, 3000, 4999)
const inputArb: fc.Arbitrary<CloseInput> = fc.oneof(
  fc.record({ type: fc.constant('send' as const), code: fc.option(codeArb.filter((c) => c !== 1005), { nil: undefined }), reason: fc.string({ maxLength: 5 }) }).map((i) => ({ ...i, reason: i.code === undefined ? '' : i.reason })),
  fc.record({ type: fc.constant('receive' as const), code: codeArb, reason: fc.string({ maxLength: 5 }) }),
  fc.record({ type: fc.constant('fail' as const), code: fc.constantFrom(1002, 1007, 1009, 1011, 1013), reason: fc.string({ maxLength: 200 }) }),
  fc.record({ type: fc.constant('eof' as const), writable: fc.boolean() }),
  fc.constant({ type: 'timeout' as const }),
  fc.record({ type: fc.constant('closed' as const), error: fc.boolean() })
)

test('property: stages only move forward; each close frame, the failure and the peer\'s EOF are set once and kept; closed absorbs everything', (t) => {
  fc.assert(fc.property(fc.array(inputArb, { maxLength: 12 }), (inputs) => {
    let s: CloseState = OPEN_CLOSE_STATE
    for (const input of inputs) {
      const next = closeStep(s, input)
      assert.ok(RANK[next.stage] >= RANK[s.stage], `${s.stage} → ${next.stage} on ${input.type}`)
      if (s.sent !== undefined) assert.equal(next.sent, s.sent, 'our close is sent once')
      if (s.received !== undefined) assert.equal(next.received, s.received, 'the peer\'s close is taken once')
      if (s.failure !== undefined) assert.equal(next.failure, s.failure, 'a failure stays')
      if (s.eof) assert.ok(next.eof)
      if (s.stage === 'closed') assert.equal(next, s, 'closed is final')
      // §5.5.1 / §7.1.7: nothing is read after the peer's close or a failure.
      if (input.type === 'receive' && (s.received !== undefined || s.failure !== undefined)) assert.equal(next.received, s.received)
      s = next
    }
  }), { numRuns: 2000 })
  t.pass()
})

test('property: every stage but open and closed has a timer or a destroy (no state without an end); a destroy only after a timeout; §7.1.1 who ends TCP', (t) => {
  fc.assert(fc.property(fc.array(inputArb, { maxLength: 12 }), fc.constantFrom<Role>('server', 'client'), (inputs, role) => {
    let s: CloseState = OPEN_CLOSE_STATE
    for (const input of inputs) {
      s = closeStep(s, input)
      const d = closeDecision(s, role)
      if (s.stage === 'closed') assert.deepEqual(d, { timer: undefined, transport: 'keep', owed: undefined })
      else if (s.stage !== 'open' || s.eof) assert.ok(d.timer !== undefined || d.transport === 'destroy', `${s.stage}: no end`)
      // The answer to a peer's close goes at once; a failure's close after the replies; nothing is owed elsewhere.
      assert.equal(d.owed, s.stage !== 'owing' ? undefined : s.failure === undefined ? 'now' : 'after-replies')
      // Owing after the peer's end of TCP only while ours stays writable.
      if (input.type === 'eof' && input.writable !== true) assert.notEqual(s.stage, 'owing')
      if (d.transport === 'destroy') assert.ok(s.timedOut)
      if (s.stage === 'owing') assert.equal(d.timer, 'replies', 'the owed close is bounded by the grace')
      if (s.stage === 'done' && !s.timedOut) {
        // The server ends TCP first; a client only once the server has, or after a failure.
        assert.equal(d.transport === 'end', role === 'server' || s.eof || s.failure !== undefined)
      }
    }
  }), { numRuns: 2000 })
  t.pass()
})

test('property: the outcome is the failure\'s code, else the first close\'s, else 1006; clean only when both closes crossed without a failure or a transport error', (t) => {
  fc.assert(fc.property(fc.array(inputArb, { maxLength: 12 }), (inputs) => {
    let s: CloseState = OPEN_CLOSE_STATE
    let first: 'sent' | 'received' | undefined
    for (const input of inputs) {
      s = closeStep(s, input)
      first ??= s.sent !== undefined ? 'sent' : s.received !== undefined ? 'received' : undefined
    }
    const o = closeOutcome(s)
    assert.equal(o.wasClean, s.sent !== undefined && s.received !== undefined && s.failure === undefined && !s.transportError)
    if (s.failure !== undefined) assert.equal(o.code, s.failure.code)
    else if (first === 'sent') assert.equal(o.code, s.sent!.code ?? 1005)
    else if (first === 'received') assert.equal(o.code, s.received!.code)
    else assert.deepEqual(o, { code: 1006, reason: '', wasClean: false })
  }), { numRuns: 2000 })
  t.pass()
})

/** A session's inputs, as a driver would feed them: frames from the peer, our calls, the transport. */
type Step =
  | { op: 'text' } | { op: 'close', code: number } | { op: 'bad' }
  | { op: 'sendClose', code: number } | { op: 'sendPending' } | { op: 'eof' } | { op: 'timer' } | { op: 'gone' }

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.constant({ op: 'text' as const }),
  fc.record({ op: fc.constant('close' as const), code: fc.constantFrom(1000, 1001, 4000) }),
  fc.constant({ op: 'bad' as const }),
  fc.record({ op: fc.constant('sendClose' as const), code: fc.constantFrom(1000, 1011, 4001) }),
  fc.constant({ op: 'sendPending' as const }),
  fc.constant({ op: 'eof' as const }),
  fc.constant({ op: 'timer' as const }),
  fc.constant({ op: 'gone' as const })
)

test('property (session): at most one close frame ever goes out, it is the one the state says, and nothing follows it', (t) => {
  fc.assert(fc.property(fc.array(stepArb, { maxLength: 10 }), fc.constantFrom<Role>('server', 'client'), fc.boolean(), (steps, role, deferClose) => {
    const s = newSession(role, { deferClose })
    const frames: Array<{ opcode: number, code: number | undefined }> = []
    const collect = (): void => { for (const f of outputFrames(s)) frames.push({ opcode: f.opcode, code: f.opcode === Opcode.Close ? closePayload(f).code : undefined }) }
    for (const step of steps) {
      switch (step.op) {
        case 'text': s.receive(text(role, 'm')); s.sendText('echo'); break
        case 'close': s.receive(closeFrame(role, step.code)); break
        case 'bad': s.receive(badOpcode(role)); break
        case 'sendClose': s.sendClose(step.code); break
        case 'sendPending': s.sendPendingClose(); break
        case 'eof': s.receiveEof(); break
        case 'timer': s.closeTimerFired(); break
        case 'gone': s.transportClosed(); break
      }
      collect()
    }
    const closes = frames.filter((f) => f.opcode === Opcode.Close)
    assert.ok(closes.length <= 1, `${closes.length} close frames`)
    const last = frames.findIndex((f) => f.opcode === Opcode.Close)
    if (last >= 0) assert.equal(last, frames.length - 1, 'nothing after our close')
    const state = s.closeState.sent
    if (closes.length === 1) assert.equal(closes[0].code, state?.code)
    else assert.equal(state, undefined)
  }), { numRuns: 1000 })
  t.pass()
})
