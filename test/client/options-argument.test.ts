/**
 * `connect(url, options)`: the WebSocket API's `new WebSocket(url, protocols)` puts the
 * subprotocols second, and a newcomer writing `connect(url, 'echo')` or `connect(url, ['echo'])`
 * had them ignored without a word: the server then refused the upgrade (400 `a subprotocol is
 * required`). Both builds now reject with a TypeError that shows the call to make, before
 * anything is sent.
 */

import test from 'ava'
import { connect } from '../../src/index.js'
import { connect as connectFromPage } from '../../src/browser/index.js'

for (const [build, open] of [['Node', connect], ['browser', connectFromPage]] as const) {
  test(`${build}: subprotocols where the options go reject with a TypeError showing the options to write`, async (t) => {
    // Port 1: nothing is sent, so nothing need listen.
    await t.throwsAsync(open('ws://127.0.0.1:1/', 'echo' as never), { instanceOf: TypeError, message: 'connect takes options: connect(url, { protocols: "echo" })' })
    await t.throwsAsync(open('ws://127.0.0.1:1/', ['echo', 'chat'] as never), { instanceOf: TypeError, message: 'connect takes options: connect(url, { protocols: ["echo","chat"] })' })
    await t.throwsAsync(open('ws://127.0.0.1:1/', 5 as never), { instanceOf: TypeError, message: 'connect takes an options object, not 5' })
    await t.throwsAsync(open('ws://127.0.0.1:1/', null as never), { instanceOf: TypeError, message: 'connect takes an options object, not null' })
  })
}
