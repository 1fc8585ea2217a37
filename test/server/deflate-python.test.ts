/**
 * permessage-deflate with Python's `websockets` (Debian's python3-websockets, via /usr/bin/python3):
 * its client against our server for each parameter set it can offer, and our client against its
 * server; the negotiated header checked, text, binary, empty and fragmented messages echoed.
 */

import { connect, type PerMessageDeflateOptions } from '../../src/index.js'
import { startPythonServer } from '../client/helpers.js'
import { peerTest } from '../peers.js'
import { runPythonClient } from './python-client.js'
import { echo, startServer } from './helpers.js'

const test = peerTest('python3-websockets')

interface PyResult {
  extensions?: string | null
  received?: Array<{ type: string, data?: string, hex?: string, len?: number, sha256?: string }>
  close_code?: number
}

function runPython (spec: object): Promise<PyResult> {
  return runPythonClient<PyResult>(spec)
}

const JSON_TEXT = JSON.stringify(Array.from({ length: 40 }, (_, i) => ({ id: i, name: `n${i % 7}`, ok: true })))

// [our server's options, the Python client's offer, the answer expected]
// websockets offers client_max_window_bits, so the server's default 12-bit windows apply.
const CASES: Array<[PerMessageDeflateOptions, Record<string, unknown>, string]> = [
  [{}, {}, 'permessage-deflate; server_max_window_bits=12; client_max_window_bits=12'],
  [{}, { server_no_context_takeover: true }, 'permessage-deflate; server_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12'],
  [{}, { client_no_context_takeover: true }, 'permessage-deflate; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12'],
  [{}, { server_max_window_bits: 10 }, 'permessage-deflate; server_max_window_bits=10; client_max_window_bits=12'],
  [{}, { client_max_window_bits: 9 }, 'permessage-deflate; server_max_window_bits=12; client_max_window_bits=9'],
  [{ serverMaxWindowBits: 15, clientMaxWindowBits: 15 }, {}, 'permessage-deflate'],
  [{ serverMaxWindowBits: 11, clientMaxWindowBits: 13, clientNoContextTakeover: true }, {}, 'permessage-deflate; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=13'],
  [{ sharedCompressor: true }, {}, 'permessage-deflate; server_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12']
]

for (const [ours, theirs, expected] of CASES) {
  test(`python client ${JSON.stringify(theirs)} → our server ${JSON.stringify(ours)}: "${expected}", echoes intact`, async (t) => {
    const { url } = await startServer(t, { '': echo }, { perMessageDeflate: { threshold: 0, ...ours } })
    const messages = [
      { text: 'héllo ☃' }, { text: '' }, { hex: '' }, { hex: '00ff10' },
      { text: JSON_TEXT }, { text: JSON_TEXT }, { hex: Buffer.from(JSON_TEXT).toString('hex').slice(0, 2000) },
      { fragments: [JSON_TEXT, '☃', JSON_TEXT] }, { hexfragments: ['0102', '', 'ff'] }
    ]
    const result = await runPython({ url, messages, deflate: theirs, close: { code: 1000 } })
    t.is(result.extensions, expected)
    t.deepEqual(result.received, [
      { type: 'text', data: 'héllo ☃' }, { type: 'text', data: '' }, { type: 'binary', hex: '' }, { type: 'binary', hex: '00ff10' },
      { type: 'text', data: JSON_TEXT }, { type: 'text', data: JSON_TEXT }, { type: 'binary', hex: Buffer.from(JSON_TEXT).toString('hex').slice(0, 2000) },
      { type: 'text', data: JSON_TEXT + '☃' + JSON_TEXT }, { type: 'binary', hex: '0102ff' }
    ])
    t.is(result.close_code, 1000)
  })
}

// websockets' server asks for 12-bit windows on both sides unless told otherwise.
const CLIENT_CASES: Array<[PerMessageDeflateOptions, string]> = [
  [{}, 'permessage-deflate; server_max_window_bits=12; client_max_window_bits=12'],
  [{ serverNoContextTakeover: true, clientNoContextTakeover: true }, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12'],
  [{ serverMaxWindowBits: 10, clientMaxWindowBits: 9 }, 'permessage-deflate; server_max_window_bits=10; client_max_window_bits=9']
]

for (const [ours, expected] of CLIENT_CASES) {
  test(`our client ${JSON.stringify(ours)} → python server: "${expected}", echoes intact`, async (t) => {
    const peer = await startPythonServer(['--deflate'])
    t.teardown(() => peer.close())
    const conn = await connect(peer.url, { perMessageDeflate: { threshold: 0, ...ours }, heartbeat: false })
    t.is(conn.headers['sec-websocket-extensions'], expected)
    const sent: Array<string | Uint8Array> = ['héllo', '', new Uint8Array(0), JSON_TEXT, JSON_TEXT, Buffer.from(JSON_TEXT)]
    await conn.sink(sent)
    let i = 0
    for await (const m of conn.source) {
      t.true(Buffer.from(m).equals(Buffer.from(sent[i])), `message ${i}`)
      if (++i === sent.length) break
    }
    conn.close()
    t.true((await conn.closed).wasClean)
  })
}
