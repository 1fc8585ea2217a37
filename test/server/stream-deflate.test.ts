/**
 * Stream mode and permessage-deflate: the extension inflates whole messages, so a stream-mode
 * handler's connections do not negotiate it, while whole-message handlers on the same server
 * still do; the client refuses to combine the two.
 */

import test from 'ava'
import { connect } from '../../src/index.js'
import { echo, startServer, WsPeer } from './helpers.js'

test('a server with perMessageDeflate answers a stream-mode protocol without the extension, and a whole-message one with it', async (t) => {
  const { server, url } = await startServer(t, { whole: echo }, { perMessageDeflate: true })
  server.register('streamed', ({ source, sink }) => sink(source), { messages: 'stream' })
  const streamed = await WsPeer.open(url, 'streamed', { perMessageDeflate: true })
  const whole = await WsPeer.open(url, 'whole', { perMessageDeflate: true })
  t.is(streamed.ws.extensions, '')
  t.regex(whole.ws.extensions, /^permessage-deflate/)
  // Both still echo, the streamed one uncompressed.
  const text = 'x'.repeat(5000)
  await streamed.send(text)
  const back = await streamed.next()
  t.is(back.data.toString(), text)
  t.false(back.isBinary)
  await whole.send(text)
  t.is((await whole.next()).data.toString(), text)
  await streamed.close()
  await whole.close()
})

test('connect() with messages: \'stream\' and perMessageDeflate rejects with a TypeError before connecting', async (t) => {
  // @ts-expect-error the types refuse the combination too
  await t.throwsAsync(connect('ws://127.0.0.1:9/', { messages: 'stream', perMessageDeflate: true }), { instanceOf: TypeError, message: /perMessageDeflate/ })
})

test('register() refuses an unknown messages mode and a non-positive streamed limit', (t) => {
  return startServer(t, {}).then(({ server }) => {
    // @ts-expect-error not a mode
    t.throws(() => server.register('x', () => {}, { messages: 'chunks' }), { instanceOf: TypeError })
    t.throws(() => server.register('x', () => {}, { messages: 'stream', maxMessageSize: 0 }), { instanceOf: RangeError })
  })
})
