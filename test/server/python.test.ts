/**
 * Python's `websockets` (Debian's python3-websockets, always via /usr/bin/python3) against the
 * server: the echo battery, subprotocols, refusals and close codes. The client is
 * fixtures/py_client.py, driven by a JSON spec on stdin, printing JSON.
 */

import { createHash } from 'node:crypto'
import type { CloseInfo, Connection } from '../../src/index.js'
import { allBytes, MULTIBYTE } from './clients.js'
import { peerTest } from '../peers.js'
import { pattern, runPythonClient } from './python-client.js'
import { echo, startServer, within } from './helpers.js'

const test = peerTest('python3-websockets')

interface PyResult {
  protocol?: string
  received?: Array<{ type: string, data?: string, hex?: string, len?: number, sha256?: string }>
  close_code?: number
  close_reason?: string
  error?: string
  status?: number
}

function runPython (spec: object): Promise<PyResult> {
  return runPythonClient<PyResult>(spec)
}

test('python websockets: echo battery (UTF-8, 256 byte values, empty, 1,000 in order with types, 16 MiB)', async (t) => {
  t.timeout(90_000)
  const { url } = await startServer(t, { echo })
  const messages: object[] = [
    { text: MULTIBYTE },
    { hex: Buffer.from(allBytes()).toString('hex') },
    { text: '' },
    { hex: '' }
  ]
  for (let i = 0; i < 1000; i++) messages.push(i % 2 === 0 ? { text: `m${i}` } : { hex: Buffer.from(`b${i}`).toString('hex') })
  messages.push({ pattern: 16 * 1024 * 1024 })
  const result = await runPython({ url, subprotocols: ['x', 'echo'], messages, close: { code: 1000, reason: 'done' } })
  t.is(result.protocol, 'echo')
  const r = result.received!
  t.is(r.length, messages.length)
  t.deepEqual(r[0], { type: 'text', data: MULTIBYTE })
  t.deepEqual(r[1], { type: 'binary', hex: Buffer.from(allBytes()).toString('hex') })
  t.deepEqual(r[2], { type: 'text', data: '' })
  t.deepEqual(r[3], { type: 'binary', hex: '' })
  let ordered = true
  for (let i = 0; i < 1000; i++) {
    const want = i % 2 === 0 ? { type: 'text', data: `m${i}` } : { type: 'binary', hex: Buffer.from(`b${i}`).toString('hex') }
    const got = r[4 + i]
    if (got.type !== want.type || got.data !== want.data || got.hex !== want.hex) ordered = false
  }
  t.true(ordered, '1,000 messages in order, types kept')
  t.deepEqual(r[1004], { type: 'binary', len: 16 * 1024 * 1024, sha256: createHash('sha256').update(pattern(16 * 1024 * 1024)).digest('hex') })
  t.is(result.close_code, 1000)
})

test('python websockets: no subprotocol → the \'\' handler; unknown only → 400', async (t) => {
  const { url } = await startServer(t, { echo, '': ({ sink }) => sink(['default']) })
  const plain = await runPython({ url, messages: [] })
  t.is(plain.protocol, '')
  t.is(plain.close_code, 1000)
  const refused = await runPython({ url, subprotocols: ['chat'], messages: [] })
  t.deepEqual(refused, { error: 'InvalidStatusCode', status: 400 })
})

test('python websockets: close with 4000 "bye" → conn.closed {4000, "bye", clean}', async (t) => {
  let closed: Promise<CloseInfo> | undefined
  const { url } = await startServer(t, { '': async (c: Connection) => { closed = c.closed; await echo(c) } })
  const result = await runPython({ url, messages: [{ text: 'hi' }], close: { code: 4000, reason: 'bye' } })
  t.deepEqual(result.received, [{ type: 'text', data: 'hi' }])
  t.is(result.close_code, 4000)
  t.deepEqual(await within(closed!, 5000, 'closed'), { code: 4000, reason: 'bye', wasClean: true })
})

test('python websockets: server close 4001 "x" and a throwing handler\'s 1011 reach the client', async (t) => {
  let n = 0
  const { url } = await startServer(t, {
    '': (c) => {
      if (n++ === 0) c.close(4001, 'x')
      else throw new Error('hidden')
    }
  })
  const first = await runPython({ url, echo: false, messages: [] })
  t.is(first.close_code, 4001)
  t.is(first.close_reason, 'x')
  const second = await runPython({ url, echo: false, messages: [] })
  t.is(second.close_code, 1011)
  t.is(second.close_reason, '')
})
