/**
 * Stream mode when the TCP connection is reset in the middle of a message: the handler's chunks
 * throw (1006) rather than end quietly, so a truncated message never looks whole.
 */

import test from 'ava'
import { WebSocketServer } from '../../src/index.js'
import { captureLogger, clientFrame, RawClient, until, within } from './helpers.js'

test('a connection reset in the middle of a message makes its chunks throw a 1006, not end quietly', async (t) => {
  let error: unknown
  let bytes = 0
  const server = new WebSocketServer({ logger: captureLogger().logger })
  server.register('', async ({ source }) => {
    try {
      for await (const m of source) for await (const c of m.chunks) bytes += c.length
    } catch (err) {
      error = err
    }
  }, { messages: 'stream' })
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await within(server.close(), 15_000, 'server.close') })
  const client = await RawClient.connect(port)
  client.send(clientFrame(2, new Uint8Array(100), { fin: false }))
  await until(() => bytes === 100, 5000, 'the first fragment')
  client.destroy()
  await until(() => error !== undefined, 5000, 'the chunks to throw')
  t.is((error as { closeCode?: number }).closeCode, 1006)
})
