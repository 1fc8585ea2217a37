// The case engine: runs one case (a row of the case table) on a fresh
// connection and judges it the way Autobahn's Case base class does
// (case.py: finishWhenDone + onConnectionLost).

import { FuzzClient } from './client.js'
import type { Offer } from './deflate.js'
import { bytesEqual, isValidUtf8, utf8 } from './wire.js'

// Autobahn's outcome names, verbatim.
export type Behavior = 'OK' | 'NON-STRICT' | 'INFORMATIONAL' | 'UNIMPLEMENTED' | 'FAILED'
export type CloseBehavior = 'OK' | 'INFORMATIONAL' | 'FAILED' | 'UNCLEAN' | 'WRONG CODE' | 'FAILED BY CLIENT'

/** Observed events, as Autobahn records them: ("message", payload, binary), ("pong", payload), ("timeout", tag). */
export type Ev = ['message', Uint8Array, boolean] | ['pong', Uint8Array] | ['timeout', string]

export interface ExpectedClose {
  /** Must we (the client) be the endpoint that started the closing handshake? */
  closedByMe: boolean
  /** Close codes the server may send (an absent code is always accepted). */
  closeCode: number[]
  /** Must the closing handshake complete cleanly? */
  requireClean: boolean
  /** UTF-8 cases: if the wrong endpoint closed, the server did not detect the bad payload → case FAILED. */
  closedByWrongEndpointIsFatal?: boolean
}

/** One scripted action; the engine interprets these (Autobahn's p.sendFrame, p.killAfter, ...). */
export type Step =
  | { op: 'frame'; opcode: number; payload?: Uint8Array; fin?: boolean; rsv?: number; len?: number; chop?: number; sync?: boolean }
  | { op: 'message'; payload: Uint8Array; binary?: boolean; frag?: number; sync?: boolean }
  | { op: 'close'; code?: number; reason?: Uint8Array }
  | { op: 'killAfter'; s: number }
  | { op: 'closeAfter'; s: number }
  | { op: 'later'; s: number; tag: string; requireOpen?: boolean; record?: boolean; steps: Step[] }
  | { op: 'beginMessage'; binary?: boolean }
  | { op: 'beginFrame'; length: number }
  | { op: 'frameData'; data: Uint8Array }
  | { op: 'endMessage' }

export interface CaseDef {
  id: string
  description: string
  /** Outcome name → exact event sequence. Omitted when onMessage judges (9.x). */
  expected?: Partial<Record<Behavior, Ev[]>>
  expectedClose: ExpectedClose
  /** Do not close automatically once all expectations match (Autobahn suppressClose). */
  suppressClose?: boolean
  steps?: Step[]
  /** Extra set-up after the steps (e.g. 9.x sets its initial FAILED verdict here). */
  onOpen?: (c: CaseCtx) => void
  /** Replaces the default record-and-compare handling of messages (9.x). */
  onMessage?: (c: CaseCtx, payload: Uint8Array, binary: boolean) => void
  /** Runs after the generic judgement, like a case's onConnectionLost override. */
  after?: (c: CaseCtx) => void
  /** What a NON-STRICT match means for this case, for the report. */
  nonStrict?: string
  /** Autobahn reportTime: the duration is part of the result (9.x). */
  reportTime?: boolean
  /** Hard bound for the whole case (engine safety net; Autobahn has none). */
  timeoutMs?: number
  /** permessage-deflate offers for the handshake (sections 12 and 13). */
  deflate?: Offer[]
  /** Autobahn autoFragmentSize: fragment every message sent into frames of this many octets. */
  autoFragmentSize?: number
}

export interface CaseCtx {
  readonly def: CaseDef
  readonly conn: FuzzClient
  readonly received: Ev[]
  behavior: Behavior
  result: string
  behaviorClose: CloseBehavior
  resultClose: string
  /** Free-form state for hooks (e.g. message counters). */
  data: Record<string, unknown>
}

export interface CaseResult {
  id: string
  description: string
  /** Combined verdict; see combine(). */
  verdict: Behavior
  behavior: Behavior
  behaviorClose: CloseBehavior
  result: string
  resultClose: string
  durationMs: number
  reportTime: boolean
  expected: Record<string, unknown[]> | null
  received: unknown[]
  expectedClose: ExpectedClose
  closedByMe: boolean
  failedByMe: boolean
  droppedByMe: boolean
  wasClean: boolean
  wasNotCleanReason: string | null
  remoteCloseCode: number | null
  remoteCloseReason: string | null
  localCloseCode: number | null
  agent: string
  trace: string[]
}

const DEFAULT_CASE_TIMEOUT_MS = 30_000

function evEqual(a: Ev, b: Ev): boolean {
  if (a[0] !== b[0]) return false
  if (a[0] === 'timeout') return a[1] === b[1]
  if (!bytesEqual(a[1] as Uint8Array, b[1] as Uint8Array)) return false
  return a[0] !== 'message' || a[2] === b[2]
}

export function evsEqual(a: readonly Ev[], b: readonly Ev[]): boolean {
  return a.length === b.length && a.every((e, i) => evEqual(e, b[i]))
}

/** Report form of payloads: short text when UTF-8, else hex (like Autobahn's asciiLogData). */
function show(p: Uint8Array): string {
  const max = 64
  const head = p.subarray(0, max)
  const more = p.length > max ? ` … (${p.length} octets)` : ''
  return (isValidUtf8(head) ? Buffer.from(head).toString('utf8') : '0x' + Buffer.from(head).toString('hex')) + more
}

function showEvs(evs: readonly Ev[]): unknown[] {
  return evs.map((e) => (e[0] === 'timeout' ? [...e] : e[0] === 'pong' ? ['pong', show(e[1])] : ['message', show(e[1]), e[2]]))
}

const RANK: Record<Behavior, number> = { OK: 0, INFORMATIONAL: 1, 'NON-STRICT': 2, UNIMPLEMENTED: 3, FAILED: 4 }

/**
 * One verdict per case. Autobahn reports behaviour and close behaviour side by side;
 * its report colours WRONG CODE like NON-STRICT, FAILED BY CLIENT as "almost",
 * UNCLEAN / FAILED as failures. We take the worse of the two on that scale.
 */
export function combine(behavior: Behavior, close: CloseBehavior): Behavior {
  const c: Behavior =
    close === 'OK' ? 'OK' : close === 'INFORMATIONAL' ? 'INFORMATIONAL' : close === 'WRONG CODE' || close === 'FAILED BY CLIENT' ? 'NON-STRICT' : 'FAILED'
  return RANK[c] > RANK[behavior] ? c : behavior
}

function runSteps(c: CaseCtx, steps: readonly Step[]): void {
  const p = c.conn
  for (const s of steps) {
    switch (s.op) {
      case 'frame':
        p.sendFrame({ opcode: s.opcode, payload: s.payload, fin: s.fin, rsv: s.rsv, payloadLen: s.len, chopsize: s.chop, sync: s.sync })
        break
      case 'message':
        p.sendMessage(s.payload, s.binary ?? false, s.frag, s.sync ?? false)
        break
      case 'close':
        p.sendCloseFrame(s.code, s.reason, false)
        break
      case 'killAfter':
        p.killAfter(s.s)
        break
      case 'closeAfter':
        p.closeAfter(s.s)
        break
      case 'later':
        p.continueLater(s.s, () => {
          if (s.requireOpen && p.state !== 'OPEN') return
          p.note(`continue later: ${s.tag}`)
          if (s.record) c.received.push(['timeout', s.tag])
          runSteps(c, s.steps)
        })
        break
      case 'beginMessage':
        p.beginMessage(s.binary ?? false)
        break
      case 'beginFrame':
        p.beginMessageFrame(s.length)
        break
      case 'frameData':
        p.sendMessageFrameData(s.data)
        break
      case 'endMessage':
        p.endMessage()
        break
    }
  }
}

/** Autobahn finishWhenDone: once every expectation matches, start the close ourselves if we are meant to. */
function finishWhenDone(c: CaseCtx): void {
  const exp = c.def.expected ?? {}
  for (const k of Object.keys(exp) as Behavior[]) {
    if (!evsEqual(c.received, exp[k]!)) return
  }
  if (c.def.expectedClose.closedByMe && !c.def.suppressClose) {
    c.conn.sendCloseFrame(c.def.expectedClose.closeCode[0], undefined, false)
  }
}

/** Autobahn Case.onConnectionLost: compare events, then judge the close. */
function judge(c: CaseCtx): void {
  const p = c.conn
  const exp = c.def.expected ?? {}
  for (const k of Object.keys(exp) as Behavior[]) {
    if (evsEqual(c.received, exp[k]!)) {
      c.behavior = k
      c.result = 'Actual events match at least one expected.'
      if (k === 'NON-STRICT' && c.def.nonStrict) c.result += ` (${c.def.nonStrict})`
      break
    }
  }
  const ec = c.def.expectedClose
  if (p.connectionWasOpen) {
    if (ec.closedByMe !== p.closedByMe) {
      c.behaviorClose = 'FAILED'
      c.resultClose = 'The connection was failed by the wrong endpoint'
    } else if (ec.requireClean && !p.wasClean) {
      c.behaviorClose = 'UNCLEAN'
      c.resultClose = `The spec requires the connection to be failed cleanly here (${p.wasNotCleanReason ?? 'unclean'})`
    } else if (p.remoteCloseCode !== null && !ec.closeCode.includes(p.remoteCloseCode)) {
      c.behaviorClose = 'WRONG CODE'
      c.resultClose = `The close code should have been ${ec.closeCode.join(',')} or empty (got ${p.remoteCloseCode})`
    } else if (p.droppedByMe) {
      c.behaviorClose = 'FAILED BY CLIENT'
      c.resultClose = 'It is preferred that the server close the TCP connection'
    } else {
      c.behaviorClose = 'OK'
      c.resultClose = 'Connection was properly closed'
    }
    if (ec.closedByWrongEndpointIsFatal && ec.closedByMe !== p.closedByMe) c.behavior = 'FAILED'
  } else {
    c.behaviorClose = 'FAILED'
    c.resultClose = `The WebSocket opening handshake was never completed!${p.handshakeError ? ` (${p.handshakeError})` : ''}`
  }
}

export interface Target {
  port: number
  path: string
  /** Run the case on a stream of this HTTP/2 session (RFC 8441) instead of a TCP connection. */
  h2?: { session: import('node:http2').ClientHttp2Session; authority: string }
}

export function runCase(def: CaseDef, target: Target): Promise<CaseResult> {
  return new Promise((resolve) => {
    let started = 0
    let timedOut = false
    const c: CaseCtx = {
      def,
      conn: undefined as unknown as FuzzClient,
      received: [],
      behavior: 'FAILED',
      result: 'Actual events differ from any expected.',
      behaviorClose: 'FAILED',
      resultClose: 'TCP connection was dropped without close handshake',
      data: {},
    }
    const conn = new FuzzClient({
      onOpen: () => {
        started = Date.now()
        runSteps(c, def.steps ?? [])
        def.onOpen?.(c)
      },
      onMessage: (payload, binary) => {
        if (def.onMessage) def.onMessage(c, payload, binary)
        else {
          c.received.push(['message', payload, binary])
          finishWhenDone(c)
        }
      },
      onPong: (payload) => {
        c.received.push(['pong', payload])
        finishWhenDone(c)
      },
      onLost: () => finish(),
    })
    let finished = false
    const finish = (): void => {
      if (finished) return
      finished = true
      clearTimeout(guard)
      clearTimeout(lastResort)
      const durationMs = started ? Date.now() - started : 0
      judge(c)
      def.after?.(c)
      if (timedOut) {
        c.behavior = 'FAILED'
        c.result = `Case did not finish within ${(def.timeoutMs ?? DEFAULT_CASE_TIMEOUT_MS) / 1000} s (engine timeout). ${c.result}`
      }
      resolve({
        id: def.id,
        description: def.description,
        verdict: combine(c.behavior, c.behaviorClose),
        behavior: c.behavior,
        behaviorClose: c.behaviorClose,
        result: c.result,
        resultClose: c.resultClose,
        durationMs,
        reportTime: def.reportTime ?? false,
        expected: def.expected ? Object.fromEntries(Object.entries(def.expected).map(([k, v]) => [k, showEvs(v!)])) : null,
        received: showEvs(c.received),
        expectedClose: def.expectedClose,
        closedByMe: conn.closedByMe,
        failedByMe: conn.failedByMe,
        droppedByMe: conn.droppedByMe,
        wasClean: conn.wasClean,
        wasNotCleanReason: conn.wasNotCleanReason,
        remoteCloseCode: conn.remoteCloseCode,
        remoteCloseReason: conn.remoteCloseReason,
        localCloseCode: conn.localCloseCode,
        agent: conn.agent,
        trace: conn.trace,
      })
    }
    ;(c as { conn: FuzzClient }).conn = conn
    if (def.deflate) conn.deflateOffers = def.deflate
    if (def.autoFragmentSize) conn.autoFragmentSize = def.autoFragmentSize
    // Safety net so a wedged peer cannot hang the run; Autobahn itself would wait forever.
    let lastResort: NodeJS.Timeout | undefined
    const guard = setTimeout(() => {
      timedOut = true
      conn.note('engine timeout: dropping connection')
      conn.abort()
      // If not even the socket's close event arrives, judge what we have.
      lastResort = setTimeout(finish, 5000)
    }, def.timeoutMs ?? DEFAULT_CASE_TIMEOUT_MS)
    if (target.h2) conn.connectH2(target.h2.session, target.h2.authority, target.path)
    else conn.connect(target.port, target.path)
  })
}

// ---- helpers for writing case tables ----

export const msg = (payload: Uint8Array | string, binary = false): Ev => ['message', typeof payload === 'string' ? utf8(payload) : payload, binary]
export const pong = (payload: Uint8Array | string): Ev => ['pong', typeof payload === 'string' ? utf8(payload) : payload]
export const timeout = (tag: string): Ev => ['timeout', tag]

export const frame = (
  opcode: number,
  payload?: Uint8Array | string,
  o: { fin?: boolean; rsv?: number; len?: number; chop?: number; sync?: boolean } = {},
): Step => ({ op: 'frame', opcode, payload: typeof payload === 'string' ? utf8(payload) : payload, ...o })
export const message = (payload: Uint8Array, o: { binary?: boolean; frag?: number; sync?: boolean } = {}): Step => ({ op: 'message', payload, ...o })
export const close = (code?: number, reason?: Uint8Array | string): Step => ({
  op: 'close',
  code,
  reason: typeof reason === 'string' ? utf8(reason) : reason,
})
export const killAfter = (s: number): Step => ({ op: 'killAfter', s })
export const closeAfter = (s: number): Step => ({ op: 'closeAfter', s })
export const later = (s: number, tag: string, steps: Step[], o: { requireOpen?: boolean; record?: boolean } = {}): Step => ({
  op: 'later',
  s,
  tag,
  steps,
  ...o,
})

/** Close expectations used by most cases. */
export const CLOSE_NORMAL_BY_ME: ExpectedClose = { closedByMe: true, closeCode: [1000], requireClean: true }
export const FAIL_1002: ExpectedClose = { closedByMe: false, closeCode: [1002], requireClean: false }
export const FAIL_1007: ExpectedClose = { closedByMe: false, closeCode: [1007], requireClean: false, closedByWrongEndpointIsFatal: true }

/** Section 7 cases: a WRONG CODE close makes the case itself FAILED (Autobahn case7_* onConnectionLost). */
export function wrongCodeFails(c: CaseCtx): void {
  if (c.behaviorClose === 'WRONG CODE') {
    c.behavior = 'FAILED'
    c.result = c.resultClose
  }
}
