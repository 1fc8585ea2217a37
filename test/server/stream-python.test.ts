/**
 * Python's `websockets` (python3-websockets) against the demo's echo-stream: a fragmented text
 * message and a fragmented binary one, sent as iterables, come back whole; a 24 MiB message,
 * past the 16 MiB whole-message limit, comes back with the same hash.
 */

import { createHash } from 'node:crypto'
import { startDemo } from '../../examples/echo-server.js'
import { peerTest } from '../peers.js'
import { pattern, runPythonClient } from './python-client.js'

const test = peerTest('python3-websockets')

interface PyResult {
  protocol?: string
  received?: Array<{ type: string, data?: string, hex?: string, len?: number, sha256?: string }>
  close_code?: number
}

test('python websockets: fragmented and large messages through echo-stream come back whole, text as text', async (t) => {
  t.timeout(90_000)
  const demo = await startDemo(0)
  t.teardown(() => demo.close())
  const size = 24 * 1024 * 1024
  const result = await runPythonClient<PyResult>({
    url: demo.wsUrl,
    subprotocols: ['echo-stream'],
    messages: [{ fragments: ['héllo ', 'wö', 'rld'] }, { hexfragments: ['00ff', '', '7f80'] }, { pattern: size }],
    echo: true,
    close: { code: 1000, reason: '' }
  })
  t.is(result.protocol, 'echo-stream')
  t.deepEqual(result.received?.slice(0, 2), [{ type: 'text', data: 'héllo wörld' }, { type: 'binary', hex: '00ff7f80' }])
  t.deepEqual(result.received?.[2], { type: 'binary', len: size, sha256: createHash('sha256').update(pattern(size)).digest('hex') })
  t.is(result.close_code, 1000)
})
