/**
 * `listen` takes an options object. Node's own servers take `listen(port)`, and a JavaScript
 * user who wrote `server.listen(8080)` got a server on a random port without a word; a `port`
 * that is not a number (`'x'`) made Node listen on a pipe of that name in the working directory.
 * Both now reject, saying what to write.
 */

import test from 'ava'
import { WebSocketServer } from '../../src/index.js'
import { captureLogger } from './helpers.js'

const server = (): WebSocketServer => new WebSocketServer({ logger: captureLogger().logger }).register('', ({ source, sink }) => sink(source))

test('listen(8080) rejects with a TypeError that shows the call to make', async (t) => {
  const s = server()
  await t.throwsAsync(s.listen(8080 as never), { instanceOf: TypeError, message: 'listen takes options: listen({ port: 8080 })' })
  t.is(s.address(), undefined, 'listens nowhere')
  await s.close()
})

test('a port that is not a whole number from 0 to 65535 rejects with a RangeError; a numeric string (process.env.PORT) is a port', async (t) => {
  for (const port of ['x', -1, 65536, 1.5, Number.NaN, '']) {
    const s = server()
    await t.throwsAsync(s.listen({ port: port as never }), { instanceOf: RangeError, message: `port must be a whole number from 0 to 65535, not ${typeof port === 'string' ? JSON.stringify(port) : String(port)}` }, String(port))
    t.is(s.address(), undefined)
    await s.close()
  }
  const s = server()
  const { port } = await s.listen({ port: '0' as never, host: '127.0.0.1' })
  t.true(port > 0)
  await s.close()
})
