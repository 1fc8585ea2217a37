// validateUpgradeResponse, the client's pure check of a 101 (found by `npm run fuzz`).
import test from 'ava'
import { HandshakeError } from '../../src/errors.js'
import { validateUpgradeResponse } from '../../src/handshake.js'

const accept = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo='
const base = { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-accept': accept }

for (const value of ['/', '\u0000', ', /']) {
  test(`a 101 with a malformed Sec-WebSocket-Extensions (${JSON.stringify(value)}) is refused as a bad 101, not a 400`, (t) => {
    const err = t.throws(() => validateUpgradeResponse({ statusCode: 101, headers: { ...base, 'sec-websocket-extensions': value } }, accept, []), { instanceOf: HandshakeError })
    t.is(err!.status, 101)
    t.regex(err!.message, /Sec-WebSocket-Extensions/)
  })
}
